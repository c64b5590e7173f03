"""The cgroup v2 (unified hierarchy) manager: one directory per container.

`root` is the cgroup2 mount point; tests pass a temporary directory laid out like a cgroup2
tree (cgroup.controllers, cgroup.subtree_control, ... as plain files) to check file formats.
"""

from __future__ import annotations

import errno
import os
import time

from pypod.errors import InvalidArgument, NotSupported, OSLevelError, PypodError
from pypod.linux.cgroups import (
    STATE_VERSION,
    CgroupMode,
    SelfJoin,
    files,
    stats,
    v2_resources,
)
from pypod.linux.cgroups.bpf_devices import apply_device_rules
from pypod.linux.cgroups.devices import normalize
from pypod.linux.cgroups.paths import UNIFIED
from pypod.log import get_logger
from pypod.stdlite import signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from pypod.linux.cgroups import FreezerState
    from pypod.linux.cgroups.paths import CgroupMount
    from pypod.oci.runtime_spec import LinuxResources

log = get_logger(__name__)

FREEZE_TIMEOUT = 10.0


def enable_controllers(root: str, directory: str, wanted: list[str] | None = None) -> None:
    """Create `directory` below `root`, enabling controllers in every ancestor's
    cgroup.subtree_control on the way down (all that `root` offers, or only `wanted`).

    A controller that cannot be enabled is skipped here: setting a limit that needs it then
    fails with a clear error (v2_resources.check_controllers).
    """
    rel = os.path.relpath(directory, root)
    if rel.startswith("..") or rel == ".":
        raise InvalidArgument(f"cgroup: {directory} is not below the cgroup2 root {root}")
    offered = (files.read_optional(root, "cgroup.controllers") or "").split()
    controllers = [c for c in offered if wanted is None or c in wanted]
    request = " ".join("+" + c for c in controllers)
    current = root
    for element in rel.split("/"):
        if controllers:
            _enable(current, request, controllers)
        current = os.path.join(current, element)
        files.make_dir(current)


def _enable(directory: str, request: str, controllers: list[str]) -> None:
    enabled = set((files.read_optional(directory, "cgroup.subtree_control") or "").split())
    if all(c in enabled for c in controllers):
        return
    try:
        files.write(directory, "cgroup.subtree_control", request)
    except PypodError:
        for c in controllers:  # one by one: some may be refused (rootless, threaded...)
            try:
                files.write(directory, "cgroup.subtree_control", "+" + c)
            except PypodError as e:
                log.debug("cgroup: cannot enable %s in %s: %s", c, directory, e)


class V2Manager:
    #: the host's cgroup filesystems as new_manager found them (see CgroupManager)
    host_mounts: tuple[CgroupMount, ...] = ()

    def __init__(
        self,
        path: str,
        *,
        root: str = "/sys/fs/cgroup",
        rootless: bool = False,
        explicit_path: bool = True,
        created: bool | None = None,
    ) -> None:
        self._path = os.path.normpath(path)
        self._root = os.path.normpath(root)
        if self._path == self._root or not self._path.startswith(self._root + "/"):
            raise InvalidArgument(f"cgroup: {path} is not a cgroup below {root}")
        self._rootless = rootless
        self._explicit = explicit_path
        # False when a rootless create() was refused and ignored
        self._created = True if created is None else created

    @property
    def mode(self) -> str:
        return CgroupMode.UNIFIED

    @property
    def paths(self) -> Mapping[str, str]:
        return {UNIFIED: self._path}

    @property
    def path(self) -> str:
        return self._path

    # --- lifecycle -----------------------------------------------------------------------------

    def create(self) -> None:
        try:
            enable_controllers(self._root, self._path)
        except PypodError as e:
            if self._rootless and not self._explicit and e.is_permission_error():
                log.debug("cgroup: rootless, continuing without a cgroup: %s", e)
                self._created = False
                return
            raise
        self._created = True

    def add_pid(self, pid: int) -> None:
        if not self._created:
            return
        files.add_proc(self._path, pid)

    def self_join(self) -> SelfJoin | None:
        if self._rootless or not self._created:
            return None
        return SelfJoin(clone_into=self._path, pids_limited=True)

    def set_resources(self, res: LinuxResources) -> None:
        self._apply(res, updating=False)

    def update(self, res: LinuxResources) -> None:
        self._apply(res, updating=True)

    def _apply(self, res: LinuxResources, *, updating: bool) -> None:
        d = self._path
        if not self._created:
            if v2_resources.needed_controllers(res) or res.devices:
                raise NotSupported(
                    "cgroup: cannot set resource limits: rootless container could not create "
                    f"its cgroup {d}; set no limits or get a delegated cgroup"
                )
            return
        v2_resources.check_controllers(d, res)
        v2_resources.cgroup_type_allows(d, res)
        v2_resources.set_network(res)
        v2_resources.set_pids(d, res.pids)
        v2_resources.set_memory(d, res.memory, updating=updating)
        v2_resources.set_io(d, res.block_io)
        v2_resources.set_cpu(d, res.cpu)
        if res.devices:
            rules = [normalize(r) for r in res.devices]
            try:
                apply_device_rules(d, rules)
            except PypodError as e:
                if not self._rootless:
                    raise
                log.debug("cgroup: rootless, device rules not applied: %s", e)
        v2_resources.set_hugetlb(d, res.hugepage_limits)
        v2_resources.set_rdma(d, res.rdma)
        v2_resources.set_unified(d, res.unified)

    def destroy(self) -> None:
        files.remove_tree(self._path)

    def exists(self) -> bool:
        return os.path.isdir(self._path)

    # --- freezer -------------------------------------------------------------------------------

    def freeze(self) -> None:
        if not files.exists(self._path, "cgroup.freeze"):
            raise NotSupported(
                f"cgroup: cannot freeze {self._path}: no cgroup.freeze (kernel before 5.2)"
            )
        files.write(self._path, "cgroup.freeze", "1")
        deadline = time.monotonic() + FREEZE_TIMEOUT
        while self.freezer_state() != "FROZEN":
            if time.monotonic() > deadline:
                files.write(self._path, "cgroup.freeze", "0")
                raise OSLevelError(f"cgroup: {self._path} did not freeze", errno=errno.ETIMEDOUT)
            time.sleep(0.001)

    def thaw(self) -> None:
        if files.exists(self._path, "cgroup.freeze"):
            files.write(self._path, "cgroup.freeze", "0")

    def freezer_state(self) -> FreezerState:
        wanted = (files.read_optional(self._path, "cgroup.freeze") or "0").strip()
        if wanted != "1":
            return "THAWED"
        frozen = files.read_keyed(self._path, "cgroup.events").get("frozen", 0)
        return "FROZEN" if frozen == 1 else "FREEZING"

    # --- processes -----------------------------------------------------------------------------

    def pids(self) -> list[int]:
        return files.all_pids(self._path)

    def kill_all(self, sig: int) -> None:
        if sig == signal.SIGKILL and files.exists(self._path, "cgroup.kill"):
            files.write(self._path, "cgroup.kill", "1")
            return
        stats.signal_all(self, sig)

    # --- state and stats -----------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "mode": CgroupMode.UNIFIED,
            "root": self._root,
            "paths": {UNIFIED: self._path},
            "rootless": self._rootless,
            "explicit_path": self._explicit,
            "created": self._created,
        }

    def stats(self) -> dict[str, Any]:
        return stats.v2_stats(self._path)
