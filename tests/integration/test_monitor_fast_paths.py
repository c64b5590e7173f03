"""The monitor's fast paths for short-lived containers, driven as the engine drives them:

- an attacher that claims the cleanup (`run --rm` in the foreground) and reports it done
  spares the exit command; one that goes away without DONE leaves it to the exit command;
- a monitor forked ahead of its bundle (`fork_monitor`) creates the container when told to,
  and leaves nothing behind when aborted;
- a process that ends at once is seen to its end without the loop's own interpreter.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pypod.monitor.config import MonitorConfig
from pypod.monitor.spawn import fork_monitor
from tests.conftest import BundleFactory
from tests.integration.test_monitor import Harness, alive, wait_for

pytestmark = pytest.mark.root


@pytest.fixture
def mon_pypod(tmp_path: Path, bundle: BundleFactory) -> Iterator[Harness]:
    harness = Harness(tmp_path, bundle, "pypod")
    yield harness
    harness.cleanup()


def _with_exit_marker(cfg: MonitorConfig, marker: Path) -> MonitorConfig:
    return MonitorConfig.from_dict(
        {**cfg.to_dict(), "exit_command": ["sh", "-c", f"touch {marker}"]}
    )


def _attach_claiming(mon: Harness, cfg: MonitorConfig) -> object:
    from pypod.monitor import protocol

    pending = mon.spawn(cfg)
    conn = protocol.connect(cfg.userdata)
    conn.claim_cleanup()
    pending.start()
    result = conn.run(None, None, None)
    assert result is protocol.AttachResult.ENDED
    assert mon.wait_exit(cfg)["exit_code"] == 3
    return conn


@pytest.mark.parametrize("args", [["sh", "-c", "exit 3"], ["sh", "-c", "sleep 0.3; exit 3"]])
def test_claimed_cleanup_done_spares_the_exit_command(
    mon_pypod: Harness, tmp_path: Path, args: list[str]
) -> None:
    marker = tmp_path / "exit-command-ran"
    cfg = _with_exit_marker(mon_pypod.config(args), marker)
    conn = _attach_claiming(mon_pypod, cfg)
    conn.cleanup_done()  # type: ignore[attr-defined]
    monitor = mon_pypod.monitors[-1]
    wait_for(lambda: not alive(monitor), what="the monitor's exit")
    time.sleep(0.2)
    assert not marker.exists()


@pytest.mark.parametrize("args", [["sh", "-c", "exit 3"], ["sh", "-c", "sleep 0.3; exit 3"]])
def test_claim_without_done_leaves_the_cleanup_to_the_exit_command(
    mon_pypod: Harness, tmp_path: Path, args: list[str]
) -> None:
    marker = tmp_path / "exit-command-ran"
    cfg = _with_exit_marker(mon_pypod.config(args), marker)
    conn = _attach_claiming(mon_pypod, cfg)
    assert not marker.exists()  # the monitor waits for the claimer
    conn.close()  # type: ignore[attr-defined]  # as a CLI killed during its cleanup
    wait_for(marker.exists, what="the exit command")


def test_monitor_forked_ahead_creates_when_told(mon_pypod: Harness) -> None:
    cfg = mon_pypod.config(["sh", "-c", "exit 5"])
    spawning = fork_monitor(cfg)
    assert not os.path.exists(cfg.exit_file)
    pending = spawning.create()
    mon_pypod.monitors.append(pending.monitor_pid)
    assert mon_pypod.status(cfg.container_id) == "created"
    pending.start()
    assert mon_pypod.wait_exit(cfg)["exit_code"] == 5


def _listener_pid(path: str) -> int:
    """The pid of the process listening on the unix socket at `path` (SO_PEERCRED)."""
    deadline = time.monotonic() + 10
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        while True:
            try:
                s.connect(path)
                break
            except ConnectionRefusedError:  # bound, not listening yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.001)
        creds = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid: int = struct.unpack("3i", creds)[0]
    return pid


def test_monitor_forked_ahead_aborted_leaves_nothing(mon_pypod: Harness) -> None:
    cfg = mon_pypod.config(["true"])
    spawning = fork_monitor(cfg)
    # its attach socket is bound first thing (monitor.pid is written during the create)
    attach = os.path.join(cfg.userdata, "attach")
    wait_for(lambda: os.path.exists(attach), what="the monitor's attach socket")
    monitor = _listener_pid(attach)
    assert alive(monitor)
    spawning.abort()
    wait_for(lambda: not alive(monitor), what="the aborted monitor's exit")
    # no attach socket, ctl fifo, pid file, exit file (the log, the container's, may stay)
    assert set(os.listdir(cfg.userdata)) <= {"ctr.log"}
    assert not os.path.exists(os.path.join(mon_pypod.root, cfg.container_id))
