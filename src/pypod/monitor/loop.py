"""The monitor's long-running loop: one per container (or exec session), standard library only.

The monitor set the container up from a fork of the CLI (pypod.monitor.bootstrap), then
exec()ed a fresh interpreter running this file (`python -I -S loop.py ARGS`, ARGS: the
arguments as `marshal` data in hex, written by the same interpreter): it imports no pypod
module and only C modules of the standard library (no `json`, `signal`, `typing`: each pulls
in `re` or `enum`), so each monitor costs little more than a bare interpreter.  The
container's init (or the exec process) stays our child across that exec.

It
- reads the container's stdout/stderr pipes (or the pty master) and writes the log in the
  k8s-file format conmon writes (`<RFC3339Nano local time> stdout F line`; `P` for a partial
  line), replacing the file by an empty one when the next line would pass the size limit;
- serves attach on `userdata/attach` (see pypod.monitor.protocol for the wire format):
  output to every attacher, attachers' input to the container's stdin, resize, stdin EOF;
  and reads resize lines from the `userdata/ctl` fifo;
- with `sdnotify_socket` (`--sdnotify=container`), relays what the container sends to its
  notification socket (bound before the container was created: pypod.monitor.notify) to the
  host's, as conmon does: `READY=1` if a line of the message says so, else `WATCHDOG=1`,
  else nothing; sent from this process (the unit's MAINPID) as exactly that;
- reaps every child; when the container's process exits: drains the output, writes the exit
  file atomically, closes the attach connections, runs the exit command detached, removes
  monitor.pid and exits.

SIGTERM, SIGINT and SIGHUP are ignored: the container's life decides when the monitor ends.
The numbers below must match pypod.monitor.protocol (a unit test checks them).
"""

from __future__ import annotations

import _socket
import fcntl
import marshal
import os
import select
import struct
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # the type checker reads the public modules' stubs
    import signal
    from collections import deque
    from typing import Any
else:  # `signal` imports enum, `collections` more, `typing` ~2 MB: the C modules suffice
    import _signal as signal
    from _collections import deque

# --- wire format (see pypod/monitor/protocol.py) ------------------------------------------------
STREAM_STDOUT = 2
STREAM_STDERR = 3
MSG_STDIN = 0
MSG_STDIN_EOF = 1
MSG_RESIZE = 2
MSG_CLEANUP_CLAIM = 3
MSG_CLEANUP_DONE = 4
CTL_RESIZE = 1
CTL_REOPEN_LOG = 2
#: bytes read from the container at a time (conmon's STDIO_BUF_SIZE: the same partial lines)
READ_SIZE = 8192
#: the largest message a client may send
CLIENT_MSG_MAX = 65536
#: output queued for one attacher that does not read; beyond it the attacher is dropped
CLIENT_QUEUE_MAX = 8 << 20
#: how long the exit path waits for slow attachers to take the last output
FLUSH_TIMEOUT = 5.0
#: how long the exit path waits for a terminal's last output
DRAIN_TTY_WAIT = 0.5
#: how long the exit path waits for an attacher that claimed the cleanup to report it done;
#: then (or when it goes away without reporting) the exit command runs after all
CLAIM_TIMEOUT = 60.0
#: the largest notification read from the container (a unix datagram's limit)
NOTIFY_MSG_MAX = 65536
#: notifications read at one wake-up; and kept for a host socket whose queue is full
NOTIFY_BATCH = 64
NOTIFY_PENDING_MAX = 64
#: the container's notification socket in the bundle (pypod.monitor.config's NOTIFY_DIR and
#: NOTIFY_SOCKET_NAME; a unit test checks they match)
NOTIFY_DIR = "notify"
NOTIFY_SOCKET_NAME = "notify.sock"

_TIOCSWINSZ = 0x5414
IN = select.POLLIN
#: readable, or the other side hung up / failed (a read then says which)
IN_ANY = select.POLLIN | select.POLLHUP | select.POLLERR


# --- the log (k8s-file) -------------------------------------------------------------------------


def timestamp(stream: str) -> bytes:
    """`2026-11-25T18:53:25.123456789+00:00 stdout ` in local time, as conmon writes it."""
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    tm = time.localtime(secs)
    off = tm.tm_gmtoff or 0
    sign = "+" if off >= 0 else "-"
    off = abs(off)
    return (
        f"{tm.tm_year}-{tm.tm_mon:02d}-{tm.tm_mday:02d}T{tm.tm_hour:02d}:{tm.tm_min:02d}:"
        f"{tm.tm_sec:02d}.{frac:09d}{sign}{off // 3600:02d}:{off % 3600 // 60:02d} {stream} "
    ).encode()


class K8sLog:
    """The container log in k8s-file format, with conmon's size limit behaviour."""

    def __init__(self, path: str, fd: int, max_size: int) -> None:
        self.path = path
        self.fd = fd
        self.max_size = max_size
        try:
            self.size = os.fstat(fd).st_size
        except OSError:
            self.size = 0

    def write(self, stream: str, data: bytes) -> None:
        if self.fd < 0 or not data:
            return
        ts = timestamp(stream)  # one timestamp for every line of one read, as conmon
        parts: list[bytes] = []
        pos, end = 0, len(data)
        while pos < end:
            nl = data.find(b"\n", pos)
            partial = nl < 0
            stop = end if partial else nl + 1
            line = data[pos:stop]
            pos = stop
            size = len(ts) + 2 + len(line) + (1 if partial else 0)
            if self.max_size > 0 and self.size + size > self.max_size:
                self._flush(parts)
                parts = []
                self.reopen(truncate=True)
            parts += (ts, b"P " if partial else b"F ", line)
            if partial:
                parts.append(b"\n")
            self.size += size
        self._flush(parts)

    def _flush(self, parts: list[bytes]) -> None:
        if not parts or self.fd < 0:
            return
        data = b"".join(parts)
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except InterruptedError:
                continue
            except OSError:  # a full disk must not stop the container: drop, as conmon does
                return

    def reopen(self, *, truncate: bool) -> None:
        """Start an empty file (size limit), or reopen the path (after log rotation)."""
        if self.fd < 0:
            return
        try:
            os.fsync(self.fd)
        except OSError:
            pass
        if truncate:
            tmp = self.path + ".tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC | os.O_CREAT | os.O_CLOEXEC, 0o600)
            os.rename(tmp, self.path)
            self.size = 0
        else:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self.size = os.fstat(fd).st_size
        os.close(self.fd)
        self.fd = fd

    def close(self) -> None:
        if self.fd >= 0:
            try:
                os.fsync(self.fd)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = -1


# --- OOM ------------------------------------------------------------------------------------------


def oom_counter_file(pid: int) -> tuple[str, str] | None:
    """(file, key) holding the OOM-kill count of `pid`'s memory cgroup, v1 or v2."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            entries = [line.rstrip("\n").split(":", 2) for line in f if line.count(":") >= 2]
        with open("/proc/self/mountinfo") as f:
            mounts = f.read().splitlines()
    except OSError:
        return None
    v1 = next((e[2] for e in entries if "memory" in e[1].split(",")), None)
    v2 = next((e[2] for e in entries if e[0] == "0" and e[1] == ""), None)
    for line in mounts:
        left, _, right = line.partition(" - ")
        fstype_fields = right.split()
        if len(fstype_fields) < 3:
            continue
        fstype, opts = fstype_fields[0], fstype_fields[2].split(",")
        fields = left.split()
        root, point = fields[3], fields[4].replace("\\040", " ")
        if fstype == "cgroup" and "memory" in opts and v1 is not None:
            path, name, key = v1, "memory.oom_control", "oom_kill"
        elif fstype == "cgroup2" and v1 is None and v2 is not None:
            path, name, key = v2, "memory.events", "oom_kill"
        else:
            continue
        if root != "/" and path.startswith(root):
            path = path[len(root) :]
        full = os.path.join(point, path.lstrip("/"), name)
        if os.path.exists(full):
            return full, key
    return None


# --- systemd notifications (--sdnotify=container) ------------------------------------------------


def notify_relayed(message: bytes) -> bytes:
    """What conmon sends on to the host of a notification the container sent: `READY=1` when
    a line of it is that, else `WATCHDOG=1` when one is that, else nothing (b"")."""
    lines = message.split(b"\n")
    for wanted in (b"READY=1", b"WATCHDOG=1"):
        if wanted in lines:
            return wanted
    return b""


def notify_address(path: str) -> str:
    """A `$NOTIFY_SOCKET` value as a socket address: "@name" is the abstract name."""
    return "\0" + path[1:] if path.startswith("@") else path


def read_oom_kills(counter: tuple[str, str] | None) -> int:
    if counter is None:
        return 0
    try:
        with open(counter[0]) as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name == counter[1]:
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


# --- attachers ------------------------------------------------------------------------------------


class Client:
    __slots__ = ("claimed", "done", "fd", "queue", "queued", "reading")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.queue: deque[bytes] = deque()
        self.queued = 0
        self.reading = True
        #: it does the cleanup once the process exits (MSG_CLEANUP_CLAIM), and did (DONE)
        self.claimed = False
        self.done = False


# --- the monitor ----------------------------------------------------------------------------------


class Monitor:
    def __init__(self, args: dict[str, Any]) -> None:
        self.cfg: dict[str, Any] = args["config"]
        self.pid: int = args["pid"]
        fds = args["fds"]
        self.console: int = fds.get("console", -1)
        self.stdin: int = fds.get("stdin", -1) if self.cfg["stdin"] else -1
        self.outputs: dict[int, str] = {}
        if self.console >= 0:
            self.outputs[self.console] = "stdout"
            if self.cfg["stdin"]:
                self.stdin = self.console
        else:
            for name in ("stdout", "stderr"):
                if fds.get(name, -1) >= 0:
                    self.outputs[fds[name]] = name
        for fd in self.outputs:
            os.set_blocking(fd, False)
        if self.stdin >= 0:
            os.set_blocking(self.stdin, False)
        self.listener = _socket.socket(fileno=fds["attach"])
        self.listener.setblocking(False)
        self.ctl: int = fds.get("ctl", -1)
        self.ctl_buf = b""
        log_fd = fds.get("log", -1)
        self.log = K8sLog(self.cfg["log_path"], log_fd, int(self.cfg["log_max_size"] or 0))
        oom = args.get("oom")
        self.oom = (oom[0], oom[1]) if oom else None
        self.oom_before: int = args.get("oom_before", 0)
        self.clients: dict[int, Client] = {}
        self.stdin_pending = bytearray()
        self.stdin_eof_after = False
        self.status: int | None = None
        self.periodic: list[str] = list(self.cfg.get("periodic_command") or ())
        self.interval = float(self.cfg.get("periodic_interval") or 0.0)
        self.next_periodic = time.monotonic() + self.interval
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        # the container's notification socket, what it relays to, and the connection there
        notify_fd = fds.get("notify", -1)
        self.notify_in = _socket.socket(fileno=notify_fd) if notify_fd >= 0 else None
        if self.notify_in is not None:
            self.notify_in.setblocking(False)
        self.notify_target = notify_address(str(self.cfg.get("sdnotify_socket") or ""))
        self.notify_out: _socket.socket | None = None
        self.notify_pending: deque[bytes] = deque()

    # -- main --------------------------------------------------------------------------------
    def run(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, _no_op)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        self.accept()  # attachers that connected before the start get everything
        self.reap()  # the process may have exited before this interpreter started
        while self.status is None:
            self.step()
        self.finish()

    def step(self) -> None:
        poller = select.poll()
        watch: dict[int, int] = {self.wake_r: IN, self.listener.fileno(): IN}
        for fd in self.outputs:
            watch[fd] = IN
        if self.ctl >= 0:
            watch[self.ctl] = IN
        if not self.stdin_pending:
            for c in self.clients.values():
                if c.reading:
                    watch[c.fd] = IN
        for c in self.clients.values():
            if c.queue:
                watch[c.fd] = watch.get(c.fd, 0) | select.POLLOUT
        if self.notify_in is not None:
            watch[self.notify_in.fileno()] = IN
        if self.notify_pending and self.notify_out is not None:
            watch[self.notify_out.fileno()] = select.POLLOUT
        if self.stdin_pending and self.stdin >= 0:
            watch[self.stdin] = watch.get(self.stdin, 0) | select.POLLOUT
        for fd, mask in watch.items():
            poller.register(fd, mask)
        events = dict(poller.poll(self.periodic_timeout()))
        if self.periodic and self.interval > 0 and time.monotonic() >= self.next_periodic:
            self.next_periodic = time.monotonic() + self.interval
            run_detached(self.periodic)
        if events.get(self.listener.fileno(), 0) & IN_ANY:
            self.accept()
        for fd in list(self.outputs):
            if events.get(fd, 0) & IN_ANY:
                self.read_output(fd)
        for fd, ev in events.items():
            if not ev & (select.POLLOUT | select.POLLERR):
                continue
            if fd == self.stdin and self.stdin_pending:
                self.flush_stdin()
            elif fd in self.clients and self.clients[fd].queue:
                self.flush_client(self.clients[fd])
        for fd, ev in events.items():
            if ev & IN_ANY and fd in self.clients and not self.stdin_pending:
                self.read_client(self.clients[fd])
        if self.ctl >= 0 and events.get(self.ctl, 0) & IN_ANY:
            self.read_ctl()
        if self.notify_in is not None and events.get(self.notify_in.fileno(), 0) & IN_ANY:
            self.read_notify()
        elif self.notify_out is not None and events.get(self.notify_out.fileno(), 0):
            self.flush_notify()
        if events.get(self.wake_r, 0) & IN_ANY:
            try:
                while os.read(self.wake_r, 512):
                    pass
            except BlockingIOError:
                pass
            self.reap()

    def periodic_timeout(self) -> int | None:
        """poll()'s timeout in ms: until the next periodic command (None: no such command)."""
        if not self.periodic or self.interval <= 0:
            return None
        return max(0, int((self.next_periodic - time.monotonic()) * 1000) + 1)

    # -- children ----------------------------------------------------------------------------
    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                if self.status is None and not _alive(self.pid):
                    self.status = -1  # not our child (should not happen): exit code unknown
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            if pid == self.pid:
                self.status = status

    # -- output ------------------------------------------------------------------------------
    def read_output(self, fd: int) -> bool:
        """Read once from a container output; False when nothing more can come from it."""
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return False
        except InterruptedError:
            return True
        except OSError:  # EIO: the pty's other side is closed
            data = b""
        if not data:
            self.close_output(fd)
            return False
        stream = self.outputs[fd]
        self.log.write(stream, data)
        packet = bytes([STREAM_STDOUT if stream == "stdout" else STREAM_STDERR]) + data
        for client in list(self.clients.values()):
            self.send(client, packet)
        return True

    def close_output(self, fd: int) -> None:
        del self.outputs[fd]
        if fd == self.console:
            return  # also the stdin of a terminal: closed at the end
        os.close(fd)

    # -- attach ------------------------------------------------------------------------------
    def accept(self) -> None:
        while True:
            try:
                fd, _ = self.listener._accept()  # type: ignore[attr-defined]
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            os.set_blocking(fd, False)
            self.clients[fd] = Client(fd)

    def send(self, client: Client, packet: bytes) -> None:
        client.queue.append(packet)
        client.queued += len(packet)
        if client.queued > CLIENT_QUEUE_MAX:
            self.drop(client)  # it does not read: never let it hold the container back
            return
        self.flush_client(client)

    def flush_client(self, client: Client) -> None:
        while client.queue:
            packet = client.queue[0]
            try:
                os.write(client.fd, packet)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.drop(client)
                return
            client.queue.popleft()
            client.queued -= len(packet)

    def drop(self, client: Client) -> None:
        self.clients.pop(client.fd, None)
        try:
            os.close(client.fd)
        except OSError:
            pass

    def read_client(self, client: Client) -> None:
        try:
            msg = os.read(client.fd, CLIENT_MSG_MAX)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.drop(client)
            return
        if not msg:
            # the attacher closed (detached) or shut its sending side: stdin stays open
            client.reading = False
            if not client.queue:
                self.probe(client)
            return
        kind, payload = msg[0], msg[1:]
        if kind == MSG_STDIN:
            if self.stdin >= 0 and payload:
                self.stdin_pending += payload
                self.flush_stdin()
        elif kind == MSG_STDIN_EOF:
            if self.stdin_pending:
                self.stdin_eof_after = True
            else:
                self.close_stdin()
        elif kind == MSG_RESIZE and len(payload) >= 4:
            rows, cols = struct.unpack("!HH", payload[:4])
            self.resize(rows, cols)
        elif kind == MSG_CLEANUP_CLAIM:
            client.claimed = True
        elif kind == MSG_CLEANUP_DONE:
            client.done = True

    def probe(self, client: Client) -> None:
        """Drop an attacher that is gone entirely (not one that only ended its input)."""
        poller = select.poll()
        poller.register(client.fd, select.POLLOUT)
        for _fd, ev in poller.poll(0):
            if ev & (select.POLLHUP | select.POLLERR):
                self.drop(client)

    # -- stdin -------------------------------------------------------------------------------
    def flush_stdin(self) -> None:
        while self.stdin_pending and self.stdin >= 0:
            try:
                n = os.write(self.stdin, self.stdin_pending)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # the container closed its stdin: input has nowhere to go
                self.stdin_pending.clear()
                self.close_stdin()
                return
            del self.stdin_pending[:n]
        if self.stdin_eof_after and not self.stdin_pending:
            self.stdin_eof_after = False
            self.close_stdin()

    def close_stdin(self) -> None:
        """An attacher's input ended: so does the container's (not for a terminal)."""
        if self.stdin < 0 or self.stdin == self.console:
            return
        os.close(self.stdin)
        self.stdin = -1
        self.stdin_pending.clear()

    # -- terminal size -------------------------------------------------------------------------
    def resize(self, rows: int, cols: int) -> None:
        if self.console >= 0:
            try:
                fcntl.ioctl(self.console, _TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            except OSError:
                pass

    def read_ctl(self) -> None:
        try:
            data = os.read(self.ctl, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            return  # opened read-write by us: no EOF while we live
        self.ctl_buf += data
        while b"\n" in self.ctl_buf:
            line, _, self.ctl_buf = self.ctl_buf.partition(b"\n")
            words = line.split()
            try:
                kind = int(words[0]) if words else 0
                if kind == CTL_RESIZE and len(words) >= 3:
                    self.resize(int(words[1]), int(words[2]))
                elif kind == CTL_REOPEN_LOG:
                    self.log.reopen(truncate=False)
            except (ValueError, OSError):
                continue
        if len(self.ctl_buf) > 4096:
            self.ctl_buf = b""

    # -- systemd notifications -------------------------------------------------------------
    def read_notify(self) -> None:
        """Take what the container sent to its notification socket; pass on what conmon does."""
        if self.notify_in is None:
            return
        for _ in range(NOTIFY_BATCH):
            try:
                message = self.notify_in.recv(NOTIFY_MSG_MAX)
            except InterruptedError:
                continue
            except OSError:  # BlockingIOError: nothing more now
                break
            relayed = notify_relayed(message)
            if relayed and self.notify_target:
                if len(self.notify_pending) >= NOTIFY_PENDING_MAX:
                    self.notify_pending.popleft()
                self.notify_pending.append(relayed)
        self.flush_notify()

    def flush_notify(self) -> None:
        """Send the pending notifications to the host's socket; a full queue there keeps them
        for POLLOUT, a socket nobody listens on (or none) drops them, as conmon's warning."""
        while self.notify_pending:
            for attempt in (1, 2):  # a listener that went away and came back: reconnect once
                if self.notify_out is None:
                    self.notify_out = self.connect_notify()
                    if self.notify_out is None:
                        self.notify_pending.clear()
                        return
                try:
                    self.notify_out.send(self.notify_pending[0])
                    break
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    self.notify_out.close()
                    self.notify_out = None
                    if attempt == 2:
                        break
            self.notify_pending.popleft()

    def connect_notify(self) -> _socket.socket | None:
        """A datagram socket connected to the host's socket (connected: poll() then says when
        the host's queue has room), or None when it cannot be reached."""
        sock = _socket.socket(
            _socket.AF_UNIX, _socket.SOCK_DGRAM | _socket.SOCK_NONBLOCK | _socket.SOCK_CLOEXEC
        )
        try:
            sock.connect(self.notify_target)
        except OSError:
            sock.close()
            return None
        return sock

    def close_notify(self) -> None:
        """The container is gone: relay what it sent last, close, remove the socket file."""
        if self.notify_in is None:
            return
        self.read_notify()
        self.notify_in.close()
        self.notify_in = None
        if self.notify_out is not None:
            self.notify_out.close()
            self.notify_out = None
        try:
            os.unlink(os.path.join(self.cfg["bundle"], NOTIFY_DIR, NOTIFY_SOCKET_NAME))
        except OSError:
            pass

    # -- the end -------------------------------------------------------------------------------
    def finish(self) -> None:
        self.drain()
        self.close_notify()
        status = self.status if self.status is not None else -1
        oom = read_oom_kills(self.oom) > self.oom_before
        try:
            write_exit_file(self.cfg["exit_file"], exit_code(status), oom)
        except OSError:
            pass  # the directory went away: the engine finds the monitor gone, no exit file
        self.flush_clients_before_close()
        self.read_clients_pending()  # a claim sent before the process ended, unread so far
        claimers = []
        for client in list(self.clients.values()):
            if client.claimed and client.reading:
                claimers.append(client)
                try:  # its output ends (EOF) while it can still tell us it is done
                    _socket.socket(fileno=os.dup(client.fd)).shutdown(_socket.SHUT_WR)
                    continue
                except OSError:
                    claimers.pop()
            self.drop(client)
        userdata = self.cfg["userdata"]
        for name in ("attach", "ctl"):
            try:
                os.unlink(os.path.join(userdata, name))
            except OSError:
                pass
        self.log.close()  # its fsync, off the path of whoever waits for the exit
        cleaned = self.wait_for_claimers(claimers)
        if self.cfg.get("exit_command") and not cleaned:
            run_detached(list(self.cfg["exit_command"]), self.exit_command_env())
        try:
            os.unlink(os.path.join(userdata, "monitor.pid"))
        except OSError:
            pass

    def exit_command_env(self) -> dict[str, str] | None:
        """The exit command's environment: ours, with the host's notification socket back in
        it (pypod.monitor.notify took it out of ours for the runtime's sake) so that a restart
        by the restart policy gives the new container a socket again and announces the new
        monitor, as podman's cleanup does with the socket it keeps in the container's config.
        None: ours as it is."""
        target = str(self.cfg.get("sdnotify_socket") or "")
        if not target:
            return None
        return {**os.environ, "NOTIFY_SOCKET": target}

    def read_clients_pending(self) -> None:
        """Take in what attachers sent and we have not read yet (never blocks)."""
        for _ in range(64):
            readable = [c for c in self.clients.values() if c.reading]
            if not readable:
                return
            poller = select.poll()
            for client in readable:
                poller.register(client.fd, IN)
            events = poller.poll(0)
            if not events:
                return
            for fd, _ev in events:
                if fd in self.clients:
                    self.read_client(self.clients[fd])

    def wait_for_claimers(self, claimers: list[Client]) -> bool:
        """Whether an attacher that claimed the cleanup (`run --rm` in the foreground, which
        removes the container itself) reported it done before it closed.  One that closes
        without DONE (killed, or its cleanup failed) or takes too long leaves the cleanup to
        the exit command, as when nobody claimed it."""
        deadline = time.monotonic() + CLAIM_TIMEOUT
        cleaned = False
        while claimers and not cleaned:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            poller = select.poll()
            for client in claimers:
                poller.register(client.fd, IN_ANY)
            try:
                events = poller.poll(int(left * 1000) + 1)
            except InterruptedError:
                continue
            for fd, _ev in events:
                client = next(c for c in claimers if c.fd == fd)
                try:
                    msg = os.read(fd, CLIENT_MSG_MAX)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    msg = b""
                if msg[:1] == bytes([MSG_CLEANUP_DONE]):
                    cleaned = True
                elif not msg:
                    claimers.remove(client)
                    self.drop(client)
        for client in claimers:
            self.drop(client)
        return cleaned

    def drain(self) -> None:
        """What the process wrote before it exited.  A pipe has it all already; a terminal
        passes it on asynchronously, so wait a little for the terminal's end (EIO once its
        last holder closed it).  Never wait long: a process left behind may hold either."""
        deadline = time.monotonic() + DRAIN_TTY_WAIT
        for fd in list(self.outputs):
            for _ in range(4096):  # at most 32 MiB
                if fd not in self.outputs:
                    break
                if self.read_output(fd):
                    continue
                left = deadline - time.monotonic()
                if fd != self.console or fd not in self.outputs or left <= 0:
                    break
                poller = select.poll()
                poller.register(fd, IN)
                poller.poll(int(left * 1000) + 1)

    def flush_clients_before_close(self) -> None:
        deadline = time.monotonic() + FLUSH_TIMEOUT
        while True:
            waiting = [c.fd for c in self.clients.values() if c.queue]
            left = deadline - time.monotonic()
            if not waiting or left <= 0:
                return
            poller = select.poll()
            for fd in waiting:
                poller.register(fd, select.POLLOUT)
            for fd, _ev in poller.poll(int(left * 1000) + 1):
                if fd in self.clients:
                    self.flush_client(self.clients[fd])


def _no_op(_sig: int, _frame: object) -> None:
    return None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return False
    return raw[raw.rindex(b")") + 2 :][:1] not in (b"Z", b"X")


def exit_code(status: int) -> int:
    """podman's: the exit status, or 128+N for a process killed by signal N."""
    if status < 0:
        return -1
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return -1


def exit_file_json(code: int, finished: float, oom_killed: bool) -> str:
    """{"exit_code": N, "finished": <unix time>, "oom_killed": bool} (no `json` module here)."""
    oom = "true" if oom_killed else "false"
    return f'{{"exit_code": {int(code)}, "finished": {float(finished)!r}, "oom_killed": {oom}}}'


def write_exit_file(path: str, code: int, oom_killed: bool) -> None:
    """Temporary file next to it, rename: readers see no file or the whole of it.

    Not fsynced (as conmon's): the file lives in the runroot, a tmpfs whose content a power
    failure loses anyway along with the process it describes; a crash of this process at any
    point leaves no file (the engine then finds the monitor gone) or the complete one.
    """
    data = exit_file_json(code, time.time(), oom_killed)
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".tmp-{os.getpid()}-{os.path.basename(path)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def run_detached(argv: list[str], env: dict[str, str] | None = None) -> None:
    """Start `argv` in its own session, stdio /dev/null, not our child; do not wait for it
    (`env`: its environment instead of ours)."""
    try:
        pid = os.fork()
    except OSError:
        return
    if pid == 0:
        code = 0
        try:
            os.setsid()
            if os.fork() == 0:
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
                    signal.signal(sig, signal.SIG_DFL)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                null = os.open("/dev/null", os.O_RDWR)
                for target in (0, 1, 2):
                    os.dup2(null, target)
                os.closerange(3, 65536)
                code = 127
                if env is None:
                    os.execvp(argv[0], argv)
                os.execvpe(argv[0], argv, env)
        except BaseException:
            code = code or 1
        finally:
            os._exit(code)
    while True:
        try:
            os.waitpid(pid, 0)
            return
        except InterruptedError:
            continue
        except ChildProcessError:
            return


def encode_args(args: dict[str, Any]) -> str:
    """The loop's arguments for its command line (the same interpreter reads them)."""
    return marshal.dumps(args).hex()


def main(raw: str) -> None:
    Monitor(marshal.loads(bytes.fromhex(raw))).run()


if __name__ == "__main__":
    main(sys.argv[1])
    os._exit(0)
