"""Control groups for containers: one CgroupManager interface, cgroup v1 and v2 behind it.

The mode is detected at run time from /proc/self/mountinfo:

- UNIFIED: one cgroup2 hierarchy (normally at /sys/fs/cgroup)          -> v2.V2Manager
- HYBRID: v1 controllers plus a cgroup2 hierarchy (/sys/fs/cgroup/unified) -> v1.V1Manager
  (limits through v1; the container also gets a directory in the cgroup2 hierarchy)
- LEGACY: v1 controllers only                                          -> v1.V1Manager

Typical use by the runtime (each step may run in a different process; the manager is saved
with `to_state()` in state.json and re-opened with `manager_from_state()`):

    m = new_manager(spec.linux.cgroups_path, container_id)
    m.create(); m.set_resources(resources); m.add_pid(init_pid)     # create
    m.self_join()       # or: how the init can be born in / move itself into them (create)
    m.freeze() / m.thaw()                                            # pause / resume
    m.pids(); m.kill_all(signal.SIGKILL)                             # ps / kill --all
    m.update(resources)                                              # update
    m.destroy()                                                      # delete

Device rules are applied as given: the runtime must pass the complete list (including the
default allowed devices runc's specconv appends); an empty list leaves device access as is.
This package is the only code that touches /sys/fs/cgroup.
"""

from __future__ import annotations

from pypod.errors import InvalidArgument, NotSupported, from_oserror
from pypod.linux.cgroups import paths as _paths
from pypod.record import record
from pypod.stdlite import one_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, Final, Literal, Protocol

    from pypod.oci.runtime_spec import LinuxResources

    FreezerState = Literal["THAWED", "FROZEN", "FREEZING"]

# (CgroupManager and FreezerState exist for type checkers only)
__all__ = [
    "CgroupMode",
    "SelfJoin",
    "detect_mode",
    "manager_from_state",
    "new_manager",
]

#: Version of the dict `to_state()` returns; bumped on incompatible changes.
STATE_VERSION = 1


class CgroupMode:
    """The host's cgroup layout: one of these strings (the "mode" of `to_state()`)."""

    LEGACY: Final = "legacy"  # cgroup v1 only
    HYBRID: Final = "hybrid"  # cgroup v1 controllers plus a controller-less (or nearly) cgroup2
    UNIFIED: Final = "unified"  # cgroup v2 only

    @staticmethod
    def parse(value: object) -> str:
        """The mode named `value`; ValueError for anything else."""
        return one_of(
            value, (CgroupMode.LEGACY, CgroupMode.HYBRID, CgroupMode.UNIFIED), "CgroupMode"
        )


@record
class SelfJoin:
    """How a new process can enter the container's cgroups without being moved by another.

    A move by another process (a write of cgroup.procs) takes the kernel's global
    cgroup_threadgroup_rwsem for writing, which first waits for an RCU grace period when no move
    happened just before (10-20 ms here).  Without it: the process is born in `clone_into`, a
    cgroup2 directory (clone3 with CLONE_INTO_CGROUP, see pypod.linux.clone), then writes "0" to
    each of the v1 `tasks` files in `tasks` (a thread that moves itself takes no global lock;
    for a process with a single thread that moves the process).
    """

    #: the cgroup2 directory to be born in (HYBRID: the one under "unified"; UNIFIED: the
    #: container's); None on a LEGACY host
    clone_into: str | None
    #: the v1 `tasks` files to write "0" to, one per hierarchy
    tasks: tuple[str, ...] = ()
    #: whether a birth in `clone_into` counts against the container's pids limit (v2; on a
    #: v1 host the limit is a v1 one, and a move there ignores it, as a move by another does)
    pids_limited: bool = False


if TYPE_CHECKING:

    class CgroupManager(Protocol):
        """A container's cgroup(s).  Every method works in a fresh process (see to_state)."""

        #: the host's cgroup filesystems as new_manager found them (what a container's
        #: /sys/fs/cgroup binds); () for a manager re-opened with manager_from_state
        host_mounts: tuple[_paths.CgroupMount, ...]

        @property
        def mode(self) -> str:
            """One of CgroupMode's."""
            ...

        @property
        def paths(self) -> Mapping[str, str]:
            """{controller: directory}; v2 and the hybrid cgroup2 directory under "unified"."""
            ...

        def create(self) -> None:
            """Make the directories (and, v2, enable controllers in the parents)."""
            ...

        def add_pid(self, pid: int) -> None: ...

        def self_join(self) -> SelfJoin | None:
            """How a process may join these cgroups by itself (see SelfJoin); None: only with
            add_pid (rootless: a move by a user follows other rules; nothing created)."""
            ...

        def set_resources(self, res: LinuxResources) -> None:
            """Apply the initial limits (call it before add_pid for realtime CPU limits)."""
            ...

        def update(self, res: LinuxResources) -> None:
            """Change limits of a running container (same code path as set_resources)."""
            ...

        def freeze(self) -> None:
            """Freeze every process; returns once the cgroup is FROZEN."""
            ...

        def thaw(self) -> None: ...

        def freezer_state(self) -> FreezerState: ...

        def pids(self) -> list[int]:
            """Every process in the cgroup and its descendants."""
            ...

        def kill_all(self, sig: int) -> None: ...

        def destroy(self) -> None:
            """Remove the directories (deepest first); a missing one is fine."""
            ...

        def exists(self) -> bool: ...

        def to_state(self) -> dict[str, Any]:
            """JSON-serialisable data for manager_from_state()."""
            ...

        def stats(self) -> dict[str, Any]:
            """cpu, memory and pids figures, shaped like `runc events --stats` data."""
            ...


def _read_mountinfo() -> str:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            return f.read()
    except OSError as err:
        raise from_oserror("cgroup: read /proc/self/mountinfo", err) from None


def _read_own_cgroup() -> dict[str, str]:
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as f:
            return _paths.parse_proc_cgroup(f.read())
    except OSError as err:
        raise from_oserror("cgroup: read /proc/self/cgroup", err) from None


def detect_mode(mountinfo: str | None = None) -> str:
    """CgroupMode.LEGACY, HYBRID or UNIFIED from the cgroup mounts (by default, of
    /proc/self/mountinfo)."""
    return _mode_of(_paths.parse_mountinfo(_read_mountinfo() if mountinfo is None else mountinfo))


def _mode_of(mounts: list[_paths.CgroupMount]) -> str:
    # a named-only v1 hierarchy (name=systemd beside a cgroup2 root) controls nothing
    has_v1 = any(
        m.version == 1 and any(not c.startswith("name=") for c in m.controllers) for m in mounts
    )
    has_v2 = any(m.version == 2 for m in mounts)
    if has_v1:
        return CgroupMode.HYBRID if has_v2 else CgroupMode.LEGACY
    if has_v2:
        return CgroupMode.UNIFIED
    raise NotSupported("cgroup: no cgroup filesystem is mounted (see /proc/self/mountinfo)")


def new_manager(cgroups_path: str, container_id: str, *, rootless: bool = False) -> CgroupManager:
    """The manager for a container's OCI `linux.cgroupsPath` on this host.

    Nothing is created yet (see create()).  Rootless: failures to create the cgroup are
    ignored when no cgroupsPath was given, but a limit that then cannot be set is an error.
    """
    parts = cgroups_path.split(":")
    if len(parts) == 3 and (parts[0] == "" or parts[0].endswith(".slice")):
        raise NotSupported(
            f'cgroup: cgroupsPath "{cgroups_path}" looks like a systemd slice:unit path; '
            "the systemd cgroup driver is not available (no systemd on this host)"
        )
    inner = _paths.inner_path(cgroups_path, container_id)
    mounts = _paths.parse_mountinfo(_read_mountinfo())
    mode = _mode_of(mounts)
    explicit = bool(cgroups_path)
    if mode == CgroupMode.UNIFIED:
        from pypod.linux.cgroups.v2 import V2Manager

        root = next(m.mountpoint for m in mounts if m.version == 2)
        own = _read_own_cgroup().get("", "/") if not inner.startswith("/") else "/"
        directory = _paths.v2_path(root, own, inner)
        v2 = V2Manager(directory, root=root, rootless=rootless, explicit_path=explicit)
        v2.host_mounts = tuple(mounts)
        return v2
    from pypod.linux.cgroups.v1 import V1Manager

    own_map = _read_own_cgroup() if not inner.startswith("/") else {}
    dirs = _paths.v1_paths(mounts, own_map, inner)
    v1 = V1Manager(
        dirs,
        mode=mode,
        mountpoints=sorted(_paths.mountpoints(mounts)),
        rootless=rootless,
        explicit_path=explicit,
    )
    v1.host_mounts = tuple(mounts)
    return v1


def manager_from_state(data: Mapping[str, Any]) -> CgroupManager:
    """Re-open the manager `to_state()` described (no path is resolved again)."""
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        raise InvalidArgument(f"cgroup: unsupported saved cgroup state: {data!r}")
    try:
        mode = CgroupMode.parse(data["mode"])
        saved_paths = {str(k): str(v) for k, v in dict(data["paths"]).items()}
        rootless = bool(data.get("rootless", False))
        explicit = bool(data.get("explicit_path", True))
        if mode == CgroupMode.UNIFIED:
            from pypod.linux.cgroups.v2 import V2Manager

            return V2Manager(
                saved_paths[_paths.UNIFIED],
                root=str(data["root"]),
                rootless=rootless,
                explicit_path=explicit,
                created=data.get("created"),
            )
        from pypod.linux.cgroups.v1 import V1Manager

        return V1Manager(
            saved_paths,
            mode=mode,
            mountpoints=[str(p) for p in data.get("mountpoints", [])],
            rootless=rootless,
            explicit_path=explicit,
            skipped=[str(s) for s in data.get("skipped", [])],
        )
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidArgument(f"cgroup: invalid saved cgroup state ({e}): {dict(data)!r}") from e
