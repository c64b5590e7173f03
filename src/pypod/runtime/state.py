"""The runtime's state directory: one folder per container holding state.json and exec.fifo.

A container's status is derived, never stored, the way runc derives it: its init process gone
(or a zombie, or a different process with the same pid) -> stopped; frozen cgroup -> paused;
exec fifo present -> created; otherwise running.
"""

from __future__ import annotations

import errno
import os
import time

from pypod import jsoncodec
from pypod.atomic import write_atomic
from pypod.errors import AlreadyExists, ContainerNotFound, InvalidArgument, from_oserror
from pypod.linux.procstat import proc_start_time
from pypod.record import field, fields, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Final

STATE_FILE = "state.json"
FIFO_FILE = "exec.fifo"
#: present while `create` runs: who creates the container
CREATING_FILE = "creating.json"
#: present while `create` runs, once it made the container's cgroup: that cgroup (a file of its
#: own: replacing creating.json would cost a data flush on ext4, ~0.5 ms of every create)
CREATING_CGROUP_FILE = "creating-cgroup.json"
#: what an id may hold besides letters and digits (runc's `^[\w+-\.]+$`)
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")
#: compiled seccomp programs (pypod.linux.seccomp_cache), next to the containers: the '@' keeps
#: the name out of the ids a container can have
SECCOMP_CACHE_DIR = "@seccomp-cache"


class Status:
    """A container's status: the strings of runc's `state` ("status") and of the hooks' state."""

    CREATING: Final = "creating"
    CREATED: Final = "created"
    RUNNING: Final = "running"
    PAUSED: Final = "paused"
    STOPPED: Final = "stopped"


def default_root() -> str:
    if os.geteuid() == 0:
        return "/run/pypod-runtime"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(xdg, "pypod-runtime")
    return f"/tmp/pypod-runtime-{os.geteuid()}"


def validate_id(container_id: str) -> None:
    if not container_id:
        raise InvalidArgument("container id cannot be empty")
    if not _valid_id_chars(container_id) or container_id in (".", ".."):
        raise InvalidArgument(f"invalid id format: {container_id}")


def _valid_id_chars(text: str) -> bool:
    """Whether `text` matches runc's `^[\\w+\\-.]+$` in Go's syntax: one or more ASCII letters,
    digits or "_+-." (Go's `\\w` is ASCII only and its `$` is the end of the text)."""
    return text != "" and all(c in _ID_CHARS for c in text)


def now_rfc3339() -> str:
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


@record(frozen=False)
class ContainerRecord:
    """What state.json holds for one container."""

    id: str
    init_pid: int
    init_start_time: int
    bundle: str
    rootfs: str
    created: str
    annotations: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    cgroup: dict[str, Any] = field(default_factory=dict)
    namespace_paths: dict[str, str] = field(default_factory=dict)
    rootless: bool = False

    def to_json(self) -> str:
        return jsoncodec.dumps({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_json(cls, text: str) -> ContainerRecord:
        data = jsoncodec.loads(text)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class StateDir:
    """The runtime root (`--root`): `<root>/<id>/state.json`."""

    def __init__(self, root: str) -> None:
        self.root = root

    def path(self, container_id: str) -> str:
        return os.path.join(self.root, container_id)

    def fifo(self, container_id: str) -> str:
        return os.path.join(self.root, container_id, FIFO_FILE)

    def reserve(self, container_id: str, *, clean_up: Callable[[dict[str, Any]], None]) -> str:
        """Claim the id atomically (mkdir); fails if a container with this id exists.

        The directory holds a "creating" marker naming this process until `save`.  A directory
        whose creator died before saving (killed during `create`) is an incomplete container:
        `clean_up` gets the marker (to remove its cgroup) and the id is claimed again.
        """
        validate_id(container_id)
        try:
            os.makedirs(self.root, mode=0o711, exist_ok=True)
        except OSError as e:
            raise from_oserror(f"create state root {self.root}", e) from e
        path = self.path(container_id)
        for _attempt in range(2):
            try:
                os.mkdir(path, 0o711)
                break
            except FileExistsError:
                if not self.remove_incomplete(container_id, clean_up):
                    raise AlreadyExists(
                        f"container with given ID already exists: {container_id}"
                    ) from None
            except OSError as e:
                raise from_oserror(f"create state directory {path}", e) from e
        start = proc_start_time(os.getpid())
        self.mark_creating(container_id, {"pid": os.getpid(), "start": start[0] if start else 0})
        return path

    def mark_creating(self, container_id: str, marker: dict[str, Any]) -> None:
        _write_atomically(
            os.path.join(self.path(container_id), CREATING_FILE), jsoncodec.dumps(marker)
        )

    def mark_cgroup(self, container_id: str, cgroup: dict[str, Any]) -> None:
        """Record the cgroup a `create` made, for the clean-up of one killed half-way."""
        path = os.path.join(self.path(container_id), CREATING_CGROUP_FILE)
        _write_atomically(path, jsoncodec.dumps(cgroup))

    def remove_incomplete(
        self, container_id: str, clean_up: Callable[[dict[str, Any]], None]
    ) -> bool:
        """Remove the directory of a `create` that died before saving; False if not that."""
        path = self.path(container_id)
        if os.path.exists(os.path.join(path, STATE_FILE)):
            return False
        try:
            with open(os.path.join(path, CREATING_FILE)) as f:
                marker = jsoncodec.loads(f.read())
        except FileNotFoundError:
            marker = {}
        except (OSError, ValueError):
            return False
        creator = proc_start_time(int(marker.get("pid", 0))) if marker.get("pid") else None
        if creator is not None and creator[0] == marker.get("start") and creator[1] != "Z":
            return False  # still being created
        try:
            with open(os.path.join(path, CREATING_CGROUP_FILE)) as f:
                marker["cgroup"] = jsoncodec.loads(f.read())
        except (OSError, ValueError):
            pass  # killed before it made the cgroup (the file is written atomically)
        clean_up(marker)
        self.remove(container_id)
        return True

    def save(self, record: ContainerRecord) -> None:
        path = self.path(record.id)
        _write_atomically(os.path.join(path, STATE_FILE), record.to_json())
        for name in (CREATING_CGROUP_FILE, CREATING_FILE):
            try:
                os.unlink(os.path.join(path, name))
            except FileNotFoundError:
                pass

    def load(self, container_id: str) -> ContainerRecord:
        validate_id(container_id)
        try:
            with open(os.path.join(self.path(container_id), STATE_FILE)) as f:
                return ContainerRecord.from_json(f.read())
        except FileNotFoundError:
            raise ContainerNotFound("container does not exist") from None
        except (OSError, ValueError, TypeError) as e:
            raise InvalidArgument(f"container {container_id}: unreadable state: {e}") from e

    def ids(self) -> list[str]:
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        return [n for n in names if os.path.exists(os.path.join(self.root, n, STATE_FILE))]

    def remove(self, container_id: str) -> None:
        path = self.path(container_id)
        try:  # leftovers of a write interrupted by a crash (pypod.atomic's temporary files)
            leftovers = [n for n in os.listdir(path) if n.startswith(".tmp-")]
        except FileNotFoundError:
            leftovers = []
        for name in (STATE_FILE, FIFO_FILE, CREATING_CGROUP_FILE, CREATING_FILE, *leftovers):
            try:
                os.unlink(os.path.join(path, name))
            except FileNotFoundError:
                pass
        try:
            os.rmdir(path)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise from_oserror(f"remove state directory {path}", e) from e


def _write_atomically(path: str, text: str) -> None:
    # Atomic (a reader sees the old file or the new one) but not fsynced, as runc writes its
    # state: it describes processes, which a crash of the machine ends too, and the state root
    # is normally a tmpfs.  (Two fsyncs per write cost ~1 ms each on a disk.)
    try:
        write_atomic(path, text.encode(), sync=False)
    except OSError as e:
        raise from_oserror(f"write {path}", e) from e
