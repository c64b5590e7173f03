"""Storage drivers: how a layer's files are kept and how a chain of layers becomes one root.

A driver keeps one directory per layer under its home (`<graphroot>/<driver>/`) and its mount
counts under the runroot.  It knows nothing of images, names or the metadata database: the store
(`pypod.storage.store`) decides which layers exist and calls the driver with the store lock held
(except `apply_diff`, which runs with only the layer's own liveness lock, see `storage.locks`).

Adding a driver is one new module and one line in `_REGISTRY`.
"""

from __future__ import annotations

import os
import sys

from pypod.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, Protocol

    from pypod.storage.archive.apply import ApplyResult
    from pypod.storage.archive.changes import Change
    from pypod.storage.archive.stream import LayoutRecorder

#: driver name -> "module:class"; imported only when the driver is used
_REGISTRY: tuple[tuple[str, str], ...] = (
    ("overlay", "pypod.storage.drivers.overlay:OverlayDriver"),
    ("vfs", "pypod.storage.drivers.vfs:VfsDriver"),
)

DEFAULT_DRIVER = "overlay"


if TYPE_CHECKING:
    # an interface for type checkers only (nothing checks a driver against it at run time)
    class Driver(Protocol):
        """What the store needs from a storage driver.  Layer ids are 64 lowercase hex digits."""

        #: "overlay", "vfs"
        name: str
        #: `<graphroot>/<name>`: the layer directories
        home: str
        #: whether a layer's files can be applied before its parent is known (`create` with no
        #: parent, `apply_diff`, then `set_parent`): overlay, whose layers hold only their own
        #: files, can; vfs, whose layers are copies of their parents, cannot
        independent_layers: bool

        def create(self, layer_id: str, parent_id: str | None) -> None:
            """An empty layer on top of `parent_id` (vfs: a copy of the parent's files)."""

        def rename(self, old_id: str, new_id: str) -> None:
            """Give a layer that has no child and is not mounted a new id (a staged layer becomes
            its chain id once its content, hence its diff id, is known)."""

        def set_parent(self, layer_id: str, parent_id: str) -> None:
            """Put a layer created with no parent on top of `parent_id` (before it is used); only
            for `independent_layers` drivers."""

        def apply_diff(
            self, layer_id: str, stream: BinaryIO, *, layout: LayoutRecorder | None = None
        ) -> ApplyResult:
            """Apply a layer tar (plain, gzip or zstd) to the layer, through `storage.archive`;
            `layout` records the tar's layout in the same pass."""

        def mount(
            self, layer_id: str, *, mount_label: str | None = None, volatile: bool = False
        ) -> str:
            """Mount the layer over its parents (read-write: the layer is the upper directory) and
            return the path of the merged root.  Counted: N mounts need N unmounts, from any
            process (the count is kept on disk under the runroot).  `volatile`: the layer is thrown
            away after use (a `--rm` container's), its writes need never reach the disk (overlay's
            "volatile" option, as containers/storage mounts a volatile container's)."""

        def unmount(self, layer_id: str, *, force: bool = False) -> bool:
            """Drop one mount reference (all of them with `force`); True when really unmounted."""

        def mount_count(self, layer_id: str) -> int: ...

        def remove(self, layer_id: str) -> None:
            """Remove the layer's files (unmounting it first if needed); no error when absent."""

        def exists(self, layer_id: str) -> bool: ...

        def diff_path(self, layer_id: str) -> str:
            """The directory holding the layer's own files (overlay: its upper dir; vfs: the full
            root).  What `storage.archive.export_changes` reads."""

        def changes(self, layer_id: str, parent_id: str | None) -> list[Change]:
            """What the layer adds, changes and deletes compared to its parent chain (A/C/D)."""

        def layer_ids(self) -> list[str]:
            """Every layer directory present (for crash recovery's sweep of orphans)."""

        def recover(self, known: set[str], *, sweep: bool) -> None:
            """Crash recovery: drop stale mount counts and unmount mounts nobody counts; with
            `sweep`, also remove directories of layers not in `known`.  Called with the store lock
            held."""


def driver_names() -> tuple[str, ...]:
    return tuple(name for name, _ in _REGISTRY)


def get_driver(name: str, home: str, *, runroot: str | None = None) -> Driver:
    """The driver `name` keeping its layers in `home` and its mount state in `runroot`
    (default: `home/run`, which does not vanish at reboot; mount counts are then checked
    against the mount table by `recover`)."""
    for known, target in _REGISTRY:
        if known == name:
            module_name, _, class_name = target.partition(":")
            __import__(module_name)  # (importlib itself costs ~0.1 ms to import)
            module = sys.modules[module_name]
            cls = getattr(module, class_name)
            run_home = runroot if runroot is not None else os.path.join(home, "run")
            driver: Driver = cls(home, run_home)
            return driver
    raise InvalidArgument(
        f"unknown storage driver {name!r}; use one of: {', '.join(driver_names())}"
    )
