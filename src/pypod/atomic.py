"""Replacing a file so that readers see the old content or the new one, never a part.

The one implementation of "temporary file next to it, write, (fsync,) rename; remove the
temporary file on any failure" that the runtime state, the store, the transports and auth.json
all use.  Standard library only, and cheap to import (it is on `pypod-runtime run`'s path).
"""

from __future__ import annotations

import _thread
import os

from pypod.stdlite import contextmanager

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator


@contextmanager
def replacing(path: str, *, mode: int = 0o644, sync: bool = True) -> Iterator[str]:
    """Yield the name of a new empty file next to `path`; fill it in the `with` body.

    On success it gets `mode` and replaces `path` (with `sync`, the file and then the directory
    are fsynced, so the new content survives a crash); on failure it is removed.  The file is
    created with `mode` already, so secrets (auth.json, 0600) are never readable by others.
    """
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(
        directory, f".tmp-{os.getpid()}-{_thread.get_ident()}-{os.path.basename(path)}"
    )
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode))
    try:
        yield tmp
        os.chmod(tmp, mode)
        if sync:
            _fsync(tmp, os.O_RDONLY)
        os.replace(tmp, path)
        if sync:
            fsync_dir(directory)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_atomic(path: str, data: bytes, *, mode: int = 0o644, sync: bool = True) -> None:
    """Replace `path` with `data` (see `replacing`)."""
    with replacing(path, mode=mode, sync=sync) as tmp, open(tmp, "wb") as f:
        f.write(data)


def fsync_dir(path: str) -> None:
    _fsync(path, os.O_RDONLY | os.O_DIRECTORY)


def _fsync(path: str, flags: int) -> None:
    fd = os.open(path, flags | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
