"""cgroup v2 file formats, against a fake cgroup2 tree in a temporary directory, and the eBPF
device filter generator.

The fake tree holds plain files named like the kernel's; writes truncate, so a file shows the
last value written, and a `writes` spy records every write in order.
"""

from __future__ import annotations

import json
import os
import signal
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from pypod.errors import InvalidArgument, NotFound, NotSupported, PermissionDenied
from pypod.linux.cgroups import CgroupMode, files, manager_from_state, v2
from pypod.linux.cgroups.bpf_devices import Insn, device_filter
from pypod.linux.cgroups.devices import DeviceRule
from pypod.linux.cgroups.v2 import V2Manager
from pypod.oci.runtime_spec import (
    LinuxBlockIO,
    LinuxCPU,
    LinuxHugepageLimit,
    LinuxMemory,
    LinuxPids,
    LinuxResources,
    LinuxThrottleDevice,
    LinuxWeightDevice,
)

CONTROLLERS = "cpuset cpu io memory hugetlb pids rdma"
FILES = {
    "cgroup.procs": "",
    "cgroup.type": "domain\n",
    "cgroup.freeze": "0\n",
    "cgroup.events": "populated 1\nfrozen 0\n",
    "cgroup.kill": "",
    "cgroup.subtree_control": "",
    "memory.max": "max\n",
    "memory.low": "0\n",
    "memory.swap.max": "max\n",
    "memory.current": "1048576\n",
    "memory.stat": "anon 4096\nfile 8192\n",
    "cpu.weight": "100\n",
    "cpu.max": "max 100000\n",
    "cpu.max.burst": "0\n",
    "cpu.idle": "0\n",
    "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
    "cpuset.cpus": "",
    "cpuset.mems": "",
    "io.weight": "default 100\n",
    "io.max": "",
    "pids.max": "max\n",
    "pids.current": "3\n",
    "hugetlb.2MB.max": "max\n",
    "rdma.max": "",
}


def fake_cgroup(path: Path, controllers: str = CONTROLLERS, **extra: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "cgroup.controllers").write_text(controllers + "\n")
    for name, content in {**FILES, **extra}.items():
        (path / name).write_text(content)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "cgroup"
    r.mkdir()
    (r / "cgroup.controllers").write_text(CONTROLLERS + "\n")
    (r / "cgroup.subtree_control").write_text("")
    return r


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """Every (file name, value) written through pypod.linux.cgroups.files.write, in order."""
    seen: list[tuple[str, str]] = []
    real = files.write

    def spy(directory: str, name: str, value: str, *, controller: str = "") -> None:
        seen.append((name, value))
        real(directory, name, value, controller=controller)

    monkeypatch.setattr(files, "write", spy)
    yield seen


@pytest.fixture
def mgr(root: Path) -> V2Manager:
    m = V2Manager(str(root / "pods" / "c1"), root=str(root))
    m.create()
    fake_cgroup(root / "pods" / "c1")
    return m


def read(m: V2Manager, name: str) -> str:
    return (Path(m.path) / name).read_text()


# --- creation ---------------------------------------------------------------------------------


def test_create_enables_controllers_in_every_parent(root: Path) -> None:
    fake_cgroup(root / "pods", **{"cgroup.subtree_control": "cpu"})  # an existing parent
    m = V2Manager(str(root / "pods" / "c1"), root=str(root))
    assert not m.exists()
    m.create()
    assert m.exists() and m.mode == CgroupMode.UNIFIED
    want = "+cpuset +cpu +io +memory +hugetlb +pids +rdma"
    assert (root / "cgroup.subtree_control").read_text() == want
    assert (root / "pods" / "cgroup.subtree_control").read_text() == want
    # the container's own cgroup is a leaf: nothing enabled below it
    assert not (root / "pods" / "c1" / "cgroup.subtree_control").exists()
    assert m.paths == {"unified": str(root / "pods" / "c1")}


def test_path_must_be_below_root(root: Path) -> None:
    for bad in (str(root), str(root.parent / "elsewhere")):
        with pytest.raises(InvalidArgument, match="not a cgroup below"):
            V2Manager(bad, root=str(root))


def test_state_roundtrip(mgr: V2Manager) -> None:
    data = json.loads(json.dumps(mgr.to_state()))
    again = manager_from_state(data)
    assert isinstance(again, V2Manager)
    assert again.paths == mgr.paths and again.to_state() == mgr.to_state()


def test_self_join_is_a_birth_in_the_cgroup(mgr: V2Manager, root: Path) -> None:
    join = mgr.self_join()
    assert join is not None
    assert join.clone_into == str(root / "pods" / "c1") and join.tasks == ()
    rootless = V2Manager(str(root / "pods" / "c2"), root=str(root), rootless=True)
    assert rootless.self_join() is None  # a user's moves follow other rules: add_pid only


# --- memory -----------------------------------------------------------------------------------


def test_memory_limit_swap_and_reservation(mgr: V2Manager) -> None:
    gib = 1 << 30
    mgr.set_resources(
        LinuxResources(memory=LinuxMemory(limit=gib, swap=gib + gib // 2, reservation=gib // 4))
    )
    assert read(mgr, "memory.max") == str(gib)
    assert read(mgr, "memory.swap.max") == str(gib // 2)  # v2 swap excludes memory
    assert read(mgr, "memory.low") == str(gib // 4)


def test_memory_unlimited_and_no_swap(mgr: V2Manager, writes: list[tuple[str, str]]) -> None:
    mgr.set_resources(LinuxResources(memory=LinuxMemory(limit=-1)))
    assert writes == [("memory.swap.max", "max"), ("memory.max", "max")]
    writes.clear()
    mgr.update(LinuxResources(memory=LinuxMemory(limit=4096 * 1024, swap=4096 * 1024)))
    assert writes == [("memory.swap.max", "0"), ("memory.max", "4194304")]


def test_memory_errors(mgr: V2Manager) -> None:
    with pytest.raises(InvalidArgument, match="without a memory limit"):
        mgr.set_resources(LinuxResources(memory=LinuxMemory(swap=1 << 30)))
    with pytest.raises(NotSupported, match="swappiness"):
        mgr.set_resources(LinuxResources(memory=LinuxMemory(limit=1 << 30, swappiness=10)))
    with pytest.raises(InvalidArgument, match="current usage 1048576"):
        mgr.update(LinuxResources(memory=LinuxMemory(limit=4096, check_before_update=True)))


def test_swap_requested_without_swap_accounting(mgr: V2Manager) -> None:
    os.unlink(Path(mgr.path) / "memory.swap.max")
    with pytest.raises(NotSupported, match="memory.swap.max"):
        mgr.set_resources(LinuxResources(memory=LinuxMemory(limit=1 << 20, swap=2 << 20)))
    # "memory unlimited" derives swap "max": skipped quietly where swap does not exist
    mgr.set_resources(LinuxResources(memory=LinuxMemory(limit=-1)))
    assert read(mgr, "memory.max") == "max"


# --- cpu, cpuset, pids ------------------------------------------------------------------------


def test_cpu_weight_and_max(mgr: V2Manager) -> None:
    mgr.set_resources(
        LinuxResources(cpu=LinuxCPU(shares=1024, quota=50000, period=100000, cpus="0-1", mems="0"))
    )
    assert read(mgr, "cpu.weight") == "39"
    assert read(mgr, "cpu.max") == "50000 100000"
    assert read(mgr, "cpuset.cpus") == "0-1"
    assert read(mgr, "cpuset.mems") == "0"


def test_cpu_max_update_keeps_the_other_half(mgr: V2Manager) -> None:
    mgr.set_resources(LinuxResources(cpu=LinuxCPU(quota=20000, period=50000)))
    mgr.update(LinuxResources(cpu=LinuxCPU(period=200000)))
    assert read(mgr, "cpu.max") == "20000 200000"
    mgr.update(LinuxResources(cpu=LinuxCPU(quota=-1)))
    assert read(mgr, "cpu.max") == "max 200000"


def test_cpu_burst_idle_and_realtime(mgr: V2Manager) -> None:
    mgr.set_resources(LinuxResources(cpu=LinuxCPU(burst=1000, idle=1)))
    assert read(mgr, "cpu.max.burst") == "1000"
    assert read(mgr, "cpu.idle") == "1"
    with pytest.raises(NotSupported, match="realtime"):
        mgr.set_resources(LinuxResources(cpu=LinuxCPU(realtime_runtime=1000)))


@pytest.mark.parametrize(("limit", "value"), [(64, "64"), (0, "max"), (-1, "max")])
def test_pids_max(mgr: V2Manager, limit: int, value: str) -> None:
    mgr.set_resources(LinuxResources(pids=LinuxPids(limit=limit)))
    assert read(mgr, "pids.max") == value


# --- io, hugetlb, rdma, unified ---------------------------------------------------------------


def test_io_weight_converted_and_io_max(mgr: V2Manager, writes: list[tuple[str, str]]) -> None:
    mgr.set_resources(
        LinuxResources(
            block_io=LinuxBlockIO(
                weight=500,
                weight_device=(LinuxWeightDevice(major=8, minor=0, weight=1000),),
                throttle_read_bps_device=(LinuxThrottleDevice(major=8, minor=0, rate=1 << 20),),
                throttle_write_iops_device=(LinuxThrottleDevice(major=8, minor=16, rate=0),),
            )
        )
    )
    assert writes == [
        ("io.weight", "4950"),
        ("io.weight", "8:0 10000"),
        ("io.max", "8:0 rbps=1048576"),
        ("io.max", "8:16 wiops=max"),  # rate 0: no limit
    ]


def test_io_bfq_weight_used_as_is(mgr: V2Manager) -> None:
    (Path(mgr.path) / "io.bfq.weight").write_text("default 100\n")
    mgr.set_resources(LinuxResources(block_io=LinuxBlockIO(weight=500)))
    assert read(mgr, "io.bfq.weight") == "500"
    assert read(mgr, "io.weight") == "default 100\n"


def test_hugetlb_max(mgr: V2Manager) -> None:
    limits = (LinuxHugepageLimit(page_size="2MB", limit=4 << 20),)
    mgr.set_resources(LinuxResources(hugepage_limits=limits))
    assert read(mgr, "hugetlb.2MB.max") == str(4 << 20)
    with pytest.raises(NotSupported, match=r"hugetlb\.1GB\.max"):
        mgr.set_resources(
            LinuxResources(hugepage_limits=(LinuxHugepageLimit(page_size="1GB", limit=0),))
        )


def test_unified_map_written_verbatim(mgr: V2Manager) -> None:
    (Path(mgr.path) / "memory.high").write_text("max\n")
    mgr.set_resources(LinuxResources(unified={"memory.high": "512M", "pids.max": "42"}))
    assert read(mgr, "memory.high") == "512M"
    assert read(mgr, "pids.max") == "42"
    with pytest.raises(InvalidArgument, match="plain file name"):
        mgr.set_resources(LinuxResources(unified={"../memory.max": "1"}))
    with pytest.raises(NotSupported, match="misc"):
        mgr.set_resources(LinuxResources(unified={"misc.max": "res_a 1"}))


def test_missing_controller_is_a_clear_error(root: Path) -> None:
    m = V2Manager(str(root / "c2"), root=str(root))
    m.create()
    fake_cgroup(root / "c2", controllers="cpu pids")
    with pytest.raises(NotSupported, match=r"memory limits: controller\(s\) not available"):
        m.set_resources(LinuxResources(memory=LinuxMemory(limit=1 << 20)))
    m.set_resources(LinuxResources(pids=LinuxPids(limit=5)))  # available: fine


def test_missing_file_names_file_and_value(mgr: V2Manager) -> None:
    os.unlink(Path(mgr.path) / "cpu.idle")
    with pytest.raises(NotSupported) as info:
        mgr.set_resources(LinuxResources(cpu=LinuxCPU(idle=1)))
    assert f'cannot write "1" to {mgr.path}/cpu.idle' in str(info.value)


def test_threaded_cgroup_refuses_domain_controllers(mgr: V2Manager) -> None:
    (Path(mgr.path) / "cgroup.type").write_text("threaded\n")
    with pytest.raises(Exception, match="threaded"):
        mgr.set_resources(LinuxResources(memory=LinuxMemory(limit=1 << 20)))
    mgr.set_resources(LinuxResources(pids=LinuxPids(limit=5)))  # pids is threaded: fine


# --- freezer, processes, stats ----------------------------------------------------------------


def test_freeze_and_thaw(mgr: V2Manager) -> None:
    assert mgr.freezer_state() == "THAWED"
    (Path(mgr.path) / "cgroup.events").write_text("populated 1\nfrozen 1\n")  # the kernel's
    mgr.freeze()
    assert read(mgr, "cgroup.freeze") == "1"
    assert mgr.freezer_state() == "FROZEN"
    (Path(mgr.path) / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    assert mgr.freezer_state() == "FREEZING"
    mgr.thaw()
    assert read(mgr, "cgroup.freeze") == "0"
    assert mgr.freezer_state() == "THAWED"


def test_freeze_times_out_and_thaws(mgr: V2Manager, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(v2, "FREEZE_TIMEOUT", 0.05)
    with pytest.raises(Exception, match="did not freeze"):
        mgr.freeze()
    assert read(mgr, "cgroup.freeze") == "0"


def test_pids_are_recursive(mgr: V2Manager) -> None:
    (Path(mgr.path) / "cgroup.procs").write_text("10\n11\n")
    fake_cgroup(Path(mgr.path) / "sub" / "deeper")
    (Path(mgr.path) / "sub" / "deeper" / "cgroup.procs").write_text("12\n")
    assert sorted(mgr.pids()) == [10, 11, 12]


def test_kill_all_uses_cgroup_kill(mgr: V2Manager) -> None:
    mgr.kill_all(signal.SIGKILL)
    assert read(mgr, "cgroup.kill") == "1"


def test_stats(mgr: V2Manager) -> None:
    st = mgr.stats()
    assert st["pids"] == {"current": 3, "limit": 0}
    assert st["cpu"]["usage"] == {"total": 1500000, "percpu": [], "kernel": 500000, "user": 1000000}
    assert st["memory"]["usage"]["usage"] == 1048576
    assert st["memory"]["cache"] == 8192
    json.dumps(st)


def test_rootless_without_cgroup(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(root: str, directory: str, wanted: list[str] | None = None) -> None:
        e = PermissionDenied(f"cgroup: create {directory}: Permission denied")
        e.errno = 13  # type: ignore[attr-defined]
        raise e

    monkeypatch.setattr(v2, "enable_controllers", refuse)
    m = V2Manager(str(root / "c3"), root=str(root), rootless=True, explicit_path=False)
    m.create()  # no cgroupsPath and no permission: carry on without a cgroup
    m.add_pid(os.getpid())  # nothing to join
    m.set_resources(LinuxResources())  # no limits: fine
    with pytest.raises(NotSupported, match="rootless"):
        m.set_resources(LinuxResources(pids=LinuxPids(limit=10)))
    explicit = V2Manager(str(root / "c4"), root=str(root), rootless=True, explicit_path=True)
    with pytest.raises(PermissionDenied):
        explicit.create()


def test_operations_on_a_missing_cgroup(root: Path) -> None:
    m = V2Manager(str(root / "gone"), root=str(root))
    assert m.pids() == []
    m.destroy()  # missing is fine
    with pytest.raises(NotFound, match="does not exist"):
        m.add_pid(1)


# --- the eBPF device filter -------------------------------------------------------------------

DENY_ALL = DeviceRule(False, "a", -1, -1, "rwm")
ALLOW_ALL = DeviceRule(True, "a", -1, -1, "rwm")

PROLOGUE = [
    "LdXMemW dst: r2 src: r1 off: 0 imm: 0",
    "AndImm32 dst: r2 imm: 65535",
    "LdXMemW dst: r3 src: r1 off: 0 imm: 0",
    "RShImm32 dst: r3 imm: 16",
    "LdXMemW dst: r4 src: r1 off: 4 imm: 0",
    "LdXMemW dst: r5 src: r1 off: 8 imm: 0",
]
REJECT = ["MovImm32 dst: r0 imm: 0", "Exit"]
ACCEPT = ["MovImm32 dst: r0 imm: 1", "Exit"]


def listing(program: list[Insn]) -> list[str]:
    return [str(i) for i in program]


def test_filter_no_rules_denies_everything() -> None:
    assert listing(device_filter([])) == PROLOGUE + REJECT
    assert listing(device_filter([DENY_ALL])) == PROLOGUE + REJECT


def test_filter_privileged_allows_everything() -> None:
    assert listing(device_filter([ALLOW_ALL])) == PROLOGUE + ACCEPT


def test_filter_privileged_except_one_device() -> None:
    program = device_filter([ALLOW_ALL, DeviceRule(False, "b", 8, 0, "rwm")])
    assert listing(program) == [
        *PROLOGUE,
        "JNEImm dst: r2 off: 4 imm: 1",  # not a block device: next block
        "JNEImm dst: r4 off: 3 imm: 8",
        "JNEImm dst: r5 off: 2 imm: 0",
        *REJECT,
        *ACCEPT,
    ]


def test_filter_allow_list_with_access_and_wildcards() -> None:
    rules = [
        DENY_ALL,
        DeviceRule(True, "c", 136, -1, "rwm"),  # /dev/pts/*
        DeviceRule(True, "c", -1, -1, "m"),  # mknod of any char device
        DeviceRule(True, "c", 1, 3, "rw"),  # /dev/null, no mknod
    ]
    assert listing(device_filter(rules)) == [
        *PROLOGUE,
        # sorted by (major, minor, type): the wildcard first
        "JNEImm dst: r2 off: 5 imm: 2",
        "MovReg32 dst: r1 src: r3",
        "AndImm32 dst: r1 imm: 1",  # m
        "JNEReg dst: r1 src: r3 off: 2",  # requested access must be a subset
        *ACCEPT,
        "JNEImm dst: r2 off: 7 imm: 2",
        "MovReg32 dst: r1 src: r3",
        "AndImm32 dst: r1 imm: 6",  # r|w
        "JNEReg dst: r1 src: r3 off: 4",
        "JNEImm dst: r4 off: 3 imm: 1",
        "JNEImm dst: r5 off: 2 imm: 3",
        *ACCEPT,
        "JNEImm dst: r2 off: 3 imm: 2",
        "JNEImm dst: r4 off: 2 imm: 136",  # any minor: no minor check
        *ACCEPT,
        *REJECT,
    ]


def test_filter_deny_exception_matches_any_overlap() -> None:
    # allow everything but writing /dev/null: O_RDWR (r|w) must be refused too
    program = device_filter([ALLOW_ALL, DeviceRule(False, "c", 1, 3, "w")])
    assert listing(program) == [
        *PROLOGUE,
        "JNEImm dst: r2 off: 7 imm: 2",
        "MovReg32 dst: r1 src: r3",
        "AndImm32 dst: r1 imm: 4",
        "JEqImm dst: r1 off: 4 imm: 0",  # no overlap with "w": next block
        "JNEImm dst: r4 off: 3 imm: 1",
        "JNEImm dst: r5 off: 2 imm: 3",
        *REJECT,
        *ACCEPT,
    ]


def test_filter_jumps_land_on_block_starts() -> None:
    rules = [DENY_ALL] + [DeviceRule(True, "c", 1, n, "rwm") for n in (3, 5, 7, 8, 9)]
    program = device_filter(rules)
    starts = {i for i, insn in enumerate(program) if i >= 6 and program[i - 1].code == 0x95}
    for i, insn in enumerate(program):
        if insn.code & 0x07 == 0x05 and insn.code != 0x95:  # a conditional jump
            assert i + 1 + insn.off in starts
    raw = b"".join(i.pack() for i in program)
    assert len(raw) == 8 * len(program)
    assert struct.unpack_from("<BBhi", raw, 0) == (0x61, 0x12, 0, 0)  # r2 = *(u32 *)(r1 + 0)
