"""Unix sockets and SCM_RIGHTS (passing file descriptors), for the sync channel and consoles.

Built on `_socket`, the C module under `socket`: importing `socket` itself builds several
enums and costs ~1.7 ms of every `pypod-runtime` start, and only these few calls are needed.
"""

from __future__ import annotations

import _socket
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

Socket = _socket.socket
_INT = struct.calcsize("i")


def seqpacket_pair() -> tuple[Socket, Socket]:
    """A connected pair of SOCK_SEQPACKET unix sockets (close-on-exec, one message a datagram)."""
    a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    return a, b


def connect(path: str) -> Socket:
    """A SOCK_STREAM unix socket connected to `path` (close-on-exec)."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock


def send_fds(sock: Socket, data: bytes, fds: Sequence[int]) -> None:
    """Send `data` with `fds` attached (SCM_RIGHTS), as socket.send_fds does."""
    ancillary = []
    if fds:
        payload = struct.pack(f"{len(fds)}i", *fds)
        ancillary = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, payload)]
    sock.sendmsg([data], ancillary)


def recv_fds(sock: Socket, bufsize: int, maxfds: int) -> tuple[bytes, list[int]]:
    """Receive one message and the descriptors attached to it (made close-on-exec)."""
    data, ancillary, _flags, _addr = sock.recvmsg(
        bufsize, _socket.CMSG_SPACE(maxfds * _INT), _socket.MSG_CMSG_CLOEXEC
    )
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % _INT
            fds += struct.unpack(f"{usable // _INT}i", payload[:usable])
    return data, fds
