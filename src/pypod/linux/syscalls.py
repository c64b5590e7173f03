"""Thin ctypes wrappers over the system calls the standard library does not offer.

Every wrapper raises :class:`pypod.errors.OSLevelError` (errno kept) naming what it was doing.
This module and its siblings in ``pypod.linux`` are the only code that talks to the kernel.
"""

from __future__ import annotations

import ctypes
import os

from pypod.errors import OSLevelError

#: the C library, for every ctypes call of the package
LIBC = ctypes.CDLL(None, use_errno=True)

# --- namespaces (linux/sched.h) -------------------------------------------------------------
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

#: OCI namespace type -> (clone flag, name of the file under /proc/<pid>/ns)
NAMESPACES: dict[str, tuple[int, str]] = {
    "user": (CLONE_NEWUSER, "user"),
    "mount": (CLONE_NEWNS, "mnt"),
    "pid": (CLONE_NEWPID, "pid"),
    "network": (CLONE_NEWNET, "net"),
    "ipc": (CLONE_NEWIPC, "ipc"),
    "uts": (CLONE_NEWUTS, "uts"),
    "cgroup": (CLONE_NEWCGROUP, "cgroup"),
    "time": (CLONE_NEWTIME, "time"),
}

# --- mount(2) flags (linux/mount.h) ----------------------------------------------------------
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_POSIXACL = 1 << 16
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

# --- prctl(2) --------------------------------------------------------------------------------
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38

# --- openat2(2) ------------------------------------------------------------------------------
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

CLOSE_RANGE_CLOEXEC = 1 << 2
AT_EMPTY_PATH = 0x1000

_SYSCALLS: dict[str, dict[str, int]] = {
    # arch -> name -> number (only the calls glibc 2.36 has no wrapper for)
    "x86_64": {
        "pivot_root": 155,
        "execveat": 322,
        "openat2": 437,
        "close_range": 436,
        "keyctl": 250,
        "bpf": 321,
        "clone3": 435,
    },
    "aarch64": {
        "pivot_root": 41,
        "execveat": 281,
        "openat2": 437,
        "close_range": 436,
        "keyctl": 219,
        "bpf": 280,
        "clone3": 435,
    },
}
_MACHINE = os.uname().machine


def nr(name: str) -> int:
    """The number of system call `name` on this machine (for calls glibc does not wrap)."""
    try:
        return _SYSCALLS[_MACHINE][name]
    except KeyError:
        raise OSLevelError(f"{name}: unknown system call number on {_MACHINE}", errno=38) from None


def _check(ret: int, what: str) -> int:
    if ret < 0:
        raise OSLevelError(what, errno=ctypes.get_errno())
    return ret


def _b(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


def mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None
) -> None:
    ret = LIBC.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data))
    if ret < 0:
        err = ctypes.get_errno()
        shown = f"{source or 'none'} on {target}" + (f" type {fstype}" if fstype else "")
        raise OSLevelError(f"mount {shown} (flags {flags:#x}, data {data!r})", errno=err)


def umount2(target: str, flags: int = 0) -> None:
    _check(LIBC.umount2(_b(target), ctypes.c_int(flags)), f"umount {target}")


def unshare(flags: int) -> None:
    _check(LIBC.unshare(ctypes.c_int(flags)), f"unshare({flags:#x})")


def setns(fd: int, nstype: int = 0) -> None:
    _check(LIBC.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), f"setns({nstype:#x})")


def pivot_root(new_root: str, put_old: str) -> None:
    ret = LIBC.syscall(ctypes.c_long(nr("pivot_root")), _b(new_root), _b(put_old))
    _check(ret, f"pivot_root {new_root}")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(LIBC.sethostname(raw, ctypes.c_size_t(len(raw))), f"sethostname {name!r}")


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(LIBC.setdomainname(raw, ctypes.c_size_t(len(raw))), f"setdomainname {name!r}")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    args = (ctypes.c_ulong(a) for a in (arg2, arg3, arg4, arg5))
    return _check(LIBC.prctl(ctypes.c_int(option), *args), f"prctl({option})")


def personality(persona: int) -> None:
    _check(LIBC.personality(ctypes.c_ulong(persona)), f"personality({persona:#x})")


#: the "unlimited" of an rlimit (rlim_t is unsigned: the OCI spec's 2**64 - 1, as runc takes it)
RLIM_INFINITY = 2**64 - 1


def setrlimit(resource: int, soft: int, hard: int) -> None:
    """setrlimit(2) with unsigned 64-bit limits (RLIM_INFINITY is 2**64 - 1).

    Not `resource.setrlimit`: that module is a shared library to load (~0.15 ms on the path
    of every container's create) and takes signed C longs, so it refuses 2**64 - 1
    (OverflowError).  Raises as it does: ValueError for EINVAL and EPERM, worded as it words
    them, else OSError.
    """
    limits = (ctypes.c_uint64 * 2)(soft, hard)
    if LIBC.prlimit(0, ctypes.c_int(resource), limits, None) == 0:
        return
    err = ctypes.get_errno()
    if err == 22:  # EINVAL
        raise ValueError("current limit exceeds maximum limit")
    if err == 1:  # EPERM
        raise ValueError("not allowed to raise maximum limit")
    raise OSError(err, os.strerror(err))


def getrlimit(resource: int) -> tuple[int, int]:
    """getrlimit(2): (soft, hard), RLIM_INFINITY for unlimited."""
    limits = (ctypes.c_uint64 * 2)()
    if LIBC.prlimit(0, ctypes.c_int(resource), None, limits) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(limits[0]), int(limits[1])


KEYCTL_JOIN_SESSION_KEYRING = 1


def join_session_keyring(name: str) -> None:
    """keyctl(KEYCTL_JOIN_SESSION_KEYRING, name): a new session keyring of this name."""
    ret = LIBC.syscall(
        ctypes.c_long(nr("keyctl")), ctypes.c_int(KEYCTL_JOIN_SESSION_KEYRING), _b(name)
    )
    _check(ret, f"join session keyring {name}")


def set_cloexec_from(first_fd: int) -> None:
    """Mark every fd >= first_fd close-on-exec (close_range with CLOSE_RANGE_CLOEXEC)."""
    ret = LIBC.syscall(
        ctypes.c_long(nr("close_range")),
        ctypes.c_uint(first_fd),
        ctypes.c_uint(0xFFFFFFFF),
        ctypes.c_uint(CLOSE_RANGE_CLOEXEC),
    )
    if ret < 0:  # kernels before 5.11: walk /proc/self/fd
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd >= first_fd:
                try:
                    os.set_inheritable(fd, False)
                except OSError:
                    pass


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): open `path` relative to `dirfd` with RESOLVE_* restrictions."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    ret = LIBC.syscall(
        ctypes.c_long(nr("openat2")),
        ctypes.c_int(dirfd),
        _b(path),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    return _check(ret, f"open {path}")


def execveat(fd: int, argv: list[str], env: list[str]) -> None:
    """execveat(fd, "", argv, envp, AT_EMPTY_PATH); returns only on failure (raises)."""
    c_argv = (ctypes.c_char_p * (len(argv) + 1))(*[os.fsencode(a) for a in argv], None)
    c_env = (ctypes.c_char_p * (len(env) + 1))(*[os.fsencode(e) for e in env], None)
    LIBC.syscall(
        ctypes.c_long(nr("execveat")),
        ctypes.c_int(fd),
        b"",
        c_argv,
        c_env,
        ctypes.c_int(AT_EMPTY_PATH),
    )
    raise OSLevelError(f"exec {argv[0] if argv else ''}", errno=ctypes.get_errno())
