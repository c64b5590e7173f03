"""How the engine talks to a running monitor: the wire format, and the client side.

Files in the container's `userdata` directory (the monitor makes them):

- `monitor.pid`: the monitor's pid (written atomically; removed when the monitor exits).
- `attach`: a unix SOCK_SEQPACKET socket, one message per datagram (conmon's socket type and
  output framing, so the numbers below are conmon's):
    monitor -> client   [STREAM_STDOUT=2 | STREAM_STDERR=3] + bytes   container output (with a
                        terminal, everything comes as stdout)
    client -> monitor   [MSG_STDIN=0] + bytes        for the container's stdin (used only when
                                                     the container was created with stdin)
                        [MSG_STDIN_EOF=1]            the client's input ended: the monitor
                                                     closes the container's stdin (not for a
                                                     terminal: a terminal's EOF is ^D)
                        [MSG_RESIZE=2] + !HH rows cols   set the terminal size (TIOCSWINSZ)
                        [MSG_CLEANUP_CLAIM=3]        this client cleans up (removes the
                                                     container) once the process exits: the
                                                     monitor then only shuts its sending side
                                                     (the client reads EOF) and waits for
                        [MSG_CLEANUP_DONE=4]         instead of running its exit command; a
                                                     client that closes without it (killed,
                                                     or its cleanup failed) leaves the
                                                     cleanup to the exit command
    Closing the connection is a detach: the container's stdin stays open.  Several clients
    may attach at once; each gets all output from the moment the monitor accepts it (clients
    that connect before the container starts get everything).  When the process exits the
    monitor sends the remaining output, writes the exit file, then closes every connection:
    a client reads EOF and then reads the exit file.
- `ctl`: a fifo of text lines (conmon's format): `1 ROWS COLS` resize, `2` reopen the log.
- the exit file (MonitorConfig.exit_file): JSON {"exit_code": N, "finished": <unix time>,
  "oom_killed": bool}; exit_code is 128+N for a process killed by signal N.

The monitor's side is pypod/monitor/loop.py (standard library only, so it repeats the numbers;
a unit test keeps both equal).
"""

from __future__ import annotations

import errno
import os
import struct

from pypod import jsoncodec
from pypod.errors import InvalidArgument, InvalidState, from_oserror
from pypod.linux import unixsock
from pypod.record import record
from pypod.stdlite import contextmanager, suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Final

__all__ = [
    "DEFAULT_DETACH_KEYS",
    "AttachResult",
    "Connection",
    "DetachMatcher",
    "ExitStatus",
    "attach",
    "connect",
    "monitor_pid",
    "parse_detach_keys",
    "read_exit_file",
    "reopen_log",
    "resize",
    "stream",
]

STREAM_STDOUT = 2
STREAM_STDERR = 3
MSG_STDIN = 0
MSG_STDIN_EOF = 1
MSG_RESIZE = 2
MSG_CLEANUP_CLAIM = 3
MSG_CLEANUP_DONE = 4
CTL_RESIZE = 1
CTL_REOPEN_LOG = 2
ATTACH_SOCKET = "attach"
CTL_FIFO = "ctl"
PID_FILE = "monitor.pid"
#: the largest datagram the monitor sends (a one-byte header and one read of output)
_RECV_MAX = 65536 + 1
_STDIN_CHUNK = 8192

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


class AttachResult:
    """How an attachment ended (what `Connection.run` returns: one of these strings)."""

    #: the output ended: the process exited (read the exit file) or the monitor is gone
    ENDED: Final = "ended"
    #: the user typed the detach keys: the container runs on
    DETACHED: Final = "detached"


# --------------------------------------------------------------------------- detach keys


def parse_detach_keys(spec: str) -> bytes:
    """podman's --detach-keys: comma-separated `ctrl-<x>` or single characters; "" = none."""
    if spec == "":
        return b""
    out = bytearray()
    for item in spec.split(","):
        if len(item) == 1:
            out.append(ord(item))
            continue
        low = item.lower()
        if low.startswith("ctrl-") and len(item) == 6:
            ch = low[5]
            if "a" <= ch <= "z":
                out.append(ord(ch) - ord("a") + 1)
                continue
            special = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}
            if ch in special:
                out.append(special[ch])
                continue
        raise InvalidArgument(
            f"detach keys {spec!r}: {item!r} is not a valid key; use a single character or "
            "ctrl-<a-z, @, [, \\, ], ^, _>, comma-separated (e.g. ctrl-p,ctrl-q)"
        )
    return bytes(out)


class DetachMatcher:
    """Finds the detach sequence in a stream of input, across reads.

    feed(data) -> (bytes to forward, detached).  Bytes that may begin the sequence are held
    back until the next input tells; on a detach, the held-back bytes are dropped.
    """

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = 0  # how many bytes of `keys` matched so far

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        if not self.keys:
            return data, False
        out = bytearray()
        for byte in data:
            if byte == self.keys[self.held]:
                self.held += 1
                if self.held == len(self.keys):
                    self.held = 0
                    return bytes(out), True
                continue
            if self.held:
                out += self.keys[: self.held]
                self.held = 0
                if byte == self.keys[0]:
                    self.held = 1
                    continue
            out.append(byte)
        return bytes(out), False

    def flush(self) -> bytes:
        """What is held back, when the input ends."""
        held, self.held = self.keys[: self.held], 0
        return held


# --------------------------------------------------------------------------- attach


class Connection:
    """One attach connection to a monitor."""

    def __init__(self, sock: unixsock.Socket) -> None:
        self.sock = sock
        self._claimed = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def send_stdin(self, data: bytes) -> None:
        for i in range(0, len(data), _STDIN_CHUNK):
            self.sock.send(bytes([MSG_STDIN]) + data[i : i + _STDIN_CHUNK])

    def send_eof(self) -> None:
        self.sock.send(bytes([MSG_STDIN_EOF]))

    def resize(self, rows: int, cols: int) -> None:
        self.sock.send(bytes([MSG_RESIZE]) + struct.pack("!HH", rows, cols))

    def claim_cleanup(self) -> None:
        """Tell the monitor that we clean up after the exit (see the module's docstring):
        `run` then leaves the connection open when the output ends, for `cleanup_done`."""
        self.sock.send(bytes([MSG_CLEANUP_CLAIM]))
        self._claimed = True

    def cleanup_done(self) -> None:
        """The cleanup we claimed is done: the monitor need not run its exit command."""
        with suppress(OSError):
            self.sock.send(bytes([MSG_CLEANUP_DONE]))
        self.close()

    def recv(self) -> tuple[int, bytes] | None:
        """(stream, data) of the next output message; None when the monitor closed."""
        while True:
            try:
                msg = self.sock.recv(_RECV_MAX)
            except InterruptedError:
                continue
            except ConnectionResetError:
                return None
            if not msg:
                return None
            if len(msg) > 1:
                return msg[0], msg[1:]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(
        self,
        stdin_fd: int | None,
        stdout_fd: int | None,
        stderr_fd: int | None,
        detach_keys: str = DEFAULT_DETACH_KEYS,
        tty: bool = False,
    ) -> str:
        """Copy output to stdout/stderr and stdin to the container until the output ends
        (ENDED) or the detach keys are typed (DETACHED); closes the connection (not when the
        output ended after `claim_cleanup`: `cleanup_done` or `close` does)."""
        import select

        matcher = DetachMatcher(parse_detach_keys(detach_keys))
        reading_stdin = stdin_fd is not None and stdin_fd >= 0
        ended = False
        try:
            with _terminal(stdin_fd if tty else None, self):
                while True:
                    poller = select.poll()
                    poller.register(self.sock.fileno(), select.POLLIN)
                    if reading_stdin:
                        assert stdin_fd is not None
                        poller.register(stdin_fd, select.POLLIN)
                    try:
                        events = dict(poller.poll())
                    except InterruptedError:
                        continue
                    if events.get(self.sock.fileno()):
                        got = self.recv()
                        if got is None:
                            ended = True
                            return AttachResult.ENDED
                        stream, data = got
                        target = stderr_fd if stream == STREAM_STDERR else stdout_fd
                        if target is not None and target >= 0:
                            _write_all(target, data)
                    if reading_stdin and stdin_fd is not None and events.get(stdin_fd):
                        try:
                            data = os.read(stdin_fd, _STDIN_CHUNK)
                        except InterruptedError:
                            continue
                        if not data:
                            rest = matcher.flush()
                            with suppress(OSError):
                                if rest:
                                    self.send_stdin(rest)
                                self.send_eof()
                            reading_stdin = False
                            continue
                        forward, detached = matcher.feed(data)
                        with suppress(OSError):  # the monitor may be ending
                            if forward:
                                self.send_stdin(forward)
                        if detached:
                            return AttachResult.DETACHED
        finally:
            if not (ended and self._claimed):
                self.close()


def connect(userdata: str) -> Connection:
    """Connect to the monitor's attach socket in `userdata` (any path length)."""
    import _socket

    try:
        directory = os.open(userdata, os.O_PATH | os.O_CLOEXEC)
    except OSError as e:
        raise from_oserror(f"container run directory {userdata}", e) from e
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    try:
        sock.connect(f"/proc/self/fd/{directory}/{ATTACH_SOCKET}")
    except OSError as e:
        sock.close()
        if e.errno in (errno.ENOENT, errno.ECONNREFUSED):
            raise InvalidState(
                f"cannot attach: no monitor serves {os.path.join(userdata, ATTACH_SOCKET)} "
                "(the container is not running, or its monitor is gone)"
            ) from e
        raise from_oserror(f"attach socket {os.path.join(userdata, ATTACH_SOCKET)}", e) from e
    finally:
        os.close(directory)
    return Connection(sock)


def attach(
    userdata: str,
    stdin_fd: int | None,
    stdout_fd: int | None,
    stderr_fd: int | None,
    detach_keys: str = DEFAULT_DETACH_KEYS,
    tty: bool = False,
) -> str:
    """Attach to the container's monitor until its output ends or the user detaches."""
    parse_detach_keys(detach_keys)  # a bad value fails before connecting
    return connect(userdata).run(stdin_fd, stdout_fd, stderr_fd, detach_keys, tty)


def stream(conn: Connection, *, stdin: bool, tty: bool, detach_keys: str | None) -> bool:
    """`conn.run` on this process's stdio (stdin only when `stdin`); True when the user
    detached, False when the output ended.  detach_keys None: the default (ctrl-p,ctrl-q)."""
    keys = DEFAULT_DETACH_KEYS if detach_keys is None else detach_keys
    result = conn.run(0 if stdin else None, 1, 2, keys, tty)
    return result == AttachResult.DETACHED


@contextmanager
def _terminal(stdin_fd: int | None, conn: Connection) -> Iterator[None]:
    """With a terminal on our stdin: raw mode, its size to the container, and on SIGWINCH."""
    if stdin_fd is None or stdin_fd < 0 or not os.isatty(stdin_fd):
        yield
        return
    import termios
    import tty

    from pypod.stdlite import signal

    def send_size() -> None:
        with suppress(OSError):
            size = os.get_terminal_size(stdin_fd)  # (columns, lines)
            conn.resize(size.lines, size.columns)

    saved = termios.tcgetattr(stdin_fd)
    # TCSANOW, not setraw's default TCSAFLUSH: what the user typed before we got here (a line
    # typed right after `pypod attach`) is kept and sent, as podman (Go's term.MakeRaw) does
    tty.setraw(stdin_fd, termios.TCSANOW)
    send_size()
    old = None
    try:
        old = signal.signal(signal.SIGWINCH, lambda _s, _f: send_size())
    except ValueError:  # not the main thread: no handler, the size is sent once
        pass
    try:
        yield
    finally:
        if old is not None:
            signal.signal(signal.SIGWINCH, old)
        termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except InterruptedError:
            continue


# --------------------------------------------------------------------------- ctl fifo


def _ctl(userdata: str, line: str) -> None:
    path = os.path.join(userdata, CTL_FIFO)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENXIO):
            raise InvalidState(
                f"no monitor reads {path} (the container is not running, or its monitor is " "gone)"
            ) from e
        raise from_oserror(f"monitor control fifo {path}", e) from e
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def resize(userdata: str, rows: int, cols: int) -> None:
    """Set the container's terminal size through the monitor's ctl fifo."""
    _ctl(userdata, f"{CTL_RESIZE} {int(rows)} {int(cols)}\n")


def reopen_log(userdata: str) -> None:
    """Have the monitor reopen its log file (after it was moved away)."""
    _ctl(userdata, f"{CTL_REOPEN_LOG}\n")


# --------------------------------------------------------------------------- exit file, pid


@record
class ExitStatus:
    exit_code: int
    finished: float
    oom_killed: bool


def read_exit_file(path: str) -> ExitStatus | None:
    """What the monitor wrote when the process exited; None when it has not (yet)."""
    try:
        with open(path) as f:
            data = jsoncodec.loads(f.read())
    except FileNotFoundError:
        return None
    except OSError as e:
        raise from_oserror(f"exit file {path}", e) from e
    except ValueError as e:
        raise InvalidArgument(f"exit file {path}: invalid JSON: {e}") from e
    return ExitStatus(
        exit_code=int(data["exit_code"]),
        finished=float(data["finished"]),
        oom_killed=bool(data.get("oom_killed", False)),
    )


def monitor_pid(userdata: str) -> int | None:
    """The pid of the container's monitor if it runs (monitor.pid names a live process)."""
    try:
        with open(os.path.join(userdata, PID_FILE)) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    if raw[raw.rindex(b")") + 2 :][:1] in (b"Z", b"X"):
        return None
    return pid
