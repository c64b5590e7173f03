"""What a container changed: A (added), C (changed), D (deleted), as `podman diff` lists them.

Two ways to find out, one per kind of driver:

- `changes(lower_dirs, upper)`: an overlay upper directory over its lower layers.  A 0:0
  character device is a deletion, a directory with the opaque xattr hides what the lower layers
  had in it; anything else in the upper directory was added, or changed when the lower layers
  (read through their own whiteouts and opaque directories) have it.  A directory that was only
  copied up (same mode, owner and mtime) is not a change.  An opaque directory over a lower one
  (`rm -rf d; mkdir d`) is listed as podman lists it: "D /d", then all it holds as added;
  `export_changes` writes such a deleted-but-present directory as the directory and its opaque
  marker.
- `changes_between(old_root, new_root)`: two full copies (vfs); entries are compared by type,
  mode, owner, device, size, mtime, xattrs and link target (content only on request), and a
  directory that holds changes is listed as changed, as containers/storage does.

Paths are absolute ("/etc/hosts") and the list is sorted by path, as podman prints it.
"""

from __future__ import annotations

import enum
import errno
import os
import stat
from collections.abc import Iterator, Sequence

from pypod.errors import InvalidArgument, StorageError
from pypod.record import record
from pypod.storage.archive import (
    OPAQUE_XATTR,
    OPAQUE_XATTR_USER,
    OVERLAY,
    OVERLAY_XATTR_PREFIXES,
    WhiteoutFormat,
)


class ChangeKind(enum.Enum):
    ADD = "A"
    MODIFY = "C"
    DELETE = "D"


@record
class Change:
    #: absolute path in the container ("/etc/hosts")
    path: str
    kind: ChangeKind

    def __str__(self) -> str:
        return f"{self.kind.value} {self.path}"


def is_whiteout(st: os.stat_result) -> bool:
    """An overlay whiteout: a character device 0:0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str) -> bool:
    """Whether the directory `path` carries overlayfs' opaque xattr (trusted or user)."""
    for name in (OPAQUE_XATTR, OPAQUE_XATTR_USER):
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError as e:
            if e.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EPERM):
                raise
    return False


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


class _Lowers:
    """The merged view of overlay lower directories (top first), read as overlayfs would."""

    def __init__(self, lower_dirs: Sequence[str]) -> None:
        self.layers = [d.rstrip("/") for d in lower_dirs]
        #: (layer, directory) -> "missing", "dir" or "blocks" (a non-directory or opaque)
        self._states: dict[tuple[int, str], str] = {}

    def _blocked(self, index: int, rel: str) -> bool:
        """Whether layer `index` hides the layers below it at `rel` (through a parent)."""
        parts = rel.strip("/").split("/")[:-1]
        path = ""
        for part in parts:
            path += "/" + part
            key = (index, path)
            state = self._states.get(key)
            if state is None:
                full = self.layers[index] + path
                st = _lstat(full)
                if st is None:
                    state = "missing"
                elif not stat.S_ISDIR(st.st_mode) or is_opaque(full):
                    state = "blocks"
                else:
                    state = "dir"
                self._states[key] = state
            if state == "blocks":
                return True
            if state == "missing":
                return False
        return False

    def lookup(self, rel: str) -> os.stat_result | None:
        """The lstat of `rel` in the merged lower view, None when it is not there."""
        for index, layer in enumerate(self.layers):
            st = _lstat(layer + rel)
            if st is not None:
                return None if is_whiteout(st) else st
            if self._blocked(index, rel):
                return None
        return None


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}"


def changes(
    lower_dirs: Sequence[str], upper: str, *, whiteouts: WhiteoutFormat = OVERLAY
) -> list[Change]:
    """The changes an overlay `upper` directory makes to `lower_dirs` (topmost first)."""
    if whiteouts is not OVERLAY:
        raise InvalidArgument("changes() reads an overlay upper directory; use changes_between()")
    lowers = _Lowers(lower_dirs)
    upper = upper.rstrip("/")
    out: list[Change] = []

    def walk(rel: str, new_below: bool) -> None:
        with os.scandir(upper + rel if rel else upper) as it:
            entries = list(it)
        for entry in entries:
            child = _join(rel, entry.name)
            st = entry.stat(follow_symlinks=False)
            if is_whiteout(st):
                if not new_below and lowers.lookup(child) is not None:
                    out.append(Change(path=child, kind=ChangeKind.DELETE))
                continue
            low = None if new_below else lowers.lookup(child)
            is_dir = stat.S_ISDIR(st.st_mode)
            low_dir = low is not None and stat.S_ISDIR(low.st_mode)
            if is_dir and low_dir and is_opaque(entry.path):
                # removed and made again (rm -rf d; mkdir d): podman lists "D /d" and then
                # everything in it as added
                out.append(Change(path=child, kind=ChangeKind.DELETE))
                walk(child, True)
                continue
            if low is None:
                out.append(Change(path=child, kind=ChangeKind.ADD))
            elif not (is_dir and low_dir and _same_dir(st, low)):
                out.append(Change(path=child, kind=ChangeKind.MODIFY))
            if is_dir:
                walk(child, new_below or not low_dir)

    try:
        walk("", False)
    except RecursionError:
        raise StorageError(f"changes of {upper}: the directory tree is too deep") from None
    out.sort(key=lambda c: c.path)
    return out


def _same_dir(a: os.stat_result, b: os.stat_result) -> bool:
    return (
        a.st_mode == b.st_mode
        and a.st_uid == b.st_uid
        and a.st_gid == b.st_gid
        and a.st_mtime_ns == b.st_mtime_ns
    )


def xattrs(path: str) -> dict[str, bytes]:
    """The xattrs of `path` (not followed), overlayfs' own left out."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EPERM):
            return {}
        raise
    found: dict[str, bytes] = {}
    for name in names:
        if name.startswith(OVERLAY_XATTR_PREFIXES):
            continue
        try:
            found[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError as e:
            if e.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EPERM):
                raise
    return found


def _differs(old: str, ost: os.stat_result, new: str, nst: os.stat_result, content: bool) -> bool:
    if (
        ost.st_mode != nst.st_mode
        or ost.st_uid != nst.st_uid
        or ost.st_gid != nst.st_gid
        or ost.st_rdev != nst.st_rdev
        or ost.st_mtime_ns != nst.st_mtime_ns
    ):
        return True
    if not stat.S_ISDIR(nst.st_mode) and ost.st_size != nst.st_size:
        return True
    if stat.S_ISLNK(nst.st_mode) and os.readlink(old) != os.readlink(new):
        return True
    if xattrs(old) != xattrs(new):
        return True
    if (
        content
        and stat.S_ISREG(nst.st_mode)
        and (ost.st_dev, ost.st_ino)
        != (
            nst.st_dev,
            nst.st_ino,
        )
    ):
        return not _same_content(old, new)
    return False


def _same_content(a: str, b: str) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x = fa.read(1 << 20)
            if x != fb.read(1 << 20):
                return False
            if not x:
                return True


def _scan(path: str) -> dict[str, os.DirEntry[str]]:
    with os.scandir(path) as it:
        return {e.name: e for e in it}


def _all_below(root: str, rel: str) -> Iterator[str]:
    for entry in _scan(root + rel).values():
        child = _join(rel, entry.name)
        yield child
        if entry.is_dir(follow_symlinks=False):
            yield from _all_below(root, child)


def changes_between(old_root: str, new_root: str, *, compare_content: bool = False) -> list[Change]:
    """The changes that turn the tree `old_root` into `new_root` (full copies, vfs).

    `compare_content` also compares the bytes of regular files whose metadata is all the same
    (an edit that kept size and mtime); otherwise content is never read, as containers/storage.
    """
    old_root = old_root.rstrip("/")
    new_root = new_root.rstrip("/")
    out: list[Change] = []

    def walk(rel: str) -> None:
        old = _scan(old_root + rel) if rel else _scan(old_root)
        new = _scan(new_root + rel) if rel else _scan(new_root)
        for name, nentry in new.items():
            child = _join(rel, name)
            nst = nentry.stat(follow_symlinks=False)
            oentry = old.get(name)
            if oentry is None:
                out.append(Change(path=child, kind=ChangeKind.ADD))
                if stat.S_ISDIR(nst.st_mode):
                    out.extend(
                        Change(path=p, kind=ChangeKind.ADD) for p in _all_below(new_root, child)
                    )
                continue
            ost = oentry.stat(follow_symlinks=False)
            both_dirs = stat.S_ISDIR(ost.st_mode) and stat.S_ISDIR(nst.st_mode)
            mark = len(out)
            differs = _differs(oentry.path, ost, nentry.path, nst, compare_content)
            if differs:
                out.append(Change(path=child, kind=ChangeKind.MODIFY))
            if both_dirs:
                walk(child)
                if not differs and len(out) > mark:
                    # a directory holding changes is listed, so a layer keeps its attributes
                    out.insert(mark, Change(path=child, kind=ChangeKind.MODIFY))
            elif stat.S_ISDIR(nst.st_mode):
                out.extend(Change(path=p, kind=ChangeKind.ADD) for p in _all_below(new_root, child))
        for name in old:
            if name not in new:
                out.append(Change(path=_join(rel, name), kind=ChangeKind.DELETE))

    try:
        walk("")
    except RecursionError:
        raise StorageError(f"changes of {new_root}: the directory tree is too deep") from None
    out.sort(key=lambda c: c.path)
    return out
