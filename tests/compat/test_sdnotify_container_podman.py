"""`--sdnotify=container` (and no --sdnotify: podman's default), pypod against podman 4.3 +
conmon 2.1.6: the same container under the same NOTIFY_SOCKET in each tool, and what arrives
on that socket, from which process, and what the container and inspect show, compared.

The container sends with the host's systemd-notify (busybox has no sd_notify client; see
tests/e2e/test_pypod_sdnotify_container.py for why and how).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_pypod_sdnotify_container import HOST_LIBS, NOTIFY
from tests.podman_support import IMAGE, Tool, ok, podman_sandbox

pytestmark = [pytest.mark.compat, pytest.mark.root]


@pytest.fixture(scope="module", name="tools")
def tools_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Tool]]:
    with podman_sandbox("psn", tmp_path_factory.mktemp("bb")) as tools:
        yield tools


def _with_env(tool: Tool, env_add: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`tool(*args)` with `env_add` in its environment (as test_systemd_flags_podman does)."""
    closure = dict(zip(tool.__code__.co_freevars, tool.__closure__ or (), strict=True))
    argv = closure["argv"].cell_contents
    env = {**closure["env"].cell_contents, **env_add}
    return subprocess.run([*argv, *args], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120, check=False)  # fmt: skip


def _seen(tool: Tool, path: Path, *flags: str) -> tuple[list[str], dict[str, object]]:
    """Run the notifying container in `tool` under NOTIFY_SOCKET=`path`: the messages as
    "<text> from <who>" (who: monitor, or other for another process) and what it showed."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        script = (f"sleep 0.5; {NOTIFY} --status=hello; {NOTIFY} WATCHDOG=1; "
                  f"{NOTIFY} --ready --status=up; sleep 1000")  # fmt: skip
        run = ("run", "-d", *flags, *HOST_LIBS, IMAGE, "/bin/sh", "-c", script)
        cid = ok(_with_env(tool, {"NOTIFY_SOCKET": str(path)}, *run)).strip()
        got = []
        sock.settimeout(20)
        for _ in range(3):
            data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
            got.append((data.decode(), int.from_bytes(ancillary[0][2][:4], "little")))
        sock.settimeout(1)
        try:
            got.append((sock.recv(4096).decode(), 0))
        except TimeoutError:
            pass
    monitor = int(ok(tool("inspect", "--format", "{{.State.ConmonPid}}", cid)).strip())
    messages = [
        f"{text.replace(str(monitor), '<monitor>')} from "
        f"{'monitor' if pid == monitor else 'other'}"
        for text, pid in got
    ]
    config = json.loads(ok(tool("inspect", cid)))[0]["Config"]
    shown = {
        # the container's own environment (an exec session's differs: see the e2e test)
        "env": [
            e for e in ok(tool("exec", cid, "cat", "/proc/1/environ")).split("\0") if "NOTIFY" in e
        ],  # fmt: skip
        "socket": ok(tool("exec", cid, "ls", "/run/notify")).split(),
        "inspect env": [e for e in config["Env"] if e.startswith("NOTIFY_SOCKET=")],
        "mode": config["sdNotifyMode"],
    }
    ok(tool("rm", "-f", "-t", "0", cid))
    return messages, shown


@pytest.mark.parametrize("flags", [("--sdnotify=container",), ()], ids=["container", "default"])
def test_same_messages_as_podman(
    tools: dict[str, Tool],
    tmp_path: Path,
    flags: tuple[str, ...],
) -> None:
    if not os.access(NOTIFY, os.X_OK):
        pytest.skip(f"{NOTIFY} is not installed (apt-get install systemd)")
    seen = {name: _seen(tool, tmp_path / f"{name}.sock", *flags) for name, tool in tools.items()}
    assert seen["pypod"] == seen["podman"]
    assert seen["podman"][0] == [
        "MAINPID=<monitor> from other", "WATCHDOG=1 from monitor", "READY=1 from monitor"
    ]  # fmt: skip
