"""pypod.oci.runtime_spec: parse, validate and write the OCI runtime config."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pypod import OCI_RUNTIME_SPEC_VERSION
from pypod.errors import ConfigError, NotFound
from pypod.oci.runtime_defaults import default_spec
from pypod.oci.runtime_spec import (
    CAPABILITIES,
    Linux,
    LinuxMemory,
    LinuxNamespace,
    LinuxResources,
    LinuxTimeOffset,
    POSIXRlimit,
    Process,
    Root,
    Spec,
    State,
    User,
    load_spec,
    parse_process,
    parse_spec,
    parse_state,
    spec_to_dict,
)

ALL_CAPS = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHECKPOINT_RESTORE"]
IDMAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def full_spec_dict() -> dict[str, Any]:
    """A valid config.json that sets every member, written in runc's key order."""
    hook = {"path": "/usr/libexec/hook", "args": ["hook", "x"], "env": ["A=1"], "timeout": 5}
    throttle = [{"major": 8, "minor": 0, "rate": 1048576}]
    spec = {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": True,
            "consoleSize": {"height": 24, "width": 80},
            "user": {
                "uid": 1000,
                "gid": 1000,
                "umask": 18,
                "additionalGids": [5, 10],
                "username": "app",
            },
            "args": ["/bin/sh", "-c", "echo hi"],
            "commandLine": "sh -c 'echo hi'",
            "env": ["PATH=/usr/bin:/bin", "TERM=xterm"],
            "cwd": "/home/app",
            "capabilities": {
                "bounding": ALL_CAPS,
                "effective": ALL_CAPS,
                "inheritable": ["CAP_CHOWN"],
                "permitted": ALL_CAPS,
                "ambient": ["CAP_KILL"],
            },
            "rlimits": [
                {"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 512},
                {"type": "RLIMIT_CORE", "hard": 2**64 - 1, "soft": 0},
            ],
            "noNewPrivileges": True,
            "apparmorProfile": "pypod-default",
            "oomScoreAdj": 0,
            "selinuxLabel": "system_u:system_r:container_t:s0",
            "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4},
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "box",
        "domainname": "example.org",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/data",
                "type": "bind",
                "source": "/srv/data",
                "options": ["rbind", "ro"],
                "uidMappings": IDMAP,
                "gidMappings": IDMAP,
            },
        ],
        "hooks": {
            "prestart": [hook],
            "createRuntime": [{"path": "/usr/libexec/create-runtime"}],
            "createContainer": [hook, hook],
            "startContainer": [hook],
            "poststart": [hook],
            "poststop": [{"path": "/bin/true"}],
        },
        "annotations": {"a.b": "1", "org.example/z": "<&>"},
        "linux": {
            "uidMappings": IDMAP,
            "gidMappings": IDMAP,
            "sysctl": {"net.ipv4.ip_forward": "1"},
            "resources": {
                "devices": [
                    {"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                ],
                "memory": {
                    "limit": 0,
                    "reservation": 1,
                    "swap": -1,
                    "kernel": 2,
                    "kernelTCP": 3,
                    "swappiness": 0,
                    "disableOOMKiller": False,
                    "useHierarchy": True,
                    "checkBeforeUpdate": True,
                },
                "cpu": {
                    "shares": 1024,
                    "quota": -1,
                    "burst": 0,
                    "period": 100000,
                    "realtimeRuntime": 950000,
                    "realtimePeriod": 1000000,
                    "cpus": "0-3",
                    "mems": "0",
                    "idle": 0,
                },
                "pids": {"limit": 0},
                "blockIO": {
                    "weight": 500,
                    "leafWeight": 300,
                    "weightDevice": [
                        {"major": 8, "minor": 0, "weight": 500, "leafWeight": 300},
                        {"major": 8, "minor": 16},
                    ],
                    "throttleReadBpsDevice": throttle,
                    "throttleWriteBpsDevice": throttle,
                    "throttleReadIOPSDevice": throttle,
                    "throttleWriteIOPSDevice": throttle,
                },
                "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
                "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
                "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}, "mlx5_2": {}},
                "unified": {"io.weight": "default 100", "memory.high": "max"},
            },
            "cgroupsPath": "/pypod/box",
            "namespaces": [
                {"type": "pid"},
                {"type": "network", "path": "/var/run/netns/box"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
                {"type": "user"},
                {"type": "cgroup"},
                {"type": "time"},
            ],
            "devices": [
                {
                    "path": "/dev/fuse",
                    "type": "c",
                    "major": 10,
                    "minor": 229,
                    "fileMode": 438,
                    "uid": 0,
                    "gid": 0,
                },
                {"path": "/dev/fifo", "type": "p", "major": 0, "minor": 0},
            ],
            "seccomp": {
                "defaultAction": "SCMP_ACT_ERRNO",
                "defaultErrnoRet": 1,
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                "flags": ["SECCOMP_FILTER_FLAG_LOG"],
                "listenerPath": "/run/seccomp.sock",
                "listenerMetadata": "meta",
                "syscalls": [
                    {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                    {
                        "names": ["personality"],
                        "action": "SCMP_ACT_ERRNO",
                        "errnoRet": 1,
                        "args": [
                            {"index": 0, "value": 255, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ"},
                            {"index": 1, "value": 0, "op": "SCMP_CMP_EQ"},
                        ],
                    },
                ],
            },
            "rootfsPropagation": "rslave",
            "maskedPaths": ["/proc/kcore", "/sys/firmware"],
            "readonlyPaths": ["/proc/sys"],
            "mountLabel": "system_u:object_r:container_file_t:s0",
            "personality": {"domain": "LINUX32", "flags": ["x"]},
            "timeOffsets": {"boottime": {"secs": 1, "nanosecs": 2}, "monotonic": {"secs": -5}},
        },
    }
    copied: dict[str, Any] = json.loads(json.dumps(spec))  # no shared lists: tests mutate it
    return copied


# --------------------------------------------------------------------------- round trips


def test_full_spec_round_trips_with_runc_key_order() -> None:
    data = full_spec_dict()
    spec = parse_spec(data)
    written = spec_to_dict(spec)
    # equal including key order: compare the serialised text
    assert json.dumps(written) == json.dumps(data)
    assert parse_spec(written) == spec


@pytest.mark.parametrize("rootless", [False, True], ids=["rootful", "rootless"])
def test_runc_default_spec_round_trips(rootless: bool) -> None:
    data = default_spec(rootless=rootless, uid=1000, gid=1000)
    spec = parse_spec(data)
    assert json.dumps(spec_to_dict(spec)) == json.dumps(data)
    assert parse_spec(spec_to_dict(spec)) == spec


def test_parsed_values_are_typed() -> None:
    spec = parse_spec(full_spec_dict())
    assert spec.process is not None and spec.linux is not None
    assert spec.process.rlimits[1] == POSIXRlimit(type="RLIMIT_CORE", hard=2**64 - 1, soft=0)
    assert spec.process.user.additional_gids == (5, 10)
    assert spec.process.io_priority is not None and spec.process.io_priority.class_ == (
        "IOPRIO_CLASS_BE"
    )
    assert spec.linux.namespaces[1] == LinuxNamespace(type="network", path="/var/run/netns/box")
    assert spec.linux.time_offsets["monotonic"] == LinuxTimeOffset(secs=-5)
    resources = spec.linux.resources
    assert resources is not None and resources.block_io is not None
    assert resources.block_io.throttle_read_iops_device[0].rate == 1048576
    assert resources.rdma["mlx5_2"].hca_handles is None


def test_absent_and_zero_stay_distinct() -> None:
    data = full_spec_dict()
    spec = parse_spec(data)
    assert spec.process is not None and spec.linux is not None
    assert spec.linux.resources is not None
    assert spec.linux.resources.memory == LinuxMemory(
        limit=0,
        reservation=1,
        swap=-1,
        kernel=2,
        kernel_tcp=3,
        swappiness=0,
        disable_oom_killer=False,
        use_hierarchy=True,
        check_before_update=True,
    )
    assert spec.process.oom_score_adj == 0
    del data["process"]["oomScoreAdj"], data["process"]["user"]["umask"]
    data["linux"]["resources"]["memory"] = {}
    spec = parse_spec(data)
    assert spec.process is not None and spec.linux is not None
    assert spec.process.oom_score_adj is None
    assert spec.process.user.umask is None
    assert spec.linux.resources is not None
    assert spec.linux.resources.memory == LinuxMemory()
    written = spec_to_dict(spec)
    assert "oomScoreAdj" not in written["process"]
    assert written["linux"]["resources"]["memory"] == {}


def test_spec_to_dict_omits_empty_members_like_go_omitempty() -> None:
    spec = Spec(
        process=Process(args=("sh",), user=User(umask=0)),
        root=Root(path="rootfs"),
        linux=Linux(resources=LinuxResources(), namespaces=(LinuxNamespace(type="pid"),)),
    )
    assert spec_to_dict(spec) == {
        "ociVersion": OCI_RUNTIME_SPEC_VERSION,
        "process": {"user": {"uid": 0, "gid": 0, "umask": 0}, "args": ["sh"], "cwd": "/"},
        "root": {"path": "rootfs"},
        "linux": {"resources": {}, "namespaces": [{"type": "pid"}]},
    }


def test_spec_to_dict_sorts_maps_as_go_does() -> None:
    data = full_spec_dict()
    data["annotations"] = {"z": "1", "a": "2", "m": "3"}
    assert list(spec_to_dict(parse_spec(data))["annotations"]) == ["a", "m", "z"]


def test_unknown_keys_are_ignored() -> None:
    data = full_spec_dict()
    data["vm"] = {"hypervisor": {"path": "/usr/bin/qemu"}}
    data["process"]["scheduler"] = {"policy": "SCHED_OTHER"}
    data["linux"]["intelRdt"] = {"closID": "x"}
    data["linux"]["namespaces"][0]["futureKey"] = 1
    assert parse_spec(data) == parse_spec(full_spec_dict())


def test_null_means_absent_as_in_go() -> None:
    data = full_spec_dict()
    data["hooks"] = None
    data["mounts"] = None
    data["process"]["oomScoreAdj"] = None
    spec = parse_spec(data)
    assert spec.hooks is None and spec.mounts == ()
    assert spec.process is not None and spec.process.oom_score_adj is None


def test_minimal_spec() -> None:
    spec = parse_spec({"ociVersion": "1.0.0", "root": {"path": "/srv/root"}})
    assert spec == Spec(oci_version="1.0.0", root=Root(path="/srv/root"))
    assert spec.process is None and spec.linux is None and spec.annotations == {}


def test_parse_process_uses_keys_relative_to_the_document() -> None:
    process = parse_process({"args": ["ls"], "cwd": "/"})
    assert process == Process(args=("ls",), cwd="/")
    with pytest.raises(ConfigError) as info:
        parse_process({"args": ["ls"], "cwd": "tmp"}, source="p.json")
    assert (info.value.path, info.value.key) == ("p.json", "cwd")


def test_capability_table_ends_with_checkpoint_restore() -> None:
    assert len(CAPABILITIES) == 41
    assert CAPABILITIES[21] == "CAP_SYS_ADMIN"
    assert CAPABILITIES[40] == "CAP_CHECKPOINT_RESTORE"


# --------------------------------------------------------------------------- validation

DELETE = object()


def at(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    """A mutation that sets (or deletes, with DELETE) the member at a dotted path."""

    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        elif value is DELETE:
            del node[last]
        else:
            node[last] = value

    return mutate


def user_namespace_only(data: dict[str, Any]) -> None:
    data["linux"]["namespaces"] = [{"type": "user"}]


def no_user_namespace(data: dict[str, Any]) -> None:
    data["linux"]["namespaces"] = [{"type": "pid"}]


NAMESPACES = "cgroup, ipc, mount, network, pid, time, user, uts"
ACTIONS = (
    "SCMP_ACT_KILL, SCMP_ACT_KILL_PROCESS, SCMP_ACT_KILL_THREAD, SCMP_ACT_TRAP, SCMP_ACT_ERRNO, "
    "SCMP_ACT_TRACE, SCMP_ACT_ALLOW, SCMP_ACT_LOG, SCMP_ACT_NOTIFY"
)
OPERATORS = (
    "SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_EQ, SCMP_CMP_GE, SCMP_CMP_GT, "
    "SCMP_CMP_MASKED_EQ"
)
RLIMITS = (
    "RLIMIT_AS, RLIMIT_CORE, RLIMIT_CPU, RLIMIT_DATA, RLIMIT_FSIZE, RLIMIT_LOCKS, "
    "RLIMIT_MEMLOCK, RLIMIT_MSGQUEUE, RLIMIT_NICE, RLIMIT_NOFILE, RLIMIT_NPROC, RLIMIT_RSS, "
    "RLIMIT_RTPRIO, RLIMIT_RTTIME, RLIMIT_SIGPENDING, RLIMIT_STACK"
)
U32 = "must be an integer between 0 and 4294967295"

# (id, mutation, key, message)
INVALID: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    # types
    ("string-type", at("hostname", 5), "hostname", "must be a string, got number 5"),
    (
        "bool-type",
        at("process.terminal", 1),
        "process.terminal",
        "must be true or false, got number 1",
    ),
    ("bool-is-not-int", at("process.user.uid", True), "process.user.uid", f"{U32}, got true"),
    (
        "float-is-not-int",
        at("process.rlimits.0.hard", 1.0),
        "process.rlimits[0].hard",
        "must be an integer between 0 and 18446744073709551615, got number 1.0",
    ),
    (
        "string-is-not-int",
        at("linux.resources.pids.limit", "10"),
        "linux.resources.pids.limit",
        'must be an integer between -9223372036854775808 and 9223372036854775807, got string "10"',
    ),
    (
        "array-type",
        at("process.env", "PATH=/bin"),
        "process.env",
        'must be an array, got string "PATH=/bin"',
    ),
    ("object-type", at("process", ["sh"]), "process", "must be a JSON object, got an array"),
    (
        "array-item-type",
        at("process.args.1", 3),
        "process.args[1]",
        "must be a string, got number 3",
    ),
    ("map-type", at("annotations", ["a"]), "annotations", "must be an object, got an array"),
    (
        "map-value-type",
        at("annotations", {"x": 1}),
        'annotations["x"]',
        "must be a string, got number 1",
    ),
    # required members
    ("ociVersion-missing", at("ociVersion", DELETE), "ociVersion", "is required but missing"),
    (
        "ociVersion-empty",
        at("ociVersion", ""),
        "ociVersion",
        f"must not be empty; this runtime writes {OCI_RUNTIME_SPEC_VERSION}",
    ),
    (
        "root-missing",
        at("root", DELETE),
        "root",
        'is required but missing; give at least {"path": "rootfs"}',
    ),
    ("root-path-missing", at("root.path", DELETE), "root.path", "is required but missing"),
    (
        "root-path-empty",
        at("root.path", ""),
        "root.path",
        "must not be empty; give the root filesystem directory (e.g. rootfs)",
    ),
    (
        "idmap-size-missing",
        at("linux.uidMappings.0", {"containerID": 0, "hostID": 1}),
        "linux.uidMappings[0].size",
        "is required but missing",
    ),
    # process
    (
        "args-empty",
        at("process.args", []),
        "process.args",
        "must not be empty; give the program to run and its arguments",
    ),
    (
        "args-missing",
        at("process.args", DELETE),
        "process.args",
        "must not be empty; give the program to run and its arguments",
    ),
    ("cwd-missing", at("process.cwd", DELETE), "process.cwd", "is required but missing"),
    (
        "cwd-relative",
        at("process.cwd", "home"),
        "process.cwd",
        'working directory "home" is not an absolute path; use e.g. /',
    ),
    ("uid-negative", at("process.user.uid", -1), "process.user.uid", f"{U32}, got number -1"),
    ("gid-negative", at("process.user.gid", -1), "process.user.gid", f"{U32}, got number -1"),
    (
        "uid-too-large",
        at("process.user.uid", 2**32),
        "process.user.uid",
        f"{U32}, got number 4294967296",
    ),
    (
        "rlimit-type",
        at("process.rlimits.0.type", "RLIMIT_NOFILES"),
        "process.rlimits[0].type",
        'unknown rlimit type "RLIMIT_NOFILES" (did you mean RLIMIT_NOFILE?); '
        f"expected one of {RLIMITS}",
    ),
    (
        "rlimit-soft-above-hard",
        at("process.rlimits.0.soft", 2048),
        "process.rlimits[0].soft",
        "soft limit 2048 is above the hard limit 1024 for RLIMIT_NOFILE; "
        "the soft limit must not exceed the hard limit",
    ),
    (
        "rlimit-duplicate",
        at("process.rlimits.1.type", "RLIMIT_NOFILE"),
        "process.rlimits[1].type",
        'duplicate rlimit type "RLIMIT_NOFILE"; each type may appear once',
    ),
    (
        "capability",
        at("process.capabilities.bounding.1", "CAP_KILLL"),
        "process.capabilities.bounding[1]",
        'unknown capability "CAP_KILLL" (did you mean CAP_KILL?); '
        f"expected one of {', '.join(CAPABILITIES)}",
    ),
    (
        "capability-lowercase",
        at("process.capabilities.ambient.0", "cap_kill"),
        "process.capabilities.ambient[0]",
        'unknown capability "cap_kill" (did you mean CAP_KILL?); '
        f"expected one of {', '.join(CAPABILITIES)}",
    ),
    (
        "io-priority",
        at("process.ioPriority.priority", 8),
        "process.ioPriority.priority",
        "I/O priority 8 is out of range; expected 0 to 7",
    ),
    # linux: namespaces and id mappings
    (
        "namespace-type",
        at("linux.namespaces.0.type", "pidd"),
        "linux.namespaces[0].type",
        f'unknown namespace type "pidd" (did you mean pid?); expected one of {NAMESPACES}',
    ),
    (
        "namespace-duplicate",
        at("linux.namespaces.2.type", "pid"),
        "linux.namespaces[2].type",
        'duplicate namespace type "pid"; each type may appear once',
    ),
    (
        "namespace-path-relative",
        at("linux.namespaces.1.path", "netns/box"),
        "linux.namespaces[1].path",
        'namespace path "netns/box" is not an absolute path; it must start with /',
    ),
    (
        "userns-without-uid-mappings",
        at("linux.uidMappings", []),
        "linux.uidMappings",
        "user namespace enabled, but no uid mappings found; add linux.uidMappings "
        "or give the user namespace a path to join",
    ),
    (
        "userns-without-gid-mappings",
        at("linux.gidMappings", DELETE),
        "linux.gidMappings",
        "user namespace enabled, but no gid mappings found; add linux.gidMappings "
        "or give the user namespace a path to join",
    ),
    (
        "mappings-without-userns",
        no_user_namespace,
        "linux.uidMappings",
        'uid mappings are given, but there is no user namespace; add {"type": "user"} to '
        "linux.namespaces or remove the mappings",
    ),
    # mounts, devices, hooks
    (
        "mount-destination-empty",
        at("mounts.1.destination", ""),
        "mounts[1].destination",
        "must not be empty; give the absolute path inside the container",
    ),
    (
        "mount-destination-missing",
        at("mounts.0.destination", DELETE),
        "mounts[0].destination",
        "is required but missing",
    ),
    (
        "device-type",
        at("linux.devices.0.type", "x"),
        "linux.devices[0].type",
        'unknown device type "x"; expected one of c, b, u, p',
    ),
    (
        "device-path-relative",
        at("linux.devices.0.path", "dev/fuse"),
        "linux.devices[0].path",
        'device path "dev/fuse" is not an absolute path; it must start with /',
    ),
    (
        "device-cgroup-access",
        at("linux.resources.devices.1.access", "rwx"),
        "linux.resources.devices[1].access",
        'unknown device access "rwx"; use a combination of r, w, m',
    ),
    (
        "device-cgroup-type",
        at("linux.resources.devices.1.type", "p"),
        "linux.resources.devices[1].type",
        'unknown device cgroup type "p"; expected one of a, b, c',
    ),
    (
        "hook-path-relative",
        at("hooks.poststop.0.path", "bin/true"),
        "hooks.poststop[0].path",
        'hook path "bin/true" is not an absolute path; it must start with /',
    ),
    (
        "hook-path-empty",
        at("hooks.poststop.0.path", ""),
        "hooks.poststop[0].path",
        "hook path must not be empty; give an absolute path",
    ),
    (
        "hook-timeout",
        at("hooks.prestart.0.timeout", 0),
        "hooks.prestart[0].timeout",
        "hook timeout must be greater than zero seconds, got 0",
    ),
    # seccomp
    (
        "seccomp-default-action",
        at("linux.seccomp.defaultAction", "SCMP_ACT_DENY"),
        "linux.seccomp.defaultAction",
        f'unknown seccomp action "SCMP_ACT_DENY"; expected one of {ACTIONS}',
    ),
    (
        "seccomp-default-action-missing",
        at("linux.seccomp.defaultAction", DELETE),
        "linux.seccomp.defaultAction",
        "is required but missing",
    ),
    (
        "seccomp-syscall-action",
        at("linux.seccomp.syscalls.0.action", "ALLOW"),
        "linux.seccomp.syscalls[0].action",
        f'unknown seccomp action "ALLOW" (did you mean SCMP_ACT_ALLOW?); expected one of {ACTIONS}',
    ),
    (
        "seccomp-arg-op",
        at("linux.seccomp.syscalls.1.args.1.op", "SCMP_CMP_EQUAL"),
        "linux.seccomp.syscalls[1].args[1].op",
        'unknown seccomp operator "SCMP_CMP_EQUAL" (did you mean SCMP_CMP_EQ?); '
        f"expected one of {OPERATORS}",
    ),
    (
        "seccomp-architecture",
        at("linux.seccomp.architectures.1", "x86"),
        "linux.seccomp.architectures[1]",
        'unknown seccomp architecture "x86" (did you mean SCMP_ARCH_X86?); expected one of ',
    ),
    (
        "seccomp-syscall-names-empty",
        at("linux.seccomp.syscalls.0.names", []),
        "linux.seccomp.syscalls[0].names",
        "must list at least one system call name",
    ),
    (
        "seccomp-syscall-name-empty",
        at("linux.seccomp.syscalls.0.names.1", ""),
        "linux.seccomp.syscalls[0].names[1]",
        "system call name must not be empty",
    ),
    # the rest of linux
    (
        "rootfs-propagation",
        at("linux.rootfsPropagation", "recursive"),
        "linux.rootfsPropagation",
        'unknown rootfs propagation "recursive"; expected one of "", shared, slave, private, '
        "unbindable, rshared, rslave, rprivate, runbindable",
    ),
    (
        "sysctl-empty-key",
        at("linux.sysctl.", "1"),
        "linux.sysctl",
        "sysctl names must not be empty; use keys such as net.ipv4.ip_forward",
    ),
    (
        "personality-domain",
        at("linux.personality.domain", "LINUX64"),
        "linux.personality.domain",
        'unknown personality domain "LINUX64" (did you mean LINUX?); '
        "expected one of LINUX, LINUX32",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "key", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_validation_rule(mutate: Callable[[dict[str, Any]], None], key: str, message: str) -> None:
    data = full_spec_dict()
    mutate(data)
    with pytest.raises(ConfigError) as info:
        parse_spec(data, source="/b/config.json")
    err = info.value
    assert (err.path, err.key) == ("/b/config.json", key)
    prefix = f"/b/config.json: {key}: "
    assert str(err).startswith(prefix)
    text = str(err).removeprefix(prefix)
    if message.endswith("expected one of "):
        assert text.startswith(message)
    else:
        assert text == message


def test_map_value_error_names_the_map_key() -> None:
    data = full_spec_dict()
    data["linux"]["sysctl"]["net.core.somaxconn"] = 1024
    with pytest.raises(ConfigError) as info:
        parse_spec(data)
    assert info.value.key == 'linux.sysctl["net.core.somaxconn"]'
    assert str(info.value).endswith("must be a string, got number 1024")


def test_top_level_must_be_an_object() -> None:
    with pytest.raises(ConfigError) as info:
        parse_spec([1, 2], source="c.json")
    assert info.value.key is None
    assert str(info.value) == "c.json: must be a JSON object, got an array"


def test_user_namespace_with_a_path_needs_no_mappings() -> None:
    data = full_spec_dict()
    del data["linux"]["uidMappings"], data["linux"]["gidMappings"]
    data["linux"]["namespaces"][5]["path"] = "/proc/1234/ns/user"
    spec = parse_spec(data)
    assert spec.linux is not None and spec.linux.uid_mappings == ()


def test_relative_mount_destination_is_accepted_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = full_spec_dict()
    data["mounts"][1]["destination"] = "data"
    with caplog.at_level(logging.WARNING, logger="pypod.oci.runtime_spec"):
        spec = parse_spec(data)
    assert spec.mounts[1].destination == "data"
    assert "mounts[1].destination" in caplog.text and "not absolute" in caplog.text


def test_userns_mapping_rules_with_a_user_namespace_only() -> None:
    data = full_spec_dict()
    user_namespace_only(data)
    assert parse_spec(data).linux is not None


# --------------------------------------------------------------------------- load_spec


def test_load_spec_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(full_spec_dict(), indent="\t"))
    assert load_spec(str(path)) == parse_spec(full_spec_dict())


def test_load_spec_reports_bad_json_with_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{\n\t"ociVersion": "1.0.2",\n\t"root": {"path": "rootfs",}\n}')
    with pytest.raises(ConfigError) as info:
        load_spec(str(path))
    assert info.value.path == str(path)
    assert str(info.value) == (
        f"{path}: invalid JSON at line 3, column 28: "
        "Expecting property name enclosed in double quotes"
    )


def test_load_spec_rejects_nan(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"ociVersion": "1", "root": {"path": "r"}, "x": NaN}')
    with pytest.raises(ConfigError, match="NaN is not a JSON number"):
        load_spec(str(path))


def test_load_spec_rejects_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b'{"ociVersion": "\xff"}')
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        load_spec(str(path))


def test_load_spec_validates_with_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"ociVersion": "1.0.2"}')
    with pytest.raises(ConfigError) as info:
        load_spec(str(path))
    assert (info.value.path, info.value.key) == (str(path), "root")


def test_load_spec_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="config.json"):
        load_spec(str(tmp_path / "config.json"))


# --------------------------------------------------------------------------- state


def test_state_to_dict_and_back() -> None:
    state = State(id="box", status="running", pid=42, bundle="/b", annotations={"a": "1"})
    assert state.to_dict() == {
        "ociVersion": OCI_RUNTIME_SPEC_VERSION,
        "id": "box",
        "status": "running",
        "pid": 42,
        "bundle": "/b",
        "annotations": {"a": "1"},
    }
    assert parse_state(state.to_dict()) == state


def test_state_omits_pid_and_annotations_when_empty() -> None:
    state = State(id="box", status="stopped", bundle="/b")
    assert state.to_dict() == {
        "ociVersion": OCI_RUNTIME_SPEC_VERSION,
        "id": "box",
        "status": "stopped",
        "bundle": "/b",
    }


def test_state_status_is_checked() -> None:
    with pytest.raises(ConfigError) as info:
        parse_state({"ociVersion": "1.0.2", "id": "x", "status": "exited", "bundle": "/b"})
    assert info.value.key == "status"
    assert "expected one of creating, created, running, stopped, paused" in str(info.value)


# --------------------------------------------------------------------------- property


def _paths(node: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


BASE = full_spec_dict()
PATHS = _paths(BASE)
INTERESTING = st.sampled_from(
    [
        "", "/", "rel/ative", "pid", "user", "RLIMIT_NOFILE", "CAP_KILL", "SCMP_ACT_ALLOW",
        "SCMP_CMP_EQ", "c", "p", "rshared", -1, 0, 1, 2**32, 2**64, -(2**63) - 1, 1.5, True,
        False, None, [], {},
    ]
)  # fmt: skip
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | INTERESTING,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=8) | st.sampled_from(["type", "path"]), inner, max_size=3),
    max_leaves=6,
)
MUTATION = st.tuples(
    st.sampled_from(PATHS),
    st.sampled_from(["set", "delete", "add"]),
    st.text(max_size=6),
    JSON_VALUES,
)


def _apply(data: dict[str, Any], mutation: tuple[Any, str, str, Any]) -> dict[str, Any]:
    path, how, new_key, value = mutation
    if not path:
        return value if how == "set" else data  # type: ignore[no-any-return]
    node: Any = data
    for part in path[:-1]:
        node = node[part]
    last = path[-1]
    if not isinstance(node, dict | list) or not isinstance(
        last, str if isinstance(node, dict) else int
    ):
        raise TypeError("an earlier mutation changed the container")
    if how == "set":
        node[last] = value
    elif how == "delete":
        del node[last]
    elif isinstance(node, dict):
        node[new_key] = value
    else:
        node.insert(last, value)
    return data


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(MUTATION, min_size=1, max_size=4))
def test_mutated_specs_parse_or_raise_config_error(mutations: list[Any]) -> None:
    data: Any = copy.deepcopy(BASE)
    for mutation in mutations:
        if not isinstance(data, dict):
            break
        try:
            data = _apply(data, mutation)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced the path
    try:
        spec = parse_spec(data)
    except ConfigError as e:
        assert str(e)
        return
    assert parse_spec(spec_to_dict(spec)) == spec
