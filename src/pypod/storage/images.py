"""Images in the store: rows, names, manifest digests, and their blobs on disk."""

from __future__ import annotations

import os
import time

from pypod import jsoncodec
from pypod.atomic import fsync_dir, write_atomic
from pypod.errors import ImageNotFound, InUse, InvalidArgument, NotFound
from pypod.oci.digest import digest_bytes, parse_digest
from pypod.sqlite import sqlite3
from pypod.storage.layers import LayerStore, rmtree
from pypod.storage.records import Image

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any


def _blob_name(digest: str) -> str:
    parse_digest(digest)
    algorithm, _, encoded = digest.partition(":")
    return f"{algorithm}-{encoded}"


class ImageStore(LayerStore):
    """Images: an id (the config digest), names, manifest digests, a top layer; the manifest
    and config blobs are files under `<graphroot>/images/<id>/`, written before the row."""

    def _image_rows(self, where: str, args: Sequence[Any]) -> list[Image]:
        rows = self._q(
            "SELECT id, manifest_media_type, config_digest, top_layer, created FROM images "
            + where,
            args,
        )
        if not rows:
            return []
        ids = [r[0] for r in rows]
        names: dict[str, list[str]] = {i: [] for i in ids}
        digests: dict[str, list[str]] = {i: [] for i in ids}
        if len(ids) == 1:
            sel, sel_args = "= ?", ids
        else:
            sel, sel_args = "IN (SELECT id FROM images " + where + ")", list(args)
        for name, image_id in self._q(
            f"SELECT name, image_id FROM image_names WHERE image_id {sel} ORDER BY rowid",
            sel_args,
        ):
            names[image_id].append(name)
        for digest, image_id in self._q(
            f"SELECT digest, image_id FROM image_digests WHERE image_id {sel} ORDER BY seq",
            sel_args,
        ):
            digests[image_id].append(digest)
        return [
            Image(
                id=r[0],
                names=tuple(names[r[0]]),
                digest=digests[r[0]][0] if digests[r[0]] else "",
                digests=tuple(digests[r[0]]),
                manifest_media_type=r[1],
                config_digest=r[2],
                top_layer=r[3],
                created=r[4],
            )
            for r in rows
        ]

    def _resolve_image(self, ref: str) -> str | None:
        """Image id from an id, a name, a manifest or config digest, or a unique id prefix."""
        if self._q("SELECT 1 FROM images WHERE id = ?", (ref,)):
            return ref
        rows = self._q("SELECT image_id FROM image_names WHERE name = ?", (ref,))
        if rows:
            return str(rows[0][0])
        if ":" in ref and not ref.startswith("sha256:"):
            return None
        if ref.startswith("sha256:"):
            rows = self._q("SELECT DISTINCT image_id FROM image_digests WHERE digest = ?", (ref,))
            if not rows:
                rows = self._q("SELECT id FROM images WHERE config_digest = ?", (ref,))
            return str(rows[0][0]) if len(rows) == 1 else None
        if len(ref) >= 3 and all(c in "0123456789abcdef" for c in ref):
            rows = self._q(
                "SELECT id FROM images WHERE id >= ? AND id < ? LIMIT 2", (ref, ref + "g")
            )
            if len(rows) > 1:
                raise InvalidArgument(
                    f"{ref}: more than one image has an id starting so; " "give more of the id"
                )
            return str(rows[0][0]) if rows else None
        return None

    def image(self, id_or_name: str) -> Image:
        image_id = self._resolve_image(id_or_name)
        found = self._image_rows("WHERE id = ?", (image_id,)) if image_id else []
        if not found:
            raise ImageNotFound(
                f"image not known: {id_or_name}: not found in local storage; "
                "pull it or check the name"
            )
        return found[0]

    def images(self) -> list[Image]:
        return self._image_rows("ORDER BY created", ())

    def put_image(
        self,
        config_blob: bytes,
        manifest_blob: bytes,
        manifest_media_type: str,
        top_layer: str | None,
        names: Iterable[str] = (),
        *,
        created: float | None = None,
    ) -> Image:
        """Store an image whose layers are stored already.  Its id is the digest of the config;
        putting an image again adds its names (moved from whichever image had them) and the
        manifest digest when it is new."""
        config_digest = digest_bytes(config_blob)
        manifest_digest = digest_bytes(manifest_blob)
        image_id = config_digest.partition(":")[2]
        names = list(dict.fromkeys(names))
        directory = os.path.join(self._images_dir, image_id)
        with self._lock:
            exists = bool(self._q("SELECT 1 FROM images WHERE id = ?", (image_id,)))
            if not exists:
                self._check_layers(config_blob, top_layer)
                os.makedirs(directory, mode=0o700, exist_ok=True)
                write_atomic(os.path.join(directory, _blob_name(config_digest)), config_blob)
            have = self._q(
                "SELECT 1 FROM image_digests WHERE image_id = ? AND digest = ?",
                (image_id, manifest_digest),
            )
            if not have:
                write_atomic(os.path.join(directory, _blob_name(manifest_digest)), manifest_blob)
                fsync_dir(self._images_dir)
            with self._txn() as db:
                if not exists:
                    db.execute(
                        "INSERT INTO images (id, manifest_media_type, config_digest, top_layer, "
                        "created) VALUES (?, ?, ?, ?, ?)",
                        (
                            image_id,
                            manifest_media_type,
                            config_digest,
                            top_layer,
                            created if created is not None else time.time(),
                        ),
                    )
                if not have:
                    seq = db.execute(
                        "SELECT COALESCE(MAX(seq), 0) + 1 FROM image_digests WHERE image_id = ?",
                        (image_id,),
                    ).fetchone()[0]
                    db.execute(
                        "INSERT INTO image_digests (image_id, digest, media_type, seq) "
                        "VALUES (?, ?, ?, ?)",
                        (image_id, manifest_digest, manifest_media_type, seq),
                    )
                self._add_names(db, image_id, names)
        return self.image(image_id)

    def _check_layers(self, config_blob: bytes, top_layer: str | None) -> None:
        """The top layer exists, and its chain has the config's diff ids (when it lists them)."""
        chain = self.chain(top_layer) if top_layer is not None else []
        try:
            config = jsoncodec.loads(config_blob)
            diff_ids = config["rootfs"]["diff_ids"]
        except (ValueError, KeyError, TypeError):
            return  # not an OCI/Docker image config: nothing to compare with
        if not isinstance(diff_ids, list):
            return
        have = [layer.diff_id for layer in reversed(chain)]
        if have != diff_ids:
            raise InvalidArgument(
                f"the image config lists {len(diff_ids)} layer diff ids that do not match the "
                f"{len(have)} layers below {top_layer}; the image was not stored"
            )

    @staticmethod
    def _add_names(db: sqlite3.Connection, image_id: str, names: Iterable[str]) -> None:
        for name in names:
            if not name:
                raise InvalidArgument("an image name cannot be empty")
            row = db.execute("SELECT image_id FROM image_names WHERE name = ?", (name,)).fetchone()
            if row is not None and row[0] == image_id:
                continue
            db.execute("DELETE FROM image_names WHERE name = ?", (name,))
            db.execute("INSERT INTO image_names (name, image_id) VALUES (?, ?)", (name, image_id))

    def add_names(self, id_or_name: str, names: Iterable[str]) -> Image:
        """Give an image more names (tag); a name another image had moves to this one."""
        with self._lock:
            image_id = self.image(id_or_name).id
            with self._txn() as db:
                self._add_names(db, image_id, names)
        return self.image(image_id)

    def remove_names(self, id_or_name: str, names: Iterable[str]) -> Image:
        """Take names from an image (untag); the image stays, perhaps with no name."""
        with self._lock:
            image_id = self.image(id_or_name).id
            with self._txn() as db:
                db.executemany(
                    "DELETE FROM image_names WHERE name = ? AND image_id = ?",
                    [(n, image_id) for n in names],
                )
        return self.image(image_id)

    def image_blob(self, image_id: str, digest: str) -> bytes:
        """A manifest or config blob stored with the image."""
        path = os.path.join(self._images_dir, image_id, _blob_name(digest))
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise NotFound(f"image {image_id} has no blob {digest}") from None

    def image_manifest(self, id_or_name: str) -> tuple[bytes, str]:
        """The image's first manifest and its media type."""
        found = self.image(id_or_name)
        return self.image_blob(found.id, found.digest), found.manifest_media_type

    def delete_image(self, id_or_name: str) -> list[str]:
        """Remove an image and the layers only it used (returned, topmost first).  Refused
        (InUse) while a container uses the image."""
        with self._lock:
            image = self.image(id_or_name)
            users = [
                r[0] for r in self._q("SELECT id FROM containers WHERE image_id = ?", (image.id,))
            ]
            if users:
                raise InUse(
                    f"image {image.id} is in use by container {users[0]}"
                    + (f" and {len(users) - 1} more" if len(users) > 1 else "")
                    + "; remove the containers first"
                )
            freed: list[str] = []
            layer_id = image.top_layer
            while layer_id is not None:
                users_of = self._layer_users(layer_id)
                if [
                    u
                    for u in users_of
                    if u not in (f"image {image.id}", *(f"layer {f}" for f in freed))
                ]:
                    break
                freed.append(layer_id)
                layer_id = self.layer(layer_id).parent
            lives = self._take_liveness(freed)
            try:
                # one transaction: the image goes and its layers are marked for removal
                with self._txn() as db:
                    db.execute("DELETE FROM images WHERE id = ?", (image.id,))
                    self._mark_incomplete(db, lives)
            except BaseException:
                self._release(lives)
                raise
            rmtree(os.path.join(self._images_dir, image.id), ignore_errors=True)
        if lives:
            self._remove_layers(lives)
        return freed
