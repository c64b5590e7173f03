"""Removing a directory tree: what `shutil.rmtree` does, without importing shutil.

`shutil` brings bz2, lzma and fnmatch with it (~2.5 ms): too much for `run --rm`, which
removes a container's layer and files on every run.  Standard library only, like atomic.py.
The tree is walked through directory fds (O_NOFOLLOW): a symlink in it is removed, never
followed, so nothing outside `path` is touched even if the tree changes meanwhile.
"""

from __future__ import annotations

import os
import stat

__all__ = ["remove_tree"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path: str, *, ignore_errors: bool = False) -> None:
    """Remove `path` and everything below it.  Errors are raised (the first one, after
    which nothing more is removed), or with `ignore_errors` skipped: what can go, goes.
    A `path` that does not exist is an error (FileNotFoundError) unless `ignore_errors`;
    a `path` that is not a directory (a file, a symlink) is refused as shutil.rmtree does."""
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            raise OSError(f"cannot remove a tree through a symbolic link: {path}")
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(20, "Not a directory", path)
        fd = os.open(path, _DIR_FLAGS)
    except OSError:
        if ignore_errors:
            return
        raise
    try:
        _remove_below(fd, path, ignore_errors)
    finally:
        os.close(fd)
    try:
        os.rmdir(path)
    except OSError:
        if not ignore_errors:
            raise


def _remove_below(dirfd: int, where: str, ignore_errors: bool) -> None:
    try:
        with os.scandir(dirfd) as it:
            entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
    except OSError:
        if ignore_errors:
            return
        raise
    for name, is_dir in entries:
        try:
            if is_dir:
                sub = os.open(name, _DIR_FLAGS, dir_fd=dirfd)
                try:
                    _remove_below(sub, os.path.join(where, name), ignore_errors)
                finally:
                    os.close(sub)
                os.rmdir(name, dir_fd=dirfd)
            else:
                os.unlink(name, dir_fd=dirfd)
        except OSError as e:
            if ignore_errors:
                continue
            if e.filename is None:
                e.filename = os.path.join(where, name)
            raise
