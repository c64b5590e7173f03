"""A container as the engine knows it: its config, its state, and where its files are.

Statuses follow libpod's: `configured` (created by `pypod create`, nothing set up; podman shows
"Created"), `created` (the monitor and the runtime's init exist, waiting for start), `running`,
`paused`, `stopping`, `exited`, `removing`.  The state is a small JSON document in the
container's DB row; `sync_state` brings it up to date with what the monitor left behind (its
exit file) or, when the monitor died, with what the kernel says.
"""

from __future__ import annotations

import os
import time

from pypod import jsoncodec
from pypod.engine.config import ContainerConfig
from pypod.linux.procstat import proc_start_time
from pypod.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: statuses in which something may be alive (the monitor, the container's processes)
LIVE = ("created", "running", "paused", "stopping")

#: the status podman shows for ours (libpod's ContainerStatus.String(): a `configured`
#: container is "created", a `created` one, set up and not started, is "initialized")
_SHOWN = {"configured": "created", "created": "initialized"}


def shown_status(status: str) -> str:
    """What `ps`, `inspect` and the status filter call `status`."""
    return _SHOWN.get(status, status)


#: podman's exit code when the real one cannot be known (the monitor died without writing it)
UNKNOWN_EXIT_CODE = -1


@record(frozen=False)
class Container:
    id: str
    name: str
    config: ContainerConfig
    state: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0

    @property
    def status(self) -> str:
        return str(self.state.get("status", "configured"))


@record
class Paths:
    """Where one engine keeps its files (`--root`, `--runroot`)."""

    graphroot: str
    runroot: str

    def userdata(self, cid: str) -> str:
        """Persistent per-container files: config.json, hosts, resolv.conf, the log."""
        return os.path.join(self.graphroot, "containers", cid, "userdata")

    def rundir(self, cid: str) -> str:
        """Run-time per-container files: the attach socket, monitor.pid, the exit file."""
        return os.path.join(self.runroot, "containers", cid)

    def exit_file(self, cid: str) -> str:
        return os.path.join(self.rundir(cid), "exit")

    def log_path(self, cid: str) -> str:
        return os.path.join(self.userdata(cid), "ctr.log")

    def lock(self, cid: str) -> str:
        return os.path.join(self.runroot, "locks", f"{cid}.lock")

    def runtime_root(self, runtime: str) -> str:
        return os.path.join(self.runroot, "runtime" if runtime == "pypod" else "oci-runtime")

    @property
    def alive_marker(self) -> str:
        return os.path.join(self.runroot, "alive")

    @property
    def database(self) -> str:
        return os.path.join(self.graphroot, "engine.db")


def read_exit_file(path: str) -> dict[str, Any] | None:
    """The monitor's record of how the process ended, or None when it has not written one."""
    try:
        with open(path, "rb") as f:
            data = jsoncodec.loads(f.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def process_alive(pid: int, start: int) -> bool:
    """Whether `pid` is still the process that started at `start` (clock ticks) and not a zombie."""
    if pid <= 0:
        return False
    found = proc_start_time(pid)
    return found is not None and found[1] not in ("Z", "X") and (not start or found[0] == start)


def start_time(pid: int) -> int:
    found = proc_start_time(pid)
    return found[0] if found else 0


def exited_state(state: dict[str, Any], exit_info: dict[str, Any] | None) -> dict[str, Any]:
    """The state once the process is known to have ended (`exit_info` from the exit file)."""
    out = dict(state)
    out["status"] = "exited"
    if exit_info is None:
        out["exit_code"] = UNKNOWN_EXIT_CODE
        out["finished_at"] = time.time()
        out["oom_killed"] = False
    else:
        out["exit_code"] = int(exit_info.get("exit_code", UNKNOWN_EXIT_CODE))
        out["finished_at"] = float(exit_info.get("finished", time.time()))
        out["oom_killed"] = bool(exit_info.get("oom_killed", False))
    out["pid"] = 0
    out["monitor_pid"] = 0
    return out
