"""The messages between `spawn` (in the CLI) and the monitor it forked, until the monitor runs
its loop.  JSON objects over a SOCK_SEQPACKET socketpair, one datagram each, in this order:

  CLI -> monitor   CREATE {start}                the bundle is written: create the container
                   or EOF                        the CLI gave up before: the monitor removes its
                                                 files and exits (it was forked ahead of the
                                                 bundle, to prepare meanwhile: see spawn.py)
  monitor -> CLI   CREATED {pid, monitor_pid}    the container exists, its init waits for start
                                                 (an exec session: pid 0, nothing started yet)
                   CREATED {pid, monitor_pid,    with CREATE's `start` (nobody has to attach
                            started: true}       first: `run -d`): created and started at once;
                                                 the monitor then exec()s its loop
  CLI -> monitor   START                         start it (an exec session: run the process)
                   or EOF                        release: leave it created, keep watching it
  monitor -> CLI   STARTED {pid}                 it runs; the monitor now exec()s its loop

  monitor -> CLI   ERROR {error, message, errno, monitor_pid}   instead of CREATED or STARTED:
                   the step failed and nothing is left (no process, no runtime state); the
                   monitor then waits for the CLI to close the socket and exits.

`error` names a class of pypod.errors; the CLI raises that class with `message`.
"""

from __future__ import annotations

from pypod import errors, jsoncodec
from pypod.errors import PypodError, RuntimeError_
from pypod.linux import unixsock
from pypod.record import field, record
from pypod.stdlite import one_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final


class Msg:
    """The message types (their values are the wire's "type")."""

    CREATE: Final = "create"
    CREATED: Final = "created"
    START: Final = "start"
    STARTED: Final = "started"
    ERROR: Final = "error"

    ALL: Final = (CREATE, CREATED, START, STARTED, ERROR)

    @classmethod
    def parse(cls, value: object) -> str:
        """`value` as one of the types; ValueError for anything else."""
        return one_of(value, cls.ALL, "monitor message type")


@record(kw_only=False)
class Message:
    #: one of Msg's
    type: str
    data: dict[str, Any] = field(default_factory=dict)


_MAX = 64 * 1024


def send(sock: unixsock.Socket, type_: str, **data: Any) -> None:
    sock.send(jsoncodec.dumps({"type": Msg.parse(type_), **data}).encode())


def recv(sock: unixsock.Socket) -> Message | None:
    """The next message; None at EOF (the other side closed or exited)."""
    try:
        raw = sock.recv(_MAX)
    except ConnectionResetError:
        return None
    if not raw:
        return None
    obj = jsoncodec.loads(raw)
    return Message(Msg.parse(obj.pop("type")), obj)


def error_data(exc: BaseException) -> dict[str, Any]:
    """What an ERROR carries for `exc`."""
    if isinstance(exc, PypodError):
        return {"error": type(exc).__name__, "message": str(exc), "errno": exc.errno}
    return {
        "error": "RuntimeError_",
        "message": f"monitor: internal error: {type(exc).__name__}: {exc}",
        "errno": getattr(exc, "errno", None),
    }


def raise_error(data: dict[str, Any]) -> PypodError:
    """The exception an ERROR describes (an unknown class becomes RuntimeError_)."""
    cls = getattr(errors, str(data.get("error", "")), None)
    message = str(data.get("message", "monitor failed"))
    exc: PypodError
    if isinstance(cls, type) and issubclass(cls, PypodError):
        try:
            exc = cls(message)
        except TypeError:  # another constructor (OSLevelError, ConfigError...): same class
            exc = cls.__new__(cls)
            Exception.__init__(exc, message)
    else:
        exc = RuntimeError_(message)
    if data.get("errno") is not None:
        exc.errno = int(data["errno"])
    return exc
