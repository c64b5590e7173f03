"""Reading and validating the OCI runtime-spec documents into the records of runtime_spec.

Every problem raises :class:`~pypod.errors.ConfigError` whose ``key`` is the JSON path of the
offending field (``process.rlimits[0].type``).  Unknown keys are ignored, as runc does, and JSON
``null`` means "absent", as in Go.  Use it through ``pypod.oci.runtime_spec`` (``parse_spec``,
``parse_process``, ``parse_state``, ``load_spec``), which imports this module on first use.
"""

from __future__ import annotations

from pypod import OCI_RUNTIME_SPEC_VERSION, jsoncodec
from pypod.errors import ConfigError, from_oserror
from pypod.log import get_logger
from pypod.oci.runtime_spec import (
    _I64,
    _U16,
    _U32,
    _U64,
    CAPABILITIES,
    CONTAINER_STATUSES,
    DEVICE_CGROUP_TYPES,
    DEVICE_TYPES,
    IO_PRIORITY_CLASSES,
    NAMESPACE_TYPES,
    PERSONALITY_DOMAINS,
    RLIMIT_TYPES,
    ROOTFS_PROPAGATIONS,
    SECCOMP_ACTIONS,
    SECCOMP_ARCHITECTURES,
    SECCOMP_OPERATORS,
    Box,
    Hook,
    Hooks,
    Linux,
    LinuxBlockIO,
    LinuxCapabilities,
    LinuxCPU,
    LinuxDevice,
    LinuxDeviceCgroup,
    LinuxHugepageLimit,
    LinuxIDMapping,
    LinuxInterfacePriority,
    LinuxIOPriority,
    LinuxMemory,
    LinuxNamespace,
    LinuxNetwork,
    LinuxPersonality,
    LinuxPids,
    LinuxRdma,
    LinuxResources,
    LinuxSeccomp,
    LinuxSeccompArg,
    LinuxSyscall,
    LinuxThrottleDevice,
    LinuxTimeOffset,
    LinuxWeightDevice,
    Mount,
    POSIXRlimit,
    Process,
    Root,
    Spec,
    State,
    User,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any, NoReturn, TypeVar

    T = TypeVar("T")

log = get_logger(__name__)

# --------------------------------------------------------------------------- reading


def _describe(value: object) -> str:
    """A JSON value in an error message: its JSON type, and the value when short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str):
        text = jsoncodec.dumps(value)
        return f"string {text}" if len(text) <= 60 else "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _quote(value: str) -> str:
    return jsoncodec.dumps(value)


def _one_of(choices: Iterable[str]) -> str:
    return ", ".join(c if c else '""' for c in choices)


class _Obj:
    """A JSON object being read, with its key path for error messages."""

    __slots__ = ("data", "path", "source")

    def __init__(self, data: Mapping[str, object], path: str, source: str) -> None:
        self.data = data
        self.path = path
        self.source = source

    @classmethod
    def wrap(cls, value: object, path: str, source: str) -> _Obj:
        if not isinstance(value, dict):
            raise ConfigError(
                f"must be a JSON object, got {_describe(value)}", path=source, key=path or None
            )
        return cls(value, path, source)

    # -- paths and errors

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str | None, message: str) -> NoReturn:
        key = self.key(name) if name is not None else (self.path or None)
        raise ConfigError(message, path=self.source, key=key)

    def fail_at(self, key: str, message: str) -> NoReturn:
        raise ConfigError(message, path=self.source, key=key)

    # -- scalars; JSON null counts as absent, as in Go

    def _required(self, name: str) -> object:
        value = self.data.get(name)
        if value is None:
            self.fail(name, "is required but missing")
        return value

    def string(self, name: str, *, required: bool = False) -> str:
        value = self._required(name) if required else self.data.get(name)
        if value is None:
            return ""
        return _check_str(value, self.key(name), self.source)

    def integer(self, name: str, bounds: tuple[int, int], *, required: bool = False) -> int:
        value = self._required(name) if required else self.data.get(name)
        if value is None:
            return 0
        return _check_int(value, bounds, self.key(name), self.source)

    def opt_int(self, name: str, bounds: tuple[int, int]) -> int | None:
        value = self.data.get(name)
        if value is None:
            return None
        return _check_int(value, bounds, self.key(name), self.source)

    def boolean(self, name: str, *, required: bool = False) -> bool:
        return bool(self.opt_bool(name, required=required))

    def opt_bool(self, name: str, *, required: bool = False) -> bool | None:
        value = self._required(name) if required else self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, bool):
            self.fail(name, f"must be true or false, got {_describe(value)}")
        return value

    def choice(self, name: str, choices: tuple[str, ...], what: str, *, required: bool) -> str:
        value = self.string(name, required=required)
        if value not in choices and (required or value):
            self.fail(name, _unknown(what, value, choices))
        return value

    # -- containers

    def obj(self, name: str, parse: Callable[[_Obj], T]) -> T | None:
        value = self.data.get(name)
        if value is None:
            return None
        return parse(_Obj.wrap(value, self.key(name), self.source))

    def _array(self, name: str) -> list[object]:
        value = self.data.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(name, f"must be an array, got {_describe(value)}")
        return value

    def objs(self, name: str, parse: Callable[[_Obj], T]) -> tuple[T, ...]:
        key = self.key(name)
        return tuple(
            parse(_Obj.wrap(item, f"{key}[{i}]", self.source))
            for i, item in enumerate(self._array(name))
        )

    def strs(self, name: str) -> tuple[str, ...]:
        key = self.key(name)
        return tuple(
            _check_str(item, f"{key}[{i}]", self.source) for i, item in enumerate(self._array(name))
        )

    def ints(self, name: str, bounds: tuple[int, int]) -> tuple[int, ...]:
        key = self.key(name)
        return tuple(
            _check_int(item, bounds, f"{key}[{i}]", self.source)
            for i, item in enumerate(self._array(name))
        )

    def choices(self, name: str, choices: tuple[str, ...], what: str) -> tuple[str, ...]:
        values = self.strs(name)
        for i, value in enumerate(values):
            if value not in choices:
                self.fail_at(f"{self.key(name)}[{i}]", _unknown(what, value, choices))
        return values

    def mapping(self, name: str, parse: Callable[[object, str], T]) -> dict[str, T]:
        value = self.data.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(name, f"must be an object, got {_describe(value)}")
        key = self.key(name)
        return {k: parse(v, f"{key}[{_quote(k)}]") for k, v in value.items()}

    def objects_map(self, name: str, parse: Callable[[_Obj], T]) -> dict[str, T]:
        return self.mapping(name, lambda v, key: parse(_Obj.wrap(v, key, self.source)))

    def str_map(self, name: str) -> dict[str, str]:
        return self.mapping(name, lambda v, key: _check_str(v, key, self.source))


def _check_str(value: object, key: str, source: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"must be a string, got {_describe(value)}", path=source, key=key)
    return value


def _check_int(value: object, bounds: tuple[int, int], key: str, source: str) -> int:
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(
            f"must be an integer between {low} and {high}, got {_describe(value)}",
            path=source,
            key=key,
        )
    return value


def _unknown(what: str, value: str, choices: tuple[str, ...]) -> str:
    hint = _suggest(value, choices)
    maybe = f" (did you mean {hint}?)" if hint else ""
    return f"unknown {what} {_quote(value)}{maybe}; expected one of {_one_of(choices)}"


def _suggest(value: str, choices: tuple[str, ...]) -> str | None:
    """The choice meant: same but for case or prefix (cap_kill, ALLOW), or a close spelling."""
    upper = value.upper()
    for choice in choices:
        if choice and (choice.upper() == upper or choice.endswith("_" + upper)):
            return choice
    import difflib  # only on the error path: costs import time

    close = difflib.get_close_matches(value, [c for c in choices if c], n=1, cutoff=0.82)
    return close[0] if close else None


def _absolute(o: _Obj, name: str, what: str, *, required: bool = True) -> str:
    value = o.string(name, required=required)
    if required and not value:
        o.fail(name, f"{what} must not be empty; give an absolute path")
    if value and not value.startswith("/"):
        o.fail(name, f"{what} {_quote(value)} is not an absolute path; it must start with /")
    return value


# --------------------------------------------------------------------------- process


def _box(o: _Obj) -> Box:
    return Box(height=o.integer("height", _U64), width=o.integer("width", _U64))


def _user(o: _Obj) -> User:
    return User(
        uid=o.integer("uid", _U32),
        gid=o.integer("gid", _U32),
        umask=o.opt_int("umask", _U32),
        additional_gids=o.ints("additionalGids", _U32),
        username=o.string("username"),
    )


def _capabilities(o: _Obj) -> LinuxCapabilities:
    def caps(name: str) -> tuple[str, ...]:
        return o.choices(name, CAPABILITIES, "capability")

    return LinuxCapabilities(
        bounding=caps("bounding"),
        effective=caps("effective"),
        inheritable=caps("inheritable"),
        permitted=caps("permitted"),
        ambient=caps("ambient"),
    )


def _rlimit(o: _Obj) -> POSIXRlimit:
    rlimit = POSIXRlimit(
        type=o.choice("type", RLIMIT_TYPES, "rlimit type", required=True),
        hard=o.integer("hard", _U64, required=True),
        soft=o.integer("soft", _U64, required=True),
    )
    if rlimit.soft > rlimit.hard:
        o.fail(
            "soft",
            f"soft limit {rlimit.soft} is above the hard limit {rlimit.hard} for "
            f"{rlimit.type}; the soft limit must not exceed the hard limit",
        )
    return rlimit


def _io_priority(o: _Obj) -> LinuxIOPriority:
    priority = LinuxIOPriority(
        class_=o.choice("class", IO_PRIORITY_CLASSES, "I/O priority class", required=True),
        priority=o.integer("priority", _I64, required=True),
    )
    if not 0 <= priority.priority <= 7:
        o.fail("priority", f"I/O priority {priority.priority} is out of range; expected 0 to 7")
    return priority


def _process(o: _Obj) -> Process:
    args = o.strs("args")
    if not args:
        o.fail("args", "must not be empty; give the program to run and its arguments")
    rlimits = o.objs("rlimits", _rlimit)
    seen: set[str] = set()
    for i, rlimit in enumerate(rlimits):
        if rlimit.type in seen:
            o.fail_at(
                f"{o.key('rlimits')}[{i}].type",
                f"duplicate rlimit type {_quote(rlimit.type)}; each type may appear once",
            )
        seen.add(rlimit.type)
    cwd = o.string("cwd", required=True)
    if not cwd.startswith("/"):
        o.fail("cwd", f"working directory {_quote(cwd)} is not an absolute path; use e.g. /")
    return Process(
        terminal=o.boolean("terminal"),
        console_size=o.obj("consoleSize", _box),
        user=o.obj("user", _user) or User(),
        args=args,
        command_line=o.string("commandLine"),
        env=o.strs("env"),
        cwd=cwd,
        capabilities=o.obj("capabilities", _capabilities),
        rlimits=rlimits,
        no_new_privileges=o.boolean("noNewPrivileges"),
        apparmor_profile=o.string("apparmorProfile"),
        oom_score_adj=o.opt_int("oomScoreAdj", _I64),
        selinux_label=o.string("selinuxLabel"),
        io_priority=o.obj("ioPriority", _io_priority),
    )


# --------------------------------------------------------------------------- root, mounts, hooks


def _root(o: _Obj) -> Root:
    path = o.string("path", required=True)
    if not path:
        o.fail("path", "must not be empty; give the root filesystem directory (e.g. rootfs)")
    return Root(path=path, readonly=o.boolean("readonly"))


def _id_mapping(o: _Obj) -> LinuxIDMapping:
    return LinuxIDMapping(
        container_id=o.integer("containerID", _U32, required=True),
        host_id=o.integer("hostID", _U32, required=True),
        size=o.integer("size", _U32, required=True),
    )


def _mount(o: _Obj) -> Mount:
    destination = o.string("destination", required=True)
    if not destination:
        o.fail("destination", "must not be empty; give the absolute path inside the container")
    if not destination.startswith("/"):
        log.warning(
            "%s: %s: mount destination %r is not absolute; it is taken relative to /",
            o.source,
            o.key("destination"),
            destination,
        )
    return Mount(
        destination=destination,
        type=o.string("type"),
        source=o.string("source"),
        options=o.strs("options"),
        uid_mappings=o.objs("uidMappings", _id_mapping),
        gid_mappings=o.objs("gidMappings", _id_mapping),
    )


def _hook(o: _Obj) -> Hook:
    timeout = o.opt_int("timeout", _I64)
    if timeout is not None and timeout <= 0:
        o.fail("timeout", f"hook timeout must be greater than zero seconds, got {timeout}")
    return Hook(
        path=_absolute(o, "path", "hook path"),
        args=o.strs("args"),
        env=o.strs("env"),
        timeout=timeout,
    )


def _hooks(o: _Obj) -> Hooks:
    return Hooks(
        prestart=o.objs("prestart", _hook),
        create_runtime=o.objs("createRuntime", _hook),
        create_container=o.objs("createContainer", _hook),
        start_container=o.objs("startContainer", _hook),
        poststart=o.objs("poststart", _hook),
        poststop=o.objs("poststop", _hook),
    )


# --------------------------------------------------------------------------- linux: resources


def _device_cgroup(o: _Obj) -> LinuxDeviceCgroup:
    access = o.string("access")
    if access.strip("rwm"):
        o.fail("access", f"unknown device access {_quote(access)}; use a combination of r, w, m")
    return LinuxDeviceCgroup(
        allow=o.boolean("allow", required=True),
        type=o.choice("type", DEVICE_CGROUP_TYPES, "device cgroup type", required=False),
        major=o.opt_int("major", _I64),
        minor=o.opt_int("minor", _I64),
        access=access,
    )


def _memory(o: _Obj) -> LinuxMemory:
    return LinuxMemory(
        limit=o.opt_int("limit", _I64),
        reservation=o.opt_int("reservation", _I64),
        swap=o.opt_int("swap", _I64),
        kernel=o.opt_int("kernel", _I64),
        kernel_tcp=o.opt_int("kernelTCP", _I64),
        swappiness=o.opt_int("swappiness", _U64),
        disable_oom_killer=o.opt_bool("disableOOMKiller"),
        use_hierarchy=o.opt_bool("useHierarchy"),
        check_before_update=o.opt_bool("checkBeforeUpdate"),
    )


def _cpu(o: _Obj) -> LinuxCPU:
    return LinuxCPU(
        shares=o.opt_int("shares", _U64),
        quota=o.opt_int("quota", _I64),
        burst=o.opt_int("burst", _U64),
        period=o.opt_int("period", _U64),
        realtime_runtime=o.opt_int("realtimeRuntime", _I64),
        realtime_period=o.opt_int("realtimePeriod", _U64),
        cpus=o.string("cpus"),
        mems=o.string("mems"),
        idle=o.opt_int("idle", _I64),
    )


def _pids(o: _Obj) -> LinuxPids:
    return LinuxPids(limit=o.integer("limit", _I64))


def _weight_device(o: _Obj) -> LinuxWeightDevice:
    return LinuxWeightDevice(
        major=o.integer("major", _I64, required=True),
        minor=o.integer("minor", _I64, required=True),
        weight=o.opt_int("weight", _U16),
        leaf_weight=o.opt_int("leafWeight", _U16),
    )


def _throttle_device(o: _Obj) -> LinuxThrottleDevice:
    return LinuxThrottleDevice(
        major=o.integer("major", _I64, required=True),
        minor=o.integer("minor", _I64, required=True),
        rate=o.integer("rate", _U64, required=True),
    )


def _block_io(o: _Obj) -> LinuxBlockIO:
    return LinuxBlockIO(
        weight=o.opt_int("weight", _U16),
        leaf_weight=o.opt_int("leafWeight", _U16),
        weight_device=o.objs("weightDevice", _weight_device),
        throttle_read_bps_device=o.objs("throttleReadBpsDevice", _throttle_device),
        throttle_write_bps_device=o.objs("throttleWriteBpsDevice", _throttle_device),
        throttle_read_iops_device=o.objs("throttleReadIOPSDevice", _throttle_device),
        throttle_write_iops_device=o.objs("throttleWriteIOPSDevice", _throttle_device),
    )


def _hugepage_limit(o: _Obj) -> LinuxHugepageLimit:
    return LinuxHugepageLimit(
        page_size=o.string("pageSize", required=True), limit=o.integer("limit", _U64, required=True)
    )


def _interface_priority(o: _Obj) -> LinuxInterfacePriority:
    return LinuxInterfacePriority(
        name=o.string("name", required=True), priority=o.integer("priority", _U32, required=True)
    )


def _network(o: _Obj) -> LinuxNetwork:
    return LinuxNetwork(
        class_id=o.opt_int("classID", _U32), priorities=o.objs("priorities", _interface_priority)
    )


def _rdma(o: _Obj) -> LinuxRdma:
    return LinuxRdma(
        hca_handles=o.opt_int("hcaHandles", _U32), hca_objects=o.opt_int("hcaObjects", _U32)
    )


def _resources(o: _Obj) -> LinuxResources:
    return LinuxResources(
        devices=o.objs("devices", _device_cgroup),
        memory=o.obj("memory", _memory),
        cpu=o.obj("cpu", _cpu),
        pids=o.obj("pids", _pids),
        block_io=o.obj("blockIO", _block_io),
        hugepage_limits=o.objs("hugepageLimits", _hugepage_limit),
        network=o.obj("network", _network),
        rdma=o.objects_map("rdma", _rdma),
        unified=o.str_map("unified"),
    )


# --------------------------------------------------------------------------- linux: the rest


def _namespace(o: _Obj) -> LinuxNamespace:
    return LinuxNamespace(
        type=o.choice("type", NAMESPACE_TYPES, "namespace type", required=True),
        path=_absolute(o, "path", "namespace path", required=False),
    )


def _device(o: _Obj) -> LinuxDevice:
    return LinuxDevice(
        path=_absolute(o, "path", "device path"),
        type=o.choice("type", DEVICE_TYPES, "device type", required=True),
        major=o.integer("major", _I64),
        minor=o.integer("minor", _I64),
        file_mode=o.opt_int("fileMode", _U32),
        uid=o.opt_int("uid", _U32),
        gid=o.opt_int("gid", _U32),
    )


def _seccomp_arg(o: _Obj) -> LinuxSeccompArg:
    return LinuxSeccompArg(
        index=o.integer("index", _U64, required=True),
        value=o.integer("value", _U64, required=True),
        value_two=o.integer("valueTwo", _U64),
        op=o.choice("op", SECCOMP_OPERATORS, "seccomp operator", required=True),
    )


def _syscall(o: _Obj) -> LinuxSyscall:
    names = o.strs("names")
    if not names:
        o.fail("names", "must list at least one system call name")
    for i, name in enumerate(names):
        if not name:
            o.fail_at(f"{o.key('names')}[{i}]", "system call name must not be empty")
    return LinuxSyscall(
        names=names,
        action=o.choice("action", SECCOMP_ACTIONS, "seccomp action", required=True),
        errno_ret=o.opt_int("errnoRet", _U64),
        args=o.objs("args", _seccomp_arg),
    )


def _seccomp(o: _Obj) -> LinuxSeccomp:
    return LinuxSeccomp(
        default_action=o.choice("defaultAction", SECCOMP_ACTIONS, "seccomp action", required=True),
        default_errno_ret=o.opt_int("defaultErrnoRet", _U64),
        architectures=o.choices("architectures", SECCOMP_ARCHITECTURES, "seccomp architecture"),
        flags=o.strs("flags"),
        listener_path=o.string("listenerPath"),
        listener_metadata=o.string("listenerMetadata"),
        syscalls=o.objs("syscalls", _syscall),
    )


def _personality(o: _Obj) -> LinuxPersonality:
    return LinuxPersonality(
        domain=o.choice("domain", PERSONALITY_DOMAINS, "personality domain", required=True),
        flags=o.strs("flags"),
    )


def _time_offset(o: _Obj) -> LinuxTimeOffset:
    return LinuxTimeOffset(secs=o.integer("secs", _I64), nanosecs=o.integer("nanosecs", _U32))


def _sysctl(o: _Obj) -> dict[str, str]:
    sysctl = o.str_map("sysctl")
    if "" in sysctl:
        o.fail("sysctl", "sysctl names must not be empty; use keys such as net.ipv4.ip_forward")
    return sysctl


def _check_namespaces(o: _Obj, linux: Linux) -> None:
    seen: set[str] = set()
    key = o.key("namespaces")
    for i, ns in enumerate(linux.namespaces):
        if ns.type in seen:
            o.fail_at(
                f"{key}[{i}].type",
                f"duplicate namespace type {_quote(ns.type)}; each type may appear once",
            )
        seen.add(ns.type)
    userns = next((ns for ns in linux.namespaces if ns.type == "user"), None)
    for name, what, maps in (
        ("uidMappings", "uid", linux.uid_mappings),
        ("gidMappings", "gid", linux.gid_mappings),
    ):
        if userns is None and maps:
            o.fail(
                name,
                f"{what} mappings are given, but there is no user namespace; add "
                '{"type": "user"} to linux.namespaces or remove the mappings',
            )
        if userns is not None and not userns.path and not maps:
            o.fail(
                name,
                f"user namespace enabled, but no {what} mappings found; add linux.{name} "
                "or give the user namespace a path to join",
            )


def _linux(o: _Obj) -> Linux:
    linux = Linux(
        uid_mappings=o.objs("uidMappings", _id_mapping),
        gid_mappings=o.objs("gidMappings", _id_mapping),
        sysctl=_sysctl(o),
        resources=o.obj("resources", _resources),
        cgroups_path=o.string("cgroupsPath"),
        namespaces=o.objs("namespaces", _namespace),
        devices=o.objs("devices", _device),
        seccomp=o.obj("seccomp", _seccomp),
        rootfs_propagation=o.choice(
            "rootfsPropagation", ROOTFS_PROPAGATIONS, "rootfs propagation", required=False
        ),
        masked_paths=o.strs("maskedPaths"),
        readonly_paths=o.strs("readonlyPaths"),
        mount_label=o.string("mountLabel"),
        personality=o.obj("personality", _personality),
        time_offsets=o.objects_map("timeOffsets", _time_offset),
    )
    _check_namespaces(o, linux)
    return linux


# --------------------------------------------------------------------------- public API


def parse_spec(data: object, *, source: str = "config.json") -> Spec:
    """Validate a decoded ``config.json`` and convert it to a :class:`Spec`.

    ``source`` names the document in error messages.  Raises :class:`ConfigError` whose ``key``
    is the JSON path of the offending field (``process.rlimits[0].type``).
    """
    o = _Obj.wrap(data, "", source)
    oci_version = o.string("ociVersion", required=True)
    if not oci_version:
        o.fail("ociVersion", f"must not be empty; this runtime writes {OCI_RUNTIME_SPEC_VERSION}")
    root = o.obj("root", _root)
    if root is None:
        o.fail("root", 'is required but missing; give at least {"path": "rootfs"}')
    return Spec(
        oci_version=oci_version,
        process=o.obj("process", _process),
        root=root,
        hostname=o.string("hostname"),
        domainname=o.string("domainname"),
        mounts=o.objs("mounts", _mount),
        hooks=o.obj("hooks", _hooks),
        annotations=o.str_map("annotations"),
        linux=o.obj("linux", _linux),
    )


def parse_process(data: object, *, source: str = "process.json") -> Process:
    """Validate a decoded process document (``runc exec --process``) into a :class:`Process`."""
    return _process(_Obj.wrap(data, "", source))


def parse_state(data: object, *, source: str = "state") -> State:
    """Validate a decoded runtime state document into a :class:`State`."""
    o = _Obj.wrap(data, "", source)
    return State(
        oci_version=o.string("ociVersion", required=True),
        id=o.string("id", required=True),
        status=o.choice("status", CONTAINER_STATUSES, "container status", required=True),
        pid=o.integer("pid", _I64),
        bundle=o.string("bundle", required=True),
        annotations=o.str_map("annotations"),
    )


class _NonStandardNumber(ValueError):
    pass


def _reject_constant(name: str) -> NoReturn:
    raise _NonStandardNumber(name)


def load_spec(path: str) -> Spec:
    """Read, validate and convert the ``config.json`` at ``path``."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise from_oserror(f"reading runtime config {path}", e) from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"not valid UTF-8 (byte offset {e.start})", path=path) from e
    try:
        data = decode_json(text)
    except _NonStandardNumber as e:
        raise ConfigError(f"invalid JSON: {e} is not a JSON number", path=path) from e
    except ValueError as e:  # json's JSONDecodeError (jsoncodec raises json's own)
        msg = getattr(e, "msg", None)
        if msg is None:  # not a decoding error
            raise
        raise ConfigError(
            f"invalid JSON at line {getattr(e, 'lineno', '?')}, column "
            f"{getattr(e, 'colno', '?')}: {msg}",
            path=path,
        ) from e
    return parse_spec(data, source=path)


def decode_json(text: str) -> Any:
    """config.json's JSON: `json.loads(text, parse_constant=_reject_constant)`, NaN, Infinity
    and -Infinity refused (ValueError, as any invalid JSON).  Without those words in it, `text`
    is read by jsoncodec (which does not import the `json` package), with the same result; with
    them, or when it is not valid JSON (so that the error is the one the constant or the syntax
    gives first), by `json` itself."""
    if "NaN" not in text and "Infinity" not in text:
        try:
            return jsoncodec.loads(text)
        except ValueError:
            pass
    import json

    return json.loads(text, parse_constant=_reject_constant)
