"""Opening a SQLite database the way pypod's stores use it (WAL, full sync, versioned schema).

Shared by the storage database (`storage/db.py`, `storage/layers.py`, `storage/images.py`) and
the engine's state (`engine/db.py`), which take `sqlite3` from here: it is the C module
`_sqlite3` itself, not the `sqlite3` package, whose `dbapi2` imports `datetime` (and registers
adapters for date and datetime parameters, which pypod never binds) for ~1 ms of every
command's start.  `connect`, `Connection`, `Cursor` and the exception classes are the same
objects in both.

`_sqlite3` itself, when it is initialised, takes `functools.lru_cache` (each connection's
statement cache is one), and `functools` imports `collections`: ~2 ms more.  When `functools`
is not imported yet, `_import_sqlite3` gives it the same cache, the C `_lru_cache_wrapper`
that `functools.lru_cache` wraps, from a stand-in `functools` that exists during that import
only.
"""

from __future__ import annotations

from pypod.errors import StorageError

TYPE_CHECKING = False
if TYPE_CHECKING:  # typeshed describes the package; the C module has no stub of its own
    import sqlite3 as sqlite3
else:

    def _import_sqlite3():
        """The C module `_sqlite3`, imported without `functools` when that is not imported
        yet."""
        import sys

        if "functools" in sys.modules or "_sqlite3" in sys.modules:
            import _sqlite3

            return _sqlite3
        import types
        from _functools import _lru_cache_wrapper

        def cache_info(*info):
            return info  # (for `cache_info()`: functools' _CacheInfo is a namedtuple of these)

        def lru_cache(maxsize=128, typed=False):
            """`functools.lru_cache(maxsize)` as `_sqlite3` calls it (with an int, the
            connection's `cached_statements`)."""
            if maxsize < 0:
                maxsize = 0

            def decorating_function(user_function):
                return _lru_cache_wrapper(user_function, maxsize, typed, cache_info)

            return decorating_function

        stand_in = types.ModuleType("functools")
        stand_in.lru_cache = lru_cache
        sys.modules["functools"] = stand_in
        try:
            import _sqlite3
        except Exception:  # another Python's _sqlite3 wanting more of functools: the real one
            if sys.modules.get("functools") is stand_in:
                del sys.modules["functools"]
            import _sqlite3
        finally:
            if sys.modules.get("functools") is stand_in:
                del sys.modules["functools"]
        return _sqlite3

    sqlite3 = _import_sqlite3()

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
