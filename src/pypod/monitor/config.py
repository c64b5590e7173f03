"""What one monitor is told: the container (or exec session), its runtime, stdio, log and exit."""

from __future__ import annotations

import os

from pypod import jsoncodec
from pypod.errors import InvalidArgument, NotSupported
from pypod.record import fields, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: log drivers the monitor writes itself; podman writes the k8s-file format for json-file too
FILE_LOG_DRIVERS = ("k8s-file", "json-file")
LOG_DRIVERS = (*FILE_LOG_DRIVERS, "none")
#: the container's notification socket, `<bundle>/notify/notify.sock` (conmon's place for it;
#: the spec binds the directory at /run/notify): see pypod.monitor.notify
NOTIFY_DIR = "notify"
NOTIFY_SOCKET_NAME = "notify.sock"


@record
class MonitorConfig:
    container_id: str
    bundle: str
    #: "pypod" (the in-process runtime) or a runtime binary (name on PATH or path)
    runtime: str
    runtime_root: str
    #: the container's run directory (exists): monitor.pid, the `attach` socket, the `ctl` fifo
    userdata: str
    #: "k8s-file" | "json-file" (both written in k8s-file format, as podman does) | "none"
    log_driver: str
    log_path: str
    #: bytes; 0 = no limit.  Beyond it the file is replaced by an empty one and writing goes on
    log_max_size: int
    tty: bool
    #: -i: keep the container's stdin open; attachers write to it
    stdin: bool
    #: JSON {"exit_code": N, "finished": <unix time>, "oom_killed": bool}, written atomically
    exit_file: str
    #: run detached (setsid, stdio /dev/null) once the exit file is written
    exit_command: tuple[str, ...] = ()
    #: an exec session: this runtime-spec process runs in the (running) container
    exec_process: dict[str, Any] | None = None
    #: run (detached, like exit_command) every `periodic_interval` seconds while the process
    #: lives: the health check (`pypod healthcheck run ID`), since no systemd timer is there
    periodic_command: tuple[str, ...] = ()
    periodic_interval: float = 0.0
    #: the host's notification socket (systemd's `$NOTIFY_SOCKET`; "@name": abstract), for
    #: `--sdnotify=container` (conmon's `--sdnotify-socket`): the monitor binds the
    #: container's own socket (`notify_socket_path`) before creating the container and relays
    #: READY=1 / WATCHDOG=1 from it to this one.  "": no socket for the container
    sdnotify_socket: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["exit_command"] = list(self.exit_command)
        out["periodic_command"] = list(self.periodic_command)
        return out

    def to_json(self) -> str:
        return jsoncodec.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MonitorConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidArgument(f"monitor config: unknown keys {sorted(unknown)}")
        values = dict(data)
        values["exit_command"] = tuple(values.get("exit_command", ()))
        values["periodic_command"] = tuple(values.get("periodic_command", ()))
        try:
            return cls(**values)
        except TypeError as e:
            raise InvalidArgument(f"monitor config: {e}") from None

    @classmethod
    def from_json(cls, text: str) -> MonitorConfig:
        try:
            data = jsoncodec.loads(text)
        except ValueError as e:
            raise InvalidArgument(f"monitor config: invalid JSON: {e}") from None
        if not isinstance(data, dict):
            raise InvalidArgument("monitor config: expected a JSON object")
        return cls.from_dict(data)

    @property
    def is_exec(self) -> bool:
        return self.exec_process is not None

    @property
    def notify_socket_path(self) -> str:
        """Where the container's notification socket is bound (with `sdnotify_socket`)."""
        return os.path.join(self.bundle, NOTIFY_DIR, NOTIFY_SOCKET_NAME)

    def validate(self) -> None:
        """Refuse what the monitor could not do, before anything is started."""
        if not self.container_id:
            raise InvalidArgument("monitor config: container_id is empty")
        if self.log_driver in ("journald", "passthrough"):
            raise NotSupported(
                f"log driver {self.log_driver!r} is not supported yet (no systemd journal "
                "here); use k8s-file, json-file or none"
            )
        if self.log_driver not in LOG_DRIVERS:
            raise InvalidArgument(
                f"log driver {self.log_driver!r} is not known; use one of {', '.join(LOG_DRIVERS)}"
            )
        if self.log_driver in FILE_LOG_DRIVERS and not self.log_path:
            raise InvalidArgument(f"log driver {self.log_driver}: a log path is required")
        if self.log_max_size < 0:
            raise InvalidArgument(f"log max size {self.log_max_size}: must be 0 (none) or more")
        if not os.path.isdir(self.userdata):
            raise InvalidArgument(
                f"monitor config: userdata directory {self.userdata} does not exist; create it "
                "first"
            )
        if not self.exit_file:
            raise InvalidArgument("monitor config: exit_file is empty")
        if not os.path.isdir(os.path.dirname(os.path.abspath(self.exit_file))):
            raise InvalidArgument(
                f"monitor config: the directory of the exit file {self.exit_file} does not "
                "exist; create it first"
            )
        if self.exec_process is not None and not isinstance(self.exec_process, dict):
            raise InvalidArgument("monitor config: exec_process must be a process object")
        if self.sdnotify_socket and self.is_exec:
            raise InvalidArgument(
                "monitor config: sdnotify_socket is for a container's monitor, not an exec "
                "session's; leave it empty"
            )

    def absolute(self) -> MonitorConfig:
        """The same with absolute paths (the monitor changes its directory to /)."""
        from pypod.record import replace

        def ab(path: str) -> str:
            return os.path.abspath(path) if path else path

        return replace(
            self,
            bundle=ab(self.bundle),
            runtime=self.runtime if "/" not in self.runtime else os.path.abspath(self.runtime),
            runtime_root=ab(self.runtime_root),
            userdata=ab(self.userdata),
            log_path=ab(self.log_path),
            exit_file=ab(self.exit_file),
            # (an abstract socket, "@name", is no path)
            sdnotify_socket=self.sdnotify_socket
            if self.sdnotify_socket.startswith("@")
            else ab(self.sdnotify_socket),
        )
