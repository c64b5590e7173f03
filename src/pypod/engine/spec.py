"""The OCI runtime spec (config.json) of a `pypod run` container, as podman 4.3 writes it.

:func:`build_spec` turns the parsed flags (`ContainerConfig`) and the image's config into the
spec, writes the files the container gets from pypod (/etc/hosts, /etc/hostname,
/etc/resolv.conf, /run/.containerenv, /etc/localtime: :mod:`pypod.engine.etcfiles`) into its
userdata directory, and returns the document as a dict.  One function per part, in the order
of the spec: process (args, env, cwd, user: :mod:`pypod.runtime.users`; capabilities:
:mod:`pypod.engine.spec_security`; rlimits: :mod:`pypod.engine.spec_limits`), mounts
(:mod:`pypod.engine.spec_mounts`), namespaces, resources, devices
(:mod:`pypod.engine.devices`), masked paths, seccomp (:mod:`pypod.config.seccomp_profile`),
sysctls, annotations.  Everything that can be refused is checked before anything is written.

Where pypod differs from podman 4.3.1 on purpose: `container=pypod` in the environment,
`io.container.manager=pypod`, the init binary at /run/pypod-init, cgroups under /pypod_parent,
`TERM=xterm` only with `-t` (podman always sets it), rlimit defaults clamped to the caller's
hard limits (podman's rootful defaults of 1048576 fail where the hard limit is lower), and
/run/.containerenv bound in with `--read-only` too.
"""

from __future__ import annotations

import os
import time

from pypod.engine import etcfiles, sdnotify, spec_limits, spec_mounts, spec_security
from pypod.engine.config import ContainerConfig, asks_for_userns
from pypod.engine.etcfiles import NetworkFiles
from pypod.errors import InvalidArgument, NotSupported
from pypod.oci.runtime_spec import (
    Linux,
    LinuxDevice,
    LinuxDeviceCgroup,
    LinuxNamespace,
    Mount,
    Process,
    Root,
    Spec,
    User,
    spec_to_dict,
)
from pypod.record import record
from pypod.runtime.users import (
    ExecUser,
    lookup_groups,
    lookup_user,
    read_etc_file,
    read_host_file,
)
from pypod.stdlite import signal, signal_number

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

__all__ = ["CGROUP_PARENT", "DEFAULT_PATH", "INIT_PATH", "build_spec", "parse_signal"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: containers.conf `default_sysctls` as Debian (and Fedora) ship it; only with a netns of its own
DEFAULT_SYSCTLS = {"net.ipv4.ping_group_range": "0 0"}
UMASK = 0o022
INIT_PATH = "/run/pypod-init"
#: where an init binary (catatonit, as podman uses) is looked for
INIT_BINARIES = ("/usr/libexec/podman/catatonit", "/usr/bin/catatonit", "/usr/local/bin/catatonit")
CGROUP_PARENT = "/pypod_parent"


@record
class _Namespaces:
    """What the namespace options mean for the rest of the spec."""

    spec: tuple[LinuxNamespace, ...]
    #: "private", "host" or "path" for each of network, uts, ipc, pid
    network: str
    uts: str
    ipc: str
    pid: str


def build_spec(
    cfg: ContainerConfig,
    image_config: Mapping[str, Any],
    *,
    container_id: str,
    rootfs: str,
    userdata: str,
    netns: str | None = None,
    net_files: NetworkFiles | None = None,
) -> dict[str, Any]:
    """The config.json of the container, as a dict; writes its etc files into `userdata`.

    `image_config` is the `config` object of the image's OCI config (Env, Cmd, Entrypoint,
    WorkingDir, User, StopSignal...); `rootfs` the container's mounted root; `netns` the
    path of the network namespace the engine made or joins (None: the runtime makes one, or
    the host's); `net_files` what the network puts in /etc/hosts and /etc/resolv.conf.
    """
    rootfs = os.path.abspath(rootfs)
    # Everything that can be refused is worked out before anything is written or chowned.
    ns = _namespaces(cfg, netns)
    hostname = _hostname(cfg, container_id, ns)
    user_spec = cfg.user or _image_str(image_config, "User")
    group_file = _read_etc(cfg, rootfs, "group")
    exec_user = lookup_user(user_spec, passwd=_read_etc(cfg, rootfs, "passwd"), group=group_file)
    args = _args(cfg, image_config)
    init_binary = _init_binary() if cfg.init else ""
    if cfg.init:
        args = (INIT_PATH, "--", *args)
    bounding = spec_security.bounding_set(cfg)
    user_mounts, chowns = spec_mounts.user_mounts(cfg.mounts, uid=exec_user.uid, gid=exec_user.gid)
    mounts = _base_mounts(cfg, ns, user_mounts)
    zone = etcfiles.zone_file(cfg.tz) if cfg.tz else None
    # --sdnotify=container under a NOTIFY_SOCKET: the socket the monitor binds, bound in
    notify = bool(sdnotify.relayed_socket(cfg.sdnotify))
    process = Process(
        terminal=cfg.tty,
        user=User(
            uid=exec_user.uid,
            gid=exec_user.gid,
            umask=UMASK,
            additional_gids=_additional_gids(cfg, user_spec, exec_user, group_file),
        ),
        args=args,
        env=_env(cfg, image_config, exec_user, hostname, notify=notify),
        cwd=_cwd(cfg, image_config, rootfs, mounts, container_id),
        capabilities=spec_security.capabilities(cfg, bounding, exec_user.uid),
        rlimits=spec_limits.rlimits(cfg.ulimits),
        no_new_privileges=cfg.no_new_privileges,
        oom_score_adj=cfg.oom_score_adj,
    )
    devices, device_rules = _devices(cfg)
    masked, readonly = spec_security.masked_paths(cfg)
    sysctls = _sysctls(cfg, ns)
    resources = spec_limits.resources(cfg, device_rules)
    cgroups_path = _cgroups_path(cfg, container_id)
    seccomp = spec_security.seccomp(cfg, bounding)
    annotations = _annotations(cfg, image_config)
    # Then the files and mounts.
    for path in chowns:
        spec_mounts.chown_tree(path, exec_user.uid, exec_user.gid)
    files = etcfiles.write_etc_files(
        userdata,
        container_id=container_id,
        name=cfg.name,
        hostname=hostname,
        net=net_files or etcfiles.NetworkFiles(mode="host" if ns.network == "host" else "none"),
        privileged=cfg.privileged,
        image=cfg.image,
        image_id=cfg.image_id,
        zone=zone,
        skip=frozenset(m.destination for m in user_mounts),
    )
    mounts += spec_mounts.file_mounts(files, read_only=cfg.read_only)
    if notify:
        mounts += _notify_mounts(cfg, userdata, user_mounts)
    if cfg.init:
        mounts.append(
            Mount(
                destination=INIT_PATH,
                type="bind",
                source=init_binary,
                options=("bind", "ro", "rprivate"),
            )
        )
    mounts = spec_mounts.sort_mounts(mounts)
    linux = Linux(
        sysctl=sysctls,
        resources=resources,
        cgroups_path=cgroups_path,
        namespaces=ns.spec,
        devices=devices,
        seccomp=seccomp,
        rootfs_propagation=_root_propagation(mounts),
        masked_paths=masked,
        readonly_paths=readonly,
    )
    spec = Spec(
        process=process,
        root=Root(path=rootfs, readonly=cfg.read_only),
        hostname=hostname if ns.uts == "private" else "",
        mounts=tuple(mounts),
        annotations=annotations,
        linux=linux,
    )
    if asks_for_userns(cfg.userns, cfg.uidmap, cfg.gidmap):
        from pypod.engine import rootless  # (not imported without them: start-up time)

        spec = rootless.with_userns(cfg, spec, userdata)  # --userns=keep-id, --uidmap, --gidmap
    return spec_to_dict(spec)


# --------------------------------------------------------------------------- process


def _image_str(image_config: Mapping[str, Any], key: str) -> str:
    value = image_config.get(key)
    return value if isinstance(value, str) else ""


def _image_list(image_config: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = image_config.get(key)
    if not isinstance(value, list):
        return ()
    return tuple(str(v) for v in value)


def _args(cfg: ContainerConfig, image_config: Mapping[str, Any]) -> tuple[str, ...]:
    """podman's makeCommand: the entrypoint, then the command (the image's Cmd only when
    neither a command nor `--entrypoint` was given); an entrypoint of [""] counts as none."""
    entrypoint = (
        cfg.entrypoint if cfg.entrypoint is not None else _image_list(image_config, "Entrypoint")
    )
    args = [] if entrypoint == ("",) else list(entrypoint)
    command = cfg.command
    if not command and cfg.entrypoint is None:
        command = _image_list(image_config, "Cmd")
    args += command
    if not args:
        raise InvalidArgument(
            "no command or entrypoint provided, and no CMD or ENTRYPOINT from image"
        )
    return tuple(args)


def _env(
    cfg: ContainerConfig,
    image_config: Mapping[str, Any],
    user: ExecUser,
    hostname: str,
    *,
    notify: bool = False,
) -> tuple[str, ...]:
    """PATH, TERM (with -t) and container=pypod, then the image's Env, then the user's;
    NOTIFY_SOCKET with `notify` (the container's own socket: it replaces the user's, as with
    podman); HOME (the user's home) and HOSTNAME unless already set."""
    env: dict[str, str] = {"PATH": DEFAULT_PATH}
    if cfg.tty:
        env["TERM"] = "xterm"
    env["container"] = "pypod"
    for item in _image_list(image_config, "Env"):
        key, _, value = item.partition("=")
        if key:
            env[key] = value
    env.update(cfg.env)
    if notify:
        env.pop("NOTIFY_SOCKET", None)
        env["NOTIFY_SOCKET"] = sdnotify.CONTAINER_NOTIFY_SOCKET
    env.setdefault("HOME", user.home or "/")
    env.setdefault("HOSTNAME", hostname)
    return tuple(f"{k}={v}" for k, v in env.items())


def _cwd(
    cfg: ContainerConfig,
    image_config: Mapping[str, Any],
    rootfs: str,
    mounts: Sequence[Mount],
    container_id: str,
) -> str:
    """-w, else the image's WorkingDir, else /.  A -w that does not exist is an error (as with
    podman) unless a mount provides it; the image's is created by the runtime."""
    if not cfg.workdir:
        workdir = _image_str(image_config, "WorkingDir") or "/"
        return spec_mounts.clean_path(os.path.join("/", workdir))
    workdir = spec_mounts.clean_path(os.path.join("/", cfg.workdir))
    for m in mounts:
        dest = m.destination.rstrip("/")
        if workdir == dest or workdir.startswith(dest + "/"):
            return workdir
    from pypod.errors import OSLevelError
    from pypod.linux.mounts import open_in_root

    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = open_in_root(root_fd, workdir)
    except OSLevelError as e:
        raise InvalidArgument(
            f'workdir "{workdir}" does not exist on container {container_id}'
        ) from e
    finally:
        os.close(root_fd)
    try:
        if not os.path.isdir(f"/proc/self/fd/{fd}"):
            raise InvalidArgument(
                f'workdir "{workdir}" exists on container {container_id}, but is not a directory'
            )
    finally:
        os.close(fd)
    return workdir


def _etc_source(cfg: ContainerConfig, name: str) -> str | None:
    """The host file behind /etc/`name` when a user mount provides it (podman's overrides)."""
    found = None
    for m in cfg.mounts:
        if m.type != "bind" or not m.source:
            continue
        dest = spec_mounts.clean_path(m.destination)
        if dest == f"/etc/{name}":
            return m.source
        if dest == "/etc":
            found = os.path.join(m.source, name)
    return found


def _read_etc(cfg: ContainerConfig, rootfs: str, name: str) -> str | None:
    """The text of /etc/`name` the container will see (None when there is none)."""
    override = _etc_source(cfg, name)
    if override is not None:
        return read_host_file(override)
    return read_etc_file(rootfs, f"/etc/{name}")


def _additional_gids(
    cfg: ContainerConfig, user_spec: str, user: ExecUser, group: str | None
) -> tuple[int, ...]:
    """As podman: the primary gid (when a user was named), `--group-add`, then (without an
    explicit group) the groups that list the user."""
    gids: list[int] = []
    if user_spec:
        gids.append(user.gid)
    if cfg.group_add:
        if "keep-groups" in cfg.group_add:
            raise NotSupported(
                "--group-add keep-groups is not supported yet: it needs a rootless runtime that "
                "keeps the caller's groups"
            )
        gids += lookup_groups(cfg.group_add, group=group)
    if ":" not in user_spec:
        gids += user.sgids
    return tuple(dict.fromkeys(gids))


# --------------------------------------------------------------------------- mounts


def _base_mounts(cfg: ContainerConfig, ns: _Namespaces, user_mounts: list[Mount]) -> list[Mount]:
    """The runtime's file systems, the --read-only tmpfs and the user's mounts (which replace
    the others at the same destination)."""
    taken = {m.destination for m in user_mounts}
    shm_source = "/dev/shm" if ns.ipc == "host" else None
    if cfg.ipc == "none":  # podman's --ipc none: a private IPC namespace and no /dev/shm
        taken.add("/dev/shm")
    mounts = [
        m
        for m in spec_mounts.default_mounts(cfg, shm_source=shm_source, cgroup_rw=cfg.privileged)
        if m.destination not in taken
    ]
    if cfg.read_only and cfg.read_only_tmpfs:
        mounts += [m for m in spec_mounts.read_only_tmpfs() if m.destination not in taken]
    return mounts + user_mounts


def _notify_mounts(cfg: ContainerConfig, userdata: str, user_mounts: list[Mount]) -> list[Mount]:
    """`<userdata>/notify` (where the monitor binds the container's notification socket:
    pypod.monitor.notify) at /run/notify, as podman's state bind mount (read-only with
    --read-only); none when the user mounts something there."""
    from pypod.monitor.config import NOTIFY_DIR

    if any(m.destination == sdnotify.CONTAINER_NOTIFY_DIR for m in user_mounts):
        return []
    directory = os.path.join(userdata, NOTIFY_DIR)
    os.makedirs(directory, mode=0o755, exist_ok=True)  # (the monitor may have made it first)
    return spec_mounts.file_mounts({sdnotify.CONTAINER_NOTIFY_DIR: directory},
                                   read_only=cfg.read_only)  # fmt: skip


def _init_binary() -> str:
    for path in INIT_BINARIES:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return os.path.realpath(path)
    raise NotSupported(
        "--init is not supported yet on this host: no init binary found ("
        + ", ".join(INIT_BINARIES)
        + "): install catatonit (apt-get install catatonit)"
    )


def _root_propagation(mounts: Sequence[Mount]) -> str:
    """Root propagation as podman sets it: shared if a mount is (r)shared, else rslave if
    one is (r)slave, else none."""
    found = ""
    for m in mounts:
        for o in m.options:
            if o in ("shared", "rshared"):
                return "shared"
            if o in ("slave", "rslave"):
                found = "rslave"
    return found


# --------------------------------------------------------------------------- linux


def _ns_mode(value: str, flag: str) -> tuple[str, str]:
    """A --uts/--ipc/--pid value -> ("private" | "host" | "path", path)."""
    if value in ("", "private", "shareable", "none"):
        return "private", ""
    if value == "host":
        return "host", ""
    for prefix in ("path:", "ns:"):
        if value.startswith(prefix):
            path = value[len(prefix) :]
            if not os.path.isabs(path):
                raise InvalidArgument(f"--{flag} {value}: the namespace path must be absolute")
            return "path", path
    if value == "pod":  # engine/pods.py turns it into the infra's when the container joins
        from pypod.engine.rootless import NOT_IN_POD

        raise InvalidArgument(NOT_IN_POD)
    if value.startswith("container:"):
        raise InvalidArgument(
            f"--{flag} {value}: the container must be resolved to its namespace "
            "(path:/proc/PID/ns/...) before the spec is built"
        )
    raise InvalidArgument(
        f"--{flag} {value}: invalid namespace mode: use host, private, container:ID or ns:PATH"
    )


def _namespaces(cfg: ContainerConfig, netns: str | None = None) -> _Namespaces:
    if cfg.network == "host":
        net = ("host", "")
    elif cfg.network.startswith(("path:", "ns:")):
        net = _ns_mode(cfg.network, "network")
    elif netns and cfg.network.startswith("container:"):
        net = ("path", netns)  # the other container's namespace, joined
    elif cfg.network in ("", "none", "bridge", "pasta", "slirp4netns", "private"):
        net = ("private", netns or "")  # the engine's namespace (lo up), when it made one
    else:
        raise NotSupported(f"network mode '{cfg.network}' is not supported yet")
    modes = {
        "pid": _ns_mode(cfg.pid, "pid"),
        "network": net,
        "ipc": _ns_mode(cfg.ipc, "ipc"),
        "uts": _ns_mode(cfg.uts, "uts"),
    }
    spec = [
        LinuxNamespace(type=t, path=path) for t, (mode, path) in modes.items() if mode != "host"
    ]
    spec.append(LinuxNamespace(type="mount"))
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):  # cgroup v2: podman's cgroupns=private
        spec.append(LinuxNamespace(type="cgroup"))
    return _Namespaces(
        spec=tuple(spec),
        network=net[0],
        uts=modes["uts"][0],
        ipc=modes["ipc"][0],
        pid=modes["pid"][0],
    )


def _hostname(cfg: ContainerConfig, container_id: str, ns: _Namespaces) -> str:
    """--hostname; else the host's name with the host's network or UTS namespace; else the
    first 12 characters of the id.  (With another container's UTS namespace the engine is to
    pass that container's hostname.)"""
    if cfg.hostname:
        if ns.uts == "host":
            raise InvalidArgument("cannot set hostname when running in the host UTS namespace")
        return cfg.hostname
    if ns.uts == "host" or ns.network == "host":
        return os.uname().nodename
    return container_id[:12]


def _sysctls(cfg: ContainerConfig, ns: _Namespaces) -> dict[str, str]:
    out = dict(DEFAULT_SYSCTLS) if ns.network != "host" else {}
    for key, value in cfg.sysctls.items():
        if ns.ipc == "host" and key.startswith("fs.mqueue."):
            where = "IPC Namespace set to host"
        elif ns.network == "host" and key.startswith("net."):
            where = "Network Namespace set to host"
        elif ns.uts == "host" and key.startswith(("kernel.domainname", "kernel.hostname")):
            where = "UTS Namespace set to host"
        else:
            out[key] = value
            continue
        raise InvalidArgument(f"sysctl {key}={value} can't be set since {where}: invalid argument")
    return out


def _cgroups_path(cfg: ContainerConfig, container_id: str) -> str:
    if spec_limits.without_cgroups():  # rootless on cgroup v1: none (the runtime skips them)
        return ""
    parent = cfg.cgroup_parent or CGROUP_PARENT
    if parent.endswith(".slice"):
        raise InvalidArgument(
            f"systemd slice received as cgroup parent when using cgroupfs: {parent}: pypod "
            "manages cgroups with cgroupfs (no systemd here); give a path such as /mygroup"
        )
    return f"{parent.rstrip('/')}/pypod-{container_id}"


def _devices(
    cfg: ContainerConfig,
) -> tuple[tuple[LinuxDevice, ...], tuple[LinuxDeviceCgroup, ...]]:
    if not cfg.devices and not cfg.privileged:
        return (), ()
    from pypod.engine import devices

    found, rules = devices.user_devices(cfg.devices) if cfg.devices else ((), ())
    if cfg.privileged:
        taken = {d.path for d in found}
        host = devices.host_devices()
        from pypod.linux import userns

        if userns.rootless():  # bound from the host, not made: not the pty ones (podman)
            host = tuple(d for d in host if not d.path.startswith(("/dev/ptmx", "/dev/tty")))
        found = (*(d for d in host if d.path not in taken), *found)
    return found, rules


# --------------------------------------------------------------------------- annotations


def _annotations(cfg: ContainerConfig, image_config: Mapping[str, Any]) -> dict[str, str]:
    def flag(on: bool) -> str:
        return "TRUE" if on else "FALSE"

    now = time.time_ns()
    created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now // 10**9))
    out = {
        "io.container.manager": "pypod",
        "io.kubernetes.cri-o.Created": f"{created}.{now % 10**9:09d}Z",
        "io.kubernetes.cri-o.TTY": "true" if cfg.tty else "false",
        "io.podman.annotations.autoremove": flag(cfg.remove),
        "io.podman.annotations.init": flag(cfg.init),
        "io.podman.annotations.privileged": flag(cfg.privileged),
        "io.podman.annotations.publish-all": "FALSE",
        "org.opencontainers.image.stopSignal": str(_stop_signal(cfg, image_config)),
    }
    if cfg.seccomp_profile:
        out["io.podman.annotations.seccomp"] = cfg.seccomp_profile
    out.update(cfg.annotations)
    return out


def _stop_signal(cfg: ContainerConfig, image_config: Mapping[str, Any]) -> int:
    if cfg.stop_signal is not None:
        return cfg.stop_signal
    text = _image_str(image_config, "StopSignal").strip()
    if not text:
        return 15  # SIGTERM
    number = parse_signal(text)
    if number is None:
        raise InvalidArgument(f"the image's StopSignal {text!r} is not a valid signal")
    return number


def parse_signal(text: str) -> int | None:
    """A signal number from "15", "TERM", "SIGTERM" or "SIGRTMIN+3"; None if invalid."""
    if text.isdigit():
        number = int(text)
        return number if 0 < number < signal.NSIG else None
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    for base in ("SIGRTMIN", "SIGRTMAX"):
        if name.startswith(base) and name != base:
            offset = name[len(base) :]
            if offset[:1] in "+-" and offset[1:].isdigit():
                number = int(getattr(signal, base)) + int(offset)
                return number if int(signal.SIGRTMIN) <= number <= int(signal.SIGRTMAX) else None
            return None
    return signal_number(name)
