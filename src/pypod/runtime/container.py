"""The in-process OCI runtime: runc's operations on containers kept in a state directory.

The CLI (`pypod-runtime`) and the engine call this; nothing here prints.
"""

from __future__ import annotations

import errno
import os
import time

import pypod
from pypod.atomic import write_atomic
from pypod.errors import (
    ContainerNotFound,
    InvalidArgument,
    InvalidState,
    NotSupported,
    PypodError,
    RuntimeError_,
)
from pypod.linux import syscalls as sc
from pypod.linux import userns
from pypod.linux.procstat import proc_start_time
from pypod.oci.runtime_spec import (
    LinuxDeviceCgroup,
    LinuxResources,
    Process,
    Spec,
    decode_json,
    load_spec,
    parse_process,
    parse_spec,
)
from pypod.record import record, replace
from pypod.runtime.state import (
    SECCOMP_CACHE_DIR,
    ContainerRecord,
    StateDir,
    Status,
    now_rfc3339,
    validate_id,
)
from pypod.stdlite import signal as signal_mod
from pypod.stdlite import suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from pypod.runtime.exec_process import ExecRequest
    from pypod.runtime.process import init as init_mod

#: namespaced sysctls (runc's validateSysctl): prefix -> namespace that must be private
_SYSCTL_NS = {
    "kernel.msgmax": "ipc", "kernel.msgmnb": "ipc", "kernel.msgmni": "ipc", "kernel.sem": "ipc",
    "kernel.shmall": "ipc", "kernel.shmmax": "ipc", "kernel.shmmni": "ipc",
    "kernel.shm_rmid_forced": "ipc", "fs.mqueue.": "ipc", "net.": "network",
    "kernel.hostname": "uts", "kernel.domainname": "uts",
}  # fmt: skip


@record
class CreateOptions:
    bundle: str
    console_socket: str | None = None
    pid_file: str | None = None
    no_pivot: bool = False
    no_new_keyring: bool = False
    preserve_fds: int = 0
    #: `run` in the foreground keeps the terminal itself instead of sending it to a socket
    foreground: bool = False
    #: the caller's own work to have done by the time `create` returns, run in this process
    #: while the init sets itself up (the state is saved then): off the path of the create
    #: (the monitor makes its files then).  What it raises fails the create (nothing is left)
    meanwhile: Callable[[], None] | None = None


@record
class ExecOptions:
    process: Process
    detach: bool = False
    console_socket: str | None = None
    pid_file: str | None = None
    preserve_fds: int = 0


def _parse_resources(data: Mapping[str, Any], source: str) -> Spec:
    """Validate a resources update with the config.json parser."""
    wrapper = {
        "ociVersion": pypod.OCI_RUNTIME_SPEC_VERSION,
        "root": {"path": "/"},
        "linux": {"resources": data},
    }
    return parse_spec(wrapper, source=source)


__all__ = ["CreateOptions", "ExecOptions", "Runtime", "parse_process", "write_pid_file"]


class Runtime:
    """pypod's OCI runtime on one state root (`--root`)."""

    def __init__(self, root: str, *, warn: Callable[[str], None] | None = None) -> None:
        self.states = StateDir(root)
        self.rootless = os.geteuid() != 0
        #: where failures that do not stop the operation go (poststart/poststop hooks)
        self.warn = warn

    # --- create / start / run ------------------------------------------------------------------
    def create(self, container_id: str, opts: CreateOptions) -> int:
        """Set the container up and leave its init waiting for `start`; returns the init pid."""
        from pypod.runtime.process import parent

        bundle = os.path.abspath(opts.bundle)
        config_path = os.path.join(bundle, "config.json")
        spec, config, seccomp_json = _load_config(config_path)
        self._validate(spec, opts, config_path, seccomp_json)
        assert spec.process is not None and spec.root is not None
        rootfs = os.path.join(bundle, spec.root.path)
        if not os.path.isdir(rootfs):
            raise InvalidArgument(
                f"rootfs ({rootfs}) does not exist: check root.path in {config_path}"
            )
        path = self.states.reserve(container_id, clean_up=self._clean_up_incomplete)
        manager = None
        launched = None
        try:
            fifo = os.path.join(path, "exec.fifo")
            os.mkfifo(fifo, 0o622)
            manager, set_limits = self._cgroup(spec, container_id)
            # if we are killed from now on, the next command removes the cgroup too
            self.states.mark_cgroup(container_id, manager.to_state())
            plan, ns_paths = self._plan(
                spec, spec.process, bundle, rootfs, fifo, opts, tuple(manager.paths.values())
            )
            plan = replace(
                plan,
                self_join=manager.self_join(),
                seccomp_json=seccomp_json,
                cgroup_mounts=manager.host_mounts,
            )
            record = ContainerRecord(
                id=container_id,
                init_pid=0,
                init_start_time=0,
                bundle=bundle,
                rootfs=rootfs,
                created=now_rfc3339(),
                annotations=dict(spec.annotations),
                config=config,
                cgroup=manager.to_state(),
                rootless=self.rootless,
            )

            def hooks(pid: int) -> None:
                if spec.hooks is None:
                    return
                from pypod.runtime.hooks import run_hooks

                state = self._hook_state(record, Status.CREATING, pid)
                run_hooks("prestart", spec.hooks.prestart, state, fatal=True)
                run_hooks("createRuntime", spec.hooks.create_runtime, state, fatal=True)

            def save(pid: int) -> None:  # while the init sets itself up
                start = proc_start_time(pid)
                record.init_pid = pid
                record.init_start_time = start[0] if start else 0
                record.namespace_paths = {
                    t: p or f"/proc/{pid}/ns/{sc.NAMESPACES[t][1]}" for t, p in ns_paths
                }
                self.states.save(record)
                self._just_created = record
                if opts.meanwhile is not None:
                    opts.meanwhile()

            launched = parent.launch(
                plan,
                add_to_cgroup=manager.add_pid,
                run_hooks=hooks,
                on_pid=save,
                set_limits=set_limits,
            )
            self._console(launched.console_fd, opts)
            if opts.pid_file:
                write_pid_file(opts.pid_file, launched.pid)
            return launched.pid
        except BaseException:
            self._just_created = None
            if launched is not None:  # the init may be outside any cgroup (rootless)
                with suppress(OSError):
                    os.kill(launched.pid, signal_mod.SIGKILL)
                if launched.console_fd is not None and self._foreground_console is None:
                    with suppress(OSError):
                        os.close(launched.console_fd)
            if manager is not None:
                with suppress(PypodError, OSError):
                    manager.kill_all(signal_mod.SIGKILL)
                with suppress(PypodError, OSError):
                    manager.destroy()
            self.states.remove(container_id)
            raise

    def _console(self, console_fd: int | None, opts: CreateOptions) -> None:
        if console_fd is None:
            return
        if opts.console_socket:
            from pypod.linux import console

            try:
                console.send_console(opts.console_socket, console_fd)
            finally:
                os.close(console_fd)
        else:
            self._foreground_console = console_fd

    _foreground_console: int | None = None
    #: what `create` saved, for a `start` by the same runtime (the monitor's): state.json
    #: need not be read back (its status is still checked, from the process and the fifo)
    _just_created: ContainerRecord | None = None

    def start(self, container_id: str) -> None:
        record, self._just_created = self._just_created, None
        if record is None or record.id != container_id:
            record = self.states.load(container_id)
        status = self.status(record)
        if status != Status.CREATED:
            if status == Status.STOPPED:
                raise InvalidState("cannot start a container that has stopped")
            raise InvalidState("cannot start an already running container")
        fifo = self.states.fifo(container_id)
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            if e.errno in (errno.ENXIO, errno.ENOENT):
                raise InvalidState("cannot start a container that has stopped") from e
            raise
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
        os.unlink(fifo)
        self._after_hooks(record, "poststart", Status.RUNNING, record.init_pid)

    def run(self, container_id: str, opts: CreateOptions, *, detach: bool) -> int:
        """create + start; in the foreground wait and return the exit code, else the pid."""
        from pypod.runtime.process import parent

        if not detach:
            parent.become_subreaper()
        pid = self.create(container_id, replace(opts, foreground=not detach))
        try:
            self.start(container_id)
        except BaseException:
            with suppress(PypodError):
                self.delete(container_id, force=True)
            raise
        if detach:
            return 0
        # what the delete below imports, while the container's program starts
        from pypod.linux import cgroup_cleanup  # noqa: F401

        console_fd, self._foreground_console = self._foreground_console, None
        try:
            return parent.wait_foreground(pid, console_fd)
        finally:  # also when waiting fails (EPIPE on our stdout, a signal): leave nothing
            with suppress(PypodError, OSError):
                self.delete(container_id, force=True)

    def _clean_up_incomplete(self, marker: dict[str, Any]) -> None:
        """What a `create` killed half-way left: its cgroup (with any process in it)."""
        if not marker.get("cgroup"):
            return
        from pypod.linux.cgroups import manager_from_state

        manager = manager_from_state(marker["cgroup"])
        with suppress(PypodError, OSError):
            manager.kill_all(signal_mod.SIGKILL)
        with suppress(PypodError, OSError):
            manager.destroy()

    # --- queries ------------------------------------------------------------------------------
    def status(self, record: ContainerRecord) -> str:
        if not record.init_pid:
            return Status.CREATING
        now = proc_start_time(record.init_pid)
        if now is None or now[0] != record.init_start_time or now[1] in ("Z", "X"):
            return Status.STOPPED
        if record.cgroup:
            from pypod.linux.cgroups import manager_from_state

            with suppress(PypodError, OSError):
                if manager_from_state(record.cgroup).freezer_state() == "FROZEN":
                    return Status.PAUSED
        if os.path.exists(self.states.fifo(record.id)):
            return Status.CREATED
        return Status.RUNNING

    def state(self, container_id: str) -> dict[str, Any]:
        """runc's `state` JSON object for the container."""
        record = self.states.load(container_id)
        status = self.status(record)
        out: dict[str, Any] = {
            # the spec version the runtime implements, not config.json's (runc: specs.Version)
            "ociVersion": pypod.OCI_RUNTIME_SPEC_VERSION,
            "id": record.id,
            "pid": 0 if status == Status.STOPPED else record.init_pid,
            "status": status,
            "bundle": record.bundle,
            "rootfs": record.rootfs,
            "created": record.created,
        }
        if record.annotations:
            out["annotations"] = record.annotations
        out["owner"] = ""
        return out

    def list_states(self) -> list[dict[str, Any]]:
        import pwd

        result = []
        for cid in self.states.ids():
            with suppress(ContainerNotFound, InvalidArgument, OSError):
                st = self.state(cid)
                uid = os.stat(self.states.path(cid)).st_uid  # the owner of the state directory
                try:
                    st["owner"] = pwd.getpwuid(uid).pw_name
                except KeyError:
                    st["owner"] = f"#{uid}"
                result.append(st)
        return result

    def pids(self, container_id: str) -> list[int]:
        record = self.states.load(container_id)
        if self.status(record) == Status.STOPPED:
            return []
        return sorted(self._manager(record).pids())

    # --- signals and teardown -----------------------------------------------------------------
    def kill(self, container_id: str, sig: int, *, all_processes: bool = False) -> None:
        record = self.states.load(container_id)
        if self.status(record) == Status.STOPPED:
            raise InvalidState("container not running")
        if all_processes:
            manager = self._manager(record)
            manager.kill_all(sig)
            if not manager.pids():  # no cgroup (rootless on v1): the init, as runc does
                with suppress(ProcessLookupError):
                    os.kill(record.init_pid, sig)
            return
        try:
            os.kill(record.init_pid, sig)
        except ProcessLookupError:
            raise InvalidState("container not running") from None

    def delete(self, container_id: str, *, force: bool = False) -> None:
        validate_id(container_id)
        try:
            record = self.states.load(container_id)
        except InvalidArgument:
            # an unreadable state.json (cut short by a crash of the machine: state is not
            # fsynced): nothing to stop, its processes are gone with the crash
            if not force:
                raise
            self.states.remove(container_id)
            return
        except ContainerNotFound:
            if os.path.isdir(self.states.path(container_id)) and self.states.remove_incomplete(
                container_id, self._clean_up_incomplete
            ):
                return  # a create that was killed half-way: cleaned up
            if force:
                with suppress(PypodError, OSError):
                    self.states.remove(container_id)
                return
            raise
        status = self.status(record)
        if status in (Status.RUNNING, Status.PAUSED) and not force:
            raise InvalidState(
                f"cannot delete container {container_id} that is not stopped: {status}"
            )
        if status != Status.STOPPED:
            self._kill_and_wait(record, status)
        if record.cgroup and not self._remove_empty_cgroup(record):
            manager = self._manager(record)
            with suppress(PypodError, OSError):
                manager.kill_all(signal_mod.SIGKILL)
            manager.destroy()
        self.states.remove(container_id)
        self._after_hooks(record, "poststop", Status.STOPPED, 0)

    @staticmethod
    def _remove_empty_cgroup(record: ContainerRecord) -> bool:
        """The common case of a delete: the cgroup is empty, an rmdir per directory does (see
        pypod.linux.cgroup_cleanup); False: the manager kills what is left and removes it."""
        from pypod.linux import cgroup_cleanup

        return cgroup_cleanup.remove_empty(record.cgroup)

    def _after_hooks(self, record: ContainerRecord, phase: str, status: str, pid: int) -> None:
        """Run the poststart/poststop hooks saved with the container (failures are logged)."""
        if not record.config.get("hooks", {}).get(phase):
            return  # the common case: no need to parse the saved config
        spec = parse_spec(record.config, source=f"container {record.id}")
        hooks = getattr(spec.hooks, phase)
        from pypod.runtime.hooks import run_hooks

        run_hooks(phase, hooks, self._hook_state(record, status, pid), fatal=False, warn=self.warn)

    def _kill_and_wait(self, record: ContainerRecord, status: str) -> None:
        manager = self._manager(record) if record.cgroup else None
        with suppress(ProcessLookupError):
            os.kill(record.init_pid, signal_mod.SIGKILL)
        if manager is not None:
            with suppress(PypodError, OSError):
                manager.kill_all(signal_mod.SIGKILL)
            if status == Status.PAUSED:
                manager.thaw()
        deadline = time.monotonic() + 10
        while self.status(record) != Status.STOPPED:
            with suppress(ChildProcessError):
                os.waitpid(record.init_pid, os.WNOHANG)
            if time.monotonic() > deadline:
                raise RuntimeError_(f"container {record.id}: init {record.init_pid} did not exit")
            time.sleep(0.005)

    def pause(self, container_id: str) -> None:
        record = self.states.load(container_id)
        if self.status(record) not in (Status.RUNNING, Status.CREATED):
            raise InvalidState("container not running")
        self._manager(record).freeze()

    def resume(self, container_id: str) -> None:
        record = self.states.load(container_id)
        if self.status(record) != Status.PAUSED:
            raise InvalidState("container not paused")
        self._manager(record).thaw()

    def update(self, container_id: str, changes: Mapping[str, Any]) -> None:
        """Apply resource changes (runtime-spec LinuxResources JSON, merged over the current)."""
        record = self.states.load(container_id)
        if self.status(record) == Status.STOPPED:
            raise InvalidState("container not running")
        linux = record.config.setdefault("linux", {})
        import copy

        merged = copy.deepcopy(linux.get("resources", {}))
        for key, value in changes.items():
            if isinstance(value, dict):
                merged.setdefault(key, {}).update(value)
            else:
                merged[key] = value
        res = _parse_resources(merged, "update").linux
        assert res is not None and res.resources is not None
        self._manager(record).update(res.resources)
        linux["resources"] = merged
        self.states.save(record)

    # --- exec ---------------------------------------------------------------------------------
    def exec_process(self, container_id: str, req: ExecRequest) -> Process:
        """The process `exec` would run in the container for these settings."""
        from pypod.runtime.exec_process import process_for_exec

        return process_for_exec(self.states.load(container_id).config, req)

    def exec(self, container_id: str, opts: ExecOptions) -> int:
        """Run another process in the container; its exit code (foreground) or 0 (detached)."""
        from pypod.runtime.process import init as init_mod
        from pypod.runtime.process import parent

        record = self.states.load(container_id)
        status = self.status(record)
        if status == Status.STOPPED:
            raise InvalidState("cannot exec in a stopped container")
        if status == Status.PAUSED:
            raise InvalidState("cannot exec in a paused container")
        spec = parse_spec(record.config, source=f"container {container_id}")
        proc = opts.process
        if proc.terminal and opts.detach and not opts.console_socket:
            raise InvalidArgument(
                "cannot allocate tty if runc will detach without setting console socket"
            )
        if opts.console_socket and (not opts.detach or not proc.terminal):
            raise InvalidArgument(
                "cannot use console socket if runc will not detach or allocate tty"
            )
        join = tuple(
            (t, record.namespace_paths[t]) for t in sc.NAMESPACES if t in record.namespace_paths
        )
        manager = self._manager(record) if record.cgroup else None
        plan = init_mod.Plan(
            spec=spec,
            process=proc,
            rootfs=record.rootfs,
            bundle=record.bundle,
            is_init=False,
            fifo_path=None,
            no_pivot=False,
            new_keyring=False,
            join=join,
            unshare_flags=0,
            cgroup_dirs=(),
            preserve_fds=opts.preserve_fds,
            in_userns="user" in record.namespace_paths,
            rootless=self.rootless,
            hook_state={},
            seccomp_cache=self._seccomp_cache(),
            self_join=manager.self_join() if manager is not None else None,
            seccomp_json=_seccomp_json(record.config),  # the cache entry `create` made
        )
        if not opts.detach:
            parent.become_subreaper()
        add: Callable[[int], None] = manager.add_pid if manager is not None else _no_cgroup
        launched = parent.launch(plan, add_to_cgroup=add)
        if opts.pid_file:
            write_pid_file(opts.pid_file, launched.pid)
        if opts.detach:
            if launched.console_fd is not None:
                from pypod.linux import console

                assert opts.console_socket is not None
                try:
                    console.send_console(opts.console_socket, launched.console_fd)
                finally:
                    os.close(launched.console_fd)
            return 0
        return parent.wait_foreground(launched.pid, launched.console_fd)

    # --- helpers ------------------------------------------------------------------------------
    def _seccomp_cache(self) -> str:
        """Where compiled seccomp programs are kept: in the state root, which is ours only."""
        return os.path.join(self.states.root, SECCOMP_CACHE_DIR)

    def _manager(self, record: ContainerRecord) -> Any:
        from pypod.linux.cgroups import manager_from_state

        return manager_from_state(record.cgroup)

    def _cgroup(self, spec: Spec, container_id: str) -> tuple[Any, Callable[[], None] | None]:
        """The container's cgroup manager, its directories made; and, for cgroup v1, what
        sets their limits: the init is not born in v1 cgroups (it enters them once they are
        set, see parent.launch), so that is done once it is forked, while it sets itself up.
        A v2 cgroup is born into: its limits are set here."""
        from pypod.linux.cgroups import CgroupMode, new_manager

        linux = spec.linux
        manager = new_manager(
            linux.cgroups_path or "" if linux else "",
            container_id,
            rootless=self.rootless or userns.in_user_namespace(),  # runc: rootless cgroups
        )
        manager.create()
        resources = _with_default_device_rules(linux.resources if linux else None)
        if manager.mode == CgroupMode.UNIFIED:
            manager.set_resources(resources)
            return manager, None
        return manager, lambda: manager.set_resources(resources)

    def _plan(
        self,
        spec: Spec,
        proc: Process,
        bundle: str,
        rootfs: str,
        fifo: str,
        opts: CreateOptions,
        cgroup_dirs: tuple[str, ...],
    ) -> tuple[init_mod.Plan, list[tuple[str, str | None]]]:
        from pypod.runtime.process import init as init_mod

        assert spec.linux is not None
        join: list[tuple[str, str]] = []
        flags = 0
        ns_paths: list[tuple[str, str | None]] = []
        for ns in spec.linux.namespaces:
            ns_paths.append((ns.type, ns.path or None))
            if ns.path:
                join.append((ns.type, ns.path))
            else:
                flags |= sc.NAMESPACES[ns.type][0]
        # a user namespace of its own, or the caller's (rootless pypod: the pause process's)
        in_userns = any(ns.type == "user" for ns in spec.linux.namespaces)
        in_userns = in_userns or userns.in_user_namespace()
        hook_state = _hook_state(
            os.path.basename(os.path.dirname(fifo)), Status.CREATING, 0, bundle, spec.annotations
        )  # the init sets its pid (in the container's pid namespace, as runc's init does)
        plan = init_mod.Plan(
            spec=spec,
            process=proc,
            rootfs=rootfs,
            bundle=bundle,
            is_init=True,
            fifo_path=fifo,
            no_pivot=opts.no_pivot,
            new_keyring=not opts.no_new_keyring,
            join=tuple(join),
            unshare_flags=flags,
            cgroup_dirs=cgroup_dirs,
            preserve_fds=opts.preserve_fds,
            in_userns=in_userns,
            rootless=self.rootless,
            hook_state=hook_state,
            seccomp_cache=self._seccomp_cache(),
        )
        return plan, ns_paths

    def _validate(
        self,
        spec: Spec,
        opts: CreateOptions,
        config_path: str,
        seccomp_json: Mapping[str, Any] | None = None,
    ) -> None:
        if spec.process is None:
            raise InvalidArgument(f"{config_path}: process: required to create a container")
        if spec.linux is None:
            raise InvalidArgument(f"{config_path}: linux: required on Linux")
        proc = spec.process
        if proc.terminal and not opts.foreground and not opts.console_socket:
            raise InvalidArgument(
                "cannot allocate tty if runc will detach without setting console socket"
            )
        if opts.console_socket and (opts.foreground or not proc.terminal):
            raise InvalidArgument(
                "cannot use console socket if runc will not detach or allocate tty"
            )
        new_ns = {ns.type for ns in spec.linux.namespaces if not ns.path}
        all_ns = {ns.type for ns in spec.linux.namespaces}
        if (spec.hostname or spec.domainname) and "uts" not in new_ns:
            raise InvalidArgument(
                f"{config_path}: hostname: unable to set hostname without a private UTS namespace"
            )
        for key in spec.linux.sysctl:
            need = next((ns for pre, ns in _SYSCTL_NS.items() if key.startswith(pre)), None)
            if need is None:
                raise InvalidArgument(
                    f"{config_path}: linux.sysctl: sysctl {key!r} is not in a separate kernel "
                    "namespace and cannot be set in a container"
                )
            if need not in all_ns:
                raise InvalidArgument(
                    f"{config_path}: linux.sysctl: sysctl {key!r} needs a private {need} "
                    "namespace"
                )
        listener = spec.linux.seccomp.listener_path if spec.linux.seccomp is not None else None
        if seccomp_json is not None and isinstance(seccomp_json.get("listenerPath"), str):
            listener = seccomp_json["listenerPath"]  # (the rest is parsed after the fork)
        if listener:
            raise NotSupported("seccomp notify (listenerPath) is not supported yet")

    def _hook_state(self, record: ContainerRecord, status: str, pid: int) -> dict[str, Any]:
        return _hook_state(record.id, status, pid, record.bundle, record.annotations)


def _hook_state(
    cid: str, status: str, pid: int, bundle: str, annotations: Mapping[str, str]
) -> dict[str, Any]:
    """The state hooks read on stdin, as runc writes it (pid and annotations omitted if empty)."""
    state: dict[str, Any] = {
        "ociVersion": pypod.OCI_RUNTIME_SPEC_VERSION,
        "id": cid,
        "status": status,
    }
    if pid:
        state["pid"] = pid
    state["bundle"] = bundle
    if annotations:
        state["annotations"] = dict(annotations)
    return state


#: runc's specconv.AllowedDevices, appended after the config's own device rules:
#: mknod of anything, the default devices, ptys and /dev/net/tun
_DEFAULT_DEVICE_RULES = (
    ("c", None, None, "m"), ("b", None, None, "m"),
    ("c", 1, 3, "rwm"), ("c", 1, 8, "rwm"), ("c", 1, 7, "rwm"), ("c", 5, 0, "rwm"),
    ("c", 1, 5, "rwm"), ("c", 1, 9, "rwm"), ("c", 136, None, "rwm"), ("c", 5, 2, "rwm"),
    ("c", 10, 200, "rwm"),
)  # fmt: skip


def preload() -> None:
    """Import what `Runtime.create` imports on its first call (this module imports none of
    it): for a caller that can do that ahead of time, as the monitor does while the CLI
    writes the bundle.  parse_spec's parser, the init's code, the clone of the init into its
    namespaces, and what brings the loopback of a new network namespace up."""
    import pypod.linux.clone
    import pypod.linux.netns
    import pypod.oci.runtime_spec_parse
    import pypod.runtime.process.init
    import pypod.runtime.process.parent  # noqa: F401


def _load_config(path: str) -> tuple[Spec, dict[str, Any], dict[str, Any] | None]:
    """config.json as a Spec, as the JSON object state.json keeps (no second conversion: what
    was read parsed, so it parses again for exec, update and the hooks), and its
    linux.seccomp object, left out of the Spec: the longest part to parse, and needed only
    once the init is forked (see pypod.runtime.process.init.seccomp_program)."""
    try:
        with open(path, "rb") as f:
            data = decode_json(f.read().decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not an object")
    except (OSError, ValueError):  # load_spec says what is wrong, as it words it
        load_spec(path)
        raise
    seccomp = _seccomp_json(data)
    if seccomp is None:  # absent, or not an object: parse_spec says so
        return parse_spec(data, source=path), data, None
    linux = {k: v for k, v in data["linux"].items() if k != "seccomp"}
    return parse_spec({**data, "linux": linux}, source=path), data, seccomp


def _seccomp_json(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """config.json's linux.seccomp object (as state.json keeps it), if it has one."""
    linux = config.get("linux")
    seccomp = linux.get("seccomp") if isinstance(linux, dict) else None
    return seccomp if isinstance(seccomp, dict) else None


def _with_default_device_rules(res: LinuxResources | None) -> LinuxResources:
    defaults = tuple(
        LinuxDeviceCgroup(allow=True, type=t, major=major, minor=minor, access=access)
        for t, major, minor, access in _DEFAULT_DEVICE_RULES
    )
    if res is None:
        return LinuxResources(devices=defaults)
    return replace(res, devices=(*res.devices, *defaults))


def _no_cgroup(_pid: int) -> None:
    return None


def write_pid_file(path: str, pid: int) -> None:
    """Atomically, as runc does (temp file in the same directory, then rename)."""
    write_atomic(os.path.abspath(path), str(pid).encode(), sync=False)
