"""The cgroup v1 manager (LEGACY and HYBRID hosts): one directory per mounted hierarchy.

`paths` maps each controller to its directory ("cpu" and "cpuacct" share one when they are
mounted together), including "name=systemd", and in HYBRID mode the cgroup2 directory under
"unified".  Limits go through the v1 controllers; in HYBRID mode the cgroup2 directory only
holds the processes, except for hugetlb limits when hugetlb is a cgroup2-only controller.
"""

from __future__ import annotations

import errno
import os
import time

from pypod.errors import NotSupported, OSLevelError, PypodError, from_oserror
from pypod.linux.cgroups import (
    STATE_VERSION,
    CgroupMode,
    SelfJoin,
    files,
)
from pypod.linux.cgroups.paths import UNIFIED
from pypod.log import get_logger
from pypod.stdlite import suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

    from pypod.linux.cgroups import FreezerState
    from pypod.linux.cgroups.paths import CgroupMount
    from pypod.oci.runtime_spec import LinuxResources

log = get_logger(__name__)

FREEZE_ATTEMPTS = 1000


class V1Manager:
    #: the host's cgroup filesystems as new_manager found them (see CgroupManager)
    host_mounts: tuple[CgroupMount, ...] = ()

    def __init__(
        self,
        paths: Mapping[str, str],
        *,
        mode: str = CgroupMode.LEGACY,
        mountpoints: Iterable[str] = (),
        rootless: bool = False,
        explicit_path: bool = True,
        skipped: Iterable[str] = (),
    ) -> None:
        self._paths = {k: os.path.normpath(v) for k, v in paths.items()}
        self._mode = mode
        self._mountpoints = sorted({os.path.normpath(m) for m in mountpoints})
        self._rootless = rootless
        self._explicit = explicit_path
        # controllers whose directory a rootless create() could not make (and dropped)
        self._skipped = set(skipped)
        for controller, path in self._paths.items():
            if path in self._mountpoints:
                raise NotSupported(
                    f"cgroup: refusing to manage the root cgroup {path} ({controller})"
                )

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def paths(self) -> Mapping[str, str]:
        return dict(self._paths)

    def _dirs(self) -> list[str]:
        """Each directory once (co-mounted controllers share one), in a stable order."""
        return list(dict.fromkeys(self._paths.values()))

    def _mountpoint_of(self, path: str) -> str:
        best = ""
        for m in self._mountpoints:
            if (path == m or path.startswith(m + "/")) and len(m) > len(best):
                best = m
        return best or os.path.dirname(path)

    # --- lifecycle -----------------------------------------------------------------------------

    def create(self) -> None:
        for controller, path in list(self._paths.items()):
            try:
                if controller == "cpuset":
                    _cpuset_create(path, self._mountpoint_of(path))
                else:
                    _makedirs(path)
            except PypodError as e:
                if self._rootless and not self._explicit and e.is_permission_error():
                    log.debug("cgroup: rootless, continuing without %s: %s", controller, e)
                    del self._paths[controller]
                    self._skipped.add(controller)
                    continue
                raise

    def add_pid(self, pid: int) -> None:
        for path in self._dirs():
            files.add_proc(path, pid)

    def self_join(self) -> SelfJoin | None:
        if self._rootless or not self._paths:
            return None
        unified = self._paths.get(UNIFIED)
        tasks = tuple(os.path.join(d, "tasks") for d in self._dirs() if d != unified)
        return SelfJoin(clone_into=unified, tasks=tasks)

    def set_resources(self, res: LinuxResources) -> None:
        self._apply(res)

    def update(self, res: LinuxResources) -> None:
        self._apply(res)

    def _need(self, controller: str, what: str) -> str:
        path = self._paths.get(controller)
        if path is not None:
            return path
        if controller in self._skipped:
            raise NotSupported(
                f"cgroup: cannot set {what}: the container could not create its {controller} "
                "cgroup (rootless without a delegated cgroup); set no such limit"
            )
        raise NotSupported(
            f"cgroup: cannot set {what}: the {controller} controller is not mounted on this "
            f"host ({self._mode} cgroups)"
        )

    def _apply(self, res: LinuxResources) -> None:
        # imported here: a container's create makes its directories before it forks the init
        # and sets their limits meanwhile (pypod.runtime.process.parent.launch)
        from pypod.linux.cgroups import v1_resources
        from pypod.linux.cgroups.devices import normalize

        if res.unified:
            raise NotSupported(
                "cgroup: the unified resources map needs cgroup v2; this host manages "
                f"container limits with cgroup v1 ({self._mode} mode)"
            )
        hugetlb_v2 = bool(res.hugepage_limits) and self._hugetlb_in_unified()
        for controller, what in v1_resources.needed_controllers(res):
            if controller == "hugetlb" and hugetlb_v2:
                continue
            if controller == "devices" and self._rootless and controller not in self._paths:
                continue
            self._need(controller, what)
        p = self._paths
        if "cpuset" in p:
            v1_resources.set_cpuset(p["cpuset"], res.cpu)
        if res.devices and "devices" in p:
            rules = [normalize(r) for r in res.devices]
            try:
                v1_resources.set_devices(p["devices"], rules)
            except PypodError as e:
                if not self._rootless:
                    raise
                log.debug("cgroup: rootless, device rules not applied: %s", e)
        if "memory" in p:
            v1_resources.set_memory(p["memory"], res.memory)
        if "cpu" in p:
            v1_resources.set_cpu(p["cpu"], res.cpu)
        if "pids" in p:
            v1_resources.set_pids(p["pids"], res.pids)
        if "blkio" in p:
            v1_resources.set_blkio(p["blkio"], res.block_io)
        if res.hugepage_limits:
            if hugetlb_v2:
                self._set_hugetlb_unified(res)
            else:
                v1_resources.set_hugetlb(p["hugetlb"], res.hugepage_limits)
        if "net_cls" in p:
            v1_resources.set_net_cls(p["net_cls"], res.network)
        if "net_prio" in p:
            v1_resources.set_net_prio(p["net_prio"], res.network)
        if res.rdma:
            from pypod.linux.cgroups import v2_resources  # rdma: cgroup v2 formats

            for line in v2_resources.rdma_lines(res.rdma):
                files.write(p["rdma"], "rdma.max", line, controller="rdma")

    def _hugetlb_in_unified(self) -> bool:
        """HYBRID hosts may offer hugetlb only in the cgroup2 hierarchy (as this one does)."""
        if "hugetlb" in self._paths or UNIFIED not in self._paths:
            return False
        root = self._mountpoint_of(self._paths[UNIFIED])
        return "hugetlb" in (files.read_optional(root, "cgroup.controllers") or "").split()

    def _set_hugetlb_unified(self, res: LinuxResources) -> None:
        path = self._paths[UNIFIED]
        from pypod.linux.cgroups.v2 import enable_controllers  # hybrid hugetlb only

        enable_controllers(self._mountpoint_of(path), path, ["hugetlb"])
        available = (files.read_optional(path, "cgroup.controllers") or "").split()
        if "hugetlb" not in available:
            raise NotSupported(
                f"cgroup: cannot set hugepage limits: the hugetlb controller could not be "
                f"enabled for {path}"
            )
        from pypod.linux.cgroups import v2_resources

        v2_resources.set_hugetlb(path, res.hugepage_limits)

    def destroy(self) -> None:
        first: PypodError | None = None
        for path in self._dirs():
            try:
                files.remove_tree(path)
            except PypodError as e:
                log.debug("cgroup: %s", e)
                first = first or e
        if first is not None:
            raise first

    def exists(self) -> bool:
        path = self._paths.get("devices") or next(iter(self._dirs()), None)
        return path is not None and os.path.isdir(path)

    # --- freezer -------------------------------------------------------------------------------

    def freeze(self) -> None:
        """Freeze, retrying while the kernel reports FREEZING (runc's loop: v1 cannot freeze
        reliably while new processes keep appearing; an occasional thaw helps)."""
        d = self._need("freezer", "the freezer state")
        try:
            for attempt in range(FREEZE_ATTEMPTS):
                if attempt % 50 == 49:
                    files.write(d, "freezer.state", "THAWED", controller="freezer")
                    time.sleep(0.01)
                files.write(d, "freezer.state", "FROZEN", controller="freezer")
                if attempt % 25 == 24:
                    time.sleep(0.001)
                state = files.read(d, "freezer.state").strip()
                if state == "FROZEN":
                    return
                if state != "FREEZING":
                    raise OSLevelError(
                        f'cgroup: unexpected freezer state "{state}" in {d}', errno=errno.EIO
                    )
            raise OSLevelError(f"cgroup: unable to freeze {d}", errno=errno.ETIMEDOUT)
        except PypodError:
            # never leave a cgroup half frozen
            with suppress(PypodError):
                files.write(d, "freezer.state", "THAWED", controller="freezer")
            raise

    def thaw(self) -> None:
        d = self._need("freezer", "the freezer state")
        files.write(d, "freezer.state", "THAWED", controller="freezer")

    def freezer_state(self) -> FreezerState:
        d = self._paths.get("freezer")
        if d is None:
            return "THAWED"
        for _ in range(100):
            state = (files.read_optional(d, "freezer.state") or "THAWED").strip()
            if state == "FROZEN":
                # frozen because of an ancestor only: the container itself is not paused
                own = (files.read_optional(d, "freezer.self_freezing") or "1").strip()
                return "FROZEN" if own == "1" else "THAWED"
            if state == "THAWED":
                return "THAWED"
            time.sleep(0.001)
        return "FREEZING"

    # --- processes -----------------------------------------------------------------------------

    def pids(self) -> list[int]:
        path = self._paths.get("devices") or self._paths.get("freezer")
        if path is None:
            path = next(iter(self._dirs()), None)
        return files.all_pids(path) if path is not None else []

    def kill_all(self, sig: int) -> None:
        from pypod.linux.cgroups import stats  # not on the path of create

        stats.signal_all(self, sig)

    # --- state and stats -----------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "mode": self._mode,
            "paths": dict(self._paths),
            "mountpoints": list(self._mountpoints),
            "rootless": self._rootless,
            "explicit_path": self._explicit,
            "skipped": sorted(self._skipped),
        }

    def stats(self) -> dict[str, Any]:
        from pypod.linux.cgroups import stats

        return stats.v1_stats(dict(self._paths))


def _cpuset_create(d: str, mountpoint: str) -> None:
    """Create `d` and any missing parent, each starting with its parent's cpus and mems.

    A new v1 cpuset cgroup has empty cpuset.cpus/mems and refuses tasks until they are set.
    """
    rel = os.path.relpath(d, mountpoint)
    parent = mountpoint
    for element in rel.split("/"):
        current = os.path.join(parent, element)
        files.make_dir(current)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not (files.read_optional(current, name) or "").strip():
                value = (files.read_optional(parent, name) or "").strip()
                if value:
                    files.write(current, name, value, controller="cpuset")
        parent = current


def _makedirs(path: str) -> None:
    try:
        os.makedirs(path, 0o755, exist_ok=True)
    except OSError as err:
        raise from_oserror(f"cgroup: create {path}", err) from None
