"""The vfs driver: every layer a full copy of its parent plus its own changes.

Slow and big, but it works on any filesystem and needs no mount: the fallback when overlayfs is
not available, and a reference to compare the overlay driver with.  On disk:
`<graphroot>/vfs/dir/<id>/` is the layer's whole root; "mounting" returns that directory (the
count is still kept, so callers behave the same with both drivers).  Whiteouts in a layer tar
delete from the copy.  `changes` compares the layer with its parent tree.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING, BinaryIO

from pypod.errors import NotFound, NotSupported, StorageError
from pypod.storage.drivers.mountstate import MountCounts

if TYPE_CHECKING:
    from pypod.storage.archive.apply import ApplyResult
    from pypod.storage.archive.changes import Change
    from pypod.storage.archive.stream import LayoutRecorder


class VfsDriver:
    name = "vfs"
    independent_layers = False

    def __init__(self, home: str, run_home: str) -> None:
        self.home = home
        self._dirs = os.path.join(home, "dir")
        self._empty = os.path.join(home, "empty")
        self.counts = MountCounts(os.path.join(run_home, "vfs"))
        os.makedirs(self._dirs, mode=0o700, exist_ok=True)
        os.makedirs(self._empty, mode=0o755, exist_ok=True)

    def diff_path(self, layer_id: str) -> str:
        if not layer_id or "/" in layer_id or layer_id.startswith("."):
            raise StorageError(f"invalid layer id {layer_id!r}")
        return os.path.join(self._dirs, layer_id)

    def exists(self, layer_id: str) -> bool:
        return os.path.isdir(self.diff_path(layer_id))

    def layer_ids(self) -> list[str]:
        return [n for n in os.listdir(self._dirs) if len(n) == 64]

    def create(self, layer_id: str, parent_id: str | None) -> None:
        path = self.diff_path(layer_id)
        if parent_id is None:
            os.mkdir(path, 0o755)
            return
        if not self.exists(parent_id):
            raise NotFound(f"parent layer {parent_id} has no directory in {self.home}")
        from pypod.storage.drivers.copytree import copy_tree

        copy_tree(self.diff_path(parent_id), path)

    def rename(self, old_id: str, new_id: str) -> None:
        os.rename(self.diff_path(old_id), self.diff_path(new_id))

    def remove(self, layer_id: str) -> None:
        with self.counts.lock:
            self.counts.set(layer_id, 0)
        path = self.diff_path(layer_id)
        if os.path.lexists(path):
            shutil.rmtree(path)

    def set_parent(self, layer_id: str, parent_id: str) -> None:
        raise NotSupported(
            "the vfs driver keeps each layer as a copy of its parent: a layer cannot be given "
            "a parent after its files are applied"
        )

    def apply_diff(
        self, layer_id: str, stream: BinaryIO, *, layout: LayoutRecorder | None = None
    ) -> ApplyResult:
        from pypod.storage.archive import VFS
        from pypod.storage.archive.apply import apply_layer

        return apply_layer(stream, self.diff_path(layer_id), whiteouts=VFS, layout=layout)

    def changes(self, layer_id: str, parent_id: str | None) -> list[Change]:
        from pypod.storage.archive.changes import changes_between

        old = self._empty if parent_id is None else self.diff_path(parent_id)
        return changes_between(old, self.diff_path(layer_id))

    def mount_count(self, layer_id: str) -> int:
        return self.counts.get(layer_id)

    def mount(
        self, layer_id: str, *, mount_label: str | None = None, volatile: bool = False
    ) -> str:
        if not self.exists(layer_id):
            raise NotFound(f"layer {layer_id} has no directory in {self.home}")
        with self.counts.lock:
            self.counts.set(layer_id, self.counts.get(layer_id) + 1)
        return self.diff_path(layer_id)

    def unmount(self, layer_id: str, *, force: bool = False) -> bool:
        with self.counts.lock:
            count = self.counts.get(layer_id)
            left = 0 if force else max(count - 1, 0)
            self.counts.set(layer_id, left)
        return left == 0

    def recover(self, known: set[str], *, sweep: bool) -> None:
        with self.counts.lock:
            for layer_id in self.counts.counted():
                if layer_id not in known:
                    self.counts.set(layer_id, 0)
        if not sweep:
            return
        for layer_id in set(self.layer_ids()) - known:
            shutil.rmtree(self.diff_path(layer_id))
