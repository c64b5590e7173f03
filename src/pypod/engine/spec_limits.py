"""The limits of a container's spec: rlimits and cgroup resources, as podman 4.3 sets them.

* rlimits: `--ulimit name=soft[:hard]` (docker's names; -1 or "unlimited": none; "host": the
  caller's own limits), then nofile and nproc at podman's default (1048576) unless given.  Both
  are clamped to this process's hard limits when it lacks CAP_SYS_RESOURCE (podman's rootful
  defaults would make setrlimit fail); an explicit `--ulimit` above them is a clear error;
* resources: the device rules (deny all, or allow all with `--privileged`, then the
  `--device` ones: the runtime adds the usual /dev/null... rules itself, as runc does),
  memory (swap twice the memory unless given, where swap is accounted), cpu (`--cpus` as
  quota/period with a 100000us period), cpuset and the pids limit (podman's 2048 unless
  given; 0 or -1: none).
"""

from __future__ import annotations

import os
import resource

from pypod.engine.config import ContainerConfig
from pypod.errors import InvalidArgument
from pypod.oci.runtime_spec import (
    LinuxCPU,
    LinuxDeviceCgroup,
    LinuxMemory,
    LinuxPids,
    LinuxResources,
    POSIXRlimit,
)

__all__ = ["CPU_PERIOD", "DEFAULT_PIDS_LIMIT", "RLIMIT_DEFAULT", "ULIMITS", "resources", "rlimits"]

#: podman's RLimitDefaultValue for nofile and nproc, before clamping
RLIMIT_DEFAULT = 1048576
DEFAULT_PIDS_LIMIT = 2048
CPU_PERIOD = 100000
_RLIM_INFINITY = 2**64 - 1
#: `--ulimit` names (docker/go-units) -> OCI rlimit types
ULIMITS = {
    n: "RLIMIT_" + n.upper()
    for n in "core cpu data fsize locks memlock msgqueue nice nofile nproc rss rtprio rttime "
    "sigpending stack".split()
}
#: Linux resource numbers (the `resource` module lacks some, such as RLIMIT_LOCKS)
_RESOURCE_NUMBERS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}  # fmt: skip


def _caller(rtype: str) -> tuple[int, int]:
    """(soft, hard) of this process for `rtype`, RLIM_INFINITY as 2**64-1 (the OCI value)."""
    soft, hard = resource.getrlimit(_RESOURCE_NUMBERS[rtype])
    return _from_rlim(soft), _from_rlim(hard)


def rlimits(ulimits: tuple[str, ...]) -> tuple[POSIXRlimit, ...]:
    """`--ulimit` values, then nofile and nproc at podman's default (1048576) unless given,
    clamped to this process's hard limits (raising one needs CAP_SYS_RESOURCE)."""
    can_raise = _has_sys_resource()
    out: dict[str, POSIXRlimit] = {}
    for text in ulimits:
        if text == "host":
            for rtype in ULIMITS.values():
                soft, hard = _caller(rtype)
                out[rtype] = POSIXRlimit(type=rtype, soft=soft, hard=hard)
            continue
        rtype, soft, hard = _parse_ulimit(text)
        caller_hard = _caller(rtype)[1]
        if hard > caller_hard and not can_raise:
            raise InvalidArgument(
                f"--ulimit {text}: the hard limit {_show_rlim(hard)} is above this process's "
                f"hard limit for {rtype} ({_show_rlim(caller_hard)}), and raising it needs "
                f"CAP_SYS_RESOURCE: ask for at most {_show_rlim(caller_hard)}"
            )
        out[rtype] = POSIXRlimit(type=rtype, soft=soft, hard=hard)
    for rtype in ("RLIMIT_NOFILE", "RLIMIT_NPROC"):
        if rtype in out:
            continue
        value = RLIMIT_DEFAULT
        if not can_raise:
            value = min(value, _caller(rtype)[1])
        out[rtype] = POSIXRlimit(type=rtype, soft=value, hard=value)
    return tuple(out.values())


def _parse_ulimit(text: str) -> tuple[str, int, int]:
    """Parse "name=soft[:hard]" (docker's units.ParseUlimit; -1 or "unlimited" is no limit)."""
    name, sep, values = text.partition("=")
    if not sep:
        raise InvalidArgument(f'ulimit option "{text}" requires name=SOFT:HARD')
    rtype = ULIMITS.get(name)
    if rtype is None:
        raise InvalidArgument(f'ulimit option "{text}": invalid ulimit type: {name}')
    soft_text, _, hard_text = values.partition(":")
    soft = _ulimit_value(soft_text, text)
    hard = _ulimit_value(hard_text, text) if hard_text else soft
    if soft > hard:
        raise InvalidArgument(
            f'ulimit option "{text}": ulimit soft limit must be less than or equal to hard '
            f"limit: {_show_rlim(soft)} > {_show_rlim(hard)}"
        )
    return rtype, soft, hard


def _ulimit_value(value: str, text: str) -> int:
    if value in ("-1", "unlimited"):
        return _RLIM_INFINITY
    try:
        number = int(value)
    except ValueError:
        raise InvalidArgument(
            f'ulimit option "{text}" requires name=SOFT:HARD, failed to be parsed: '
            f'invalid number "{value}"'
        ) from None
    if number < 0:
        raise InvalidArgument(f'ulimit option "{text}": a limit must be -1 or more')
    return number


def _from_rlim(value: int) -> int:
    return _RLIM_INFINITY if value == resource.RLIM_INFINITY or value < 0 else value


def _show_rlim(value: int) -> str:
    return "unlimited" if value == _RLIM_INFINITY else str(value)


def _has_sys_resource() -> bool:
    from pypod.linux import userns
    from pypod.linux.capabilities import CAP_NAMES, read_status

    if userns.in_user_namespace():  # rootless: capabilities in a user namespace do not count
        return False

    return bool(read_status()["CapEff"] >> CAP_NAMES["CAP_SYS_RESOURCE"] & 1)


def _swap_accounting() -> bool:
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return True
    return os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")


def without_cgroups() -> bool:
    """`rootless.without_cgroups()`, without importing engine.rootless as root (start-up time:
    it can only be true rootless)."""
    from pypod.linux import userns

    if not userns.rootless():
        return False
    from pypod.engine import rootless

    return rootless.without_cgroups()


def resources(cfg: ContainerConfig, device_rules: tuple[LinuxDeviceCgroup, ...]) -> LinuxResources:
    """Device rules (deny all unless --privileged, then the --device ones), memory, cpu and
    the pids limit (podman's 2048 unless given; 0 or -1: none)."""
    r = cfg.resources
    if without_cgroups():  # rootless on cgroup v1: no cgroup, so no limits (podman)
        from pypod.engine import rootless

        rootless.check_no_resources(r)
        return LinuxResources()
    if cfg.privileged:
        devices = (LinuxDeviceCgroup(allow=True, access="rwm"), *device_rules)
    else:
        devices = (LinuxDeviceCgroup(allow=False, access="rwm"), *device_rules)
    memory = None
    if r.memory is not None or r.memory_swap is not None or r.memory_reservation is not None:
        swap = r.memory_swap
        if swap is not None and swap != -1:
            if r.memory is None:
                raise InvalidArgument(
                    "you should always set a memory limit when using a memoryswap limit, see usage"
                )
            if swap < r.memory:
                raise InvalidArgument(
                    "minimum memoryswap limit should be larger than memory limit, see usage"
                )
        if swap is None and r.memory is not None and r.memory > 0 and _swap_accounting():
            swap = 2 * r.memory
        if (
            r.memory is not None
            and r.memory_reservation is not None
            and 0 < r.memory < r.memory_reservation
        ):
            raise InvalidArgument(
                "minimum memory limit can not be less than memory reservation limit, see usage"
            )
        memory = LinuxMemory(limit=r.memory, reservation=r.memory_reservation, swap=swap)
    cpu = None
    if r.cpus is not None or r.cpu_shares is not None or r.cpuset_cpus:
        quota = period = None
        if r.cpus:
            period = CPU_PERIOD
            quota = int(r.cpus * CPU_PERIOD)  # Go's int64() truncation, as podman
        cpu = LinuxCPU(shares=r.cpu_shares, quota=quota, period=period, cpus=r.cpuset_cpus or "")
    limit = DEFAULT_PIDS_LIMIT if r.pids_limit is None else max(r.pids_limit, 0)
    return LinuxResources(devices=devices, memory=memory, cpu=cpu, pids=LinuxPids(limit=limit))
