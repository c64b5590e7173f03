"""Unit conversions between OCI resources and cgroup values (runc 1.1's formulas)."""

from __future__ import annotations

import pytest

from pypod.errors import InvalidArgument
from pypod.linux.cgroups import convert


@pytest.mark.parametrize(
    ("shares", "weight"),
    [
        (0, 0),  # unset stays unset
        (2, 1),  # minimum
        (1024, 39),  # the v1 default
        (512, 20),
        (262144, 10000),  # maximum
        (1, 1),  # below the v1 range: clamped
        (1_000_000, 10000),  # above it
    ],
)
def test_cpu_shares_to_weight(shares: int, weight: int) -> None:
    assert convert.cpu_shares_to_weight(shares) == weight


@pytest.mark.parametrize(
    ("blkio", "io"),
    [(0, 0), (10, 1), (500, 4950), (1000, 10000), (100, 910), (5, 1), (5000, 10000)],
)
def test_blkio_weight_to_io_weight(blkio: int, io: int) -> None:
    assert convert.blkio_weight_to_io_weight(blkio) == io


@pytest.mark.parametrize(
    ("swap", "memory", "expected"),
    [
        (0, 0, 0),  # nothing set
        (0, 1000, 0),  # memory only: swap untouched
        (-1, 1000, -1),  # unlimited swap
        (0, -1, -1),  # unlimited memory, swap not given: both unlimited
        (3000, 1000, 2000),  # memory+swap -> swap alone
        (1000, 1000, 0),  # memory+swap == memory: no swap
        (5000, -1, 5000),  # unlimited memory: swap as is
    ],
)
def test_memory_swap_to_v2(swap: int, memory: int, expected: int) -> None:
    assert convert.memory_swap_to_v2(swap, memory) == expected


@pytest.mark.parametrize(
    ("swap", "memory", "message"),
    [
        (2000, 0, "without a memory limit"),
        (500, 1000, "must be >= the memory limit"),
        (2000, -5, "invalid memory limit"),
    ],
)
def test_memory_swap_to_v2_errors(swap: int, memory: int, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        convert.memory_swap_to_v2(swap, memory)


def test_v2_limit() -> None:
    assert convert.v2_limit(None) is None
    assert convert.v2_limit(0) is None
    assert convert.v2_limit(-1) == "max"
    assert convert.v2_limit(4096) == "4096"
    with pytest.raises(InvalidArgument):
        convert.v2_limit(-2)


@pytest.mark.parametrize(("limit", "value"), [(100, "100"), (1, "1"), (0, "max"), (-1, "max")])
def test_pids_limit(limit: int, value: str) -> None:
    assert convert.pids_limit(limit) == value


@pytest.mark.parametrize(
    ("quota", "period", "value"),
    [
        (None, None, None),
        (0, 0, None),
        (50000, 100000, "50000 100000"),
        (50000, None, "50000 100000"),  # kernel default period
        (-1, 250000, "max 250000"),
        (None, 200000, "max 200000"),
    ],
)
def test_cpu_max(quota: int | None, period: int | None, value: str | None) -> None:
    assert convert.cpu_max(quota, period) == value


def test_device_line() -> None:
    assert convert.device_line(8, 0, 500) == "8:0 500"
    assert convert.device_line(8, 16, "rbps=1048576") == "8:16 rbps=1048576"


def test_hugetlb_sizes() -> None:
    assert convert.hugetlb_size("2MB") == "2MB"
    assert convert.hugetlb_size("1GB") == "1GB"
    assert convert.hugetlb_size("64KB") == "64KB"
    for bad in ("2M", "MB", "2mb", "../x"):
        with pytest.raises(InvalidArgument, match="hugepage size"):
            convert.hugetlb_size(bad)
    assert convert.hugepage_dir_to_size("hugepages-2048kB") == "2MB"
    assert convert.hugepage_dir_to_size("hugepages-1048576kB") == "1GB"
    assert convert.hugepage_dir_to_size("hugepages-64kB") == "64KB"
