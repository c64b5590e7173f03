"""Pods without a kernel: `--share` parsing, the pod status rules, the schema migration."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pypod.engine.pods import DEFAULT_SHARE, parse_share, pod_status
from pypod.errors import InvalidArgument


def test_share_default_replace_add_and_none() -> None:
    assert parse_share(None) == DEFAULT_SHARE == ("ipc", "net", "uts")
    assert parse_share("net") == ("net",)
    assert parse_share("net,pid") == ("net", "pid")
    assert parse_share("+pid") == ("ipc", "net", "pid", "uts")
    assert parse_share("+cgroup,pid") == ("cgroup", "ipc", "net", "pid", "uts")
    assert parse_share("") == ()
    assert parse_share("none") == ()


@pytest.mark.parametrize("bad", ["mnt", "user", "net,bogus", "+time"])
def test_share_refuses_unknown_namespaces(bad: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid kernel namespace to share"):
        parse_share(bad)


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], "Created"),
        (["running", "running"], "Running"),
        (["running", "exited"], "Degraded"),
        (["running", "configured"], "Degraded"),
        (["paused", "paused"], "Paused"),
        (["paused", "running"], "Degraded"),
        (["exited", "exited"], "Exited"),
        (["exited", "configured"], "Stopped"),
        (["exited", "paused"], "Stopped"),
        (["configured", "created"], "Created"),
        (["removing", "configured"], "Error"),
    ],
)
def test_pod_status_follows_libpod(statuses: list[str], expected: str) -> None:
    assert pod_status(statuses) == expected


def test_schema_1_database_gains_the_pods_table(tmp_path: Path) -> None:
    from pypod.engine.db import SCHEMA_VERSION, EngineDB

    path = tmp_path / "engine.db"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE containers (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
        "config TEXT NOT NULL, state TEXT NOT NULL, created REAL NOT NULL)"
    )
    db.execute("INSERT INTO containers VALUES ('c1', 'n1', '{}', '{}', 0)")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    edb = EngineDB(str(path))
    try:
        assert SCHEMA_VERSION >= 2
        assert edb.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
        assert edb.query("SELECT name FROM containers") == [("n1",)]
        edb.execute("INSERT INTO pods (id, name, config, created) VALUES ('p', 'pod1', '{}', 0)")
        assert edb.query("SELECT name FROM pods") == [("pod1",)]
    finally:
        edb.close()
    again = EngineDB(str(path))  # opening it again changes nothing
    try:
        assert again.query("SELECT name FROM pods") == [("pod1",)]
    finally:
        again.close()


def test_new_database_has_pods(tmp_path: Path) -> None:
    from pypod.engine.db import SCHEMA_VERSION, EngineDB

    edb = EngineDB(str(tmp_path / "engine.db"))
    try:
        assert edb.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
        assert edb.query("SELECT count(*) FROM pods") == [(0,)]
    finally:
        edb.close()


def test_run_flags_pod() -> None:
    from pypod.cli.engine.run_flags import parse_run

    cfg, _ = parse_run(["--pod", "web", "busybox"])
    assert cfg.pod == "web"
    cfg, _ = parse_run(["--pod", "new:web", "busybox"])
    assert cfg.pod == "new:web"
    cfg, _ = parse_run(["busybox"])
    assert cfg.pod == ""
    with pytest.raises(InvalidArgument, match="new pod name must be at least one character"):
        parse_run(["--pod", "new:", "busybox"])
