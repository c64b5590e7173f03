"""config.json features as the container's process sees them (one small bundle each)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLI, BundleFactory, messages

pytestmark = pytest.mark.root


def run_sh(rt: CLI, bundle: BundleFactory, script: str, edit: Any = None) -> str:
    b = bundle(["sh", "-c", script], edit=edit)
    proc = rt("run", "-b", str(b), "c1")
    assert proc.returncode == 0, messages(proc.stderr) + proc.stdout
    return proc.stdout


def test_time_namespace_offsets(rt: CLI, bundle: BundleFactory) -> None:
    def edit(spec: dict[str, Any]) -> None:
        spec["linux"]["namespaces"].append({"type": "time"})
        spec["linux"]["timeOffsets"] = {"boottime": {"secs": 864000, "nanosecs": 0}}

    uptime = float(run_sh(rt, bundle, "cat /proc/uptime", edit).split()[0])
    assert uptime >= 864000  # ten days added to the boot clock inside only
    assert float(Path("/proc/uptime").read_text().split()[0]) < uptime


def test_sysctl_domainname_and_hostname(rt: CLI, bundle: BundleFactory) -> None:
    def edit(spec: dict[str, Any]) -> None:
        spec["hostname"] = "box"
        spec["domainname"] = "example.test"
        spec["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"}

    out = run_sh(
        rt,
        bundle,
        "hostname; cat /proc/sys/kernel/domainname /proc/sys/net/ipv4/ip_forward "
        "/proc/sys/kernel/shmmni",
        edit,
    )
    assert out.split() == ["box", "example.test", "1", "1234"]


def test_sysctl_outside_a_namespace_is_refused(rt: CLI, bundle: BundleFactory) -> None:
    b = bundle(["true"], edit=lambda s: s["linux"].__setitem__("sysctl", {"vm.swappiness": "1"}))
    proc = rt("run", "-b", str(b), "c1")
    assert proc.returncode == 1
    assert "sysctl 'vm.swappiness' is not in a separate kernel namespace" in messages(proc.stderr)
    assert rt.ok("list", "-q") == ""


def test_oom_score_adj_umask_and_personality(rt: CLI, bundle: BundleFactory) -> None:
    def edit(spec: dict[str, Any]) -> None:
        spec["process"]["oomScoreAdj"] = 333
        spec["process"]["user"]["umask"] = 0o077
        spec["linux"]["personality"] = {"domain": "LINUX32"}

    out = run_sh(rt, bundle, "cat /proc/self/oom_score_adj; umask; uname -m", edit)
    assert out.split() == ["333", "0077", "i686"]


def test_tmpcopyup_keeps_the_directory_content(rt: CLI, bundle: BundleFactory) -> None:
    def edit(spec: dict[str, Any]) -> None:
        spec["mounts"].append(
            {"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "tmpcopyup"]}
        )  # fmt: skip

    out = run_sh(rt, bundle, "grep -c root /etc/passwd; mount | grep ' /etc '", edit)
    count, mount_line = out.splitlines()
    assert count == "1" and "tmpfs on /etc type tmpfs" in mount_line


def test_bind_mount_read_only_and_read_write(
    rt: CLI, bundle: BundleFactory, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in").write_text("from the host\n")

    def edit(spec: dict[str, Any]) -> None:
        spec["mounts"] += [
            {"destination": "/ro", "type": "bind", "source": str(shared),
             "options": ["rbind", "ro"]},
            {"destination": "/rw", "type": "bind", "source": str(shared),
             "options": ["rbind", "rw"]},
        ]  # fmt: skip

    out = run_sh(
        rt,
        bundle,
        "cat /ro/in; touch /ro/x 2>&1 || true; echo made > /rw/out",
        edit,
    )
    assert "from the host" in out and "Read-only file system" in out
    assert (shared / "out").read_text() == "made\n"
    assert not (shared / "x").exists()
