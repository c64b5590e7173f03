"""Opening a SQLite database the way pypod's stores use it (WAL, full sync, versioned schema).

Shared by the storage database (`storage/db.py`, `storage/layers.py`, `storage/images.py`) and
the engine's state (`engine/db.py`), which take `sqlite3` from here: it is the C module
`_sqlite3` itself, not the `sqlite3` package, whose `dbapi2` imports `datetime` (and registers
adapters for date and datetime parameters, which pypod never binds) for ~1 ms of every
command's start.  `connect`, `Connection`, `Cursor` and the exception classes are the same
objects in both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pypod.errors import StorageError

if TYPE_CHECKING:  # typeshed describes the package; the C module has no stub of its own
    import sqlite3 as sqlite3
else:
    import _sqlite3 as sqlite3

__all__ = ["WAL_AUTOCHECKPOINT", "connect", "sqlite3"]

#: pages in the write-ahead log that make a commit copy them into the database (SQLite's
#: default: 1000).  A pypod command is a process that opens the database alone: its first
#: read recovers the log, reading every frame written since the log last restarted (~2 ms
#: for 800 frames, in every command); kept short, a command reads a few dozen, and a
#: checkpoint of that many pages costs a commit now and then well under a millisecond.
WAL_AUTOCHECKPOINT = 64


def connect(
    path: str, schema: str, version: int, *, what: str, synchronous: str = "FULL"
) -> sqlite3.Connection:
    """Open (creating when needed) the database at `path`; autocommit mode, callers run BEGIN.

    `schema` (`;`-separated statements) is applied once, when the file is new; a database
    written by a newer pypod (a higher `user_version`) is refused.  `synchronous` is SQLite's
    pragma: FULL syncs every commit; NORMAL (in WAL mode) keeps every commit atomic and the
    file consistent, but the last commits may be lost on a power failure.
    """
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute("PRAGMA foreign_keys=ON")
        found = db.execute("PRAGMA user_version").fetchone()[0]
        if found == 0:
            db.execute("BEGIN IMMEDIATE")
            try:
                if db.execute("PRAGMA user_version").fetchone()[0] == 0:
                    for statement in schema.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute(f"PRAGMA user_version={version}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        elif found > version:
            raise StorageError(
                f"{path}: {what} version {found} is newer than this pypod knows ({version}); "
                "upgrade pypod"
            )
    except sqlite3.DatabaseError as e:
        raise StorageError(f"open {what} {path}: {e}") from e
    return db
