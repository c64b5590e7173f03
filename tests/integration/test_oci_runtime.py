"""The OCIRuntime protocol: the in-process runtime and runc behave alike behind it.

Every test runs on both implementations (runc skipped when missing).  The caller's fds 0, 1, 2
are the container's stdio, so tests point them at a file for the duration of the call.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pypod.errors import (
    AlreadyExists,
    CannotInvoke,
    CommandNotFound,
    ContainerNotFound,
    InvalidArgument,
    InvalidState,
    NotFound,
    PypodError,
)
from pypod.runtime.oci_runtime import (
    BinaryRuntime,
    CreateResult,
    InProcessRuntime,
    open_runtime,
)
from pypod.testing import load_config
from tests.conftest import BundleFactory

if TYPE_CHECKING:
    from pypod.runtime.oci_runtime import OCIRuntime

pytestmark = pytest.mark.root


@contextlib.contextmanager
def stdio(path: Path) -> Iterator[None]:
    """Our fds 0, 1, 2 -> /dev/null, `path`, `path` (what the container inherits)."""
    out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open("/dev/null", os.O_RDONLY)
    saved = [os.dup(fd) for fd in (0, 1, 2)]
    try:
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        yield
    finally:
        for fd, copy in zip((0, 1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(out)
        os.close(null)


def wait_for(cond: Callable[[], Any], timeout: float = 10, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def read_console(fd: int, wanted: bytes, timeout: float = 5) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while wanted not in got and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            got += chunk
    return got


class Case:
    def __init__(self, rt: OCIRuntime, tmp: Path, bundle: BundleFactory) -> None:
        self.rt = rt
        self.tmp = tmp
        self.bundle = bundle
        self.ids: list[str] = []
        self.out = tmp / "stdio.txt"

    def create(
        self, args: list[str], *, tty: bool = False, cid: str | None = None
    ) -> tuple[str, CreateResult]:
        cid = cid or f"oci{len(self.ids)}-{os.getpid()}"
        self.ids.append(cid)
        path = self.bundle(args, terminal=tty)
        with stdio(self.out):
            result = self.rt.create(cid, str(path), tty=tty)
        return cid, result

    def output(self) -> str:
        return self.out.read_text() if self.out.exists() else ""

    def status(self, cid: str) -> str:
        return str(self.rt.state(cid)["status"])

    def cleanup(self) -> None:
        for cid in self.ids:
            with contextlib.suppress(PypodError, OSError):
                self.rt.delete(cid, force=True)


@pytest.fixture(params=["pypod", "runc"])
def case(request: pytest.FixtureRequest, tmp_path: Path, bundle: BundleFactory) -> Iterator[Case]:
    if request.param == "runc" and shutil.which("runc") is None:
        pytest.skip("runc is not installed (apt-get install runc)")
    c = Case(open_runtime(request.param, str(tmp_path / "state")), tmp_path, bundle)
    yield c
    c.cleanup()


def test_open_runtime() -> None:
    assert isinstance(open_runtime("pypod", "/tmp/x"), InProcessRuntime)
    runc = shutil.which("runc")
    if runc:
        rt = open_runtime("runc", "/tmp/x")
        assert isinstance(rt, BinaryRuntime)
        assert (rt.name, rt.root) == (runc, "/tmp/x")
    with pytest.raises(NotFound, match="no-such-runtime.*not found in \\$PATH"):
        open_runtime("no-such-runtime", "/tmp/x")
    with pytest.raises(NotFound, match="no executable file"):
        open_runtime("/etc/passwd", "/tmp/x")


def test_lifecycle(case: Case) -> None:
    cid, result = case.create(["sh", "-c", "echo started; sleep 1000"])
    assert result.console_fd is None
    assert case.status(cid) == "created"
    state = case.rt.state(cid)
    assert state["id"] == cid and state["pid"] == result.pid
    assert case.output() == ""
    case.rt.start(cid)
    assert case.status(cid) == "running"
    wait_for(lambda: "started" in case.output(), what="the container's output")
    assert result.pid in case.rt.pids(cid)
    case.rt.pause(cid)
    assert case.status(cid) == "paused"
    case.rt.resume(cid)
    assert case.status(cid) == "running"
    case.rt.kill(cid, signal.SIGKILL)
    wait_for(lambda: case.status(cid) == "stopped", what="stopped")
    case.rt.delete(cid)
    with pytest.raises(ContainerNotFound):
        case.rt.state(cid)


def test_kill_all_and_force_delete(case: Case) -> None:
    cid, _ = case.create(["sh", "-c", "sleep 1000 & sleep 1000"])
    case.rt.start(cid)
    wait_for(lambda: len(case.rt.pids(cid)) >= 2, what="both processes")
    case.rt.kill(cid, signal.SIGKILL, all_processes=True)
    wait_for(lambda: case.status(cid) == "stopped", what="stopped")
    cid2, _ = case.create(["sleep", "1000"])
    case.rt.start(cid2)
    with pytest.raises(InvalidState):
        case.rt.delete(cid2)
    case.rt.delete(cid2, force=True)
    with pytest.raises(ContainerNotFound):
        case.rt.state(cid2)


def test_update_resources(case: Case) -> None:
    cid, result = case.create(["sleep", "1000"])
    case.rt.update(cid, {"pids": {"limit": 42}})
    with open(f"/proc/{result.pid}/cgroup") as f:
        path = next(line.split(":", 2)[2].strip() for line in f if ":pids:" in line)
    assert Path(f"/sys/fs/cgroup/pids{path}/pids.max").read_text().strip() == "42"


def test_terminal(case: Case) -> None:
    cid, result = case.create(["sh", "-c", "tty; sleep 1000"], tty=True)
    assert result.console_fd is not None
    try:
        case.rt.start(cid)
        assert b"/dev/pts/0" in read_console(result.console_fd, b"/dev/pts/0")
    finally:
        os.close(result.console_fd)


def test_exec(case: Case) -> None:
    cid, _ = case.create(["sleep", "1000"])
    case.rt.start(cid)
    process = load_config(case.rt.state(cid)["bundle"])["process"]
    process["args"] = ["sh", "-c", "echo from-exec"]
    with stdio(case.out):
        result = case.rt.exec(cid, process, tty=False)
    assert result.pid > 0 and result.console_fd is None
    wait_for(lambda: "from-exec" in case.output(), what="the exec's output")
    process["args"] = ["tty"]
    with stdio(case.out):
        result = case.rt.exec(cid, process, tty=True)
    assert result.console_fd is not None
    try:
        assert b"/dev/pts/" in read_console(result.console_fd, b"/dev/pts/")
    finally:
        os.close(result.console_fd)
    process["args"] = ["nosuch-command"]
    with pytest.raises(CommandNotFound, match="nosuch-command"), stdio(case.out):
        case.rt.exec(cid, process, tty=False)


def test_errors(case: Case) -> None:
    with pytest.raises(ContainerNotFound):
        case.rt.state("no-such-container")
    with pytest.raises(ContainerNotFound):
        case.rt.kill("no-such-container", signal.SIGTERM)
    with pytest.raises(ContainerNotFound):
        case.rt.start("no-such-container")
    with pytest.raises(CommandNotFound, match="nosuch"):
        case.create(["nosuch"])
    with pytest.raises(CannotInvoke, match="permission denied"):
        case.create(["/etc/passwd"])
    cid, _ = case.create(["sleep", "1000"])
    with pytest.raises(AlreadyExists):
        case.create(["sleep", "1000"], cid=cid)
    case.rt.start(cid)
    with pytest.raises(InvalidState):
        case.rt.start(cid)
    case.rt.kill(cid, signal.SIGKILL)
    wait_for(lambda: case.status(cid) == "stopped", what="stopped")
    with pytest.raises(InvalidState):
        case.rt.kill(cid, signal.SIGKILL)


def test_terminal_mismatch_is_refused(case: Case) -> None:
    """A terminal asked for, but config.json says process.terminal false (and the reverse)."""
    for tty in (True, False):
        cid = f"mismatch{int(tty)}-{os.getpid()}"
        case.ids.append(cid)
        path = case.bundle(["true"], terminal=not tty)
        with pytest.raises(InvalidArgument, match="(?i)terminal|tty|console"), stdio(case.out):
            case.rt.create(cid, str(path), tty=tty)
        with pytest.raises(ContainerNotFound):
            case.rt.state(cid)
