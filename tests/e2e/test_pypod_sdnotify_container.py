"""`pypod run --sdnotify=container` under a NOTIFY_SOCKET, end to end, as systemd sees it.

A unix datagram socket in the test's directory stands for systemd's (`Type=notify`); pypod runs
with `NOTIFY_SOCKET` pointing at it.  What arrives is what podman 4.3.1 + conmon 2.1.6 send on
this machine for the same commands: `MAINPID=<conmon's pid>` alone, from the podman process,
once the container runs; then, from conmon's pid, `READY=1` for the container's
`READY=1\\nSTATUS=up` and `WATCHDOG=1` for its `WATCHDOG=1`; nothing for `STATUS=hello`.

How the container sends: busybox has no sd_notify client (its `nc` has no unix sockets) and
the image no Python, so the container runs the host's own `/usr/bin/systemd-notify` (the
reference client, the one units use), with the host's /usr, /lib and /lib64 bound read-only
into the busybox container for its shared libraries.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine_support import (  # noqa: F401  (fixtures)
    IMAGE,
    Pypod,
    busybox_tar_fixture,
    pypod_fixture,
    pypod_session_fixture,
)

pytestmark = pytest.mark.root

NOTIFY = "/usr/bin/systemd-notify"
#: what the container needs to run the host's systemd-notify
HOST_LIBS = (
    "-v", "/usr:/usr:ro",
    "-v", f"{os.path.realpath('/lib')}:/lib:ro",
    "-v", f"{os.path.realpath('/lib64')}:/lib64:ro",
)  # fmt: skip


class Systemd:
    """The host's notification socket; each message with the pid that sent it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)

    def take(self, count: int, timeout: float = 20) -> list[tuple[str, int]]:
        """The next `count` messages (fails when they do not come within `timeout`)."""
        self.sock.settimeout(timeout)
        got = []
        for _ in range(count):
            data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            got.append((data.decode(), int.from_bytes(ancillary[0][2][:4], "little")))
        return got

    def quiet(self, seconds: float = 0.5) -> bool:
        """Whether nothing more arrives within `seconds`."""
        self.sock.settimeout(seconds)
        try:
            self.sock.recv(4096)
        except TimeoutError:
            return True
        return False


@pytest.fixture(name="systemd")
def systemd_fixture(tmp_path: Path) -> Iterator[Systemd]:
    if not os.access(NOTIFY, os.X_OK) or shutil.which("ldd") is None:
        pytest.skip(f"{NOTIFY} is not installed (apt-get install systemd)")
    s = Systemd(str(tmp_path / "notify"))
    yield s
    s.sock.close()


def _run(pypod: Pypod, systemd: Systemd | None, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    if systemd is not None:
        env["NOTIFY_SOCKET"] = systemd.path
    proc = pypod(*args, env=env)
    assert proc.returncode == 0, f"{args}: rc={proc.returncode}\n{proc.stderr}{proc.stdout}"
    return proc.stdout


def _sender(script: str) -> tuple[str, ...]:
    return (*HOST_LIBS, IMAGE, "/bin/sh", "-c", script)


def test_ready_and_watchdog_are_relayed_with_the_monitor_as_mainpid(
    pypod: Pypod, systemd: Systemd
) -> None:
    script = (f"sleep 0.5; {NOTIFY} --status=hello; {NOTIFY} WATCHDOG=1; "
              f"{NOTIFY} --ready --status=up; exec sleep 1000")  # fmt: skip
    cid = _run(pypod, systemd, "run", "-d", "--sdnotify=container", *_sender(script)).strip()
    monitor = int(pypod.fmt(cid, "{{.State.ConmonPid}}"))
    (mainpid, cli), (watchdog, w_from), (ready, r_from) = systemd.take(3)
    # the start announces the monitor, from the process that started the container (podman's)
    assert (mainpid, cli != monitor) == (f"MAINPID={monitor}", True)
    # the container's own messages, relayed by the monitor (the unit's MAINPID) as conmon does
    assert [(watchdog, w_from), (ready, r_from)] == [("WATCHDOG=1", monitor), ("READY=1", monitor)]
    assert systemd.quiet()
    # what the container sees, and inspect
    env = pypod.ok("exec", cid, "cat", "/proc/1/environ").split("\0")
    assert "NOTIFY_SOCKET=/run/notify/notify.sock" in env
    pypod.ok("exec", cid, "test", "-S", "/run/notify/notify.sock")
    config = json.loads(pypod.ok("inspect", cid))[0]["Config"]
    assert "NOTIFY_SOCKET=/run/notify/notify.sock" in config["Env"]
    assert config["sdNotifyMode"] == "container"
    pypod.ok("rm", "-f", "-t", "0", cid)


def test_a_container_that_notifies_at_once(pypod: Pypod, systemd: Systemd) -> None:
    """Sent as the container starts, in the foreground: the socket was there before it."""
    out = _run(pypod, systemd, "run", "--rm", "--sdnotify=container", *HOST_LIBS, IMAGE,
               NOTIFY, "--ready")  # fmt: skip
    assert out == ""
    messages = systemd.take(2)
    assert [m for m, _ in messages] == [messages[0][0], "READY=1"]
    assert messages[0][0].startswith("MAINPID=") and messages[1][1] == int(messages[0][0][8:])


def test_the_default_is_container_as_with_podman(pypod: Pypod, systemd: Systemd) -> None:
    cid = _run(pypod, systemd, "run", "-d", *_sender(f"{NOTIFY} --ready; sleep 1000")).strip()
    monitor = int(pypod.fmt(cid, "{{.State.ConmonPid}}"))
    assert [m for m, _ in systemd.take(2)] == [f"MAINPID={monitor}", "READY=1"]
    assert json.loads(pypod.ok("inspect", cid))[0]["Config"]["sdNotifyMode"] == "container"
    pypod.ok("rm", "-f", "-t", "0", cid)


def test_created_then_started_read_only_and_not_root(pypod: Pypod, systemd: Systemd) -> None:
    """The socket is any user's (0777), and is there with --read-only too."""
    cid = _run(pypod, systemd, "create", "--sdnotify=container", "--read-only", "--user",
               "1000:1000", *_sender(f"{NOTIFY} --ready; exec sleep 1000")).strip()  # fmt: skip
    assert systemd.quiet()  # nothing before it starts
    _run(pypod, systemd, "start", cid)
    monitor = int(pypod.fmt(cid, "{{.State.ConmonPid}}"))
    assert [m for m, _ in systemd.take(2)] == [f"MAINPID={monitor}", "READY=1"]
    pypod.ok("rm", "-f", "-t", "0", cid)


def test_runc_does_not_proxy_the_socket_itself(pypod: Pypod, systemd: Systemd) -> None:
    """runc finding NOTIFY_SOCKET would bind a proxy of its own into the container and hold
    `start` until READY=1: the monitor does not pass it on (podman does not give it to
    conmon in this mode)."""
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed (apt-get install runc)")
    cid = _run(pypod, systemd, "run", "-d", "--runtime", "runc", "--sdnotify=container",
               *_sender(f"sleep 0.5; {NOTIFY} --ready; exec sleep 1000")).strip()  # fmt: skip
    monitor = int(pypod.fmt(cid, "{{.State.ConmonPid}}"))
    assert systemd.take(2)[1] == ("READY=1", monitor)
    assert "NOTIFY_SOCKET=/run/notify/notify.sock" in pypod.ok(
        "exec", cid, "cat", "/proc/1/environ"
    ).split("\0")
    pypod.ok("rm", "-f", "-t", "0", cid)


def test_runc_under_a_notify_socket_in_the_other_modes(pypod: Pypod, systemd: Systemd) -> None:
    """conmon and ignore with runc: the monitor keeps NOTIFY_SOCKET from runc in every mode
    (runc would otherwise bind a proxy socket of its own in the bundle and fail)."""
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed (apt-get install runc)")
    for mode, first in (("conmon", "READY=1"), ("ignore", None)):
        out = _run(pypod, systemd, "run", "--rm", "--runtime", "runc", f"--sdnotify={mode}",
                   IMAGE, "/bin/sh", "-c", "echo ${NOTIFY_SOCKET:-none}")  # fmt: skip
        assert out == "none\n", mode
        if first is not None:
            assert systemd.take(1)[0][0].endswith(f"\n{first}")
        assert systemd.quiet(), mode


def test_conmon_and_ignore_pass_nothing_in(pypod: Pypod, systemd: Systemd) -> None:
    for mode, first in (("conmon", "READY=1"), ("ignore", None)):
        out = _run(pypod, systemd, "run", "--rm", f"--sdnotify={mode}", IMAGE, "/bin/sh", "-c",
                   "echo ${NOTIFY_SOCKET:-none}; ls /run/notify 2>&1; true")  # fmt: skip
        assert out == "none\nls: /run/notify: No such file or directory\n", mode
        if first is not None:
            assert systemd.take(1)[0][0].endswith(f"\n{first}")
        assert systemd.quiet(), mode


def test_without_a_notify_socket_the_container_runs_as_any(pypod: Pypod) -> None:
    """podman: no socket, no NOTIFY_SOCKET, no /run/notify; nothing to fail on."""
    out = _run(pypod, None, "run", "--rm", "--sdnotify=container", IMAGE, "/bin/sh", "-c",
               "echo ${NOTIFY_SOCKET:-none}; ls /run/notify 2>&1; true")  # fmt: skip
    assert out == "none\nls: /run/notify: No such file or directory\n"


def test_no_listener_on_the_socket(pypod: Pypod, tmp_path: Path) -> None:
    """systemd gone (or a wrong path): the start and the container go on regardless."""
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "nobody")}
    proc = pypod("run", "--rm", "--sdnotify=container", *HOST_LIBS, IMAGE, "/bin/sh", "-c",
                 f"{NOTIFY} --ready; echo $?", env=env)  # fmt: skip
    assert (proc.returncode, proc.stdout) == (0, "0\n"), proc.stderr
