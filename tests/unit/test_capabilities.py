"""Capability names, masks and /proc/<pid>/status parsing (no privileges needed)."""

from __future__ import annotations

import logging
import os

import pytest

from pypod.errors import InvalidArgument, OSLevelError
from pypod.linux import capabilities as caps

SAMPLE_STATUS = """\
Name:\tcat
Umask:\t0022
State:\tR (running)
Pid:\t4242
Uid:\t1000\t1000\t1000\t1000
Gid:\t1000\t1000\t1000\t1000
CapInh:\t0000000000000400
CapPrm:\t0000000000000400
CapEff:\t0000000000000400
CapBnd:\t00000000a80425fb
CapAmb:\t0000000000000400
NoNewPrivs:\t1
Seccomp:\t2
Seccomp_filters:\t1
Speculation_Store_Bypass:\tthread force mitigated
Cpus_allowed_list:\t0-7
"""


def test_cap_names_cover_0_to_40_without_gaps() -> None:
    assert sorted(caps.CAP_NAMES.values()) == list(range(41))
    assert caps.CAP_NAMES["CAP_CHOWN"] == 0
    assert caps.CAP_NAMES["CAP_NET_BIND_SERVICE"] == 10
    assert caps.CAP_NAMES["CAP_SYS_ADMIN"] == 21
    assert caps.CAP_NAMES["CAP_CHECKPOINT_RESTORE"] == 40
    assert all(name.startswith("CAP_") for name in caps.CAP_NAMES)


def test_mask_of_names() -> None:
    assert caps.to_mask([], kernel_last_cap=40) == 0
    assert caps.to_mask(["CAP_CHOWN", "CAP_KILL"], kernel_last_cap=40) == 0b100001
    assert caps.to_mask(["CAP_KILL", "CAP_KILL"], kernel_last_cap=40) == 1 << 5
    assert caps.to_mask(["CAP_BPF"], kernel_last_cap=40) == 1 << 39


def test_names_mask_round_trip() -> None:
    every = tuple(caps.CAP_NAMES)
    mask = caps.to_mask(every, kernel_last_cap=40)
    assert mask == (1 << 41) - 1
    assert caps.to_names(mask) == every
    some = ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_MAC_ADMIN")
    assert set(caps.to_names(caps.to_mask(some, kernel_last_cap=40))) == set(some)
    # the docker default set, in /proc/<pid>/status form
    docker = (
        "CAP_CHOWN CAP_DAC_OVERRIDE CAP_FSETID CAP_FOWNER CAP_MKNOD CAP_NET_RAW CAP_SETGID "
        "CAP_SETUID CAP_SETFCAP CAP_SETPCAP CAP_NET_BIND_SERVICE CAP_SYS_CHROOT CAP_KILL "
        "CAP_AUDIT_WRITE"
    ).split()
    assert caps.to_mask(docker, kernel_last_cap=40) == 0xA80425FB


def test_unknown_capability_is_an_error() -> None:
    with pytest.raises(InvalidArgument, match="unknown capability: CAP_BOGUS"):
        caps.to_mask(["CAP_CHOWN", "CAP_BOGUS"], kernel_last_cap=40)
    with pytest.raises(InvalidArgument, match="chown"):
        caps.to_mask(["chown"], kernel_last_cap=40)


def test_capability_above_kernel_last_cap_is_dropped_with_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="pypod.linux.capabilities"):
        mask = caps.to_mask(["CAP_CHOWN", "CAP_PERFMON", "CAP_BPF"], kernel_last_cap=37)
    assert mask == 1
    assert "CAP_BPF" in caplog.text and "CAP_PERFMON" in caplog.text


def test_parse_status_sample() -> None:
    got = caps.parse_status(SAMPLE_STATUS)
    assert got == {
        "CapInh": 0x400,
        "CapPrm": 0x400,
        "CapEff": 0x400,
        "CapBnd": 0xA80425FB,
        "CapAmb": 0x400,
        "NoNewPrivs": 1,
        "Seccomp": 2,
    }
    assert caps.to_names(got["CapAmb"]) == ("CAP_NET_BIND_SERVICE",)


def test_parse_status_missing_lines_are_missing_keys() -> None:
    assert caps.parse_status("Name:\tsh\nCapEff:\t0000000000000000\n") == {"CapEff": 0}


def test_parse_status_rejects_garbage() -> None:
    with pytest.raises(InvalidArgument):
        caps.parse_status("CapEff:\tzzzz\n")


def test_read_status_and_capget_agree_on_self() -> None:
    status = caps.read_status()
    assert set(status) >= {"CapInh", "CapPrm", "CapEff", "CapBnd", "NoNewPrivs", "Seccomp"}
    now = caps.capget()
    assert now.effective == status["CapEff"]
    assert now.permitted == status["CapPrm"]
    assert now.inheritable == status["CapInh"]
    assert caps.read_status(os.getpid())["CapEff"] == status["CapEff"]


def test_read_status_of_missing_process() -> None:
    with pytest.raises(OSLevelError) as info:
        caps.read_status(2**22 + 12345)
    assert info.value.errno == 2


def test_last_cap_matches_proc() -> None:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        assert caps.last_cap() == int(f.read())
    assert caps.last_cap() >= 36
