"""cgroup v2 device control: an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE.

cgroup v2 has no devices.allow; the kernel instead runs a BPF program attached to the cgroup
for every device open or mknod, with `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
u32 minor; }` in R1 (access_type = device type in the low 16 bits, access in the high 16).
Returning 1 allows, 0 denies (EPERM).

The program is generated from the emulated rules (devices.Emulator), in the shape runc and
crun use: load the context into R2..R5, then one block per exception which jumps to the next
block on a mismatch and otherwise returns the exception's verdict, then the default verdict.
An allow exception matches when the requested access is a subset of its access; a deny
exception (default-allow cgroups) matches when the two overlap, as in the v1 kernel code.

Loading and attaching go through the bpf(2) system call with ctypes.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import struct

from pypod.errors import NotSupported, OSLevelError, from_oserror
from pypod.linux import syscalls
from pypod.linux.cgroups.devices import WILDCARD, DeviceRule, Emulator
from pypod.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

# --- program generation -----------------------------------------------------------------------

# instruction classes and fields (include/uapi/linux/bpf.h, bpf_common.h)
_LDX, _ALU, _JMP = 0x01, 0x04, 0x05
_MEM, _W = 0x60, 0x00
_K, _X = 0x00, 0x08
_AND, _RSH, _MOV = 0x50, 0x70, 0xB0
_JEQ, _JNE, _EXIT = 0x10, 0x50, 0x90

BPF_DEVCG_ACC_MKNOD, BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE = 1, 2, 4
BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR = 1, 2
_ACCESS_BITS = {"m": BPF_DEVCG_ACC_MKNOD, "r": BPF_DEVCG_ACC_READ, "w": BPF_DEVCG_ACC_WRITE}
_TYPE_BITS = {"b": BPF_DEVCG_DEV_BLOCK, "c": BPF_DEVCG_DEV_CHAR}

LICENSE = "Apache"


@record(kw_only=False)
class Insn:
    """One eBPF instruction (struct bpf_insn)."""

    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    def pack(self) -> bytes:
        return struct.pack("<BBhi", self.code, (self.src << 4) | self.dst, self.off, self.imm)

    def __str__(self) -> str:
        name = _NAMES.get(self.code, f"op{self.code:#04x}")
        if self.code == _JMP | _EXIT:
            return name
        parts = [f"dst: r{self.dst}"]
        if self.code & _X or self.code == _LDX | _MEM | _W:
            parts.append(f"src: r{self.src}")
        if self.code & 0x07 in (_LDX, _JMP):
            parts.append(f"off: {self.off}")
        if not self.code & _X:
            parts.append(f"imm: {self.imm}")
        return f"{name} {' '.join(parts)}"


_NAMES = {
    _LDX | _MEM | _W: "LdXMemW",
    _ALU | _AND | _K: "AndImm32",
    _ALU | _RSH | _K: "RShImm32",
    _ALU | _MOV | _K: "MovImm32",
    _ALU | _MOV | _X: "MovReg32",
    _JMP | _JNE | _K: "JNEImm",
    _JMP | _JNE | _X: "JNEReg",
    _JMP | _JEQ | _K: "JEqImm",
    _JMP | _EXIT: "Exit",
}


def _ret(value: int) -> list[Insn]:
    return [Insn(_ALU | _MOV | _K, dst=0, imm=value), Insn(_JMP | _EXIT)]


_PROLOGUE = (
    Insn(_LDX | _MEM | _W, dst=2, src=1, off=0),  # R2 <- access_type
    Insn(_ALU | _AND | _K, dst=2, imm=0xFFFF),  #     R2 <- device type (low 16 bits)
    Insn(_LDX | _MEM | _W, dst=3, src=1, off=0),  # R3 <- access_type
    Insn(_ALU | _RSH | _K, dst=3, imm=16),  #         R3 <- access (high 16 bits)
    Insn(_LDX | _MEM | _W, dst=4, src=1, off=4),  # R4 <- major
    Insn(_LDX | _MEM | _W, dst=5, src=1, off=8),  # R5 <- minor
)

_NEXT = -1  # placeholder offset: "jump to the next block", resolved per block


def _block(rule: DeviceRule) -> list[Insn]:
    """The instructions of one exception; jumps carry _NEXT until the block length is known."""
    access = sum(_ACCESS_BITS[c] for c in rule.access)
    insns = [Insn(_JMP | _JNE | _K, dst=2, off=_NEXT, imm=_TYPE_BITS[rule.type])]
    if access != BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE:
        insns += [
            Insn(_ALU | _MOV | _X, dst=1, src=3),  # R1 <- requested access
            Insn(_ALU | _AND | _K, dst=1, imm=access),  # R1 &= rule access
        ]
        if rule.allow:  # requested must be a subset: (R3 & access) == R3
            insns.append(Insn(_JMP | _JNE | _X, dst=1, src=3, off=_NEXT))
        else:  # any overlap denies: (R3 & access) != 0
            insns.append(Insn(_JMP | _JEQ | _K, dst=1, off=_NEXT, imm=0))
    if rule.major != WILDCARD:
        insns.append(Insn(_JMP | _JNE | _K, dst=4, off=_NEXT, imm=rule.major))
    if rule.minor != WILDCARD:
        insns.append(Insn(_JMP | _JNE | _K, dst=5, off=_NEXT, imm=rule.minor))
    insns += _ret(1 if rule.allow else 0)
    # a jump at index i lands on the first instruction after the block: off = len - i - 1
    return [
        Insn(i.code, i.dst, i.src, len(insns) - n - 1, i.imm) if i.off == _NEXT else i
        for n, i in enumerate(insns)
    ]


def device_filter(rules: Sequence[DeviceRule]) -> list[Insn]:
    """The eBPF program enforcing the OCI device rules (applied in order on a deny-all start)."""
    emu = Emulator.from_rules(rules)
    program = list(_PROLOGUE)
    for exception in emu.exceptions():
        program += _block(exception)
    program += _ret(1 if emu.default_allow else 0)
    return program


# --- the bpf(2) system call -------------------------------------------------------------------

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 1 << 1
BPF_F_REPLACE = 1 << 2


class BpfError(OSLevelError):
    """A failed bpf(2) call; keeps what was being done apart from the errno text."""

    def __init__(self, what: str, *, errno: int) -> None:
        self.what = what
        super().__init__(what, errno=errno)


_ATTR_SIZE = 256  # larger than any kernel's union bpf_attr we use; the tail stays zero


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char], what: str) -> int:
    number = syscalls.nr("bpf")
    ret = int(
        syscalls.LIBC.syscall(
            ctypes.c_long(number), ctypes.c_int(cmd), attr, ctypes.c_uint(_ATTR_SIZE)
        )
    )
    if ret < 0:
        raise BpfError(what, errno=ctypes.get_errno())
    return ret


def _attr() -> ctypes.Array[ctypes.c_char]:
    return ctypes.create_string_buffer(_ATTR_SIZE)


def load_program(program: Sequence[Insn], *, license: str = LICENSE) -> int:
    """BPF_PROG_LOAD a CGROUP_DEVICE program; returns its fd (close it when attached)."""
    code = b"".join(i.pack() for i in program)
    insns = ctypes.create_string_buffer(code, len(code))
    lic = ctypes.create_string_buffer(license.encode())
    log = ctypes.create_string_buffer(64 * 1024)

    def attempt(with_log: bool) -> int:
        attr = _attr()
        struct.pack_into(
            "<IIQQIIQ",
            attr,
            0,
            BPF_PROG_TYPE_CGROUP_DEVICE,
            len(program),
            ctypes.addressof(insns),
            ctypes.addressof(lic),
            1 if with_log else 0,
            len(log) if with_log else 0,
            ctypes.addressof(log) if with_log else 0,
        )
        struct.pack_into("16s", attr, 48, b"pypod_devices")
        return _bpf(BPF_PROG_LOAD, attr, "cgroup: load the eBPF device filter")

    try:
        return attempt(False)
    except BpfError as e:
        if e.errno == errno.EPERM:
            # kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK (runc raises it too)
            try:
                resource.setrlimit(
                    resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
                )
                return attempt(False)
            except (OSError, ValueError, BpfError):
                pass
        if e.errno in (errno.EINVAL, errno.EACCES):
            try:
                return attempt(True)
            except BpfError as e2:
                verifier = log.value.decode(errors="replace").strip()
                raise BpfError(
                    f"cgroup: load the eBPF device filter (verifier: {verifier or 'no log'})",
                    errno=e2.errno,
                ) from None
        raise


def attached_programs(dir_fd: int) -> list[int]:
    """Ids of the CGROUP_DEVICE programs attached to the cgroup open as `dir_fd`."""
    count = 64
    for _ in range(10):
        ids = (ctypes.c_uint32 * count)()
        attr = _attr()
        address = ctypes.addressof(ids)
        struct.pack_into("<IIIIQI", attr, 0, dir_fd, BPF_CGROUP_DEVICE, 0, 0, address, count)
        try:
            _bpf(BPF_PROG_QUERY, attr, "cgroup: query the attached device filters")
        except BpfError as e:
            if e.errno == errno.ENOSPC:
                count = struct.unpack_from("<I", attr, 24)[0]
                continue
            raise
        n = struct.unpack_from("<I", attr, 24)[0]
        return list(ids[:n])
    raise NotSupported("cgroup: the list of attached device filters keeps changing")


def _prog_fd_by_id(prog_id: int) -> int:
    attr = _attr()
    struct.pack_into("<I", attr, 0, prog_id)
    return _bpf(BPF_PROG_GET_FD_BY_ID, attr, f"cgroup: open eBPF program {prog_id}")


def _attach(dir_fd: int, prog_fd: int, flags: int, replace_fd: int = 0) -> None:
    attr = _attr()
    struct.pack_into("<IIIII", attr, 0, dir_fd, prog_fd, BPF_CGROUP_DEVICE, flags, replace_fd)
    _bpf(BPF_PROG_ATTACH, attr, "cgroup: attach the eBPF device filter")


def _detach(dir_fd: int, prog_fd: int) -> None:
    attr = _attr()
    struct.pack_into("<III", attr, 0, dir_fd, prog_fd, BPF_CGROUP_DEVICE)
    _bpf(BPF_PROG_DETACH, attr, "cgroup: detach an old eBPF device filter")


def apply_device_rules(cgroup_dir: str, rules: Sequence[DeviceRule]) -> None:
    """Generate, load and attach the filter for `rules` to `cgroup_dir`, replacing old ones.

    The program stays attached after this process exits (the cgroup holds it), so an update
    from a later `pypod-runtime update` finds and replaces it.
    """
    program = device_filter(rules)
    try:
        dir_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise from_oserror(f"cgroup: open {cgroup_dir}", err) from None
    old_fds: list[int] = []
    prog_fd = -1
    try:
        for prog_id in attached_programs(dir_fd):
            try:
                old_fds.append(_prog_fd_by_id(prog_id))
            except BpfError as e:
                if e.errno not in (errno.EPERM, errno.EACCES, errno.ENOENT):
                    raise
        prog_fd = load_program(program)
        if len(old_fds) == 1:
            try:
                _attach(dir_fd, prog_fd, BPF_F_ALLOW_MULTI | BPF_F_REPLACE, old_fds[0])
                return
            except BpfError as e:
                if e.errno != errno.EINVAL:  # EINVAL: kernel without BPF_F_REPLACE
                    raise
        _attach(dir_fd, prog_fd, BPF_F_ALLOW_MULTI)
        for fd in old_fds:
            _detach(dir_fd, fd)
    except BpfError as e:
        hint = " (needs CAP_SYS_ADMIN or CAP_BPF)" if e.errno in (errno.EPERM, errno.EACCES) else ""
        raise BpfError(f"{e.what} on {cgroup_dir}{hint}", errno=e.errno) from None
    finally:
        for fd in [*old_fds, prog_fd, dir_fd]:
            if fd >= 0:
                os.close(fd)
