"""What a container is made from: `ContainerConfig`, the parsed `run`/`create` flags.

The CLI turns flags into a `ContainerConfig` (`cli/engine/run_flags.py`); the engine stores it
(JSON, in the state DB) and turns it, with the image's config, into the OCI runtime spec
(`engine/spec.py`).  Everything here is already validated and normalised: sizes in bytes,
signals as numbers, mounts with absolute host paths.  `None` means "not given: use the image's
value or podman's default".
"""

from __future__ import annotations

from pypod.record import field, fields, is_record, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@record
class MountSpec:
    """One `-v`, `--mount` or `--tmpfs`, resolved."""

    #: "bind" (also named volumes, once resolved to their directory) or "tmpfs"
    type: str
    #: host path for bind mounts (a named volume's `_data` directory), "tmpfs" for tmpfs
    source: str
    destination: str
    #: OCI mount options: "ro"/"rw", "rbind"/"bind", propagation, "nosuid", "size=64m"...
    options: tuple[str, ...] = ()
    #: the named volume behind a bind mount, for `inspect` and `rm -v`
    volume: str | None = None
    #: `:U`: chown the source to the container's user
    chown: bool = False


@record
class Healthcheck:
    test: tuple[str, ...]  # ("CMD-SHELL", "curl ...") or ("CMD", "prog", "arg") or ("NONE",)
    interval: float = 30.0
    timeout: float = 30.0
    start_period: float = 0.0
    retries: int = 3


@record
class Resources:
    memory: int | None = None  # bytes
    memory_swap: int | None = None  # bytes, -1 unlimited
    memory_reservation: int | None = None
    cpus: float | None = None
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    pids_limit: int | None = None  # podman's default 2048; 0 or -1: unlimited


@record
class ContainerConfig:
    #: the image as the user named it, and what it resolved to
    image: str
    image_id: str
    name: str = ""
    #: the arguments after the image (replace the image's Cmd)
    command: tuple[str, ...] = ()
    #: `--entrypoint`: None keeps the image's; () clears it
    entrypoint: tuple[str, ...] | None = None
    #: `-e`, `--env-file`, `--env-host`, merged in order (image Env first, added by engine/spec)
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    #: `-u USER[:GROUP]` as given; resolved against the rootfs' /etc/passwd when created
    user: str | None = None
    group_add: tuple[str, ...] = ()
    hostname: str | None = None
    tty: bool = False
    #: `-i`: keep stdin open
    stdin: bool = False
    detach_keys: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    mounts: tuple[MountSpec, ...] = ()
    volumes_from: tuple[str, ...] = ()
    read_only: bool = False
    read_only_tmpfs: bool = True
    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    no_new_privileges: bool = False
    #: None: podman's default profile; "unconfined"; or the path of a JSON profile
    seccomp_profile: str | None = None
    #: `--security-opt mask=`/`unmask=` (paths; "ALL" unmasks everything)
    mask: tuple[str, ...] = ()
    unmask: tuple[str, ...] = ()
    #: `--device HOST[:CONTAINER[:PERMISSIONS]]` as given
    devices: tuple[str, ...] = ()
    sysctls: dict[str, str] = field(default_factory=dict)
    #: `--ulimit name=soft[:hard]` as given (validated)
    ulimits: tuple[str, ...] = ()
    shm_size: int = 64 * 1024 * 1024
    oom_score_adj: int | None = None
    resources: Resources = field(default_factory=Resources)
    #: `--init`: run pypod's small init as PID 1
    init: bool = False
    #: signal number; None: the image's StopSignal or SIGTERM
    stop_signal: int | None = None
    stop_timeout: int = 10
    #: "no", "on-failure", "always", "unless-stopped"
    restart_policy: str = "no"
    restart_retries: int = 0
    healthcheck: Healthcheck | None = None
    log_driver: str = "k8s-file"
    log_max_size: int = 0  # bytes, 0 = no limit
    #: "" (the default: bridge when root), "bridge" (the networks in `networks`), "none",
    #: "host", "ns:PATH", "container:ID", "slirp4netns", "pasta"
    network: str = ""
    #: with "bridge": per network name, {"interface_name", "static_ips", "static_mac",
    #: "aliases"} (the fields of pypod.network.types.PerNetworkOptions)
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: `-p`/`-P`, each {"host_ip", "host_port", "container_port", "protocol", "range"}
    #: (pypod.network.types.PortMapping); host ports chosen when the container is created
    ports: tuple[dict[str, Any], ...] = ()
    #: `--expose` as given ("80", "8000-8010/udp")
    expose: tuple[str, ...] = ()
    publish_all: bool = False
    #: `--dns`, `--dns-search`, `--dns-option`
    dns_servers: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    #: `--add-host NAME:IP` as (name, ip) pairs
    add_hosts: tuple[tuple[str, str], ...] = ()
    no_hosts: bool = False
    #: options after `slirp4netns:`/`pasta:`
    network_options: tuple[str, ...] = ()
    #: `--tz`: "local" or a zone name
    tz: str | None = None
    #: namespaces shared with the host or another container: "" (private), "host",
    #: "container:ID" (resolved to the ID)
    uts: str = ""
    ipc: str = ""
    pid: str = ""
    #: `--rm`
    remove: bool = False
    #: the OCI runtime: "pypod" (in-process) or a binary's name or path
    runtime: str = "pypod"
    cgroup_parent: str | None = None
    #: `--userns` ("", "host", "keep-id"), `--uidmap`/`--gidmap` as given
    userns: str = ""
    uidmap: tuple[str, ...] = ()
    gidmap: tuple[str, ...] = ()
    #: `--requires`: containers (IDs once created) started before this one
    requires: tuple[str, ...] = ()
    #: `--pod`: the pod's name or ID ("new:NAME" asks for a new pod); its ID once created
    pod: str = ""
    #: the infra container of `pod` (made by `pod create`, holds the pod's namespaces)
    infra: bool = False
    #: `--sdnotify`: "" (not given: NOTIFY_SOCKET is not used), "conmon" (MAINPID=<monitor> and
    #: READY=1 once started), "ignore"
    sdnotify: str = ""
    #: `--conmon-pidfile` (`pod create --infra-conmon-pidfile`): the monitor's pid, at each start
    conmon_pidfile: str = ""
    #: `--cgroups=split` ("split"; "" otherwise): see engine/cgroup_split.py
    cgroups: str = ""


def to_json(cfg: ContainerConfig) -> dict[str, Any]:
    return _dump(cfg)  # type: ignore[no-any-return]


def _dump(value: Any) -> Any:
    if is_record(value):
        return {f.name: _dump(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


def from_json(data: dict[str, Any]) -> ContainerConfig:
    known = {f.name for f in fields(ContainerConfig)}
    kw: dict[str, Any] = {k: v for k, v in data.items() if k in known}
    for name in ("command", "group_add", "volumes_from", "cap_add", "cap_drop", "mask",
                 "unmask", "devices", "ulimits", "ports", "expose", "dns_servers",
                 "dns_search", "dns_options", "network_options", "requires", "uidmap",
                 "gidmap"):  # fmt: skip
        if name in kw:
            kw[name] = tuple(kw[name])
    if "add_hosts" in kw:
        kw["add_hosts"] = tuple(tuple(pair) for pair in kw["add_hosts"])
    if kw.get("entrypoint") is not None:
        kw["entrypoint"] = tuple(kw["entrypoint"])
    kw["mounts"] = tuple(
        MountSpec(**{**m, "options": tuple(m.get("options", ()))}) for m in kw.get("mounts", ())
    )
    if isinstance(kw.get("resources"), dict):
        kw["resources"] = Resources(**kw["resources"])
    if isinstance(kw.get("healthcheck"), dict):
        h = kw["healthcheck"]
        kw["healthcheck"] = Healthcheck(**{**h, "test": tuple(h["test"])})
    return ContainerConfig(**kw)


def asks_for_userns(mode: str | None, uidmap: object, gidmap: object) -> bool:
    """Whether `--userns MODE`, `--uidmap` and `--gidmap` ask for a user namespace of the
    container's own (`rootless.userns_plan` says which, or what is wrong): any map, or a mode
    other than "" and host."""
    return bool(uidmap or gidmap) or (mode or "") not in ("", "host")
