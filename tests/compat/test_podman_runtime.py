"""Real podman drives pypod-runtime: `podman --runtime $(command -v pypod-runtime) ...`.

podman (Debian's 4.3, with conmon) runs on a private store and configuration, set up once per
session: its own --root/--runroot/--tmpdir, a containers.conf as MACHINE.md describes (ulimits
below the host's hard limits, cgroupfs, file events, no network) and a `busybox` image imported
from the host's busybox-static.  The store is reset and removed at the end.

podman passes the runtime no --root, so the runtime keeps its state in its default root
(/run/pypod-runtime); every container is deleted through the runtime before the session ends.
Where runc is installed, what a container sees is compared with the same command under runc.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYPOD_RUNTIME, messages, run_captured
from tests.engine_support import make_busybox_tar
from tests.podman_support import private_store_cleanup, private_store_env, write_private_store

pytestmark = [pytest.mark.compat, pytest.mark.root]

#: podman reads the runtime's errors from its --log file (JSON) only for runtimes it lists here
SUPPORTS_JSON = 'runtime_supports_json = ["crun", "runc", "pypod-runtime"]\n'


@dataclass(frozen=True, slots=True)
class Podman:
    """podman on the session's private store; calls return CompletedProcess (text)."""

    exe: str
    store: Path

    def command(self, *args: str, runtime: str = PYPOD_RUNTIME) -> list[str]:
        return [
            self.exe,
            "--root", str(self.store / "root"),
            "--runroot", str(self.store / "run"),
            "--tmpdir", str(self.store / "tmp"),
            "--storage-driver", "overlay",
            "--runtime", runtime,
            *args,
        ]  # fmt: skip

    def env(self, conf: str = "containers.conf") -> dict[str, str]:
        return private_store_env(self.store, conf)

    def __call__(
        self,
        *args: str,
        runtime: str = PYPOD_RUNTIME,
        conf: str = "containers.conf",
        timeout: float = 30,
    ) -> subprocess.CompletedProcess[str]:
        cmd = self.command(*args, runtime=runtime)
        # files, not pipes: conmon outlives a detached `run` and must not hold our pipes open
        return run_captured(cmd, env=self.env(conf), timeout=timeout)

    def ok(self, *args: str, **kw: Any) -> str:
        proc = self(*args, **kw)
        assert proc.returncode == 0, f"podman {' '.join(args)}: rc={proc.returncode}\n{proc.stderr}"
        return proc.stdout


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    exe = shutil.which("podman")
    if exe is None:
        pytest.skip("podman is not installed (apt-get install podman): cannot drive pypod-runtime")
    if os.geteuid() != 0:
        pytest.skip("needs root: podman runs rootful here")
    store = tmp_path_factory.mktemp("podman")
    write_private_store(store)
    write_private_store(store, engine=SUPPORTS_JSON, name="containers-json.conf")
    pod = Podman(exe, store)
    with private_store_cleanup(store, pod):
        pod.ok("import", str(make_busybox_tar(store)), "localhost/busybox")
        yield pod


@pytest.fixture(scope="session")
def runc_exe() -> str:
    exe = shutil.which("runc")
    if exe is None:
        pytest.skip("runc is not installed (apt-get install runc): nothing to compare with")
    return exe


def _lines(text: str) -> str:
    return text.replace("\r\n", "\n")


# --------------------------------------------------------------------------- foreground run


def test_run_rm_echo(podman: Podman) -> None:
    proc = podman("run", "--rm", "busybox", "echo", "hi")
    assert (proc.returncode, proc.stdout) == (0, "hi\n"), proc.stderr
    assert podman.ok("ps", "--all", "--quiet") == ""  # --rm removed it


def test_run_exit_codes_pass_through(podman: Podman) -> None:
    proc = podman("run", "--rm", "busybox", "sh", "-c", "exit 3")
    assert proc.returncode == 3, proc.stderr
    missing = podman("run", "--rm", "busybox", "no-such-command")
    assert missing.returncode == 127, missing.stderr
    # podman shows what the runtime printed (a runc-style logrus line) when it does not read
    # the runtime's JSON log; see test_errors_through_json_log for the other way
    assert 'exec: "no-such-command": executable file not found in $PATH' in messages(missing.stderr)
    assert "OCI runtime attempted to invoke a command that was not found" in missing.stderr
    not_runnable = podman("run", "--rm", "busybox", "/etc")
    assert not_runnable.returncode == 126, not_runnable.stderr
    assert "permission denied" in not_runnable.stderr


def test_errors_through_json_log(podman: Podman) -> None:
    """With pypod-runtime in runtime_supports_json, podman passes --log-format=json --log FILE
    and shows the message from that file: no logrus text wrapped in it."""
    ok = podman("run", "--rm", "busybox", "echo", "hi", conf="containers-json.conf")
    assert (ok.returncode, ok.stdout) == (0, "hi\n"), ok.stderr
    proc = podman("run", "--rm", "busybox", "no-such-command", conf="containers-json.conf")
    assert proc.returncode == 127
    assert "level=" not in proc.stderr
    assert (
        'pypod-runtime create failed: unable to start container process: exec: "no-such-command"'
        ": executable file not found in $PATH" in proc.stderr
    )


# --------------------------------------------------------------------------- detached + exec


def test_detached_exec_stop_rm(podman: Podman) -> None:
    cid = podman.ok("run", "-d", "busybox", "sleep", "1000").strip()
    try:
        assert podman.ok("inspect", "--format", "{{.State.Status}}", cid).strip() == "running"
        assert podman.ok("exec", cid, "echo", "hi") == "hi\n"
        five = podman("exec", cid, "sh", "-c", "exit 5")
        assert five.returncode == 5, five.stderr
        assert podman("exec", cid, "no-such-command").returncode == 127
        who = podman.ok("exec", "-u", "1000", "-w", "/tmp", cid, "sh", "-c", "id -u; pwd")
        assert who == "1000\n/tmp\n"
        # sleep as pid 1 ignores SIGTERM: podman waits 2 s, then kills it with SIGKILL
        podman.ok("stop", "-t", "2", cid, timeout=20)
        state = podman.ok("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", cid)
        assert state.split() == ["exited", "137"]
        assert podman("exec", cid, "true").returncode != 0
    finally:
        podman("rm", "--force", "--time", "0", cid)
    assert podman.ok("ps", "--all", "--quiet") == ""
    assert not os.path.exists(os.path.join("/run/pypod-runtime", cid))


def test_pause_unpause_kill(podman: Podman) -> None:
    cid = podman.ok(
        "run", "-d", "busybox", "sh", "-c", "trap 'exit 7' TERM; while :; do sleep 0.1; done"
    ).strip()
    try:
        podman.ok("pause", cid)
        assert podman.ok("inspect", "--format", "{{.State.Status}}", cid).strip() == "paused"
        podman.ok("unpause", cid)
        assert podman.ok("exec", cid, "echo", "alive") == "alive\n"
        podman.ok("kill", "--signal", "TERM", cid)
        assert podman.ok("wait", cid).strip() == "7"
    finally:
        podman("rm", "--force", "--time", "0", cid)


# --------------------------------------------------------------------------- terminal


def test_run_tty_without_terminal_stdin(podman: Podman) -> None:
    """conmon hands pypod-runtime a --console-socket; the pty master goes back through it."""
    proc = podman("run", "--rm", "-t", "busybox", "sh", "-c", "tty; echo hi; exit 4")
    assert proc.returncode == 4, proc.stderr
    assert _lines(proc.stdout) == "/dev/pts/0\nhi\n"


def test_run_interactive_terminal(podman: Podman) -> None:
    """`podman run -it` on a terminal: input reaches the container, its window size too."""
    master, slave = pty.openpty()
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 90, 0, 0))
    script = "read x; echo got-$x; stty size; exit 4"
    proc = subprocess.Popen(
        podman.command("run", "--rm", "-it", "busybox", "sh", "-c", script),
        env=podman.env(),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,  # the pty becomes podman's controlling terminal
    )
    os.close(slave)
    out = b""
    try:
        time.sleep(0.5)
        os.write(master, b"hello\r")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 4096)
                except OSError:  # EIO: podman exited and closed the terminal
                    break
                if not data:
                    break
                out += data
            elif proc.poll() is not None:
                break
        assert proc.wait(timeout=10) == 4, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    text = out.decode(errors="replace").replace("\r\n", "\n")
    assert "got-hello\n30 90\n" in text, text


def test_exec_tty(podman: Podman) -> None:
    cid = podman.ok("run", "-d", "busybox", "sleep", "1000").strip()
    try:
        proc = podman("exec", "-t", cid, "sh", "-c", "tty; test -t 0 && echo tty-stdin")
        assert proc.returncode == 0, proc.stderr
        assert _lines(proc.stdout) == "/dev/pts/0\ntty-stdin\n"
    finally:
        podman("rm", "--force", "--time", "0", cid)


# --------------------------------------------------------------------------- next to runc

SAME_AS_RUNC = {
    "security": ["busybox", "grep", "-E",
                 "^(Cap[a-zA-Z]+|NoNewPrivs|Seccomp):", "/proc/self/status"],
    "rlimits": ["busybox", "sh", "-c", "ulimit -n; ulimit -Hn; ulimit -u; ulimit -Hu"],
    "environment": ["busybox", "sh", "-c", "env | grep -v ^HOSTNAME= | sort; id; pwd; umask"],
    "mount points": ["busybox", "sh", "-c", "cut -d' ' -f5 /proc/self/mountinfo | sort"],
    "read-only tmpfs modes": [
        "--read-only", "busybox", "stat", "-c", "%A %U %n", "/tmp", "/run", "/var/tmp", "/dev/shm",
    ],
    "tmpfs mode option": ["--tmpfs", "/mnt:mode=700", "busybox", "stat", "-c", "%A %n", "/mnt"],
    "rshared bind": [
        "--mount", "type=bind,src={store},dst=/m,bind-propagation=rshared", "busybox",
        "sh", "-c", "grep ' /m ' /proc/self/mountinfo | cut -d' ' -f5,7 | sed 's/:[0-9]*//'",
    ],
    "oom score and user": [
        "--oom-score-adj", "300", "--user", "1000:1000", "busybox",
        "sh", "-c", "cat /proc/self/oom_score_adj; id",
    ],
}  # fmt: skip


@pytest.mark.parametrize("args", SAME_AS_RUNC.values(), ids=SAME_AS_RUNC.keys())
def test_container_sees_what_it_sees_under_runc(
    podman: Podman, runc_exe: str, args: list[str]
) -> None:
    args = [a.replace("{store}", str(podman.store / "tmp")) for a in args]
    ours = podman("run", "--rm", *args)
    theirs = podman("run", "--rm", *args, runtime=runc_exe)
    assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
    assert ours.stdout == theirs.stdout
    assert re.sub(r"\s", "", ours.stdout) != ""
