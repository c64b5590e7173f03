"""`pypod-runtime update` on a running container: limits change where the container reads them.

The values are read inside the container, from its /sys/fs/cgroup (cgroup v1 file names: the
machines this runs on are hybrid v1; a v2-only host is skipped with the reason).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from pypod.linux.cgroups import CgroupMode, detect_mode
from tests.conftest import CLI, BundleFactory, messages

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(
        detect_mode() == CgroupMode.UNIFIED, reason="reads cgroup v1 files; this host is v2 only"
    ),
]

FILES = {
    "memory": "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    "pids": "/sys/fs/cgroup/pids/pids.max",
    "shares": "/sys/fs/cgroup/cpu/cpu.shares",
}


def limits(cli: CLI, cid: str) -> dict[str, str]:
    out = cli.ok("exec", cid, "cat", *FILES.values()).split()
    return dict(zip(FILES, out, strict=True))


@pytest.mark.parametrize("tool", ["pypod-runtime", "runc"])
def test_update_flags(tool: str, rt: CLI, runc: CLI, bundle: BundleFactory) -> None:
    cli = rt if tool == "pypod-runtime" else runc
    cli.ok("run", "-d", "-b", str(bundle(["sleep", "1000"])), "u1")
    before = limits(cli, "u1")
    assert before["pids"] == "max" and before["shares"] == "1024"
    cli.ok("update", "--memory", "64m", "--pids-limit", "50", "--cpu-share", "512", "u1")
    assert limits(cli, "u1") == {"memory": str(64 << 20), "pids": "50", "shares": "512"}
    # a later update changes only what it names
    cli.ok("update", "--pids-limit", "60", "u1")
    assert limits(cli, "u1") == {"memory": str(64 << 20), "pids": "60", "shares": "512"}


def test_update_from_resources_file_and_stdin(
    rt: CLI, bundle: BundleFactory, tmp_path: Path
) -> None:
    rt.ok("run", "-d", "-b", str(bundle(["sleep", "1000"])), "u1")
    res = {"memory": {"limit": 32 << 20}, "pids": {"limit": 20}, "cpu": {"shares": 256}}
    path = tmp_path / "resources.json"
    path.write_text(json.dumps(res))
    rt.ok("update", "-r", str(path), "u1")
    assert limits(rt, "u1") == {"memory": str(32 << 20), "pids": "20", "shares": "256"}
    rt.ok("update", "-r", "-", "u1", input=json.dumps({"pids": {"limit": 7}}))
    assert limits(rt, "u1")["pids"] == "7"
    # what update set is kept with the container
    saved = json.loads((rt.root / "u1" / "state.json").read_text())
    assert saved["config"]["linux"]["resources"]["pids"] == {"limit": 7}
    assert saved["config"]["linux"]["resources"]["memory"]["limit"] == 32 << 20


def test_update_errors_match_runc(rt: CLI, runc: CLI, bundle: BundleFactory) -> None:
    b = bundle(["true"])
    for cli in (rt, runc):
        proc = cli("update", "--memory", "64m", "nope")
        assert proc.returncode == 1 and messages(proc.stderr) == "container does not exist"
        cli.ok("run", "-d", "-b", str(b), "u1")
        deadline = time.monotonic() + 10
        while json.loads(cli.ok("state", "u1"))["status"] != "stopped":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc = cli("update", "--memory", "64m", "u1")
        assert proc.returncode == 1 and messages(proc.stderr) == "container not running"
        proc = cli("update", "--memory", "64q", "u1")
        assert proc.returncode == 1 and "64q" in messages(proc.stderr)
