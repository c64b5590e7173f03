"""What a container's start tells the world besides the DB: `--conmon-pidfile` and systemd.

- `--conmon-pidfile FILE` (and `pod create --infra-conmon-pidfile`): the monitor's pid is
  written to FILE at each start, as conmon writes its pid file (systemd's `PIDFile=`).
- `--sdnotify=container` (podman's default, so also when the flag is not given): when pypod
  runs with `$NOTIFY_SOCKET` set (a `Type=notify` unit), the container gets a socket of its
  own, as podman 4.3 and conmon do it: the monitor binds a unix datagram socket at
  `<userdata>/notify/notify.sock` before the container is created (pypod.monitor.notify),
  the spec binds `<userdata>/notify` at `/run/notify` and sets
  `NOTIFY_SOCKET=/run/notify/notify.sock` (engine/spec.py), and the monitor relays to the
  host's socket what conmon relays: `READY=1` or `WATCHDOG=1`, sent on as exactly that (any
  other line of the message, `STATUS=`, `MAINPID=`..., is dropped; a message with neither is
  not sent on).  The start itself sends `MAINPID=<the monitor's pid>` (no READY=1: the
  container says when it is ready), from the process that started the container, as podman.
  Without `$NOTIFY_SOCKET` nothing of this happens and the container runs as any other.
- `--sdnotify=conmon`: once the container runs, `MAINPID=<the monitor's pid>` and `READY=1` go
  in one datagram to `$NOTIFY_SOCKET` (systemd's `Type=notify` units).  podman 4.3 sends them
  from the podman process that started the container, not from conmon; so does pypod, from
  `Containers.start`.  A socket that cannot be reached is logged, the start still succeeds
  (podman's `Notifying systemd of Conmon PID` error).
- `--sdnotify=ignore`: nothing is sent, nothing is passed into the container.
"""

from __future__ import annotations

import os

from pypod.log import get_logger

__all__ = [
    "CONTAINER_NOTIFY_DIR",
    "CONTAINER_NOTIFY_SOCKET",
    "SDNOTIFY_MODES",
    "mode",
    "notify",
    "notify_started",
    "relayed_socket",
    "write_pid_file",
]

log = get_logger(__name__)

#: the values of `--sdnotify` pypod takes ("" = not given: podman's default, "container")
SDNOTIFY_MODES = ("container", "conmon", "ignore")
#: where the container sees its notification socket (podman's paths)
CONTAINER_NOTIFY_DIR = "/run/notify"
CONTAINER_NOTIFY_SOCKET = "/run/notify/notify.sock"


def mode(sdnotify: str) -> str:
    """The mode a container's `sdnotify` setting means: "" (not given) is "container"."""
    return sdnotify or "container"


def relayed_socket(sdnotify: str) -> str:
    """The host socket a container of mode `sdnotify` gets a socket of its own for: this
    process's `$NOTIFY_SOCKET` in "container" mode, "" otherwise or when it is not set.

    The spec (the mount and the environment) and the monitor (the socket and the relay) both
    ask this at the container's init, in the same process: they cannot disagree."""
    if mode(sdnotify) != "container":
        return ""
    return os.environ.get("NOTIFY_SOCKET", "")


def notify(message: str, socket_path: str | None = None) -> bool:
    """Send `message` to `socket_path` (default `$NOTIFY_SOCKET`; "@name": an abstract socket)
    as one datagram; whether there was a socket to send to.  OSError when sending fails."""
    path = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return False
    import socket  # only when there is something to send: most starts have nothing

    address = "\0" + path[1:] if path.startswith("@") else path
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.sendto(message.encode(), address)
    return True


def write_pid_file(path: str, pid: int) -> None:
    """`--conmon-pidfile`: the monitor's pid, written atomically (no newline, as conmon)."""
    from pypod.atomic import write_atomic

    write_atomic(path, str(pid).encode(), sync=False)


def notify_started(*, sdnotify: str, conmon_pidfile: str, monitor_pid: int) -> None:
    """What a start announces once the container runs (see the module's docstring):
    "conmon": `MAINPID=<monitor>\\nREADY=1`; "container" (and "", its default):
    `MAINPID=<monitor>` only; "ignore": nothing."""
    if conmon_pidfile and monitor_pid > 0:
        write_pid_file(conmon_pidfile, monitor_pid)
    how = mode(sdnotify)
    if how == "ignore" or monitor_pid <= 0:
        return
    message = f"MAINPID={monitor_pid}" + ("\nREADY=1" if how == "conmon" else "")
    try:
        notify(message)
    except OSError as e:
        log.error("Notifying systemd of the monitor's PID: %s", e)
