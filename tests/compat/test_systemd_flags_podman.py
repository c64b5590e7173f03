"""The flags systemd units call, pypod against podman 4.3: the same command line in each tool
(in stores of their own: the fixture of test_systemd_podman), then the exit codes, errors,
outputs and notifications compared (see tests/e2e/test_pypod_systemd_flags.py for the rest)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.compat.test_systemd_podman import (  # noqa: F401  (tools: the fixture)
    IMAGE,
    Tool,
    both,
    ok,
    tools,
)

pytestmark = [pytest.mark.compat, pytest.mark.root]


def _with_env(tool: Tool, name: str, value: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`tool(*args)` with `name=value` in its environment (the fixture's runners take the
    environment the fixture made: `env` runs the program with the variable added)."""
    closure = dict(zip(tool.__code__.co_freevars, tool.__closure__ or (), strict=True))
    argv = closure["argv"].cell_contents
    env = {**closure["env"].cell_contents, name: value}
    return subprocess.run([*argv, *args], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120, check=False)  # fmt: skip


def same(tools: dict[str, Tool], *args: str) -> subprocess.CompletedProcess[str]:  # noqa: F811
    """Run `args` in both: the same exit code and stderr (IDs made alike); podman's result."""
    got = both(tools, *args)
    shown = {n: (p.returncode, re.sub(r"[0-9a-f]{64}", "<id>", p.stderr)) for n, p in got.items()}
    assert shown["pypod"] == shown["podman"], args
    return got["podman"]


def test_cidfile_errors(tools: dict[str, Tool], tmp_path: Path) -> None:  # noqa: F811
    missing = str(tmp_path / "missing")
    for verb in ("stop", "rm"):
        same(tools, verb, "--cidfile", missing)
        same(tools, verb, "--ignore", "--cidfile", missing)
        same(tools, verb, "--cidfile", missing, "name")
    garbage = tmp_path / "garbage"
    garbage.write_text("nosuchcontainer\n")
    for verb in ("stop", "rm"):
        assert same(tools, verb, "--cidfile", str(garbage)).returncode != 0
        assert same(tools, verb, "--ignore", "--cidfile", str(garbage)).stdout == ""


def test_stop_and_rm_by_cidfile(tools: dict[str, Tool], tmp_path: Path) -> None:  # noqa: F811
    for name, tool in tools.items():
        cidfile = str(tmp_path / f"{name}.ctr-id")
        cid = ok(tool("run", "-d", "--rm", "--cidfile", cidfile, IMAGE, "sleep", "1000")).strip()
        assert ok(tool("stop", "--ignore", "-t", "0", "--cidfile", cidfile)) == f"{cid}\n", name
        # --rm removed it; the file stays: `rm -f --ignore` (the units' ExecStopPost) is quiet
        assert Path(cidfile).read_text() == cid
        assert ok(tool("rm", "-f", "--ignore", "-t", "10", "--cidfile", cidfile)) == "", name


def test_pod_id_file_errors(tools: dict[str, Tool], tmp_path: Path) -> None:  # noqa: F811
    missing = str(tmp_path / "missing")
    same(tools, "pod", "start", "--pod-id-file", missing)
    same(tools, "pod", "stop", "--ignore", "--pod-id-file", missing)
    same(tools, "pod", "rm", "--ignore", "--pod-id-file", missing)
    same(tools, "pod", "start", "--pod-id-file", missing, "name")


def test_pod_units_commands(tools: dict[str, Tool], tmp_path: Path) -> None:  # noqa: F811
    """What `generate systemd --new` and quadlet's `.pod` units run, one after the other."""
    for name, tool in tools.items():
        id_file, pid_file = tmp_path / f"{name}.pod-id", tmp_path / f"{name}.pid"
        pod_id = ok(tool("pod", "create", "--infra-conmon-pidfile", str(pid_file),
                         "--pod-id-file", str(id_file), "--exit-policy=stop", "--name",
                         "sdcpod", "--replace")).strip()  # fmt: skip
        assert id_file.read_text() == pod_id and not pid_file.exists(), name
        assert ok(tool("pod", "start", "--pod-id-file", str(id_file))) == f"{pod_id}\n", name
        infra = ok(tool("pod", "inspect", "--format", "{{.InfraContainerID}}", pod_id)).strip()
        monitor = ok(tool("inspect", "--format", "{{.State.ConmonPid}}", infra)).strip()
        assert pid_file.read_text().strip() == monitor, name
        ok(tool("run", "-d", "--rm", "--pod-id-file", str(id_file), "--name", "sdcm", IMAGE,
                "sleep", "1000"))  # fmt: skip
        ok(tool("stop", "-t", "0", "sdcm"))  # the last member: --exit-policy=stop stops the pod
        for _ in range(100):
            state = ok(tool("inspect", "--format", "{{.State.Status}}", infra)).strip()
            if state == "exited":
                break
            time.sleep(0.1)
        assert state == "exited", name
        assert ok(tool("pod", "stop", "--ignore", "--pod-id-file", str(id_file))) == f"{pod_id}\n"
        assert ok(tool("pod", "rm", "--ignore", "-f", "--pod-id-file", str(id_file))) == (
            f"{pod_id}\n"
        )
        assert ok(tool("pod", "rm", "--ignore", "-f", "--pod-id-file", str(id_file))) == ""


def test_flag_values(tools: dict[str, Tool]) -> None:  # noqa: F811
    same(tools, "run", "--rm", "--sdnotify=bogus", IMAGE, "true")
    same(tools, "run", "--rm", "--cgroups=bogus", IMAGE, "true")
    same(tools, "run", "--rm", "--cgroups=split", "--cgroup-parent=/x", IMAGE, "true")
    same(tools, "pod", "create", "--exit-policy=bogus")
    assert same(tools, "run", "--rm", "--cgroups=no-conmon", IMAGE, "true").returncode == 0


def test_split_in_the_root_cgroup(tools: dict[str, Tool]) -> None:  # noqa: F811
    # (only there: in another cgroup, podman 4.3 moves every process of it to a sub-cgroup)
    if not Path("/proc/self/cgroup").read_text().endswith("0::/\n"):
        pytest.skip("this test runs in a cgroup of its own (not the root one)")
    same(tools, "run", "--rm", "--cgroups=split", IMAGE, "true")


def test_sdnotify_conmon_message(tools: dict[str, Tool]) -> None:  # noqa: F811
    """The datagram each sends (`MAINPID=<monitor pid>\\nREADY=1`), and from which process."""
    for name, tool in tools.items():
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            address = f"@pypod-compat-notify-{os.getpid()}-{name}"
            sock.bind("\0" + address[1:])
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            sock.settimeout(20)
            run = ("run", "-d", "--sdnotify=conmon", IMAGE, "sleep", "1000")
            cid = ok(_with_env(tool, "NOTIFY_SOCKET", address, *run)).strip()
            message, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
        monitor = ok(tool("inspect", "--format", "{{.State.ConmonPid}}", cid)).strip()
        assert message.decode() == f"MAINPID={monitor}\nREADY=1", name
        sender = int.from_bytes(ancillary[0][2][:4], "little")
        assert str(sender) != monitor, name  # sent by the process that ran the container
        ok(tool("rm", "-f", "-t", "0", cid))
