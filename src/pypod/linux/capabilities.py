"""Linux capabilities: names, masks, and the capget/capset/prctl primitives.

Used by the container init process right before it execs the container's process, so this
module imports only ``ctypes``, ``os``, ``errno`` and ``logging``.  Every failing call raises
:class:`pypod.errors.OSLevelError` with ``errno`` kept.

The OCI order is :func:`apply`: bounding set, then effective/permitted/inheritable (one
``capset``), then ambient.  It mirrors runc's ``libcontainer/capabilities`` (with the
gocapability package underneath) where it matters to what the container sees:

* capability names known to pypod but above the running kernel's ``cap_last_cap`` are dropped
  with a warning (runc: "ignoring unknown or unavailable capabilities"); names pypod does not
  know at all are an error here (InvalidArgument), where runc only warns;
* ``EINVAL`` from ``PR_CAPBSET_DROP`` is ignored (a capability this kernel does not have);
* failures raising an ambient capability (one that is not both permitted and inheritable) are
  logged and ignored, as runc does;
* asking for a permitted capability the process does not hold fails (``EPERM``), as runc 1.1
  does ("unable to apply caps: operation not permitted");
* no ``capabilities`` object at all means every set is empty, bounding set included (runc
  substitutes an empty ``configs.Capabilities``).
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os

from pypod.errors import InvalidArgument, OSLevelError
from pypod.linux.syscalls import LIBC
from pypod.log import get_logger
from pypod.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Protocol

    class LinuxCapabilitiesLike(Protocol):
        """What :func:`apply` reads from ``pypod.oci.runtime_spec.LinuxCapabilities``."""

        @property
        def bounding(self) -> Sequence[str]: ...
        @property
        def effective(self) -> Sequence[str]: ...
        @property
        def inheritable(self) -> Sequence[str]: ...
        @property
        def permitted(self) -> Sequence[str]: ...
        @property
        def ambient(self) -> Sequence[str]: ...


log = get_logger(__name__)

#: Every capability this module knows, by its OCI name (linux/capability.h).
CAP_NAMES: dict[str, int] = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}
#: The highest capability number this module knows (CAP_CHECKPOINT_RESTORE).
CAP_MAX_KNOWN = 40

CAP_SETPCAP = CAP_NAMES["CAP_SETPCAP"]

# capget(2)/capset(2): version 3 uses two 32-bit words per set.
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# prctl(2) options (linux/prctl.h)
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_STATUS_HEX = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
_STATUS_DEC = ("NoNewPrivs", "Seccomp")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


@record(kw_only=False)
class CapSets:
    """The three capability sets capget(2)/capset(2) handle, as bit masks."""

    effective: int
    permitted: int
    inheritable: int


# --- names and masks -------------------------------------------------------------------------


def last_cap() -> int:
    """The highest capability number the running kernel knows (/proc/sys/kernel/cap_last_cap)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            return int(f.read().strip())
    except OSError as e:
        raise OSLevelError("read /proc/sys/kernel/cap_last_cap", errno=e.errno or 0) from None


def to_mask(names: Iterable[str], *, kernel_last_cap: int | None = None) -> int:
    """Turn OCI capability names into a bit mask.

    A name this module does not know raises InvalidArgument.  A known name the running kernel
    does not have (above ``cap_last_cap``) is dropped with a warning, as runc does.
    """
    mask = 0
    unknown: list[str] = []
    unavailable: list[str] = []
    top = last_cap() if kernel_last_cap is None else kernel_last_cap
    for name in names:
        number = CAP_NAMES.get(name)
        if number is None:
            unknown.append(name)
        elif number > top:
            unavailable.append(name)
        else:
            mask |= 1 << number
    if unknown:
        shown = ", ".join(sorted(set(unknown)))
        raise InvalidArgument(
            f"unknown capability: {shown}: use names such as CAP_CHOWN or CAP_NET_BIND_SERVICE "
            f"(CAP_CHOWN to CAP_CHECKPOINT_RESTORE)"
        )
    if unavailable:
        log.warning(
            "ignoring capabilities this kernel does not have (cap_last_cap %d): %s",
            top,
            ", ".join(sorted(set(unavailable))),
        )
    return mask


def to_names(mask: int) -> tuple[str, ...]:
    """The names of the capabilities set in `mask`, lowest number first (unknown bits dropped)."""
    return tuple(name for name, number in CAP_NAMES.items() if mask >> number & 1)


# --- primitives ------------------------------------------------------------------------------


def _prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2); returns the result, or ``-errno`` on failure (callers decide what to raise)."""
    libc = LIBC
    args = [ctypes.c_ulong(a) for a in (arg2, arg3, arg4, arg5)]
    ret = int(libc.prctl(ctypes.c_int(option), *args))
    if ret < 0:
        return -ctypes.get_errno()
    return ret


def capget(pid: int = 0) -> CapSets:
    """capget(2) for `pid` (0: the calling thread)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid)
    data = (_CapData * 2)()
    if LIBC.capget(ctypes.byref(header), data) < 0:
        raise OSLevelError(f"capget (pid {pid})", errno=ctypes.get_errno())
    return CapSets(
        effective=data[0].effective | data[1].effective << 32,
        permitted=data[0].permitted | data[1].permitted << 32,
        inheritable=data[0].inheritable | data[1].inheritable << 32,
    )


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) for the calling thread."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = effective >> shift & 0xFFFFFFFF
        data[i].permitted = permitted >> shift & 0xFFFFFFFF
        data[i].inheritable = inheritable >> shift & 0xFFFFFFFF
    if LIBC.capset(ctypes.byref(header), data) < 0:
        err = ctypes.get_errno()
        msg = (
            f"capset (effective {effective:#x}, permitted {permitted:#x}, "
            f"inheritable {inheritable:#x})"
        )
        if err == _errno.EPERM:
            msg += _explain_capset(effective, permitted, inheritable)
        raise OSLevelError(msg, errno=err)


def _explain_capset(effective: int, permitted: int, inheritable: int) -> str:
    """Name the capabilities that made capset(2) fail with EPERM, as far as we can tell."""
    try:
        now = capget()
    except OSLevelError:
        return ""
    parts = []
    if extra := permitted & ~now.permitted:
        parts.append(f"permitted capabilities not held: {', '.join(to_names(extra))}")
    if extra := effective & ~permitted:
        parts.append(f"effective capabilities not in permitted: {', '.join(to_names(extra))}")
    bounding = _read_bounding()
    if bounding is not None and (extra := inheritable & ~now.inheritable & ~bounding):
        parts.append(f"inheritable capabilities not in bounding: {', '.join(to_names(extra))}")
    return f" ({'; '.join(parts)})" if parts else ""


def _read_bounding() -> int | None:
    try:
        return read_status().get("CapBnd")
    except OSLevelError:
        return None


def drop_bounding(keep_mask: int, *, kernel_last_cap: int | None = None) -> None:
    """Drop from the bounding set every capability up to cap_last_cap that is not in keep_mask.

    Capabilities already out of the bounding set are left alone (so a process without
    CAP_SETPCAP can "drop" what it does not have); EINVAL (a capability this kernel does not
    know) is ignored, as gocapability does.  Dropping needs CAP_SETPCAP in the effective set;
    with it, a capability is dropped without asking first whether it is there (dropping one
    that is not is no error): half the prctl calls.
    """
    top = last_cap() if kernel_last_cap is None else kernel_last_cap
    can_drop = bool(capget().effective >> CAP_SETPCAP & 1)
    for cap in range(top + 1):
        if keep_mask >> cap & 1:
            continue
        if not can_drop and _prctl(PR_CAPBSET_READ, cap) == 0:
            continue  # not in the bounding set any more
        ret = _prctl(PR_CAPBSET_DROP, cap)
        if ret == -_errno.EINVAL:
            continue
        if ret < 0:
            name = to_names(1 << cap)
            shown = name[0] if name else str(cap)
            hint = " (needs CAP_SETPCAP in the effective set)" if -ret == _errno.EPERM else ""
            raise OSLevelError(f"drop {shown} from the bounding set{hint}", errno=-ret)


def set_ambient(mask: int) -> None:
    """Make the ambient set exactly `mask` (PR_CAP_AMBIENT_CLEAR_ALL then RAISE each).

    A capability that cannot be raised (it must be in both permitted and inheritable) is
    logged and skipped: runc ignores those errors too.  A kernel without ambient capabilities
    (EINVAL, before 4.3) is tolerated with a warning when `mask` is not empty.
    """
    ret = _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    if ret == -_errno.EINVAL:
        if mask:
            log.warning("this kernel has no ambient capabilities; ignoring %s", to_names(mask))
        return
    if ret < 0:
        raise OSLevelError("clear the ambient capability set", errno=-ret)
    for cap in range(CAP_MAX_KNOWN + 1):
        if not mask >> cap & 1:
            continue
        ret = _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)
        if ret < 0:
            log.debug(
                "ignoring ambient capability %s: %s (an ambient capability must also be "
                "permitted and inheritable)",
                to_names(1 << cap)[0],
                os.strerror(-ret),
            )


def set_keepcaps(on: bool) -> None:
    """PR_SET_KEEPCAPS: keep the permitted set across a setuid() away from uid 0."""
    ret = _prctl(PR_SET_KEEPCAPS, 1 if on else 0)
    if ret < 0:
        raise OSLevelError(f"prctl(PR_SET_KEEPCAPS, {int(on)})", errno=-ret)


def set_no_new_privs() -> None:
    """PR_SET_NO_NEW_PRIVS: execve() never grants privileges again (one-way)."""
    ret = _prctl(PR_SET_NO_NEW_PRIVS, 1)
    if ret < 0:
        raise OSLevelError("prctl(PR_SET_NO_NEW_PRIVS, 1)", errno=-ret)


def parse_status(text: str) -> dict[str, int]:
    """Pick CapInh/CapPrm/CapEff/CapBnd/CapAmb (hex) and NoNewPrivs/Seccomp out of a
    /proc/<pid>/status text; missing lines are missing keys."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        value = value.strip()
        try:
            if key in _STATUS_HEX:
                out[key] = int(value, 16)
            elif key in _STATUS_DEC:
                out[key] = int(value, 10)
        except ValueError:
            raise InvalidArgument(f"unexpected /proc status line: {line!r}") from None
    return out


def read_status(pid: int | str = "self") -> dict[str, int]:
    """The capability sets and NoNewPrivs/Seccomp of a process, from /proc/<pid>/status."""
    path = f"/proc/{pid}/status"
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as e:
        raise OSLevelError(f"read {path}", errno=e.errno or 0) from None
    return parse_status(text)


# --- the OCI sequence ------------------------------------------------------------------------


def apply(caps: LinuxCapabilitiesLike | None) -> None:
    """Give the calling process the OCI `process.capabilities`.

    The process must already run as its final uid/gid with keepcaps on (so its permitted set
    survived the setuid).  Steps: bounding set, one capset(effective, permitted, inheritable),
    ambient set.  ``None`` clears every set, as runc does when the configuration has no
    capabilities object.
    """
    top = last_cap()
    if caps is None:
        bounding = effective = permitted = inheritable = ambient = 0
    else:
        bounding = to_mask(caps.bounding, kernel_last_cap=top)
        effective = to_mask(caps.effective, kernel_last_cap=top)
        permitted = to_mask(caps.permitted, kernel_last_cap=top)
        inheritable = to_mask(caps.inheritable, kernel_last_cap=top)
        ambient = to_mask(caps.ambient, kernel_last_cap=top)

    # After setuid() away from 0 with keepcaps the effective set is empty; dropping from the
    # bounding set needs CAP_SETPCAP there, so raise effective to permitted first.
    now = capget()
    setpcap = 1 << CAP_SETPCAP
    if not now.effective & setpcap and now.permitted & setpcap:
        capset(now.permitted, now.permitted, now.inheritable)
    drop_bounding(bounding, kernel_last_cap=top)
    capset(effective, permitted, inheritable)
    set_ambient(ambient)
