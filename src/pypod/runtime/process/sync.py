"""The one typed protocol between the runtime (parent) and the container's processes.

Messages are JSON objects over a SOCK_SEQPACKET socketpair (one datagram each); a pty master
and the v1 `tasks` files travel with their message as SCM_RIGHTS.  The child side only ever
sends what is listed here, in this order (the parent checks it):

  stage-1 -> parent   MAP_IDS                        unshared a user namespace, please map it
  parent -> stage-1   IDS_MAPPED
  stage-1 -> parent   PID {pid}                      forked the init (pid in the parent's ns)
                                                     (no stage-1 when the parent cloned the
                                                     init into its namespaces: it has its pid)
  parent -> init      CGROUP_JOINED [+ fds]          the init is in its cgroup (it sets itself
                                                     up meanwhile and waits for this before
                                                     hooks or a cgroup namespace if it has
                                                     any, before CONSOLE if it has a
                                                     terminal, else before it reads
                                                     SECCOMP).  When the init joins its
                                                     cgroups by itself (see
                                                     parent._fork_stage1) the go-ahead to
                                                     enter its v1 ones (their limits are
                                                     set; their `tasks` files come with it,
                                                     one fd each, in SelfJoin.tasks order)
                                                     and to send: the parent has stage-1's
                                                     PID, the init's messages cannot
                                                     overtake it any more
  init -> parent      RUN_HOOKS                      namespaces and mounts are ready (only with
                                                     prestart or createRuntime hooks)
  parent -> init      HOOKS_DONE                     prestart/createRuntime hooks have run
  parent -> init      SECCOMP {code, kernel_flags,   the compiled seccomp filter, when the
                       syscall_nr}                   process has one: the parent parses and
                                                     compiles it after the fork, meanwhile
                                                     (sent after CGROUP_JOINED and HOOKS_DONE;
                                                     the init reads it with read(2) alone,
                                                     after CGROUP_JOINED, before it loads it)
  init -> parent      CONSOLE + fd                   pty master, when process.terminal
  init -> parent      READY                          about to wait for `start` (or exec)
  any child -> parent ERROR {message, exit_code}     the step failed; the child exits

The parent reads CONSOLE and READY after it sent CGROUP_JOINED (and HOOKS_DONE); the init sends
nothing but an ERROR before it had CGROUP_JOINED.
"""

from __future__ import annotations

import os

from pypod import jsoncodec
from pypod.errors import RuntimeError_
from pypod.linux import unixsock
from pypod.record import field, record
from pypod.stdlite import one_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final


class Msg:
    """The message types (their values are the wire's "type")."""

    CGROUP_JOINED: Final = "cgroup-joined"
    MAP_IDS: Final = "map-ids"
    IDS_MAPPED: Final = "ids-mapped"
    SECCOMP: Final = "seccomp"
    PID: Final = "pid"
    RUN_HOOKS: Final = "run-hooks"
    HOOKS_DONE: Final = "hooks-done"
    CONSOLE: Final = "console"
    READY: Final = "ready"
    ERROR: Final = "error"

    ALL: Final = (
        CGROUP_JOINED, MAP_IDS, IDS_MAPPED, SECCOMP, PID, RUN_HOOKS, HOOKS_DONE, CONSOLE, READY,
        ERROR,
    )  # fmt: skip

    @classmethod
    def parse(cls, value: object) -> str:
        """`value` as one of the types; ValueError for anything else."""
        return one_of(value, cls.ALL, "sync message type")


@record(kw_only=False)
class Message:
    #: one of Msg's
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    fds: tuple[int, ...] = ()


_MAX = 64 * 1024
#: descriptors one message may carry: a pty master, or CGROUP_JOINED's v1 `tasks` files (one a
#: hierarchy; a v1 host has up to ~14)
_MAX_FDS = 32


class Channel:
    """One end of the sync socketpair."""

    def __init__(self, sock: unixsock.Socket) -> None:
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        a, b = unixsock.seqpacket_pair()
        return cls(a), cls(b)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, type_: str, fds: tuple[int, ...] = (), **data: Any) -> None:
        payload = jsoncodec.dumps({"type": type_, **data}).encode()
        if fds:
            unixsock.send_fds(self.sock, payload, fds)
        else:
            self.sock.send(payload)

    def recv(self) -> Message:
        try:
            raw, fds = unixsock.recv_fds(self.sock, _MAX, _MAX_FDS)
        except ConnectionResetError:
            # the peer exited with our last message unread: the kernel reports that once,
            # ahead of what the peer sent before (its ERROR), which is still queued
            raw, fds = unixsock.recv_fds(self.sock, _MAX, _MAX_FDS)
        return _decode(raw, tuple(fds))

    def expect(self, *types: str) -> Message:
        """Receive the next message; an ERROR becomes an exception, anything unexpected too."""
        try:
            msg = self.recv()
        except EOFError:
            raise RuntimeError_(
                "container init exited before it was ready (see the errors above)"
            ) from None
        return _checked(msg, types)

    def expect_read(self, *types: str) -> Message:
        """expect() a message without descriptors through read(2) alone: what the init calls
        once its seccomp filter is installed (it needs read(2) anyway, for the exec fifo)."""
        try:
            raw = os.read(self.sock.fileno(), _MAX)
        except ConnectionResetError:
            raw = b""
        try:
            msg = _decode(raw, ())
        except EOFError:
            raise RuntimeError_("the runtime closed the sync socket") from None
        return _checked(msg, types)

    def close(self) -> None:
        self.sock.close()


def _decode(raw: bytes, fds: tuple[int, ...]) -> Message:
    if not raw:
        raise EOFError("the container process closed the sync socket")
    obj = jsoncodec.loads(raw)
    type_ = Msg.parse(obj.pop("type"))
    return Message(type_, obj, fds)


def _checked(msg: Message, types: tuple[str, ...]) -> Message:
    if msg.type == Msg.ERROR:
        raise ChildError(
            "unable to start container process: " + msg.data.get("message", "unknown error"),
            msg.data.get("exit_code", 1),
        )
    if msg.type not in types:
        raise RuntimeError_(f"sync: expected {'/'.join(types)}, got {msg.type}")
    return msg


class ChildError(RuntimeError_):
    """A failure reported by the container's process; exit_code 126/127 for exec failures."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
