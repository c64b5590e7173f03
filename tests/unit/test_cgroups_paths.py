"""cgroup mode detection, cgroupsPath resolution (runc's rules) and the devices emulator."""

from __future__ import annotations

import pytest

from pypod.errors import InvalidArgument, NotSupported
from pypod.linux import cgroups
from pypod.linux.cgroups import CgroupMode, detect_mode
from pypod.linux.cgroups import paths as P
from pypod.linux.cgroups.devices import DeviceRule, Emulator, normalize
from pypod.oci.runtime_spec import LinuxDeviceCgroup

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
42 31 0:39 / /sys/fs/cgroup/other rw,relatime - cgroup cgroup rw,name=other
"""
LEGACY = "\n".join(HYBRID.splitlines()[:7] + HYBRID.splitlines()[8:])
UNIFIED = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
NONE = "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"


def test_detect_mode() -> None:
    assert detect_mode(HYBRID) == CgroupMode.HYBRID
    assert detect_mode(LEGACY) == CgroupMode.LEGACY
    assert detect_mode(UNIFIED) == CgroupMode.UNIFIED
    named_only = (
        UNIFIED + "40 30 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n"
    )
    assert detect_mode(named_only) == CgroupMode.UNIFIED
    with pytest.raises(NotSupported, match="no cgroup filesystem"):
        detect_mode(NONE)


def test_parse_mountinfo() -> None:
    mounts = P.parse_mountinfo(HYBRID)
    cpu = mounts[0]
    assert (cpu.mountpoint, cpu.version, cpu.controllers) == (
        "/sys/fs/cgroup/cpu,cpuacct",
        1,
        ("cpu", "cpuacct"),
    )
    assert mounts[5].controllers == ("name=systemd",)  # "xattr" is not a controller
    assert (mounts[6].version, mounts[6].controllers) == (2, ())
    escaped = P.parse_mountinfo(r"1 2 0:3 / /a\040b rw - cgroup2 cgroup2 rw")
    assert escaped[0].mountpoint == "/a b"


def test_parse_proc_cgroup() -> None:
    text = "12:cpu,cpuacct:/user.slice\n4:memory:/pod/x\n1:name=systemd:/init.scope\n0::/a/b\n"
    assert P.parse_proc_cgroup(text) == {
        "cpu": "/user.slice",
        "cpuacct": "/user.slice",
        "memory": "/pod/x",
        "name=systemd": "/init.scope",
        "": "/a/b",
    }


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("", ""),
        ("/a/b/", "/a/b"),
        ("/a/../../b", "/b"),
        ("a/./b", "a/b"),
        ("../../x", "x"),  # a relative path cannot climb above its base
        ("a/../../../y/z", "y/z"),
        ("//a", "/a"),
    ],
)
def test_clean_path(raw: str, clean: str) -> None:
    assert P.clean_path(raw) == clean


def test_inner_path() -> None:
    assert P.inner_path("/machine/ctr", "id") == "/machine/ctr"
    assert P.inner_path("", "abc123") == "abc123"  # runc: Name = container id, relative
    assert P.inner_path("pods/x", "id") == "pods/x"
    for root in ("/", "/..", "."):
        with pytest.raises(InvalidArgument, match="root cgroup"):
            P.inner_path(root, "id")


def test_v1_paths_absolute() -> None:
    dirs = P.v1_paths(P.parse_mountinfo(HYBRID), {}, "/pypod/c1")
    assert dirs == {
        "cpu": "/sys/fs/cgroup/cpu,cpuacct/pypod/c1",
        "cpuacct": "/sys/fs/cgroup/cpu,cpuacct/pypod/c1",
        "cpuset": "/sys/fs/cgroup/cpuset/pypod/c1",
        "memory": "/sys/fs/cgroup/memory/pypod/c1",
        "devices": "/sys/fs/cgroup/devices/pypod/c1",
        "freezer": "/sys/fs/cgroup/freezer/pypod/c1",
        "name=systemd": "/sys/fs/cgroup/systemd/pypod/c1",  # joined like runc
        "unified": "/sys/fs/cgroup/unified/pypod/c1",  # hybrid: the cgroup2 directory too
    }  # name=other is not joined


def test_v1_paths_relative_to_own_cgroup() -> None:
    own = {"memory": "/user/1000", "cpu": "/", "devices": "/x", "": "/session-1.scope"}
    dirs = P.v1_paths(P.parse_mountinfo(LEGACY), own, "c1")
    assert dirs["memory"] == "/sys/fs/cgroup/memory/user/1000/c1"
    assert dirs["cpu"] == "/sys/fs/cgroup/cpu,cpuacct/c1"
    assert dirs["devices"] == "/sys/fs/cgroup/devices/x/c1"
    assert dirs["cpuset"] == "/sys/fs/cgroup/cpuset/c1"  # not in the own map: its top
    assert "unified" not in dirs


def test_v1_paths_mount_root_in_cgroup_namespace() -> None:
    # a mount showing /docker/abc as its top: our /docker/abc/sub is "sub" below it
    text = "36 31 0:33 /docker/abc /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices\n"
    dirs = P.v1_paths(P.parse_mountinfo(text), {"devices": "/docker/abc/sub"}, "c1")
    assert dirs["devices"] == "/sys/fs/cgroup/devices/sub/c1"


def test_v1_paths_without_devices_controller() -> None:
    text = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    with pytest.raises(NotSupported, match="devices controller"):
        P.v1_paths(P.parse_mountinfo(text), {}, "/c1")


def test_v2_path() -> None:
    root = "/sys/fs/cgroup"
    assert P.v2_path(root, "/user.slice/s.scope", "/pods/c1") == "/sys/fs/cgroup/pods/c1"
    # relative: below the parent of our own cgroup (which holds processes itself)
    own = "/user.slice/user-1000.slice/session-1.scope"
    assert P.v2_path(root, own, "c1") == "/sys/fs/cgroup/user.slice/user-1000.slice/c1"
    assert P.v2_path(root, "/", "c1") == "/sys/fs/cgroup/c1"


# --- devices emulator -------------------------------------------------------------------------


def _spec(
    allow: bool,
    type: str = "",
    major: int | None = None,
    minor: int | None = None,
    access: str = "",
) -> LinuxDeviceCgroup:
    return LinuxDeviceCgroup(allow=allow, type=type, major=major, minor=minor, access=access)


def test_normalize() -> None:
    assert normalize(_spec(False)) == DeviceRule(False, "a", -1, -1, "rwm")
    assert normalize(_spec(True, "c", 1, 3, "wr")) == DeviceRule(True, "c", 1, 3, "rw")
    assert normalize(_spec(True, "c", 136, None, "rwm")).cgroup_string() == "c 136:* rwm"
    with pytest.raises(InvalidArgument, match="device type"):
        normalize(_spec(True, "x"))
    with pytest.raises(InvalidArgument, match="device access"):
        normalize(_spec(True, "c", 1, 3, "rwx"))


DENY_ALL = DeviceRule(False, "a", -1, -1, "rwm")
NULL = DeviceRule(True, "c", 1, 3, "rwm")
ZERO_R = DeviceRule(True, "c", 1, 5, "r")


def test_transition_from_fresh_cgroup_is_deny_all_then_allows() -> None:
    current = Emulator.from_list("a *:* rwm\n")  # a new v1 cgroup below the root
    target = Emulator.from_rules([DENY_ALL, NULL, ZERO_R])
    writes = [(r.allow, r.cgroup_string()) for r in current.transition(target)]
    assert writes == [(False, "a *:* rwm"), (True, "c 1:3 rwm"), (True, "c 1:5 r")]


def test_devices_list_lines() -> None:
    emu = Emulator.from_list("c 1:3 rwm\nb 8:* r\nc  *:5   mw\n\n")
    got = sorted(r.cgroup_string() for r in emu.exceptions())
    assert got == ["b 8:* r", "c *:5 wm", "c 1:3 rwm"] and not emu.default_allow  # canonical
    for bad in ("c 1:3", "x 1:3 rwm", "c 1-3 rwm", "c :3 rwm", "c 1:3 rwx", "c 1:3 rwm x"):
        with pytest.raises(InvalidArgument, match="unexpected devices.list line"):
            Emulator.from_list(bad + "\n")


def test_transition_without_change_writes_nothing() -> None:
    current = Emulator.from_list("c 1:3 rwm\nc 1:5 r\n")
    target = Emulator.from_rules([DENY_ALL, NULL, ZERO_R])
    assert current == target
    assert current.transition(target) == []


def test_transition_drops_and_adds_without_deny_all() -> None:
    current = Emulator.from_list("c 1:3 rwm\nc 1:5 rw\n")
    target = Emulator.from_rules([DENY_ALL, NULL, ZERO_R, DeviceRule(True, "b", 8, 0, "r")])
    writes = [(r.allow, r.cgroup_string()) for r in current.transition(target)]
    assert writes == [(False, "c 1:5 w"), (True, "b 8:0 r")]


def test_emulator_order_matters_like_v1() -> None:
    # allow, then deny part of it: the exception keeps what was not denied
    emu = Emulator.from_rules([DENY_ALL, NULL, DeviceRule(False, "c", 1, 3, "w")])
    assert [r.cgroup_string() for r in emu.exceptions()] == ["c 1:3 rm"]
    # an "a" rule resets everything before it
    emu = Emulator.from_rules([NULL, DeviceRule(True, "a", -1, -1, "rwm")])
    assert emu.default_allow and emu.exceptions() == []


def test_emulator_refuses_to_punch_holes_in_wildcards() -> None:
    wildcard = DeviceRule(True, "c", -1, -1, "rwm")
    with pytest.raises(InvalidArgument, match="punch a hole"):
        Emulator.from_rules([DENY_ALL, wildcard, DeviceRule(False, "c", 1, 3, "w")])


# --- the factory ------------------------------------------------------------------------------


def _host(monkeypatch: pytest.MonkeyPatch, mountinfo: str, own: dict[str, str]) -> None:
    monkeypatch.setattr(cgroups, "_read_mountinfo", lambda: mountinfo)
    monkeypatch.setattr(cgroups, "_read_own_cgroup", lambda: own)


def test_new_manager_unified(monkeypatch: pytest.MonkeyPatch) -> None:
    _host(monkeypatch, UNIFIED, {"": "/user.slice/user-1000.slice/session-1.scope"})
    m = cgroups.new_manager("", "abc")
    assert m.mode == CgroupMode.UNIFIED
    assert m.paths == {"unified": "/sys/fs/cgroup/user.slice/user-1000.slice/abc"}
    assert cgroups.new_manager("/pods/abc", "abc").paths == {"unified": "/sys/fs/cgroup/pods/abc"}
    state = cgroups.new_manager("/pods/abc", "abc", rootless=True).to_state()
    again = cgroups.manager_from_state(state)
    assert again.to_state() == state and again.mode == CgroupMode.UNIFIED


def test_new_manager_hybrid_and_legacy(monkeypatch: pytest.MonkeyPatch) -> None:
    _host(monkeypatch, HYBRID, {})
    m = cgroups.new_manager("/pods/abc", "abc")
    assert m.mode == CgroupMode.HYBRID
    assert m.paths["memory"] == "/sys/fs/cgroup/memory/pods/abc"
    assert m.paths["unified"] == "/sys/fs/cgroup/unified/pods/abc"
    again = cgroups.manager_from_state(m.to_state())
    assert again.paths == m.paths and again.mode == CgroupMode.HYBRID
    _host(monkeypatch, LEGACY, {})
    assert cgroups.new_manager("/pods/abc", "abc").mode == CgroupMode.LEGACY


def test_manager_from_bad_state() -> None:
    for bad in ({}, {"version": 99}, {"version": 1, "mode": "nope", "paths": {}}):
        with pytest.raises(InvalidArgument, match="cgroup state"):
            cgroups.manager_from_state(bad)


def test_saved_mode_is_the_plain_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """state.json keeps "mode" as the bare name ("hybrid", "unified"), as it always did."""
    for mountinfo, name in ((HYBRID, "hybrid"), (LEGACY, "legacy"), (UNIFIED, "unified")):
        _host(monkeypatch, mountinfo, {})
        state = cgroups.new_manager("/pods/abc", "abc").to_state()
        assert type(state["mode"]) is str and state["mode"] == name
        assert cgroups.manager_from_state({**state, "mode": name.upper().lower()}).mode == name
    assert CgroupMode.parse("hybrid") is CgroupMode.HYBRID
    with pytest.raises(ValueError, match="'Hybrid' is not a valid CgroupMode"):
        CgroupMode.parse("Hybrid")
