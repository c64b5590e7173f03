"""Root in a rootless container is not root on the host: each test tries, and must fail.

The container's root is the test user; everything else of the host (files owned by root or
others, processes, devices, the host's namespaces) stays out of reach even with `--privileged`
and the host's pid or uts namespace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rootless_support import (
    IMAGE,
    TMP,
    UserPypod,
    rootless_pypod,  # noqa: F401 - fixtures
    rootless_user,  # noqa: F401
)

pytestmark = [pytest.mark.root, pytest.mark.rootless]


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A directory of root's (0755) with a secret (root, 0600) and a public file (0644)."""
    path = Path(tempfile.mkdtemp(prefix="pypod-host-", dir=TMP))
    os.chmod(path, 0o755)
    (path / "secret").write_text("top secret\n")
    os.chmod(path / "secret", 0o600)
    (path / "public").write_text("public\n")
    os.chmod(path / "public", 0o644)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def host_sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process of the host's root."""
    proc = subprocess.Popen(["sleep", "1000"])
    yield proc
    proc.kill()
    proc.wait()


def _run(p: UserPypod, *args: str) -> subprocess.CompletedProcess[str]:
    proc = p("run", "--rm", "--network", "none", *args)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_cannot_read_or_change_host_files(rootless_pypod: UserPypod, host_dir: Path) -> None:  # noqa: F811
    for flags in ((), ("--privileged",)):
        proc = _run(
            rootless_pypod, *flags, "-v", f"{host_dir}:/host", IMAGE, "sh", "-c",
            "cat /host/public; cat /host/secret; echo read=$?; chown 0 /host/public; "
            "echo chown=$?; chmod 666 /host/secret; echo chmod=$?; echo x >> /host/public; "
            "echo write=$?; touch /host/new; echo create=$?; rm /host/public; echo rm=$?",
        )  # fmt: skip
        assert proc.stdout.splitlines() == [
            "public", "read=1", "chown=1", "chmod=1", "write=1", "create=1", "rm=1",
        ], (flags, proc.stdout, proc.stderr)  # fmt: skip
        assert "Permission denied" in proc.stderr
    assert (host_dir / "secret").read_text() == "top secret\n"
    assert (host_dir / "public").read_text() == "public\n"
    assert (host_dir / "secret").stat().st_mode & 0o777 == 0o600
    assert sorted(os.listdir(host_dir)) == ["public", "secret"]


def test_cannot_see_host_processes(
    rootless_pypod: UserPypod,  # noqa: F811
    host_sleeper: subprocess.Popen[bytes],
) -> None:
    proc = _run(
        rootless_pypod, IMAGE, "sh", "-c",
        f"ls -d /proc/[0-9]*; test -e /proc/{host_sleeper.pid}/stat; echo seen=$?",
    )  # fmt: skip
    lines = proc.stdout.splitlines()
    assert lines[-1] == "seen=1"
    pids = [int(line.removeprefix("/proc/")) for line in lines[:-1]]
    assert pids and max(pids) < 10, pids  # the container's own few processes only


def test_cannot_kill_host_processes(
    rootless_pypod: UserPypod,  # noqa: F811
    host_sleeper: subprocess.Popen[bytes],
) -> None:
    pid = host_sleeper.pid
    # even sharing the host's pid namespace, where the process can be named
    for flags in (("--pid", "host"), ("--pid", "host", "--privileged")):
        proc = _run(
            rootless_pypod, *flags, IMAGE, "sh", "-c",
            f"test -e /proc/{pid}/stat; echo seen=$?; kill -9 {pid}; echo kill=$?",
        )  # fmt: skip
        assert proc.stdout.splitlines() == ["seen=0", "kill=1"], (flags, proc.stderr)
        assert "Operation not permitted" in proc.stderr
    assert host_sleeper.poll() is None


def test_no_host_capabilities(rootless_pypod: UserPypod) -> None:  # noqa: F811
    proc = _run(
        rootless_pypod, "--privileged", "--uts", "host", IMAGE, "sh", "-c",
        "grep CapEff /proc/self/status; mknod /tmp/disk b 8 0; echo mknod=$?; "
        "hostname pwned; echo hostname=$?; "
        "echo 1 > /proc/sys/vm/drop_caches; echo sysctl=$?; "
        "cat /dev/kmsg > /dev/null; echo kmsg=$?",
    )  # fmt: skip
    lines = proc.stdout.splitlines()
    assert lines[0].split()[1] != "0000000000000000"  # every capability, of its namespace only
    assert lines[1:] == ["mknod=1", "hostname=1", "sysctl=1", "kmsg=1"], proc.stderr
    assert os.uname().nodename != "pwned"
