"""The flags systemd units call: `run --sdnotify --cgroups --conmon-pidfile`, `stop/rm
--cidfile`, `pod create --infra-conmon-pidfile --exit-policy`, `pod start/stop/rm
--pod-id-file` (see tests/compat/test_systemd_flags_podman.py for podman's side)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine_support import (  # noqa: F401  (fixtures)
    IMAGE,
    Pypod,
    alive,
    busybox_tar_fixture,
    pypod_fixture,
    pypod_session_fixture,
    wait_for,
)

pytestmark = pytest.mark.root


@pytest.fixture(name="notify_socket")
def notify_socket_fixture(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """systemd's notification socket: a unix datagram socket (abstract: its name is "@...")."""
    name = f"@pypod-test-notify-{os.getpid()}-{tmp_path.name}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name[1:])
        sock.settimeout(20)
        yield sock, name


def _env_run(pypod: Pypod, env: dict[str, str], *args: str) -> str:
    proc = subprocess.run([*pypod.argv, *args], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# --- --sdnotify -------------------------------------------------------------------------------
def test_sdnotify_conmon_sends_mainpid_and_ready_once_started(
    pypod: Pypod, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, name = notify_socket
    cid = _env_run(pypod, {"NOTIFY_SOCKET": name}, "run", "-d", "--sdnotify=conmon", IMAGE,
                   "sleep", "1000").strip()  # fmt: skip
    message = sock.recv(4096).decode()
    monitor = int(pypod.fmt(cid, "{{.State.ConmonPid}}"))
    assert message == f"MAINPID={monitor}\nREADY=1"  # podman's, in one datagram
    assert pypod.status(cid) == "running"
    # the socket is not the container's business
    assert "NOTIFY_SOCKET" not in pypod.ok("exec", cid, "env")
    # kept with the container: a later start notifies again
    pypod.ok("stop", "-t", "0", cid)
    _env_run(pypod, {"NOTIFY_SOCKET": name}, "start", cid)
    monitor = int(pypod.fmt(cid, "{{.State.ConmonPid}}"))
    assert sock.recv(4096).decode() == f"MAINPID={monitor}\nREADY=1"
    pypod.ok("rm", "-f", "-t", "0", cid)


def test_sdnotify_conmon_in_the_foreground_and_ignore(
    pypod: Pypod, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, name = notify_socket
    out = _env_run(pypod, {"NOTIFY_SOCKET": name}, "run", "--rm", "--sdnotify=conmon", IMAGE,
                   "echo", "hi")  # fmt: skip
    assert out == "hi\n"
    assert sock.recv(4096).decode().endswith("\nREADY=1")
    _env_run(pypod, {"NOTIFY_SOCKET": name}, "run", "--rm", "--sdnotify=ignore", IMAGE, "true")
    sock.settimeout(0.5)
    with pytest.raises(TimeoutError):
        sock.recv(4096)


def test_sdnotify_without_a_socket_or_a_listener_still_runs(pypod: Pypod, tmp_path: Path) -> None:
    pypod.ok("run", "--rm", "--sdnotify=conmon", IMAGE, "true")  # no NOTIFY_SOCKET: nothing
    gone = str(tmp_path / "nobody-listens")
    _env_run(pypod, {"NOTIFY_SOCKET": gone}, "run", "--rm", "--sdnotify=conmon", IMAGE, "true")


def test_sdnotify_values(pypod: Pypod) -> None:
    err = pypod.fails(125, "run", "--rm", "--sdnotify=bogus", IMAGE, "true")
    assert err == ('Error: invalid config provided: invalid argument: invalid sdnotify value '
                   '"bogus": must be container, conmon or ignore\n')  # fmt: skip
    # --sdnotify=container: tests/e2e/test_pypod_sdnotify_container.py


# --- --cgroups --------------------------------------------------------------------------------
def test_cgroups_no_conmon_keeps_the_monitor_where_pypod_ran(pypod: Pypod) -> None:
    cid = pypod.run_d("--cgroups=no-conmon", IMAGE, "sleep", "1000").strip()
    monitor = pypod.fmt(cid, "{{.State.ConmonPid}}")
    pid = pypod.fmt(cid, "{{.State.Pid}}")
    ours = Path("/proc/self/cgroup").read_text()
    assert Path(f"/proc/{monitor}/cgroup").read_text() == ours
    assert cid in Path(f"/proc/{pid}/cgroup").read_text()  # the container: a cgroup of its own
    pypod.ok("rm", "-f", "-t", "0", cid)


def test_cgroups_values(pypod: Pypod) -> None:
    pypod.ok("run", "--rm", "--cgroups=enabled", IMAGE, "true")
    err = pypod.fails(125, "run", "--rm", "--cgroups=bogus", IMAGE, "true")
    assert err == (
        'Error: running container create option: invalid cgroup mode "bogus": invalid argument\n'
    )
    err = pypod.fails(125, "run", "--rm", "--cgroups=split", "--cgroup-parent=/x", IMAGE, "true")
    assert (
        err == "Error: cannot specify --cgroup-mode=split with a cgroup-parent: invalid argument\n"
    )
    err = pypod.fails(125, "run", "--rm", "--cgroups=disabled", IMAGE, "true")
    assert err == "Error: '--cgroups=disabled' is not supported yet\n"


# --- --conmon-pidfile, --cidfile --------------------------------------------------------------
def test_conmon_pidfile_is_written_at_each_start(pypod: Pypod, tmp_path: Path) -> None:
    pid_file = tmp_path / "monitor.pid"
    cid = pypod.ok("create", "--conmon-pidfile", str(pid_file), IMAGE, "sleep", "1000").strip()
    assert not pid_file.exists()
    assert pypod.fmt(cid, "{{.ConmonPidFile}}") == str(pid_file)  # inspect names it, as podman
    pypod.ok("start", cid)
    assert pid_file.read_text() == pypod.fmt(cid, "{{.State.ConmonPid}}").strip()
    pypod.ok("stop", "-t", "0", cid)
    pypod.ok("start", cid)
    assert pid_file.read_text() == pypod.fmt(cid, "{{.State.ConmonPid}}").strip()
    pypod.ok("rm", "-f", "-t", "0", cid)


def test_stop_and_rm_by_cidfile(pypod: Pypod, tmp_path: Path) -> None:
    cidfile = tmp_path / "ctr-id"
    cid = pypod.run_d("--cidfile", str(cidfile), IMAGE, "sleep", "1000").strip()
    assert cidfile.read_text() == cid
    assert pypod.ok("stop", "-t", "0", "--cidfile", str(cidfile)) == f"{cid}\n"
    assert pypod.status(cid) == "exited"
    assert pypod.ok("rm", "--cidfile", str(cidfile)) == f"{cid}\n"
    assert pypod("container", "exists", cid).returncode == 1
    # the container is gone, the file is still there: --ignore says nothing
    assert pypod.ok("stop", "--ignore", "--cidfile", str(cidfile)) == ""
    assert pypod.ok("rm", "-f", "--ignore", "--cidfile", str(cidfile)) == ""
    err = pypod.fails(1, "rm", "--cidfile", str(cidfile))
    assert err == f'Error: no container with name or ID "{cid}" found: no such container\n'
    err = pypod.fails(125, "stop", "--cidfile", str(cidfile))
    assert err == f'Error: no container with name or ID "{cid}" found: no such container\n'


def test_cidfile_errors(pypod: Pypod, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    for verb in ("stop", "rm"):
        for extra in ((), ("--ignore",)):  # podman 4.3: --ignore does not cover the file
            err = pypod.fails(125, verb, *extra, "--cidfile", missing)
            assert err == f"Error: reading CIDFile: open {missing}: no such file or directory\n"
        err = pypod.fails(125, verb, "--cidfile", missing, "somename")
        assert err == "Error: no arguments are needed with --latest or --cidfile\n"


# --- pods ---------------------------------------------------------------------------------------
def test_pod_id_file_and_infra_conmon_pidfile(pypod: Pypod, tmp_path: Path) -> None:
    id_file, pid_file = tmp_path / "pod-id", tmp_path / "infra.pid"
    pod_id = pypod.ok("pod", "create", "--pod-id-file", str(id_file), "--infra-conmon-pidfile",
                      str(pid_file), "--name", "sdfpod").strip()  # fmt: skip
    assert id_file.read_text() == pod_id
    assert not pid_file.exists()  # written when the infra container starts
    assert pypod.ok("pod", "start", "--pod-id-file", str(id_file)) == f"{pod_id}\n"
    infra = json.loads(pypod.ok("pod", "inspect", pod_id))["InfraContainerID"]
    monitor = int(pid_file.read_text())
    assert monitor == int(pypod.fmt(infra, "{{.State.ConmonPid}}"))
    assert alive(monitor)
    assert pypod.ok("pod", "stop", "-t", "0", "--pod-id-file", str(id_file)) == f"{pod_id}\n"
    assert pypod.status(infra) == "exited"
    assert pypod.ok("pod", "rm", "--pod-id-file", str(id_file)) == f"{pod_id}\n"
    assert pypod("pod", "exists", pod_id).returncode == 1
    # gone: --ignore covers the pod (not a missing file)
    assert pypod.ok("pod", "stop", "--ignore", "--pod-id-file", str(id_file)) == ""
    assert pypod.ok("pod", "rm", "-f", "--ignore", "--pod-id-file", str(id_file)) == ""
    missing = str(tmp_path / "missing")
    for verb in ("start", "stop", "rm"):
        err = pypod.fails(125, "pod", verb, "--ignore" if verb != "start" else "-a",
                          "--pod-id-file", missing)  # fmt: skip
        assert err == f"Error: reading pod ID file: open {missing}: no such file or directory\n"
    err = pypod.fails(125, "pod", "start", "--pod-id-file", str(id_file), "sdfpod")
    assert err == "Error: no arguments are needed with --latest or --pod-id-file\n"


def test_pod_exit_policy_stop(pypod: Pypod) -> None:
    pypod.ok("pod", "create", "--exit-policy=stop", "--name", "sdfstop")
    pypod.ok("pod", "start", "sdfstop")
    infra = json.loads(pypod.ok("pod", "inspect", "sdfstop"))["InfraContainerID"]
    first = pypod.run_d("--pod", "sdfstop", IMAGE, "sleep", "1000").strip()
    second = pypod.run_d("--pod", "sdfstop", "--rm", IMAGE, "sleep", "1000").strip()
    pypod.ok("stop", "-t", "0", first)
    assert pypod.status(infra) == "running"  # another member still runs
    pypod.ok("stop", "-t", "0", second)  # the last one (removed by --rm): the pod stops
    pypod.wait_status(infra, "exited")
    pypod.ok("pod", "start", "sdfstop")  # (starts `first` too)
    assert pypod.status(infra) == "running"
    pypod.ok("rm", "-f", "-t", "0", first)  # the last one goes: the pod stops
    pypod.wait_status(infra, "exited")
    assert json.loads(pypod.ok("pod", "inspect", "sdfstop"))["ExitPolicy"] == "stop"
    pypod.ok("pod", "rm", "-f", "sdfstop")
    err = pypod.fails(125, "pod", "create", "--exit-policy=bogus")
    assert err == 'Error: running pod create option: invalid pod exit policy: "bogus"\n'
