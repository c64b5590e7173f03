"""Unit conversions between the OCI resources (designed for cgroup v1) and the cgroup files.

Pure functions, no I/O.  The formulas are the ones runc 1.1 uses, so that a container gets the
same cgroup values from pypod-runtime as from runc.
"""

from __future__ import annotations

from pypod.errors import InvalidArgument

#: cgroup v1 cpu.shares range (kernel MIN_SHARES, MAX_SHARES = 1 << 18)
MIN_SHARES = 2
MAX_SHARES = 262144
#: cgroup v2 cpu.weight and io.weight range
MIN_WEIGHT = 1
MAX_WEIGHT = 10000
#: cgroup v1 blkio.weight range
MIN_BLKIO_WEIGHT = 10
MAX_BLKIO_WEIGHT = 1000
#: default cpu.max period (Documentation/admin-guide/cgroup-v2.rst)
DEFAULT_CPU_PERIOD = 100000


def cpu_shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000]: y = 1 + ((x - 2) * 9999) / 262142.

    0 means "unset" and stays 0.  Values outside the v1 range are clamped first.
    """
    if shares == 0:
        return 0
    shares = min(max(shares, MIN_SHARES), MAX_SHARES)
    return 1 + ((shares - MIN_SHARES) * 9999) // (MAX_SHARES - MIN_SHARES)


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight [10, 1000] -> io.weight [1, 10000]: y = 1 + (x - 10) * 9999 / 990.

    0 means "unset" and stays 0.
    """
    if weight == 0:
        return 0
    weight = min(max(weight, MIN_BLKIO_WEIGHT), MAX_BLKIO_WEIGHT)
    return 1 + (weight - MIN_BLKIO_WEIGHT) * 9999 // (MAX_BLKIO_WEIGHT - MIN_BLKIO_WEIGHT)


def memory_swap_to_v2(swap: int, memory: int) -> int:
    """OCI memory.swap (memory + swap, as v1's memsw) -> v2 memory.swap.max (swap only).

    0 means unset, -1 unlimited.  Follows runc's ConvertMemorySwapToCgroupV2Value.
    """
    if memory == -1 and swap == 0:
        # v1 compatibility: "memory unlimited, swap not given" means both unlimited
        return -1
    if swap in (-1, 0):
        return swap
    if memory == -1:
        return swap
    if memory == 0:
        raise InvalidArgument("cgroup: unable to set a swap limit without a memory limit")
    if memory < 0:
        raise InvalidArgument(f"cgroup: invalid memory limit {memory}")
    if swap < memory:
        raise InvalidArgument(
            f"cgroup: memory+swap limit ({swap}) must be >= the memory limit ({memory})"
        )
    return swap - memory


def v2_limit(value: int | None) -> str | None:
    """A limit for a v2 *.max/*.low/*.high file: None/0 -> not written, -1 -> "max"."""
    if value is None or value == 0:
        return None
    if value == -1:
        return "max"
    if value < 0:
        raise InvalidArgument(f"cgroup: invalid limit {value}")
    return str(value)


def pids_limit(limit: int) -> str:
    """pids.max: a positive limit as is, 0 or a negative one means no limit ("max")."""
    return str(limit) if limit > 0 else "max"


def cpu_max(quota: int | None, period: int | None) -> str | None:
    """cpu.max "$QUOTA $PERIOD" from cfs quota/period; None when neither is given.

    A quota <= 0 means unlimited ("max"); a missing period is the kernel default 100000.
    """
    if not quota and not period:
        return None
    q = str(quota) if quota is not None and quota > 0 else "max"
    p = period if period else DEFAULT_CPU_PERIOD
    return f"{q} {p}"


def device_line(major: int, minor: int, value: str | int) -> str:
    """The "MAJ:MIN VALUE" lines of blkio.*_device, io.weight and io.bfq.weight."""
    return f"{major}:{minor} {value}"


def hugetlb_size(page_size: str) -> str:
    """Validate an OCI hugepage size ("2MB", "1GB", "64KB") as used in hugetlb.<size>.* names."""
    digits = page_size.rstrip("KMGB")
    unit = page_size[len(digits) :]
    if not digits.isdigit() or unit not in ("KB", "MB", "GB"):
        raise InvalidArgument(
            f'cgroup: invalid hugepage size "{page_size}": expected a number and KB, MB or GB'
        )
    return page_size


def hugepage_dir_to_size(name: str) -> str:
    """/sys/kernel/mm/hugepages entry ("hugepages-2048kB") -> cgroup size name ("2MB")."""
    kb = int(name.removeprefix("hugepages-").removesuffix("kB"))
    for unit, factor in (("GB", 1 << 20), ("MB", 1 << 10)):
        if kb >= factor and kb % factor == 0:
            return f"{kb // factor}{unit}"
    return f"{kb}KB"
