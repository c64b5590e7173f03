"""The cgroup v1 manager on this host's real hierarchies (LEGACY or HYBRID mode).

Each test gets its own `/pypod-test-<random>` cgroup; the fixture kills the test's processes
and removes every directory even when the test fails (and restores the cgroup2 root's
subtree_control if a hybrid hugetlb test enabled a controller there).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from pypod.errors import InUse, InvalidArgument, NotSupported
from pypod.linux.cgroups import (
    CgroupMode,
    SelfJoin,
    detect_mode,
    manager_from_state,
    new_manager,
)
from pypod.linux.cgroups import paths as cgpaths
from pypod.oci.runtime_spec import (
    LinuxCPU,
    LinuxDeviceCgroup,
    LinuxHugepageLimit,
    LinuxMemory,
    LinuxNetwork,
    LinuxPids,
    LinuxResources,
)

if TYPE_CHECKING:
    from pypod.linux.cgroups import CgroupManager

pytestmark = pytest.mark.root


def _host_problem() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create cgroups"
    try:
        mode = detect_mode()
    except NotSupported as e:
        return str(e)
    if mode == CgroupMode.UNIFIED:
        return "the host has cgroup v2 only (no v1 hierarchies to test)"
    return None


if (_problem := _host_problem()) is not None:
    pytest.skip(_problem, allow_module_level=True)

MODE = detect_mode()
MIB = 1 << 20


def _mounts() -> list[cgpaths.CgroupMount]:
    with open("/proc/self/mountinfo") as f:
        return cgpaths.parse_mountinfo(f.read())


def _unified_root() -> str | None:
    return next((m.mountpoint for m in _mounts() if m.version == 2), None)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


@dataclass
class Env:
    manager: CgroupManager
    name: str
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, *argv: str, stdin: int | None = None) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            list(argv or ("sleep", "1000")), stdin=stdin, stdout=subprocess.PIPE
        )
        self.children.append(proc)
        return proc

    def path(self, controller: str) -> str:
        return self.manager.paths[controller]


def _rmtree_cgroup(top: str) -> None:
    if not os.path.isdir(top):
        return
    for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
        for _ in range(50):
            try:
                os.rmdir(dirpath)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)


@pytest.fixture
def env() -> Iterator[Env]:
    name = f"/pypod-test-{secrets.token_hex(4)}"
    unified = _unified_root()
    before = set(_read(f"{unified}/cgroup.subtree_control").split()) if unified else set()
    e = Env(new_manager(name, "unused-id"), name)
    try:
        yield e
    finally:
        freezer = e.manager.paths.get("freezer")
        if freezer and os.path.exists(f"{freezer}/freezer.state"):
            with open(f"{freezer}/freezer.state", "w") as f:
                f.write("THAWED")
        for proc in e.children:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        for directory in set(e.manager.paths.values()):
            _rmtree_cgroup(directory)
        if unified:
            for controller in set(_read(f"{unified}/cgroup.subtree_control").split()) - before:
                with open(f"{unified}/cgroup.subtree_control", "w") as f:
                    f.write("-" + controller)
        assert not any(os.path.exists(p) for p in e.manager.paths.values())


def _state_letter(pid: int) -> str:
    for line in _read(f"/proc/{pid}/status").splitlines():
        if line.startswith("State:"):
            return line.split()[1]
    return "?"


def _cpu_ticks(pid: int) -> int:
    fields = _read(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _fresh_process(state: dict[str, Any], code: str) -> Any:
    """Run `code` (with `m` = the manager re-opened from `state`) in a new interpreter."""
    script = (
        "import json, sys\n"
        "from pypod.linux.cgroups import manager_from_state\n"
        "m = manager_from_state(json.load(sys.stdin))\n"
        f"print(json.dumps({code}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(state).encode(),
        capture_output=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)


DEVICES = (
    LinuxDeviceCgroup(allow=False, access="rwm"),  # deny everything, then allow:
    LinuxDeviceCgroup(allow=True, type="c", major=1, minor=3, access="rwm"),  # /dev/null
    LinuxDeviceCgroup(allow=True, type="c", major=1, minor=5, access="r"),  # /dev/zero, read
)


def test_create_every_hierarchy_and_reopen(env: Env) -> None:
    m = env.manager
    assert m.mode == MODE and not m.exists()
    m.create()
    assert m.exists()
    for controller in ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "pids"):
        assert os.path.isdir(env.path(controller)), controller
    assert env.path("memory").endswith(env.name)
    assert os.path.isdir(env.path("name=systemd"))
    if MODE == CgroupMode.HYBRID:
        assert env.path("unified") == f"{_unified_root()}{env.name}"
        assert os.path.isdir(env.path("unified"))
    # a new cpuset cgroup must start with its parent's cpus and mems, or it refuses tasks
    cpuset = env.path("cpuset")
    assert _read(f"{cpuset}/cpuset.cpus").strip()
    assert _read(f"{cpuset}/cpuset.mems").strip()
    again = manager_from_state(json.loads(json.dumps(m.to_state())))
    assert again.paths == m.paths and again.exists()


def test_add_pid_joins_every_hierarchy(env: Env) -> None:
    env.manager.create()
    child = env.spawn()
    env.manager.add_pid(child.pid)
    joined = cgpaths.parse_proc_cgroup(_read(f"/proc/{child.pid}/cgroup"))
    for controller in env.manager.paths:
        key = "" if controller == "unified" else controller
        assert joined[key] == env.name, controller
    assert env.manager.pids() == [child.pid]


def _self_joined(join: SelfJoin) -> tuple[int, dict[str, str]]:
    """Fork a process into `join.clone_into`, which then moves itself into the `tasks` files;
    (its exit code, its /proc/<pid>/cgroup).  In a fresh interpreter: fork_into_cgroup
    refuses a process with threads."""
    script = (
        "import json, os, sys\n"
        "from pypod.linux import clone\n"
        "d = json.load(sys.stdin)\n"
        "fd = os.open(d['dir'], os.O_RDONLY | os.O_DIRECTORY) if d['dir'] else None\n"
        "tasks = [os.open(p, os.O_WRONLY) for p in d['tasks']]\n"
        "r, w = os.pipe()\n"
        "pid = clone.fork_into_cgroup(fd) if fd is not None else os.fork()\n"
        "if pid == 0:\n"
        "    for t in tasks:\n"
        "        os.write(t, b'0')\n"
        "    os.write(w, open('/proc/self/cgroup', 'rb').read())\n"
        "    os._exit(7)\n"
        "os.close(w)\n"
        "out = os.read(r, 65536).decode()\n"
        "print(json.dumps([os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), out]))\n"
    )
    data = {"dir": join.clone_into, "tasks": list(join.tasks)}
    proc = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(data).encode(),
        capture_output=True,
        check=True,
        timeout=60,
    )
    code, text = json.loads(proc.stdout)
    return code, cgpaths.parse_proc_cgroup(text)


def test_self_join_without_a_move_by_another(env: Env) -> None:
    """Born in the cgroup2 directory, moving itself into each v1 one: in every hierarchy."""
    m = env.manager
    m.create()
    join = m.self_join()
    assert join is not None
    unified = m.paths.get("unified")
    assert join.clone_into == unified
    assert sorted(join.tasks) == sorted(
        os.path.join(d, "tasks") for d in set(m.paths.values()) if d != unified
    )
    code, joined = _self_joined(join)
    assert code == 7
    for controller in m.paths:
        key = "" if controller == "unified" else controller
        assert joined[key] == env.name, controller
    assert m.pids() == []  # it came and went


def test_fork_into_cgroup_errors_and_threads(env: Env, tmp_path: Any) -> None:
    from pypod.errors import OSLevelError
    from pypod.linux import clone

    not_a_cgroup = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        script = (
            "import os, sys, threading\n"
            "from pypod.errors import OSLevelError\n"
            "from pypod.linux import clone\n"
            "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)\n"
            "ev = threading.Event()\n"
            "t = threading.Thread(target=ev.wait)\n"
            "t.start()\n"
            "try:\n"
            "    clone.fork_into_cgroup(fd)\n"
            "except OSLevelError as e:\n"
            "    print(e.errno, e)\n"
            "ev.set()\n"
        )
        m = env.manager
        m.create()
        target = m.paths.get("unified") or str(tmp_path)
        out = subprocess.run(
            [sys.executable, "-c", script, target], capture_output=True, check=True, timeout=60
        ).stdout.decode()
        assert out.startswith("16 ") and "other threads" in out  # EBUSY: never with threads
        if len(os.listdir("/proc/self/task")) == 1:  # pytest without threads: try a bad fd
            with pytest.raises(OSLevelError) as info:
                clone.fork_into_cgroup(not_a_cgroup)  # a directory, not of a cgroup2 fs
            assert "clone3" in str(info.value)
    finally:
        os.close(not_a_cgroup)


def test_limits_are_written_and_updated(env: Env) -> None:
    m = env.manager
    m.create()
    m.set_resources(
        LinuxResources(
            devices=DEVICES,
            memory=LinuxMemory(limit=64 * MIB, swap=128 * MIB, reservation=32 * MIB),
            cpu=LinuxCPU(shares=512, quota=50000, period=100000, cpus="0", mems="0"),
            pids=LinuxPids(limit=16),
        )
    )
    child = env.spawn()
    m.add_pid(child.pid)
    mem, cpu = env.path("memory"), env.path("cpu")
    assert _read(f"{mem}/memory.limit_in_bytes").strip() == str(64 * MIB)
    assert _read(f"{mem}/memory.soft_limit_in_bytes").strip() == str(32 * MIB)
    assert _read(f"{mem}/memory.memsw.limit_in_bytes").strip() == str(128 * MIB)
    assert _read(f"{cpu}/cpu.shares").strip() == "512"
    assert _read(f"{cpu}/cpu.cfs_quota_us").strip() == "50000"
    assert _read(f"{cpu}/cpu.cfs_period_us").strip() == "100000"
    assert _read(f"{env.path('cpuset')}/cpuset.cpus").strip() == "0"
    assert _read(f"{env.path('pids')}/pids.max").strip() == "16"
    # "deny all, then allow" gives exactly the allowed devices
    assert _read(f"{env.path('devices')}/devices.list") == "c 1:3 rwm\nc 1:5 r\n"

    m.update(
        LinuxResources(
            devices=(*DEVICES, LinuxDeviceCgroup(allow=True, type="c", major=1, minor=8)),
            memory=LinuxMemory(limit=128 * MIB, swap=256 * MIB),
            cpu=LinuxCPU(shares=256, quota=-1),
            pids=LinuxPids(limit=0),
        )
    )
    assert _read(f"{mem}/memory.limit_in_bytes").strip() == str(128 * MIB)
    assert _read(f"{mem}/memory.memsw.limit_in_bytes").strip() == str(256 * MIB)
    assert _read(f"{cpu}/cpu.shares").strip() == "256"
    assert _read(f"{cpu}/cpu.cfs_quota_us").strip() == "-1"
    assert _read(f"{env.path('pids')}/pids.max").strip() == "max"
    assert _read(f"{env.path('devices')}/devices.list") == "c 1:3 rwm\nc 1:5 r\nc 1:8 rwm\n"
    # lowering memory below memory+swap orders the writes so the kernel accepts them
    m.update(LinuxResources(memory=LinuxMemory(limit=16 * MIB, swap=16 * MIB)))
    assert _read(f"{mem}/memory.memsw.limit_in_bytes").strip() == str(16 * MIB)
    assert child.poll() is None


def _open_errno(env: Env, path: str, flags: int) -> int:
    """errno of opening `path` from a process inside the container cgroup (0: it worked)."""
    probe = env.spawn(
        sys.executable,
        "-c",
        "import os, sys\n"
        "sys.stdin.readline()\n"
        "try:\n"
        f"    os.close(os.open({path!r}, {flags}))\n"
        "    print(0)\n"
        "except OSError as e:\n"
        "    print(e.errno)\n",
        stdin=subprocess.PIPE,
    )
    env.manager.add_pid(probe.pid)
    out, _ = probe.communicate(b"go\n", timeout=30)
    return int(out)


def test_device_rules_are_enforced(env: Env) -> None:
    env.manager.create()
    env.manager.set_resources(LinuxResources(devices=DEVICES))
    assert _open_errno(env, "/dev/null", os.O_RDWR) == 0
    assert _open_errno(env, "/dev/zero", os.O_RDONLY) == 0
    assert _open_errno(env, "/dev/zero", os.O_WRONLY) == 1  # EPERM
    assert _open_errno(env, "/dev/full", os.O_RDONLY) == 1


def test_freeze_and_thaw(env: Env) -> None:
    m = env.manager
    m.create()
    sleeper = env.spawn()
    busy = env.spawn("sh", "-c", "while :; do :; done")
    m.add_pid(sleeper.pid)
    m.add_pid(busy.pid)
    assert m.freezer_state() == "THAWED"
    m.freeze()
    assert m.freezer_state() == "FROZEN"
    assert _read(f"{env.path('freezer')}/freezer.state").strip() == "FROZEN"
    assert _state_letter(sleeper.pid) == "D"  # frozen tasks show as uninterruptible
    ticks = _cpu_ticks(busy.pid)
    time.sleep(0.3)
    assert _cpu_ticks(busy.pid) == ticks  # no progress while frozen
    # a later CLI invocation sees the same state
    assert _fresh_process(m.to_state(), "m.freezer_state()") == "FROZEN"
    m.thaw()
    assert m.freezer_state() == "THAWED"
    # a thawed task is briefly runnable (R) before it sleeps again: poll for S
    deadline = time.monotonic() + 5
    while _state_letter(sleeper.pid) != "S" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _state_letter(sleeper.pid) == "S"
    time.sleep(0.3)
    assert _cpu_ticks(busy.pid) > ticks


def test_kill_all_of_a_paused_container(env: Env) -> None:
    m = env.manager
    m.create()
    child = env.spawn()
    m.add_pid(child.pid)
    m.freeze()
    m.kill_all(signal.SIGTERM)  # delivered once resumed; the container stays paused
    assert m.freezer_state() == "FROZEN"
    time.sleep(0.1)
    assert child.poll() is None
    m.kill_all(signal.SIGKILL)  # frozen tasks cannot die: thawed for SIGKILL
    assert child.wait(timeout=10) in (-signal.SIGTERM, -signal.SIGKILL)
    assert m.pids() == []


def test_pids_kill_all_and_destroy(env: Env) -> None:
    m = env.manager
    m.create()
    first, second = env.spawn(), env.spawn()
    m.add_pid(first.pid)
    m.add_pid(second.pid)
    # a nested cgroup (as a container may create) is listed and removed too
    nested = os.path.join(env.path("devices"), "nested")
    os.mkdir(nested)
    with open(f"{nested}/cgroup.procs", "w") as f:
        f.write(str(second.pid))
    assert sorted(m.pids()) == sorted([first.pid, second.pid])
    assert sorted(_fresh_process(m.to_state(), "m.pids()")) == sorted([first.pid, second.pid])
    stats = m.stats()
    assert stats["pids"]["current"] == 2
    json.dumps(stats)
    m.kill_all(signal.SIGKILL)
    assert first.wait(timeout=10) == -signal.SIGKILL
    assert second.wait(timeout=10) == -signal.SIGKILL
    assert m.freezer_state() == "THAWED"
    m.destroy()
    assert not m.exists()
    assert not any(os.path.exists(p) for p in m.paths.values())
    m.destroy()  # already gone: fine


def test_destroy_in_a_fresh_process(env: Env) -> None:
    env.manager.create()
    _fresh_process(env.manager.to_state(), "m.destroy()")
    assert not env.manager.exists()


def test_errors_are_clear(env: Env) -> None:
    m = env.manager
    m.create()
    with pytest.raises(NotSupported, match="unified resources map needs cgroup v2"):
        m.set_resources(LinuxResources(unified={"memory.high": "1G"}))
    if "net_cls" not in m.paths:
        with pytest.raises(NotSupported, match="net_cls controller is not mounted"):
            m.set_resources(LinuxResources(network=LinuxNetwork(class_id=0x100001)))
    with pytest.raises(InvalidArgument, match="minimum allowed cpu shares is 2"):
        m.set_resources(LinuxResources(cpu=LinuxCPU(shares=1)))
    with pytest.raises(InvalidArgument, match="swappiness"):
        m.set_resources(LinuxResources(memory=LinuxMemory(swappiness=200)))
    with pytest.raises(InvalidArgument, match="punch a hole"):
        m.set_resources(
            LinuxResources(
                devices=(
                    LinuxDeviceCgroup(allow=False),
                    LinuxDeviceCgroup(allow=True, type="c"),
                    LinuxDeviceCgroup(allow=False, type="c", major=1, minor=3, access="w"),
                )
            )
        )


def test_memory_limit_below_usage(env: Env) -> None:
    m = env.manager
    m.create()
    hog = env.spawn(
        sys.executable,
        "-c",
        "import sys, time\n"
        "sys.stdin.readline()\n"
        "x = b'x' * (40 << 20)\n"
        "print('ready', flush=True)\n"
        "time.sleep(1000)\n",
        stdin=subprocess.PIPE,
    )
    m.add_pid(hog.pid)
    assert hog.stdin is not None and hog.stdout is not None
    hog.stdin.write(b"go\n")
    hog.stdin.flush()
    assert hog.stdout.readline() == b"ready\n"
    if _read("/proc/swaps").count("\n") > 1:
        pytest.skip("swap is enabled: the kernel can swap the memory out instead of EBUSY")
    limit_file = f"{env.path('memory')}/memory.limit_in_bytes"
    with pytest.raises(InUse) as info:
        m.update(LinuxResources(memory=LinuxMemory(limit=MIB)))
    assert str(info.value).startswith(
        f'cgroup: cannot write "{MIB}" to {limit_file}: Device or resource busy'
    )
    assert "current usage" in str(info.value)


@pytest.mark.skipif(MODE != CgroupMode.HYBRID, reason="needs a hybrid cgroup host")
def test_hybrid_hugetlb_through_the_cgroup2_hierarchy(env: Env) -> None:
    m = env.manager
    unified = _unified_root()
    offered = _read(f"{unified}/cgroup.controllers").split()
    if "hugetlb" in m.paths or "hugetlb" not in offered:
        pytest.skip("hugetlb is not a cgroup2-only controller on this host")
    m.create()
    m.set_resources(
        LinuxResources(hugepage_limits=(LinuxHugepageLimit(page_size="2MB", limit=4 * MIB),))
    )
    assert _read(f"{env.path('unified')}/hugetlb.2MB.max").strip() == str(4 * MIB)


def test_relative_and_empty_paths_follow_runc() -> None:
    own = cgpaths.parse_proc_cgroup(_read("/proc/self/cgroup"))
    mounts = {c: mnt.mountpoint for mnt in _mounts() for c in mnt.controllers}
    for cgroups_path, inner in (("", "ctr-id"), ("pods/x", "pods/x")):
        m = new_manager(cgroups_path, "ctr-id")
        for controller in ("memory", "devices", "cpu"):
            expected = os.path.normpath(f"{mounts[controller]}/{own[controller]}/{inner}")
            assert m.paths[controller] == expected
    with pytest.raises(InvalidArgument, match="root cgroup"):
        new_manager("/", "ctr-id")
    with pytest.raises(NotSupported, match="systemd"):
        new_manager("system.slice:pypod:abc", "abc")


# --- removal without the manager (pypod.linux.cgroup_cleanup) ---------------------------------


def test_remove_empty_takes_every_directory_of_an_empty_cgroup(env: Env) -> None:
    from pypod.linux import cgroup_cleanup

    env.manager.create()
    state = env.manager.to_state()
    assert cgroup_cleanup.remove_empty(state) is True
    assert not any(os.path.exists(p) for p in env.manager.paths.values())
    assert cgroup_cleanup.remove_empty(state) is True  # gone already: fine


def test_remove_empty_leaves_a_cgroup_with_processes_to_the_manager(env: Env) -> None:
    """rmdir refuses a cgroup that holds a process: remove_empty stops there, and the
    directory the manager lists processes from (devices) is still there for it."""
    from pypod.linux import cgroup_cleanup

    m = env.manager
    m.create()
    proc = env.spawn()
    m.add_pid(proc.pid)
    assert cgroup_cleanup.remove_empty(m.to_state()) is False
    assert os.path.isdir(env.path("devices")) and os.path.isdir(env.path("freezer"))
    reopened = manager_from_state(m.to_state())
    assert reopened.pids() == [proc.pid]
    reopened.kill_all(signal.SIGKILL)
    proc.wait(timeout=10)
    reopened.destroy()
    assert not any(os.path.exists(p) for p in m.paths.values())


def test_remove_empty_refuses_what_it_does_not_read(env: Env) -> None:
    from pypod.linux import cgroup_cleanup

    env.manager.create()
    state = env.manager.to_state()
    assert cgroup_cleanup.remove_empty({**state, "version": 99}) is False
    assert cgroup_cleanup.remove_empty({**state, "paths": {"devices": "relative/dir"}}) is False
    assert cgroup_cleanup.remove_empty({}) is False
    assert all(os.path.isdir(p) for p in env.manager.paths.values())
