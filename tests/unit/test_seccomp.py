"""Build seccomp filters from OCI profiles and check the BPF they produce (nothing is loaded).

The exported programs are run through a small classic-BPF interpreter, so these tests check
what a process would see (action per syscall number, architecture and arguments) without
privileges.
"""

from __future__ import annotations

import ctypes.util
import errno
import os
import platform
import struct

import pytest

from pypod.errors import InvalidArgument, InvalidState, NotSupported
from pypod.linux import seccomp as sc
from pypod.oci.runtime_spec import LinuxSeccomp, LinuxSeccompArg, LinuxSyscall

pytestmark = [
    pytest.mark.skipif(
        ctypes.util.find_library("seccomp") is None, reason="libseccomp.so.2 is not installed"
    ),
    pytest.mark.skipif(
        platform.machine() != "x86_64", reason="syscall numbers in these tests are x86_64 ones"
    ),
]

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
X32_BIT = 0x40000000
NR = {"read": 0, "write": 1, "close": 3, "kill": 62, "mkdir": 83, "getcwd": 79, "personality": 135}
NR_CLONE3 = 435
ALLOW = sc.SCMP_ACT_ALLOW
KILL_THREAD = sc.SCMP_ACT_KILL_THREAD


def errno_action(code: int) -> int:
    return sc.SCMP_ACT_ERRNO_BASE | code


def run_bpf(prog: bytes, nr: int, arch: int = AUDIT_ARCH_X86_64, args: tuple[int, ...] = ()) -> int:
    """Run a seccomp cBPF program on one struct seccomp_data; return the action."""
    insns: list[tuple[int, int, int, int]] = [
        struct.unpack_from("=HBBI", prog, off) for off in range(0, len(prog), 8)
    ]
    argv = (tuple(args) + (0,) * 6)[:6]
    data = struct.pack("=IIQ6Q", nr & 0xFFFFFFFF, arch, 0, *argv)
    a = x = pc = 0
    mem = [0] * 16
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:  # ld [k]
            a = int(struct.unpack_from("=I", data, k)[0])
        elif code == 0x00:  # ld #k
            a = k
        elif code == 0x60:  # ld M[k]
            a = mem[k]
        elif code == 0x01:  # ldx #k
            x = k
        elif code == 0x61:  # ldx M[k]
            x = mem[k]
        elif code == 0x02:  # st M[k]
            mem[k] = a
        elif code == 0x03:  # stx M[k]
            mem[k] = x
        elif code == 0x54:  # and #k
            a &= k
        elif code == 0x07:  # tax
            x = a
        elif code == 0x87:  # txa
            a = x
        elif code == 0x06:  # ret #k
            return k
        elif code == 0x16:  # ret a
            return a
        elif code == 0x05:  # ja
            pc += k
        elif code & 0x07 == 0x05:  # conditional jumps
            val = x if code & 0x08 else k
            cond = {0x10: a == val, 0x20: a > val, 0x30: a >= val, 0x40: bool(a & val)}[code & 0xF0]
            pc += jt if cond else jf
        else:
            raise AssertionError(f"opcode {code:#x} not handled by the test interpreter")


def profile(*syscalls: LinuxSyscall, **kw: object) -> LinuxSeccomp:
    kw.setdefault("default_action", "SCMP_ACT_ALLOW")
    return LinuxSeccomp(syscalls=tuple(syscalls), **kw)  # type: ignore[arg-type]


def call(*names: str, action: str = "SCMP_ACT_ERRNO", **kw: object) -> LinuxSyscall:
    return LinuxSyscall(names=names, action=action, **kw)  # type: ignore[arg-type]


def bpf(spec: LinuxSeccomp) -> bytes:
    with sc.build_filter(spec) as filt:
        return filt.export_bpf()


def program(spec: LinuxSeccomp) -> bytes:
    with sc.build_filter(spec) as filt:
        return filt.program()


def test_export_is_a_nonempty_program() -> None:
    prog = bpf(profile(call("mkdir", errno_ret=1)))
    assert prog and len(prog) % 8 == 0
    assert run_bpf(prog, NR["mkdir"]) == errno_action(1)
    assert run_bpf(prog, NR["getcwd"]) == ALLOW


def test_different_rules_give_different_programs() -> None:
    a = bpf(profile(call("mkdir", errno_ret=1)))
    b = bpf(profile(call("mkdir", errno_ret=1), call("getcwd", errno_ret=errno.ENOTSUP)))
    c = bpf(profile(call("mkdir", errno_ret=2)))
    assert len({a, b, c}) == 3
    assert run_bpf(b, NR["getcwd"]) == errno_action(errno.ENOTSUP)
    assert run_bpf(c, NR["mkdir"]) == errno_action(2)


def test_errno_and_trace_default_to_eperm() -> None:
    assert sc.action_value("SCMP_ACT_ERRNO", None) == errno_action(errno.EPERM)
    assert sc.action_value("SCMP_ACT_TRACE", None) == 0x7FF00000 | errno.EPERM
    assert sc.action_value("SCMP_ACT_KILL", None) == sc.action_value("SCMP_ACT_KILL_THREAD", 5)
    assert sc.action_value("SCMP_ACT_KILL_PROCESS", None) == 0x80000000
    prog = bpf(profile(call("mkdir")))
    assert run_bpf(prog, NR["mkdir"]) == errno_action(errno.EPERM)


def test_default_errno_ret() -> None:
    spec = profile(
        call("read", "write", action="SCMP_ACT_ALLOW"),
        default_action="SCMP_ACT_ERRNO",
        default_errno_ret=errno.EACCES,
    )
    prog = bpf(spec)
    assert run_bpf(prog, NR["read"]) == ALLOW
    assert run_bpf(prog, NR["mkdir"]) == errno_action(errno.EACCES)


def test_unknown_syscall_is_skipped() -> None:
    with_unknown = bpf(profile(call("mkdir", "no_such_syscall_at_all", errno_ret=1)))
    assert with_unknown == bpf(profile(call("mkdir", errno_ret=1)))


def test_rule_with_default_action_is_skipped() -> None:
    spec = profile(call("mkdir", errno_ret=1), call("getcwd", action="SCMP_ACT_ALLOW"))
    assert bpf(spec) == bpf(profile(call("mkdir", errno_ret=1)))


def test_notify_is_not_supported() -> None:
    with pytest.raises(NotSupported, match="seccomp notify is not supported yet"):
        sc.build_filter(profile(call("mkdir", action="SCMP_ACT_NOTIFY"), listener_path="/x"))
    with pytest.raises(NotSupported, match="seccomp notify is not supported yet"):
        sc.build_filter(profile(default_action="SCMP_ACT_NOTIFY"))


def test_bad_architecture_is_an_error() -> None:
    with pytest.raises(InvalidArgument, match="SCMP_ARCH_BOGUS"):
        sc.build_filter(profile(call("mkdir"), architectures=("SCMP_ARCH_BOGUS",)))
    with pytest.raises(InvalidArgument, match="x86_64"):
        sc.build_filter(profile(call("mkdir"), architectures=("x86_64",)))


def test_bad_action_flag_operator_index() -> None:
    with pytest.raises(InvalidArgument, match="SCMP_ACT_BOGUS"):
        sc.build_filter(profile(call("mkdir", action="SCMP_ACT_BOGUS")))
    with pytest.raises(InvalidArgument, match="SECCOMP_FILTER_FLAG_BOGUS"):
        sc.build_filter(profile(call("mkdir"), flags=("SECCOMP_FILTER_FLAG_BOGUS",)))
    bad_op = LinuxSeccompArg(index=0, value=1, op="SCMP_CMP_BOGUS")
    with pytest.raises(InvalidArgument, match="SCMP_CMP_BOGUS"):
        sc.build_filter(profile(call("kill", args=(bad_op,))))
    bad_index = LinuxSeccompArg(index=6, value=1, op="SCMP_CMP_EQ")
    with pytest.raises(InvalidArgument, match="index 6"):
        sc.build_filter(profile(call("kill", args=(bad_index,))))
    with pytest.raises(InvalidArgument, match="errnoRet"):
        sc.build_filter(profile(call("mkdir", errno_ret=70000)))


def test_flags() -> None:
    with sc.build_filter(profile(call("mkdir"), flags=("SECCOMP_FILTER_FLAG_LOG",))) as f:
        assert f.kernel_flags == 2
    spec = profile(
        call("mkdir"), flags=("SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC")
    )
    with sc.build_filter(spec) as f:
        assert f.kernel_flags == 4  # TSYNC: accepted, ignored (runc)


def test_argument_rule() -> None:
    # personality(2) refused unless it is the 0xffffffff query
    arg = LinuxSeccompArg(index=0, value=0xFFFFFFFF, op="SCMP_CMP_NE")
    prog = bpf(profile(call("personality", args=(arg,))))
    assert run_bpf(prog, NR["personality"], args=(0xFFFFFFFF,)) == ALLOW
    assert run_bpf(prog, NR["personality"], args=(0,)) == errno_action(errno.EPERM)


def test_masked_eq_argument() -> None:
    # value is the mask, valueTwo the value compared after masking (as libseccomp)
    arg = LinuxSeccompArg(index=1, value=0xFF, value_two=9, op="SCMP_CMP_MASKED_EQ")
    prog = bpf(profile(call("kill", args=(arg,))))
    assert run_bpf(prog, NR["kill"], args=(1, 0x109)) == errno_action(errno.EPERM)
    assert run_bpf(prog, NR["kill"], args=(1, 15)) == ALLOW


def test_several_conditions_on_one_argument_become_separate_rules() -> None:
    usr1 = LinuxSeccompArg(index=1, value=10, op="SCMP_CMP_EQ")
    usr2 = LinuxSeccompArg(index=1, value=12, op="SCMP_CMP_EQ")
    prog = bpf(profile(call("kill", args=(usr1, usr2))))
    assert run_bpf(prog, NR["kill"], args=(1, 10)) == errno_action(errno.EPERM)
    assert run_bpf(prog, NR["kill"], args=(1, 12)) == errno_action(errno.EPERM)
    assert run_bpf(prog, NR["kill"], args=(1, 15)) == ALLOW
    # conditions on different arguments stay in one rule: all must match
    pid1 = LinuxSeccompArg(index=0, value=1, op="SCMP_CMP_EQ")
    prog = bpf(profile(call("kill", args=(pid1, usr1))))
    assert run_bpf(prog, NR["kill"], args=(1, 10)) == errno_action(errno.EPERM)
    assert run_bpf(prog, NR["kill"], args=(2, 10)) == ALLOW
    assert run_bpf(prog, NR["kill"], args=(1, 12)) == ALLOW


def test_architectures() -> None:
    spec = profile(call("mkdir", errno_ret=1), architectures=("SCMP_ARCH_X86_64", "SCMP_ARCH_X86"))
    prog = bpf(spec)
    assert run_bpf(prog, NR["mkdir"]) == errno_action(1)
    assert run_bpf(prog, 39, arch=AUDIT_ARCH_I386) == errno_action(1)  # i386 mkdir
    assert run_bpf(prog, NR["mkdir"], arch=AUDIT_ARCH_I386) == ALLOW  # i386 nr 83: symlink
    # an architecture the filter does not know gets libseccomp's bad-arch action (kill)
    assert run_bpf(bpf(profile(call("mkdir"))), 39, arch=AUDIT_ARCH_I386) == KILL_THREAD


def allow_list(*names: str, **kw: object) -> LinuxSeccomp:
    kw.setdefault("default_action", "SCMP_ACT_ERRNO")
    kw.setdefault("architectures", ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"))
    return profile(call(*names, action="SCMP_ACT_ALLOW"), **kw)


def test_enosys_stub_for_syscalls_newer_than_the_profile() -> None:
    prog = program(allow_list("read", "write", "getcwd", "kill"))
    assert run_bpf(prog, NR["read"]) == ALLOW
    assert run_bpf(prog, NR["close"]) == errno_action(errno.EPERM)  # not allowed
    assert run_bpf(prog, NR["getcwd"] - 1) == errno_action(errno.EPERM)  # ftruncate
    assert run_bpf(prog, NR["mkdir"]) == errno_action(errno.ENOSYS)  # getcwd is the largest
    assert run_bpf(prog, NR_CLONE3) == errno_action(errno.ENOSYS)
    # x32: same numbers with bit 30
    assert run_bpf(prog, X32_BIT | NR["read"]) == ALLOW
    assert run_bpf(prog, X32_BIT | NR_CLONE3) == errno_action(errno.ENOSYS)
    # i386: read 3, write 4, getcwd 183, kill 37
    assert run_bpf(prog, 3, arch=AUDIT_ARCH_I386) == ALLOW
    assert run_bpf(prog, 39, arch=AUDIT_ARCH_I386) == errno_action(errno.EPERM)  # mkdir
    assert run_bpf(prog, 184, arch=AUDIT_ARCH_I386) == errno_action(errno.ENOSYS)


def test_enosys_stub_single_x86_64_and_x32() -> None:
    prog = program(allow_list("read", "kill", architectures=("SCMP_ARCH_X86_64",)))
    assert run_bpf(prog, NR_CLONE3) == errno_action(errno.ENOSYS)
    assert run_bpf(prog, NR["mkdir"]) == errno_action(errno.ENOSYS)  # kill (62) is the largest
    assert run_bpf(prog, NR["close"]) == errno_action(errno.EPERM)
    # x32 syscalls are not the stub's business: libseccomp's program decides
    assert run_bpf(prog, X32_BIT | NR_CLONE3) == run_bpf(
        bpf(allow_list("read", "kill", architectures=("SCMP_ARCH_X86_64",))), X32_BIT | NR_CLONE3
    )
    prog = program(allow_list("read", "kill", architectures=("SCMP_ARCH_X32",)))
    assert run_bpf(prog, X32_BIT | NR_CLONE3) == errno_action(errno.ENOSYS)
    assert run_bpf(prog, X32_BIT | NR["read"]) == ALLOW


def test_no_enosys_stub_when_not_needed() -> None:
    # permissive default action, no architectures listed, or default ERRNO(ENOSYS) already
    for spec in (
        profile(call("mkdir"), architectures=("SCMP_ARCH_X86_64",)),
        profile(call("mkdir"), default_action="SCMP_ACT_LOG", architectures=("SCMP_ARCH_X86",)),
        allow_list("read", architectures=()),
        allow_list("read", default_errno_ret=errno.ENOSYS),
    ):
        with sc.build_filter(spec) as filt:
            assert filt.enosys_stub() == b""
            assert filt.program() == filt.export_bpf()
    with sc.build_filter(allow_list("read", default_action="SCMP_ACT_KILL")) as filt:
        assert filt.enosys_stub() != b""


def test_large_profile_uses_binary_tree() -> None:
    numbers = {
        "read": 0, "write": 1, "close": 3, "fstat": 5, "lseek": 8, "mmap": 9, "mprotect": 10,
        "munmap": 11, "brk": 12, "rt_sigaction": 13, "rt_sigprocmask": 14, "ioctl": 16,
        "pread64": 17, "pwrite64": 18, "readv": 19, "writev": 20, "access": 21, "pipe": 22,
        "select": 23, "sched_yield": 24, "mremap": 25, "msync": 26, "mincore": 27,
        "madvise": 28, "dup": 32, "dup2": 33, "pause": 34, "nanosleep": 35, "getitimer": 36,
        "alarm": 37, "setitimer": 38, "getpid": 39, "sendfile": 40, "socket": 41,
        "connect": 42, "accept": 43,
    }  # fmt: skip
    rules = [call(n, action="SCMP_ACT_ALLOW") for n in numbers]
    prog = bpf(profile(*rules, default_action="SCMP_ACT_ERRNO"))
    for nr in range(50):
        want = ALLOW if nr in numbers.values() else errno_action(errno.EPERM)
        assert run_bpf(prog, nr) == want, nr


def test_release_is_idempotent() -> None:
    filt = sc.build_filter(profile(call("mkdir")))
    filt.release()
    filt.release()
    with pytest.raises(InvalidState, match="released"):
        filt.export_bpf()


def test_libseccomp_version() -> None:
    assert sc.version() >= (2, 4, 0)


def test_export_falls_back_to_a_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = allow_list("read", "write", "getcwd")
    with sc.build_filter(spec) as filt:
        through_memfd = filt.export_bpf()

        def refused(name: str, flags: int = 0) -> int:
            raise PermissionError(errno.EPERM, "memfd_create blocked")

        monkeypatch.setattr(os, "memfd_create", refused)
        assert filt.export_bpf() == through_memfd


#: ~70 syscalls in one entry, as podman's default profile lists ~370 in a few entries
_MANY = (
    "read write open close stat fstat lstat poll lseek mmap mprotect munmap brk rt_sigaction "
    "rt_sigprocmask ioctl pread64 pwrite64 readv writev access pipe select sched_yield mremap "
    "msync mincore madvise dup dup2 pause nanosleep getitimer alarm setitimer getpid sendfile "
    "socket connect accept sendto recvfrom sendmsg recvmsg shutdown bind listen getsockname "
    "clone fork vfork execve exit wait4 kill uname fcntl flock fsync getcwd chdir rename mkdir "
    "rmdir link unlink symlink readlink chmod chown umask gettimeofday getuid getgid openat "
    "execveat exit_group"
).split()


def test_a_few_entries_naming_many_syscalls_get_the_binary_tree(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The optimisation threshold counts syscall rules, not entries: one entry naming ~70
    syscalls becomes a binary tree (the kernel then walks a short path per syscall, at every
    call and, for each syscall number, when the filter is loaded), deciding as a list would."""
    spec = profile(
        call(*_MANY, action="SCMP_ACT_ALLOW"),
        call(
            "personality",
            action="SCMP_ACT_ALLOW",
            args=(LinuxSeccompArg(index=0, value=8, op="SCMP_CMP_EQ"),),
        ),
        default_action="SCMP_ACT_ERRNO",
        architectures=("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    )
    tree = program(spec)
    monkeypatch.setattr(sc, "_OPTIMIZE_ABOVE", 10_000)
    listed = program(spec)
    assert tree != listed
    for arch in (AUDIT_ARCH_X86_64, AUDIT_ARCH_I386):
        for nr in [*range(0, 460), *(X32_BIT | n for n in range(0, 460, 7))]:
            for args in ((), (8,), (9,)):
                assert run_bpf(tree, nr, arch, args) == run_bpf(listed, nr, arch, args), (nr, args)
    assert run_bpf(tree, NR["read"]) == ALLOW and run_bpf(tree, NR["kill"]) == ALLOW
    assert run_bpf(tree, NR["personality"], args=(8,)) == ALLOW
    assert run_bpf(tree, NR["personality"], args=(9,)) == errno_action(errno.EPERM)
