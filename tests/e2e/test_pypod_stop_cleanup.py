"""`stop`, `rm -f` and `pod rm -f` clean up after the containers they stop themselves, and
say so to the monitors first: no monitor starts `pypod container cleanup` for them (an
interpreter per container).  `kill` does not: its monitor's exit command does the cleanup
(the control that shows this test sees such a command when there is one)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from tests.engine_support import (  # noqa: F401  (fixtures)
    IMAGE,
    Pypod,
    busybox_tar_fixture,
    pypod_fixture,
    pypod_session_fixture,
)


def _cleanups_during(cids: list[str], action: Callable[[], object], after: float) -> set[str]:
    """The containers of `cids` that a `container cleanup` process runs for while `action`
    runs and for `after` seconds more (/proc is watched all along, from another thread)."""
    seen: set[str] = set()
    done = threading.Event()
    watcher = threading.Thread(target=_watch, args=(cids, seen, done))
    watcher.start()
    try:
        action()
        time.sleep(after)
    finally:
        done.set()
        watcher.join()
    return seen


def _watch(cids: list[str], seen: set[str], done: threading.Event) -> None:
    while not done.is_set():
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    words = f.read().split(b"\0")
            except OSError:
                continue
            if b"cleanup" in words:
                seen.update(c for c in cids if c.encode() in words)
        time.sleep(0.002)


def test_stop_and_rm_f_start_no_cleanup_command(pypod: Pypod) -> None:
    cids = [pypod.ok("run", "-d", IMAGE, "sleep", "1000").strip() for _ in range(2)]

    def stop_and_remove() -> None:
        pypod.ok("stop", "-t", "0", cids[0])
        pypod.ok("rm", "-f", "-t", "0", cids[1])

    assert _cleanups_during(cids, stop_and_remove, 0.5) == set()
    assert pypod.fmt(cids[0], "{{.State.Status}}") == "exited"
    pypod.ok("rm", cids[0])


def test_kill_leaves_the_cleanup_to_the_monitors_exit_command(pypod: Pypod) -> None:
    cid = pypod.ok("run", "-d", IMAGE, "sleep", "1000").strip()
    assert _cleanups_during([cid], lambda: pypod.ok("kill", cid), 2.0) == {cid}
    pypod.ok("rm", "-f", cid)


def test_pod_rm_f_starts_no_cleanup_command(pypod: Pypod) -> None:
    name = f"sc{os.urandom(3).hex()}"
    pypod.ok("pod", "create", "--name", name, "--network", "none")
    cids = [pypod.ok("run", "-d", "--pod", name, IMAGE, "sleep", "1000").strip() for _ in range(2)]
    infra = pypod.ok("pod", "inspect", "--format", "{{.InfraContainerID}}", name).strip()
    remove = lambda: pypod.ok("pod", "rm", "-f", "-t", "0", name)  # noqa: E731
    assert _cleanups_during([*cids, infra], remove, 0.5) == set()
    assert pypod.ok("ps", "-aq", "--no-trunc").split() == []
