"""The store: layers, images and containers of one graphroot/runroot, safe across processes.

On disk:

    <graphroot>/storage.db           metadata (SQLite, WAL; see storage.db for why)
    <graphroot>/storage.lock         the store lock (flock), held per operation
    <graphroot>/<driver>/...         layer directories (see the driver's module)
    <graphroot>/images/<id>/<alg>-<hex>   manifest and config blobs, named by digest
    <graphroot>/tar-split/<layer-id>.gz   the layout of the tar a layer came from (tarsplit)
    <runroot>/locks/<layer-id>.lock  liveness lock of a layer being filled or removed
    <runroot>/<driver>/mounts/<id>   mount counts; <runroot>/<driver>/mounts.lock

Every change follows one pattern, so that a crash (SIGKILL) anywhere leaves a store the next
`Store()` repairs:

- a layer row is inserted with `incomplete=1` (store lock held, liveness lock held), its
  directory is created and filled (liveness lock only: applying a big layer does not stop other
  commands), then the row is completed (store lock).  Removing a layer is the same backwards:
  marked incomplete, files removed, row deleted.  A new layer is staged under a random id and
  renamed to its chain id once its diff id is known; when the chain id exists by then (another
  process stored the same layer meanwhile) the staged copy is dropped and the existing layer
  returned.  With overlay, a layer can also be staged before its parent is known
  (`stage_layer`, what a pull does for all of an image's layers at once) and given its parent
  and chain id later (`commit_staged`); until then it is an incomplete layer like any other;
- an image's blobs are written (temporary file, fsync, rename) before the row that names them;
- on opening, with the store lock held, incomplete layers whose liveness lock is free (their
  process died) are removed, image directories with no row are removed, and the driver drops
  stale mount counts, unmounts mounts nobody counts and removes layer directories with no row.

The store lock is never held across network I/O: the API takes blobs and streams that are
already local (the copy pipeline downloads into staging first).
"""

from __future__ import annotations

import os
import stat

from pypod.storage.containers import ContainerStore
from pypod.storage.drivers import DEFAULT_DRIVER
from pypod.storage.layers import chain_id
from pypod.storage.records import DiskUsage, ImageUsage

__all__ = ["Store", "chain_id"]


class Store(ContainerStore):
    """One store.  Thread-safe; several processes may use the same store at once.

    Layers (`put_layer`, `layer`, `layers`, `chain`, `delete_layer`, ...) come from
    `storage.layers`, images from `storage.images`, containers from `storage.containers`.
    """

    @classmethod
    def open(cls, graphroot: str, runroot: str, driver: str = DEFAULT_DRIVER) -> Store:
        """Open (create) the store and repair what a crashed command left."""
        return cls(graphroot, runroot, driver)

    def disk_usage(self) -> DiskUsage:
        """Sizes for `system df`: images (their layers' uncompressed sizes, unique and shared)
        and containers (bytes in their read-write layers)."""
        layers = {layer.id: layer for layer in self.layers()}
        chains: dict[str, list[str]] = {}
        users: dict[str, int] = {}
        images = self.images()
        for img in images:
            chain: list[str] = []
            layer_id = img.top_layer
            while layer_id is not None and layer_id in layers:
                chain.append(layer_id)
                layer_id = layers[layer_id].parent
            chains[img.id] = chain
            for lid in chain:
                users[lid] = users.get(lid, 0) + 1
        per_image = {
            r[0]: r[1]
            for r in self._q("SELECT image_id, COUNT(*) FROM containers GROUP BY image_id")
        }
        out: list[ImageUsage] = []
        for img in images:
            sizes = [(layers[lid].uncompressed_size or 0, users[lid]) for lid in chains[img.id]]
            size = sum(s for s, _ in sizes)
            unique = sum(s for s, n in sizes if n == 1)
            out.append(
                ImageUsage(
                    id=img.id,
                    names=img.names,
                    size=size,
                    unique_size=unique,
                    shared_size=size - unique,
                    containers=per_image.get(img.id, 0),
                )
            )
        counted = {lid for chain in chains.values() for lid in chain}
        containers = tuple(
            (c.id, _du(self.driver.diff_path(c.layer_id))) for c in self.containers()
        )
        return DiskUsage(
            images=tuple(out),
            layers_size=sum(layers[lid].uncompressed_size or 0 for lid in counted),
            containers=containers,
        )


def _du(path: str) -> int:
    """Bytes of the files below `path` (apparent sizes; hardlinks counted once)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(path):
        for name in files + dirs:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            if not stat.S_ISDIR(st.st_mode):
                total += st.st_size
    return total
