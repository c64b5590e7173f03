"""OCI seccomp through libseccomp (ctypes; the library is loaded on first use).

:func:`build_filter` turns ``pypod.oci.runtime_spec.LinuxSeccomp`` into a libseccomp filter
context; :meth:`Filter.load` installs it in the calling process.  The semantics follow runc's
``libcontainer/seccomp`` (with libseccomp-golang) and ``seccomp/patchbpf``:

* ``SCMP_ACT_KILL`` is ``KILL_THREAD``; ``SCMP_ACT_ERRNO`` and ``SCMP_ACT_TRACE`` take
  ``errnoRet`` (``defaultErrnoRet`` for the default action) and default to ``EPERM``;
* extra architectures are added to the native one (already present: fine);
* flags ``SECCOMP_FILTER_FLAG_LOG`` and ``SECCOMP_FILTER_FLAG_SPEC_ALLOW`` are honoured,
  ``SECCOMP_FILTER_FLAG_TSYNC`` is accepted and ignored (runc does the same), others are refused;
* the filter never sets no_new_privs by itself (``SCMP_FLTATR_CTL_NNP`` is 0): the runtime
  decides;
* a syscall name libseccomp does not know is skipped (debug log); a rule whose action is the
  default action is skipped; several conditions on one argument become one rule each;
* more than 32 syscall rules turn on libseccomp's binary-tree optimisation;
* unless the default action is permissive (allow, log, trace), a stub is put in front of
  libseccomp's program so that system calls newer than any the profile names (per architecture
  listed in the profile) fail with ``ENOSYS`` instead of the default action; this is what lets
  glibc fall back from ``clone3`` and friends.  The program is installed with seccomp(2) (or
  prctl(2) without flags), as runc does.

:meth:`Filter.compile` gives the finished :class:`Program` (plain bytes: it can be kept, see
``seccomp_cache``); :meth:`Program.load` installs it without libseccomp.  Loading a filter
without no_new_privs needs CAP_SYS_ADMIN; the caller orders that.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import struct

from pypod.errors import InvalidArgument, InvalidState, NotSupported, OSLevelError
from pypod.linux import syscalls
from pypod.log import get_logger
from pypod.record import record

TYPE_CHECKING = False

log = get_logger(__name__)

# --- libseccomp constants (seccomp.h) --------------------------------------------------------
SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_KILL_THREAD = 0x00000000
SCMP_ACT_TRAP = 0x00030000
SCMP_ACT_NOTIFY = 0x7FC00000
SCMP_ACT_ERRNO_BASE = 0x00050000
SCMP_ACT_TRACE_BASE = 0x7FF00000
SCMP_ACT_LOG = 0x7FFC0000
SCMP_ACT_ALLOW = 0x7FFF0000

SCMP_FLTATR_CTL_NNP = 3
SCMP_FLTATR_CTL_TSYNC = 4
SCMP_FLTATR_CTL_LOG = 6
SCMP_FLTATR_CTL_SSB = 7
SCMP_FLTATR_CTL_OPTIMIZE = 8

#: OCI operator -> enum scmp_compare
OPERATORS: dict[str, int] = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

#: OCI action -> base value (ERRNO and TRACE carry errnoRet in the low 16 bits)
ACTIONS: dict[str, int] = {
    "SCMP_ACT_KILL": SCMP_ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": SCMP_ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": SCMP_ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": SCMP_ACT_TRAP,
    "SCMP_ACT_ERRNO": SCMP_ACT_ERRNO_BASE,
    "SCMP_ACT_TRACE": SCMP_ACT_TRACE_BASE,
    "SCMP_ACT_ALLOW": SCMP_ACT_ALLOW,
    "SCMP_ACT_LOG": SCMP_ACT_LOG,
    "SCMP_ACT_NOTIFY": SCMP_ACT_NOTIFY,
}

# OCI filter flag -> libseccomp attribute (None: accepted, ignored) and the seccomp(2) flag.
SECCOMP_FILTER_FLAG_TSYNC = 1
SECCOMP_FILTER_FLAG_LOG = 2
SECCOMP_FILTER_FLAG_SPEC_ALLOW = 4
FLAGS: dict[str, tuple[int | None, int]] = {
    "SECCOMP_FILTER_FLAG_TSYNC": (None, 0),
    "SECCOMP_FILTER_FLAG_LOG": (SCMP_FLTATR_CTL_LOG, SECCOMP_FILTER_FLAG_LOG),
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": (SCMP_FLTATR_CTL_SSB, SECCOMP_FILTER_FLAG_SPEC_ALLOW),
}

_SYSCALL_MAX_ARGS = 6
_NR_SCMP_ERROR = -1
_OPTIMIZE_ABOVE = 32  # rules; as runc (libseccomp <= 2.5.4 misbehaves with 0 rules)

# kernel side (linux/seccomp.h, linux/filter.h)
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_MODE_FILTER = 2
_PR_SET_SECCOMP = 22
_BPF_MAXINSNS = 4096
_X32_SYSCALL_BIT = 0x40000000
_SCMP_ARCH_X32 = 0x4000003E
_AUDIT_ARCH_X86_64 = 0xC000003E
_SCMP_ARCH_S390 = 0x00000016
_SCMP_ARCH_S390X = 0x80000016
_RET_ENOSYS = SCMP_ACT_ERRNO_BASE | _errno.ENOSYS
_PERMISSIVE = (SCMP_ACT_ALLOW, SCMP_ACT_LOG)  # and TRACE, tested by mask

# classic BPF opcodes
_LD_W_ABS = 0x20
_JA = 0x05
_JEQ_K = 0x15
_JGT_K = 0x25
_JSET_K = 0x45
_RET_K = 0x06
_INSN = struct.Struct("=HBBI")


# --- what we read from pypod.oci.runtime_spec (its dataclasses fit these protocols) ------

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Protocol

    class SeccompArgLike(Protocol):
        @property
        def index(self) -> int: ...
        @property
        def value(self) -> int: ...
        @property
        def value_two(self) -> int: ...
        @property
        def op(self) -> str: ...

    class SyscallLike(Protocol):
        @property
        def names(self) -> Sequence[str]: ...
        @property
        def action(self) -> str: ...
        @property
        def errno_ret(self) -> int | None: ...
        @property
        def args(self) -> Sequence[SeccompArgLike]: ...

    class LinuxSeccompLike(Protocol):
        """What :func:`build_filter` reads from ``pypod.oci.runtime_spec.LinuxSeccomp``."""

        @property
        def default_action(self) -> str: ...
        @property
        def default_errno_ret(self) -> int | None: ...
        @property
        def architectures(self) -> Sequence[str]: ...
        @property
        def flags(self) -> Sequence[str]: ...
        @property
        def listener_path(self) -> str | None: ...
        @property
        def syscalls(self) -> Sequence[SyscallLike]: ...


# --- libseccomp through ctypes ---------------------------------------------------------------


class _ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp"""

    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


def _libseccomp() -> ctypes.CDLL:
    """Open libseccomp.so.2 and declare the functions this module calls."""
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        raise NotSupported(
            "seccomp: libseccomp.so.2 not found: install libseccomp2 (2.5 or later)"
        ) from None
    vp, u32, cint, uint, cp = (
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_char_p,
    )
    for name, restype, argtypes in (
        ("seccomp_init", vp, [u32]),
        ("seccomp_release", None, [vp]),
        ("seccomp_arch_resolve_name", u32, [cp]),
        ("seccomp_arch_native", u32, []),
        ("seccomp_arch_add", cint, [vp, u32]),
        ("seccomp_attr_set", cint, [vp, cint, u32]),
        ("seccomp_syscall_resolve_name", cint, [cp]),
        ("seccomp_syscall_resolve_name_arch", cint, [u32, cp]),
        ("seccomp_rule_add_array", cint, [vp, u32, cint, uint, ctypes.POINTER(_ArgCmp)]),
        ("seccomp_export_bpf", cint, [vp, cint]),
        ("seccomp_api_get", uint, []),
        ("seccomp_version", ctypes.POINTER(_Version), []),
    ):
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


def version() -> tuple[int, int, int]:
    """The version of the libseccomp in use."""
    v = _libseccomp().seccomp_version().contents
    return (v.major, v.minor, v.micro)


class _DlInfo(ctypes.Structure):
    _fields_ = [
        ("dli_fname", ctypes.c_char_p),
        ("dli_fbase", ctypes.c_void_p),
        ("dli_sname", ctypes.c_char_p),
        ("dli_saddr", ctypes.c_void_p),
    ]


def library() -> tuple[tuple[int, int, int], int, str]:
    """The libseccomp in use: its version, its API level (what it found the kernel can do:
    seccomp_api_get) and the file it was loaded from ("" if unknown)."""
    lib = _libseccomp()
    v = lib.seccomp_version().contents
    info = _DlInfo()
    found = syscalls.LIBC.dladdr(
        ctypes.cast(lib.seccomp_version, ctypes.c_void_p), ctypes.byref(info)
    )
    path = os.fsdecode(info.dli_fname) if found and info.dli_fname else ""
    return (v.major, v.minor, v.micro), int(lib.seccomp_api_get()), path


# --- OCI names -> libseccomp values ----------------------------------------------------------


def action_value(action: str, errno_ret: int | None) -> int:
    """The libseccomp action for an OCI action name (and errnoRet, for ERRNO and TRACE)."""
    base = ACTIONS.get(action)
    if base is None:
        raise InvalidArgument(
            f"seccomp: invalid action {action!r}: use one of {', '.join(sorted(ACTIONS))}"
        )
    if base == SCMP_ACT_NOTIFY:
        raise NotSupported(
            "seccomp notify is not supported yet: SCMP_ACT_NOTIFY (and listenerPath) cannot be "
            "used with pypod-runtime; use runc or crun for seccomp agents"
        )
    if base in (SCMP_ACT_ERRNO_BASE, SCMP_ACT_TRACE_BASE):
        code = _errno.EPERM if errno_ret is None else errno_ret
        if not 0 <= code <= 0xFFFF:
            raise InvalidArgument(f"seccomp: errnoRet {code} of {action} is out of range 0-65535")
        return base | code
    return base


def arch_token(lib: ctypes.CDLL, name: str) -> int:
    """libseccomp's token for an OCI architecture name (SCMP_ARCH_X86_64 ...)."""
    if not name.startswith("SCMP_ARCH_"):
        raise InvalidArgument(f"seccomp: invalid architecture {name!r}: use e.g. SCMP_ARCH_X86_64")
    token = int(lib.seccomp_arch_resolve_name(name[len("SCMP_ARCH_") :].lower().encode()))
    if token == 0:
        major, minor, micro = version()
        raise InvalidArgument(
            f"seccomp: architecture {name} is not known to libseccomp {major}.{minor}.{micro}"
        )
    return token


def _is_permissive(act: int) -> bool:
    # runc (patchbpf isAllowAction): allow, log and trace get no -ENOSYS stub
    return act in _PERMISSIVE or act & 0xFFFF0000 == SCMP_ACT_TRACE_BASE


# --- the filter ------------------------------------------------------------------------------


class Filter:
    """A libseccomp filter context built from an OCI profile; release it (or use ``with``)."""

    def __init__(
        self, lib: ctypes.CDLL, ctx: int, *, default_action: int, kernel_flags: int
    ) -> None:
        self._lib = lib
        self._ctx: int | None = ctx
        self.default_action = default_action
        #: seccomp(2) flags the profile asked for (SECCOMP_FILTER_FLAG_LOG, _SPEC_ALLOW)
        self.kernel_flags = kernel_flags
        #: audit arch -> {libseccomp arch token: largest syscall number the profile names}
        self.last_syscalls: dict[int, dict[int, int]] = {}
        #: warnings logged while building (a cached program logs them again when used)
        self.warnings: list[str] = []

    # context handling
    def __enter__(self) -> Filter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()

    def release(self) -> None:
        """seccomp_release; the object is unusable afterwards."""
        ctx, self._ctx = getattr(self, "_ctx", None), None
        if ctx is not None:
            self._lib.seccomp_release(ctx)

    @property
    def ctx(self) -> int:
        if self._ctx is None:
            raise InvalidState("seccomp: filter already released")
        return self._ctx

    # programs
    def export_bpf(self) -> bytes:
        """libseccomp's BPF program for this filter (seccomp_export_bpf), host byte order."""
        ctx = self.ctx
        try:
            fd = os.memfd_create("pypod-seccomp-bpf", os.MFD_CLOEXEC)
        except OSError:  # memfd_create refused (an outer seccomp profile): use a pipe
            return self._export_through_pipe(ctx)
        try:
            _check(self._lib.seccomp_export_bpf(ctx, fd), "export BPF program")
            size = os.lseek(fd, 0, os.SEEK_END)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)

    def _export_through_pipe(self, ctx: int) -> bytes:
        # The write end is non-blocking so that a program larger than the pipe buffer fails
        # (EAGAIN) instead of hanging; the kernel takes at most 32 KiB of BPF anyway.
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            os.set_blocking(w, False)
            _check(self._lib.seccomp_export_bpf(ctx, w), "export BPF program (pipe)")
            os.close(w)
            w = -1
            chunks = []
            while chunk := os.read(r, 65536):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)

    def enosys_stub(self) -> bytes:
        """The -ENOSYS stub runc's patchbpf puts in front of libseccomp's program (may be
        empty: permissive default action, default ERRNO(ENOSYS), or no architectures listed)."""
        if _is_permissive(self.default_action) or self.default_action == _RET_ENOSYS:
            return b""
        return _enosys_stub(self.last_syscalls)

    def program(self) -> bytes:
        """The program :meth:`load` installs: the -ENOSYS stub then libseccomp's program."""
        return self.enosys_stub() + self.export_bpf()

    def compile(self) -> Program:
        """The finished program, checked against the kernel's size limit."""
        kernel_flags = self.kernel_flags
        nr = int(self._lib.seccomp_syscall_resolve_name(b"seccomp")) if kernel_flags else -1
        prog = Program(code=self.program(), kernel_flags=kernel_flags, syscall_nr=nr)
        prog.check()
        return prog

    def load(self) -> None:
        """Install the filter in the calling process (without setting no_new_privs).

        Needs CAP_SYS_ADMIN unless no_new_privs is already set.
        """
        self.compile().load()


@record
class Program:
    """A compiled seccomp filter: the -ENOSYS stub then libseccomp's program (host order).

    Plain data: it is built in the runtime (or read from its cache) and installed in the
    container's init, which needs neither libseccomp nor any import for that.
    """

    code: bytes
    #: seccomp(2) flags the profile asked for (SECCOMP_FILTER_FLAG_LOG, _SPEC_ALLOW); with none
    #: the program is installed with prctl(2), as runc does
    kernel_flags: int = 0
    #: the number of seccomp(2) on this architecture (needed when kernel_flags is set)
    syscall_nr: int = -1

    @property
    def instructions(self) -> int:
        return len(self.code) // _INSN.size

    def check(self) -> None:
        """Refuse what the kernel would: a program too long, or not made of instructions."""
        count = self.instructions
        if not self.code or len(self.code) % _INSN.size:
            raise InvalidArgument(
                f"seccomp: a BPF program of {len(self.code)} bytes is not a sequence of "
                f"{_INSN.size}-byte instructions"
            )
        if count > _BPF_MAXINSNS:
            raise InvalidArgument(
                f"seccomp: the filter has {count} BPF instructions, the kernel takes at most "
                f"{_BPF_MAXINSNS}: simplify the profile"
            )
        if self.kernel_flags and self.syscall_nr < 0:
            raise InvalidArgument("seccomp: the number of the seccomp system call is unknown")

    def load(self) -> None:
        """Install the program in the calling process (without setting no_new_privs).

        Needs CAP_SYS_ADMIN unless no_new_privs is already set.  Imports nothing.
        """
        self.check()
        count = self.instructions
        buf = ctypes.create_string_buffer(self.code, len(self.code))
        fprog = _SockFprog(count, ctypes.addressof(buf))
        libc = syscalls.LIBC
        if self.kernel_flags == 0:
            ret = libc.prctl(
                ctypes.c_int(_PR_SET_SECCOMP),
                ctypes.c_ulong(_SECCOMP_MODE_FILTER),
                ctypes.byref(fprog),
                ctypes.c_ulong(0),
                ctypes.c_ulong(0),
            )
        else:
            ret = libc.syscall(
                ctypes.c_long(self.syscall_nr),
                ctypes.c_uint(_SECCOMP_SET_MODE_FILTER),
                ctypes.c_uint(self.kernel_flags),
                ctypes.byref(fprog),
            )
        if ret < 0:
            err = ctypes.get_errno()
            hint = ""
            if err == _errno.EACCES:
                hint = " (needs CAP_SYS_ADMIN, or no_new_privs set first)"
            raise OSLevelError(
                f"seccomp: load filter ({count} instructions, flags {self.kernel_flags:#x}){hint}",
                errno=err,
            )


def _check(rc: int, what: str) -> None:
    if rc < 0:
        raise OSLevelError(f"seccomp: {what}", errno=-rc)


def build_filter(seccomp: LinuxSeccompLike) -> Filter:
    """Build a libseccomp filter from an OCI ``linux.seccomp`` object (nothing is loaded)."""
    default = action_value(seccomp.default_action, seccomp.default_errno_ret)
    rules = [(call, action_value(call.action, call.errno_ret)) for call in seccomp.syscalls]
    kernel_flags = 0
    attrs: list[tuple[str, int]] = []
    for flag in seccomp.flags:
        if flag not in FLAGS:
            raise InvalidArgument(
                f"seccomp: flag {flag} is not known to pypod: use one of {', '.join(FLAGS)}"
            )
        attr, kflag = FLAGS[flag]
        if attr is None:
            log.debug("seccomp: flag %s accepted and ignored, as runc does", flag)
            continue
        attrs.append((flag, attr))
        kernel_flags |= kflag

    lib = _libseccomp()
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise OSLevelError(
            f"seccomp: create filter (default action {seccomp.default_action})",
            errno=ctypes.get_errno() or _errno.EINVAL,
        )
    filt = Filter(lib, ctx, default_action=default, kernel_flags=kernel_flags)
    try:
        tokens = []
        for arch in seccomp.architectures:
            token = arch_token(lib, arch)
            rc = lib.seccomp_arch_add(ctx, token)
            if rc != -_errno.EEXIST:
                _check(rc, f"add architecture {arch}")
            tokens.append(token)
        for flag, attr in attrs:
            _check(lib.seccomp_attr_set(ctx, attr, 1), f"set flag {flag}")
        # counted in rules, not entries: podman's default profile is 22 entries naming ~370
        # syscalls; as one linear list of comparisons the kernel walks it for every syscall
        # (and, at load, for every syscall number of every architecture: ~1 ms per container)
        if _rule_count(rules, default) > _OPTIMIZE_ABOVE:
            rc = lib.seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2)
            if rc < 0:
                log.debug("seccomp: binary tree optimisation not available: %s", os.strerror(-rc))
        _check(lib.seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0), "clear the no_new_privs bit")
        for call, act in rules:
            _add_rules(lib, ctx, call, act, default)
        filt.last_syscalls = _last_syscalls(lib, tokens, seccomp.syscalls, filt.warnings)
    except BaseException:
        filt.release()
        raise
    return filt


def _rule_count(rules: Sequence[tuple[SyscallLike, int]], default: int) -> int:
    """How many libseccomp rules the profile's entries become (one per syscall name)."""
    return sum(len(call.names) for call, act in rules if act != default)


def load(seccomp: LinuxSeccompLike) -> None:
    """Build the filter for an OCI ``linux.seccomp`` object and install it."""
    with build_filter(seccomp) as filt:
        filt.load()


def _add_rules(lib: ctypes.CDLL, ctx: int, call: SyscallLike, act: int, default: int) -> None:
    if act == default:
        return  # redundant, and libseccomp refuses it
    conds: list[tuple[int, int, int, int]] = []
    per_index = [0] * _SYSCALL_MAX_ARGS
    for arg in call.args:
        if not 0 <= arg.index < _SYSCALL_MAX_ARGS:
            raise InvalidArgument(
                f"seccomp: argument index {arg.index} of {'/'.join(call.names)} is out of "
                f"range 0-{_SYSCALL_MAX_ARGS - 1}"
            )
        op = OPERATORS.get(arg.op)
        if op is None:
            raise InvalidArgument(
                f"seccomp: invalid operator {arg.op!r} for {'/'.join(call.names)}: use one of "
                f"{', '.join(OPERATORS)}"
            )
        per_index[arg.index] += 1
        mask64 = 0xFFFFFFFFFFFFFFFF
        conds.append((arg.index, op, arg.value & mask64, arg.value_two & mask64))
    # libseccomp refuses two conditions on one argument in a rule: one rule per condition then
    groups = [[c] for c in conds] if max(per_index) > 1 else [conds]
    for name in call.names:
        if not name:
            raise InvalidArgument("seccomp: an empty string is not a valid syscall name")
        nr = int(lib.seccomp_syscall_resolve_name(name.encode()))
        if nr == _NR_SCMP_ERROR:
            log.debug("seccomp: unknown syscall %r ignored", name)
            continue
        for group in groups:
            array = (_ArgCmp * max(len(group), 1))(*[_ArgCmp(*c) for c in group])
            rc = lib.seccomp_rule_add_array(ctx, act, nr, len(group), array)
            if rc < 0:
                raise OSLevelError(
                    f"seccomp: add rule for syscall {name} (action {call.action}"
                    + (f", {len(group)} argument conditions" if group else "")
                    + ")",
                    errno=-rc,
                )


# --- the -ENOSYS stub (runc libcontainer/seccomp/patchbpf) -----------------------------------


def _audit_arch(token: int) -> int:
    # libseccomp's arch tokens are the kernel's AUDIT_ARCH_* values, except the x32 one
    return _AUDIT_ARCH_X86_64 if token == _SCMP_ARCH_X32 else token


def _last_syscalls(
    lib: ctypes.CDLL,
    tokens: Sequence[int],
    syscalls: Sequence[SyscallLike],
    warnings: list[str],
) -> dict[int, dict[int, int]]:
    """Per architecture listed in the profile, the largest syscall number the profile names."""
    out: dict[int, dict[int, int]] = {}
    names = {name.encode() for call in syscalls for name in call.names if name}
    for token in tokens:
        largest = 0
        for name in names:
            nr = int(lib.seccomp_syscall_resolve_name_arch(token, name))
            largest = max(largest, nr)  # negative: unknown or pseudo syscall on this arch
        if largest == 0:
            warnings.append(f"seccomp: could not find any syscalls for architecture {token:#x}")
            log.warning("%s", warnings[-1])
            continue
        out.setdefault(_audit_arch(token), {})[token] = largest
    return out


class _Asm:
    """A tiny classic-BPF assembler with forward labels (jumps are resolved in emit)."""

    def __init__(self) -> None:
        self.insns: list[tuple[int, int | str, int | str, int | str]] = []
        self.labels: dict[str, int] = {}

    def op(self, code: int, k: int | str = 0, jt: int | str = 0, jf: int | str = 0) -> None:
        self.insns.append((code, jt, jf, k))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.insns)

    def emit(self) -> bytes:
        out = bytearray()
        for pc, (code, jt, jf, k) in enumerate(self.insns):

            def rel(target: int | str, limit: int, pc: int = pc) -> int:
                if isinstance(target, int):
                    return target
                off = self.labels[target] - pc - 1
                if not 0 <= off <= limit:
                    raise InvalidArgument(f"seccomp: BPF jump to {target} out of range ({off})")
                return off

            if code == _JA:
                out += _INSN.pack(code, 0, 0, rel(k, 0xFFFFFFFF))
            else:
                k_val = k if isinstance(k, int) else 0
                out += _INSN.pack(code, rel(jt, 255), rel(jf, 255), k_val)
        return bytes(out)


def _enosys_stub(last: dict[int, dict[int, int]]) -> bytes:
    """Return -ENOSYS for syscall numbers above the largest one the profile names, per arch.

    Layout: load arch; one "jeq arch / ja section" pair per architecture; ja filter; then per
    section: load nr; compare; "ret ENOSYS" or "ja filter".  Every conditional jump is short.
    """
    if not last:
        return b""
    a = _Asm()
    a.op(_LD_W_ABS, 4)  # seccomp_data.arch
    for i, audit in enumerate(last):
        a.op(_JEQ_K, audit, 0, 1)
        a.op(_JA, f"arch{i}")
    a.op(_JA, "filter")
    for i, (audit, by_token) in enumerate(last.items()):
        a.label(f"arch{i}")
        a.op(_LD_W_ABS, 0)  # seccomp_data.nr
        if audit == _AUDIT_ARCH_X86_64:
            x86 = by_token.get(_AUDIT_ARCH_X86_64)
            x32 = by_token.get(_SCMP_ARCH_X32)
            if x86 is not None and x32 is not None:
                a.op(_JSET_K, _X32_SYSCALL_BIT, f"x32_{i}", 0)
                _gt_enosys(a, x86)
                a.label(f"x32_{i}")
                _gt_enosys(a, x32)
            elif x86 is not None:  # x32 calls go to libseccomp's program
                a.op(_JSET_K, _X32_SYSCALL_BIT, f"skip{i}", 0)
                _gt_enosys(a, x86, f"skip{i}")
            elif x32 is not None:
                a.op(_JSET_K, _X32_SYSCALL_BIT, 0, f"skip{i}")
                _gt_enosys(a, x32, f"skip{i}")
            continue
        if len(by_token) != 1:
            raise InvalidArgument(f"seccomp: unexpected architecture overlap on {audit:#x}")
        (token, largest), *_ = by_token.items()
        if token in (_SCMP_ARCH_S390, _SCMP_ARCH_S390X):
            # unknown large syscall numbers arrive as setup(2) = 0 on s390(x)
            a.op(_JEQ_K, 0, 0, 1)
            a.op(_RET_K, _RET_ENOSYS)
        _gt_enosys(a, largest)
    a.label("filter")
    return a.emit()


def _gt_enosys(a: _Asm, largest: int, skip_label: str | None = None) -> None:
    """nr > largest -> ret ENOSYS; otherwise (or from `skip_label`) jump to the filter."""
    a.op(_JGT_K, largest, 0, 1)
    a.op(_RET_K, _RET_ENOSYS)
    if skip_label is not None:
        a.label(skip_label)
    a.op(_JA, "filter")
