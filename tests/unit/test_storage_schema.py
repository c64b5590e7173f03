"""The storage database's schema versions: a store made by an older pypod is upgraded in one
transaction when it is opened (all or nothing, also when the upgrading process is killed)."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from pypod.errors import StorageError
from pypod.storage import db as storage_db
from pypod.storage.store import Store
from tests.storage_support import killed_child
from tests.unit.test_storage_store import MEDIA, config, tar

#: the tables schema 2 changed, as pypod's schema 1 had them (containers.image_id NOT NULL)
V1_CONTAINERS = """
CREATE TABLE containers (
    id TEXT PRIMARY KEY,
    image_id TEXT NOT NULL REFERENCES images(id),
    layer_id TEXT NOT NULL UNIQUE REFERENCES layers(id),
    metadata TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX containers_image ON containers(image_id);
CREATE TABLE container_names (
    name TEXT PRIMARY KEY,
    container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE
);
CREATE INDEX container_names_container ON container_names(container_id);
"""


def _v1_store(tmp_path: Path) -> tuple[str, str, dict[str, Any]]:
    """A store as pypod with schema 1 left it: an image, a container with two names.

    The rows are made through today's API, then the database is turned back into version 1:
    every table but `containers` is the same in both, so `containers` (and the table naming
    it) are recreated from V1_CONTAINERS with the same rows."""
    graph, run = str(tmp_path / "graph"), str(tmp_path / "run")
    store = Store(graph, run, "vfs")
    layer = store.put_layer(None, io.BytesIO(tar({"a": b"1"})))
    assert layer.diff_id is not None
    image = store.put_image(config([layer.diff_id]), b"{}", MEDIA, layer.id, ["img"])
    container = store.create_container("img", ["web", "www"], '{"k": 1}')
    store.close()
    db = sqlite3.connect(os.path.join(graph, "storage.db"), isolation_level=None)
    db.execute("PRAGMA foreign_keys=OFF")
    db.execute("BEGIN")
    db.execute("ALTER TABLE containers RENAME TO old_containers")
    db.execute("ALTER TABLE container_names RENAME TO old_container_names")
    db.execute("DROP INDEX containers_image")
    db.execute("DROP INDEX container_names_container")
    for statement in V1_CONTAINERS.split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("INSERT INTO containers SELECT * FROM old_containers")
    db.execute("INSERT INTO container_names SELECT * FROM old_container_names")
    db.execute("DROP TABLE old_container_names")
    db.execute("DROP TABLE old_containers")
    db.execute("PRAGMA user_version=1")
    db.execute("COMMIT")
    db.close()
    return graph, run, {"image": image, "container": container}


def _query(graph: str, sql: str, *args: str) -> Any:
    """The first column of the first row of `sql` on the store's database (read-only)."""
    db = sqlite3.connect(os.path.join(graph, "storage.db"))
    try:
        return db.execute(sql, args).fetchone()[0]
    finally:
        db.close()


def _table_sql(graph: str, table: str) -> str:
    return str(_query(graph, "SELECT sql FROM sqlite_master WHERE name = ?", table))


def _version(graph: str) -> int:
    return int(_query(graph, "PRAGMA user_version"))


def test_a_version_1_store_is_upgraded_keeping_its_containers(tmp_path: Path) -> None:
    graph, run, old = _v1_store(tmp_path)
    assert _version(graph) == 1 and "image_id TEXT NOT NULL" in _table_sql(graph, "containers")
    store = Store.open(graph, run, "vfs")
    try:
        assert _version(graph) == storage_db.SCHEMA_VERSION == 2
        assert "image_id TEXT REFERENCES" in _table_sql(graph, "containers")
        # every row, name and index survived; foreign keys still hold both ways
        assert store.containers() == [old["container"]]
        assert store.container("www").names == ("web", "www")
        indexes = {r[0] for r in store._q("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"containers_image", "container_names_container"} <= indexes
        with pytest.raises(sqlite3.IntegrityError):
            store._db.execute(
                "INSERT INTO containers (id, image_id, layer_id, metadata, created) "
                "VALUES ('x', 'no-such-image', 'no-layer', '', 0)"
            )
        store.delete_container("web")
        assert store._q("SELECT COUNT(*) FROM container_names")[0][0] == 0  # cascade works
        # and the new schema's point: a container of no image
        c = store.create_container(None, ["scratch"])
        assert c.image_id == "" and store.layer(c.layer_id).parent is None
    finally:
        store.close()
    Store.open(graph, run, "vfs").close()  # opening again changes nothing
    assert _version(graph) == 2


def test_a_failed_upgrade_leaves_version_1_untouched(tmp_path: Path) -> None:
    graph, run, old = _v1_store(tmp_path)
    # a row that breaks a foreign key (written with the checks off): the upgrade refuses
    db = sqlite3.connect(os.path.join(graph, "storage.db"), isolation_level=None)
    db.execute(
        "INSERT INTO containers (id, image_id, layer_id, metadata, created) "
        "VALUES ('broken', 'no-such-image', ?, '', 0)",
        (old["container"].layer_id + "-missing",),
    )
    db.close()
    with pytest.raises(StorageError, match="upgrade storage database .* unchanged"):
        Store.open(graph, run, "vfs")
    assert _version(graph) == 1
    assert "image_id TEXT NOT NULL" in _table_sql(graph, "containers")
    assert _query(graph, "SELECT COUNT(*) FROM containers") == 2
    assert _query(graph, "SELECT COUNT(*) FROM container_names") == 2


class _StallAfter:
    """A connection that stops (for the parent to SIGKILL it) after one given statement."""

    def __init__(self, db: sqlite3.Connection, statement: str, ready: int) -> None:
        self._db = db
        self._statement = statement
        self._ready = ready

    def execute(self, sql: str, *args: Any) -> Any:
        result = self._db.execute(sql, *args)
        if sql.startswith(self._statement):
            os.write(self._ready, b"x")
            time.sleep(3600)
        return result


@pytest.mark.parametrize("statement", ["DROP TABLE containers", "ALTER TABLE containers_v2"])
def test_sigkill_mid_upgrade_keeps_version_1(tmp_path: Path, statement: str) -> None:
    graph, run, old = _v1_store(tmp_path)
    path = os.path.join(graph, "storage.db")

    def child(ready: int) -> None:
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA foreign_keys=ON")
        storage_db._migrate(_StallAfter(db, statement, ready))  # type: ignore[arg-type]

    killed_child(child)
    assert _version(graph) == 1  # the dead transaction is rolled back
    store = Store.open(graph, run, "vfs")
    try:
        assert _version(graph) == 2
        assert store.containers() == [old["container"]]
    finally:
        store.close()


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    graph = tmp_path / "graph"
    Store(str(graph), str(tmp_path / "run"), "vfs").close()
    db = sqlite3.connect(graph / "storage.db")
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    with pytest.raises(StorageError, match="newer than this pypod knows"):
        Store(str(graph), str(tmp_path / "run"), "vfs")


def test_metadata_of_a_container_of_no_image_round_trips(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "graph"), str(tmp_path / "run"), "vfs")
    try:
        c = store.create_container(None, ["w"], json.dumps({"Type": "x"}))
        assert store.container("w") == c and c.image_id == ""
    finally:
        store.close()


def _open_at_once(graph: str, run: str, barrier: Any) -> None:
    barrier.wait()
    Store(graph, run, "vfs").close()


def test_processes_opening_a_version_1_store_at_once_upgrade_it_once(tmp_path: Path) -> None:
    import multiprocessing

    graph, run, old = _v1_store(tmp_path)
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_open_at_once, args=(graph, run, barrier)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert _version(graph) == 2
    store = Store.open(graph, run, "vfs")
    try:
        assert store.containers() == [old["container"]]
    finally:
        store.close()
