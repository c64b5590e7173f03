"""Pods: containers that share namespaces, around an infra container — podman 4.3's model.

A pod is a row of the `pods` table (its `PodConfig` as JSON).  Unless created with
`--infra=false`, it has an infra container (`<id12>-infra`, image `localhost/pypod-pause`,
built from the host's catatonit: `pod_image`) that does nothing but sleep and holds the
pod's namespaces (net, ipc, uts by default; pid and cgroup on request), its published ports,
networks, hostname, /etc/hosts additions and DNS settings; none of them can change after
creation.  A member container (`run --pod`) is an ordinary container whose config joins the
infra's namespaces (`--network/--ipc/--uts/--pid container:INFRA`, the same path as those
flags take) and requires the infra (so starting a member starts the infra first, and the
infra cannot go while members exist).  Members start and stop independently; the pod's
status follows theirs (libpod's rules: Running, Degraded, Paused, Exited, Stopped, Created).

A pod with a user namespace (`--uidmap/--gidmap`, rootless `--userns keep-id|nomap`) has it
made by its infra container (spec and root filesystem remapped as for `run --uidmap`); its
members join that namespace (`userns` `container:INFRA`, engine/rootless.py member_userns),
their root filesystems remapped with the pod's maps; like podman, a member then takes no
`--userns` or maps of its own.  A member's `--ipc/--pid/--uts pod` joins the infra's
namespace of that kind whether the pod shares it or not.
"""

from __future__ import annotations

import math
import os
import time

from pypod import jsoncodec
from pypod.engine.names import check_name
from pypod.errors import (
    AlreadyExists,
    InvalidArgument,
    InvalidState,
    NotFound,
    NotSupported,
    PypodError,
)
from pypod.record import field, fields, record, replace
from pypod.stdlite import signal as signal_mod
from pypod.stdlite import suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from pypod.engine.config import ContainerConfig
    from pypod.engine.containers import Engine
    from pypod.engine.state import Container

#: the namespaces `--share` takes, and the default set (podman's)
SHAREABLE = ("cgroup", "ipc", "net", "pid", "uts")
DEFAULT_SHARE = ("ipc", "net", "uts")
#: the cgroup pods (and so their members) live under
POD_CGROUP_PARENT = "/pypod_parent"
#: the statuses of a container that runs (or will), and of one that ended
_LIVE = frozenset({"running", "paused", "stopping"})
_ENDED = frozenset({"exited", "stopped", "stopping", "removing", "unknown"})


class PodNotFound(NotFound):
    """No pod of that name or ID."""


@record
class PodConfig:
    """What `pod create` was asked for (normalised)."""

    name: str
    hostname: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    #: the namespaces the members share with the infra container
    share: tuple[str, ...] = DEFAULT_SHARE
    infra: bool = True
    infra_name: str = ""
    #: `--infra-command`: None keeps the image's entrypoint
    infra_command: tuple[str, ...] | None = None
    infra_image: str = ""
    #: the infra container's network: as ContainerConfig's fields
    network: str = ""
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    ports: tuple[dict[str, Any], ...] = ()
    dns_servers: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    add_hosts: tuple[tuple[str, str], ...] = ()
    no_hosts: bool = False
    #: the parent of the pod's cgroup (`--cgroup-parent`)
    cgroup_parent: str = ""
    #: pod-wide limits on the pod's cgroup (`--memory` bytes, `--cpus`)
    memory: int | None = None
    cpus: float | None = None
    #: `--userns` ("", host; keep-id, nomap rootless), `--uidmap`/`--gidmap` as given: the
    #: infra container's user namespace, which the members join (engine/rootless.py)
    userns: str = ""
    uidmap: tuple[str, ...] = ()
    gidmap: tuple[str, ...] = ()
    exit_policy: str = "continue"
    create_command: tuple[str, ...] = ()
    #: `--infra-conmon-pidfile`: the infra container's monitor pid, written at each start
    infra_conmon_pidfile: str = ""


@record(frozen=False)
class Pod:
    id: str
    name: str
    config: PodConfig
    created: float = 0.0
    infra_id: str = ""

    @property
    def cgroup_path(self) -> str:
        return f"{(self.config.cgroup_parent or POD_CGROUP_PARENT).rstrip('/')}/{self.id}"


# --- JSON ---------------------------------------------------------------------------------------
def _dump(cfg: PodConfig, infra_id: str) -> str:
    out: dict[str, Any] = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    out["infra_id"] = infra_id
    return jsoncodec.dumps(out, separators=(",", ":"))


def _load(row: tuple[Any, ...]) -> Pod:
    data = jsoncodec.loads(row[2])
    infra_id = str(data.pop("infra_id", ""))
    known = {f.name for f in fields(PodConfig)}
    kw = {k: v for k, v in data.items() if k in known}
    for name in ("share", "ports", "dns_servers", "dns_search", "dns_options", "create_command",
                 "uidmap", "gidmap"):  # fmt: skip
        if name in kw:
            kw[name] = tuple(kw[name])
    if kw.get("infra_command") is not None:
        kw["infra_command"] = tuple(kw["infra_command"])
    if "add_hosts" in kw:
        kw["add_hosts"] = tuple(tuple(p) for p in kw["add_hosts"])
    return Pod(id=row[0], name=row[1], config=PodConfig(**kw), created=row[3], infra_id=infra_id)


def parse_share(text: str | None) -> tuple[str, ...]:
    """`--share ipc,net` (replaces the default), `--share +pid` (adds to it), `--share ""`."""
    if text is None:
        return DEFAULT_SHARE
    if text.strip() in ("", "none"):
        return ()
    add = text.startswith("+")
    wanted = [s.strip() for s in text.lstrip("+").split(",") if s.strip()]
    for ns in wanted:
        if ns not in SHAREABLE:
            raise InvalidArgument(
                f"invalid kernel namespace to share: {ns}. Options are: cgroup, ipc, net, pid, "
                "uts or none"
            )
    out = list(DEFAULT_SHARE) if add else []
    out += [ns for ns in wanted if ns not in out]
    return tuple(sorted(out))


# --- status ---------------------------------------------------------------------------------------
def pod_status(statuses: Iterable[str]) -> str:
    """The pod's status from its containers' (pypod's statuses), as libpod's
    createPodStatusResults decides it."""
    counts = {"running": 0, "stopped": 0, "paused": 0, "created": 0, "error": 0}
    total = 0
    for s in statuses:
        total += 1
        if s in ("exited", "stopped"):
            counts["stopped"] += 1
        elif s == "running":
            counts["running"] += 1
        elif s == "paused":
            counts["paused"] += 1
        elif s in ("configured", "created"):
            counts["created"] += 1
        else:
            counts["error"] += 1
    if total == 0:
        return "Created"
    if counts["running"] == total:
        return "Running"
    if counts["running"]:
        return "Degraded"
    if counts["paused"] == total:
        return "Paused"
    if counts["stopped"] == total:
        return "Exited"
    if counts["stopped"]:
        return "Stopped"
    if counts["error"]:
        return "Error"
    return "Created"


class Pods:
    """The pods of one engine (its store and state database)."""

    def __init__(self, eng: Engine) -> None:
        self.eng = eng

    # --- lookup -------------------------------------------------------------------------------
    def lookup(self, id_or_name: str) -> Pod:
        """A pod by full ID, name, or unique ID prefix."""
        if not id_or_name:
            raise InvalidArgument("a pod name or ID is needed")
        db = self.eng.db
        rows = db.query(
            "SELECT id, name, config, created FROM pods WHERE id = ? OR name = ?",
            (id_or_name, id_or_name),
        )
        if not rows and all(c in "0123456789abcdef" for c in id_or_name):
            rows = db.query(
                "SELECT id, name, config, created FROM pods WHERE id >= ? AND id < ? LIMIT 2",
                (id_or_name, id_or_name + "g"),
            )
            if len(rows) > 1:
                raise InvalidArgument(
                    f"more than one result for pod ID {id_or_name}: use a longer ID or the name"
                )
        if not rows:
            raise PodNotFound(f"no pod with name or ID {id_or_name} found: no such pod")
        return _load(rows[0])

    def exists(self, id_or_name: str) -> bool:
        try:
            self.lookup(id_or_name)
        except PodNotFound:
            return False
        return True

    def list_pods(self) -> list[Pod]:
        rows = self.eng.db.query("SELECT id, name, config, created FROM pods ORDER BY created")
        return [_load(r) for r in rows]

    def members(self, pod: Pod, containers: list[Container] | None = None) -> list[Container]:
        """The pod's containers, the infra one included, sorted by ID (as podman lists them)."""
        found = self.eng.containers() if containers is None else containers
        return sorted((c for c in found if c.config.pod == pod.id), key=lambda c: c.id)

    def status(self, pod: Pod, members: list[Container] | None = None) -> str:
        return pod_status(c.status for c in (self.members(pod) if members is None else members))

    # --- create -------------------------------------------------------------------------------
    def create(self, cfg: PodConfig) -> Pod:
        """A new pod and (unless `cfg.infra` is off) its infra container, created not started."""
        eng = self.eng
        name = cfg.name
        if name:
            check_name(name)
        from pypod.engine.rootless import userns_plan

        userns_plan(cfg.userns, cfg.uidmap, cfg.gidmap)  # refused before anything is made
        if cfg.infra and not cfg.share:  # `--share none`: no infra container (podman 4.3)
            if cfg.ports:
                raise InvalidArgument(
                    "you must have an infra container to publish port bindings to the host"
                )
            cfg = replace(cfg, infra=False)
        if not cfg.infra and (cfg.ports or cfg.network or cfg.networks):
            raise InvalidArgument(
                "you must have an infra container to publish port bindings or set networks: "
                "invalid argument"
            )
        if not cfg.infra and cfg.share and cfg.share != DEFAULT_SHARE:
            raise InvalidArgument("you must have an infra container to share namespaces")
        pid = os.urandom(32).hex()  # not `secrets`: it loads OpenSSL (~4 ms), on `run --pod`'s path
        if not name:
            name = self._free_name()
        if eng.db.query("SELECT 1 FROM pods WHERE name = ?", (name,)):
            raise AlreadyExists(f'adding pod to state: name "{name}" is in use: pod already exists')
        if eng.db.query("SELECT 1 FROM containers WHERE name = ?", (name,)) and cfg.infra:
            pass  # a container may share the pod's name (podman allows it too)
        share = cfg.share if cfg.infra else ()
        cfg = replace(cfg, name=name, share=share)
        now = time.time()
        pod = Pod(id=pid, name=name, config=cfg, created=now)
        with eng.db.transaction():
            eng.db.execute(
                "INSERT INTO pods (id, name, config, created) VALUES (?, ?, ?, ?)",
                (pid, name, _dump(cfg, ""), now),
            )
        try:
            self._make_cgroup(pod)
            if cfg.infra:
                infra = self._create_infra(pod)
                pod.infra_id = infra.id
                with eng.db.transaction():
                    eng.db.execute("UPDATE pods SET config = ? WHERE id = ?",
                                   (_dump(cfg, infra.id), pid))  # fmt: skip
            with eng.db.transaction():
                eng.event("pod", "create", pid, name, {})
        except BaseException:
            with suppress(PypodError, OSError):
                self._forget(pod)
            raise
        return pod

    def _free_name(self) -> str:
        from pypod.engine.names import random_name

        for _ in range(100):
            name = random_name()
            if not self.eng.db.query("SELECT 1 FROM pods WHERE name = ?", (name,)):
                return name
        raise AlreadyExists("could not find a free random name: give the pod one with --name")

    def _create_infra(self, pod: Pod) -> Container:
        from pypod.engine.config import ContainerConfig
        from pypod.engine.pod_image import ensure_pause_image

        cfg = pod.config
        if cfg.infra_image:
            from pypod.image.local import find_image

            image_name, image_id = cfg.infra_image, find_image(self.eng.store, cfg.infra_image).id
        else:
            image_name, image_id = ensure_pause_image(self.eng)
        infra = ContainerConfig(
            image=image_name,
            image_id=image_id,
            name=cfg.infra_name or f"{pod.id[:12]}-infra",
            entrypoint=cfg.infra_command,
            # the pod's name unless one was given (podman's), also when the pod does not
            # share its UTS namespace (a member's `--uts pod` joins it)
            hostname=cfg.hostname or pod.name,
            network=cfg.network if "net" in cfg.share else "",
            networks=dict(cfg.networks) if "net" in cfg.share else {},
            ports=cfg.ports,
            dns_servers=cfg.dns_servers,
            dns_search=cfg.dns_search,
            dns_options=cfg.dns_options,
            add_hosts=cfg.add_hosts,
            no_hosts=cfg.no_hosts,
            cgroup_parent=pod.cgroup_path,
            pod=pod.id,
            infra=True,
            stop_timeout=10,
            labels={},
            conmon_pidfile=cfg.infra_conmon_pidfile,
            # the pod's user namespace is the infra container's (members join it)
            userns=cfg.userns if shares_user(cfg) else "",
            uidmap=cfg.uidmap if shares_user(cfg) else (),
            gidmap=cfg.gidmap if shares_user(cfg) else (),
        )
        return self.eng.create(infra)

    def _make_cgroup(self, pod: Pod) -> None:
        """The pod's cgroup, with its limits (`--memory`, `--cpus`); the runtime makes the
        members' cgroups below it."""
        cfg = pod.config
        if cfg.memory is None and cfg.cpus is None:
            return
        from pypod.engine import rootless

        if rootless.without_cgroups():
            raise NotSupported(
                "pod resource limits are not supported yet without cgroups a user may manage "
                "(rootless on cgroup v1)"
            )
        from pypod.linux.cgroups import new_manager
        from pypod.oci.runtime_spec import LinuxCPU, LinuxMemory, LinuxResources

        cpu = None
        if cfg.cpus is not None:
            period = 100000
            cpu = LinuxCPU(quota=int(cfg.cpus * period), period=period)
        memory = LinuxMemory(limit=cfg.memory) if cfg.memory is not None else None
        manager = new_manager(pod.cgroup_path, pod.id)
        manager.create()
        manager.set_resources(LinuxResources(memory=memory, cpu=cpu))

    def _remove_cgroup(self, pod: Pod) -> None:
        """The pod's cgroup goes with it (the runtime made it as the members' parent even
        without limits)."""
        from pypod.engine import rootless

        if rootless.without_cgroups():
            return
        from pypod.linux.cgroups import new_manager

        with suppress(PypodError, OSError):
            new_manager(pod.cgroup_path, pod.id).destroy()

    def _forget(self, pod: Pod) -> None:
        for c in self.members(pod):
            with suppress(PypodError):
                self.eng.remove(c.id, force=True, timeout=0, infra_ok=True)
        self._remove_cgroup(pod)
        with self.eng.db.transaction():
            self.eng.db.execute("DELETE FROM pods WHERE id = ?", (pod.id,))

    # --- members ------------------------------------------------------------------------------
    def join(self, cfg: ContainerConfig) -> ContainerConfig:
        """A container's config made a member of `cfg.pod` (a name, an ID, or `new:NAME`,
        which creates the pod with the container's ports and network)."""
        ref = cfg.pod
        if ref.startswith("new:"):
            name = ref[len("new:") :]
            if not name:
                raise InvalidArgument("new pod name must be at least one character")
            pod = self.create(
                PodConfig(
                    name=name,
                    network=cfg.network,
                    networks=dict(cfg.networks),
                    ports=cfg.ports,
                    dns_servers=cfg.dns_servers,
                    dns_search=cfg.dns_search,
                    dns_options=cfg.dns_options,
                    add_hosts=cfg.add_hosts,
                    hostname=cfg.hostname or "",
                    # `run --pod new:P --userns/--uidmap`: the new pod's (podman's)
                    userns=cfg.userns,
                    uidmap=cfg.uidmap,
                    gidmap=cfg.gidmap,
                )
            )
            cfg = replace(cfg, network="", networks={}, ports=(), dns_servers=(), dns_search=(),
                          dns_options=(), add_hosts=(), hostname=None, userns="", uidmap=(),
                          gidmap=())  # fmt: skip
        else:
            if cfg.userns:
                raise InvalidArgument("--userns and --pod cannot be set together")
            pod = self.lookup(ref)
        share = pod.config.share if pod.infra_id else ()
        changes: dict[str, Any] = {"pod": pod.id, "cgroup_parent": cfg.cgroup_parent}
        if not cfg.cgroup_parent:
            changes["cgroup_parent"] = pod.cgroup_path
        pod_modes = [k for k in ("ipc", "uts", "pid") if getattr(cfg, k) == "pod"]
        if not pod.infra_id:
            if pod_modes:
                from pypod.engine.rootless import NOT_IN_POD

                raise InvalidArgument(NOT_IN_POD)
            return replace(cfg, **changes)
        if cfg.uidmap or cfg.gidmap:
            raise InvalidArgument(
                "cannot specify a new uid/gid map when entering a pod with an infra container: "
                "invalid argument"
            )
        infra = f"container:{pod.infra_id}"
        if shares_user(pod.config):
            from pypod.engine.rootless import member_userns

            pc = pod.config
            changes.update(member_userns(pod.infra_id, pc.userns, pc.uidmap, pc.gidmap))
        if "net" in share:
            if cfg.ports or cfg.publish_all:
                raise InvalidArgument(
                    "invalid config provided: published or exposed ports must be defined when "
                    "the pod is created: network cannot be configured when it is shared with a pod"
                )
            if cfg.network not in ("", "bridge") or cfg.networks:
                raise InvalidArgument(
                    "invalid config provided: networks must be defined when the pod is created: "
                    "network cannot be configured when it is shared with a pod"
                )
            changes.update(network=infra, networks={})
            # the pod's name servers and hosts, unless the container names its own
            pc = pod.config
            changes["dns_servers"] = cfg.dns_servers or pc.dns_servers
            changes["dns_search"] = cfg.dns_search or pc.dns_search
            changes["dns_options"] = cfg.dns_options or pc.dns_options
            changes["add_hosts"] = (*pc.add_hosts, *cfg.add_hosts)
        for ns, kind in (("ipc", "ipc"), ("uts", "uts"), ("pid", "pid")):
            # `--ipc pod` (podman's FromPod): the infra's, even when the pod does not share it
            if (ns in share and not getattr(cfg, kind)) or kind in pod_modes:
                changes[kind] = infra
        if ("uts" in share or "uts" in pod_modes) and cfg.hostname:
            raise InvalidArgument(
                "invalid config provided: cannot set hostname when joining the pod UTS "
                "namespace: invalid configuration"
            )
        changes["requires"] = tuple(dict.fromkeys((*cfg.requires, pod.infra_id)))
        return replace(cfg, **changes)

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self, id_or_name: str) -> Pod:
        """Start the infra container, then every member not running."""
        pod = self.lookup(id_or_name)
        members = self.members(pod)
        errors = self._each(
            self._ordered(pod, members, infra_first=True),
            lambda c: None if c.status in ("running", "paused") else self.eng.start(c.id),
        )
        self._event(pod, "start")
        self._raise(pod, errors, "starting")
        return pod

    def stop(self, id_or_name: str, *, timeout: int | None = None) -> Pod:
        """Stop the members, then the infra container (`timeout`: each one's --stop-timeout)."""
        pod = self.lookup(id_or_name)
        errors = self._stop_all(pod, self.members(pod), timeout)
        self._event(pod, "stop")
        self._raise(pod, errors, "stopping")
        return pod

    def stop_if_only_infra_remains(self, pod_id: str, ended: str) -> None:
        """`--exit-policy=stop`: once a member (`ended`) exited or went, the pod stops when no
        other member is left that is not exited or stopped (libpod's stopIfOnlyInfraRemains)."""
        try:
            pod = self.lookup(pod_id)
        except PodNotFound:
            return
        if pod.config.exit_policy != "stop" or not pod.infra_id:
            return
        members = self.members(pod)
        for c in members:
            if c.id not in (pod.infra_id, ended) and c.status not in _ENDED:
                return
        if any(c.id == pod.infra_id and c.status in _LIVE for c in members):
            self.stop(pod.id)

    def restart(self, id_or_name: str, *, timeout: int | None = None) -> Pod:
        self.stop(id_or_name, timeout=timeout)
        pod = self.start(id_or_name)
        self._event(pod, "restart")
        return pod

    def kill(self, id_or_name: str, sig: int = signal_mod.SIGKILL) -> Pod:
        pod = self.lookup(id_or_name)
        live = [c for c in self.members(pod) if c.status in ("running", "paused")]
        if not live:
            raise InvalidState(f"pod {pod.id} has no running containers: container state improper")
        errors = self._each(live, lambda c: self.eng.kill(c.id, sig))
        self._event(pod, "kill")
        self._raise(pod, errors, "killing")
        return pod

    def pause(self, id_or_name: str) -> Pod:
        pod = self.lookup(id_or_name)
        running = [c for c in self.members(pod) if c.status == "running"]
        errors = self._each(running, lambda c: self.eng.pause(c.id))
        self._event(pod, "pause")
        self._raise(pod, errors, "pausing")
        return pod

    def unpause(self, id_or_name: str) -> Pod:
        pod = self.lookup(id_or_name)
        paused = [c for c in self.members(pod) if c.status == "paused"]
        errors = self._each(paused, lambda c: self.eng.unpause(c.id))
        self._event(pod, "unpause")
        self._raise(pod, errors, "unpausing")
        return pod

    def remove(self, id_or_name: str, *, force: bool = False, timeout: int | None = None) -> str:
        """Remove the pod: its members first, then its infra container (`force`: stop them)."""
        pod = self.lookup(id_or_name)
        members = self.members(pod)
        live = [c for c in members if c.status in ("created", "running", "paused", "stopping")]
        if live and not force:
            running = live[0]
            raise InvalidState(
                f"pod {pod.id} has containers that are not ready to be removed: cannot remove "
                f"container {running.id} as it is {_shown(running)} - running or paused "
                "containers cannot be removed without force: container state improper"
            )
        if live:
            self._raise(pod, self._stop_all(pod, members, timeout), "stopping")
        errors = self._each(
            self._ordered(pod, members, infra_first=False),
            lambda c: self.eng.remove(
                c.id, force=True, volumes=False, timeout=timeout, infra_ok=True
            ),  # fmt: skip
        )
        self._raise(pod, errors, "removing")
        self._remove_cgroup(pod)
        with self.eng.db.transaction():
            self.eng.db.execute("DELETE FROM pods WHERE id = ?", (pod.id,))
            self.eng.event("pod", "remove", pod.id, pod.name, {})
        return pod.id

    def prune(self) -> list[str]:
        """Remove the pods whose containers all ended (Exited or Stopped, as podman)."""
        containers = self.eng.containers()
        done = []
        for pod in self.list_pods():
            if self.status(pod, self.members(pod, containers)) in ("Exited", "Stopped"):
                with suppress(PodNotFound):
                    done.append(self.remove(pod.id, force=True))
        return done

    def _stop_all(self, pod: Pod, members: list[Container], timeout: int | None
                  ) -> list[tuple[str, str]]:  # fmt: skip
        """Stop the members, then the infra container.  All members get their stop signal at
        once and their timeouts run together (as podman stops a pod's containers in
        parallel), so a pod stops in one timeout, not one per container."""
        ordered = self._ordered(pod, members, infra_first=False)
        live = [c for c in ordered if c.status in ("running", "paused", "created", "stopping")]
        # each stop below cleans up after its container: said to the monitors before the
        # signals, so that none of them starts `container cleanup` meanwhile
        claims = {c.id: self.eng.claim_cleanup(c, in_pod_stop=True) for c in live}
        started = time.monotonic()
        for c in live:
            wait = c.config.stop_timeout if timeout is None else timeout
            if c.status != "running":
                continue
            sig = (c.config.stop_signal or signal_mod.SIGTERM) if wait > 0 else signal_mod.SIGKILL
            with suppress(PypodError, OSError):
                self.eng.runtime(c).kill(c.id, sig)

        def stop(c: Container) -> object:
            wait = c.config.stop_timeout if timeout is None else timeout
            left = max(0, math.ceil(wait - (time.monotonic() - started))) if wait > 0 else 0
            return self.eng.stop(c.id, timeout=left, claim=claims.pop(c.id, None),
                                 in_pod_stop=True)  # fmt: skip

        try:
            return self._each(ordered, stop)
        finally:
            for claim in claims.values():  # a stop that never ran: the monitor cleans up
                if claim is not None:
                    claim.close()

    # --- helpers ------------------------------------------------------------------------------
    def _ordered(self, pod: Pod, members: list[Container], *, infra_first: bool) -> list[Container]:
        infra = [c for c in members if c.id == pod.infra_id]
        others = [c for c in members if c.id != pod.infra_id]
        return [*infra, *others] if infra_first else [*others, *infra]

    @staticmethod
    def _each(
        items: list[Container], action: Callable[[Container], object]
    ) -> list[tuple[str, str]]:
        errors = []
        for c in items:
            try:
                action(c)
            except PypodError as e:
                errors.append((c.id, str(e)))
        return errors

    @staticmethod
    def _raise(pod: Pod, errors: list[tuple[str, str]], what: str) -> None:
        if not errors:
            return
        if len(errors) == 1:
            cid, message = errors[0]
            raise PodPartialFailure(f"{what} container {cid}: {message}")
        lines = "".join(f"\n\t* {what} container {cid}: {m}" for cid, m in errors)
        raise PodPartialFailure(f"{len(errors)} errors occurred:{lines}")

    def _event(self, pod: Pod, action: str) -> None:
        with self.eng.db.transaction():
            self.eng.event("pod", action, pod.id, pod.name, {})

    # --- inspect ------------------------------------------------------------------------------
    def inspect(self, pod: Pod, containers: list[Container] | None = None) -> dict[str, Any]:
        """`pod inspect`'s document, with podman 4.3's field names."""
        from pypod.engine.networking import port_bindings
        from pypod.image.local import go_time

        members = self.members(pod, containers)
        cfg = pod.config
        infra = next((c for c in members if c.id == pod.infra_id), None)
        out: dict[str, Any] = {
            "Id": pod.id,
            "Name": pod.name,
            "Created": go_time(pod.created),
            "CreateCommand": list(cfg.create_command) or None,
            "ExitPolicy": cfg.exit_policy,
            "State": self.status(pod, members),
            "Hostname": cfg.hostname,
            "Labels": dict(cfg.labels) or None,
            "CreateCgroup": bool(pod.infra_id),
            "CgroupParent": cfg.cgroup_parent or POD_CGROUP_PARENT,
            "CgroupPath": pod.cgroup_path if pod.infra_id else None,
            "CreateInfra": bool(pod.infra_id),
            "InfraContainerID": pod.infra_id or None,
        }
        if infra is not None:
            ic = infra.config
            network = ic.network
            out["InfraConfig"] = {
                "PortBindings": port_bindings(infra),
                "HostNetwork": network == "host",
                "StaticIP": "",
                "StaticMAC": "",
                "NoManageResolvConf": False,
                "DNSServer": list(ic.dns_servers) or None,
                "DNSSearch": list(ic.dns_search) or None,
                "DNSOption": list(ic.dns_options) or None,
                "NoManageHosts": ic.no_hosts,
                "HostAdd": [f"{n}:{ip}" for n, ip in ic.add_hosts] or None,
                "Networks": list(ic.networks) or None,
                "NetworkOptions": None,
                "pid_ns": "private",
                "userns": _userns_shown(cfg),
                "uts_ns": "private",
            }
        if cfg.memory is not None:
            out["memory_limit"] = cfg.memory
        if cfg.cpus is not None:
            out["CPUPeriod"] = 100000
            out["CPUQuota"] = int(cfg.cpus * 100000)
        shared = [*cfg.share, "user"] if pod.infra_id and shares_user(cfg) else list(cfg.share)
        out["SharedNamespaces"] = sorted(shared) or None
        out["NumContainers"] = len(members)
        out["Containers"] = [
            {"Id": c.id, "Name": c.name, "State": _shown(c)} for c in members
        ] or None
        return {k: v for k, v in out.items() if v is not None or k in _KEEP_NULL}


def shares_user(cfg: PodConfig) -> bool:
    """Whether the pod has a user namespace of its own, the infra container's, which its
    members join (podman: with an infra container that shares any namespace, `user` is
    among the shared ones)."""
    return bool(cfg.infra and cfg.share and (cfg.uidmap or cfg.gidmap or
                                            cfg.userns not in ("", "host")))  # fmt: skip


def _userns_shown(cfg: PodConfig) -> str:
    """`pod inspect`'s InfraConfig.userns: as podman's Pod.NamespaceMode, "private" when the
    infra container's spec makes a user namespace (keep-id and nomap too), else "host"."""
    return "private" if shares_user(cfg) else "host"


#: the fields podman prints even when empty
_KEEP_NULL = frozenset({"InfraConfig"})


class PodPartialFailure(PypodError):
    """Some of a pod's containers failed the step (each one's error is in the message)."""


def _shown(c: Container) -> str:
    from pypod.engine.state import shown_status

    return shown_status(c.status)


def pod_of(eng: Engine, c: Container) -> Pod | None:
    """The pod `c` belongs to, if any."""
    if not c.config.pod:
        return None
    with suppress(PodNotFound):
        return Pods(eng).lookup(c.config.pod)
    return None


def infra_refusal(eng: Engine, c: Container, *, force: bool = False) -> str | None:
    """Why `c` may not be removed on its own (it is a pod's infra container), or None.

    With `force`, the infra container of a pod with no other container may go (the pod
    goes with it: what `rm -af` does once the members are gone)."""
    if not c.config.infra or not c.config.pod:
        return None
    rows = eng.db.query("SELECT 1 FROM pods WHERE id = ?", (c.config.pod,))
    if not rows:
        return None
    others = eng.db.query(
        "SELECT 1 FROM containers WHERE id != ? AND json_extract(config, '$.pod') = ? LIMIT 1",
        (c.id, c.config.pod),
    )
    if force and not others:
        return None
    return (
        f"container {c.id} is the infra container of pod {c.config.pod} and cannot be removed "
        "without removing the pod"
    )


__all__ = [
    "DEFAULT_SHARE",
    "Pod",
    "PodConfig",
    "PodNotFound",
    "PodPartialFailure",
    "Pods",
    "infra_refusal",
    "parse_share",
    "pod_of",
    "pod_status",
    "shares_user",
]
