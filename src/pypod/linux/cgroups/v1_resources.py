"""Writing OCI resources to cgroup v1 controller directories, one function per controller.

Each function takes the directory of its controller; v1.V1Manager finds it and reports a
controller that is not mounted (or could not be created) before anything is written.
"""

from __future__ import annotations

import errno

from pypod.errors import (
    InUse,
    InvalidArgument,
    NotSupported,
    PypodError,
    RuntimeError_,
)
from pypod.linux.cgroups import files
from pypod.linux.cgroups.devices import DeviceRule, Emulator
from pypod.log import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from pypod.oci.runtime_spec import (
        LinuxBlockIO,
        LinuxCPU,
        LinuxHugepageLimit,
        LinuxMemory,
        LinuxNetwork,
        LinuxPids,
        LinuxResources,
    )

log = get_logger(__name__)

MEMSW = "memory.memsw.limit_in_bytes"


def needed_controllers(res: LinuxResources) -> list[tuple[str, str]]:
    """(controller, what) for every v1 controller the resources need, in runc's order."""
    need: list[tuple[str, str]] = []
    cpu = res.cpu
    if cpu is not None and (cpu.cpus or cpu.mems):
        need.append(("cpuset", "cpuset"))
    if res.devices:
        need.append(("devices", "device rules"))
    mem = res.memory
    if mem is not None and (
        mem.limit
        or mem.reservation
        or mem.swap
        or (mem.swappiness is not None and mem.swappiness != -1)
        or mem.disable_oom_killer is not None
    ):
        need.append(("memory", "memory limits"))
    if cpu is not None and (
        cpu.shares
        or cpu.quota
        or cpu.period
        or cpu.burst is not None
        or cpu.idle is not None
        or cpu.realtime_period
        or cpu.realtime_runtime
    ):
        need.append(("cpu", "cpu limits"))
    if res.pids is not None:
        need.append(("pids", "pids limit"))
    bio = res.block_io
    if bio is not None and (
        bio.weight
        or bio.leaf_weight
        or bio.weight_device
        or bio.throttle_read_bps_device
        or bio.throttle_write_bps_device
        or bio.throttle_read_iops_device
        or bio.throttle_write_iops_device
    ):
        need.append(("blkio", "block IO limits"))
    if res.hugepage_limits:
        need.append(("hugetlb", "hugepage limits"))
    net = res.network
    if net is not None and net.class_id is not None:
        need.append(("net_cls", "network class id"))
    if net is not None and net.priorities:
        need.append(("net_prio", "network priorities"))
    if res.rdma:
        need.append(("rdma", "rdma limits"))
    return need


# --- memory -----------------------------------------------------------------------------------


def set_memory(d: str, mem: LinuxMemory | None) -> None:
    if mem is None:
        return
    limit, swap = mem.limit or 0, mem.swap or 0
    has_memsw = files.exists(d, MEMSW)
    if limit == -1 and swap == 0 and has_memsw:
        swap = -1  # "memory unlimited" also lifts the memory+swap limit
    if swap and not has_memsw:
        raise NotSupported(
            f"cgroup: cannot set a swap limit: no {MEMSW} in {d} (the kernel has no swap "
            "accounting; boot it with swapaccount=1, or do not set memory.swap)"
        )
    if limit and swap:
        current = files.read_int(d, "memory.limit_in_bytes") or 0
        # the kernel wants memory <= memory+swap at every step: order the writes for that
        if swap == -1 or current < swap:
            _write_swap(d, swap)
            _write_limit(d, limit)
        else:
            _write_limit(d, limit)
            _write_swap(d, swap)
    else:
        _write_limit(d, limit)
        _write_swap(d, swap)
    if mem.kernel or mem.kernel_tcp:
        log.warning("cgroup: kernel memory limits are deprecated and ignored")
    if mem.reservation:
        files.write(d, "memory.soft_limit_in_bytes", str(mem.reservation), controller="memory")
    if mem.disable_oom_killer is not None:
        value = "1" if mem.disable_oom_killer else "0"
        files.write(d, "memory.oom_control", value, controller="memory")
    if mem.swappiness is not None and mem.swappiness != -1:
        if not 0 <= mem.swappiness <= 100:
            raise InvalidArgument(
                f"cgroup: invalid memory swappiness {mem.swappiness}: the range is 0-100"
            )
        files.write(d, "memory.swappiness", str(mem.swappiness), controller="memory")


def _write_limit(d: str, limit: int) -> None:
    if not limit:
        return
    try:
        files.write(d, "memory.limit_in_bytes", str(limit), controller="memory")
    except InUse as e:
        # EBUSY: the new limit is below what the cgroup already uses
        usage = files.read_int(d, "memory.usage_in_bytes")
        peak = files.read_int(d, "memory.max_usage_in_bytes")
        raise InUse(f"{e} (current usage {usage} bytes, peak {peak}; set a higher limit)") from e


def _write_swap(d: str, swap: int) -> None:
    if swap:
        files.write(d, MEMSW, str(swap), controller="memory")


# --- cpu and cpuset ---------------------------------------------------------------------------


def set_cpu(d: str, cpu: LinuxCPU | None) -> None:
    if cpu is None:
        return
    if cpu.shares:
        files.write(d, "cpu.shares", str(cpu.shares), controller="cpu")
        got = files.read_int(d, "cpu.shares")
        if got is not None and got != cpu.shares:
            bound = "maximum" if cpu.shares > got else "minimum"
            raise InvalidArgument(f"cgroup: the {bound} allowed cpu shares is {got}")
    period_pending = ""
    if cpu.period:
        try:
            files.write(d, "cpu.cfs_period_us", str(cpu.period), controller="cpu")
        except PypodError as e:
            # a shorter period can be refused (EINVAL) until the new quota is in: retry below
            if e.errno != errno.EINVAL:
                raise
            period_pending = str(cpu.period)
    if cpu.quota:
        files.write(d, "cpu.cfs_quota_us", str(cpu.quota), controller="cpu")
        if period_pending:
            files.write(d, "cpu.cfs_period_us", period_pending, controller="cpu")
    elif period_pending:
        files.write(d, "cpu.cfs_period_us", period_pending, controller="cpu")
    if cpu.burst is not None:
        files.write(d, "cpu.cfs_burst_us", str(cpu.burst), controller="cpu")
    if cpu.idle is not None:
        files.write(d, "cpu.idle", str(cpu.idle), controller="cpu")
    set_realtime(d, cpu)


def set_realtime(d: str, cpu: LinuxCPU | None) -> None:
    if cpu is None:
        return
    if cpu.realtime_period:
        files.write(d, "cpu.rt_period_us", str(cpu.realtime_period), controller="cpu")
    if cpu.realtime_runtime:
        files.write(d, "cpu.rt_runtime_us", str(cpu.realtime_runtime), controller="cpu")


def set_cpuset(d: str, cpu: LinuxCPU | None) -> None:
    if cpu is None:
        return
    if cpu.cpus:
        files.write(d, "cpuset.cpus", cpu.cpus, controller="cpuset")
    if cpu.mems:
        files.write(d, "cpuset.mems", cpu.mems, controller="cpuset")


# --- pids, blkio, hugetlb, network ----------------------------------------------------------


def set_pids(d: str, pids: LinuxPids | None) -> None:
    if pids is not None:
        from pypod.linux.cgroups import convert  # (as below) only for the limits that need it

        files.write(d, "pids.max", convert.pids_limit(pids.limit), controller="pids")


def _first_existing(d: str, names: Sequence[str], what: str) -> str:
    for name in names:
        if files.exists(d, name):
            return name
    raise NotSupported(
        f"cgroup: cannot set {what}: none of {', '.join(names)} exists in {d} "
        "(IO scheduler without cgroup weights?)"
    )


def set_blkio(d: str, bio: LinuxBlockIO | None) -> None:
    if bio is None:
        return
    from pypod.linux.cgroups import convert  # not loaded by a create without these limits

    if bio.weight:
        name = _first_existing(d, ("blkio.weight", "blkio.bfq.weight"), "the block IO weight")
        files.write(d, name, str(bio.weight), controller="blkio")
    if bio.leaf_weight:
        files.write(d, "blkio.leaf_weight", str(bio.leaf_weight), controller="blkio")
    for wd in bio.weight_device:
        if wd.weight:
            name = _first_existing(
                d, ("blkio.weight_device", "blkio.bfq.weight_device"), "a device weight"
            )
            line = convert.device_line(wd.major, wd.minor, wd.weight)
            files.write(d, name, line, controller="blkio")
        if wd.leaf_weight:
            line = convert.device_line(wd.major, wd.minor, wd.leaf_weight)
            files.write(d, "blkio.leaf_weight_device", line, controller="blkio")
    for name, devices in (
        ("blkio.throttle.read_bps_device", bio.throttle_read_bps_device),
        ("blkio.throttle.write_bps_device", bio.throttle_write_bps_device),
        ("blkio.throttle.read_iops_device", bio.throttle_read_iops_device),
        ("blkio.throttle.write_iops_device", bio.throttle_write_iops_device),
    ):
        for td in devices:
            line = convert.device_line(td.major, td.minor, td.rate)
            files.write(d, name, line, controller="blkio")


def set_hugetlb(d: str, limits: tuple[LinuxHugepageLimit, ...]) -> None:
    from pypod.linux.cgroups import convert

    for hp in limits:
        size = convert.hugetlb_size(hp.page_size)
        name = f"hugetlb.{size}.limit_in_bytes"
        files.write(d, name, str(hp.limit), controller="hugetlb")
        if files.exists(d, f"hugetlb.{size}.rsvd.limit_in_bytes"):
            rsvd = f"hugetlb.{size}.rsvd.limit_in_bytes"
            files.write(d, rsvd, str(hp.limit), controller="hugetlb")


def set_net_cls(d: str, net: LinuxNetwork | None) -> None:
    if net is not None and net.class_id is not None:
        files.write(d, "net_cls.classid", str(net.class_id), controller="net_cls")


def set_net_prio(d: str, net: LinuxNetwork | None) -> None:
    if net is None:
        return
    for prio in net.priorities:
        files.write(d, "net_prio.ifpriomap", f"{prio.name} {prio.priority}", controller="net_prio")


# --- devices ----------------------------------------------------------------------------------


def set_devices(d: str, rules: Sequence[DeviceRule]) -> None:
    """Move devices.list to the state the rules describe, writing only what changes.

    From a fresh cgroup (allow-all) and the usual "deny all, then allow X" list this writes
    exactly "a *:* rwm" to devices.deny and then each allowed device to devices.allow.
    """
    current = Emulator.from_list(files.read(d, "devices.list"))
    target = Emulator.from_rules(rules)
    for rule in current.transition(target):
        name = "devices.allow" if rule.allow else "devices.deny"
        files.write(d, name, rule.cgroup_string(), controller="devices")
    if not target.default_allow:
        # an allow-list can be read back: make sure the kernel took every rule
        now = Emulator.from_list(files.read(d, "devices.list"))
        if now != target:
            raise RuntimeError_(
                f"cgroup: {d}/devices.list does not match the requested device rules after "
                "writing them (a parent cgroup may not allow some of these devices)"
            )
