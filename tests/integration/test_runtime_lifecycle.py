"""pypod-runtime's container lifecycle as runc users type it (../shared/seeds runc walkthrough)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLI, BundleFactory, messages

pytestmark = pytest.mark.root


def wait_status(rt: CLI, cid: str, status: str, timeout: float = 10) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        st = json.loads(rt.ok("state", cid))
        if st["status"] == status or time.monotonic() > deadline:
            return st
        time.sleep(0.02)


def test_run_foreground_output_and_exit_code(rt: CLI, bundle: BundleFactory) -> None:
    b = bundle(["sh", "-c", "echo hello from $(hostname); id; exit 3"])
    proc = rt("run", "--bundle", str(b), "c1")
    assert proc.returncode == 3, proc.stderr
    assert "hello from runc" in proc.stdout
    assert "uid=0(root) gid=0(root)" in proc.stdout
    assert rt.ok("list", "-q") == ""  # run removes the container when it exits


def test_run_killed_by_signal_exit_code_is_128_plus_signal(rt: CLI, bundle: BundleFactory) -> None:
    b = bundle(["sleep", "1000"])
    proc = subprocess.Popen([rt.exe, "--root", str(rt.root), "run", "-b", str(b), "c1"])
    try:
        deadline = time.monotonic() + 10
        while (
            rt("state", "c1").returncode != 0
            or wait_status(rt, "c1", "running", 0)["status"] != "running"
        ):
            assert time.monotonic() < deadline, "container did not start"
            time.sleep(0.02)
        os.kill(json.loads(rt.ok("state", "c1"))["pid"], signal.SIGKILL)
        assert proc.wait(timeout=10) == 137
    finally:
        proc.kill()


def test_walkthrough_create_start_pause_resume_state_delete(rt: CLI, bundle: BundleFactory) -> None:
    b = bundle(["sleep", "1000"])
    rt.ok("create", "--bundle", str(b), "web")
    listing = rt.ok("list")
    header, row = listing.splitlines()
    assert header.split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert row.split()[0] == "web" and row.split()[2] == "created"
    assert row.split()[3] == str(b) and row.split()[5] == "root"

    st = json.loads(rt.ok("state", "web"))
    assert st["status"] == "created" and st["pid"] > 0
    assert st["bundle"] == str(b) and st["rootfs"] == str(b / "rootfs")
    assert list(st) == ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"]
    with open(f"/proc/{st['pid']}/cmdline", "rb") as f:
        assert b"sleep" not in f.read()  # the init waits for start, the program is not running

    rt.ok("start", "web")
    assert wait_status(rt, "web", "running")["status"] == "running"
    with open(f"/proc/{st['pid']}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[0] == b"sleep"

    rt.ok("pause", "web")
    assert json.loads(rt.ok("state", "web"))["status"] == "paused"
    rt.ok("resume", "web")
    assert json.loads(rt.ok("state", "web"))["status"] == "running"

    rt.ok("kill", "web", "KILL")
    st = wait_status(rt, "web", "stopped")
    assert st["status"] == "stopped" and st["pid"] == 0
    rt.ok("delete", "web")
    assert rt("state", "web").returncode == 1
    assert not os.path.exists(rt.root / "web")


def test_list_json_and_quiet(rt: CLI, bundle: BundleFactory) -> None:
    b = bundle(["sleep", "1000"])
    rt.ok("run", "-d", "-b", str(b), "a1")
    items = json.loads(rt.ok("list", "--format", "json"))
    assert [i["id"] for i in items] == ["a1"]
    assert items[0]["status"] == "running"
    assert rt.ok("list", "-q") == "a1\n"


def test_duplicate_id_is_refused(rt: CLI, bundle: BundleFactory) -> None:
    b = bundle(["sleep", "1000"])
    rt.ok("create", "-b", str(b), "dup")
    proc = rt("create", "-b", str(b), "dup")
    assert proc.returncode == 1
    assert "container with given ID already exists: dup" in messages(proc.stderr)  # runc 1.1
    assert json.loads(rt.ok("state", "dup"))["status"] == "created"  # the first is untouched


@pytest.mark.parametrize("verb", ["state", "start", "kill", "pause", "resume", "delete", "ps"])
def test_unknown_id(rt: CLI, verb: str) -> None:
    proc = rt(verb, "nope")
    assert proc.returncode == 1
    assert "container does not exist" in messages(proc.stderr)


def test_start_twice_and_delete_running(rt: CLI, bundle: BundleFactory) -> None:
    b = bundle(["sleep", "1000"])
    rt.ok("run", "-d", "-b", str(b), "c1")
    proc = rt("start", "c1")
    assert proc.returncode == 1 and "cannot start an already running container" in messages(
        proc.stderr
    )
    proc = rt("delete", "c1")
    assert proc.returncode == 1
    assert "cannot delete container c1 that is not stopped: running" in messages(proc.stderr)
    rt.ok("delete", "--force", "c1")
    assert rt.ok("list", "-q") == ""


def test_delete_created_container_without_force(rt: CLI, bundle: BundleFactory) -> None:
    b = bundle(["sleep", "1000"])
    rt.ok("create", "-b", str(b), "c1")
    pid = json.loads(rt.ok("state", "c1"))["pid"]
    rt.ok("delete", "c1")  # runc deletes a created container, killing its init
    stat = Path(f"/proc/{pid}/stat")
    assert not stat.exists() or stat.read_text().split()[2] == "Z"


def test_exec_output_exit_code_env_user(rt: CLI, bundle: BundleFactory) -> None:
    b = bundle(["sleep", "1000"])
    rt.ok("run", "-d", "-b", str(b), "c1")
    assert rt.ok("exec", "c1", "echo", "hi") == "hi\n"
    assert rt("exec", "c1", "sh", "-c", "exit 7").returncode == 7
    assert "FOO=bar" in rt.ok("exec", "-e", "FOO=bar", "c1", "env")
    assert rt.ok("exec", "--user", "1000:1000", "c1", "id").startswith("uid=1000(user) gid=1000")
    assert rt.ok("exec", "--cwd", "/tmp", "c1", "pwd") == "/tmp\n"
    # the exec'd process is in the container's pid namespace
    assert rt.ok("exec", "c1", "cat", "/proc/1/cmdline").startswith("sleep")


def test_exec_detached_with_pid_file(rt: CLI, bundle: BundleFactory, tmp_path) -> None:
    b = bundle(["sleep", "1000"])
    rt.ok("run", "-d", "-b", str(b), "c1")
    pid_file = tmp_path / "exec.pid"
    rt.ok("exec", "-d", "--pid-file", str(pid_file), "c1", "sleep", "999")
    pid = int(pid_file.read_text())
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[:2] == [b"sleep", b"999"]


def test_exec_not_found_and_not_executable(rt: CLI, bundle: BundleFactory) -> None:
    b = bundle(["sleep", "1000"])
    rt.ok("run", "-d", "-b", str(b), "c1")
    proc = rt("exec", "c1", "nosuchcmd")
    assert proc.returncode == 255  # runc's exit code for a failed exec
    assert messages(proc.stderr) == (
        'exec failed: unable to start container process: exec: "nosuchcmd": '
        "executable file not found in $PATH"
    )
    proc = rt("exec", "c1", "/etc/passwd")
    assert proc.returncode == 255 and "permission denied" in messages(proc.stderr)


def test_run_not_found_leaves_no_state(rt: CLI, bundle: BundleFactory) -> None:
    b = bundle(["nosuchcmd"])
    proc = rt("run", "-b", str(b), "c1")
    assert proc.returncode == 1
    assert 'exec: "nosuchcmd": executable file not found in $PATH' in messages(proc.stderr)
    assert rt.ok("list", "-q") == ""
    assert not os.path.exists(rt.root / "c1")


def test_kill_all_and_ps(rt: CLI, bundle: BundleFactory) -> None:
    b = bundle(["sh", "-c", "sleep 1000 & sleep 1001; true"])
    rt.ok("run", "-d", "-b", str(b), "c1")
    deadline = time.monotonic() + 5
    while (
        len(json.loads(rt.ok("ps", "--format", "json", "c1"))) < 3 and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    pids = json.loads(rt.ok("ps", "--format", "json", "c1"))
    assert len(pids) == 3
    table = rt.ok("ps", "c1")
    assert table.splitlines()[0].split()[:2] == ["UID", "PID"]
    assert "sleep 1000" in table and "sleep 1001" in table
    custom = rt.ok("ps", "c1", "--", "-o", "pid,comm")
    assert custom.split()[:2] == ["PID", "COMMAND"] and len(custom.splitlines()) == 4
    assert rt.ok("ps", "c1", "-o", "pid,comm") == custom
    rt.ok("kill", "--all", "c1", "SIGKILL")
    assert wait_status(rt, "c1", "stopped")["status"] == "stopped"


def test_pid_file_and_detached_run(rt: CLI, bundle: BundleFactory, tmp_path) -> None:
    b = bundle(["sleep", "1000"])
    pid_file = tmp_path / "c.pid"
    rt.ok("run", "-d", "--pid-file", str(pid_file), "-b", str(b), "c1")
    assert int(pid_file.read_text()) == json.loads(rt.ok("state", "c1"))["pid"]


def test_spec_writes_runc_default_and_refuses_overwrite(rt: CLI, tmp_path) -> None:
    rt.ok("spec", "--bundle", str(tmp_path))
    spec = json.loads((tmp_path / "config.json").read_text())
    assert spec["process"]["args"] == ["sh"] and spec["root"]["path"] == "rootfs"
    proc = rt("spec", "--bundle", str(tmp_path))
    assert proc.returncode == 1 and "File config.json exists. Remove it first" in messages(
        proc.stderr
    )


def test_features_json(rt: CLI) -> None:
    feats = json.loads(rt.ok("features"))
    assert "user" in feats["linux"]["namespaces"]
    assert feats["linux"]["seccomp"]["enabled"] is True
    assert feats["linux"]["cgroup"]["systemd"] is False


def test_systemd_cgroup_is_a_clear_error(rt: CLI) -> None:
    proc = rt("--systemd-cgroup", "list")
    assert proc.returncode == 1 and "systemd" in messages(proc.stderr)


def test_log_file_json(rt: CLI, tmp_path) -> None:
    log = tmp_path / "log.json"
    proc = rt("--log", str(log), "--log-format", "json", "state", "nope")
    assert proc.returncode == 1
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and entry["msg"] == "container does not exist"


@pytest.mark.parametrize("flag", [[], ["--no-new-keyring"]])
def test_session_keyring(rt: CLI, bundle: BundleFactory, flag: list[str]) -> None:
    """Like runc, each container gets a session keyring "_ses.<id>" unless --no-new-keyring."""
    b = bundle(["sleep", "1000"])
    cid = "keyring" + ("-none" if flag else "")
    rt.ok("create", *flag, "-b", str(b), cid)
    keys = Path("/proc/keys").read_text()
    assert (f"_ses.{cid}:" in keys) is not bool(flag)


def test_exec_process_file(rt: CLI, bundle: BundleFactory, tmp_path: Path) -> None:
    """exec --process FILE: a whole runtime-spec process object, as conmon and podman use it."""
    b = bundle(["sleep", "1000"])
    rt.ok("run", "-d", "-b", str(b), "c1")
    process = {
        "args": ["sh", "-c", "id -u; pwd; echo $GREETING"],
        "env": ["PATH=/bin", "GREETING=hello"],
        "cwd": "/tmp",
        "user": {"uid": 1000, "gid": 1000},
    }
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    assert rt.ok("exec", "--process", str(path), "c1").split() == ["1000", "/tmp", "hello"]
    path.write_text(json.dumps({**process, "cwd": "relative"}))
    proc = rt("exec", "--process", str(path), "c1")
    assert proc.returncode == 255 and "cwd" in messages(proc.stderr)


def test_created_init_waits_without_spinning_after_an_empty_start(
    rt: CLI, bundle: BundleFactory
) -> None:
    """A `start` that opens the exec fifo and dies before writing must not make the waiting
    init spin (poll() would report a hang-up forever); a real start still works after it."""
    b = bundle(["sleep", "1000"])
    rt.ok("create", "-b", str(b), "c1")
    pid = json.loads(rt.ok("state", "c1"))["pid"]
    fd = os.open(rt.root / "c1" / "exec.fifo", os.O_WRONLY | os.O_NONBLOCK)
    os.close(fd)
    time.sleep(0.3)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu_ticks = int(fields[11]) + int(fields[12])  # utime + stime
    assert fields[0] == "S" and cpu_ticks < 10, f"init busy: state {fields[0]}, {cpu_ticks} ticks"
    rt.ok("start", "c1")
    assert wait_status(rt, "c1", "running")["status"] == "running"


def test_exec_cap_adds_to_bounding_effective_permitted_only(rt: CLI, bundle: BundleFactory) -> None:
    """runc >= 1.1.2 (CVE-2022-29162): --cap never reaches the inheritable or ambient sets."""
    b = bundle(["sleep", "1000"])
    rt.ok("run", "-d", "-b", str(b), "c1")
    status = dict(
        line.split(":\t")
        for line in rt.ok("exec", "--cap", "CAP_SYS_ADMIN", "c1", "cat", "/proc/self/status")
        .strip()
        .splitlines()
        if line.startswith("Cap")
    )
    sys_admin = 1 << 21
    assert int(status["CapEff"], 16) & sys_admin and int(status["CapBnd"], 16) & sys_admin
    assert int(status["CapInh"], 16) == 0 and int(status["CapAmb"], 16) == 0


def test_files_named_by_the_user_give_clear_errors(
    rt: CLI, bundle: BundleFactory, tmp_path: Path
) -> None:
    b = bundle(["sleep", "1000"])
    proc = rt("create", "--pid-file", str(tmp_path / "no" / "such" / "pid"), "-b", str(b), "c1")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "No such file or directory" in messages(proc.stderr)
    assert rt.ok("list", "-q") == ""
    proc = rt("spec", "-b", str(tmp_path / "missing"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert str(tmp_path / "missing") in messages(proc.stderr)
    assert rt("delete", "a", "b").returncode == 1


def test_a_create_killed_half_way_is_cleaned_up_by_the_next_command(
    rt: CLI, bundle: BundleFactory, tmp_path: Path
) -> None:
    """SIGKILL during create (here: while a createRuntime hook runs) leaves a state directory
    without state.json and the container's cgroups; the next create of the id, or a delete,
    removes them instead of failing with "already exists" forever."""
    started = tmp_path / "hook-started"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\ntouch {started}\nsleep 30\n")
    hook.chmod(0o755)

    def slow_hook(spec: dict[str, Any]) -> None:
        spec["hooks"] = {"createRuntime": [{"path": str(hook)}]}

    b = bundle(["sleep", "1000"], edit=slow_hook)
    proc = subprocess.Popen([rt.exe, "--root", str(rt.root), "create", "-b", str(b), "c1"])
    deadline = time.monotonic() + 10
    while not started.exists():
        assert time.monotonic() < deadline, "hook did not start"
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    subprocess.run(["pkill", "-f", str(hook)], check=False)  # the orphaned hook's sleep
    config = json.loads((b / "config.json").read_text())
    cgroup = Path("/sys/fs/cgroup/memory") / config["linux"]["cgroupsPath"].lstrip("/")
    assert (rt.root / "c1").is_dir() and not (rt.root / "c1" / "state.json").exists()
    assert cgroup.is_dir()

    b2 = bundle(["sleep", "1000"])
    rt.ok("create", "-b", str(b2), "c1")  # the id is free again
    assert not cgroup.exists()  # and the half-made container's cgroup is gone
    assert json.loads(rt.ok("state", "c1"))["status"] == "created"
