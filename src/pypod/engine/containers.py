"""Containers: create, start, stop, kill, remove, wait, list — the engine's lifecycle.

One `Engine` per command: the storage (`pypod.storage.Store`, the containers' read-write
layers) and the state DB (`engine.db`), both under `--root`; run-time files under `--runroot`.
Lifecycle steps on one container take its file lock (`<runroot>/locks/<id>.lock`), so a CLI's
`stop` and the monitor's exit command never step on each other; state changes are DB
transactions.  Nothing here waits for a container while holding its lock.

Process model (DESIGN.md): `start` mounts the root, writes config.json, spawns the monitor
(`pypod.monitor.spawn`), which creates the container through the OCI runtime; the engine then
tells it to start.  When the process exits, the monitor writes the exit file and runs
`pypod container cleanup ID`, which records the exit, unmounts, and carries out `--rm` and the
restart policy.
"""

from __future__ import annotations

import os
import sys
import time

from pypod import jsoncodec
from pypod.atomic import write_atomic
from pypod.engine.config import ContainerConfig, Healthcheck, from_json, to_json
from pypod.engine.db import EngineDB
from pypod.engine.names import check_name, random_name
from pypod.engine.state import (
    LIVE,
    Container,
    Paths,
    exited_state,
    process_alive,
    read_exit_file,
    shown_status,
)
from pypod.errors import (
    AlreadyExists,
    ContainerNotFound,
    InvalidArgument,
    InvalidState,
    PypodError,
)
from pypod.log import get_logger
from pypod.record import replace
from pypod.stdlite import contextmanager, signal_name, suppress
from pypod.stdlite import signal as signal_mod
from pypod.storage.locks import FileLock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from pypod.runtime.oci_runtime import OCIRuntime
    from pypod.storage.store import Store

log = get_logger(__name__)


class Engine:
    """The containers of one store (`--root`) and run directory (`--runroot`)."""

    def __init__(self, graphroot: str, runroot: str, *, driver: str | None = None) -> None:
        self.paths = Paths(graphroot=os.path.abspath(graphroot), runroot=os.path.abspath(runroot))
        self.driver = driver
        os.makedirs(self.paths.graphroot, mode=0o700, exist_ok=True)
        os.makedirs(self.paths.runroot, mode=0o700, exist_ok=True)
        self.db = EngineDB(self.paths.database)
        self._store: Store | None = None
        #: image ID -> the image's `config` (an image's ID is its config's digest: never stale)
        self._image_configs: dict[str, dict[str, Any]] = {}
        if not os.path.exists(self.paths.alive_marker):
            self._refresh()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        self.db.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def store(self) -> Store:
        if self._store is None:
            from pypod.storage.store import Store

            if self.driver:
                self._store = Store.open(self.paths.graphroot, self.paths.runroot, self.driver)
            else:
                self._store = Store.open(self.paths.graphroot, self.paths.runroot)
        return self._store

    # --- lookup ---------------------------------------------------------------------------------
    def _row(self, cid: str) -> Container | None:
        rows = self.db.query(
            "SELECT id, name, config, state, created FROM containers WHERE id = ?", (cid,)
        )
        return _container(rows[0]) if rows else None

    def lookup(self, id_or_name: str) -> Container:
        """A container by full ID, name, or unique ID prefix (podman's rules)."""
        if not id_or_name:
            raise InvalidArgument("a container name or ID is needed")
        rows = self.db.query(
            "SELECT id, name, config, state, created FROM containers WHERE id = ? OR name = ?",
            (id_or_name, id_or_name),
        )
        if not rows and all(c in "0123456789abcdef" for c in id_or_name):
            rows = self.db.query(
                "SELECT id, name, config, state, created FROM containers "
                "WHERE id >= ? AND id < ? LIMIT 2",
                (id_or_name, id_or_name + "g"),
            )
            if len(rows) > 1:
                raise InvalidArgument(
                    f"more than one result for container ID {id_or_name}: "
                    "use a longer ID or the name"
                )
        if not rows:
            raise ContainerNotFound(
                f'no container with name or ID "{id_or_name}" found: no such container'
            )
        return self.sync(_container(rows[0]))

    def containers(self) -> list[Container]:
        rows = self.db.query(
            "SELECT id, name, config, state, created FROM containers ORDER BY created"
        )
        return [self.sync(_container(r)) for r in rows]

    def latest(self) -> Container:
        rows = self.db.query(
            "SELECT id, name, config, state, created FROM containers "
            "ORDER BY created DESC LIMIT 1"
        )
        if not rows:
            raise ContainerNotFound("no containers to use as the latest container")
        return self.sync(_container(rows[0]))

    # --- state ----------------------------------------------------------------------------------
    def save_state(self, c: Container) -> None:
        self.db.execute(
            "UPDATE containers SET state = ? WHERE id = ?", (self.db.dumps(c.state), c.id)
        )

    def sync(self, c: Container) -> Container:
        """Bring `c`'s state up to date with its exit file or, if its monitor died, the kernel."""
        if c.status not in LIVE:
            return c
        info = read_exit_file(self.paths.exit_file(c.id))
        if info is None:
            monitor = int(c.state.get("monitor_pid", 0))
            if process_alive(monitor, int(c.state.get("monitor_start", 0))):
                return c
            if process_alive(int(c.state.get("pid", 0)), int(c.state.get("pid_start", 0))):
                return c  # the monitor died; the container runs on (stop/rm still work)
        new = exited_state(c.state, info)
        with self.db.transaction():
            current = self._row(c.id)
            if current is None or current.status not in LIVE:
                return current or c
            c.state = new
            self.save_state(c)
        if info is None:
            # the monitor died with the container: nobody ran its cleanup (network, mounts)
            with suppress(PypodError, OSError):
                self._cleanup(c, from_monitor=False)
        return c

    def _refresh(self) -> None:
        """The run directory is new (a reboot, or --runroot emptied): nothing runs any more.

        What a container's network left on the host is undone (after a reboot there is none
        left; with only the run directory emptied, its veth, rules and leases still are)."""
        from pypod.engine.networking import detach

        with self.db.transaction():
            for row in self.db.query("SELECT id, name, config, state, created FROM containers"):
                c = _container(row)
                if c.status in LIVE:
                    c.state = exited_state(c.state, None)
                if c.state.get("networks") or c.state.get("netns"):
                    with suppress(PypodError, OSError):
                        detach(self, c)
                c.state["mountpoint"] = ""
                c.state["monitor_pid"] = 0
                c.state["pid"] = 0
                self.save_state(c)
            write_atomic(self.paths.alive_marker, b"")

    @contextmanager
    def locked(self, cid: str) -> Iterator[None]:
        os.makedirs(os.path.dirname(self.paths.lock(cid)), exist_ok=True)
        lock = FileLock(self.paths.lock(cid))
        lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def runtime(self, c: Container) -> OCIRuntime:
        from pypod.runtime.oci_runtime import open_runtime

        name = c.config.runtime
        return open_runtime(name, self.paths.runtime_root(name))

    # --- create ---------------------------------------------------------------------------------
    def create(self, cfg: ContainerConfig, *, replace_existing: bool = False,
               create_command: tuple[str, ...] = ()) -> Container:  # fmt: skip
        """A new container (status `configured`): its read-write layer and its DB row.

        `create_command`: the command line that created it (inspect's Config.CreateCommand).
        `cfg.pod`: the container joins that pod's namespaces (`new:NAME`: a new pod, removed
        again when the container cannot be created).
        """
        if not cfg.pod or cfg.infra:
            return self._create(cfg, replace_existing, create_command)
        from pypod.engine.pods import Pods

        pods = Pods(self)
        made = cfg.pod.startswith("new:")
        cfg = pods.join(cfg)
        try:
            return self._create(cfg, replace_existing, create_command)
        except BaseException:
            if made:
                with suppress(PypodError, OSError):
                    pods.remove(cfg.pod, force=True, timeout=0)
            raise

    def _create(self, cfg: ContainerConfig, replace_existing: bool,
                create_command: tuple[str, ...]) -> Container:  # fmt: skip
        name = cfg.name or self._free_name()
        check_name(name)
        if replace_existing:
            with suppress(ContainerNotFound):
                self.remove(self.lookup(name).id, force=True)
        elif self.db.query("SELECT 1 FROM containers WHERE name = ?", (name,)):
            raise AlreadyExists(self._name_in_use(name))
        cfg = self._with_image_defaults(cfg)
        cfg = replace(cfg, mounts=self._volumes_from(cfg))
        from pypod.engine.networking import resolve

        cfg = resolve(self, cfg, self._image_config(cfg.image_id))
        if cfg.requires:
            cfg = replace(cfg, requires=tuple(self.lookup(r).id for r in cfg.requires))
        for kind in ("uts", "ipc", "pid"):  # `container:NAME` kept as `container:ID`
            value = getattr(cfg, kind)
            if value.startswith("container:"):
                other = self.lookup(value.partition(":")[2])
                cfg = replace(cfg, **{kind: f"container:{other.id}"})
        storage = self.store.create_container(cfg.image_id, names=[name], volatile=cfg.remove)
        cid = storage.id
        try:
            cfg = replace(cfg, name=name, mounts=self._resolve_volumes(cid, cfg))
            os.makedirs(self.paths.userdata(cid), mode=0o700, exist_ok=True)
            now = time.time()
            state: dict[str, Any] = {"status": "configured"}
            if create_command:
                state["create_command"] = list(create_command)
            with self.db.transaction():
                if self.db.query("SELECT 1 FROM containers WHERE name = ?", (name,)):
                    raise AlreadyExists(self._name_in_use(name))
                self.db.execute(
                    "INSERT INTO containers (id, name, config, state, created) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (cid, name, self.db.dumps(to_json(cfg)), self.db.dumps(state), now),
                )  # fmt: skip
                self.event("container", "create", cid, name,
                           {"image": cfg.image, "labels": dict(cfg.labels)})  # fmt: skip
        except BaseException:
            with suppress(PypodError, OSError):
                self.store.delete_container(cid)
            self._remove_files(cid)
            raise
        return Container(id=cid, name=name, config=cfg, state=state, created=now)

    def _image_config(self, image_id: str) -> dict[str, Any]:
        """The image's `config` (read once per Engine: create and init ask for it 3 times)."""
        found = self._image_configs.get(image_id)
        if found is None:
            from pypod.image.lookup import image_config

            config = image_config(self.store, self.store.image(image_id)).get("config")
            found = self._image_configs[image_id] = config if isinstance(config, dict) else {}
        return found

    def _with_image_defaults(self, cfg: ContainerConfig) -> ContainerConfig:
        """What the image says and the flags did not: StopSignal, and a volume for each of its
        VOLUMEs (anonymous, as podman makes them) not already mounted by a flag."""
        from pypod.engine.config import MountSpec

        image = self._image_config(cfg.image_id)
        if cfg.stop_signal is None and image.get("StopSignal"):
            from pypod.engine.spec import parse_signal

            sig = parse_signal(str(image["StopSignal"]))
            if sig is not None:
                cfg = replace(cfg, stop_signal=sig)
        taken = {m.destination.rstrip("/") or "/" for m in cfg.mounts}
        extra = []
        for dest in sorted(image.get("Volumes") or {}):
            if (dest.rstrip("/") or "/") not in taken:
                extra.append(MountSpec(type="bind", source="", destination=dest, volume="",
                                       options=("rw", "nosuid", "nodev", "rbind")))  # fmt: skip
        return replace(cfg, mounts=(*cfg.mounts, *extra)) if extra else cfg

    def _volumes_from(self, cfg: ContainerConfig) -> tuple[Any, ...]:
        """`--volumes-from CTR[:ro|rw]`: the other container's volumes and bind mounts too."""
        mounts = list(cfg.mounts)
        taken = {m.destination for m in mounts}
        for spec in cfg.volumes_from:
            ref, _, mode = spec.partition(":")
            other = self.lookup(ref)
            for m in other.config.mounts:
                if m.type != "bind" or m.destination in taken:
                    continue
                options = tuple(o for o in m.options if o not in ("ro", "rw"))
                rw = mode or ("ro" if "ro" in m.options else "rw")
                mounts.append(replace(m, options=(rw, *options)))
                taken.add(m.destination)
        return tuple(mounts)

    def _shared_namespaces(self, cfg: ContainerConfig) -> ContainerConfig:
        """`--pid/--ipc/--uts container:ID` -> the namespace file of that running container."""
        changes: dict[str, str] = {}
        for kind in ("pid", "ipc", "uts"):
            value = getattr(cfg, kind)
            if not value.startswith("container:"):
                continue
            other = self.lookup(value.partition(":")[2])
            if other.status not in ("running", "paused"):
                raise InvalidState(
                    f"cannot join the {kind} namespace of container {other.name}: it is not "
                    "running: container state improper"
                )
            changes[kind] = f"path:/proc/{int(other.state['pid'])}/ns/{kind}"
            if kind == "uts" and cfg.hostname is None:
                changes["hostname"] = other.config.hostname or other.id[:12]
        return replace(cfg, **changes) if changes else cfg

    def _name_in_use(self, name: str) -> str:
        cid = self.db.query("SELECT id FROM containers WHERE name = ?", (name,))
        owner = cid[0][0] if cid else "another container"
        return (
            f'creating container storage: the container name "{name}" is already in use by '
            f"{owner}. You have to remove that container to be able to reuse that name: "
            "that name is already in use"
        )

    def _free_name(self) -> str:
        for _ in range(100):
            name = random_name()
            if not self.db.query("SELECT 1 FROM containers WHERE name = ?", (name,)):
                return name
        raise AlreadyExists("could not find a free random name: give one with --name")

    def _resolve_volumes(self, cid: str, cfg: ContainerConfig) -> tuple[Any, ...]:
        """Named and anonymous volumes (`-v NAME:/dst`, `-v /dst`, image VOLUMEs) -> their paths."""
        if not any(m.volume is not None for m in cfg.mounts):
            return cfg.mounts
        from pypod.engine.volumes import Volumes

        volumes = Volumes(self.db, self.paths.graphroot)
        out = []
        for m in cfg.mounts:
            if m.volume is None:
                out.append(m)
                continue
            if m.volume:
                vol = volumes.create(m.volume, ignore_if_exists=True)
            else:
                vol = volumes.create(None, anonymous=True)
            out.append(replace(m, volume=vol.name, source=vol.mountpoint))
        return tuple(out)

    # --- start ----------------------------------------------------------------------------------
    def init(
        self, cid: str, *, console_size: tuple[int, int] | None = None, start: bool = False
    ) -> Any:
        """Set the container up to the `created` state: root mounted, config.json, monitor.
        With `start`, the monitor starts it as soon as it is created (the `Pending` returned is
        started: `pending.started`) and the container is saved `running` at once.

        `console_size` (rows, columns): the terminal's size from the start, for a container
        with a terminal run in the foreground (the runtime sets it before the process runs,
        so `stty size` is right at once).  Returns the monitor's `Pending` handle (start it,
        or release it to stay created).
        """
        c = self._row(cid)
        if c is None:
            raise ContainerNotFound(f"no container with ID {cid} found")
        if c.status in ("running", "paused", "stopping", "created"):
            raise InvalidState(
                f"container {c.id} has already been created in runtime: container state improper"
            )
        if os.path.exists(os.path.join(self.paths.runtime_root(c.config.runtime), c.id)):
            self._cleanup_runtime(c)  # what an earlier run left in the runtime's state
        if c.config.cgroups == "split":  # the caller's cgroup, split (before the monitor forks)
            from pypod.engine.cgroup_split import split_cgroup

            c.config = replace(c.config, cgroup_parent=split_cgroup())
        from pypod.engine.spec import build_spec

        userdata = self.paths.userdata(c.id)
        os.makedirs(userdata, mode=0o700, exist_ok=True)
        rundir = self.paths.rundir(c.id)
        os.makedirs(rundir, mode=0o700, exist_ok=True)
        with suppress(FileNotFoundError):
            os.unlink(self.paths.exit_file(c.id))
        config = self._image_config(c.config.image_id)
        check: Healthcheck | None = None
        check_state: dict[str, Any] | None = None
        if c.config.healthcheck is not None or "Healthcheck" in config:  # (import time)
            from pypod.engine.health import as_state, effective

            check = effective(c.config, config)
            check_state = as_state(check) if check else None
        # the monitor is forked now: it sets itself up while we mount and write the bundle,
        # and creates the container once told to (`early.create()`); `abort` if we fail first
        early = self._spawn_monitor(
            c, userdata, rundir, check_every=check.interval if check else None
        )
        try:
            # a --rm container's layer is thrown away: mounted "volatile", as podman does
            rootfs = self.store.mount_container(c.id, volatile=c.config.remove)
        except BaseException:
            early.abort()
            raise
        try:
            volumes = self._mount_volumes(c)
        except BaseException:
            early.abort()
            with suppress(PypodError, OSError):
                self.store.unmount_container(c.id)
            raise
        from pypod.engine import networking

        net_state: dict[str, Any] = {}
        background = None  # a bridge setup running while the monitor creates the container
        networking.forget_crashed(self, c)
        try:
            netns, net_state, background = networking.attach_overlapped(self, c)
            c.state.update(net_state)
            joined = None
            if (c.config.network or "").startswith("container:"):
                joined = self.lookup(c.config.network.partition(":")[2])
            net_files = networking.etc_network(c, net_state.get("networks") or {}, joined)
            spec = build_spec(self._shared_namespaces(c.config), config, container_id=c.id,
                              rootfs=rootfs, userdata=userdata, netns=netns,
                              net_files=net_files)  # fmt: skip
            process = spec.get("process") or {}
            if console_size and process.get("terminal") and min(console_size) > 0:
                process["consoleSize"] = {"height": console_size[0], "width": console_size[1]}
            # not fsynced: every init writes it anew before the runtime reads it, and after a
            # power failure nothing is left created (the runroot is gone): a crash leaves the
            # old file or the new one (rename), and either is rewritten before it is used
            write_atomic(
                os.path.join(userdata, "config.json"), jsoncodec.dumps(spec).encode(), sync=False
            )
            pending = early.create(start=start)
            if background is not None:
                waiting, background = background, None
                try:
                    net_state["networks"] = waiting.result()
                except BaseException:
                    pending.release()
                    with suppress(PypodError, OSError):
                        self.runtime(c).delete(c.id, force=True)
                    raise
                c.state.update(net_state)
                from pypod.engine.etcfiles import rewrite_network_files

                hostname = str(spec.get("hostname") or c.id[:12])
                files = networking.etc_network(c, net_state["networks"])
                rewrite_network_files(userdata, files, hostname, c.name)
        except BaseException:
            early.abort()
            with suppress(PypodError, OSError):
                self.store.unmount_container(c.id)
            self._unmount_volumes(volumes)
            if background is not None:  # wait for it: then what it made is known, and undone
                with suppress(PypodError, OSError):
                    net_state["networks"] = background.result()
                    c.state.update(net_state)
            if net_state:
                with suppress(PypodError, OSError):
                    networking.detach(self, c)
            raise
        from pypod.engine.state import start_time

        c.state = {
            **c.state,
            "status": "created",
            "pid": pending.pid,
            "pid_start": start_time(pending.pid),
            "monitor_pid": pending.monitor_pid,
            "monitor_start": start_time(pending.monitor_pid),
            "mountpoint": rootfs,
            "exit_code": None,
            "cleaned": False,
            "stopped_by_user": False,
            "volumes_mounted": volumes,
            **net_state,
            "healthcheck": check_state,
            "health": {"status": "starting", "failing_streak": 0, "log": []} if check else None,
        }
        if pending.started:
            c.state["status"] = "running"
            c.state["started_at"] = time.time()
        with self.db.transaction():
            self.save_state(c)
            self.container_event(c, "init")
            if pending.started:
                self.container_event(c, "start")
        return pending

    def _mount_volumes(self, c: Container) -> list[str]:
        """Mount the volumes with a filesystem of their own (`-o type=...`); their names."""
        names = [m.volume for m in c.config.mounts if m.volume]
        if not names:
            return []
        from pypod.engine.volumes import Volumes

        volumes = Volumes(self.db, self.paths.graphroot)
        done: list[str] = []
        try:
            for name in names:
                volumes.mount(name)
                done.append(name)
        except BaseException:
            self._unmount_volumes(done)
            raise
        return done

    def _unmount_volumes(self, names: list[str]) -> None:
        if not names:
            return
        from pypod.engine.volumes import Volumes

        volumes = Volumes(self.db, self.paths.graphroot)
        for name in names:
            with suppress(PypodError, OSError):
                volumes.unmount(name)

    def _spawn_monitor(
        self, c: Container, userdata: str, rundir: str, *, check_every: float | None = None
    ) -> Any:
        """Fork the container's monitor (`Spawning`: `create()` it once the bundle is written,
        or `abort()`)."""
        from pypod.engine.sdnotify import relayed_socket
        from pypod.monitor.config import MonitorConfig
        from pypod.monitor.spawn import fork_monitor

        cfg = MonitorConfig(
            container_id=c.id,
            bundle=userdata,
            runtime=c.config.runtime,
            runtime_root=self.paths.runtime_root(c.config.runtime),
            userdata=rundir,
            log_driver=c.config.log_driver,
            log_path=self.paths.log_path(c.id),
            log_max_size=c.config.log_max_size,
            tty=c.config.tty,
            stdin=c.config.stdin,
            exit_file=self.paths.exit_file(c.id),
            exit_command=(*self.command_prefix(), "container", "cleanup", c.id),
            periodic_command=(
                (*self.command_prefix(), "healthcheck", "run", c.id) if check_every else ()
            ),
            periodic_interval=check_every or 0.0,
            sdnotify_socket=relayed_socket(c.config.sdnotify),
        )
        return fork_monitor(cfg)

    def command_prefix(self) -> tuple[str, ...]:
        """How to call this pypod again with the same store (the monitor's exit command)."""
        exe = os.path.join(os.path.dirname(sys.executable), "pypod")
        if not os.access(exe, os.X_OK):
            exe = sys.argv[0]
        prefix: tuple[str, ...] = (
            exe,
            "--root",
            self.paths.graphroot,
            "--runroot",
            self.paths.runroot,
        )
        if self.driver:
            prefix += ("--storage-driver", self.driver)
        return prefix

    def start(self, id_or_name: str, *, before_start: Callable[[Container], None] | None = None,
              console_size: tuple[int, int] | None = None,
              restarting: bool = False) -> Container:  # fmt: skip
        """Start a container (set it up first unless `init` did); `before_start` runs when the
        container is created but not yet started (foreground runs attach there);
        `console_size` as for `init`."""
        c = self.lookup(id_or_name)
        for required in c.config.requires:  # `--requires`: those first
            other = self.sync(self.lookup(required))
            if other.status not in LIVE:
                self.start(other.id)
        with self.locked(c.id):
            c = self.lookup(c.id)
            if c.status == "running" or restarting and c.state.get("stopped_by_user"):
                return c  # (a restart the user's `stop` cancelled)
            if c.status == "paused":
                raise InvalidState(f"container {c.id} is paused: unpause it instead")
            if c.status == "created":
                if before_start is not None:
                    before_start(c)
                self.runtime(c).start(c.id)
            elif before_start is None:  # nobody attaches first: created and started at once
                self.init(c.id, console_size=console_size, start=True)
                c = self._row(c.id) or c
                self._announce_start(c)
                return c
            else:
                pending = self.init(c.id, console_size=console_size)
                c = self.lookup(c.id)
                try:
                    before_start(c)
                    pending.start()
                except BaseException:
                    with suppress(PypodError, OSError):
                        self._kill_and_forget(c)
                    raise
            c = self._row(c.id) or c
            if c.status in LIVE:
                c.state["status"] = "running"
                c.state["started_at"] = time.time()
                with self.db.transaction():
                    self.save_state(c)
                    self.container_event(c, "start")
                self._announce_start(c)
            return c

    @staticmethod
    def _announce_start(c: Container) -> None:
        """--conmon-pidfile, and the service manager's notification (engine/sdnotify.py)."""
        if c.status in LIVE and (c.config.conmon_pidfile or "NOTIFY_SOCKET" in os.environ):
            from pypod.engine.sdnotify import notify_started

            notify_started(sdnotify=c.config.sdnotify, conmon_pidfile=c.config.conmon_pidfile,
                           monitor_pid=int(c.state.get("monitor_pid", 0)))  # fmt: skip

    def _kill_and_forget(self, c: Container) -> None:
        """A start that failed: take everything down and leave the container `exited`."""
        rt = self.runtime(c)
        with suppress(PypodError, OSError):
            rt.delete(c.id, force=True)
        self.sync(c)

    # --- stop / kill ----------------------------------------------------------------------------
    def kill(self, id_or_name: str, sig: int = signal_mod.SIGKILL) -> Container:
        c = self.lookup(id_or_name)
        if c.status not in ("running", "paused", "stopping", "created"):
            raise InvalidState(
                f"can only kill running containers. {c.id} is in state {_shown(c)}: "
                "container state improper"
            )
        self.runtime(c).kill(c.id, sig, all_processes=False)
        with self.db.transaction():
            self.container_event(c, "kill", {"signal": str(sig)})
        return c

    def stop(self, id_or_name: str, *, timeout: int | None = None, claim: Any = None,
             in_pod_stop: bool = False) -> Container:  # fmt: skip
        """Stop signal, then SIGKILL after `timeout` seconds (the container's --stop-timeout).
        `claim`: the cleanup claimed already (`claim_cleanup`, before a pod's stop signals);
        `in_pod_stop`: its whole pod stops (its exit policy has nothing left to do)."""
        c = self.lookup(id_or_name)
        if c.status == "configured":
            if claim is not None:
                claim.close()
            return c
        with self.locked(c.id):
            c = self.lookup(c.id)
            if c.status not in LIVE:
                if claim is not None:  # it ended after the pod's signal: clean up, as claimed
                    self._cleanup_claimed(c, claim)
                if c.config.restart_policy not in ("", "no") and not c.state.get(
                    "stopped_by_user"
                ):  # ended, its restart maybe pending: it is not to come
                    c.state["stopped_by_user"] = True
                    with self.db.transaction():
                        self.save_state(c)
                return c
            if claim is None:
                claim = self.claim_cleanup(c, in_pod_stop=in_pod_stop)
            try:
                self._stop_claimed(c, timeout)
                if claim is not None:
                    claim.cleanup_done()  # done here: the monitor starts no `container cleanup`
                    claim = None
            finally:
                if claim is not None:  # not done: the monitor's exit command does it
                    claim.close()
        return self.lookup(c.id)

    def _cleanup_claimed(self, c: Container, claim: Any) -> None:
        try:
            if c.status == "exited" and not c.state.get("cleaned"):
                self._cleanup(c, from_monitor=False)
            claim.cleanup_done()
        finally:
            claim.close()

    def claim_cleanup(self, c: Container, *, in_pod_stop: bool = False) -> Any:
        """Tell `c`'s monitor that this command cleans up after the process it is about to
        stop, as `run --rm` does: the monitor then need not start `pypod container cleanup`
        (a whole interpreter per container: `pod rm -f` of a pod of three paid for three).
        The connection (close it without `cleanup_done()` and the monitor runs its exit
        command after all), or None when the cleanup is not all a stop does: `--rm` (the
        exit command removes the container) or a member of a pod whose exit policy may apply
        (unless the whole pod stops), or when no monitor answers."""
        if c.config.remove or (c.config.pod and not in_pod_stop) or c.status != "running":
            return None
        from pypod.engine import attach

        try:
            conn = attach.connect(self.paths.rundir(c.id))
        except (PypodError, OSError):
            return None
        try:
            conn.claim_cleanup()
        except OSError:
            conn.close()
            return None
        return conn

    def _stop_claimed(self, c: Container, timeout: int | None) -> None:
        """The stop itself (the container's lock held)."""
        c.state["stopped_by_user"] = True
        with self.db.transaction():
            self.save_state(c)
        rt = self.runtime(c)
        wait = c.config.stop_timeout if timeout is None else timeout
        sig = c.config.stop_signal or signal_mod.SIGTERM
        if c.status == "paused":
            with suppress(PypodError):
                rt.resume(c.id)
        if wait > 0:
            with suppress(PypodError):
                rt.kill(c.id, sig)
            if not self._wait_exit(c, wait):
                log.warning(
                    "StopSignal %s failed to stop container %s in %d seconds, resorting "
                    "to SIGKILL",
                    signal_name(sig) or sig,
                    c.name,
                    wait,
                )
        if self.sync(c).status in LIVE:
            with suppress(PypodError):
                rt.kill(c.id, signal_mod.SIGKILL, all_processes=True)
            self._wait_exit(c, 30)
        c = self.lookup(c.id)
        self._cleanup(c, from_monitor=False)
        with self.db.transaction():
            self.container_event(c, "stop")

    def _wait_exit(self, c: Container, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        delay = 0.005
        while time.monotonic() < deadline:
            if self.sync(c).status not in LIVE:
                return True
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        return self.sync(c).status not in LIVE

    # --- cleanup (the monitor's exit command) ---------------------------------------------------
    def cleanup(self, id_or_name: str, *, remove: bool | None = None) -> None:
        """What happens after the container's process ended: record, unmount, --rm, restart;
        then its pod's `--exit-policy=stop` (the pod stops when only its infra is left)."""
        ended = self._cleanup_or_restart(id_or_name, remove=remove)
        if ended is not None:
            self._pod_exit_policy(ended)

    def _cleanup_or_restart(self, id_or_name: str, *, remove: bool | None) -> Container | None:
        """`cleanup`'s work; the container if it ended for good (not running, not restarted)."""
        try:
            c = self.lookup(id_or_name)
        except ContainerNotFound:
            return None
        with self.locked(c.id):
            c = self.lookup(c.id)
            if c.status in LIVE:
                return None
            self._cleanup(c, from_monitor=True)
            if remove if remove is not None else c.config.remove:
                self._remove(c, volumes=True)
                return c
        with self.locked(c.id):  # decided under the lock: a `stop` meanwhile cancels it
            c = self.lookup(c.id)
            if c.status in LIVE:
                return None
            if not self._should_restart(c):
                return c
            c.state["restart_count"] = int(c.state.get("restart_count", 0)) + 1
            with self.db.transaction():
                self.save_state(c)
        self.start(c.id, restarting=True)
        return None

    def _pod_exit_policy(self, c: Container) -> None:
        """A pod member ended or went: its pod stops if its exit policy says so."""
        if not c.config.pod or c.config.infra:
            return
        from pypod.engine.pods import Pods

        try:
            Pods(self).stop_if_only_infra_remains(c.config.pod, c.id)
        except PypodError as e:
            log.warning("stopping pod %s (exit policy stop): %s", c.config.pod, e)

    def _should_restart(self, c: Container) -> bool:
        policy = c.config.restart_policy
        if policy in ("", "no") or c.state.get("stopped_by_user"):
            return False
        if policy == "on-failure":
            if c.state.get("exit_code") == 0:
                return False
            retries = c.config.restart_retries
            return not retries or int(c.state.get("restart_count", 0)) < retries
        return policy in ("always", "unless-stopped")

    def _cleanup(self, c: Container, *, from_monitor: bool) -> None:
        if c.state.get("cleaned"):
            return
        from pypod.engine.networking import detach_begin

        network_done = detach_begin(self, c)  # the network's teardown runs meanwhile
        self._cleanup_runtime(c)
        if c.state.get("mountpoint"):
            with suppress(PypodError, OSError):
                self.store.unmount_container(c.id)
        self._unmount_volumes(list(c.state.get("volumes_mounted") or ()))
        c.state["volumes_mounted"] = []
        network_done()
        c.state["mountpoint"] = ""
        c.state["cleaned"] = True
        with self.db.transaction():
            self.save_state(c)
            if c.status == "exited":  # it ran: podman's died and cleanup events, once each
                code = c.state.get("exit_code")
                self.container_event(c, "died", {"containerExitCode": str(code)})
                self.container_event(c, "cleanup")

    def _cleanup_runtime(self, c: Container) -> None:
        """Forget the runtime's state of an ended container (so its ID can be created again)."""
        rt = self.runtime(c)
        with suppress(PypodError, OSError):
            rt.delete(c.id, force=True)

    # --- remove ---------------------------------------------------------------------------------
    def remove(self, id_or_name: str, *, force: bool = False, volumes: bool = False,
               timeout: int | None = None, infra_ok: bool = False) -> str:  # fmt: skip
        """Remove a container (`infra_ok`: also a pod's infra container, as `pod rm` does)."""
        c = self.lookup(id_or_name)
        if c.config.infra and not infra_ok:
            from pypod.engine.pods import Pods, infra_refusal

            refusal = infra_refusal(self, c, force=force)
            if refusal:
                from pypod.errors import InUse

                raise InUse(refusal)
            if force and self.db.query("SELECT 1 FROM pods WHERE id = ?", (c.config.pod,)):
                # the last of its pod (`rm -af`): the pod goes with it, as with podman
                Pods(self).remove(c.config.pod, force=True, timeout=timeout)
                return c.id
        dependents = self.dependents(c.id)
        if dependents:
            raise AlreadyExists(
                f"container {c.id} has dependent containers which must be removed before it: "
                f"{', '.join(dependents)}: container already exists"
            )
        if c.status in LIVE:
            if not force:
                raise InvalidState(
                    f"cannot remove container {c.id} as it is {_shown(c)} - running or paused "
                    "containers cannot be removed without force: container state improper"
                )
            self.stop(c.id, timeout=timeout)
        with self.locked(c.id):
            found = self._row(c.id)
            if found is None:
                return c.id
            self._cleanup(found, from_monitor=False)
            self._remove(found, volumes=volumes)
        if not infra_ok:  # (`pod rm` removes its members with infra_ok)
            self._pod_exit_policy(found)
        return c.id

    def dependents(self, cid: str) -> list[str]:
        """The containers that need `cid`: `--requires` it or join one of its namespaces."""
        out = []
        for other in self.containers():
            cfg = other.config
            refs = (cfg.uts, cfg.ipc, cfg.pid, cfg.network, *cfg.requires)
            if other.id != cid and any(r == cid or r.endswith(f":{cid}") for r in refs if r):
                out.append(other.id)
        return out

    def _remove(self, c: Container, *, volumes: bool) -> None:
        from pypod.engine.networking import forget_crashed

        forget_crashed(self, c)
        with suppress(ContainerNotFound):
            self.store.delete_container(c.id)
        anonymous = [m.volume for m in c.config.mounts if m.volume]
        with self.db.transaction():
            self.db.execute("DELETE FROM containers WHERE id = ?", (c.id,))
            self.container_event(c, "remove")
        if volumes and anonymous:
            from pypod.engine.volumes import Volumes

            vols = Volumes(self.db, self.paths.graphroot)
            for name in anonymous:
                with suppress(PypodError):
                    if vols.get(name).anonymous:
                        vols.remove(name)
        self._remove_files(c.id)

    def _remove_files(self, cid: str) -> None:
        from pypod.fstree import remove_tree

        remove_tree(os.path.dirname(self.paths.userdata(cid)), ignore_errors=True)
        remove_tree(self.paths.rundir(cid), ignore_errors=True)
        with suppress(OSError):
            os.unlink(self.paths.lock(cid))

    # --- wait -----------------------------------------------------------------------------------
    def wait(self, id_or_name: str, *, conditions: tuple[str, ...] = ("stopped",),
             interval: float = 0.25) -> int:  # fmt: skip
        """Block until the container reaches one of `conditions`; the exit code (or -1)."""
        c = self.lookup(id_or_name)
        wanted = {_CONDITIONS.get(cond, cond) for cond in conditions}
        for cond in wanted:
            if cond not in _CONDITIONS.values():
                raise InvalidArgument(f"{cond!r}: unknown wait condition")
        delay = 0.001  # the exit file comes a moment after the output ends: look soon
        while True:
            c = self._row(c.id)  # type: ignore[assignment]
            if c is None:
                raise ContainerNotFound(f"no container with ID {id_or_name} found")
            c = self.sync(c)
            if _condition(c) in wanted:
                return int(c.state.get("exit_code", -1) if c.status == "exited" else -1)
            time.sleep(delay)
            delay = min(delay * 1.5, interval)

    # --- pause / rename -------------------------------------------------------------------------
    def pause(self, id_or_name: str) -> Container:
        c = self.lookup(id_or_name)
        if c.status == "paused":
            raise InvalidState(f'"{c.id}" is already paused: container state improper')
        if c.status != "running":
            raise InvalidState(f'"{c.id}" is not running, can\'t pause: container state improper')
        self.runtime(c).pause(c.id)
        c.state["status"] = "paused"
        with self.db.transaction():
            self.save_state(c)
            self.container_event(c, "pause")
        return c

    def unpause(self, id_or_name: str) -> Container:
        c = self.lookup(id_or_name)
        if c.status != "paused":
            raise InvalidState(f'"{c.id}" is not paused, can\'t unpause: container state improper')
        self.runtime(c).resume(c.id)
        c.state["status"] = "running"
        with self.db.transaction():
            self.save_state(c)
            self.container_event(c, "unpause")
        return c

    def rename(self, id_or_name: str, new: str) -> Container:
        check_name(new)
        c = self.lookup(id_or_name)
        with self.db.transaction():
            if self.db.query("SELECT 1 FROM containers WHERE name = ?", (new,)):
                raise AlreadyExists(
                    f"renaming container {c.id}: name {new} already in use, cannot rename "
                    f"container {c.id}: container already exists"
                )
            cfg = replace(c.config, name=new)
            self.store.set_container_names(c.id, [new])  # the old name is free again
            try:
                self.db.execute("UPDATE containers SET name = ?, config = ? WHERE id = ?",
                                (new, self.db.dumps(to_json(cfg)), c.id))  # fmt: skip
                self.container_event(replace(c, name=new), "rename")
            except BaseException:
                self.store.set_container_names(c.id, [c.name])
                raise
        return replace(c, name=new, config=cfg)

    # --- events ---------------------------------------------------------------------------------
    def container_event(self, c: Container, action: str,
                        extra: dict[str, str] | None = None) -> None:  # fmt: skip
        """Record `action` on container `c` (in the caller's transaction)."""
        attributes: dict[str, Any] = {"image": c.config.image, "labels": dict(c.config.labels)}
        self.event("container", action, c.id, c.name, {**attributes, **(extra or {})})

    def event(self, type_: str, action: str, oid: str, name: str,
              attributes: dict[str, Any] | None = None) -> None:  # fmt: skip
        """Record an event (in the caller's transaction).  A container's event carries its
        image and labels (`image`, `labels`) as podman's do."""
        if type_ == "container" and attributes is not None and "labels" not in attributes:
            rows = self.db.query("SELECT config FROM containers WHERE id = ?", (oid,))
            labels = jsoncodec.loads(rows[0][0]).get("labels") if rows else None
            attributes = {**attributes, "labels": labels or {}}
        self.db.execute(
            "INSERT INTO events (time, type, action, id, name, attributes) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (time.time(), type_, action, oid, name, self.db.dumps(attributes or {})),
        )


_CONDITIONS = {
    "stopped": "exited", "exited": "exited", "running": "running", "paused": "paused",
    "created": "created", "configured": "created", "initialized": "initialized",
    "removing": "removing", "stopping": "stopping",
}  # fmt: skip


def _condition(c: Container) -> str:
    return shown_status(c.status)


def _shown(c: Container) -> str:
    return shown_status(c.status)


def _container(row: tuple[Any, ...]) -> Container:
    return Container(
        id=row[0],
        name=row[1],
        config=from_json(jsoncodec.loads(row[2])),
        state=jsoncodec.loads(row[3]),
        created=row[4],
    )
