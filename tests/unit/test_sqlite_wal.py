"""pypod.sqlite: the write-ahead log stays short.

A pypod command is a process that opens its database alone and ends with os._exit: SQLite then
recovers the whole log on the next open (every frame written since the log last restarted),
in every command.  The databases are opened with a small autocheckpoint so that the log is
copied into the database, and restarted, every few dozen pages."""

from __future__ import annotations

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
