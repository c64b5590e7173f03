"""The OCI runtime-spec ``config.json`` (and runtime state) as frozen records.

Class and attribute names follow the Go package
``github.com/opencontainers/runtime-spec/specs-go``: a class per Go struct, an attribute per
JSON key in snake_case (``noNewPrivileges`` -> ``no_new_privileges``).  Optional objects are
``None`` when absent, lists are tuples, maps are dicts.  Fields are declared in the Go order so
that :func:`spec_to_dict` writes keys in the order runc writes them.

:func:`parse_spec` validates and converts; every problem raises :class:`~pypod.errors.ConfigError`
naming the JSON path of the offending field.  Unknown keys are ignored, as runc does, and JSON
``null`` means "absent", as in Go.  The only I/O is :func:`load_spec`.
"""

from __future__ import annotations

from types import MappingProxyType

from pypod import OCI_RUNTIME_SPEC_VERSION
from pypod.log import get_logger
from pypod.record import field, fields, is_record, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

__all__ = [
    "CAPABILITIES",
    "CONTAINER_STATUSES",
    "DEVICE_TYPES",
    "IO_PRIORITY_CLASSES",
    "NAMESPACE_TYPES",
    "PERSONALITY_DOMAINS",
    "RLIMIT_TYPES",
    "ROOTFS_PROPAGATIONS",
    "SECCOMP_ACTIONS",
    "SECCOMP_ARCHITECTURES",
    "SECCOMP_OPERATORS",
    "Box",
    "Hook",
    "Hooks",
    "Linux",
    "LinuxBlockIO",
    "LinuxCPU",
    "LinuxCapabilities",
    "LinuxDevice",
    "LinuxDeviceCgroup",
    "LinuxHugepageLimit",
    "LinuxIDMapping",
    "LinuxIOPriority",
    "LinuxInterfacePriority",
    "LinuxMemory",
    "LinuxNamespace",
    "LinuxNetwork",
    "LinuxPersonality",
    "LinuxPids",
    "LinuxRdma",
    "LinuxResources",
    "LinuxSeccomp",
    "LinuxSeccompArg",
    "LinuxSyscall",
    "LinuxThrottleDevice",
    "LinuxTimeOffset",
    "LinuxWeightDevice",
    "Mount",
    "POSIXRlimit",
    "Process",
    "Root",
    "Spec",
    "State",
    "User",
    "decode_json",
    "load_spec",
    "parse_process",
    "parse_spec",
    "parse_state",
    "spec_to_dict",
]

log = get_logger(__name__)

# --------------------------------------------------------------------------- accepted values

#: Linux capability names, indexed by capability number (CAP_CHOWN = 0 ...).
CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip
RLIMIT_TYPES: tuple[str, ...] = tuple(
    "RLIMIT_" + n
    for n in "AS CORE CPU DATA FSIZE LOCKS MEMLOCK MSGQUEUE NICE NOFILE NPROC RSS RTPRIO "
    "RTTIME SIGPENDING STACK".split()
)
NAMESPACE_TYPES: tuple[str, ...] = (
    "cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts",
)  # fmt: skip
DEVICE_TYPES: tuple[str, ...] = ("c", "b", "u", "p")
DEVICE_CGROUP_TYPES: tuple[str, ...] = ("a", "b", "c")
ROOTFS_PROPAGATIONS: tuple[str, ...] = (
    "", "shared", "slave", "private", "unbindable",
    "rshared", "rslave", "rprivate", "runbindable",
)  # fmt: skip
SECCOMP_ACTIONS: tuple[str, ...] = (
    "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY",
)  # fmt: skip
SECCOMP_OPERATORS: tuple[str, ...] = (
    "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
    "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ",
)  # fmt: skip
SECCOMP_ARCHITECTURES: tuple[str, ...] = tuple(
    "SCMP_ARCH_" + n
    for n in "X86 X86_64 X32 ARM AARCH64 MIPS MIPS64 MIPS64N32 MIPSEL MIPSEL64 MIPSEL64N32 "
    "PPC PPC64 PPC64LE S390 S390X PARISC PARISC64 RISCV64 LOONGARCH64 M68K SH SHEB".split()
)
PERSONALITY_DOMAINS: tuple[str, ...] = ("LINUX", "LINUX32")
IO_PRIORITY_CLASSES: tuple[str, ...] = ("IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE")
#: runtime-spec statuses, plus runc's "paused"
CONTAINER_STATUSES: tuple[str, ...] = ("creating", "created", "running", "stopped", "paused")

# Go integer types of the spec, as inclusive ranges.
_U16 = (0, 2**16 - 1)
_U32 = (0, 2**32 - 1)
_U64 = (0, 2**64 - 1)
_I64 = (-(2**63), 2**63 - 1)

#: Field metadata: written even when zero/empty (a Go field without ``omitempty``).
_KEEP: Mapping[str, bool] = MappingProxyType({"keep": True})

# --------------------------------------------------------------------------- records


@record
class Box:
    height: int = field(metadata=_KEEP)
    width: int = field(metadata=_KEEP)


@record
class User:
    uid: int = field(default=0, metadata=_KEEP)
    gid: int = field(default=0, metadata=_KEEP)
    umask: int | None = None
    additional_gids: tuple[int, ...] = ()
    username: str = ""


@record
class LinuxCapabilities:
    bounding: tuple[str, ...] = ()
    effective: tuple[str, ...] = ()
    inheritable: tuple[str, ...] = ()
    permitted: tuple[str, ...] = ()
    ambient: tuple[str, ...] = ()


@record
class POSIXRlimit:
    type: str = field(metadata=_KEEP)
    hard: int = field(metadata=_KEEP)
    soft: int = field(metadata=_KEEP)


@record
class LinuxIOPriority:
    class_: str = field(metadata=_KEEP)  # JSON "class"
    priority: int = field(metadata=_KEEP)


@record
class Process:
    terminal: bool = False
    console_size: Box | None = None
    user: User = field(default_factory=User, metadata=_KEEP)
    args: tuple[str, ...]
    command_line: str = ""
    env: tuple[str, ...] = ()
    cwd: str = field(default="/", metadata=_KEEP)
    capabilities: LinuxCapabilities | None = None
    rlimits: tuple[POSIXRlimit, ...] = ()
    no_new_privileges: bool = False
    apparmor_profile: str = ""
    oom_score_adj: int | None = None
    selinux_label: str = ""
    io_priority: LinuxIOPriority | None = None


@record
class Root:
    path: str = field(metadata=_KEEP)
    readonly: bool = False


@record
class LinuxIDMapping:
    container_id: int = field(metadata=_KEEP)
    host_id: int = field(metadata=_KEEP)
    size: int = field(metadata=_KEEP)


@record
class Mount:
    destination: str = field(metadata=_KEEP)
    type: str = ""
    source: str = ""
    options: tuple[str, ...] = ()
    uid_mappings: tuple[LinuxIDMapping, ...] = ()
    gid_mappings: tuple[LinuxIDMapping, ...] = ()


@record
class Hook:
    path: str = field(metadata=_KEEP)
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    timeout: int | None = None


@record
class Hooks:
    prestart: tuple[Hook, ...] = ()
    create_runtime: tuple[Hook, ...] = ()
    create_container: tuple[Hook, ...] = ()
    start_container: tuple[Hook, ...] = ()
    poststart: tuple[Hook, ...] = ()
    poststop: tuple[Hook, ...] = ()


@record
class LinuxNamespace:
    type: str = field(metadata=_KEEP)
    path: str = ""


@record
class LinuxDevice:
    path: str = field(metadata=_KEEP)
    type: str = field(metadata=_KEEP)
    major: int = field(default=0, metadata=_KEEP)
    minor: int = field(default=0, metadata=_KEEP)
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None


@record
class LinuxDeviceCgroup:
    allow: bool = field(metadata=_KEEP)
    type: str = ""
    major: int | None = None
    minor: int | None = None
    access: str = ""


@record
class LinuxMemory:
    limit: int | None = None
    reservation: int | None = None
    swap: int | None = None
    kernel: int | None = None
    kernel_tcp: int | None = None
    swappiness: int | None = None
    disable_oom_killer: bool | None = None
    use_hierarchy: bool | None = None
    check_before_update: bool | None = None


@record
class LinuxCPU:
    shares: int | None = None
    quota: int | None = None
    burst: int | None = None
    period: int | None = None
    realtime_runtime: int | None = None
    realtime_period: int | None = None
    cpus: str = ""
    mems: str = ""
    idle: int | None = None


@record
class LinuxPids:
    limit: int = field(metadata=_KEEP)


@record
class LinuxWeightDevice:
    major: int = field(metadata=_KEEP)
    minor: int = field(metadata=_KEEP)
    weight: int | None = None
    leaf_weight: int | None = None


@record
class LinuxThrottleDevice:
    major: int = field(metadata=_KEEP)
    minor: int = field(metadata=_KEEP)
    rate: int = field(metadata=_KEEP)


@record
class LinuxBlockIO:
    weight: int | None = None
    leaf_weight: int | None = None
    weight_device: tuple[LinuxWeightDevice, ...] = ()
    throttle_read_bps_device: tuple[LinuxThrottleDevice, ...] = ()
    throttle_write_bps_device: tuple[LinuxThrottleDevice, ...] = ()
    throttle_read_iops_device: tuple[LinuxThrottleDevice, ...] = ()
    throttle_write_iops_device: tuple[LinuxThrottleDevice, ...] = ()


@record
class LinuxHugepageLimit:
    page_size: str = field(metadata=_KEEP)
    limit: int = field(metadata=_KEEP)


@record
class LinuxInterfacePriority:
    name: str = field(metadata=_KEEP)
    priority: int = field(metadata=_KEEP)


@record
class LinuxNetwork:
    class_id: int | None = None
    priorities: tuple[LinuxInterfacePriority, ...] = ()


@record
class LinuxRdma:
    hca_handles: int | None = None
    hca_objects: int | None = None


@record
class LinuxResources:
    devices: tuple[LinuxDeviceCgroup, ...] = ()
    memory: LinuxMemory | None = None
    cpu: LinuxCPU | None = None
    pids: LinuxPids | None = None
    block_io: LinuxBlockIO | None = None
    hugepage_limits: tuple[LinuxHugepageLimit, ...] = ()
    network: LinuxNetwork | None = None
    rdma: dict[str, LinuxRdma] = field(default_factory=dict)
    unified: dict[str, str] = field(default_factory=dict)


@record
class LinuxSeccompArg:
    index: int = field(metadata=_KEEP)
    value: int = field(metadata=_KEEP)
    value_two: int = 0
    op: str = field(metadata=_KEEP)


@record
class LinuxSyscall:
    names: tuple[str, ...] = field(metadata=_KEEP)
    action: str = field(metadata=_KEEP)
    errno_ret: int | None = None
    args: tuple[LinuxSeccompArg, ...] = ()


@record
class LinuxSeccomp:
    default_action: str = field(metadata=_KEEP)
    default_errno_ret: int | None = None
    architectures: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    listener_path: str = ""
    listener_metadata: str = ""
    syscalls: tuple[LinuxSyscall, ...] = ()


@record
class LinuxPersonality:
    domain: str = field(metadata=_KEEP)
    flags: tuple[str, ...] = ()


@record
class LinuxTimeOffset:
    secs: int = 0
    nanosecs: int = 0


@record
class Linux:
    uid_mappings: tuple[LinuxIDMapping, ...] = ()
    gid_mappings: tuple[LinuxIDMapping, ...] = ()
    sysctl: dict[str, str] = field(default_factory=dict)
    resources: LinuxResources | None = None
    cgroups_path: str = ""
    namespaces: tuple[LinuxNamespace, ...] = ()
    devices: tuple[LinuxDevice, ...] = ()
    seccomp: LinuxSeccomp | None = None
    rootfs_propagation: str = ""
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    mount_label: str = ""
    personality: LinuxPersonality | None = None
    time_offsets: dict[str, LinuxTimeOffset] = field(default_factory=dict)


@record
class Spec:
    oci_version: str = field(default=OCI_RUNTIME_SPEC_VERSION, metadata=_KEEP)
    process: Process | None = None
    root: Root | None = None
    hostname: str = ""
    domainname: str = ""
    mounts: tuple[Mount, ...] = ()
    hooks: Hooks | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    linux: Linux | None = None


@record
class State:
    """The runtime state (``runc state``, and what hooks read on stdin)."""

    oci_version: str = field(default=OCI_RUNTIME_SPEC_VERSION, metadata=_KEEP)
    id: str = field(metadata=_KEEP)
    status: str = field(metadata=_KEEP)
    pid: int = 0
    bundle: str = field(metadata=_KEEP)
    annotations: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``pid`` and ``annotations`` omitted when zero/empty, as in Go)."""
        return _to_json_object(self)


# --------------------------------------------------------------------------- serialising

# JSON keys that are not the plain camelCase of the attribute name.
_JSON_NAME_EXCEPTIONS: Mapping[str, str] = MappingProxyType(
    {
        "class_": "class",
        "container_id": "containerID",
        "host_id": "hostID",
        "block_io": "blockIO",
        "kernel_tcp": "kernelTCP",
        "disable_oom_killer": "disableOOMKiller",
        "class_id": "classID",
        "throttle_read_iops_device": "throttleReadIOPSDevice",
        "throttle_write_iops_device": "throttleWriteIOPSDevice",
    }
)


def _json_name(attr: str) -> str:
    name = _JSON_NAME_EXCEPTIONS.get(attr)
    if name is not None:
        return name
    head, *rest = attr.split("_")
    return head + "".join(part.capitalize() for part in rest)


#: record class -> (attribute, JSON key, omitempty) of each field, worked out once per class
#: (`spec_to_dict` meets each class many times: ~750 values in a plain container's spec)
_PLANS: dict[type, tuple[tuple[str, str, bool], ...]] = {}


def _plan(cls: type) -> tuple[tuple[str, str, bool], ...]:
    plan = _PLANS.get(cls)
    if plan is None:
        # Go's omitempty: a pointer (default None here) is omitted only when nil; any other
        # member when it is false, 0, "" or an empty list or map.
        plan = _PLANS[cls] = tuple(
            (f.name, _json_name(f.name), f.default is not None and not f.metadata.get("keep"))
            for f in fields(cls)
        )
    return plan


def _to_json_object(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, key, omitempty in _plan(type(obj)):
        value = getattr(obj, name)
        if value is None:
            continue
        if omitempty and isinstance(value, bool | int | str | tuple | dict) and not value:
            continue
        out[key] = _to_json(value)
    return out


def _to_json(value: object) -> Any:
    cls = type(value)
    if cls is str or cls is int or cls is bool:  # most values: nothing to convert
        return value
    if cls in _PLANS or is_record(value):
        return _to_json_object(value)
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json(value[k]) for k in sorted(value)}  # Go writes maps sorted
    return value


def spec_to_dict(spec: Spec) -> dict[str, Any]:
    """The JSON form of ``spec``: camelCase keys in runc's order, empty members omitted."""
    return _to_json_object(spec)


# --------------------------------------------------------------------------- reading
# The reading and validating code (600 lines) lives in runtime_spec_parse; these entry points
# import it on first use.


def parse_spec(data: object, *, source: str = "config.json") -> Spec:
    """Validate a decoded ``config.json`` into a :class:`Spec` (ConfigError names the field)."""
    from pypod.oci import runtime_spec_parse

    return runtime_spec_parse.parse_spec(data, source=source)


def parse_process(data: object, *, source: str = "process.json") -> Process:
    """Validate a decoded process document (``runc exec --process``) into a :class:`Process`."""
    from pypod.oci import runtime_spec_parse

    return runtime_spec_parse.parse_process(data, source=source)


def parse_state(data: object, *, source: str = "state") -> State:
    """Validate a decoded runtime state document into a :class:`State`."""
    from pypod.oci import runtime_spec_parse

    return runtime_spec_parse.parse_state(data, source=source)


def decode_json(text: str) -> Any:
    """``config.json``'s text decoded as JSON, NaN and Infinity refused (ValueError)."""
    from pypod.oci import runtime_spec_parse

    return runtime_spec_parse.decode_json(text)


def load_spec(path: str) -> Spec:
    """Read and validate the ``config.json`` at `path`."""
    from pypod.oci import runtime_spec_parse

    return runtime_spec_parse.load_spec(path)
