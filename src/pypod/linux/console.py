"""Pseudo-terminals for containers, and passing their master over a unix socket (SCM_RIGHTS)."""

from __future__ import annotations

import fcntl
import os
import struct
import termios

from pypod.errors import OSLevelError
from pypod.linux import unixsock

_TIOCGPTPEER = 0x5441
_TIOCSPTLCK = 0x40045431


def open_pty(ptmx: str = "/dev/ptmx") -> tuple[int, int]:
    """Open a new pty from `ptmx`; returns (master, slave) as close-on-exec fds."""
    try:
        master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))  # unlockpt
        slave = fcntl.ioctl(master, _TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise OSLevelError(f"open a pseudo-terminal through {ptmx}", errno=e.errno or 0) from e
    return master, int(slave)


def pty_name(slave_fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{slave_fd}")


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def get_size(fd: int) -> tuple[int, int]:
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(8)))
    return rows, cols


def make_controlling(slave_fd: int) -> None:
    """Make `slave_fd` the controlling terminal and the stdio of this (session leader) process."""
    fcntl.ioctl(slave_fd, termios.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(slave_fd, target)


def send_console(socket_path: str, master_fd: int) -> None:
    """Send the pty master to the --console-socket, the way runc does (conmon reads it)."""
    try:
        sock = unixsock.connect(socket_path)
        try:
            unixsock.send_fds(sock, b"/dev/ptmx", [master_fd])
        finally:
            sock.close()
    except OSError as e:
        raise OSLevelError(f"console socket {socket_path}", errno=e.errno or 0) from e
