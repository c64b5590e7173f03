"""A faithful copy of a directory tree (the vfs driver's layers): types, owners, modes, times,
xattrs, hardlinks and device nodes kept; symlinks copied as links, never followed."""

from __future__ import annotations

import errno
import os
import shutil
import stat

from pypod.storage.archive.changes import xattrs

#: xattrs that must not be copied: overlayfs' own (the source is never an overlay upper here)
_SKIP_PREFIXES = ("trusted.overlay.", "user.overlay.")


def _copy_xattrs(src: str, dst: str) -> None:
    for name, value in xattrs(src).items():
        if name.startswith(_SKIP_PREFIXES):
            continue
        try:
            os.setxattr(dst, name, value, follow_symlinks=False)
        except OSError as e:
            if e.errno not in (errno.ENOTSUP, errno.EPERM):
                raise


def _attrs(src: str, dst: str, st: os.stat_result, *, link: bool) -> None:
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    if not link:
        os.chmod(dst, stat.S_IMODE(st.st_mode))  # after chown, which clears setuid bits
    _copy_xattrs(src, dst)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def copy_tree(src: str, dst: str) -> None:
    """Copy the content and attributes of directory `src` into the new directory `dst`."""
    seen: dict[tuple[int, int], str] = {}

    def walk(s: str, d: str) -> None:
        with os.scandir(s) as it:
            entries = list(it)
        for entry in entries:
            sp, dp = entry.path, os.path.join(d, entry.name)
            st = entry.stat(follow_symlinks=False)
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                os.mkdir(dp, 0o700)
                walk(sp, dp)
                _attrs(sp, dp, st, link=False)
                continue
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1:
                first = seen.get(key)
                if first is not None:
                    os.link(first, dp, follow_symlinks=False)
                    continue
                seen[key] = dp
            if stat.S_ISREG(mode):
                shutil.copyfile(sp, dp, follow_symlinks=False)
                _attrs(sp, dp, st, link=False)
            elif stat.S_ISLNK(mode):
                os.symlink(os.readlink(sp), dp)
                _attrs(sp, dp, st, link=True)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
                os.mknod(dp, mode, st.st_rdev)
                _attrs(sp, dp, st, link=False)
            elif stat.S_ISSOCK(mode):
                continue  # a socket is not content
            else:  # pragma: no cover - no other types exist
                continue

    os.mkdir(dst, 0o700)
    walk(src, dst)
    _attrs(src, dst, os.lstat(src), link=False)
