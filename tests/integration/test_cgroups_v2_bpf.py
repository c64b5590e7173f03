"""cgroup v2 device control for real: the eBPF filter attached to a test cgroup in the host's
cgroup2 hierarchy (/sys/fs/cgroup/unified on a hybrid host), checked by what a process moved
into that cgroup can open.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from pypod.linux.cgroups import manager_from_state
from pypod.linux.cgroups import paths as cgpaths
from pypod.linux.cgroups.bpf_devices import apply_device_rules, attached_programs
from pypod.linux.cgroups.devices import DeviceRule
from pypod.linux.cgroups.v2 import V2Manager
from pypod.oci.runtime_spec import LinuxDeviceCgroup, LinuxResources

pytestmark = pytest.mark.root


def _cgroup2_root() -> str | None:
    with open("/proc/self/mountinfo") as f:
        mounts = cgpaths.parse_mountinfo(f.read())
    return next((m.mountpoint for m in mounts if m.version == 2), None)


ROOT = _cgroup2_root()
if os.geteuid() != 0:
    pytest.skip("needs root to load and attach eBPF programs", allow_module_level=True)
if ROOT is None:
    pytest.skip("no cgroup2 hierarchy is mounted", allow_module_level=True)

DENY_ALL = DeviceRule(False, "a", -1, -1, "rwm")
ALLOW_ALL = DeviceRule(True, "a", -1, -1, "rwm")
NULL_R = DeviceRule(True, "c", 1, 3, "r")


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


@pytest.fixture
def cgroup() -> Iterator[str]:
    """A fresh directory in the cgroup2 hierarchy; removed (and the root's subtree_control
    restored) afterwards."""
    assert ROOT is not None
    before = set(_read(f"{ROOT}/cgroup.subtree_control").split())
    path = f"{ROOT}/pypod-test-bpf-{secrets.token_hex(4)}"
    try:
        yield path
    finally:
        for _ in range(100):
            try:
                os.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)
        for controller in set(_read(f"{ROOT}/cgroup.subtree_control").split()) - before:
            with open(f"{ROOT}/cgroup.subtree_control", "w") as f:
                f.write("-" + controller)
        assert not os.path.exists(path)


def open_errno(cgroup: str, device: str, flags: int) -> int:
    """Fork a child that moves itself into `cgroup` and opens `device`; its errno (0: opened)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 255
        try:
            os.close(r)
            with open(f"{cgroup}/cgroup.procs", "w") as f:
                f.write(str(os.getpid()))
            try:
                os.close(os.open(device, flags))
                code = 0
            except OSError as e:
                code = e.errno or 255
            os.write(w, str(code).encode())
        finally:
            os._exit(0)
    os.close(w)
    try:
        out = os.read(r, 16)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    return int(out)


def _program_count(cgroup: str) -> int:
    fd = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return len(attached_programs(fd))
    finally:
        os.close(fd)


def test_allow_list_is_enforced(cgroup: str) -> None:
    os.mkdir(cgroup)
    apply_device_rules(cgroup, [DENY_ALL, NULL_R])
    assert open_errno(cgroup, "/dev/null", os.O_RDONLY) == 0
    assert open_errno(cgroup, "/dev/null", os.O_WRONLY) == errno.EPERM
    assert open_errno(cgroup, "/dev/zero", os.O_RDONLY) == errno.EPERM
    # outside the cgroup nothing changed
    os.close(os.open("/dev/null", os.O_WRONLY))


def test_update_replaces_the_program(cgroup: str) -> None:
    os.mkdir(cgroup)
    apply_device_rules(cgroup, [DENY_ALL, NULL_R])
    apply_device_rules(cgroup, [DENY_ALL, DeviceRule(True, "c", 1, 3, "rw")])
    assert _program_count(cgroup) == 1
    assert open_errno(cgroup, "/dev/null", os.O_WRONLY) == 0
    apply_device_rules(cgroup, [ALLOW_ALL])
    assert _program_count(cgroup) == 1
    assert open_errno(cgroup, "/dev/zero", os.O_RDWR) == 0


def test_deny_exception_refuses_any_overlap(cgroup: str) -> None:
    os.mkdir(cgroup)
    apply_device_rules(cgroup, [ALLOW_ALL, DeviceRule(False, "c", 1, 3, "w")])
    assert open_errno(cgroup, "/dev/null", os.O_RDONLY) == 0
    assert open_errno(cgroup, "/dev/null", os.O_WRONLY) == errno.EPERM
    assert open_errno(cgroup, "/dev/null", os.O_RDWR) == errno.EPERM
    assert open_errno(cgroup, "/dev/zero", os.O_RDWR) == 0


def test_manager_applies_and_updates_devices_across_processes(cgroup: str) -> None:
    assert ROOT is not None
    m = V2Manager(cgroup, root=ROOT)
    m.create()
    m.set_resources(
        LinuxResources(
            devices=(
                LinuxDeviceCgroup(allow=False, access="rwm"),
                LinuxDeviceCgroup(allow=True, type="c", major=1, minor=3, access="rwm"),
            )
        )
    )
    assert open_errno(cgroup, "/dev/null", os.O_WRONLY) == 0
    assert open_errno(cgroup, "/dev/zero", os.O_RDONLY) == errno.EPERM
    # `pypod-runtime update` runs in another process: the attached program is found there
    script = (
        "import json, sys\n"
        "from pypod.linux.cgroups import manager_from_state\n"
        "from pypod.oci.runtime_spec import LinuxDeviceCgroup, LinuxResources\n"
        "m = manager_from_state(json.load(sys.stdin))\n"
        "m.update(LinuxResources(devices=(LinuxDeviceCgroup(allow=False),"
        " LinuxDeviceCgroup(allow=True, type='c', major=1, minor=5, access='r'))))\n"
    )
    subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(m.to_state()).encode(),
        check=True,
        timeout=60,
    )
    assert _program_count(cgroup) == 1
    assert open_errno(cgroup, "/dev/zero", os.O_RDONLY) == 0
    assert open_errno(cgroup, "/dev/null", os.O_WRONLY) == errno.EPERM
    manager_from_state(m.to_state()).destroy()
    assert not os.path.exists(cgroup)
