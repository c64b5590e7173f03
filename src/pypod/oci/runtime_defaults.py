"""The default runtime configuration that ``runc spec`` writes, and runc's JSON formatting.

:func:`default_spec` returns the same document as ``runc spec`` (1.1) and, with
``rootless=True``, as ``runc spec --rootless`` run by the user ``uid``:``gid``, key order
included.  :func:`dump_spec_json` formats a document the way runc writes ``config.json``
(Go's ``json.MarshalIndent(spec, "", "\\t")``), so the two are byte-for-byte equal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pypod import OCI_RUNTIME_SPEC_VERSION
from pypod.oci.runtime_spec import (
    Linux,
    LinuxCapabilities,
    LinuxDeviceCgroup,
    LinuxIDMapping,
    LinuxNamespace,
    LinuxResources,
    Mount,
    POSIXRlimit,
    Process,
    Root,
    Spec,
    User,
    spec_to_dict,
)
from pypod.record import replace

__all__ = ["default_runtime_spec", "default_spec", "dump_spec_json", "to_rootless"]

_DEFAULT_CAPABILITIES = ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")
_NOSUID_NOEXEC_NODEV = ("nosuid", "noexec", "nodev")


def default_runtime_spec(*, rootless: bool = False, uid: int = 0, gid: int = 0) -> Spec:
    """The :class:`Spec` of :func:`default_spec` (runc's ``specconv.Example``)."""
    caps = _DEFAULT_CAPABILITIES
    spec = Spec(
        oci_version=OCI_RUNTIME_SPEC_VERSION,
        root=Root(path="rootfs", readonly=True),
        process=Process(
            terminal=True,
            user=User(uid=0, gid=0),
            args=("sh",),
            env=(
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ),
            cwd="/",
            no_new_privileges=True,
            capabilities=LinuxCapabilities(
                bounding=caps, permitted=caps, effective=caps, ambient=caps
            ),
            rlimits=(POSIXRlimit(type="RLIMIT_NOFILE", hard=1024, soft=1024),),
        ),
        hostname="runc",
        mounts=(
            Mount(destination="/proc", type="proc", source="proc"),
            Mount(
                destination="/dev",
                type="tmpfs",
                source="tmpfs",
                options=("nosuid", "strictatime", "mode=755", "size=65536k"),
            ),
            Mount(
                destination="/dev/pts",
                type="devpts",
                source="devpts",
                options=("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"),
            ),
            Mount(
                destination="/dev/shm",
                type="tmpfs",
                source="shm",
                options=(*_NOSUID_NOEXEC_NODEV, "mode=1777", "size=65536k"),
            ),
            Mount(
                destination="/dev/mqueue",
                type="mqueue",
                source="mqueue",
                options=_NOSUID_NOEXEC_NODEV,
            ),
            Mount(
                destination="/sys",
                type="sysfs",
                source="sysfs",
                options=(*_NOSUID_NOEXEC_NODEV, "ro"),
            ),
            Mount(
                destination="/sys/fs/cgroup",
                type="cgroup",
                source="cgroup",
                options=(*_NOSUID_NOEXEC_NODEV, "relatime", "ro"),
            ),
        ),
        linux=Linux(
            masked_paths=(
                "/proc/acpi",
                "/proc/asound",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/sys/firmware",
                "/proc/scsi",
            ),
            readonly_paths=(
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger",
            ),
            resources=LinuxResources(devices=(LinuxDeviceCgroup(allow=False, access="rwm"),)),
            namespaces=tuple(
                LinuxNamespace(type=t) for t in ("pid", "network", "ipc", "uts", "mount")
            ),
        ),
    )
    return to_rootless(spec, uid=uid, gid=gid) if rootless else spec


def to_rootless(spec: Spec, *, uid: int, gid: int) -> Spec:
    """Adapt ``spec`` for a user without privileges, as runc's ``specconv.ToRootless`` does.

    Drops the network namespace and adds a user namespace mapping container root to
    ``uid``/``gid``; bind-mounts the host's /sys instead of mounting sysfs; removes ``uid=`` and
    ``gid=`` mount options; removes the cgroup resources.
    """
    linux = spec.linux or Linux()
    namespaces = tuple(ns for ns in linux.namespaces if ns.type not in ("network", "user"))
    mounts = []
    for mount in spec.mounts:
        if _clean_path(mount.destination) == "/sys":
            mounts.append(
                Mount(
                    destination="/sys",
                    type="none",
                    source="/sys",
                    options=("rbind", *_NOSUID_NOEXEC_NODEV, "ro"),
                )
            )
            continue
        options = tuple(o for o in mount.options if not o.startswith(("gid=", "uid=")))
        mounts.append(replace(mount, options=options))
    linux = replace(
        linux,
        namespaces=(*namespaces, LinuxNamespace(type="user")),
        uid_mappings=(LinuxIDMapping(container_id=0, host_id=uid, size=1),),
        gid_mappings=(LinuxIDMapping(container_id=0, host_id=gid, size=1),),
        resources=None,
    )
    return replace(spec, mounts=tuple(mounts), linux=linux)


def _clean_path(path: str) -> str:
    """Go's ``filepath.Clean`` for the paths a mount destination holds."""
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append(part)
            continue
        parts.append(part)
    cleaned = "/".join(parts)
    return ("/" + cleaned) if rooted else (cleaned or ".")


def default_spec(*, rootless: bool = False, uid: int = 0, gid: int = 0) -> dict[str, Any]:
    """What ``runc spec`` writes (``runc spec --rootless`` with ``rootless``), as a dict.

    ``uid`` and ``gid`` are the effective ids of the user the rootless spec is for (runc uses
    its own); they are ignored unless ``rootless`` is true.
    """
    return spec_to_dict(default_runtime_spec(rootless=rootless, uid=uid, gid=gid))


# --------------------------------------------------------------------------- Go's JSON writer


def dump_spec_json(d: Mapping[str, Any]) -> str:
    """Format ``d`` as runc writes config.json: Go's ``json.MarshalIndent(v, "", "\\t")``.

    Tab indentation, ``"key": value``, no newline at the end, keys in the order given (
    :func:`~pypod.oci.runtime_spec.spec_to_dict` already sorts maps, as Go does), and Go's
    string escaping: ``<``, ``>`` and ``&`` as ``\\u003c``..., control characters as ``\\u00XX``
    except ``\\n``, ``\\r``, ``\\t``; other characters as UTF-8.
    """
    out: list[str] = []
    _dump(d, out, "")
    return "".join(out)


def _dump(value: Any, out: list[str], indent: str) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_go_float(value))
    elif isinstance(value, str):
        out.append(_go_string(value))
    elif isinstance(value, Mapping):
        if not value:
            out.append("{}")
            return
        inner = indent + "\t"
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, got {type(key).__name__}")
            out.append(("," if i else "") + "\n" + inner + _go_string(key) + ": ")
            _dump(item, out, inner)
        out.append("\n" + indent + "}")
    elif isinstance(value, list | tuple):
        if not value:
            out.append("[]")
            return
        inner = indent + "\t"
        out.append("[")
        for i, item in enumerate(value):
            out.append(("," if i else "") + "\n" + inner)
            _dump(item, out, inner)
        out.append("\n" + indent + "]")
    else:
        raise TypeError(f"cannot write {type(value).__name__} as JSON")


_GO_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _go_string(s: str) -> str:
    parts = ['"']
    for ch in s:
        code = ord(ch)
        if ch in _GO_ESCAPES:
            parts.append(_GO_ESCAPES[ch])
        elif code < 0x20 or ch in "<>&" or code in (0x2028, 0x2029):
            parts.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:  # a lone surrogate is not UTF-8: Go writes U+FFFD
            parts.append("\ufffd")
        else:
            parts.append(ch)
    parts.append('"')
    return "".join(parts)


def _go_float(f: float) -> str:
    """Go's ``strconv.FormatFloat(f, 'f' or 'e', -1, 64)`` as encoding/json chooses."""
    if math.isnan(f) or math.isinf(f):
        raise ValueError(f"unsupported value: {f!r} is not a JSON number")
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    magnitude = abs(f)
    if magnitude < 1e-6 or magnitude >= 1e21:
        # shortest digits, as repr; Go writes e+21 and e-7 where Python writes e+21 and e-07
        mantissa, _, exponent = repr(f).partition("e")
        digits = exponent.lstrip("+-").lstrip("0")
        if exponent.startswith("-"):
            return f"{mantissa}e-{digits}"
        return f"{mantissa}e+{digits.zfill(2)}"
    text = format(Decimal(repr(f)), "f")
    return text.removesuffix(".0")
