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
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from types import TracebackType

from pypod.errors import StorageError, from_oserror


class FileLock:
    """An exclusive flock on `path`, reentrant within one thread (a depth count).

    `with lock:` blocks until the lock is held; `try_acquire()` does not block.
    """

    __slots__ = ("_depth", "_fd", "_mutex", "_owner", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self._mutex = threading.RLock()
        self._fd = -1
        self._depth = 0
        self._owner = 0

    def acquire(self, *, blocking: bool = True) -> bool:
        if not self._mutex.acquire(blocking=blocking):
            return False
        if self._depth:
            self._depth += 1
            return True
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as e:
                self._mutex.release()
                raise from_oserror(f"open lock file {self.path}", e) from e
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except OSError as e:
                os.close(fd)
                self._mutex.release()
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    return False
                raise StorageError(f"lock {self.path}: {e.strerror}") from e
            # the holder may have removed the file (`unlink`) between our open and our flock:
            # a lock on a removed inode protects nothing, so start again on the new file
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                st = None
            held = os.fstat(fd)
            if st is not None and (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino):
                break
            os.close(fd)
        self._fd = fd
        self._depth = 1
        self._owner = threading.get_ident()
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
        return self._depth > 0 and self._owner == threading.get_ident()

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
