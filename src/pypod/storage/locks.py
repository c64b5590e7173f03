"""File locks (flock) for the store, and the atomic file writes it relies on.

Lock order, fixed, so that two pypod commands can never deadlock:

1. the store lock, `<graphroot>/storage.lock`: every change to the metadata and to the layer
   directories it names is made with it held, and never across network I/O (callers download
   first, then hand the store a local stream);
2. a layer's liveness lock, `<runroot>/locks/<layer-id>.lock`: held by the process that fills or
   removes an incomplete layer, for as long as it works on it (the slow part, applying a tar, runs
   with only this lock), so that crash recovery can tell a dead creator from a live one.  With
   the store lock held, liveness locks are only ever tried (LOCK_NB), never waited for; a new
   layer's liveness lock (a fresh random name nobody else knows) is taken before the store lock;
3. a driver's mount lock, `<runroot>/<driver>/mounts.lock`: around mount counts and mount(2),
   taken with the store lock held or alone, never the other way round.

flock locks belong to an open file description: each acquisition opens the file anew, so two
threads of one process exclude each other exactly as two processes do.

The thread primitives come from `_thread` (what `threading`'s are): importing `threading` costs
~0.5 ms of every command's start.
"""

from __future__ import annotations

import _thread
import errno
import fcntl
import os

from pypod.errors import StorageError, from_oserror

TYPE_CHECKING = False
if TYPE_CHECKING:  # typeshed has no `_thread.RLock`, what `threading.RLock()` makes
    from threading import RLock
    from types import TracebackType
else:
    from _thread import RLock


def _flock(path: str, *, blocking: bool) -> int:
    """An fd of `path` holding its exclusive flock; -1 when not `blocking` and it is taken."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise from_oserror(f"open lock file {path}", e) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return -1
            raise StorageError(f"lock {path}: {e.strerror}") from e
        # the holder may have removed the file (`unlink`) between our open and our flock:
        # a lock on a removed inode protects nothing, so start again on the new file
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        held = os.fstat(fd)
        if st is not None and (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino):
            return fd
        os.close(fd)


class HeldLock:
    """An exclusive flock taken by one thread and given up by another (not reentrant): the
    liveness lock of a layer staged by a copy thread and committed by the main one."""

    __slots__ = ("_fd", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = _flock(path, blocking=True)

    def unlink_and_release(self) -> None:
        """Remove the lock file, then drop the lock (the work it guarded is finished)."""
        if self._fd < 0:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        fd, self._fd = self._fd, -1
        os.close(fd)


class FileLock:
    """An exclusive flock on `path`, reentrant within one thread (a depth count).

    `with lock:` blocks until the lock is held; `try_acquire()` does not block.
    """

    __slots__ = ("_depth", "_fd", "_mutex", "_owner", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self._mutex = RLock()
        self._fd = -1
        self._depth = 0
        self._owner = 0

    def acquire(self, *, blocking: bool = True) -> bool:
        if not self._mutex.acquire(blocking=blocking):
            return False
        if self._depth:
            self._depth += 1
            return True
        try:
            fd = _flock(self.path, blocking=blocking)
        except BaseException:
            self._mutex.release()
            raise
        if fd < 0:
            self._mutex.release()
            return False
        self._fd = fd
        self._depth = 1
        self._owner = _thread.get_ident()
        return True

    def try_acquire(self) -> bool:
        return self.acquire(blocking=False)

    def unlink(self) -> None:
        """Remove the lock file while holding the lock (a later `acquire` makes a new one)."""
        assert self.held
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = 0
            fd, self._fd = self._fd, -1
            os.close(fd)  # closing the last fd of the description drops the flock
        self._mutex.release()

    @property
    def held(self) -> bool:
        """Whether the calling thread holds the lock."""
        return self._depth > 0 and self._owner == _thread.get_ident()

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
