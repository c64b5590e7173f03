"""What `create` overlaps with the init's set-up keeps every property a container must have.

- the parent brings the new network namespace's `lo` up while the init mounts its rootfs
  (entering that namespace and coming back: the runtime itself stays in its own);
- the init runs without the cyclic garbage collector (it ends in exec), the runtime with it;
- rlimits are set as unsigned 64-bit values: 2**64 - 1 is "unlimited", as runc takes it.

(The v1 `tasks` files the init writes itself into, sent with CGROUP_JOINED, are covered by
test_runtime_create_path.py's cgroup tests.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLI, BundleFactory, messages

pytestmark = pytest.mark.root

UNLIMITED = 2**64 - 1

#: runs a container in this process (the CLI's path: Runtime.run) and reports, as JSON on
#: stderr, the runtime's network namespace and garbage collector state before and after
_IN_PROCESS = """
import gc, json, os, sys
from pypod.runtime.container import CreateOptions, Runtime
before = (os.readlink("/proc/thread-self/ns/net"), gc.isenabled())
code = Runtime(sys.argv[1]).run("c1", CreateOptions(bundle=sys.argv[2]), detach=False)
after = (os.readlink("/proc/thread-self/ns/net"), gc.isenabled())
sys.stdout.flush()
print(json.dumps({"before": before, "after": after}), file=sys.stderr)
sys.exit(code)
"""


def _run_in_process(b: Path, state: Path) -> tuple[str, dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-c", _IN_PROCESS, str(state), str(b)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stderr.strip().splitlines()[-1])
    return proc.stdout, report


def test_lo_is_up_and_the_runtime_stays_in_its_network_namespace(
    bundle: BundleFactory, tmp_path: Path
) -> None:
    b = bundle(["cat", "/sys/class/net/lo/flags"])
    out, report = _run_in_process(b, tmp_path / "state")
    assert int(out.strip(), 16) & 0x1, out  # IFF_UP
    assert report["after"][0] == report["before"][0]


def test_the_runtime_keeps_its_garbage_collector(bundle: BundleFactory, tmp_path: Path) -> None:
    b = bundle(["true"])
    _, report = _run_in_process(b, tmp_path / "state")
    assert report["before"][1] is True
    assert report["after"][1] is True


def test_the_init_runs_without_the_garbage_collector(bundle: BundleFactory, tmp_path: Path) -> None:
    """The init (a fork of the runtime) reports the collector's state as it starts."""
    b = bundle(["true"])
    script = (
        "import gc, sys\n"
        "from pypod.runtime.process import init\n"
        "real = init.direct_init\n"
        "def probe(*a, **k):\n"
        "    sys.stderr.write(f'init-gc={gc.isenabled()}\\n')\n"
        "    sys.stderr.flush()\n"
        "    return real(*a, **k)\n"
        "init.direct_init = probe\n"
        "from pypod.runtime.container import CreateOptions, Runtime\n"
        "code = Runtime(sys.argv[1]).run('c1', CreateOptions(bundle=sys.argv[2]), detach=False)\n"
        "sys.stderr.write(f'runtime-gc={gc.isenabled()}\\n')\n"
        "sys.exit(code)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "state"), str(b)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "init-gc=False" in proc.stderr, proc.stderr
    assert "runtime-gc=True" in proc.stderr, proc.stderr


def _unlimited_core(spec: dict[str, Any]) -> None:
    spec["process"]["rlimits"].append({"type": "RLIMIT_CORE", "hard": UNLIMITED, "soft": UNLIMITED})


def test_an_unlimited_rlimit_is_set(rt: CLI, bundle: BundleFactory) -> None:
    b = bundle(["sh", "-c", "ulimit -c; ulimit -H -c"], edit=_unlimited_core)
    proc = rt("run", "-b", str(b), "c1")
    assert proc.returncode == 0, messages(proc.stderr)
    assert proc.stdout.split() == ["unlimited", "unlimited"]


def test_an_unlimited_rlimit_as_runc_sets_it(rt: CLI, runc: CLI, bundle: BundleFactory) -> None:
    b = bundle(["sh", "-c", "ulimit -c; ulimit -H -c"], edit=_unlimited_core)
    ours = rt("run", "-b", str(b), "c1")
    theirs = runc("run", "-b", str(b), "c2")
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), ours.stderr
