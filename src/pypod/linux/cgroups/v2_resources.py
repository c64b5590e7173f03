"""Writing OCI resources to a cgroup v2 directory, one function per controller (runc's order:
pids, memory, io, cpu, cpuset, hugetlb, rdma, then the `unified` map verbatim).

Devices are not here: v2 has no devices files, see bpf_devices.py.
"""

from __future__ import annotations

from pypod.errors import InvalidArgument, InvalidState, NotSupported, PypodError
from pypod.linux.cgroups import convert, files
from pypod.log import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from pypod.oci.runtime_spec import (
        LinuxBlockIO,
        LinuxCPU,
        LinuxHugepageLimit,
        LinuxMemory,
        LinuxPids,
        LinuxRdma,
        LinuxResources,
    )

log = get_logger(__name__)


def needed_controllers(res: LinuxResources) -> list[str]:
    """The v2 controllers the resources need ("devices" and "freezer" are not controllers)."""
    need: list[str] = []
    if res.pids is not None:
        need.append("pids")
    mem = res.memory
    if mem is not None and (mem.limit or mem.reservation or mem.swap):
        need.append("memory")
    bio = res.block_io
    if bio is not None and (
        bio.weight
        or bio.weight_device
        or bio.throttle_read_bps_device
        or bio.throttle_write_bps_device
        or bio.throttle_read_iops_device
        or bio.throttle_write_iops_device
    ):
        need.append("io")
    cpu = res.cpu
    if cpu is not None:
        if cpu.shares or cpu.quota or cpu.period or cpu.burst is not None or cpu.idle is not None:
            need.append("cpu")
        if cpu.cpus or cpu.mems:
            need.append("cpuset")
    if res.hugepage_limits:
        need.append("hugetlb")
    if res.rdma:
        need.append("rdma")
    for key in res.unified:
        controller = key.split(".", 1)[0]
        if controller not in need and controller != "cgroup":
            need.append(controller)
    return need


def check_controllers(directory: str, res: LinuxResources) -> None:
    """A clear error when a requested setting needs a controller the cgroup does not have."""
    validate_unified(res.unified)
    available = set((files.read_optional(directory, "cgroup.controllers") or "").split())
    missing = [c for c in needed_controllers(res) if c not in available]
    if missing:
        raise NotSupported(
            f"cgroup: cannot set {', '.join(missing)} limits: controller(s) not available in "
            f"{directory} (cgroup.controllers: {' '.join(sorted(available)) or 'none'}); "
            "enable them in the parent's cgroup.subtree_control"
        )


def set_pids(directory: str, pids: LinuxPids | None) -> None:
    if pids is not None:
        files.write(directory, "pids.max", convert.pids_limit(pids.limit), controller="pids")


def set_memory(directory: str, mem: LinuxMemory | None, *, updating: bool) -> None:
    if mem is None:
        return
    limit, swap = mem.limit or 0, mem.swap or 0
    if mem.swappiness is not None and mem.swappiness != -1:
        raise NotSupported("cgroup: memory swappiness is not supported on cgroup v2")
    if mem.disable_oom_killer:
        raise NotSupported("cgroup: disabling the OOM killer is not supported on cgroup v2")
    if mem.kernel or mem.kernel_tcp:
        log.warning("cgroup: kernel memory limits are deprecated and ignored")
    if not (limit or swap or mem.reservation):
        return
    if updating and mem.check_before_update and limit > 0:
        usage = files.read_int(directory, "memory.current") or 0
        if limit <= usage:
            raise InvalidArgument(
                f"cgroup: rejecting memory limit {limit}: not above the current usage {usage}"
            )
    swap_v2 = convert.memory_swap_to_v2(swap, limit)
    swap_str = convert.v2_limit(swap_v2)
    if swap_str is None and swap_v2 == 0 and swap > 0:
        swap_str = "0"  # memory == memory+swap: no swap at all
    # a swap value derived from "memory unlimited" is skipped where the kernel has no swap
    if swap_str is not None and (swap or files.exists(directory, "memory.swap.max")):
        files.write(directory, "memory.swap.max", swap_str, controller="memory")
    if (value := convert.v2_limit(limit)) is not None:
        files.write(directory, "memory.max", value, controller="memory")
    if (value := convert.v2_limit(mem.reservation)) is not None:
        files.write(directory, "memory.low", value, controller="memory")


def set_io(directory: str, bio: LinuxBlockIO | None) -> None:
    if bio is None:
        return
    bfq = files.exists(directory, "io.bfq.weight")
    if bio.leaf_weight:
        raise NotSupported("cgroup: blkio leaf weight is not supported on cgroup v2")
    if bio.weight:
        if bfq:
            files.write(directory, "io.bfq.weight", str(bio.weight), controller="io")
        else:
            value = str(convert.blkio_weight_to_io_weight(bio.weight))
            files.write(directory, "io.weight", value, controller="io")
    for wd in bio.weight_device:
        if wd.leaf_weight:
            raise NotSupported("cgroup: blkio leaf weight is not supported on cgroup v2")
        if wd.weight:
            if bfq:
                line = convert.device_line(wd.major, wd.minor, wd.weight)
                files.write(directory, "io.bfq.weight", line, controller="io")
            else:
                weight = convert.blkio_weight_to_io_weight(wd.weight)
                line = convert.device_line(wd.major, wd.minor, weight)
                files.write(directory, "io.weight", line, controller="io")
    for key, devices in (
        ("rbps", bio.throttle_read_bps_device),
        ("wbps", bio.throttle_write_bps_device),
        ("riops", bio.throttle_read_iops_device),
        ("wiops", bio.throttle_write_iops_device),
    ):
        for td in devices:
            rate = str(td.rate) if td.rate > 0 else "max"
            line = convert.device_line(td.major, td.minor, f"{key}={rate}")
            files.write(directory, "io.max", line, controller="io")


def set_cpu(directory: str, cpu: LinuxCPU | None) -> None:
    if cpu is None:
        return
    if cpu.realtime_runtime or cpu.realtime_period:
        raise NotSupported("cgroup: realtime CPU scheduling limits are not supported on v2")
    if cpu.shares:
        weight = str(convert.cpu_shares_to_weight(cpu.shares))
        files.write(directory, "cpu.weight", weight, controller="cpu")
    if cpu.quota or cpu.period:
        quota, period = cpu.quota, cpu.period
        current = (files.read_optional(directory, "cpu.max") or "").split()
        if len(current) == 2:  # keep the half that is not being changed
            if quota is None:
                quota = -1 if current[0] == "max" else int(current[0])
            if period is None:
                period = int(current[1])
        value = convert.cpu_max(quota, period)
        if value is not None:
            files.write(directory, "cpu.max", value, controller="cpu")
    if cpu.burst is not None:
        files.write(directory, "cpu.max.burst", str(cpu.burst), controller="cpu")
    if cpu.idle is not None:
        files.write(directory, "cpu.idle", str(cpu.idle), controller="cpu")
    if cpu.cpus:
        files.write(directory, "cpuset.cpus", cpu.cpus, controller="cpuset")
    if cpu.mems:
        files.write(directory, "cpuset.mems", cpu.mems, controller="cpuset")


def set_hugetlb(directory: str, limits: tuple[LinuxHugepageLimit, ...]) -> None:
    for hp in limits:
        size = convert.hugetlb_size(hp.page_size)
        files.write(directory, f"hugetlb.{size}.max", str(hp.limit), controller="hugetlb")
        if files.exists(directory, f"hugetlb.{size}.rsvd.max"):
            files.write(directory, f"hugetlb.{size}.rsvd.max", str(hp.limit), controller="hugetlb")


def rdma_lines(rdma: Mapping[str, LinuxRdma]) -> list[str]:
    """rdma.max lines ("mlx4_0 hca_handle=2 hca_object=2000"); same format on v1 and v2."""
    lines = []
    for device, limit in rdma.items():
        parts = [device]
        if limit.hca_handles is not None:
            parts.append(f"hca_handle={limit.hca_handles}")
        if limit.hca_objects is not None:
            parts.append(f"hca_object={limit.hca_objects}")
        if len(parts) > 1:
            lines.append(" ".join(parts))
    return lines


def set_rdma(directory: str, rdma: Mapping[str, LinuxRdma]) -> None:
    for line in rdma_lines(rdma):
        files.write(directory, "rdma.max", line, controller="rdma")


def set_unified(directory: str, unified: Mapping[str, str]) -> None:
    """Write the `unified` map verbatim: keys are file names, values their content."""
    validate_unified(unified)
    for key, value in unified.items():
        try:
            files.write(directory, key, value, controller=key.split(".", 1)[0])
        except PypodError as e:
            controller = key.split(".", 1)[0]
            available = (files.read_optional(directory, "cgroup.controllers") or "").split()
            if controller not in available and controller != "cgroup":
                raise NotSupported(
                    f'cgroup: unified resource "{key}" cannot be set: controller '
                    f'"{controller}" not available in {directory}'
                ) from e
            raise


def validate_unified(unified: Mapping[str, str]) -> None:
    for key in unified:
        if "/" in key or key.startswith(".") or not key:
            raise InvalidArgument(f'cgroup: unified resource "{key}" must be a plain file name')
        if "." not in key:
            raise InvalidArgument(
                f'cgroup: unified resource "{key}" must be in the form CONTROLLER.PARAMETER'
            )


def set_network(res: LinuxResources) -> None:
    net = res.network
    if net is not None and (net.class_id is not None or net.priorities):
        raise NotSupported(
            "cgroup: network class id and priorities (net_cls, net_prio) need cgroup v1"
        )


def cgroup_type_allows(directory: str, res: LinuxResources) -> None:
    """runc's check: a threaded or invalid cgroup cannot take domain controllers."""
    kind = (files.read_optional(directory, "cgroup.type") or "domain").strip()
    if kind in ("domain", ""):
        return
    domain = {"memory", "io", "hugetlb", "rdma"} & set(needed_controllers(res))
    cpu = res.cpu
    if cpu is not None and (cpu.shares or cpu.quota or cpu.period):
        domain.add("cpu")
    if domain:
        raise InvalidState(
            f"cgroup: cannot use the {', '.join(sorted(domain))} controller(s) in {directory}: "
            f'it is in "{kind}" mode (a parent cgroup holds processes?)'
        )
