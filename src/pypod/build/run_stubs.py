"""Mount points a build step needs in the rootfs: made before the run, removed after it.

A bind mount needs something to mount on: /etc/hosts, /run/.containerenv, a `--mount`
target... When the image lacks it, :func:`make_stubs` creates it (an empty file or directory,
and missing parents) before the run, and :func:`remove_stubs` removes what is still empty
afterwards, so that none of it ends up in the layer (as BuildKit does; buildah 1.28 leaves
them).  The directory a stub was made in gets its times back, so that an untouched /etc is
not in the layer either: its times from before the run when the command did not change it,
else those it had when the command ended (removing the stub does not count as a change).

Paths are resolved in the rootfs (symbolic links followed inside it) before the run, and
everything after it goes through directory descriptors opened without following links: a
command that turns a stub's parent into a link to a host directory makes the clean-up stop,
never act on the host.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator, Sequence
from typing import Any

from pypod.build.sources import resolve_in_root
from pypod.errors import PypodError
from pypod.record import record

__all__ = ["Stubs", "make_stubs", "remove_stubs"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@record(frozen=False)
class Stubs:
    #: (parent components, name, is a directory), in the order they were made
    made: list[tuple[tuple[str, ...], str, bool]]
    #: parent components of a directory that existed -> (atime_ns, mtime_ns) before the stubs,
    #: and its mtime_ns once they were made
    times: dict[tuple[str, ...], tuple[int, int, int]]


def _is_bind(mount: dict[str, Any]) -> bool:
    return mount.get("type") == "bind" or any(
        o in ("bind", "rbind") for o in mount.get("options", ())
    )


def make_stubs(rootfs: str, mounts: Sequence[dict[str, Any]]) -> Stubs:
    """Create the missing mount points of `mounts` (OCI mount dicts) in `rootfs`.

    Destinations below another destination are made in that mount by the runtime, not in the
    rootfs, and are left to it."""
    stubs = Stubs(made=[], times={})
    dests = [m["destination"].rstrip("/") or "/" for m in mounts]
    try:
        for mount, dest in zip(mounts, dests, strict=True):
            if any(dest != o and dest.startswith(o.rstrip("/") + "/") for o in dests):
                continue
            directory = True
            if _is_bind(mount):
                try:
                    directory = stat.S_ISDIR(os.stat(mount["source"]).st_mode)
                except OSError:
                    continue  # the runtime reports it
            try:
                resolved = resolve_in_root(rootfs, dest)
            except (OSError, PypodError):
                continue
            _make(rootfs, [p for p in resolved.split("/") if p], directory, stubs)
        for parents in stubs.times:
            with _open_dir(rootfs, parents) as fd:
                atime, mtime, _ = stubs.times[parents]
                stubs.times[parents] = (atime, mtime, os.fstat(fd).st_mtime_ns)
    except BaseException:
        remove_stubs(rootfs, stubs)
        raise
    return stubs


def _make(rootfs: str, parts: list[str], directory: bool, stubs: Stubs) -> None:
    fds = [os.open(rootfs, _DIR_FLAGS)]
    try:
        for i, name in enumerate(parts):
            last = i == len(parts) - 1
            try:
                st = os.stat(name, dir_fd=fds[-1], follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if st is None:
                parents = tuple(parts[:i])
                made_here = {(*p, n) for p, n, _ in stubs.made}
                if parents not in stubs.times and parents not in made_here:
                    pst = os.fstat(fds[-1])
                    stubs.times[parents] = (pst.st_atime_ns, pst.st_mtime_ns, 0)
                if last and not directory:
                    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
                    os.close(os.open(name, flags, 0o644, dir_fd=fds[-1]))
                else:
                    os.mkdir(name, 0o755, dir_fd=fds[-1])
                stubs.made.append((parents, name, not last or directory))
                if last:
                    return
            elif last or not stat.S_ISDIR(st.st_mode):
                return  # there already (or not a directory on the way: the runtime says so)
            fds.append(os.open(name, _DIR_FLAGS, dir_fd=fds[-1]))
    finally:
        for fd in fds:
            os.close(fd)


@contextlib.contextmanager
def _open_dir(rootfs: str, parts: Sequence[str]) -> Iterator[int]:
    fds = [os.open(rootfs, _DIR_FLAGS)]
    try:
        for name in parts:
            fds.append(os.open(name, _DIR_FLAGS, dir_fd=fds[-1]))
        yield fds[-1]
    finally:
        for fd in fds:
            os.close(fd)


def remove_stubs(rootfs: str, stubs: Stubs) -> None:
    """Remove the stubs still empty (last made first) and give their parents their times."""
    restore: dict[tuple[str, ...], tuple[int, int]] = {}
    for parents, (atime, mtime, made_mtime) in stubs.times.items():
        with contextlib.suppress(OSError), _open_dir(rootfs, parents) as fd:
            st = os.fstat(fd)
            restore[parents] = (
                (atime, mtime) if st.st_mtime_ns == made_mtime else (st.st_atime_ns, st.st_mtime_ns)
            )
    for parents, name, directory in reversed(stubs.made):
        with contextlib.suppress(OSError), _open_dir(rootfs, parents) as fd:
            _remove_if_empty(fd, name, directory)
    for parents, times in restore.items():
        with contextlib.suppress(OSError), _open_dir(rootfs, parents) as fd:
            os.utime(fd, ns=times)
    stubs.made.clear()
    stubs.times.clear()


def _remove_if_empty(dir_fd: int, name: str, directory: bool) -> None:
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if directory and stat.S_ISDIR(st.st_mode):
        try:
            os.rmdir(name, dir_fd=dir_fd)
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EBUSY):
                raise
    elif not directory and stat.S_ISREG(st.st_mode) and st.st_size == 0:
        os.unlink(name, dir_fd=dir_fd)
