"""The container's processes, from fork to exec, one named step each (as crun and runc order them).

stage-1 (a fork of the runtime): joins namespaces given by path, unshares the new ones (its user
namespace mapped by the parent), then forks the init so that the init lands in the new pid
namespace, reports the init's pid and exits.  A new container's init that joins no namespace
and has no user or time namespace is cloned by the parent straight into its new namespaces
instead (`direct_init`: no stage-1).

init: sets up the rootfs (create only), then the process (console, rlimits, user, capabilities,
no_new_privs, seccomp), reports READY, waits for `start` on the exec fifo (create only) and
execs the container's program through the sealed helper.

Its cgroups: a move by another process waits for an RCU grace period (10-20 ms, see
pypod.linux.cgroups.SelfJoin), so the init of a new container joins them by itself where it can:
the parent clones the init (or stage-1) into the cgroup2 one (clone3 with CLONE_INTO_CGROUP; an
init forked by stage-1 is born there too), and the init writes "0" into the `tasks` files of the
v1 ones once the parent says CGROUP_JOINED (it sets their limits meanwhile).  Otherwise (an
exec'd process, rootless, a pids limit of 1, a kernel that refuses the clone, a parent with
threads) the parent moves the init meanwhile.  Either way the init waits for that only where it
matters: before hooks and the cgroup namespace when there are any, else before it reads its
seccomp filter (SECCOMP) and its credentials change.

Nothing here returns to the caller: each function ends in exec or os._exit, and every failure is
reported to the parent as an ERROR message first.
"""

from __future__ import annotations

import binascii  # built in: usable after pivot_root
import errno
import os
import stat

from pypod.errors import (
    CannotInvoke,
    CommandNotFound,
    InvalidArgument,
    OSLevelError,
    PypodError,
)
from pypod.linux import capabilities, exec_helper
from pypod.linux import syscalls as sc
from pypod.oci.runtime_spec import LinuxSeccomp, Process, Spec
from pypod.record import record
from pypod.runtime import rootfs
from pypod.runtime.process.sync import Channel, Msg
from pypod.stdlite import signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, NoReturn

    from pypod.linux.cgroups import SelfJoin
    from pypod.linux.cgroups.paths import CgroupMount
    from pypod.linux.seccomp import Program

_RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}  # fmt: skip
_OPEN_EXISTING_NS_ORDER = ("user", "mount", "pid", "network", "ipc", "uts", "cgroup", "time")


@record
class Plan:
    """Everything the container's processes need, decided by the parent before fork."""

    spec: Spec
    process: Process
    rootfs: str
    bundle: str
    #: create: set up mounts and wait on the fifo; exec: join and run
    is_init: bool
    fifo_path: str | None
    no_pivot: bool
    #: give the container a session keyring of its own (runc's default; --no-new-keyring)
    new_keyring: bool
    #: (namespace type, path) joined with setns, user namespace first
    join: tuple[tuple[str, str], ...]
    #: CLONE_NEW* flags to unshare
    unshare_flags: int
    #: the container's cgroup directories (bound into its /sys/fs/cgroup)
    cgroup_dirs: tuple[str, ...]
    preserve_fds: int
    #: the init runs in a user namespace (mknod impossible, binds instead)
    in_userns: bool
    #: container state given to hooks run by the init (createContainer, startContainer)
    hook_state: dict[str, object]
    #: the runtime runs without root: supplementary groups are left as the caller's (runc)
    rootless: bool = False
    #: where compiled seccomp programs are kept (see pypod.linux.seccomp_cache); None: nowhere
    seccomp_cache: str | None = None
    #: how the process may join its cgroups by itself; None: the parent moves it
    self_join: SelfJoin | None = None
    #: config.json's linux.seccomp as read, when `spec` was parsed without it: the parent
    #: parses and compiles it once the process is forked (see seccomp_program)
    seccomp_json: Mapping[str, Any] | None = None
    #: the host's cgroup filesystems as the parent's cgroup manager found them (the init's
    #: /sys/fs/cgroup binds them; it need not read and parse mountinfo again), () for unknown
    cgroup_mounts: tuple[CgroupMount, ...] = ()


def uses_seccomp(plan: Plan) -> bool:
    """Whether the process gets a seccomp filter (then the parent sends it: SECCOMP)."""
    linux = plan.spec.linux
    return plan.seccomp_json is not None or (linux is not None and linux.seccomp is not None)


def seccomp_program(plan: Plan) -> Program | None:
    """The process's compiled seccomp filter, None for none.

    The parent calls this once the process is forked: parsing the profile and finding (or
    compiling) its program then overlaps with the process's own set-up (its mounts), which
    takes longer; the process needs the program only just before its credentials change.
    """
    from pypod.linux import seccomp_cache

    config = plan.seccomp_json
    if config is not None:  # as read: parsed only if the cache has no program for it
        return seccomp_cache.program_for_config(
            config, lambda: _parse_seccomp(config, plan.bundle), plan.seccomp_cache
        )
    profile = plan.spec.linux.seccomp if plan.spec.linux is not None else None
    if profile is None:
        return None
    return seccomp_cache.program_for(profile, plan.seccomp_cache)


def _parse_seccomp(config: Mapping[str, Any], bundle: str) -> LinuxSeccomp:
    """config.json's linux.seccomp, validated (its errors named as in config.json)."""
    import pypod
    from pypod.oci.runtime_spec import parse_spec

    wrapper = {
        "ociVersion": pypod.OCI_RUNTIME_SPEC_VERSION,
        "root": {"path": "/"},
        "linux": {"seccomp": config},
    }
    linux = parse_spec(wrapper, source=os.path.join(bundle, "config.json")).linux
    assert linux is not None and linux.seccomp is not None
    return linux.seccomp


def send_seccomp(chan: Channel, program: Program) -> None:
    """The parent's SECCOMP message: the program's instructions (base64) and how to load it."""
    chan.send(
        Msg.SECCOMP,
        code=binascii.b2a_base64(program.code, newline=False).decode(),
        kernel_flags=program.kernel_flags,
        syscall_nr=program.syscall_nr,
    )


def _receive_seccomp(chan: Channel) -> Program:
    """SECCOMP, read with read(2) (see Channel.expect_read); needs no import."""
    from pypod.linux import seccomp  # loaded by Prepared.build

    data = chan.expect_read(Msg.SECCOMP).data
    program = seccomp.Program(
        code=binascii.a2b_base64(data["code"]),
        kernel_flags=int(data["kernel_flags"]),
        syscall_nr=int(data["syscall_nr"]),
    )
    program.check()
    return program


def runtime_hooks(plan: Plan) -> bool:
    """Whether the parent runs hooks for this process (prestart, createRuntime): then the init
    asks for them (RUN_HOOKS) once its namespaces and mounts are ready, before pivot_root."""
    hooks = plan.spec.hooks
    return plan.is_init and hooks is not None and bool(hooks.prestart or hooks.create_runtime)


def _cgroup_first(plan: Plan) -> bool:
    """Whether the init needs its cgroup before pivot_root: for hooks (they see the container
    in its cgroup, as with runc) and for a cgroup namespace of its own."""
    hooks = plan.spec.hooks
    return bool(
        plan.unshare_flags & sc.CLONE_NEWCGROUP
        or runtime_hooks(plan)
        or (plan.is_init and hooks is not None and hooks.create_container)
    )


@record(kw_only=False)
class Prepared:
    """What must be loaded while the host's filesystem is still visible.

    After pivot_root (create) or setns into the mount namespace (exec) no module can be
    imported and no shared library opened, so the parent prepares these before it forks.
    """

    helper_fd: int
    run_hooks: Any
    #: the exec fifo, opened for reading by the runtime: the init may run as a mapped user
    #: that could not open it by path (as runc passes it)
    fifo_fd: int | None = None
    #: a write end of the same fifo the init keeps until `start`: with a writer always there,
    #: a `start` that opens the fifo and dies before writing leaves poll() blocking instead of
    #: reporting a hang-up forever (a busy loop)
    fifo_hold_fd: int | None = None
    #: plan.self_join's cgroup2 directory, opened: the one the parent forks stage-1 into
    #: (None: none; the parent's only, stage-1 closes it).  The v1 `tasks` files the init
    #: writes "0" to come with CGROUP_JOINED instead (see open_tasks)
    cgroup_dir_fd: int | None = None
    #: whether the init may join its cgroups by itself (see parent.launch)
    self_join_planned: bool = False

    def fds(self) -> tuple[int, ...]:
        """The descriptors the init must keep (everything else is closed in stage-1)."""
        extra = (self.fifo_fd, self.fifo_hold_fd)
        return (self.helper_fd, *(fd for fd in extra if fd is not None))

    def close_cgroup_dir(self) -> None:
        if self.cgroup_dir_fd is not None:
            os.close(self.cgroup_dir_fd)

    @classmethod
    def build(cls, plan: Plan) -> Prepared:
        import select  # noqa: F401 - used by _wait_for_start after pivot_root

        # what only some containers need, loaded for them alone (termios, ioctls...)
        if plan.process.terminal:
            import pypod.linux.console
        if plan.unshare_flags & sc.CLONE_NEWNET:
            import pypod.linux.netns  # used by stage-1 (or the init) in the new namespace

        caps = plan.process.capabilities
        if caps is not None:  # warnings (capabilities this kernel lacks) are shown here, by the
            for names in (caps.bounding, caps.effective, caps.permitted, caps.inheritable):
                capabilities.to_mask(names)  # parent: the init cannot log once it pivoted
        if uses_seccomp(plan):
            import pypod.linux.seccomp  # noqa: F401 - the init builds the program it is sent
        hooks = None
        if plan.spec.hooks is not None and (
            plan.spec.hooks.create_container or plan.spec.hooks.start_container
        ):
            import subprocess  # noqa: F401 - used by run_hooks inside the container

            from pypod.runtime.hooks import run_hooks

            hooks = run_hooks
        fifo_fd = hold_fd = None
        if plan.fifo_path is not None:
            fifo_fd = os.open(plan.fifo_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            hold_fd = os.open(plan.fifo_path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        join = plan.self_join
        dir_fd = None
        if join is not None and join.clone_into is not None:
            try:
                dir_fd = os.open(join.clone_into, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as e:
                raise OSLevelError(f"cgroup: open {e.filename}", errno=e.errno or errno.EIO) from e
        planned = join is not None and (dir_fd is not None or bool(join.tasks))
        return cls(exec_helper.sealed_helper_fd(), hooks, fifo_fd, hold_fd, dir_fd, planned)


def open_tasks(plan: Plan) -> tuple[int, ...]:
    """plan.self_join's v1 `tasks` files, opened by the parent (the init's own moves are then
    checked against the parent's credentials, as the parent's moves would be), to send with
    CGROUP_JOINED.

    Opened once the process is forked, not in Prepared.build: the first open of a new cgroup's
    file takes 0.1-0.5 ms (~1 ms for a hybrid host's nine), which then overlaps with the
    process's own set-up; it needs them only at CGROUP_JOINED.
    """
    join = plan.self_join
    if join is None:
        return ()
    opened: list[int] = []
    try:
        for path in join.tasks:
            opened.append(os.open(path, os.O_WRONLY | os.O_CLOEXEC))
    except OSError as e:
        for fd in opened:
            os.close(fd)
        raise OSLevelError(f"cgroup: open {e.filename}", errno=e.errno or errno.EIO) from e
    return tuple(opened)


def _report(chan: Channel, exc: BaseException) -> NoReturn:
    code = 1
    if isinstance(exc, CommandNotFound):
        code = 127
    elif isinstance(exc, CannotInvoke):
        code = 126
    if isinstance(exc, PypodError | OSError):
        message = str(exc)
    else:
        message = _describe_unexpected(exc)
    try:
        chan.send(Msg.ERROR, message=message, exit_code=code)
    finally:
        os._exit(code)


def _describe_unexpected(exc: BaseException) -> str:
    """A bug's exception with where it happened (no `traceback`: after pivot_root it cannot load
    the source lines, and importing it costs start-up time)."""
    where = []
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        where.append(f"{code.co_filename}:{tb.tb_lineno} in {code.co_name}")
        tb = tb.tb_next
    return f"internal error: {type(exc).__name__}: {exc} (at {' <- '.join(reversed(where))})"


def forbid_imports() -> tuple[object, ...]:
    """From here on no module can be imported, from anywhere.

    Once the process sees the container's filesystem (after pivot_root, or after joining the
    container's mount namespace) the paths of sys.path name files the container controls, and
    this process still runs with the runtime's privileges: an import (a lazy one, a logging
    call on a rare path) would run the image's code.  Everything the container's processes need
    is imported by Prepared.build beforehand; only built-in and frozen modules stay importable.

    Returns what it took away (the path finders, sys.path, the path hooks and the finders'
    cache): the caller keeps it until it execs or exits, so that none of it is freed.  Freeing
    those thousands of objects (the finders' directory listings) would write to, and so copy,
    some 160 pages this fork still shares with the runtime: ~0.4 ms of a container's start.
    """
    import sys  # built in: importable anywhere

    bootstrap = sys.modules["_frozen_importlib"]  # always loaded; importlib itself may not be
    keep = (bootstrap.BuiltinImporter, bootstrap.FrozenImporter)
    taken = (list(sys.meta_path), sys.path, sys.path_importer_cache, sys.path_hooks)
    sys.meta_path[:] = [finder for finder in sys.meta_path if finder in keep]
    sys.path = []
    sys.path_importer_cache = {}
    sys.path_hooks = []
    return taken


def stage1(chan: Channel, plan: Plan, prep: Prepared, *, self_join: bool = False) -> NoReturn:
    """`self_join`: we were born in the cgroup2 directory; the init, born there too, joins the
    v1 hierarchies by itself (the parent's CGROUP_JOINED then only says it has its pid)."""
    try:
        _close_inherited_fds(chan, plan, prep)
        _join_namespaces(plan.join)
        locked: tuple[object, ...] = ()  # kept to the end (see forbid_imports)
        if any(ns_type == "mount" for ns_type, _ in plan.join):
            locked = forbid_imports()  # joined a container's mount namespace: its files now
        if plan.unshare_flags & sc.CLONE_NEWUSER:
            sc.unshare(sc.CLONE_NEWUSER)
            chan.send(Msg.MAP_IDS)
            chan.expect(Msg.IDS_MAPPED)
        if plan.in_userns:
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        # the cgroup namespace is unshared by the init once it is in its cgroup
        rest = plan.unshare_flags & ~(sc.CLONE_NEWUSER | sc.CLONE_NEWCGROUP)
        if rest:
            sc.unshare(rest)
        if rest & sc.CLONE_NEWNET:
            _loopback_up()
        if rest & sc.CLONE_NEWTIME and plan.spec.linux is not None:
            _time_offsets(plan.spec)
        if not plan.in_userns:
            # Until its last exec the init runs the host's Python: non-dumpable, a process in
            # the container cannot open /proc/<init>/exe (then write the interpreter once it is
            # no longer busy: CVE-2019-5736) nor reach its fds, as runc's nsexec does.  execve
            # makes the container's program dumpable again.  (In a user namespace the init's
            # /proc files would then belong to the host's root, and its root could not write
            # the interpreter anyway.)
            sc.prctl(sc.PR_SET_DUMPABLE, 0)
        pid = os.fork()
        if pid == 0:
            init(chan, plan, prep, self_join=self_join, locked=locked)
        chan.send(Msg.PID, pid=pid)
        os._exit(0)
    except BaseException as e:
        _report(chan, e)


def direct_init(chan: Channel, plan: Plan, prep: Prepared, *, self_join: bool = False) -> NoReturn:
    """The init cloned straight into its new namespaces (see parent._fork_init): what stage-1
    would have done for it (no namespace to join, no user namespace to map), then `init`.

    Its new network namespace's `lo` is brought up by the parent meanwhile, before
    CGROUP_JOINED (parent.launch): that takes the kernel's rtnl lock, which a network
    namespace still being torn down (the last container's) can hold for milliseconds.  In a
    user namespace (rootless) the init brings it up itself: the runtime may not enter it.
    """
    try:
        if not plan.in_userns:
            sc.prctl(sc.PR_SET_DUMPABLE, 0)  # first of all (see stage1)
        _close_inherited_fds(chan, plan, prep)
        if plan.in_userns:
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
            if plan.unshare_flags & sc.CLONE_NEWNET:
                _loopback_up()  # (the runtime may not enter a user namespace's netns: EPERM)
    except BaseException as e:
        _report(chan, e)
    init(chan, plan, prep, self_join=self_join)


def _loopback_up() -> None:
    """runc's "loopback" network: a new network namespace gets its lo up."""
    from pypod.linux import netns  # loaded by Prepared.build

    netns.set_link_up("lo")


def _join_cgroups(chan: Channel, plan: Plan, *, self_join: bool) -> None:
    """Wait for CGROUP_JOINED; write "0" into each v1 `tasks` file it brings (when joining by
    ourselves: see open_tasks); close them.

    Only once the parent said CGROUP_JOINED: it sets the limits of new v1 cgroups once the
    process is forked (parent.launch's set_limits), and a process in the devices cgroup while
    its rules are written (deny all, then allow each) could be refused a device meanwhile.
    Until then the process runs the runtime's code only, in the runtime's cgroups.
    """
    fds = chan.expect(Msg.CGROUP_JOINED).fds
    try:
        if self_join and plan.self_join is not None:
            if len(fds) != len(plan.self_join.tasks):
                raise OSLevelError(
                    f"cgroup: the runtime sent {len(fds)} of the container's "
                    f"{len(plan.self_join.tasks)} v1 tasks files",
                    errno=errno.EBADF,
                )
            for fd, path in zip(fds, plan.self_join.tasks, strict=True):
                try:
                    os.write(fd, b"0")
                except OSError as e:
                    raise OSLevelError(
                        f"cgroup: the container's init could not move itself in: write {path}",
                        errno=e.errno or errno.EIO,
                    ) from e
    finally:
        for fd in fds:
            os.close(fd)


def _close_inherited_fds(chan: Channel, plan: Plan, prep: Prepared) -> None:
    """Close every fd but the ones the container's processes need (CVE-2024-21626).

    An fd the caller left open, or one of the runtime's own, would otherwise stay open until the
    final exec: a directory among them makes ``cwd: /proc/self/fd/N`` (or ``exec --cwd``) land
    outside the container's root, on the host.  Close-on-exec comes too late for that.
    """
    keep = {chan.fileno(), *prep.fds(), *range(3, 3 + plan.preserve_fds)}
    low = 3
    for fd in sorted(keep):
        if fd > low:
            os.closerange(low, fd)
        low = max(low, fd + 1)
    os.closerange(low, 0x7FFFFFFF)


def _join_namespaces(join: tuple[tuple[str, str], ...]) -> None:
    fds = [(t, os.open(p, os.O_RDONLY | os.O_CLOEXEC)) for t, p in join]
    ordered = sorted(fds, key=lambda tf: _OPEN_EXISTING_NS_ORDER.index(tf[0]))
    later = ordered
    if any(t == "user" for t, _ in ordered):
        # first what can be joined from here: a namespace of an ancestor user namespace (a
        # pod's network namespace, made by the engine) cannot be joined from inside the
        # container's user namespace; those refused here are joined after it
        later = []
        for ns_type, fd in ordered:
            if ns_type == "user":
                continue
            try:
                sc.setns(fd, sc.NAMESPACES[ns_type][0])
            except PypodError as e:
                if e.errno != errno.EPERM:
                    raise InvalidArgument(f"join {ns_type} namespace: {e}") from e
                later.append((ns_type, fd))
                continue
            os.close(fd)
        later = [(t, fd) for t, fd in ordered if t == "user"] + later
    for ns_type, fd in later:
        try:
            sc.setns(fd, sc.NAMESPACES[ns_type][0])
        except PypodError as e:
            raise InvalidArgument(f"join {ns_type} namespace: {e}") from e
        finally:
            os.close(fd)


def _time_offsets(spec: Spec) -> None:
    assert spec.linux is not None
    clocks = {"monotonic": "monotonic", "boottime": "boottime"}
    lines = [
        f"{clocks[name]} {off.secs or 0} {off.nanosecs or 0}\n"
        for name, off in spec.linux.time_offsets.items()
    ]
    if lines:
        with open("/proc/self/timens_offsets", "w") as f:
            f.write("".join(lines))


def init(
    chan: Channel,
    plan: Plan,
    prep: Prepared,
    *,
    self_join: bool = False,
    locked: tuple[object, ...] = (),
) -> NoReturn:
    """`locked`: what stage-1's forbid_imports took away, kept to the end."""
    try:
        _reset_signals()
        os.setsid()
        if plan.new_keyring:
            _join_keyring(str(plan.hook_state.get("id", "")))
        fifo = prep.fifo_fd
        spec, proc = plan.spec, plan.process
        if plan.is_init:
            rootfs.prepare(
                spec,
                plan.rootfs,
                plan.bundle,
                userns=plan.in_userns,
                cgroups=plan.cgroup_dirs,
                cgroup_mounts=plan.cgroup_mounts,
            )
        # unless we join our cgroups by ourselves the parent moves us meanwhile (the move
        # waits for an RCU grace period: overlapping it with our set-up saves that time).
        # Either way its CGROUP_JOINED comes once it has stage-1's PID and has set the
        # cgroups' limits (we join the v1 ones by ourselves only then: see _join_cgroups):
        # nothing of ours may reach it before (we may well be faster than stage-1), so we
        # wait for it before we send anything (RUN_HOOKS, CONSOLE, READY; an ERROR may come
        # any time)
        in_cgroup = _cgroup_first(plan)
        if in_cgroup:
            _join_cgroups(chan, plan, self_join=self_join)
        if plan.unshare_flags & sc.CLONE_NEWCGROUP:
            sc.unshare(sc.CLONE_NEWCGROUP)
        if plan.is_init:
            if runtime_hooks(plan):
                chan.send(Msg.RUN_HOOKS)
                chan.expect(Msg.HOOKS_DONE)
            if spec.hooks is not None and spec.hooks.create_container:
                state = _hook_state(plan.hook_state, "creating")
                prep.run_hooks("createContainer", spec.hooks.create_container, state, fatal=True)
            rootfs.pivot(plan.rootfs, no_pivot=plan.no_pivot)
            locked = (locked, forbid_imports())  # kept to the end
            _hostname(spec)
            _sysctl(spec)
        if proc.terminal:
            if not in_cgroup:
                _join_cgroups(chan, plan, self_join=self_join)
                in_cgroup = True
            _console(chan, proc, bind=plan.is_init)
        if plan.is_init:
            rootfs.finalize(spec)
        _oom_score_adj(proc)
        _rlimits(proc)
        _personality(spec)
        if not in_cgroup:
            # before our credentials change: a cgroup v1 move by a user who is not root needs
            # the moved process to have that user's uid (and the parent sends SECCOMP after it)
            _join_cgroups(chan, plan, self_join=self_join)
        program = _receive_seccomp(chan) if uses_seccomp(plan) else None
        if program is not None and not proc.no_new_privileges:
            program.load()  # needs CAP_SYS_ADMIN: before the capabilities drop
        _user_and_capabilities(proc, in_userns=plan.in_userns, rootless=plan.rootless)
        _chdir(proc.cwd)
        env = _environment(proc)
        path = lookup_executable(proc.args[0], env, proc.cwd)
        if proc.no_new_privileges:
            capabilities.set_no_new_privs()
        chan.send(Msg.READY)
        chan.close()
        if fifo is not None:
            _wait_for_start(fifo)
            if prep.fifo_hold_fd is not None:
                os.close(prep.fifo_hold_fd)
            if spec.hooks is not None and spec.hooks.start_container:
                state = _hook_state(plan.hook_state, "created")  # as runc passes it
                prep.run_hooks("startContainer", spec.hooks.start_container, state, fatal=True)
        if program is not None and proc.no_new_privileges:
            program.load()  # as close to execve as it can be
        os.umask(proc.user.umask if proc.user.umask is not None else 0o022)
        sc.set_cloexec_from(3 + plan.preserve_fds)
        for fd in range(3, 3 + plan.preserve_fds):
            os.set_inheritable(fd, True)
        try:
            exec_helper.exec_through_helper(prep.helper_fd, path, list(proc.args), env)
        except OSLevelError as e:  # after READY nobody reads the channel any more
            _exec_failed(path, e, seccomp=program is not None)
    except BaseException as e:
        _report(chan, e)
    os._exit(1)  # unreachable: exec_through_helper raises on failure


def _exec_failed(path: str, err: OSLevelError, *, seccomp: bool) -> NoReturn:
    """The last exec failed after READY: say so on the process's stderr, as runc does."""
    msg = f"exec {path}: {os.strerror(err.errno).lower()}"
    if seccomp and err.errno in (errno.EPERM, errno.ENOSYS):
        msg += (
            " (pypod-runtime starts the program with execveat(2): the seccomp profile must "
            "allow execveat as well as execve)"
        )
    try:
        os.write(2, msg.encode() + b"\n")
    finally:
        os._exit(1)


def _hook_state(state: dict[str, object], status: str) -> dict[str, object]:
    """The hook state with the init's pid as the container sees it (runc: unix.Getpid())."""
    out = dict(state)
    out["status"] = status
    out["pid"] = os.getpid()
    order = ("ociVersion", "id", "status", "pid", "bundle", "annotations")
    return {k: out[k] for k in order if k in out}


def _reset_signals() -> None:
    """Python ignores SIGPIPE and SIGXFSZ; an ignored signal stays ignored across exec."""
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _join_keyring(container_id: str) -> None:
    """A session keyring of the container's own, named as runc names it."""
    try:
        sc.join_session_keyring("_ses." + container_id)
    except PypodError as e:
        if e.errno != errno.ENOSYS:  # kernels without keyrings: none to hide
            raise


def _hostname(spec: Spec) -> None:
    if spec.hostname:
        sc.sethostname(spec.hostname)
    if spec.domainname:
        sc.setdomainname(spec.domainname)


def _sysctl(spec: Spec) -> None:
    if spec.linux is None:
        return
    for key, value in spec.linux.sysctl.items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as e:
            raise InvalidArgument(f"sysctl {key}={value}: {e.strerror}") from e


def _console(chan: Channel, proc: Process, *, bind: bool) -> None:
    from pypod.linux import console  # loaded by Prepared.build

    master, slave = console.open_pty("/dev/ptmx")
    size = proc.console_size
    if size is not None and size.height and size.width:  # as runc: only when both are set
        console.set_size(master, size.height, size.width)
    chan.send(Msg.CONSOLE, fds=(master,))
    os.close(master)
    if bind:
        rootfs.bind_console(console.pty_name(slave))
    console.make_controlling(slave)
    os.close(slave)


def _oom_score_adj(proc: Process) -> None:
    if proc.oom_score_adj is not None:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(proc.oom_score_adj))


def _rlimits(proc: Process) -> None:
    for r in proc.rlimits:
        res = _RLIMITS[r.type]
        try:
            sc.setrlimit(res, r.soft, r.hard)
        except (ValueError, OSError) as e:
            _, cur_hard = sc.getrlimit(res)
            if cur_hard != sc.RLIM_INFINITY and r.hard > cur_hard:
                raise InvalidArgument(
                    f"process.rlimits: {r.type} hard limit {r.hard} is above the caller's hard "
                    f"limit {cur_hard} and raising it needs CAP_SYS_RESOURCE; lower it to at "
                    f"most {cur_hard}"
                ) from e
            raise InvalidArgument(f"process.rlimits: {r.type} {r.soft}:{r.hard}: {e}") from e


def _personality(spec: Spec) -> None:
    pers = spec.linux.personality if spec.linux is not None else None
    if pers is not None:
        domains = {"LINUX": 0x0000, "LINUX32": 0x0008}
        sc.personality(domains[pers.domain])


def _user_and_capabilities(proc: Process, *, in_userns: bool, rootless: bool) -> None:
    """Switch to the process's user keeping capabilities, then set them (absent: none).

    Rootless, the supplementary groups are not touched, as runc does: dropping the caller's
    groups could open files a group is denied (why the kernel guards setgroups in a userns).
    """
    capabilities.set_keepcaps(True)
    user = proc.user
    if rootless and user.additional_gids:
        raise InvalidArgument("cannot set any additional groups in a rootless container")
    if not rootless and not (in_userns and _setgroups_denied()):
        os.setgroups(list(user.additional_gids))
    os.setresgid(user.gid, user.gid, user.gid)
    os.setresuid(user.uid, user.uid, user.uid)
    capabilities.set_keepcaps(False)
    capabilities.apply(proc.capabilities)


def _setgroups_denied() -> bool:
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() == "deny"
    except OSError:
        return False


def _chdir(cwd: str) -> None:
    try:
        os.chdir(cwd)
    except OSError as e:
        raise InvalidArgument(
            f"chdir to cwd ({cwd!r}) set in config.json failed: {e.strerror}"
        ) from e
    try:
        os.getcwd()  # fails with ENOENT when the new cwd is not below the process's root
    except FileNotFoundError:
        raise InvalidArgument(
            f"chdir to cwd ({cwd!r}): the directory is outside of the container's root "
            "(possible fd leak); give a path inside the container"
        ) from None


def _environment(proc: Process) -> list[str]:
    env = list(proc.env)
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={_home_of(proc.user.uid)}")
    return env


def _home_of(uid: int) -> str:
    try:
        with open("/etc/passwd") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:
        pass
    return "/"


def lookup_executable(arg0: str, env: list[str], cwd: str) -> str:
    """Find the program as runc (Go's exec.LookPath) does, with runc's messages."""
    if "/" in arg0:
        path = arg0 if os.path.isabs(arg0) else os.path.join(cwd, arg0)
        _check_executable(arg0, path)
        return path
    search = next((e[5:] for e in env if e.startswith("PATH=")), "")
    for directory in search.split(":"):
        candidate = os.path.join(directory or ".", arg0)
        try:
            _check_executable(arg0, candidate)
        except CannotInvoke:
            continue
        except CommandNotFound:
            continue
        return candidate
    raise CommandNotFound(f'exec: "{arg0}": executable file not found in $PATH')


def _check_executable(arg0: str, path: str) -> None:
    try:
        st = os.stat(path)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            raise CommandNotFound(f'exec: "{arg0}": stat {path}: no such file or directory') from e
        raise CannotInvoke(f'exec: "{arg0}": stat {path}: {e.strerror}') from e
    if stat.S_ISDIR(st.st_mode) or not os.access(path, os.X_OK):
        raise CannotInvoke(f'exec: "{arg0}": permission denied')


def _wait_for_start(fifo: int) -> None:
    """Block until `start` writes to the exec fifo (opened O_RDONLY|O_NONBLOCK earlier).

    poll() on a fifo that never had a writer does not report a hang-up, so this blocks until
    `start` opens it for writing and writes one byte.
    """
    import select  # preloaded by Prepared.build

    poller = select.poll()
    poller.register(fifo, select.POLLIN)
    while True:
        poller.poll()
        try:
            if os.read(fifo, 1):
                break
        except BlockingIOError:
            continue
    os.close(fifo)
