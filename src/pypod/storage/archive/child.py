"""Applying a layer in a child process, so that the layers of one pull are applied side by side.

Applying a layer is mostly Python (one tar entry after another) between system calls, so the
threads of one process take turns at the GIL: four layers applied by four threads took as long
as the same four applied one after another (measured on a 2-core VM).  A child forked per layer
runs beside the others on every CPU; the thread that started it only passes the blob's bytes
on through a socket, and receiving, hashing and sending all release the GIL.

The child runs exactly the code a layer applied in process runs (with the same arguments:
it is a fork), reading the blob from the socket instead of the stream, and sends back the
result, the tar's recorded layout, or the error it met.  So:

- every safety property of the in-process apply holds: it is the same function;
- the caller's stream is read only here, by the calling thread: its errors (a broken
  connection, a digest that does not match at the end of the blob) are raised as they are,
  after the child is stopped;
- the child starts with nothing of the parent's but its socket (and stdio): every other
  inherited descriptor is closed, so that it holds none of the store's flock locks (another
  thread's store lock would stay held until the child ends) and no other layer's socket;
- the end of the blob is `shutdown(SHUT_WR)`, and the child's failure `shutdown(SHUT_RD)`
  (the parent's next send fails with EPIPE), so neither side waits for a descriptor some other
  process might hold; a child killed before it answers is noticed through its pidfd;
- the child exits with `os._exit`: no atexit handler, no flushing of inherited buffers, no
  cleanup of the parent's objects; Python's garbage collector is off there, so that no object
  inherited from the parent is finalised (it might close a descriptor number now in use);
- the child imports nothing: a module that another thread of the parent was importing at the
  fork stays locked in the child for ever (Python resets its global import lock after a fork,
  not the per-module ones).  The caller's `preload` imports, right before the fork and in the
  forking thread, every module the work imports on first use (waiting, if another thread is
  importing one, until it is done); a test checks that a child imports nothing.  Likewise
  sha256 is used once before the fork (OpenSSL fetches an algorithm under a lock, then caches
  it), logging is switched off in the child (another thread may hold stderr's lock), and the
  rest of the work is system calls and code of modules already imported.
"""

from __future__ import annotations

import errno
import gc
import marshal
import os
import select
import signal
import socket
import struct
import sys
from collections.abc import Callable
from typing import Any, BinaryIO, cast

from pypod.errors import PypodError, StorageError
from pypod.linux import syscalls

#: how much of the blob is passed on at a time
_CHUNK = 256 * 1024
_FRAME = struct.Struct("<Q")
#: the highest descriptor closed in the child (close_range makes this cheap)
_MAX_FD = 1 << 20

#: what the child runs: apply the tar read from the stream given; its picklable result
Work = Callable[[BinaryIO], Any]


class _FdReader:
    """The child's end of the socket as the stream `apply_layer` reads."""

    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def read(self, n: int = -1) -> bytes:
        return os.read(self._fd, n if n > 0 else _CHUNK)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _child(fd: int, work: Work, parent: int) -> None:
    """In the forked child: run `work` on the socket `fd`, send back its result; never returns."""
    code = 0
    try:
        gc.disable()
        # dies with the thread that started it: a killed pypod leaves no child writing into
        # a layer that the next start removes (its liveness lock is free as soon as pypod dies)
        syscalls.prctl(syscalls.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # died before the prctl
            os._exit(1)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_DFL)
        os.closerange(3, fd)
        os.closerange(fd + 1, _MAX_FD)
        if "logging" in sys.modules:  # another thread may have held stderr's lock at the fork
            sys.modules["logging"].disable()
        try:
            reply: tuple[Any, ...] = ("ok", work(cast(BinaryIO, _FdReader(fd))))
        except BaseException as e:  # sent to the parent, raised there
            errno_ = e.errno if isinstance(e, OSError | PypodError) else None
            kind = "storage" if isinstance(e, StorageError) else type(e).__name__
            reply = ("error", kind, str(e), errno_)
        payload = marshal.dumps(reply)
        _write_all(fd, _FRAME.pack(len(payload)) + payload)
        if reply[0] == "error":
            socket.socket(fileno=fd).shutdown(socket.SHUT_RDWR)  # the parent stops sending
    except BaseException:
        code = 1
    finally:
        os._exit(code)


class NoChild(Exception):
    """No child process could be started (fork failed: EAGAIN, ENOMEM); nothing was read."""


class _Child:
    """The parent's side: the child's pid, pidfd and socket."""

    def __init__(self, work: Work) -> None:
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        except OSError as e:
            raise NoChild(f"socketpair: {e.strerror}") from e
        parent = os.getpid()
        try:
            pid = os.fork()
        except OSError as e:
            ours.close()
            theirs.close()
            raise NoChild(f"fork: {e.strerror}") from e
        if pid == 0:
            ours.detach()  # not closed through the object: closerange closes it
            _child(theirs.detach(), work, parent)
        theirs.close()
        self.pid = pid
        self.sock = ours
        self.sock.setblocking(False)
        self.pidfd = -1
        self.status: int | None = None
        try:
            self.pidfd = os.pidfd_open(pid)
        except OSError:
            pass  # an old kernel: the child's end is watched by timeouts instead

    def _wait_for(self, event: int) -> bool:
        """Wait until the socket is ready for `event`; False when the child is gone first."""
        poller = select.poll()
        poller.register(self.sock, event)
        if self.pidfd >= 0:
            poller.register(self.pidfd, select.POLLIN)
        while True:
            ready = dict(poller.poll(None if self.pidfd >= 0 else 1000))
            if ready.get(self.sock.fileno(), 0):
                return True
            if ready.get(self.pidfd, 0) or (self.pidfd < 0 and self._exited()):
                return False

    def _exited(self) -> bool:
        """Whether the child has ended (reaped here; without a pidfd only)."""
        if self.status is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped by someone else
                return True
            if pid == 0:
                return False
            self.status = status
        return True

    def send(self, data: bytes) -> bool:
        """Pass `data` on; False when the child stopped reading (it failed, or died)."""
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view) :]
            except BlockingIOError:
                if not self._wait_for(select.POLLOUT):
                    return False
            except (BrokenPipeError, ConnectionResetError):
                return False
        return True

    def end_of_blob(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            if e.errno not in (errno.ENOTCONN, errno.EPIPE):
                raise

    def reply(self) -> tuple[Any, ...] | None:
        """The child's answer; None when it ended without one."""
        buf = bytearray()
        need = _FRAME.size
        while len(buf) < need:
            try:
                data = self.sock.recv(max(need - len(buf), 1 << 16))
            except BlockingIOError:
                if not self._wait_for(select.POLLIN):
                    try:  # the child may have answered just before it ended
                        data = self.sock.recv(max(need - len(buf), 1 << 16))
                    except (BlockingIOError, ConnectionResetError):
                        return None
                else:
                    continue
            except ConnectionResetError:
                return None
            if not data:
                return None
            buf += data
            if need == _FRAME.size and len(buf) >= need:
                need += _FRAME.unpack_from(buf)[0]
        reply = marshal.loads(bytes(buf[_FRAME.size :]))
        return cast(tuple[Any, ...], reply)

    def finish(self, *, kill: bool) -> int | None:
        """Stop (with `kill`) and reap the child; its wait status (None: reaped by someone
        else, a SIGCHLD handler of the program, say)."""
        try:
            if kill and self.status is None:
                try:  # through the pidfd: never another process that got the pid since
                    if self.pidfd >= 0:
                        signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
                    else:
                        os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if self.status is None:
                _, self.status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        finally:
            self.sock.close()
            if self.pidfd >= 0:
                os.close(self.pidfd)
                self.pidfd = -1
        return self.status


def run_in_child(
    stream: BinaryIO, head: bytes, work: Work, *, preload: Callable[[], None], what: str
) -> Any:
    """Run `work` in a forked child on the bytes of `head` then `stream` (read to its end
    here); its result.  `what` names the work in errors ("apply layer to DIR").

    `preload` imports every module `work` may import on first use: it runs in this thread
    right before the fork, so that the child imports nothing (see the module docstring).

    Raises what reading `stream` raised (OSError as a StorageError), or the child's error: a
    StorageError with its message and errno.  NoChild when no child could be started (before
    anything is read): the caller then does the work itself.
    """
    preload()
    child = _Child(work)
    ok = False
    try:
        try:
            sending = child.send(head) if head else True
            while sending:
                try:
                    data = stream.read(_CHUNK)
                except OSError as e:
                    err = StorageError(f"{what}: reading the layer: {e.strerror or e}")
                    err.errno = e.errno
                    raise err from e
                if not data:
                    child.end_of_blob()
                    break
                sending = child.send(data)
            reply = child.reply()
        except OSError as e:  # the socket to the child (not the stream: handled above)
            err = StorageError(f"{what}: passing the layer to the process applying it: {e}")
            err.errno = e.errno
            raise err from e
        ok = reply is not None
    finally:
        status = child.finish(kill=not ok)
    if reply is None:
        if status is None:
            why = "ended"
        elif os.WIFSIGNALED(status):
            why = f"was killed by signal {os.WTERMSIG(status)}"
        else:
            why = f"exited with status {os.waitstatus_to_exitcode(status)}"
        raise StorageError(f"{what}: the process applying the layer {why} without an answer")
    if reply[0] == "ok":
        return reply[1]
    _, kind, message, errno_ = reply
    if kind != "storage":
        message = f"{what}: {kind}: {message}"
    err = StorageError(message)
    err.errno = errno_
    raise err
