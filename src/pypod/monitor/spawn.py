"""Starting a container's monitor from the CLI: `spawn(cfg)` -> `Pending`.

`fork_monitor(cfg)` -> `Spawning` forks the monitor ahead of the bundle: it sets itself up
(its files, the runtime's modules) while the CLI mounts the root and writes config.json; then
`Spawning.create()` has it create the container (-> `Pending`), `Spawning.abort()` has it go
away having made nothing.  `spawn(cfg)` is both at once.

The monitor is forked twice (it is in its own session and not the CLI's child, so it outlives
the CLI); `create` returns once it reports the container created, with its init waiting for
`start`.  `Pending.start()` has the monitor start it; `Pending.release()` leaves it
created (`pypod start` later starts it through OCIRuntime.start, the monitor keeps watching).
A failure raises the error the runtime reported (CommandNotFound, CannotInvoke,
InvalidArgument...) once the monitor is gone and has removed what it made.
"""

from __future__ import annotations

import os
import select

from pypod.errors import InvalidState, RuntimeError_
from pypod.linux import unixsock
from pypod.monitor import sync
from pypod.monitor.config import MonitorConfig
from pypod.monitor.sync import Msg
from pypod.stdlite import suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

__all__ = ["Pending", "Spawning", "fork_monitor", "spawn"]

#: how long the CLI waits for a failed monitor to be gone before it reports the failure
_EXIT_WAIT = 30.0


class Pending:
    """A monitor whose container is created and not started yet."""

    def __init__(self, sock: unixsock.Socket, container_id: str, monitor_pid: int, pid: int):
        self._sock: unixsock.Socket | None = sock
        self.container_id = container_id
        #: the monitor's pid (its monitor.pid file says the same)
        self.monitor_pid = monitor_pid
        #: the container's init; for an exec session 0 until started
        self.pid = pid
        #: started already (`Spawning.create(start=True)`)
        self.started = False

    def start(self) -> int:
        """Have the monitor start the container (or run the exec process); its pid."""
        sock = self._take()
        sync.send(sock, Msg.START)
        msg = _expect(
            sock,
            sync.recv(sock),
            Msg.STARTED,
            f"the monitor of container {self.container_id} (pid {self.monitor_pid}) exited "
            "before it reported the start",
        )
        sock.close()
        self.pid = int(msg.data["pid"])
        return self.pid

    def release(self) -> None:
        """Leave the container created; the monitor keeps watching it."""
        sock = self._take()
        sock.close()

    def _take(self) -> unixsock.Socket:
        if self._sock is None:
            raise InvalidState(
                f"monitor of container {self.container_id}: already started or released"
            )
        sock, self._sock = self._sock, None
        return sock

    def __enter__(self) -> Pending:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._sock is not None:
            self.release()


class Spawning:
    """A monitor forked ahead of its bundle, waiting for `create` (or `abort`)."""

    def __init__(self, sock: unixsock.Socket, cfg: MonitorConfig, intermediate: int) -> None:
        self._sock: unixsock.Socket | None = sock
        self.cfg = cfg
        #: the first fork, which exits once it forked the monitor: reaped by create/abort
        self._intermediate = intermediate

    def _reap(self) -> None:
        pid, self._intermediate = self._intermediate, 0
        if pid:
            _wait(pid)

    def create(self, *, start: bool = False) -> Pending:
        """The bundle is ready: have the monitor create the container; returns once it is
        created (raises what the runtime reported, once the monitor is gone).  With `start`
        (a container no one attaches to first: `run -d`) the monitor starts it at once, without
        waiting for `Pending.start` (which must not be called then): one round trip less."""
        parent = self._sock
        if parent is None:
            raise InvalidState(f"monitor of container {self.cfg.container_id}: already used")
        self._sock = None
        try:
            sync.send(parent, Msg.CREATE, **({"start": True} if start else {}))
        except OSError:
            pass  # it failed already: its ERROR (or its exit) is read below
        try:
            msg = sync.recv(parent)
        finally:
            self._reap()
        msg = _expect(
            parent,
            msg,
            Msg.CREATED,
            f"the monitor of container {self.cfg.container_id} exited before it reported; "
            "nothing was created",
        )
        pending = Pending(
            parent, self.cfg.container_id, int(msg.data["monitor_pid"]), int(msg.data["pid"])
        )
        if start:
            if not msg.data.get("started"):
                parent.close()
                raise RuntimeError_(
                    f"the monitor of container {self.cfg.container_id} created it but did not "
                    "start it"
                )
            pending.started = True
            pending.release()  # (it runs: nothing left to say to the monitor)
        return pending

    def abort(self) -> None:
        """Not to be created after all: the monitor removes its files and exits (no-op once
        `create` was called)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._reap()


def fork_monitor(cfg: MonitorConfig) -> Spawning:
    """Fork `cfg`'s monitor, which prepares until `Spawning.create()` (or `abort()`).  The
    directories of its files (cfg.userdata, the log's) must exist."""
    cfg = cfg.absolute()
    cfg.validate()
    parent, child = unixsock.seqpacket_pair()
    import gc

    # what exists now is shared with the monitor until written to: out of the collector's
    # reach, its pages are not copied (for either process) by a collection walking them
    gc.freeze()
    try:
        pid = os.fork()
    except BaseException:
        parent.close()
        child.close()
        raise
    if pid == 0:
        _intermediate(parent, child, cfg)
    child.close()
    return Spawning(parent, cfg, pid)


def _wait(pid: int) -> None:
    with suppress(ChildProcessError):
        while True:
            try:
                os.waitpid(pid, 0)
                return
            except InterruptedError:
                continue


def spawn(cfg: MonitorConfig) -> Pending:
    """Start the monitor of `cfg`'s container (or exec session); returns once it is created."""
    return fork_monitor(cfg).create()


def _intermediate(parent: unixsock.Socket, child: unixsock.Socket, cfg: MonitorConfig) -> NoReturn:
    """The first fork: a new session, fork the monitor, exit (the monitor is orphaned)."""
    code = 1
    try:
        parent.close()
        os.setsid()
        if os.fork() == 0:
            from pypod.monitor import bootstrap

            bootstrap.run(child, cfg)
        code = 0
    finally:
        os._exit(code)


def _expect(sock: unixsock.Socket, msg: sync.Message | None, wanted: str, gone: str
            ) -> sync.Message:  # fmt: skip
    """`msg` when it is `wanted`; else `sock` is closed and the failure raised: the monitor's
    own error (`_fail`), `gone` when it exited without a word, or the unexpected message."""
    if msg is None:
        sock.close()
        raise RuntimeError_(gone)
    if msg.type == Msg.ERROR:
        _fail(sock, msg.data)
    if msg.type != wanted:
        sock.close()
        raise RuntimeError_(f"monitor: expected {wanted}, got {msg.type}")
    return msg


def _fail(sock: unixsock.Socket, data: dict[str, Any]) -> NoReturn:
    """Raise the monitor's error once the monitor has exited (nothing left behind)."""
    exc = sync.raise_error(data)
    pidfd = None
    with suppress(OSError, KeyError, TypeError, ValueError):
        pidfd = os.pidfd_open(int(data["monitor_pid"]))
    sock.close()  # the monitor waits for this before it exits
    if pidfd is not None:
        try:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            poller.poll(int(_EXIT_WAIT * 1000))
        finally:
            os.close(pidfd)
    raise exc
