"""The container's own notification socket (`--sdnotify=container`), as conmon makes it.

With `MonitorConfig.sdnotify_socket` (the host's `$NOTIFY_SOCKET`, conmon's
`--sdnotify-socket`), the monitor binds a unix datagram socket at
`<bundle>/notify/notify.sock` (`MonitorConfig.notify_socket_path`; the spec binds its
directory into the container at /run/notify) *before* the runtime creates the container, so
that nothing the container sends from its first instruction on is lost, and holds it for the
container's life; the loop (pypod.monitor.loop, `Monitor.read_notify`) relays what conmon
relays from it to the host socket: `READY=1`, else `WATCHDOG=1`, and nothing else.

The socket is made as conmon's `setup_notify_socket` makes it: the directory 0755, the socket
0777 (any user of the container may notify), bound through /proc/self/fd (no length limit on
the directory's path), any old socket file replaced.  `$NOTIFY_SOCKET` is removed from the
monitor's own environment: podman starts conmon without it in this mode, because an OCI
runtime that finds it (runc) would set up a notification proxy of its own and hold `start`
until the container is ready.
"""

from __future__ import annotations

import _socket
import contextlib
import os

from pypod.errors import from_oserror
from pypod.monitor.config import MonitorConfig

__all__ = ["bind_container_socket"]


def bind_container_socket(cfg: MonitorConfig) -> _socket.socket:
    """Bind `cfg.notify_socket_path` (non-blocking, close-on-exec); the socket.  A PypodError
    saying which path failed (pypod.errors.from_oserror) when it cannot be made."""
    path = cfg.notify_socket_path
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        dir_fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise from_oserror(f"container notification socket directory {directory}", e) from e
    sock = _socket.socket(
        _socket.AF_UNIX, _socket.SOCK_DGRAM | _socket.SOCK_NONBLOCK | _socket.SOCK_CLOEXEC
    )
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.fchmod(sock.fileno(), 0o777)
        sock.bind(f"/proc/self/fd/{dir_fd}/{os.path.basename(path)}")
        os.chmod(path, 0o777)  # bind made it with the umask's mode
    except OSError as e:
        sock.close()
        raise from_oserror(f"container notification socket {path}", e) from e
    finally:
        os.close(dir_fd)
    os.environ.pop("NOTIFY_SOCKET", None)
    return sock
