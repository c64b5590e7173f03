"""`create`'s `meanwhile`: the caller's own work, done while the init sets itself up.

The monitor has its files (the ctl fifo, monitor.pid) made then, so that it is ready for
CREATE sooner.  It runs once the container's state is saved and its init exists, before
`create` returns; what it raises fails the create, which then leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BundleFactory

pytestmark = pytest.mark.root

#: runs Runtime.create in a process of its own (the init is its child), prints what it saw
_SCRIPT = """
import json, os, sys
from pypod.errors import InvalidArgument
from pypod.runtime.container import CreateOptions, Runtime

root, bundle, fail = sys.argv[1], sys.argv[2], sys.argv[3] == "fail"
seen = []

def meanwhile():
    with open(os.path.join(root, "c1", "state.json")) as f:
        pid = json.load(f)["init_pid"]
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    seen.append({"pid": pid, "state": stat[stat.rindex(")") + 2]})
    if fail:
        raise InvalidArgument("meanwhile: failed on purpose")

rt = Runtime(root)
try:
    pid = rt.create("c1", CreateOptions(bundle=bundle, meanwhile=meanwhile))
except InvalidArgument as e:
    print(json.dumps({"seen": seen, "error": str(e)}))
    sys.exit(0)
print(json.dumps({"seen": seen, "pid": pid}))
rt.delete("c1", force=True)
"""


def _create(state: Path, bundle: Path, mode: str) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(state), str(bundle), mode],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, object] = json.loads(proc.stdout)
    return out


def _cgroups_path(b: Path) -> str:
    return str(json.loads((b / "config.json").read_text())["linux"]["cgroupsPath"])


def test_meanwhile_runs_once_while_the_init_exists(bundle: BundleFactory, tmp_path: Path) -> None:
    b = bundle(["sleep", "1000"])
    out = _create(tmp_path / "state", b, "ok")
    seen = out["seen"]
    assert isinstance(seen, list) and len(seen) == 1
    # the saved state names the init, which is alive (not yet started: it waits on the fifo)
    assert seen[0]["pid"] == out["pid"]
    assert seen[0]["state"] in ("R", "S", "D")


def test_a_failing_meanwhile_leaves_nothing_behind(bundle: BundleFactory, tmp_path: Path) -> None:
    b = bundle(["sleep", "1000"])
    out = _create(tmp_path / "state", b, "fail")
    assert out["error"] == "meanwhile: failed on purpose"
    seen = out["seen"]
    assert isinstance(seen, list) and len(seen) == 1
    assert not os.path.exists(f"/proc/{seen[0]['pid']}")  # killed and reaped
    assert not (tmp_path / "state" / "c1").exists()
    assert not (Path("/sys/fs/cgroup/pids") / _cgroups_path(b).lstrip("/")).exists()


def test_a_binary_runtime_runs_meanwhile_before_anything_exists(
    bundle: BundleFactory, tmp_path: Path
) -> None:
    import shutil

    from pypod.errors import InvalidArgument
    from pypod.runtime.oci_runtime import open_runtime

    if shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    b = bundle(["sleep", "1000"])
    rt = open_runtime("runc", str(tmp_path / "runc"))
    made: list[bool] = []

    def meanwhile() -> None:
        made.append((tmp_path / "runc" / "c1").exists())
        raise InvalidArgument("meanwhile: failed on purpose")

    with pytest.raises(InvalidArgument, match="on purpose"):
        rt.create("c1", str(b), tty=False, meanwhile=meanwhile)
    assert made == [False]
    assert not (tmp_path / "runc" / "c1").exists()
