"""The monitor's relay for `--sdnotify=container`, run for real: the container's notification
socket bound as the monitor binds it (pypod.monitor.notify), the loop (pypod.monitor.loop)
watching a process that sends to it, and a host socket standing for systemd's.

The "container" here is a plain child process of the monitor (what the loop needs of the
container: its pid is the loop's child); tests/e2e/test_pypod_sdnotify_container.py does the
same through `pypod run` with a real container.  What must arrive is what conmon 2.1.6 sends
on (seen with podman 4.3.1 on this machine): `READY=1` / `WATCHDOG=1`, exactly, from the
monitor's pid (systemd's NotifyAccess=main takes only the MAINPID's messages); nothing else.
"""

from __future__ import annotations

import _socket
import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pypod.monitor import loop
from pypod.monitor.config import MonitorConfig
from pypod.monitor.notify import bind_container_socket

pytestmark = pytest.mark.root


class Host:
    """systemd's notification socket: a bound datagram socket that sees the sender's pid."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(loop.notify_address(address))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)

    def messages(self, timeout: float) -> list[tuple[bytes, int]]:
        """(message, sender pid) of everything that arrives until `timeout` passes quietly."""
        got = []
        self.sock.settimeout(timeout)
        while True:
            try:
                data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except TimeoutError:
                return got
            pid = int.from_bytes(ancillary[0][2][:4], "little") if ancillary else 0
            got.append((data, pid))


@pytest.fixture(name="host")
def host_fixture(tmp_path: Path) -> Iterator[Host]:
    host = Host(str(tmp_path / "host.sock"))
    yield host
    host.sock.close()


def run_monitor(
    tmp_path: Path, target: str, messages: list[bytes], *, code: int = 7, linger: float = 0.0
) -> tuple[int, dict[str, object], str]:
    """Fork a monitor whose "container" sends `messages` to its notification socket, waits
    `linger` seconds and exits with `code`; (the monitor's pid, its exit file, the socket's
    path).  The monitor has exited when this returns."""
    bundle = tmp_path / "bundle"
    bundle.mkdir(exist_ok=True)
    cfg = MonitorConfig(
        container_id="sdn",
        bundle=str(bundle),
        runtime="pypod",
        runtime_root=str(tmp_path / "rt"),
        userdata=str(bundle),
        log_driver="none",
        log_path="",
        log_max_size=0,
        tty=False,
        stdin=False,
        exit_file=str(tmp_path / "exit"),
        sdnotify_socket=target,
    )
    cfg.validate()
    monitor = os.fork()
    if monitor == 0:  # the monitor: bind as bootstrap does, start the "container", loop
        code_ = 1
        try:
            notify = bind_container_socket(cfg)
            attach = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
            attach.bind(str(bundle / "attach"))
            attach.listen(4)
            child = os.fork()
            if child == 0:
                _container(cfg.notify_socket_path, messages, code, linger)
            args = {"config": cfg.to_dict(), "pid": child, "oom": None, "oom_before": 0,
                    "fds": {"attach": attach.fileno(), "notify": notify.fileno()}}  # fmt: skip
            loop.Monitor(args).run()
            code_ = 0
        finally:
            os._exit(code_)
    _, status = os.waitpid(monitor, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with open(cfg.exit_file) as f:
        return monitor, json.load(f), cfg.notify_socket_path


def _container(path: str, messages: list[bytes], code: int, linger: float) -> None:
    """The container's process: what systemd-notify does, one datagram a message."""
    try:
        directory = os.open(os.path.dirname(path), os.O_PATH)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(f"/proc/self/fd/{directory}/{os.path.basename(path)}")
            for message in messages:
                sock.send(message)
        time.sleep(linger)
    finally:
        os._exit(code)


def test_ready_and_watchdog_are_relayed_from_the_monitor(tmp_path: Path, host: Host) -> None:
    sent = [b"STATUS=starting", b"WATCHDOG=1", b"MAINPID=1", b"STOPPING=1",
            b"READY=1\nSTATUS=up"]  # fmt: skip
    # the last one sent just before the process exits: relayed all the same
    monitor, exit_file, path = run_monitor(tmp_path, host.address, sent)
    assert host.messages(0.5) == [(b"WATCHDOG=1", monitor), (b"READY=1", monitor)]
    assert exit_file["exit_code"] == 7
    assert not os.path.lexists(path)  # the socket goes with the monitor


def test_an_abstract_host_socket(tmp_path: Path) -> None:
    name = f"@pypod-sdn-{os.getpid()}-{tmp_path.name}"
    host = Host(name)
    try:
        monitor, _, _ = run_monitor(tmp_path, name, [b"READY=1"], code=0)
        assert host.messages(0.5) == [(b"READY=1", monitor)]
    finally:
        host.sock.close()


def test_nobody_listening_changes_nothing_for_the_container(tmp_path: Path) -> None:
    _, exit_file, _ = run_monitor(tmp_path, str(tmp_path / "nobody"), [b"READY=1"] * 3)
    assert exit_file["exit_code"] == 7


def test_a_host_that_reads_late_loses_nothing(tmp_path: Path, host: Host) -> None:
    """More than the host's queue holds (net.unix.max_dgram_qlen, 10 here): the monitor keeps
    them until the host has room, as conmon waits for its socket to be writable."""
    qlen = int(Path("/proc/sys/net/unix/max_dgram_qlen").read_text())
    count = qlen + 30
    with contextlib.ExitStack() as stack:
        pid = os.fork()
        if pid == 0:
            try:
                run_monitor(tmp_path, host.address, [b"WATCHDOG=1"] * count, linger=2.0)
            finally:
                os._exit(0)
        stack.callback(os.waitpid, pid, 0)
        time.sleep(1.0)  # the container has sent everything, the host has read nothing
        got = host.messages(1.5)
    assert [m for m, _ in got] == [b"WATCHDOG=1"] * count
