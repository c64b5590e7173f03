"""Opening a SQLite database the way pypod's stores use it (WAL, full sync, versioned schema).

Shared by the storage database (`storage/db.py`) and the engine's state (`engine/db.py`).
"""

from __future__ import annotations

import sqlite3

from pypod.errors import StorageError


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
