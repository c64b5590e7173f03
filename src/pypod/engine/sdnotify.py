"""What a container's start tells the world besides the DB: `--conmon-pidfile` and systemd.

- `--conmon-pidfile FILE` (and `pod create --infra-conmon-pidfile`): the monitor's pid is
  written to FILE at each start, as conmon writes its pid file (systemd's `PIDFile=`).
- `--sdnotify=conmon`: once the container runs, `MAINPID=<the monitor's pid>` and `READY=1` go
  in one datagram to `$NOTIFY_SOCKET` (systemd's `Type=notify` units).  podman 4.3 sends them
  from the podman process that started the container, not from conmon; so does pypod, from
  `Containers.start`.  A socket that cannot be reached is logged, the start still succeeds
  (podman's `Notifying systemd of Conmon PID` error).
- `--sdnotify=ignore`: nothing is sent.
"""

from __future__ import annotations

import logging
import os
import socket

__all__ = ["SDNOTIFY_MODES", "notify", "notify_started", "write_pid_file"]

log = logging.getLogger(__name__)

#: the values of `--sdnotify` pypod takes ("" = not given)
SDNOTIFY_MODES = ("conmon", "ignore")


def notify(message: str, socket_path: str | None = None) -> bool:
    """Send `message` to `socket_path` (default `$NOTIFY_SOCKET`; "@name": an abstract socket)
    as one datagram; whether there was a socket to send to.  OSError when sending fails."""
    path = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.sendto(message.encode(), address)
    return True


def write_pid_file(path: str, pid: int) -> None:
    """`--conmon-pidfile`: the monitor's pid, written atomically (no newline, as conmon)."""
    from pypod.atomic import write_atomic

    write_atomic(path, str(pid).encode(), sync=False)


def notify_started(*, sdnotify: str, conmon_pidfile: str, monitor_pid: int) -> None:
    """What a start announces once the container runs (see the module's docstring)."""
    if conmon_pidfile and monitor_pid > 0:
        write_pid_file(conmon_pidfile, monitor_pid)
    if sdnotify == "conmon" and monitor_pid > 0:
        try:
            notify(f"MAINPID={monitor_pid}\nREADY=1")
        except OSError as e:
            log.error("Notifying systemd of the monitor's PID: %s", e)
