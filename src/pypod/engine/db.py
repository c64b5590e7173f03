"""The engine's state: containers, pods, volumes, exec sessions, events in `<graphroot>/engine.db`.

SQLite in WAL mode, like the storage database (`storage/db.py` says why): every change is one
transaction (`EngineDB.transaction()`, BEGIN IMMEDIATE, so concurrent pypod commands serialise
their writes and never lose one), readers see a consistent snapshot without a lock.

A container's row holds two JSON documents: `config` (its `ContainerConfig`, written once at
create, changed only by `rename`) and `state` (what it is doing: status, pids, exit code, times,
mount point; changed by every lifecycle step).  The storage container (its read-write layer)
has the same ID and is created before the row and removed after it; a storage container
without a row is what a crashed `create` left, and is removed when found.
"""

from __future__ import annotations

from pypod import jsoncodec, sqlite
from pypod.stdlite import contextmanager

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import Any

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    config TEXT NOT NULL,
    state TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS exec_sessions (
    id TEXT PRIMARY KEY,
    container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    state TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS exec_sessions_container ON exec_sessions(container_id);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    type TEXT NOT NULL,
    action TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    attributes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_time ON events(time);
CREATE TABLE IF NOT EXISTS pods (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    config TEXT NOT NULL,
    created REAL NOT NULL
)
"""

#: what takes a database of an older version to the next one (applied in order, each in the
#: same transaction as the new `user_version`)
_MIGRATIONS: dict[int, str] = {
    # 2: pods (`pypod pod create`)
    2: """
CREATE TABLE IF NOT EXISTS pods (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    config TEXT NOT NULL,
    created REAL NOT NULL
)
""",
}


class EngineDB:
    """One connection to the engine's database."""

    def __init__(self, path: str) -> None:
        self.path = path
        # NORMAL: a power failure may lose the last state changes (as it loses the processes
        # they describe; the next start refreshes states anyway), never corrupt the file
        self._db = sqlite.connect(
            path, _SCHEMA, SCHEMA_VERSION, what="engine database", synchronous="NORMAL"
        )
        self._depth = 0
        self._migrate()

    def _migrate(self) -> None:
        """Bring a database an older pypod wrote up to `SCHEMA_VERSION` (one transaction)."""
        if self._db.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            found = self._db.execute("PRAGMA user_version").fetchone()[0]
            for version in range(found + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS.get(version, "").split(";"):
                    if statement.strip():
                        self._db.execute(statement)
            if found < SCHEMA_VERSION:
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[EngineDB]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any error); nested calls join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._depth = 0

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._db.execute(sql, args).fetchall()

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run a statement; returns the number of rows changed."""
        return self._db.execute(sql, args).rowcount

    # --- JSON columns ---------------------------------------------------------------------
    @staticmethod
    def dumps(value: Any) -> str:
        return jsoncodec.dumps(value, separators=(",", ":"))

    @staticmethod
    def loads(text: str) -> Any:
        return jsoncodec.loads(text)
