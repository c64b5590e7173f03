"""Containers in the store: each a read-write layer on top of an image's layers, or on
nothing (a container of no image: `pypod-build from scratch`; its `image_id` is "")."""

from __future__ import annotations

import time

from pypod.errors import AlreadyExists, ContainerNotFound, InvalidArgument
from pypod.storage.images import ImageStore
from pypod.storage.layers import new_id
from pypod.storage.records import Container

TYPE_CHECKING = False
if TYPE_CHECKING:  # tar and its friends are imported when a layer is read or written
    from collections.abc import Iterable, Sequence
    from typing import Any, BinaryIO

    from pypod.storage.archive.changes import Change
    from pypod.storage.archive.export import ExportResult


class ContainerStore(ImageStore):
    """Containers: names, an image, opaque metadata, and their own read-write layer."""

    def _container_rows(self, where: str, args: Sequence[Any]) -> list[Container]:
        rows = self._q(
            "SELECT id, image_id, layer_id, metadata, created FROM containers " + where, args
        )
        names: dict[str, list[str]] = {r[0]: [] for r in rows}
        if rows:
            for name, cid in self._q(
                "SELECT name, container_id FROM container_names ORDER BY rowid"
            ):
                if cid in names:
                    names[cid].append(name)
        return [
            Container(
                id=r[0],
                names=tuple(names[r[0]]),
                image_id=r[1] or "",
                layer_id=r[2],
                metadata=r[3],
                created=r[4],
            )
            for r in rows
        ]

    def container(self, id_or_name: str) -> Container:
        rows = self._q(
            "SELECT id FROM containers WHERE id = ? UNION "
            "SELECT container_id FROM container_names WHERE name = ?",
            (id_or_name, id_or_name),
        )
        if not rows and len(id_or_name) >= 3:
            rows = self._q(
                "SELECT id FROM containers WHERE id >= ? AND id < ? LIMIT 2",
                (id_or_name, id_or_name + "g"),
            )
            if len(rows) > 1:
                raise InvalidArgument(f"{id_or_name}: more than one container matches")
        found = self._container_rows("WHERE id = ?", (rows[0][0],)) if rows else []
        if not found:
            raise ContainerNotFound(f"no container with name or ID {id_or_name!r} found")
        return found[0]

    def containers(self) -> list[Container]:
        return self._container_rows("ORDER BY created", ())

    def create_container(
        self,
        image: str | None,
        names: Iterable[str] = (),
        metadata: str = "",
        *,
        container_id: str | None = None,
        volatile: bool = False,
    ) -> Container:
        """A container of `image`: its own read-write layer on top of the image's layers.
        With `image` None, a container of no image: an empty layer with no parent.
        `volatile`: removed once it ends (`--rm`): nothing of it is synced (as containers/storage
        keeps a volatile container's layer; a power failure may leave its directory behind)."""
        cid = container_id or new_id()
        names = list(dict.fromkeys(names))
        layer_id = new_id()
        live = self._liveness(layer_id)
        live.acquire()
        created = False
        try:
            with self._lock:
                img = self.image(image) if image is not None else None
                image_id, parent = (img.id, img.top_layer) if img is not None else (None, None)
                self._check_container_free(cid, names)
                with self._txn(durable=not volatile) as db:
                    db.execute(
                        "INSERT INTO layers (id, parent, created, incomplete) VALUES (?, ?, ?, 1)",
                        (layer_id, parent, time.time()),
                    )
                created = True
            self.driver.create(layer_id, parent)
            with self._lock:
                self._check_container_free(cid, names)
                # not synced: lost to a power failure, the layer row stays `incomplete` and
                # the next open removes it (the first commit, synced, made it so)
                with self._txn(durable=False) as db:
                    db.execute("UPDATE layers SET incomplete = 0 WHERE id = ?", (layer_id,))
                    db.execute(
                        "INSERT INTO containers (id, image_id, layer_id, metadata, created) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (cid, image_id, layer_id, metadata, time.time()),
                    )
                    db.executemany(
                        "INSERT INTO container_names (name, container_id) VALUES (?, ?)",
                        [(n, cid) for n in names],
                    )
                created = False
                live.unlink()
        except BaseException:
            if created:
                with self._lock:
                    self._drop_staged(layer_id)
            raise
        finally:
            if live.held:
                try:
                    live.unlink()
                finally:
                    live.release()
        return self.container(cid)

    def _check_container_free(self, cid: str, names: list[str]) -> None:
        if self._q("SELECT 1 FROM containers WHERE id = ?", (cid,)):
            raise AlreadyExists(f"a container with id {cid} exists already")
        for name in names:
            if self._q("SELECT 1 FROM container_names WHERE name = ?", (name,)):
                raise AlreadyExists(
                    f"the container name {name!r} is already in use; remove that container "
                    "or choose another name"
                )

    def set_container_names(self, id_or_name: str, names: Sequence[str]) -> None:
        """Replace the container's names (`rename`): the old ones are free again."""
        with self._lock:
            cid = self.container(id_or_name).id
            names = list(dict.fromkeys(names))
            for name in names:
                taken = self._q("SELECT container_id FROM container_names WHERE name = ?", (name,))
                if taken and taken[0][0] != cid:
                    raise AlreadyExists(
                        f"the container name {name!r} is already in use; remove that container "
                        "or choose another name"
                    )
            with self._txn() as db:
                db.execute("DELETE FROM container_names WHERE container_id = ?", (cid,))
                db.executemany(
                    "INSERT INTO container_names (name, container_id) VALUES (?, ?)",
                    [(n, cid) for n in names],
                )

    def set_container_metadata(self, id_or_name: str, metadata: str) -> None:
        with self._lock:
            cid = self.container(id_or_name).id
            with self._txn() as db:
                db.execute("UPDATE containers SET metadata = ? WHERE id = ?", (metadata, cid))

    def mount_container(
        self, id_or_name: str, *, mount_label: str | None = None, volatile: bool = False
    ) -> str:
        """Mount the container's root (image layers below, its own layer on top); counted.
        `volatile`: a container removed once it ends (`--rm`): its writes are never synced."""
        with self._lock:
            found = self.container(id_or_name)
            return self.driver.mount(found.layer_id, mount_label=mount_label, volatile=volatile)

    def unmount_container(self, id_or_name: str, *, force: bool = False) -> bool:
        """Drop one mount reference (every one with `force`); True when unmounted."""
        with self._lock:
            found = self.container(id_or_name)
            return self.driver.unmount(found.layer_id, force=force)

    def container_mount_count(self, id_or_name: str) -> int:
        return self.driver.mount_count(self.container(id_or_name).layer_id)

    def delete_container(self, id_or_name: str) -> None:
        """Remove a container and its layer (unmounted first, whoever mounted it)."""
        with self._lock:
            found = self.container(id_or_name)
            lives = self._take_liveness([found.layer_id])
            try:
                with self._txn() as db:
                    db.execute("DELETE FROM containers WHERE id = ?", (found.id,))
                    self._mark_incomplete(db, lives)
            except BaseException:
                self._release(lives)
                raise
        self._remove_layers(lives)

    def diff(self, id_or_name: str) -> list[Change]:
        """The container's changes to its image (A/C/D, as `podman diff`)."""
        found = self.container(id_or_name)
        parent = self.layer(found.layer_id).parent
        return self.driver.changes(found.layer_id, parent)

    def export_container_diff(
        self, id_or_name: str, out: BinaryIO, compression: str | None = None
    ) -> ExportResult:
        """Write the layer tar of the container's changes (commit, export) to `out`."""
        from pypod.storage.archive.export import export_changes

        found = self.container(id_or_name)
        parent = self.layer(found.layer_id).parent
        changes = self.driver.changes(found.layer_id, parent)
        return export_changes(
            self.driver.diff_path(found.layer_id), changes, out, compression=compression
        )
