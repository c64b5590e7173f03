"""The runtime's side of starting a container process: fork, cgroup, id maps, hooks, console.

`launch` drives the sync protocol (see sync.py) and returns once the process reported READY;
`wait_foreground` is what `run` and `exec` without -d do afterwards: forward signals, proxy
the terminal, and return the exit code as runc computes it (128+signal when killed).
"""

from __future__ import annotations

import gc
import os

from pypod.errors import PypodError, RuntimeError_
from pypod.linux import syscalls as sc
from pypod.record import record
from pypod.runtime.process import init as init_mod
from pypod.runtime.process.sync import Channel, Msg
from pypod.stdlite import contextmanager, signal, signal_name, suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


@record(kw_only=False)
class Launched:
    pid: int
    console_fd: int | None


def launch(
    plan: init_mod.Plan,
    *,
    add_to_cgroup: Callable[[int], None],
    run_hooks: Callable[[int], None] | None = None,
    on_pid: Callable[[int], None] | None = None,
    set_limits: Callable[[], None] | None = None,
) -> Launched:
    """Fork the init (or stage-1), answer its requests, and return the pid of the ready process.

    `on_pid(pid)` runs once the process exists, is in its cgroup and its prestart and
    createRuntime hooks have run, while it finishes its set-up: what the caller has to do with
    the pid anyway is then off the path.  `set_limits()` sets the limits of the new cgroup once
    the process is forked, before the process or stage-1 enter it (a cgroup the process is
    born in must have them before: cgroup v2), while the process starts setting itself up.
    """
    prep = init_mod.Prepared.build(plan)
    parent_end, child_end = Channel.pair()
    # The child ends in exec (or _exit) within milliseconds: it runs without the cyclic
    # garbage collector.  Else its first allocation would start a collection of every object
    # the runtime made since its last one (cli/process_exit.py makes them rare, and gives a
    # forked child the usual thresholds back), each touched object's page copied on write:
    # ~0.7 ms on the path of every create and exec, for no garbage.
    collecting = gc.isenabled()
    gc.disable()
    try:
        child, self_join, direct = _fork_init(plan, prep)
    except BaseException:
        if collecting:
            gc.enable()
        parent_end.close()
        child_end.close()
        prep.close_cgroup_dir()
        for fd in prep.fds():
            os.close(fd)
        raise
    if child == 0:
        parent_end.close()
        if direct:
            init_mod.direct_init(child_end, plan, prep, self_join=self_join)
        init_mod.stage1(child_end, plan, prep, self_join=self_join)
    if collecting:
        gc.enable()
    child_end.close()
    prep.close_cgroup_dir()
    for fd in prep.fds():
        os.close(fd)
    stage1_pid = 0 if direct else child
    pid = child if direct else 0
    try:
        if set_limits is not None:  # nothing of the container is in the v1 cgroups yet
            set_limits()
        if stage1_pid:
            pid = _stage1_reports(plan, parent_end, stage1_pid, add_to_cgroup, self_join)
        try:
            if direct and plan.unshare_flags & sc.CLONE_NEWNET and not plan.in_userns:
                # the init's `lo` (runc's "loopback"), while it sets itself up: before
                # CGROUP_JOINED, before which the init runs no hook and execs nothing (in a
                # user namespace the runtime may not enter the init's: the init does it, see
                # direct_init); an init that failed meanwhile is gone: its report is the error
                from pypod.linux import netns  # loaded by Prepared.build

                netns.set_link_up_in(pid, "lo")
            if not self_join:  # else the init joins its cgroups by itself (see _fork_stage1)
                add_to_cgroup(pid)
            # (also the init's go-ahead to send: its messages must come after stage-1's PID)
            _send_cgroup_joined(plan, parent_end, self_join)
        except (OSError, PypodError):
            # the init prepares its mounts meanwhile: when that failed, it reported why and
            # exited (EPIPE/ECONNRESET here, or ESRCH from the cgroup): say what it said
            _raise_reported_error(parent_end)
            raise
        # while the init sets itself up (see init_mod.seccomp_program)
        program = init_mod.seccomp_program(plan) if init_mod.uses_seccomp(plan) else None
        if stage1_pid:
            _reap(stage1_pid)
        if init_mod.runtime_hooks(plan):
            parent_end.expect(Msg.RUN_HOOKS)
            if run_hooks is not None:
                run_hooks(pid)
            parent_end.send(Msg.HOOKS_DONE)
        if program is not None:
            try:
                init_mod.send_seccomp(parent_end, program)
            except OSError:
                _raise_reported_error(parent_end)  # the init failed meanwhile: say why
                raise
        if on_pid is not None:
            on_pid(pid)
        console_fd = None
        if plan.process.terminal:
            msg = parent_end.expect(Msg.CONSOLE)
            console_fd = msg.fds[0]
        parent_end.expect(Msg.READY)
        return Launched(pid, console_fd)
    except BaseException:
        for p in (pid, stage1_pid):
            if p:
                with suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
        if stage1_pid:
            _reap(stage1_pid)
        if pid:
            _reap(pid)
        raise
    finally:
        parent_end.close()


def _send_cgroup_joined(plan: init_mod.Plan, chan: Channel, self_join: bool) -> None:
    """CGROUP_JOINED, with the v1 `tasks` files the init writes itself into when it joins its
    cgroups by itself (init_mod.open_tasks)."""
    tasks = init_mod.open_tasks(plan) if self_join else ()
    try:
        chan.send(Msg.CGROUP_JOINED, tasks)
    finally:
        for fd in tasks:
            os.close(fd)


def _stage1_reports(
    plan: init_mod.Plan,
    chan: Channel,
    stage1_pid: int,
    add_to_cgroup: Callable[[int], None],
    self_join: bool,
) -> int:
    """Serve stage-1 (its id maps) until it reports the init's pid; that pid."""
    if not self_join and _stage1_in_cgroup(plan):
        # as runc does: stage-1 joins the cgroup first, so that the slow first move (see
        # init.py) overlaps with its namespaces and the init's mounts; the init, forked by
        # it, is born there.  The init's own move in launch() stays the one that counts.
        with suppress(OSError, PypodError):
            add_to_cgroup(stage1_pid)
    msg = chan.expect(Msg.MAP_IDS, Msg.PID)
    if msg.type == Msg.MAP_IDS:
        linux = plan.spec.linux
        assert linux is not None
        from pypod.linux import idmap

        idmap.write_maps(stage1_pid, linux.uid_mappings, linux.gid_mappings)
        chan.send(Msg.IDS_MAPPED)
        msg = chan.expect(Msg.PID)
    return int(msg.data["pid"])


def _fork_init(plan: init_mod.Plan, prep: init_mod.Prepared) -> tuple[int, bool, bool]:
    """Fork the container's first process: (0 or its pid, whether the init joins its cgroups
    by itself, whether that process is the init itself, born in its new namespaces).

    A new container's init whose namespaces are all new ones, no user or time namespace among
    them, is cloned straight into them (and into its cgroup2 directory where it can, see
    _fork_stage1): no stage-1 (a fork of a big process, then a second fork) is needed.  A user
    namespace must be mapped, and a time namespace given its offsets, before a process enters
    it; a namespace given by path is joined with setns(2), which for a pid namespace takes
    effect in children only: those go through stage-1, as does everything when the kernel
    refuses the clone (no process was created: it is safe to fork again).
    """
    flags = _direct_clone_flags(plan)
    if flags is not None:
        from pypod.linux import clone

        join = plan.self_join
        self_join = join is not None and prep.self_join_planned
        into = prep.cgroup_dir_fd if self_join else None
        try:
            return clone.clone_process(flags, into), self_join, True
        except PypodError:
            if into is not None:  # the cgroup refused (see _fork_stage1): the parent moves it
                with suppress(PypodError):
                    return clone.clone_process(flags, None), False, True
    return (*_fork_stage1(plan, prep), False)


def _direct_clone_flags(plan: init_mod.Plan) -> int | None:
    """The CLONE_NEW* flags the init can be cloned with directly, None if it needs stage-1."""
    if not plan.is_init or plan.join or plan.unshare_flags & (sc.CLONE_NEWUSER | sc.CLONE_NEWTIME):
        return None
    # the cgroup namespace is unshared by the init once it is in its cgroup
    return plan.unshare_flags & ~sc.CLONE_NEWCGROUP


def _fork_stage1(plan: init_mod.Plan, prep: init_mod.Prepared) -> tuple[int, bool]:
    """Fork stage-1: (0 or its pid, whether the init joins its cgroups by itself).

    A move of a process by another one waits for an RCU grace period (pypod.linux.cgroups.
    SelfJoin), so where it can stage-1 is born in the container's cgroup2 directory (the
    process it forks, the init or an exec'd one, is born there too) and that process moves
    itself into the v1 hierarchies (a thread moving itself takes no global lock).  Not where a
    pids limit counts stage-1 and may leave no room for it and its child at once, nor from a
    process with other threads (pypod.linux.clone); when the kernel refuses the clone (before
    5.7, a seccomp filter, an unusual cgroup) the parent moves the process as before.  A clone
    that failed created no process: it is safe to fork again.
    """
    join = plan.self_join
    if join is None or not prep.self_join_planned:
        return os.fork(), False
    if join.pids_limited and not _stage1_in_cgroup(plan):
        return os.fork(), False
    if prep.cgroup_dir_fd is None:  # LEGACY: v1 hierarchies only, the init joins them all
        return os.fork(), True
    from pypod.linux import clone

    try:
        return clone.fork_into_cgroup(prep.cgroup_dir_fd), True
    except PypodError:
        return os.fork(), False


def _stage1_in_cgroup(plan: init_mod.Plan) -> bool:
    """Whether stage-1 may join the new container's cgroup: not when the container's pids
    limit leaves no room for stage-1 and the init at once (stage-1 could not fork it)."""
    if not plan.is_init:
        return False  # exec: the container's cgroup may be at its pids limit already
    linux = plan.spec.linux
    pids = linux.resources.pids if linux is not None and linux.resources is not None else None
    limit = pids.limit if pids is not None else None
    return limit is None or limit <= 0 or limit >= 2


def _raise_reported_error(chan: Channel) -> None:
    """Raise the child's ERROR (or its exit) if it already sent one; never blocks."""
    import select

    while select.select([chan.fileno()], [], [], 0)[0]:
        msg = chan.expect(*Msg.ALL)  # raises for an ERROR, or at EOF
        for fd in msg.fds:  # a pty master the init sent before it waited for its cgroup
            os.close(fd)


def _reap(pid: int) -> None:
    with suppress(ChildProcessError):
        os.waitpid(pid, 0)


def become_subreaper() -> None:
    """Orphaned descendants (the init, once stage-1 exits) become our children to wait for."""
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)


def exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def wait_foreground(pid: int, console_fd: int | None) -> int:
    """Wait for `pid`, forwarding signals to it and proxying the console; its exit code."""
    with _forward_signals(pid, console_fd):
        if console_fd is not None:
            _proxy_console(console_fd, pid)
        while True:
            try:
                wpid, status = os.waitpid(-1, 0)
            except InterruptedError:
                continue
            except ChildProcessError:
                raise RuntimeError_(f"lost track of the container process {pid}") from None
            if wpid == pid:
                return exit_code(status)


def _forwarded() -> list[int]:
    """The signals `wait_foreground` passes on: every one with a name (`signal.Signals`, in
    number order) but those that cannot be caught, SIGCHLD, and SIGWINCH (handled apart)."""
    skip = (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGWINCH)
    return [n for n in range(1, signal.NSIG) if signal_name(n) is not None and n not in skip]


@contextmanager
def _forward_signals(pid: int, console_fd: int | None) -> Iterator[None]:
    def forward(signum: int, _frame: object) -> None:
        if signum == signal.SIGWINCH and console_fd is not None:
            _copy_winsize(console_fd)
            return
        with suppress(ProcessLookupError):
            os.kill(pid, signum)

    old = {}
    for sig in [*_forwarded(), signal.SIGWINCH]:
        with suppress(OSError, ValueError):
            old[sig] = signal.signal(sig, forward)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _copy_winsize(console_fd: int) -> None:
    from pypod.linux import console

    with suppress(OSError):
        rows, cols = console.get_size(0)
        console.set_size(console_fd, rows, cols)


def _proxy_console(master: int, pid: int) -> None:
    """Copy our stdin to the pty and the pty to our stdout until the container closes it."""
    import select
    import termios
    import tty

    saved = None
    if os.isatty(0):
        saved = termios.tcgetattr(0)
        tty.setraw(0)
        _copy_winsize(master)
    try:
        fds = [master, 0]
        while True:
            try:
                ready, _, _ = select.select(fds, [], [])
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the slave side is closed
                    data = b""
                if not data:
                    return
                _write_all(1, data)
            if 0 in ready:
                data = os.read(0, 65536)
                if data:
                    _write_all(master, data)
                else:
                    fds.remove(0)
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        os.close(master)


def _write_all(fd: int, data: bytes) -> None:
    """os.write may write less than asked (a pty, a pipe, a signal): write the rest too."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except InterruptedError:
            continue
