"""OCI hooks: the six kinds, their order, the state they read on stdin, failures and timeouts.

Each hook is a small shell script that saves its stdin (the state JSON) to <phase>.json and
appends "<phase> <mount namespace>" to a shared `order` file.  startContainer's path is
resolved in the container (the script exists only in the rootfs); it writes to a directory
bound from the host.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from pypod.linux.cgroups import new_manager
from tests.conftest import CLI, BundleFactory, messages

pytestmark = pytest.mark.root

RECORD = """#!/bin/sh
cat > "$2/$1.json"
echo "$1 $(readlink /proc/self/ns/mnt)" >> "$2/order"
"""
FAIL = "#!/bin/sh\necho out; echo err >&2; exit 3\n"
#: stays past its timeout, with a child of its own that must be killed with it
HANG = '#!/bin/sh\nsleep 30 &\necho $! > "$1/sleep.pid"\nwait\n'
ANNOTATIONS = {"org.example.key": "value"}
HOST_PHASES = ("prestart", "createRuntime", "createContainer", "poststart", "poststop")


def script(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


def hook(path: str, *args: str, timeout: int | None = None) -> dict[str, Any]:
    h: dict[str, Any] = {"path": path, "args": [os.path.basename(path), *args]}
    h["env"] = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
    if timeout is not None:
        h["timeout"] = timeout
    return h


def recording_bundle(bundle: BundleFactory, log: Path, args: list[str]) -> Path:
    log.mkdir()
    host_script = script(log.parent / "record.sh", RECORD)

    def edit(spec: dict[str, Any]) -> None:
        spec["annotations"] = ANNOTATIONS
        spec["mounts"].append(
            {"destination": "/hooklog", "type": "bind", "source": str(log), "options": ["rbind"]}
        )
        spec["hooks"] = {phase: [hook(host_script, phase, str(log))] for phase in HOST_PHASES}
        spec["hooks"]["startContainer"] = [
            hook("/record-in-container.sh", "startContainer", "/hooklog")
        ]

    b = bundle(args, edit=edit)
    script(b / "rootfs" / "record-in-container.sh", RECORD)
    return b


def wait_status(cli: CLI, cid: str, status: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while json.loads(cli.ok("state", cid))["status"] != status:
        assert time.monotonic() < deadline, f"{cid} never became {status}"
        time.sleep(0.02)


def phases_run(log: Path) -> list[str]:
    return [line.split()[0] for line in (log / "order").read_text().splitlines()]


def lifecycle(
    cli: CLI, b: Path, log: Path
) -> tuple[int, list[str], list[tuple[str, str]], dict[str, Any]]:
    """create, start, wait, delete: (init pid, phases run by create, [(phase, mount ns)],
    {phase: state})."""
    cli.ok("create", "-b", str(b), "h1")
    pid = json.loads(cli.ok("state", "h1"))["pid"]
    by_create = phases_run(log)
    cli.ok("start", "h1")
    wait_status(cli, "h1", "stopped")
    cli.ok("delete", "h1")
    order = [
        (line.split()[0], line.split()[1]) for line in (log / "order").read_text().splitlines()
    ]
    states = {p: json.loads((log / f"{p}.json").read_text()) for p, _ in order}
    return pid, by_create, order, states


def test_six_hooks_order_state_and_namespaces(
    rt: CLI, runc: CLI, bundle: BundleFactory, tmp_path: Path
) -> None:
    assert not os.path.exists("/record-in-container.sh")  # resolved in the container only
    log = tmp_path / "log"
    b = recording_bundle(bundle, log, ["true"])
    pid, by_create, order, states = lifecycle(rt, b, log)
    assert by_create == ["prestart", "createRuntime", "createContainer"]

    phases = [p for p, _ in order]
    assert phases[:3] == ["prestart", "createRuntime", "createContainer"]
    # startContainer runs in the init right before exec, poststart in `start`: either first
    assert sorted(phases[3:5]) == ["poststart", "startContainer"]
    assert phases[5:] == ["poststop"]

    host_ns = os.readlink("/proc/self/ns/mnt")
    ns = dict(order)
    assert ns["prestart"] == ns["createRuntime"] == ns["poststart"] == ns["poststop"] == host_ns
    assert ns["createContainer"] == ns["startContainer"] != host_ns  # inside the container

    common = {"ociVersion": "1.0.2-dev", "id": "h1", "bundle": str(b), "annotations": ANNOTATIONS}
    assert states["prestart"] == {**common, "status": "creating", "pid": pid}
    assert states["createRuntime"] == {**common, "status": "creating", "pid": pid}
    assert states["createContainer"] == {**common, "status": "creating", "pid": 1}  # its own ns
    assert states["startContainer"] == {**common, "status": "created", "pid": 1}
    assert states["poststart"] == {**common, "status": "running", "pid": pid}
    assert states["poststop"] == {**common, "status": "stopped"}  # no pid: omitted as by runc
    assert list(states["prestart"]) == [
        "ociVersion",
        "id",
        "status",
        "pid",
        "bundle",
        "annotations",
    ]

    # runc passes the same states but for poststart: runc 1.1.5 runs the poststart hooks at the
    # end of `create` (status "created"), where the runtime-spec has them after `start`
    log_runc = tmp_path / "log-runc"
    b = recording_bundle(bundle, log_runc, ["true"])
    runc_pid, runc_by_create, runc_order, runc_states = lifecycle(runc, b, log_runc)
    assert runc_by_create == ["prestart", "createRuntime", "createContainer", "poststart"]
    common["bundle"] = str(b)
    for phase, state in runc_states.items():
        ours = dict(states[phase], bundle=str(b))
        if ours.get("pid") == pid:
            ours["pid"] = runc_pid
        if phase == "poststart":
            ours["status"] = "created"
        assert state == ours, phase
    assert sorted(p for p, _ in runc_order) == sorted(phases)


@pytest.mark.parametrize("phase", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_hook_aborts_create(
    rt: CLI, bundle: BundleFactory, tmp_path: Path, phase: str
) -> None:
    fail = script(tmp_path / "fail.sh", FAIL)
    b = bundle(["true"], edit=lambda s: s.update(hooks={phase: [hook(fail)]}))
    proc = rt("create", "-b", str(b), "h1")
    assert proc.returncode == 1
    msg = messages(proc.stderr)
    assert f"error running {phase} hook #0: exit status 3, stdout: out\n, stderr: err\n" in msg
    assert msg.startswith("pypod-runtime create failed: ")
    assert rt.ok("list", "-q") == ""
    assert not (rt.root / "h1").exists()
    cgroups_path = json.loads((b / "config.json").read_text())["linux"]["cgroupsPath"]
    leftovers = [p for p in new_manager(cgroups_path, "h1").paths.values() if os.path.isdir(p)]
    assert leftovers == [], "the failed container's cgroups were not removed"


def test_failing_poststart_and_poststop_are_only_logged(
    rt: CLI, bundle: BundleFactory, tmp_path: Path
) -> None:
    fail = script(tmp_path / "fail.sh", FAIL)
    hooks = {"poststart": [hook(fail)], "poststop": [hook(fail)]}
    b = bundle(["echo", "the program ran"], edit=lambda s: s.update(hooks=hooks))
    # runc 1.1.5 fails `run` and kills the container on a poststart error; the runtime-spec
    # says to warn and go on, which pypod-runtime does
    proc = rt("run", "-b", str(b), "h1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "the program ran\n"
    warnings = [line for line in proc.stderr.splitlines() if "level=warning" in line]
    assert len(warnings) == 2
    assert "error running poststart hook #0: exit status 3" in messages(warnings[0])
    assert "error running poststop hook #0: exit status 3" in messages(warnings[1])
    assert rt.ok("list", "-q") == ""


def test_hook_timeout_kills_the_hook(rt: CLI, bundle: BundleFactory, tmp_path: Path) -> None:
    hang = script(tmp_path / "hang.sh", HANG)
    b = bundle(
        ["true"],
        edit=lambda s: s.update(hooks={"createRuntime": [hook(hang, str(tmp_path), timeout=1)]}),
    )
    started = time.monotonic()
    proc = rt("create", "-b", str(b), "h1")
    elapsed = time.monotonic() - started
    assert proc.returncode == 1
    assert "error running createRuntime hook #0: hook ran past specified timeout of 1.0s" in (
        messages(proc.stderr)
    )
    assert 1 <= elapsed < 5  # runc 1.1.5 waits for the hook's child here too (30 s)
    assert rt.ok("list", "-q") == ""
    # the hook's own child was killed with it (left as a zombie at most: PID 1 may not reap)
    child = int((tmp_path / "sleep.pid").read_text())
    stat = Path(f"/proc/{child}/stat")
    deadline = time.monotonic() + 5
    while stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline, "the hook's child survived its timeout"
        time.sleep(0.02)
