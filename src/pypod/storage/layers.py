"""The store's foundation: database, locks and crash recovery, and the layers.

See `pypod.storage.store` for the on-disk layout and the pattern every change follows.
"""

from __future__ import annotations

import _thread
import os
import time

from pypod.errors import InUse, LayerNotFound, NotSupported, PypodError, StorageError
from pypod.log import get_logger
from pypod.oci.digest import DigestMismatch, parse_digest
from pypod.sqlite import sqlite3
from pypod.stdlite import cast, contextmanager
from pypod.storage.db import connect
from pypod.storage.drivers import DEFAULT_DRIVER, get_driver
from pypod.storage.locks import FileLock, HeldLock
from pypod.storage.records import Layer, StagedLayer, StoragePaths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import Any, BinaryIO, Self

    from pypod.storage.archive.apply import ApplyResult
    from pypod.storage.drivers import Driver

log = get_logger(__name__)

_LAYER_COLUMNS = (
    "id, parent, diff_id, compressed_digest, compressed_size, uncompressed_size, created"
)


def chain_id(parent_chain_id: str | None, diff_id: str) -> str:
    """The OCI chain id of a layer (64 hex digits): its diff id for a base layer, else
    sha256 of "<parent chain id> <diff id>"."""
    parse_digest(diff_id)
    if parent_chain_id is None:
        return diff_id.partition(":")[2]
    import hashlib  # here: OpenSSL's start-up is not on every command's path

    text = f"sha256:{parent_chain_id} {diff_id}"
    return hashlib.sha256(text.encode()).hexdigest()


def _layer(row: Sequence[Any]) -> Layer:
    return Layer(
        id=row[0],
        parent=row[1],
        diff_id=row[2],
        compressed_digest=row[3],
        compressed_size=row[4],
        uncompressed_size=row[5],
        created=row[6],
    )


class HashingReader:
    """Counts and hashes (sha256) the bytes read from a stream: a blob as given, compressed.
    A stream handed to `put_layer` or `stage_layer` already wrapped so is not hashed again
    (the caller keeps the digest of everything it read, even when applying fails)."""

    __slots__ = ("_hash", "_stream", "size")

    def __init__(self, stream: BinaryIO) -> None:
        import hashlib  # here: OpenSSL's start-up is not on every command's path

        self._stream = stream
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self._hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        """Read (and hash) the rest of the stream."""
        while self.read(1 << 20):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def new_id() -> str:
    return os.urandom(32).hex()


def rmtree(path: str, *, ignore_errors: bool = False) -> None:
    from pypod.fstree import remove_tree

    remove_tree(path, ignore_errors=ignore_errors)


class LayerStore:
    """The store's plumbing (database, locks, recovery) and its layers."""

    def __init__(self, graphroot: str, runroot: str, driver: str = DEFAULT_DRIVER) -> None:
        self.graphroot = os.path.abspath(graphroot)
        self.runroot = os.path.abspath(runroot)
        for path in (self.graphroot, self.runroot, self._images_dir, self._locks_dir):
            os.makedirs(path, mode=0o700, exist_ok=True)
        self._lock = FileLock(os.path.join(self.graphroot, "storage.lock"))
        self._db_path = os.path.join(self.graphroot, "storage.db")
        # one connection per thread: a transaction of one thread (the copy pipeline applies
        # layers in parallel) is then never seen half done by another
        self._local = _thread._local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = _thread.allocate_lock()
        #: liveness locks of the layers staged by `stage_layer`, not yet committed or dropped
        self._staged: dict[str, HeldLock] = {}
        self._staged_lock = _thread.allocate_lock()
        self.driver: Driver = get_driver(
            driver, os.path.join(self.graphroot, driver), runroot=self.runroot
        )
        with self._lock:
            self._recover()

    def close(self) -> None:
        with self._staged_lock:
            staged = list(self._staged)
        for layer_id in staged:
            self._drop_staged_layer(layer_id)
        with self._connections_lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = _thread._local()

    @property
    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = connect(self._db_path)
            self._local.db = db
            with self._connections_lock:
                self._connections.append(db)
        return db

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ---------------------------------------------------------------------------
    @property
    def _images_dir(self) -> str:
        return os.path.join(self.graphroot, "images")

    @property
    def _locks_dir(self) -> str:
        return os.path.join(self.runroot, "locks")

    def _liveness(self, layer_id: str) -> FileLock:
        return FileLock(os.path.join(self._locks_dir, f"{layer_id}.lock"))

    @contextmanager
    def _txn(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction; the caller holds the store lock.

        `durable=False` commits without syncing (SQLite's `synchronous=NORMAL` in WAL mode): the
        commit is atomic and survives the process being killed, but a power failure may undo
        it (a later durable commit syncs it too).  For writes whose loss the next open repairs
        (a layer's rows that a synced commit marked `incomplete` before), as containers/storage
        does not sync a container's records either."""
        assert self._lock.held, "write transactions need the store lock"
        db = self._db
        if not durable:
            db.execute("PRAGMA synchronous=NORMAL")
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            if not durable:
                db.execute("PRAGMA synchronous=FULL")

    def _q(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as e:
            raise StorageError(f"{self._db_path}: {e}") from e

    def storage_paths(self) -> StoragePaths:
        return StoragePaths(
            graphroot=self.graphroot,
            runroot=self.runroot,
            driver=self.driver.name,
            driver_home=self.driver.home,
            database=self._db_path,
            images=self._images_dir,
        )

    # --- crash recovery ---------------------------------------------------------------------
    def _recover(self) -> None:
        """With the store lock held: remove what dead processes left half done."""
        dead: list[tuple[str, FileLock]] = []
        incomplete = {r[0] for r in self._q("SELECT id FROM layers WHERE incomplete = 1")}
        for layer_id in incomplete:
            live = self._liveness(layer_id)
            if live.try_acquire():
                dead.append((layer_id, live))
        try:
            for layer_id, live in list(dead):
                log.info("removing incomplete layer %s", layer_id)
                try:
                    self.driver.remove(layer_id)
                except (OSError, PypodError) as e:
                    # keep the row (still incomplete, never shown): the next start tries again
                    log.warning("cannot remove incomplete layer %s yet: %s", layer_id, e)
                    dead.remove((layer_id, live))
                    live.release()
            if dead:
                with self._txn() as db:
                    db.execute("PRAGMA defer_foreign_keys = ON")
                    db.executemany("DELETE FROM layers WHERE id = ?", [(i,) for i, _ in dead])
        finally:
            for _, live in dead:
                live.unlink()
                live.release()
        known = {row[0] for row in self._q("SELECT id FROM layers")}
        # directories with no row exist only after a crash, which leaves an incomplete row
        self.driver.recover(known, sweep=bool(dead))
        if dead:
            from pypod.storage.tarsplit import sweep_layouts

            sweep_layouts(self.graphroot, known)
        images = {row[0] for row in self._q("SELECT id FROM images")}
        for name in os.listdir(self._images_dir):
            if name not in images:
                log.info("removing image files with no image: %s", name)
                rmtree(os.path.join(self._images_dir, name), ignore_errors=True)
        # liveness files of finished work (a crash right after the commit); held ones belong to
        # layers being staged, whose rows do not exist yet
        alive = incomplete - {i for i, _ in dead}
        for name in os.listdir(self._locks_dir):
            layer_id = name.removesuffix(".lock")
            if layer_id not in alive and name.endswith(".lock"):
                live = self._liveness(layer_id)
                if live.try_acquire():
                    live.unlink()
                    live.release()

    # --- layers -----------------------------------------------------------------------------
    def _layer_row(self, layer_id: str, *, complete: bool = True) -> Layer | None:
        sql = f"SELECT {_LAYER_COLUMNS} FROM layers WHERE id = ?"
        if complete:
            sql += " AND incomplete = 0"
        rows = self._q(sql, (layer_id,))
        return _layer(rows[0]) if rows else None

    def layer(self, layer_id: str) -> Layer:
        found = self._layer_row(layer_id)
        if found is None:
            raise LayerNotFound(f"layer not known: {layer_id}: not in {self.graphroot}")
        return found

    def layers(self) -> list[Layer]:
        rows = self._q(f"SELECT {_LAYER_COLUMNS} FROM layers WHERE incomplete = 0 ORDER BY created")
        return [_layer(r) for r in rows]

    def layers_by_compressed_digest(self, digest: str) -> list[Layer]:
        """Layers stored from a blob with this digest (lets a pull skip the download)."""
        rows = self._q(
            f"SELECT {_LAYER_COLUMNS} FROM layers WHERE compressed_digest = ? AND incomplete = 0",
            (digest,),
        )
        return [_layer(r) for r in rows]

    def layers_by_diff_id(self, diff_id: str) -> list[Layer]:
        rows = self._q(
            f"SELECT {_LAYER_COLUMNS} FROM layers WHERE diff_id = ? AND incomplete = 0",
            (diff_id,),
        )
        return [_layer(r) for r in rows]

    def chain(self, layer_id: str | None) -> list[Layer]:
        """The layer and its parents, topmost first."""
        out: list[Layer] = []
        while layer_id is not None:
            found = self.layer(layer_id)
            out.append(found)
            layer_id = found.parent
        return out

    def put_layer(
        self, parent: str | None, stream: BinaryIO, *, diff_id: str | None = None
    ) -> Layer:
        """Apply a layer tar (plain, gzip or zstd) on top of `parent` and store it under its
        chain id.  A layer with that chain id already stored is reused (when `diff_id` is
        given, without reading `stream`).  A `diff_id` that does not match the content is
        refused (DigestMismatch) and nothing is stored.  The tar's layout is recorded in the
        same pass (`layer_tar` gives the same tar back)."""
        if diff_id is not None:
            existing = self._layer_row(chain_id(parent, diff_id))
            if existing is not None:
                return existing
        staging = new_id()
        live = self._liveness(staging)
        live.acquire()
        created = False
        try:
            with self._lock:
                if parent is not None and self._layer_row(parent) is None:
                    raise LayerNotFound(f"parent layer not known: {parent}")
                self._insert_staging(staging, parent)
                created = True
            self.driver.create(staging, parent)
            result, digest, size = self._fill(staging, stream)
            if diff_id is not None and result.diff_id != diff_id:
                raise DigestMismatch(
                    f"layer content has diff id {result.diff_id}, expected {diff_id}; "
                    "it was not stored",
                    expected=diff_id,
                    actual=result.diff_id,
                )
            staged = StagedLayer(
                id=staging,
                diff_id=result.diff_id,
                compressed_digest=digest,
                compressed_size=size,
                uncompressed_size=result.size,
            )
            layer, _ = self._complete(staged, parent)
            created = False
            live.unlink()
            return layer
        except BaseException:
            if created:
                with self._lock:
                    self._drop_staged(staging)
            raise
        finally:
            if live.held:
                try:
                    live.unlink()
                finally:
                    live.release()

    def _insert_staging(self, staging: str, parent: str | None) -> None:
        with self._txn() as db:
            db.execute(
                "INSERT INTO layers (id, parent, created, incomplete) VALUES (?, ?, ?, 1)",
                (staging, parent, time.time()),
            )

    def _fill(self, staging: str, stream: BinaryIO) -> tuple[ApplyResult, str, int]:
        """Apply the tar to a staged layer, its layout recorded; (result, blob digest, size)."""
        from pypod.storage.archive.stream import LayoutRecorder
        from pypod.storage.tarsplit import layout_path

        hashing = stream if isinstance(stream, HashingReader) else HashingReader(stream)
        # written by whoever applies the layer (a child process, for a big one), right away
        layout = LayoutRecorder(path=layout_path(self.graphroot, staging))
        result = self.driver.apply_diff(staging, cast("BinaryIO", hashing), layout=layout)
        if layout.save_error is not None:  # the layer is exported anew when read back
            log.warning("cannot record the tar layout of layer %s: %s", staging, layout.save_error)
        return result, hashing.digest, hashing.size

    def _complete(self, staged: StagedLayer, parent: str | None) -> tuple[Layer, bool]:
        """Make a filled staged layer the layer of its chain id (store lock taken); (layer,
        False) when that layer was stored meanwhile (the staged copy is then dropped)."""
        from pypod.storage.tarsplit import rename_layout

        final = chain_id(parent, staged.diff_id)
        with self._lock:
            rows = self._q("SELECT incomplete FROM layers WHERE id = ?", (final,))
            if rows and rows[0][0] == 0:
                self._drop_staged(staged.id)
                found = self._layer_row(final)
                assert found is not None
                return found, False
            if rows:
                raise StorageError(f"layer {final} is being removed by another command; try again")
            if parent is not None and self._layer_row(parent) is None:
                raise LayerNotFound(f"parent layer not known: {parent}")
            self.driver.rename(staged.id, final)
            rename_layout(self.graphroot, staged.id, final)
            with self._txn() as db:
                db.execute(
                    "UPDATE layers SET id = ?, parent = ?, diff_id = ?, compressed_digest = ?, "
                    "compressed_size = ?, uncompressed_size = ?, incomplete = 0 "
                    "WHERE id = ?",
                    (
                        final,
                        parent,
                        staged.diff_id,
                        staged.compressed_digest,
                        staged.compressed_size,
                        staged.uncompressed_size,
                        staged.id,
                    ),
                )
            found = self._layer_row(final)
            assert found is not None
            return found, True

    # --- layers staged ahead of their parents (parallel pulls) --------------------------
    @property
    def stages_layers(self) -> bool:
        """Whether layers can be staged before their parents are known (`stage_layer`)."""
        return self.driver.independent_layers

    def stage_layer(self, stream: BinaryIO) -> StagedLayer:
        """Apply a layer tar (plain, gzip or zstd) into a new layer that is not visible yet and
        has no parent: several layers of an image are staged at once (from any threads),
        then committed bottom-up with `commit_staged`, or dropped with `drop_staged` (also
        what `close` does with those left).  A crash leaves an incomplete layer that the
        next `Store()` removes.  Only when `stages_layers`."""
        if not self.driver.independent_layers:
            raise NotSupported(
                f"the {self.driver.name} driver cannot stage a layer before its parent; "
                "use put_layer"
            )
        staging = new_id()
        live = HeldLock(self._liveness(staging).path)
        created = False
        try:
            with self._lock:
                self._insert_staging(staging, None)
                created = True
            self.driver.create(staging, None)
            result, digest, size = self._fill(staging, stream)
        except BaseException:
            try:
                if created:
                    with self._lock:
                        self._drop_staged(staging)
            finally:
                live.unlink_and_release()
            raise
        with self._staged_lock:
            self._staged[staging] = live
        return StagedLayer(
            id=staging,
            diff_id=result.diff_id,
            compressed_digest=digest,
            compressed_size=size,
            uncompressed_size=result.size,
        )

    def commit_staged(self, staged: StagedLayer, parent: str | None) -> tuple[Layer, bool]:
        """Put a staged layer on top of `parent` and store it under its chain id; (layer,
        True), or (the layer stored meanwhile by another command, False)."""
        with self._staged_lock:
            live = self._staged.get(staged.id)
        if live is None:
            raise LayerNotFound(f"layer {staged.id} is not staged (committed or dropped already)")
        try:
            if parent is not None:
                self.driver.set_parent(staged.id, parent)
            result = self._complete(staged, parent)
        except BaseException:
            self._drop_staged_layer(staged.id)
            raise
        with self._staged_lock:
            self._staged.pop(staged.id, None)
        live.unlink_and_release()
        return result

    def drop_staged(self, staged: StagedLayer) -> None:
        """Remove a staged layer that will not be committed."""
        self._drop_staged_layer(staged.id)

    def _drop_staged_layer(self, layer_id: str) -> None:
        with self._staged_lock:
            live = self._staged.pop(layer_id, None)
        if live is None:
            return
        try:
            with self._lock:
                if self._q("SELECT 1 FROM layers WHERE id = ? AND incomplete = 1", (layer_id,)):
                    self._drop_staged(layer_id)
        finally:
            live.unlink_and_release()

    def layer_tar(self, layer: Layer, out: BinaryIO) -> str:
        """Write the layer's tar to `out` (seekable, empty); its diff id.  The tar the layer
        was stored from when its layout was recorded, rebuilt from the files; else a new tar
        of the layer's files (reproducible, `storage.archive.export`)."""
        from pypod.storage.tarsplit import layout_path, rebuild_tar

        if layer.diff_id is not None:
            path = layout_path(self.graphroot, layer.id)
            if rebuild_tar(path, self.driver.diff_path(layer.id), out) == layer.diff_id:
                return layer.diff_id
        from pypod.storage.archive.export import export_changes

        out.seek(0)
        out.truncate()
        changes = self.driver.changes(layer.id, layer.parent)
        return export_changes(self.driver.diff_path(layer.id), changes, out).diff_id

    def sweep_layouts(self) -> None:
        """Remove the tar layouts of layers no longer stored."""
        from pypod.storage.tarsplit import sweep_layouts

        sweep_layouts(self.graphroot, {row[0] for row in self._q("SELECT id FROM layers")})

    def _drop_staged(self, layer_id: str) -> None:
        """Remove an incomplete layer whose liveness lock we hold (store lock held)."""
        from pypod.storage.tarsplit import remove_layout

        self.driver.remove(layer_id)
        remove_layout(self.graphroot, layer_id)
        with self._txn() as db:
            db.execute("DELETE FROM layers WHERE id = ? AND incomplete = 1", (layer_id,))

    def _layer_users(self, layer_id: str) -> list[str]:
        users = [
            f"image {r[0]}"
            for r in self._q("SELECT id FROM images WHERE top_layer = ?", (layer_id,))
        ]
        users += [
            f"container {r[0]}"
            for r in self._q("SELECT id FROM containers WHERE layer_id = ?", (layer_id,))
        ]
        users += [
            f"layer {r[0]}" for r in self._q("SELECT id FROM layers WHERE parent = ?", (layer_id,))
        ]
        return users

    def delete_layer(self, layer_id: str) -> None:
        """Remove a layer nothing uses (no image's top layer, no container's, no child)."""
        with self._lock:
            self.layer(layer_id)
            users = self._layer_users(layer_id)
            if users:
                raise InUse(
                    f"layer {layer_id} is in use by {', '.join(users[:3])}"
                    + (" ..." if len(users) > 3 else "")
                    + "; remove those first"
                )
            lives = self._take_liveness([layer_id])
            try:
                with self._txn() as db:
                    self._mark_incomplete(db, lives)
            except BaseException:
                self._release(lives)
                raise
        self._remove_layers(lives)

    def _take_liveness(self, layer_ids: list[str]) -> list[tuple[str, FileLock]]:
        """The liveness locks of layers about to be removed, without waiting (store lock
        held); InUse when another command works on one of them."""
        lives: list[tuple[str, FileLock]] = []
        for layer_id in layer_ids:
            live = self._liveness(layer_id)
            if not live.try_acquire():
                for _, taken in lives:
                    taken.release()
                raise InUse(f"layer {layer_id} is being changed by another command; try again")
            lives.append((layer_id, live))
        return lives

    @staticmethod
    def _mark_incomplete(db: sqlite3.Connection, lives: list[tuple[str, FileLock]]) -> None:
        db.executemany("UPDATE layers SET incomplete = 1 WHERE id = ?", [(i,) for i, _ in lives])

    @staticmethod
    def _release(lives: list[tuple[str, FileLock]]) -> None:
        for _, live in lives:
            live.release()

    def _remove_layers(self, lives: list[tuple[str, FileLock]]) -> None:
        """Remove the files, then the rows, of layers marked removing (topmost first)."""
        from pypod.storage.tarsplit import remove_layout

        try:
            for layer_id, _ in lives:
                self.driver.remove(layer_id)
                remove_layout(self.graphroot, layer_id)
            # not synced: lost, the rows stay `incomplete` and the next open removes them
            with self._lock, self._txn(durable=False) as db:
                db.execute("PRAGMA defer_foreign_keys = ON")
                db.executemany("DELETE FROM layers WHERE id = ?", [(i,) for i, _ in lives])
                for _, live in lives:
                    live.unlink()
        finally:
            for _, live in lives:
                live.release()
