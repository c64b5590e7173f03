"""Capabilities and seccomp applied for real, each in a forked child that reports through a pipe.

The child never returns into pytest: it writes one JSON line and leaves with os._exit.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import platform
import signal
import tempfile
from collections.abc import Callable
from typing import Any

import pytest

from pypod.errors import OSLevelError
from pypod.linux import capabilities as caps
from pypod.linux import seccomp as sc
from pypod.oci.runtime_spec import LinuxCapabilities, LinuxSeccomp, LinuxSeccompArg, LinuxSyscall

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (capset, seccomp without NNP)"),
]
needs_libseccomp = pytest.mark.skipif(
    ctypes.util.find_library("seccomp") is None, reason="libseccomp.so.2 is not installed"
)
needs_x86_64 = pytest.mark.skipif(
    platform.machine() != "x86_64", reason="the allow list and syscall numbers are x86_64 ones"
)

NET_BIND = "CAP_NET_BIND_SERVICE"
NET_BIND_BIT = 1 << 10
NR_CLONE3 = 435


def in_child(body: Callable[[], Any]) -> tuple[Any, int]:
    """Run body() in a forked child; return (what it returned, the raw wait status)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 0
        try:
            os.close(r)
            try:
                out: Any = {"ok": body()}
            except BaseException as e:  # reported to the parent
                out = {"error": f"{type(e).__name__}: {e}", "errno": getattr(e, "errno", None)}
                code = 1
            os.write(w, json.dumps(out).encode() + b"\n")
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    data = b"".join(chunks)
    return (json.loads(data) if data else None), status


def ok(body: Callable[[], Any]) -> Any:
    out, status = in_child(body)
    assert out is not None and "ok" in out, (out, status)
    return out["ok"]


def mask(*names: str) -> int:
    return caps.to_mask(names)


def oserror_errno(fn: Callable[[], object]) -> int:
    try:
        fn()
    except OSError as e:
        return e.errno or -1
    return 0


# --- capabilities ----------------------------------------------------------------------------


def test_apply_capability_sets() -> None:
    want = ("CAP_CHOWN", "CAP_KILL", NET_BIND, "CAP_SETPCAP")
    spec = LinuxCapabilities(
        bounding=want, effective=want, permitted=want, inheritable=(NET_BIND,), ambient=(NET_BIND,)
    )

    def body() -> dict[str, int]:
        caps.apply(spec)
        return caps.read_status()

    status = ok(body)
    assert status["CapEff"] == mask(*want)
    assert status["CapPrm"] == mask(*want)
    assert status["CapBnd"] == mask(*want)
    assert status["CapInh"] == NET_BIND_BIT
    assert status["CapAmb"] == NET_BIND_BIT
    assert status["NoNewPrivs"] == 0


def test_no_capabilities_object_clears_everything() -> None:
    def body() -> dict[str, int]:
        caps.apply(None)
        return caps.read_status()

    status = ok(body)
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert status[key] == 0, key


def test_ambient_not_in_inheritable_is_ignored_like_runc() -> None:
    spec = LinuxCapabilities(
        bounding=(NET_BIND, "CAP_NET_ADMIN"),
        effective=(NET_BIND,),
        permitted=(NET_BIND, "CAP_NET_ADMIN"),
        inheritable=(NET_BIND,),
        ambient=(NET_BIND, "CAP_NET_ADMIN"),
    )

    def body() -> dict[str, int]:
        caps.apply(spec)
        return caps.read_status()

    assert ok(body)["CapAmb"] == NET_BIND_BIT


def test_permitted_capability_not_held_fails() -> None:
    spec = LinuxCapabilities(
        bounding=tuple(caps.CAP_NAMES), permitted=("CAP_KILL",), effective=("CAP_KILL",)
    )
    kill = mask("CAP_KILL")

    def body() -> None:
        now = caps.capget()
        caps.capset(now.effective & ~kill, now.permitted & ~kill, now.inheritable)
        caps.apply(spec)

    out, _ = in_child(body)
    assert out is not None and out["errno"] == errno.EPERM, out
    assert "CAP_KILL" in out["error"]


def test_setuid_with_keepcaps_and_ambient_survives_exec() -> None:
    only = (NET_BIND,)
    spec = LinuxCapabilities(
        bounding=only, effective=only, permitted=only, inheritable=only, ambient=only
    )
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            caps.set_keepcaps(True)
            os.setgroups([])
            os.setresgid(1000, 1000, 1000)
            os.setresuid(1000, 1000, 1000)
            caps.set_keepcaps(False)
            caps.apply(spec)
            os.dup2(w, 1)
            os.execv("/bin/cat", ["cat", "/proc/self/status"])
        finally:
            os._exit(127)
    os.close(w)
    with os.fdopen(r, encoding="utf-8") as f:
        text = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, text
    got = caps.parse_status(text)
    assert "Uid:\t1000\t1000\t1000\t1000" in text
    assert got["CapAmb"] == NET_BIND_BIT
    assert got["CapEff"] == NET_BIND_BIT
    assert got["CapPrm"] == NET_BIND_BIT
    assert got["CapInh"] == NET_BIND_BIT
    assert got["CapBnd"] == NET_BIND_BIT
    assert got["NoNewPrivs"] == 0


def test_no_new_privs() -> None:
    def body() -> int:
        caps.set_no_new_privs()
        return caps.read_status()["NoNewPrivs"]

    assert ok(body) == 1


# --- seccomp ---------------------------------------------------------------------------------


def allow(*names: str) -> LinuxSyscall:
    return LinuxSyscall(names=names, action="SCMP_ACT_ALLOW")


@needs_libseccomp
def test_errno_rules_and_no_nnp() -> None:
    spec = LinuxSeccomp(
        default_action="SCMP_ACT_ALLOW",
        syscalls=(
            LinuxSyscall(names=("mkdir", "mkdirat"), action="SCMP_ACT_ERRNO", errno_ret=1),
            LinuxSyscall(names=("getcwd",), action="SCMP_ACT_ERRNO", errno_ret=errno.ENOTSUP),
        ),
    )
    with tempfile.TemporaryDirectory() as tmp:

        def body() -> dict[str, int]:
            sc.load(spec)
            result = {
                "mkdir": oserror_errno(lambda: os.mkdir(os.path.join(tmp, "d"))),
                "getcwd": oserror_errno(os.getcwd),
                "listdir": oserror_errno(lambda: os.listdir(tmp)),
            }
            return {**result, **caps.read_status()}

        got = ok(body)
        assert not os.path.exists(os.path.join(tmp, "d"))
    assert got["mkdir"] == errno.EPERM
    assert got["getcwd"] == errno.ENOTSUP
    assert got["listdir"] == 0
    assert got["Seccomp"] == 2
    assert got["NoNewPrivs"] == 0  # the runtime did not ask for it


@needs_libseccomp
def test_argument_rules() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    spec = LinuxSeccomp(
        default_action="SCMP_ACT_ALLOW",
        syscalls=(
            # personality(2) only for the 0xffffffff query
            LinuxSyscall(
                names=("personality",),
                action="SCMP_ACT_ERRNO",
                args=(LinuxSeccompArg(index=0, value=0xFFFFFFFF, op="SCMP_CMP_NE"),),
            ),
            # kill(2) with SIGUSR1 or SIGUSR2: two conditions on one argument
            LinuxSyscall(
                names=("kill",),
                action="SCMP_ACT_ERRNO",
                errno_ret=errno.EACCES,
                args=(
                    LinuxSeccompArg(index=1, value=signal.SIGUSR1, op="SCMP_CMP_EQ"),
                    LinuxSeccompArg(index=1, value=signal.SIGUSR2, op="SCMP_CMP_EQ"),
                ),
            ),
        ),
    )

    def personality(persona: int) -> int:
        ret = libc.personality(ctypes.c_ulong(persona))
        return ctypes.get_errno() if ret == -1 else 0

    def body() -> dict[str, int]:
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        sc.load(spec)
        me = os.getpid()
        return {
            "query": personality(0xFFFFFFFF),
            "set": personality(0),
            "usr1": oserror_errno(lambda: os.kill(me, signal.SIGUSR1)),
            "usr2": oserror_errno(lambda: os.kill(me, signal.SIGUSR2)),
            "hup": oserror_errno(lambda: os.kill(me, signal.SIGHUP)),
            "zero": oserror_errno(lambda: os.kill(me, 0)),
        }

    got = ok(body)
    assert got == {"query": 0, "set": errno.EPERM, "usr1": 13, "usr2": 13, "hup": 0, "zero": 0}


# what CPython and glibc need to run the test body after the filter is in place
PYTHON_NEEDS = (
    "read", "write", "close", "openat", "fstat", "newfstatat", "lseek", "mmap", "munmap",
    "mprotect", "mremap", "brk", "madvise", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
    "sigaltstack", "ioctl", "fcntl", "pread64", "getdents64", "getpid", "gettid", "getcwd",
    "getuid", "geteuid", "getgid", "getegid", "futex", "exit", "exit_group", "getrandom",
    "clock_gettime", "gettimeofday", "readlink", "set_robust_list", "prlimit64", "dup", "dup2",
    "statx", "uname", "sched_getaffinity", "kill", "tgkill",
)  # fmt: skip


@needs_libseccomp
@needs_x86_64
def test_default_errno_with_allow_list_and_enosys_for_newer_syscalls() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    spec = LinuxSeccomp(
        default_action="SCMP_ACT_ERRNO",
        default_errno_ret=errno.EPERM,
        architectures=("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
        syscalls=(allow(*PYTHON_NEEDS),),
    )

    def raw_syscall(nr: int) -> int:
        ret = libc.syscall(ctypes.c_long(nr), 0, 0, 0, 0, 0)
        return ctypes.get_errno() if ret == -1 else 0

    with tempfile.TemporaryDirectory() as tmp:

        def body() -> dict[str, Any]:
            sc.load(spec)
            return {
                "cwd": os.getcwd(),
                "mkdir": oserror_errno(lambda: os.mkdir(os.path.join(tmp, "d"))),
                "chdir": oserror_errno(lambda: os.chdir(tmp)),
                "clone3": raw_syscall(NR_CLONE3),
                "status": caps.read_status(),
            }

        got = ok(body)
    assert got["cwd"] == os.getcwd()
    assert got["mkdir"] == errno.EPERM
    assert got["chdir"] == errno.EPERM
    assert got["clone3"] == errno.ENOSYS  # newer than anything in the profile: runc's stub
    assert got["status"]["Seccomp"] == 2
    assert got["status"]["NoNewPrivs"] == 0


@needs_libseccomp
def test_kill_process_action() -> None:
    spec = LinuxSeccomp(
        default_action="SCMP_ACT_ALLOW",
        syscalls=(LinuxSyscall(names=("mkdir", "mkdirat"), action="SCMP_ACT_KILL_PROCESS"),),
    )
    with tempfile.TemporaryDirectory() as tmp:

        def body() -> None:
            sc.load(spec)
            os.mkdir(os.path.join(tmp, "d"))

        out, status = in_child(body)
    assert out is None
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS


@needs_libseccomp
def test_log_flag_loads_through_seccomp_syscall() -> None:
    spec = LinuxSeccomp(
        default_action="SCMP_ACT_ALLOW",
        flags=("SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"),
        syscalls=(LinuxSyscall(names=("getcwd",), action="SCMP_ACT_ERRNO", errno_ret=5),),
    )

    def body() -> dict[str, int]:
        sc.load(spec)
        return {"getcwd": oserror_errno(os.getcwd), **caps.read_status()}

    got = ok(body)
    assert got["getcwd"] == errno.EIO
    assert got["Seccomp"] == 2 and got["NoNewPrivs"] == 0


@needs_libseccomp
def test_load_without_cap_sys_admin_nor_nnp_is_refused() -> None:
    spec = LinuxSeccomp(default_action="SCMP_ACT_ALLOW", syscalls=(allow("read"),))

    def body() -> None:
        caps.capset(0, 0, 0)
        sc.load(spec)

    out, _ = in_child(body)
    assert out is not None and out["errno"] == errno.EACCES, out
    assert "CAP_SYS_ADMIN" in out["error"]

    def with_nnp() -> int:
        caps.capset(0, 0, 0)
        caps.set_no_new_privs()
        sc.load(spec)
        return caps.read_status()["Seccomp"]

    assert ok(with_nnp) == 2


def test_oslevel_error_keeps_errno() -> None:
    def body() -> None:
        caps.capset(0, 0, 0)
        caps.drop_bounding(0)

    out, _ = in_child(body)
    assert out is not None and out["errno"] == errno.EPERM, out
    assert "CAP_SETPCAP" in out["error"]
    assert issubclass(OSLevelError, Exception)
