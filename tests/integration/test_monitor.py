"""The per-container monitor (pypod's conmon), driven as the engine drives it.

Each test spawns monitors for busybox bundles through the in-process runtime ("pypod") and,
where it matters, through runc; it looks at what a user sees: the k8s-file log, the exit
file, attach output, stdin, terminal, detach, the runtime's state.  The `mon` fixture kills
every monitor it spawned and deletes every container, and the `bundle` fixture removes the
cgroups, even when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pypod.errors import CannotInvoke, CommandNotFound, InvalidState, PypodError
from pypod.monitor import protocol
from pypod.monitor.config import MonitorConfig
from pypod.monitor.protocol import AttachResult
from pypod.monitor.spawn import Pending, fork_monitor, spawn
from pypod.runtime.oci_runtime import open_runtime
from pypod.testing import load_config
from tests.conftest import BundleFactory

if TYPE_CHECKING:
    from pypod.runtime.oci_runtime import OCIRuntime

pytestmark = pytest.mark.root

K8S_LINE = re.compile(
    rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}[+-]\d\d:\d\d (stdout|stderr) ([PF]) (.*)$", re.S
)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return False
    return raw[raw.rindex(b")") + 2 :][:1] not in (b"Z", b"X")


def wait_for(cond: Callable[[], Any], timeout: float = 10, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def log_entries(path: str) -> list[tuple[str, str, bytes]]:
    """(stream, P/F, content) of each line of a k8s-file log; fails on a malformed line."""
    with open(path, "rb") as f:
        raw = f.read()
    out = []
    for line in raw.split(b"\n")[:-1]:
        m = K8S_LINE.match(line)
        assert m is not None, f"not a k8s-file line: {line!r}"
        out.append((m.group(1).decode(), m.group(2).decode(), m.group(3)))
    assert raw.endswith(b"\n") or raw == b""
    return out


def holders(path: str) -> list[int]:
    """Processes holding `path` open."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == path:
                        found.append(int(pid))
    return found


class Harness:
    """Monitors for one test on one runtime, with their own state root and directories."""

    def __init__(self, tmp_path: Path, bundle: BundleFactory, runtime: str) -> None:
        self.tmp = tmp_path
        self.bundle = bundle
        self.runtime_name = runtime
        self.root = str(tmp_path / f"{runtime}-state")
        self.count = 0
        self.monitors: list[int] = []
        self.ids: list[str] = []

    @property
    def runtime(self) -> OCIRuntime:
        return open_runtime(self.runtime_name, self.root)

    def config(
        self,
        args: list[str],
        *,
        tty: bool = False,
        stdin: bool = False,
        edit: Callable[[dict[str, Any]], None] | None = None,
        **kw: Any,
    ) -> MonitorConfig:
        self.count += 1
        n = self.count
        path = self.bundle(args, terminal=tty, edit=edit)
        userdata = self.tmp / f"ud{n}"
        userdata.mkdir()
        cid = kw.pop("container_id", f"mon{n}-{os.getpid()}")
        self.ids.append(cid)
        values: dict[str, Any] = {
            "container_id": cid,
            "bundle": str(path),
            "runtime": self.runtime_name,
            "runtime_root": self.root,
            "userdata": str(userdata),
            "log_driver": "k8s-file",
            "log_path": str(userdata / "ctr.log"),
            "log_max_size": 0,
            "tty": tty,
            "stdin": stdin,
            "exit_file": str(userdata / "exit"),
        }
        values.update(kw)
        return MonitorConfig(**values)

    def exec_config(self, base: MonitorConfig, args: list[str], **kw: Any) -> MonitorConfig:
        """An exec session in `base`'s container."""
        self.count += 1
        userdata = self.tmp / f"exec{self.count}"
        userdata.mkdir()
        process = load_config(base.bundle)["process"]
        process["args"] = args
        values = {
            **base.to_dict(),
            "userdata": str(userdata),
            "log_driver": "none",
            "log_path": "",
            "exit_file": str(userdata / "exit"),
            "exec_process": process,
            "tty": False,
            "stdin": False,
        }
        values.update(kw)
        return MonitorConfig.from_dict(values)

    def spawn(self, cfg: MonitorConfig) -> Pending:
        pending = spawn(cfg)
        self.monitors.append(pending.monitor_pid)
        return pending

    def run(self, cfg: MonitorConfig) -> Pending:
        pending = self.spawn(cfg)
        pending.start()
        return pending

    def wait_exit(self, cfg: MonitorConfig, timeout: float = 15) -> dict[str, Any]:
        wait_for(lambda: os.path.exists(cfg.exit_file), timeout, f"exit file {cfg.exit_file}")
        with open(cfg.exit_file) as f:
            data: dict[str, Any] = json.load(f)
        return data

    def status(self, cid: str) -> str:
        return str(self.runtime.state(cid)["status"])

    def cleanup(self) -> None:
        for pid in self.monitors:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        rt = self.runtime
        for cid in self.ids:
            with contextlib.suppress(PypodError, OSError):
                rt.delete(cid, force=True)


RUNTIMES = ["pypod", "runc"]


@pytest.fixture(params=RUNTIMES)
def mon(request: pytest.FixtureRequest, tmp_path: Path, bundle: BundleFactory) -> Iterator[Harness]:
    if request.param == "runc" and shutil.which("runc") is None:
        pytest.skip("runc is not installed (apt-get install runc)")
    harness = Harness(tmp_path, bundle, request.param)
    yield harness
    harness.cleanup()


@pytest.fixture
def mon_pypod(tmp_path: Path, bundle: BundleFactory) -> Iterator[Harness]:
    harness = Harness(tmp_path, bundle, "pypod")
    yield harness
    harness.cleanup()


def collect(
    conn: protocol.Connection, stdin: bytes | None = None, **kw: Any
) -> tuple[AttachResult, bytes, bytes]:
    """Run an attach connection with `stdin` (then EOF) as input; (result, stdout, stderr)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        r = None
        if stdin is not None:
            r, w = os.pipe()
            os.write(w, stdin)
            os.close(w)
        try:
            result = conn.run(r, out.fileno(), err.fileno(), **kw)
        finally:
            if r is not None:
                os.close(r)
        out.seek(0)
        err.seek(0)
        return result, out.read(), err.read()


# --------------------------------------------------------------------------- run and exit


def test_echo_writes_log_and_exit_file(mon: Harness) -> None:
    cfg = mon.config(["sh", "-c", "echo hi; echo oops >&2"])
    pending = mon.run(cfg)
    assert pending.pid > 0
    exit_info = mon.wait_exit(cfg)
    assert exit_info["exit_code"] == 0
    assert exit_info["oom_killed"] is False
    assert abs(exit_info["finished"] - time.time()) < 60
    entries = log_entries(cfg.log_path)
    assert ("stdout", "F", b"hi") in entries
    assert ("stderr", "F", b"oops") in entries
    # the monitor is gone and removed its files; the runtime keeps the stopped container
    wait_for(lambda: not alive(pending.monitor_pid), what="the monitor to exit")
    assert sorted(os.listdir(cfg.userdata)) == ["ctr.log", "exit"]
    assert mon.status(cfg.container_id) == "stopped"


def test_partial_line_is_marked_p(mon_pypod: Harness) -> None:
    cfg = mon_pypod.config(["sh", "-c", "printf 'one\\ntwo'"])
    mon_pypod.run(cfg)
    mon_pypod.wait_exit(cfg)
    assert log_entries(cfg.log_path) == [("stdout", "F", b"one"), ("stdout", "P", b"two")]


def test_exit_code_3(mon: Harness) -> None:
    cfg = mon.config(["sh", "-c", "exit 3"])
    mon.run(cfg)
    assert mon.wait_exit(cfg)["exit_code"] == 3


def test_killed_by_signal_is_128_plus_n(mon: Harness) -> None:
    cfg = mon.config(["sleep", "1000"])
    mon.run(cfg)
    mon.runtime.kill(cfg.container_id, signal.SIGKILL)
    assert mon.wait_exit(cfg)["exit_code"] == 128 + signal.SIGKILL


def _assert_nothing_left(h: Harness, cfg: MonitorConfig) -> None:
    assert os.listdir(cfg.userdata) in ([], ["ctr.log"])
    assert not os.path.exists(cfg.exit_file)
    # the monitor opened the log before it called the runtime: it must be gone now
    if os.path.exists(cfg.log_path):
        assert holders(cfg.log_path) == []
    with pytest.raises(PypodError):
        h.runtime.state(cfg.container_id)


def test_command_not_found_raises_127(mon: Harness) -> None:
    cfg = mon.config(["nosuch-command"])
    with pytest.raises(CommandNotFound, match="nosuch-command") as info:
        mon.spawn(cfg)
    assert info.value.engine_exit_code == 127
    _assert_nothing_left(mon, cfg)


def test_not_executable_raises_126(mon: Harness) -> None:
    cfg = mon.config(["/etc/passwd"])
    with pytest.raises(CannotInvoke, match="permission denied") as info:
        mon.spawn(cfg)
    assert info.value.engine_exit_code == 126
    _assert_nothing_left(mon, cfg)


def test_exec_format_error_after_start(mon: Harness) -> None:
    """Executable but not a program: found at create, fails at the exec after start.  The
    code is the runtime's: pypod's exec helper exits 126; runc exits 1 (as under podman)."""

    def bad_file(spec: dict[str, Any]) -> None:
        spec["process"]["args"] = ["/bad"]

    cfg = mon.config(["/bad"], edit=bad_file)
    rootfs = Path(cfg.bundle) / "rootfs"
    (rootfs / "bad").write_text("not a program\n")
    (rootfs / "bad").chmod(0o755)
    mon.run(cfg)
    assert mon.wait_exit(cfg)["exit_code"] == {"pypod": 126, "runc": 1}[mon.runtime_name]


def test_exit_command_runs_after_the_exit_file(mon: Harness, tmp_path: Path) -> None:
    marker = tmp_path / "exit-command-saw"
    cfg = mon.config(["true"])
    cfg = MonitorConfig.from_dict(
        {**cfg.to_dict(), "exit_command": ["sh", "-c", f"cat {cfg.exit_file} > {marker}.tmp && "
                                           f"mv {marker}.tmp {marker}"]}
    )  # fmt: skip
    mon.run(cfg)
    wait_for(marker.exists, what="the exit command")
    assert json.loads(marker.read_text())["exit_code"] == 0


def test_oom_killed(mon_pypod: Harness) -> None:
    if not os.path.exists("/sys/fs/cgroup/memory/memory.oom_control") and not os.path.exists(
        "/sys/fs/cgroup/memory.events"
    ):
        pytest.skip("no memory cgroup controller (v1 memory or v2 memory.events)")

    def limit(spec: dict[str, Any]) -> None:
        memory = {"limit": 16 << 20}
        if os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"):
            memory["swap"] = 16 << 20
        spec["linux"].setdefault("resources", {})["memory"] = memory

    cfg = mon_pypod.config(["tail", "/dev/zero"], edit=limit)  # tail buffers a line that never ends
    mon_pypod.run(cfg)
    info = mon_pypod.wait_exit(cfg, timeout=60)
    assert info["exit_code"] == 137
    assert info["oom_killed"] is True


# --------------------------------------------------------------------------- attach


def test_attach_gets_output(mon: Harness) -> None:
    cfg = mon.config(["sh", "-c", "echo out; echo err >&2; exit 4"])
    pending = mon.spawn(cfg)
    conn = protocol.connect(cfg.userdata)  # before the start: nothing is missed
    pending.start()
    result, out, err = collect(conn)
    assert result is AttachResult.ENDED
    assert out == b"out\n"
    assert err == b"err\n"
    # the exit file is there once the stream ended
    assert protocol.read_exit_file(cfg.exit_file) is not None
    assert protocol.read_exit_file(cfg.exit_file).exit_code == 4  # type: ignore[union-attr]


def test_two_attachers_both_get_the_output(mon: Harness) -> None:
    cfg = mon.config(["sh", "-c", "echo both; sleep 0.2; echo again"])
    pending = mon.spawn(cfg)
    first = protocol.connect(cfg.userdata)
    second = protocol.connect(cfg.userdata)
    pending.start()
    results: dict[str, tuple[AttachResult, bytes, bytes]] = {}
    thread = threading.Thread(target=lambda: results.update(first=collect(first)))
    thread.start()
    results["second"] = collect(second)
    thread.join(15)
    assert results["first"][:2] == (AttachResult.ENDED, b"both\nagain\n")
    assert results["second"][:2] == (AttachResult.ENDED, b"both\nagain\n")


def test_stdin_through_attach(mon: Harness) -> None:
    """`echo hi | pypod run -i busybox cat`: the input's EOF closes the container's stdin."""
    cfg = mon.config(["cat"], stdin=True)
    pending = mon.spawn(cfg)
    conn = protocol.connect(cfg.userdata)
    pending.start()
    result, out, _ = collect(conn, stdin=b"hi\nthere\n")
    assert result is AttachResult.ENDED
    assert out == b"hi\nthere\n"
    assert mon.wait_exit(cfg)["exit_code"] == 0
    assert [e[2] for e in log_entries(cfg.log_path)] == [b"hi", b"there"]


def test_without_stdin_the_container_reads_eof(mon_pypod: Harness) -> None:
    cfg = mon_pypod.config(["cat"], stdin=False)
    pending = mon_pypod.spawn(cfg)
    conn = protocol.connect(cfg.userdata)
    pending.start()
    result, out, _ = collect(conn, stdin=b"ignored\n")
    assert (result, out) == (AttachResult.ENDED, b"")
    assert mon_pypod.wait_exit(cfg)["exit_code"] == 0


def test_detach_keys_leave_the_container_running(mon: Harness) -> None:
    cfg = mon.config(["cat"], stdin=True)
    pending = mon.spawn(cfg)
    conn = protocol.connect(cfg.userdata)
    pending.start()
    result, _, _ = collect(conn, stdin=b"first\n\x10\x11never sent\n")
    assert result is AttachResult.DETACHED
    time.sleep(0.2)
    assert alive(pending.monitor_pid)
    assert mon.status(cfg.container_id) == "running"  # its stdin is still open
    # attach again: new input reaches it, and the end of that input ends it
    again = protocol.connect(cfg.userdata)
    result, out, _ = collect(again, stdin=b"second\n")
    assert result is AttachResult.ENDED
    assert out == b"second\n"
    assert mon.wait_exit(cfg)["exit_code"] == 0
    assert [e[2] for e in log_entries(cfg.log_path)] == [b"first", b"second"]


def test_custom_and_disabled_detach_keys(mon_pypod: Harness) -> None:
    cfg = mon_pypod.config(["cat"], stdin=True)
    pending = mon_pypod.spawn(cfg)
    conn = protocol.connect(cfg.userdata)
    pending.start()
    result, _, _ = collect(conn, stdin=b"a\x10\x11b\x01x", detach_keys="ctrl-a,x")
    assert result is AttachResult.DETACHED
    time.sleep(0.3)  # cat echoes "a^P^Qb" meanwhile, to nobody
    again = protocol.connect(cfg.userdata)
    result, out, _ = collect(again, stdin=b"\x10\x11\n", detach_keys="")
    assert result is AttachResult.ENDED
    assert out == b"\x10\x11\n"
    entries = log_entries(cfg.log_path)
    assert entries == [("stdout", "P", b"a\x10\x11b"), ("stdout", "F", b"\x10\x11")]


def test_attach_after_exit_is_refused(mon_pypod: Harness) -> None:
    cfg = mon_pypod.config(["true"])
    mon_pypod.run(cfg)
    mon_pypod.wait_exit(cfg)
    wait_for(lambda: not os.path.exists(os.path.join(cfg.userdata, "attach")))
    with pytest.raises(InvalidState, match="cannot attach"):
        protocol.connect(cfg.userdata)


# --------------------------------------------------------------------------- terminal


def test_tty_output_comes_through_the_pty(mon: Harness) -> None:
    cfg = mon.config(["sh", "-c", "tty; echo hi"], tty=True)
    pending = mon.spawn(cfg)
    conn = protocol.connect(cfg.userdata)
    pending.start()
    result, out, err = collect(conn)
    assert result is AttachResult.ENDED
    assert out == b"/dev/pts/0\r\nhi\r\n"
    assert err == b""
    assert mon.wait_exit(cfg)["exit_code"] == 0
    assert log_entries(cfg.log_path) == [
        ("stdout", "F", b"/dev/pts/0\r"),
        ("stdout", "F", b"hi\r"),
    ]


def test_tty_resize_through_attach_and_ctl(mon: Harness) -> None:
    cfg = mon.config(["sh", "-c", "sleep 0.5; stty size; sleep 0.5; stty size"], tty=True)
    pending = mon.spawn(cfg)
    conn = protocol.connect(cfg.userdata)
    conn.resize(33, 111)
    pending.start()

    def later() -> None:
        time.sleep(0.7)
        protocol.resize(cfg.userdata, 44, 122)

    thread = threading.Thread(target=later)
    thread.start()
    _, out, _ = collect(conn)
    thread.join()
    assert out == b"33 111\r\n44 122\r\n"


def test_tty_stdin(mon_pypod: Harness) -> None:
    cfg = mon_pypod.config(["sh", "-c", "read line; echo got:$line"], tty=True, stdin=True)
    pending = mon_pypod.spawn(cfg)
    conn = protocol.connect(cfg.userdata)
    pending.start()
    _, out, _ = collect(conn, stdin=b"hello\r")
    assert b"got:hello\r\n" in out


# --------------------------------------------------------------------------- lifecycle


def test_release_leaves_it_created_and_a_later_start_runs_it(mon: Harness) -> None:
    cfg = mon.config(["sh", "-c", "echo late; exit 7"])
    pending = mon.spawn(cfg)
    pending.release()
    time.sleep(0.3)
    assert mon.status(cfg.container_id) == "created"
    assert alive(pending.monitor_pid)
    assert not os.path.exists(cfg.exit_file)
    mon.runtime.start(cfg.container_id)
    assert mon.wait_exit(cfg)["exit_code"] == 7
    assert log_entries(cfg.log_path) == [("stdout", "F", b"late")]


def test_start_twice_or_after_release_is_refused(mon_pypod: Harness) -> None:
    cfg = mon_pypod.config(["true"])
    pending = mon_pypod.spawn(cfg)
    pending.start()
    with pytest.raises(InvalidState):
        pending.start()
    with pytest.raises(InvalidState):
        pending.release()


def test_create_with_start_runs_it_at_once(mon: Harness) -> None:
    """`create(start=True)` (`run -d`): created and started in one exchange; the process runs,
    its output reaches the log, and the Pending handle refuses a second start."""
    cfg = mon.config(["sh", "-c", "echo early; exit 4"])
    pending = fork_monitor(cfg).create(start=True)
    mon.monitors.append(pending.monitor_pid)
    assert pending.started and pending.pid > 0
    assert mon.wait_exit(cfg)["exit_code"] == 4
    assert log_entries(cfg.log_path) == [("stdout", "F", b"early")]
    with pytest.raises(InvalidState):
        pending.start()


def test_create_with_start_reports_a_missing_command(mon: Harness) -> None:
    cfg = mon.config(["nosuch-command"])
    with pytest.raises(CommandNotFound, match="nosuch-command") as info:
        fork_monitor(cfg).create(start=True)
    assert info.value.engine_exit_code == 127
    _assert_nothing_left(mon, cfg)


def test_sigkill_of_the_monitor_leaves_the_container_running(mon: Harness) -> None:
    cfg = mon.config(["sleep", "1000"])
    pending = mon.run(cfg)
    os.kill(pending.monitor_pid, signal.SIGKILL)
    wait_for(lambda: not alive(pending.monitor_pid), what="the monitor to die")
    time.sleep(0.2)
    assert alive(pending.pid)
    assert mon.status(cfg.container_id) == "running"
    assert not os.path.exists(cfg.exit_file)


def test_sigterm_and_sigint_do_not_stop_the_monitor(mon_pypod: Harness) -> None:
    cfg = mon_pypod.config(["sh", "-c", "sleep 0.6; echo still"])
    pending = mon_pypod.spawn(cfg)
    conn = protocol.connect(cfg.userdata)
    pending.start()
    time.sleep(0.2)
    os.kill(pending.monitor_pid, signal.SIGTERM)
    os.kill(pending.monitor_pid, signal.SIGINT)
    _, out, _ = collect(conn)
    assert out == b"still\n"
    assert mon_pypod.wait_exit(cfg)["exit_code"] == 0


def test_monitor_pid_file(mon_pypod: Harness) -> None:
    cfg = mon_pypod.config(["sleep", "1000"])
    pending = mon_pypod.run(cfg)
    with open(os.path.join(cfg.userdata, "monitor.pid")) as f:
        assert int(f.read()) == pending.monitor_pid
    assert protocol.monitor_pid(cfg.userdata) == pending.monitor_pid
    mon_pypod.runtime.kill(cfg.container_id, signal.SIGKILL)
    mon_pypod.wait_exit(cfg)
    wait_for(lambda: protocol.monitor_pid(cfg.userdata) is None, what="monitor.pid removed")


# --------------------------------------------------------------------------- log size


def test_log_max_size_truncates_and_goes_on(mon: Harness) -> None:
    """conmon's rule (podman --log-opt max-size=300 gives the same file): each line costs
    timestamp + stream + tag + content; when the next line would pass the limit the file is
    replaced by an empty one."""
    cfg = mon.config(
        ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do echo line$i; done"], log_max_size=300
    )
    mon.run(cfg)
    mon.wait_exit(cfg)
    contents = [e[2] for e in log_entries(cfg.log_path)]
    assert contents == [b"line6", b"line7", b"line8", b"line9", b"line10"]
    assert os.path.getsize(cfg.log_path) <= 300
    assert not os.path.exists(cfg.log_path + ".tmp")


def test_log_driver_none_writes_no_log(mon_pypod: Harness) -> None:
    cfg = mon_pypod.config(["echo", "hi"], log_driver="none", log_path="")
    pending = mon_pypod.spawn(cfg)
    conn = protocol.connect(cfg.userdata)
    pending.start()
    assert collect(conn)[1] == b"hi\n"
    mon_pypod.wait_exit(cfg)
    wait_for(lambda: not alive(pending.monitor_pid), what="the monitor to exit")
    assert sorted(os.listdir(cfg.userdata)) == ["exit"]


# --------------------------------------------------------------------------- exec sessions


def test_exec_session_in_a_running_container(mon: Harness) -> None:
    base = mon.config(["sleep", "1000"])
    mon.run(base)
    cfg = mon.exec_config(base, ["sh", "-c", "echo from-exec; echo e >&2; exit 5"])
    pending = mon.spawn(cfg)
    assert pending.pid == 0
    conn = protocol.connect(cfg.userdata)
    pid = pending.start()
    assert pid > 0 and pending.pid == pid
    result, out, err = collect(conn)
    assert (result, out, err) == (AttachResult.ENDED, b"from-exec\n", b"e\n")
    assert mon.wait_exit(cfg)["exit_code"] == 5
    assert mon.status(base.container_id) == "running"  # the container is not affected


def test_exec_session_with_stdin_and_tty(mon: Harness) -> None:
    base = mon.config(["sleep", "1000"])
    mon.run(base)
    cfg = mon.exec_config(base, ["cat"], stdin=True)
    pending = mon.spawn(cfg)
    conn = protocol.connect(cfg.userdata)
    pending.start()
    assert collect(conn, stdin=b"piped\n")[1] == b"piped\n"
    assert mon.wait_exit(cfg)["exit_code"] == 0
    cfg = mon.exec_config(base, ["tty"], tty=True)
    pending = mon.spawn(cfg)
    conn = protocol.connect(cfg.userdata)
    pending.start()
    assert collect(conn)[1].startswith(b"/dev/pts/")


def test_exec_session_command_not_found(mon: Harness) -> None:
    base = mon.config(["sleep", "1000"])
    mon.run(base)
    cfg = mon.exec_config(base, ["nosuch-command"])
    pending = mon.spawn(cfg)
    with pytest.raises(CommandNotFound, match="nosuch-command"):
        pending.start()
    assert not alive(pending.monitor_pid)
    assert os.listdir(cfg.userdata) == []
    assert mon.status(base.container_id) == "running"


def test_exec_session_ends_when_its_process_exits_not_its_pipes(mon_pypod: Harness) -> None:
    """A background process keeps the session's stdout open: the exit is still reported."""
    base = mon_pypod.config(["sleep", "1000"])
    mon_pypod.run(base)
    cfg = mon_pypod.exec_config(base, ["sh", "-c", "sleep 1000 & echo bye"])
    pending = mon_pypod.spawn(cfg)
    conn = protocol.connect(cfg.userdata)
    pending.start()
    started = time.monotonic()
    result, out, _ = collect(conn)
    assert (result, out) == (AttachResult.ENDED, b"bye\n")
    assert mon_pypod.wait_exit(cfg)["exit_code"] == 0
    assert time.monotonic() - started < 5


def test_long_userdata_path(mon_pypod: Harness, tmp_path: Path) -> None:
    """Unix socket paths are limited to 108 bytes; the monitor binds and the client connects
    through /proc/self/fd, as conmon does."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    cfg = mon_pypod.config(["echo", "deep"])
    cfg = MonitorConfig.from_dict({**cfg.to_dict(), "userdata": str(deep),
                                   "exit_file": str(deep / "exit")})  # fmt: skip
    assert len(os.path.join(cfg.userdata, "attach")) > 108
    pending = mon_pypod.spawn(cfg)
    conn = protocol.connect(cfg.userdata)
    pending.start()
    assert collect(conn)[1] == b"deep\n"
    assert mon_pypod.wait_exit(cfg)["exit_code"] == 0


# --------------------------------------------------------------------------- memory


def _memory(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f.read().splitlines()[1:]:
            key, value = line.split(":")
            out[key] = int(value.split()[0])
    return out


def test_monitor_is_a_fresh_small_interpreter(mon: Harness) -> None:
    """The loop runs in a fresh `python -I -S`, not in a fork of the CLI: none of the CLI's
    modules (ctypes, pypod's) are mapped.  RSS and PSS are printed, not asserted."""
    pendings = [mon.run(mon.config(["sleep", "1000"])) for _ in range(5)]

    def argv(pid: int) -> list[bytes]:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")

    for p in pendings:
        # STARTED comes just before the exec
        pid = p.monitor_pid
        wait_for(lambda: argv(pid)[1:3] == [b"-I", b"-S"], what="the loop's exec")  # noqa: B023
        with open(f"/proc/{p.monitor_pid}/maps") as f:
            maps = f.read()
        assert "_ctypes" not in maps and "libseccomp" not in maps
        assert p.pid > 0 and alive(p.pid)
    sizes = [_memory(p.monitor_pid) for p in pendings]
    rss = sum(m["Rss"] for m in sizes) / len(sizes)
    pss = sum(m["Pss"] for m in sizes) / len(sizes)
    private = sum(m["Private_Clean"] + m["Private_Dirty"] for m in sizes) / len(sizes)
    me = _memory(os.getpid())
    print(
        f"\nmonitor ({mon.runtime_name}, {len(sizes)} running): RSS {rss / 1024:.1f} MiB, "
        f"PSS {pss / 1024:.1f} MiB, private {private / 1024:.1f} MiB "
        f"(the test process that forked them: RSS {me['Rss'] / 1024:.1f} MiB)"
    )
