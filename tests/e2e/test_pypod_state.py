"""The engine's state under stress: many commands at once, a monitor killed with SIGKILL, a
"reboot" (the run directory emptied).  Each test has a store of its own (`fresh_pypod`)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest

from tests.engine_support import (  # noqa: F401  (fixtures)
    IMAGE,
    Pypod,
    alive,
    busybox_tar_fixture,
    fresh_pypod_fixture,
    leftover_cgroups,
    remove_cgroups,
    wait_for,
)

pytestmark = [pytest.mark.root]


def _ids(db: Path) -> list[str]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return sorted(r[0] for r in con.execute("SELECT id FROM containers"))
    finally:
        con.close()


def _states(p: Pypod, *args: str) -> dict[str, str]:
    """name -> state ("running", "exited"...) of the containers `ps ARGS` lists."""
    return {d["Names"][0]: d["State"] for d in json.loads(p.ok("ps", *args, "--format", "json"))}


def _mounts_below(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(prefix)]


def test_concurrent_run_and_rm(fresh_pypod: Pypod) -> None:
    p = fresh_pypod
    ids: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        proc = p("run", "-d", "--name", f"c{i}", "--label", "batch=1", IMAGE, "sleep", "1000",
                 timeout=120)  # fmt: skip
        with lock:
            if proc.returncode == 0:
                ids.append(proc.stdout.strip())
            else:
                errors.append(f"run c{i}: rc={proc.returncode} {proc.stderr}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(set(ids)) == 20
    listed = p.ok("ps", "-a", "-q", "--no-trunc").split()
    assert sorted(listed) == sorted(ids)
    names = p.ok("ps", "-a", "--format", "{{.Names}}").split()
    assert sorted(names) == sorted(f"c{i}" for i in range(20))
    assert p.ok("ps", "--filter", "status=running", "-q").count("\n") == 20
    assert _ids(p.root / "engine.db") == sorted(ids)
    assert _ids(p.root / "storage.db") == sorted(ids)

    # half removed, while the other half is stopped, at the same time
    def act(args: tuple[str, ...]) -> None:
        proc = p(*args, timeout=120)
        if proc.returncode != 0:
            with lock:
                errors.append(f"{args}: rc={proc.returncode} {proc.stderr}")

    jobs = [("rm", "-f", "-t", "0", f"c{i}") if i % 2 else ("stop", "-t", "0", f"c{i}")
            for i in range(20)]  # fmt: skip
    threads = [threading.Thread(target=act, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert _states(p, "-a") == {f"c{i}": "exited" for i in range(0, 20, 2)}
    kept = sorted(p.ok("ps", "-a", "-q", "--no-trunc").split())
    assert _ids(p.root / "engine.db") == kept
    assert _ids(p.root / "storage.db") == kept
    removed = set(ids) - set(kept)
    assert not leftover_cgroups(removed)
    # the stopped ones are unmounted: no container mount is left below the store
    mounts = [m for m in _mounts_below(p.store) if "/merged" in m]
    assert not mounts, mounts
    # and the rest go at once too
    p.ok("rm", "-a")
    assert p.ok("ps", "-a", "-q") == ""
    assert _ids(p.root / "engine.db") == _ids(p.root / "storage.db") == []
    assert not leftover_cgroups(set(ids))


def test_monitor_killed(fresh_pypod: Pypod) -> None:
    p = fresh_pypod
    cid = p.sleeper("--name", "orphan")
    monitor = int(p.fmt(cid, "{{.State.ConmonPid}}"))
    pid = int(p.fmt(cid, "{{.State.Pid}}"))
    assert monitor > 0 and pid > 0 and alive(monitor) and alive(pid)
    os.kill(monitor, signal.SIGKILL)
    wait_for(lambda: not alive(monitor), what="the monitor to die")
    # the container's process lives on: it is still running
    assert alive(pid)
    assert _states(p) == {"orphan": "running"}
    assert p.status(cid) == "running"
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), what="the container's process to die")
    # nobody recorded the exit: podman's unknown exit code
    assert p.ok("ps", "-a", "--format", "{{.Names}} {{.ExitCode}}") == "orphan -1\n"
    assert _states(p, "-a") == {"orphan": "exited"}
    assert p.fmt(cid, "{{.State.Status}} {{.State.ExitCode}}") == "exited -1"
    assert "Exited (-1)" in p.ok("ps", "-a")
    assert p.ok("rm", "orphan") == "orphan\n"
    assert p.ok("ps", "-a", "-q") == ""
    assert not leftover_cgroups({cid})
    assert not [m for m in _mounts_below(p.store) if cid in m]


def test_monitor_killed_then_stop_and_rm(fresh_pypod: Pypod) -> None:
    p = fresh_pypod
    a = p.sleeper()
    b = p.sleeper()
    for cid in (a, b):
        os.kill(int(p.fmt(cid, "{{.State.ConmonPid}}")), signal.SIGKILL)
    pid_a = int(p.fmt(a, "{{.State.Pid}}"))
    pid_b = int(p.fmt(b, "{{.State.Pid}}"))
    # stop and rm -f still reach the process without its monitor
    assert p.ok("stop", "-t", "0", a) == f"{a}\n"
    assert not alive(pid_a)
    assert p.status(a) == "exited"
    assert p.ok("rm", "-f", "-t", "0", b) == f"{b}\n"
    assert not alive(pid_b)
    p.ok("rm", a)
    assert p.ok("ps", "-a", "-q") == ""
    assert not leftover_cgroups({a, b})
    assert not [m for m in _mounts_below(p.store) if "/merged" in m]


def test_reboot_empties_runroot(fresh_pypod: Pypod) -> None:
    p = fresh_pypod
    running = [p.sleeper("--name", f"r{i}") for i in range(3)]
    paused = p.sleeper("--name", "p")
    p.ok("pause", "p")
    exited = p.run_d("--name", "e", IMAGE, "sh", "-c", "exit 4")
    assert p.ok("wait", exited) == "4\n"
    created = p.ok("create", "--name", "c", IMAGE, "true").strip()
    # a reboot: every process is gone, /run is empty
    pids = [int(p.fmt(c, "{{.State.Pid}}")) for c in (*running, paused)]
    monitors = [int(p.fmt(c, "{{.State.ConmonPid}}")) for c in (*running, paused)]
    for pid in monitors:
        os.kill(pid, signal.SIGKILL)
    for c in (*running, paused):
        remove_cgroups(c)  # kills what is in them, as a reboot would, and removes them
    for pid in (*monitors, *pids):
        wait_for(lambda pid=pid: not alive(pid), what=f"pid {pid} to die")
    for point in reversed(_mounts_below(p.runroot)):
        subprocess.run(["umount", "-l", point], check=False)
    for point in reversed([m for m in _mounts_below(p.root) if m.endswith("/merged")]):
        subprocess.run(["umount", "-l", point], check=False)
    subprocess.run(["rm", "-rf", str(p.runroot)], check=True)

    assert _states(p, "-a") == {"r0": "exited", "r1": "exited", "r2": "exited", "p": "exited",
                      "e": "exited", "c": "created"}  # fmt: skip
    assert p.fmt("e", "{{.State.ExitCode}}") == "4"  # what was known stays known
    assert p.ok("ps", "-q") == ""
    # everything works again: start the old ones, run new ones, remove
    assert p.ok("start", "r0") == "r0\n"
    assert p.status("r0") == "running"
    assert p.ok("exec", "r0", "echo", "hi") == "hi\n"
    assert p.ok("run", "--rm", IMAGE, "echo", "after") == "after\n"
    assert p.ok("start", "-a", "c") == ""
    p.ok("rm", "-a", "-f", "-t", "0")
    assert p.ok("ps", "-a", "-q") == ""
    assert not leftover_cgroups({*running, paused, exited, created})
