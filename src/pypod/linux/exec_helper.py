"""The last exec of a container process goes through a sealed in-memory helper.

Why: the container init is a fork of the runtime, so until its final execve its
``/proc/self/exe`` is the host's Python interpreter.  If the container's program is a script
whose interpreter line is ``#!/proc/self/exe``, the kernel would run the host interpreter inside
the container, and a process there could reopen ``/proc/<pid>/exe`` for writing once it exits and
overwrite the host's interpreter (the CVE-2019-5736 class).  runc answers by re-executing a
sealed memfd copy of itself; copying and re-starting Python would cost more than runc's whole
run, so pypod executes a small helper from a sealed memfd instead.  The helper only calls
``execve(argv[1], &argv[2], envp)``.  From then on ``/proc/self/exe`` names the sealed memfd,
which cannot be written, and ``#!/proc/self/exe`` re-runs the helper, which sees an argv[0]
it did not get from pypod and exits 126.

The helper is a static x86_64 ELF written out here byte by byte (no compiler needed at install
time).  On another architecture pypod-runtime refuses to run containers rather than run them
unprotected.
"""

from __future__ import annotations

import fcntl
import os
import struct

from pypod.errors import NotSupported
from pypod.linux import syscalls

_BASE = 0x400000
_HEADERS = 64 + 56  # ELF header + one program header

# x86_64 machine code of the helper:
_CODE_X86_64 = bytes.fromhex(
    "488b442408"  # mov  rax, [rsp+8]           ; argv[0]
    "803870"  # cmp  byte [rax], 'p'        ; started by pypod as "pypod-exec"?
    "751e"  # jne  exit_126               ; no: a "#!/proc/self/exe" script, refuse
    "488b7c2410"  # mov  rdi, [rsp+16]          ; path   = argv[1]
    "488d742418"  # lea  rsi, [rsp+24]          ; argv   = &argv[2]
    "488b0424"  # mov  rax, [rsp]             ; argc
    "488d54c410"  # lea  rdx, [rsp+rax*8+16]    ; envp   = &argv[argc+1]
    "b83b000000"  # mov  eax, 59 (execve)
    "0f05"  # syscall
    "4883f8fe"  # cmp  rax, -ENOENT          ; execve failed:
    "bf7e000000"  # exit_126: mov edi, 126      ;   cannot invoke
    "7505"  # jne  +5
    "bf7f000000"  # mov  edi, 127               ;   not found
    "b8e7000000"  # mov  eax, 231 (exit_group)
    "0f05"  # syscall
)


def _elf(code: bytes, machine: int) -> bytes:
    size = _HEADERS + len(code)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little endian, SysV
    header = ident + struct.pack(
        "<HHIQQQIHHHHHH", 2, machine, 1, _BASE + _HEADERS, 64, 0, 0, 64, 56, 1, 0, 0, 0
    )
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, _BASE, _BASE, size, size, 0x1000)  # PT_LOAD, R+X
    return header + phdr + code


def helper_image() -> bytes:
    if os.uname().machine != "x86_64":
        raise NotSupported(
            f"pypod-runtime: running containers on {os.uname().machine} is not supported yet "
            "(the sealed exec helper exists for x86_64 only)"
        )
    return _elf(_CODE_X86_64, 0x3E)


def sealed_helper_fd() -> int:
    """A close-on-exec memfd holding the helper, sealed against any change."""
    fd = os.memfd_create("pypod-exec", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.write(fd, helper_image())
    seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    return fd


def exec_through_helper(helper_fd: int, path: str, argv: list[str], env: list[str]) -> None:
    """Replace this process by `path` with `argv`, via the sealed helper. Raises on failure."""
    syscalls.execveat(helper_fd, ["pypod-exec", path, *argv], env)
