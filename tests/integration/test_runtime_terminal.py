"""process.terminal: the pty master over --console-socket (as conmon gets it), and `run` on a tty.

runc prints /dev/pts/0 for `tty` in a container with a terminal (its own devpts instance), and
sends the master with the name "/dev/ptmx"; pypod-runtime does the same.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLI, BundleFactory, messages

pytestmark = pytest.mark.root


class ConsoleSocket:
    """A unix socket server like conmon's: accepts one connection, takes the fd it carries."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(4)
        self.server.settimeout(10)

    def receive(self) -> tuple[bytes, int]:
        """(the name sent with it, the pty master fd); the runtime connected already."""
        conn, _ = self.server.accept()
        with conn:
            msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 4)
        assert len(fds) == 1, (msg, fds)
        return msg, fds[0]

    def close(self) -> None:
        self.server.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


@pytest.fixture
def console_socket(tmp_path: Path) -> Iterator[ConsoleSocket]:
    sock = ConsoleSocket(tmp_path / "console.sock")
    yield sock
    sock.close()


def read_until(fd: int, wanted: bytes, timeout: float = 5) -> bytes:
    """Read the pty until `wanted` shows up, it closes, or the time is up."""
    buf = b""
    deadline = time.monotonic() + timeout
    while wanted not in buf and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: every slave fd is closed
            break
        if not chunk:
            break
        buf += chunk
    return buf


def wait_stopped(rt: CLI, cid: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while json.loads(rt.ok("state", cid))["status"] != "stopped":
        assert time.monotonic() < deadline, f"{cid} did not stop"
        time.sleep(0.02)


def _sized(spec: dict[str, Any]) -> None:
    spec["process"]["consoleSize"] = {"height": 30, "width": 100}


@pytest.mark.parametrize("tool", ["pypod-runtime", "runc"])
def test_console_socket_gets_the_pty_master(
    tool: str,
    rt: CLI,
    runc: CLI,
    bundle: BundleFactory,
    console_socket: ConsoleSocket,
) -> None:
    cli = rt if tool == "pypod-runtime" else runc
    script = "tty; stty size; read line; echo got:$line"
    b = bundle(["sh", "-c", script], terminal=True, edit=_sized)
    cli.ok("create", "--console-socket", str(console_socket.path), "-b", str(b), "t1")
    name, master = console_socket.receive()
    try:
        assert name == b"/dev/ptmx"
        cli.ok("start", "t1")
        out = read_until(master, b"30 100\r\n")
        assert out.startswith(b"/dev/pts/0\r\n"), out  # the container's own devpts
        assert b"30 100\r\n" in out  # process.consoleSize
        os.write(master, b"hello\n")  # what we write is the program's stdin
        assert b"got:hello\r\n" in read_until(master, b"got:hello\r\n")
        wait_stopped(cli, "t1")
    finally:
        os.close(master)


def test_exec_tty_with_console_socket(
    rt: CLI, bundle: BundleFactory, console_socket: ConsoleSocket
) -> None:
    b = bundle(["sleep", "1000"])
    rt.ok("run", "-d", "-b", str(b), "t1")
    sock = str(console_socket.path)
    rt.ok("exec", "-t", "-d", "--console-socket", sock, "t1", "sh", "-c", "tty; read x; echo x=$x")
    name, master = console_socket.receive()
    try:
        assert name == b"/dev/ptmx"
        assert read_until(master, b"\r\n").startswith(b"/dev/pts/")
        os.write(master, b"42\n")
        assert b"x=42\r\n" in read_until(master, b"x=42\r\n")
    finally:
        os.close(master)


def test_run_foreground_on_a_tty_is_interactive(rt: CLI, bundle: BundleFactory) -> None:
    b = bundle(["sh"], terminal=True)
    pid, fd = pty.fork()
    if pid == 0:  # child: becomes pypod-runtime on the pty's slave
        try:
            os.execv(rt.exe, [rt.exe, "--root", str(rt.root), "run", "-b", str(b), "tty1"])
        finally:
            os._exit(127)
    try:
        assert b"# " in read_until(fd, b"# ")
        os.write(fd, b"tty; echo $((6 * 7))\n")
        out = read_until(fd, b"42\r\n")
        assert b"/dev/pts/0\r\n42\r\n" in out, out
        os.write(fd, b"exit 7\n")
        read_until(fd, b"never", timeout=2)  # drain until the pty closes
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.waitstatus_to_exitcode(status) == 7  # the exit code passes through
        assert rt.ok("list", "-q") == ""
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)


NO_SOCKET = "cannot allocate tty if runc will detach without setting console socket"
NO_TTY = "cannot use console socket if runc will not detach or allocate tty"


@pytest.mark.parametrize(
    ("args", "terminal", "message"),
    [
        (["create"], True, NO_SOCKET),
        (["run", "-d"], True, NO_SOCKET),
        (["create", "--console-socket", "S"], False, NO_TTY),
        (["run", "--console-socket", "S"], True, NO_TTY),  # run in the foreground keeps the tty
    ],
)
def test_terminal_flag_errors_match_runc(
    rt: CLI,
    runc: CLI,
    bundle: BundleFactory,
    console_socket: ConsoleSocket,
    args: list[str],
    terminal: bool,
    message: str,
) -> None:
    b = bundle(["true"], terminal=terminal)
    argv = [str(console_socket.path) if a == "S" else a for a in args]
    for cli, prog in ((rt, "pypod-runtime"), (runc, "runc")):
        proc = cli(*argv, "-b", str(b), "t1")
        assert proc.returncode == 1
        assert messages(proc.stderr) == f"{prog} {args[0]} failed: {message}"
        assert cli.ok("list", "-q") == ""


def test_exec_terminal_flag_errors(
    rt: CLI, bundle: BundleFactory, console_socket: ConsoleSocket
) -> None:
    b = bundle(["sleep", "1000"])
    rt.ok("run", "-d", "-b", str(b), "t1")
    proc = rt("exec", "-t", "-d", "t1", "true")
    assert proc.returncode == 255  # runc's exit code for a failed exec
    assert NO_SOCKET in messages(proc.stderr)
    proc = rt("exec", "-t", "--console-socket", str(console_socket.path), "t1", "true")
    assert proc.returncode == 255
    assert NO_TTY in messages(proc.stderr)
