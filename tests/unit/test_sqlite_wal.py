"""pypod.sqlite: the write-ahead log stays short.

A pypod command is a process that opens its database alone and ends with os._exit: SQLite then
recovers the whole log on the next open (every frame written since the log last restarted),
in every command.  The databases are opened with a small autocheckpoint so that the log is
copied into the database, and restarted, every few dozen pages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pypod.sqlite import WAL_AUTOCHECKPOINT, connect


def test_the_log_is_checkpointed_every_few_dozen_pages(tmp_path: Path) -> None:
    db = connect(str(tmp_path / "t.db"), "CREATE TABLE t (v TEXT)", 1, what="test database")
    try:
        assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == WAL_AUTOCHECKPOINT
        for i in range(400):  # a commit of a page or two each, as a command's transactions
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t VALUES (?)", ("x" * 3000 + str(i),))
            db.execute("COMMIT")
        _busy, frames, _done = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        # SQLite's default (1000 pages) would leave ~800 frames here
        assert frames <= 150, frames
        assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 400
    finally:
        db.close()


def test_the_c_module_is_imported_without_functools_and_caches_statements(tmp_path: Path) -> None:
    """`pypod.sqlite` gives `_sqlite3` a stand-in `functools` for its statement cache (see its
    docstring): the process has no `functools` afterwards, the same statement runs again and
    again (from the cache), and `import functools` later gets the real module."""
    code = f"""
import sys
from pypod.sqlite import sqlite3
assert "functools" not in sys.modules and "collections" not in sys.modules, "imported"
db = sqlite3.connect({str(tmp_path / "t.db")!r}, isolation_level=None)
db.execute("CREATE TABLE t (a)")
for i in range(3):
    db.execute("INSERT INTO t VALUES (?)", (i,))
assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 3
import functools
assert hasattr(functools, "partial") and functools.lru_cache is not None
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
