"""Tar streams out of and into directory trees, walked by file descriptors (cp, export, commit).

`TarWriter` reads a tree one directory fd at a time: every entry is opened with O_NOFOLLOW
relative to its parent's fd, so a running container that swaps a directory for a symlink while
it is read cannot send the reader anywhere else; symlinks are written as symlinks, files that
share an inode as hardlinks, sockets are skipped (a tar cannot hold them).  Entries come in
name order, each directory before its content, as Go's archive writers do.

`extract` writes a tar into a directory that stands for `/` (a container's root, a volume, or a
host directory): each entry's parent is resolved by the kernel inside that root
(`openat2(RESOLVE_IN_ROOT)`, as a chroot would, which is what podman's copier does), and the
entry itself is created with O_EXCL / no-follow calls in that parent.  Nothing is ever written
outside the root, whatever the names, symlinks or hardlinks in the tar or already in the tree.
Directories get their mode and times after their content, checked to be still the directory
that was made.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from collections.abc import Iterable, Mapping
from typing import IO, BinaryIO, cast

from pypod.config.hostusers import HostNames
from pypod.errors import InvalidArgument, OSLevelError, PypodError, StorageError
from pypod.linux.mounts import ensure_in_root, open_in_root
from pypod.log import get_logger
from pypod.storage.archive import clean_path

log = get_logger(__name__)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20
_XATTR_PAX = "SCHILY.xattr."
#: overlayfs' own attributes: never part of what is copied
_SKIPPED_XATTRS = ("trusted.overlay.", "user.overlay.")
#: deeper trees are refused rather than recursed into
_MAX_DEPTH = 256
#: directory fds kept open while a tar is written into a tree
_MAX_OPEN_DIRS = 256


class CopyError(PypodError):
    """A tree could not be read or written; names the path inside the tree."""


# --- reading a tree ---------------------------------------------------------------------------
class TarWriter:
    """Writes a tar of directory trees to `out`.

    `owner`: every entry gets these ids (podman's cp gives them the container user's ids);
    None keeps the ids on disk.  `host_names`: fill uname/gname from the host's user database,
    as Go's archive/tar does (`podman export`).
    """

    def __init__(
        self, out: BinaryIO, *, owner: tuple[int, int] | None = None, host_names: bool = False
    ) -> None:
        self._out = out
        self._owner = owner
        self._host_names = host_names
        self._inodes: dict[tuple[int, int], str] = {}
        self._names = HostNames()

    def add(self, parent_fd: int, name: str, arcname: str) -> None:
        """Add `name` of directory `parent_fd` (not followed) as `arcname`, with all it holds."""
        self._entry(parent_fd, name, arcname, name, frozenset(), 0)

    def add_contents(self, dir_fd: int, prefix: str = "", *, excludes: Iterable[str] = ()) -> None:
        """Add what directory `dir_fd` holds (not the directory itself), named under `prefix`;
        `excludes`: names directly in `dir_fd` to leave out."""
        self._contents(dir_fd, prefix, "", frozenset(excludes), 0)

    def add_dir(self, dir_fd: int, arcname: str, *, excludes: Iterable[str] = ()) -> None:
        """Add directory `dir_fd` itself as `arcname`, then its content (but `excludes`)."""
        st = os.fstat(dir_fd)
        self._header(st, arcname, tarfile.DIRTYPE, xattrs=_xattrs(dir_fd))
        self._contents(dir_fd, arcname, "", frozenset(excludes), 0)

    def close(self) -> None:
        """The end-of-archive blocks (two zero blocks, as Go writes them)."""
        self._out.write(b"\0" * (2 * tarfile.BLOCKSIZE))

    # --- walking ------------------------------------------------------------------------------
    def _contents(self, dir_fd: int, prefix: str, rel: str, excludes: frozenset[str],
                  depth: int) -> None:  # fmt: skip
        if depth > _MAX_DEPTH:
            raise CopyError(f"{rel or '/'}: the tree is more than {_MAX_DEPTH} levels deep")
        for name in sorted(os.listdir(dir_fd)):
            if not rel and name in excludes:
                continue
            arcname = f"{prefix}/{name}" if prefix else name
            self._entry(dir_fd, name, arcname, f"{rel}/{name}" if rel else name, excludes, depth)

    def _entry(self, parent_fd: int, name: str, arcname: str, rel: str,
               excludes: frozenset[str], depth: int) -> None:  # fmt: skip
        try:
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            log.debug("%s vanished while it was copied", rel)
            return
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            fd = _open(parent_fd, name, _DIR_FLAGS, rel)
            try:
                self._header(os.fstat(fd), arcname, tarfile.DIRTYPE, xattrs=_xattrs(fd))
                self._contents(fd, arcname, rel, excludes, depth + 1)
            finally:
                os.close(fd)
        elif stat.S_ISREG(mode):
            self._file(parent_fd, name, arcname, rel)
        elif stat.S_ISLNK(mode):
            target = os.readlink(name, dir_fd=parent_fd)
            self._header(st, arcname, tarfile.SYMTYPE, linkname=target)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            kind = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            self._header(st, arcname, kind)
        elif stat.S_ISFIFO(mode):
            self._header(st, arcname, tarfile.FIFOTYPE)
        # sockets (and anything else) cannot be in a tar: skipped, as Go's writers do

    def _file(self, parent_fd: int, name: str, arcname: str, rel: str) -> None:
        fd = _open(parent_fd, name, _READ_FLAGS, rel)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return  # replaced by something else meanwhile (a running container)
            key = (st.st_dev, st.st_ino)
            first = self._inodes.get(key) if st.st_nlink > 1 else None
            if first is not None:
                self._header(st, arcname, tarfile.LNKTYPE, linkname=first)
                return
            if st.st_nlink > 1:
                self._inodes[key] = arcname
            self._header(st, arcname, tarfile.REGTYPE, xattrs=_xattrs(fd))
            left = st.st_size
            while left:
                chunk = os.read(fd, min(left, _CHUNK))
                if not chunk:
                    # it shrank while it was read (a running container): keep the tar whole
                    log.warning("%s shrank while it was copied; the rest is zeros", rel)
                    chunk = b"\0" * min(left, _CHUNK)
                self._out.write(chunk)
                left -= len(chunk)
            pad = -st.st_size % tarfile.BLOCKSIZE
            if pad:
                self._out.write(b"\0" * pad)
        finally:
            os.close(fd)

    def _header(self, st: os.stat_result, arcname: str, kind: bytes, *, linkname: str = "",
                xattrs: Mapping[str, bytes] | None = None) -> None:  # fmt: skip
        info = tarfile.TarInfo(arcname)
        info.type = kind
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = self._owner if self._owner is not None else (st.st_uid, st.st_gid)
        info.uname = self._names.user(info.uid) if self._host_names else ""
        info.gname = self._names.group(info.gid) if self._host_names else ""
        info.mtime = int(st.st_mtime)
        info.size = st.st_size if kind == tarfile.REGTYPE else 0
        info.linkname = linkname
        if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        if xattrs:
            info.pax_headers = {
                _XATTR_PAX + k: v.decode("utf-8", "surrogateescape") for k, v in xattrs.items()
            }
        self._out.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))


def _open(parent_fd: int, name: str, flags: int, rel: str) -> int:
    try:
        return os.open(name, flags, dir_fd=parent_fd)
    except OSError as e:
        if e.errno == errno.ELOOP:  # became a symlink meanwhile: nothing is read through it
            raise CopyError(f"/{rel} was replaced by a symlink while it was copied") from None
        raise CopyError(f"read /{rel}: {e.strerror}") from e


def _xattrs(fd: int) -> dict[str, bytes]:
    try:
        names = os.listxattr(fd)
    except OSError:
        return {}
    out: dict[str, bytes] = {}
    for name in sorted(names):
        if name.startswith(_SKIPPED_XATTRS):
            continue
        try:
            out[name] = os.getxattr(fd, name)
        except OSError:
            continue
    return out


# --- writing a tree ---------------------------------------------------------------------------
def _join(base: str, rel: str) -> str:
    return f"{base}/{rel}".strip("/") if base else rel


class _Extractor:
    def __init__(self, root_fd: int, base: str, *, owner: tuple[int, int] | None,
                 keep_owners: bool, ignore_devices: bool, overwrite: bool) -> None:  # fmt: skip
        self.root_fd = root_fd
        self.base = base.strip("/")
        self.owner = owner
        self.keep_owners = keep_owners and os.geteuid() == 0
        self.ignore_devices = ignore_devices or os.geteuid() != 0
        self.overwrite = overwrite
        self._dirs: dict[str, int] = {}
        #: directories made or kept: rel -> (dev, ino, mode, mtime ns), set at the end
        self._pending: dict[str, tuple[int, int, int, int]] = {}

    def close(self) -> None:
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()

    # --- parents --------------------------------------------------------------------------------
    def _dir(self, rel: str) -> int:
        """An fd of directory `rel` (inside the root, made when missing)."""
        fd = self._dirs.get(rel)
        if fd is not None:
            return fd
        flags = os.O_RDONLY | os.O_DIRECTORY
        try:
            fd = open_in_root(self.root_fd, rel, flags)
        except OSLevelError as e:
            if e.errno != errno.ENOENT:
                raise CopyError(f"/{rel}: {os.strerror(e.errno)}") from None
            os.close(ensure_in_root(self.root_fd, rel, directory=True))
            fd = open_in_root(self.root_fd, rel, flags)
        self._dirs[rel] = fd
        return fd

    def _forget(self, rel: str) -> None:
        """Directory `rel` is being removed: drop the cached fds of it and below."""
        for key in [k for k in self._dirs if k == rel or k.startswith(rel + "/")]:
            os.close(self._dirs.pop(key))

    # --- owners, modes, xattrs ------------------------------------------------------------------
    def _ids(self, member: tarfile.TarInfo) -> tuple[int, int] | None:
        if self.owner is not None:
            return self.owner
        if self.keep_owners:
            return member.uid, member.gid
        return None

    def _xattrs(self, member: tarfile.TarInfo, fd: int) -> None:
        for key, value in member.pax_headers.items():
            if not key.startswith(_XATTR_PAX):
                continue
            name = key[len(_XATTR_PAX) :]
            if not name or name.startswith(_SKIPPED_XATTRS):
                continue
            try:
                os.setxattr(fd, name, value.encode("utf-8", "surrogateescape"))
            except OSError as e:  # a filesystem without them, or not allowed: not fatal
                log.debug("xattr %s of %s not kept: %s", name, member.name, e.strerror)

    # --- entries --------------------------------------------------------------------------------
    def entry(self, tf: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        if len(self._dirs) > _MAX_OPEN_DIRS:  # between entries: no cached fd is in use
            self.close()
        rel = clean_path(member.name)
        if rel is None or "\0" in member.name:
            raise CopyError(f"tar entry {member.name!r} climbs out of the destination; refused")
        target = _join(self.base, rel)
        if not rel:
            if member.isdir():
                fd = self._dir(self.base)
                self._dir_attrs(member, fd, self.base)
            return
        if target.count("/") > _MAX_DEPTH:
            raise CopyError(f"/{target}: more than {_MAX_DEPTH} levels deep; refused")
        parent, _, leaf = target.rpartition("/")
        pfd = self._dir(parent)
        try:
            existing = os.stat(leaf, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if member.isdir():
            self._mkdir(member, pfd, leaf, target, existing)
            return
        if existing is not None:
            self._clear(pfd, leaf, target, existing)
        if member.isreg():
            self._file(tf, member, pfd, leaf)
        elif member.issym():
            os.symlink(member.linkname, leaf, dir_fd=pfd)
            self._link_attrs(member, pfd, leaf)
        elif member.islnk():
            self._hardlink(member, pfd, leaf)
        elif member.ischr() or member.isblk() or member.isfifo():
            self._special(member, pfd, leaf)
        else:
            raise CopyError(f"tar entry {member.name!r}: unsupported type {member.type!r}")

    def _clear(self, pfd: int, leaf: str, target: str, existing: os.stat_result) -> None:
        """Make room for a non-directory."""
        if stat.S_ISDIR(existing.st_mode):
            if not self.overwrite:
                raise CopyError(
                    f'cannot create "/{target}": a directory is in the way; use --overwrite to '
                    "replace directories with non-directories"
                )
            self._forget(target)
            shutil.rmtree(leaf, dir_fd=pfd)
        else:
            os.unlink(leaf, dir_fd=pfd)

    def _mkdir(self, member: tarfile.TarInfo, pfd: int, leaf: str, target: str,
               existing: os.stat_result | None) -> None:  # fmt: skip
        if existing is not None and not stat.S_ISDIR(existing.st_mode):
            if not self.overwrite:
                raise CopyError(
                    f'cannot create directory "/{target}": a non-directory is in the way; use '
                    "--overwrite to replace non-directories with directories"
                )
            os.unlink(leaf, dir_fd=pfd)
            existing = None
        if existing is None:
            os.mkdir(leaf, 0o700, dir_fd=pfd)
        fd = os.open(leaf, _DIR_FLAGS, dir_fd=pfd)
        try:
            self._dir_attrs(member, fd, target)
        finally:
            os.close(fd)

    def _dir_attrs(self, member: tarfile.TarInfo, fd: int, target: str) -> None:
        ids = self._ids(member)
        if ids is not None:
            os.fchown(fd, *ids)
        self._xattrs(member, fd)
        st = os.fstat(fd)
        mode = member.mode & 0o7777
        self._pending[target] = (st.st_dev, st.st_ino, mode, int(member.mtime) * 1_000_000_000)

    def _file(self, tf: tarfile.TarFile, member: tarfile.TarInfo, pfd: int, leaf: str) -> None:
        fd = os.open(leaf, _CREATE_FLAGS, 0o600, dir_fd=pfd)
        try:
            _copy_data(tf, member, fd)
            ids = self._ids(member)
            if ids is not None:
                os.fchown(fd, *ids)
            os.fchmod(fd, member.mode & 0o7777)
            self._xattrs(member, fd)
            ns = int(member.mtime) * 1_000_000_000
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)

    def _link_attrs(self, member: tarfile.TarInfo, pfd: int, leaf: str) -> None:
        ids = self._ids(member)
        if ids is not None:
            os.chown(leaf, *ids, dir_fd=pfd, follow_symlinks=False)
        ns = int(member.mtime) * 1_000_000_000
        os.utime(leaf, ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)

    def _hardlink(self, member: tarfile.TarInfo, pfd: int, leaf: str) -> None:
        rel = clean_path(member.linkname)
        if not rel:
            raise CopyError(f"hardlink {member.name!r} -> {member.linkname!r}: bad target")
        target = _join(self.base, rel)
        tparent, _, tleaf = target.rpartition("/")
        tfd = self._dir(tparent)
        try:
            os.link(tleaf, leaf, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            raise CopyError(
                f"hardlink {member.name!r}: its target {member.linkname!r} is not in the copy"
            ) from None

    def _special(self, member: tarfile.TarInfo, pfd: int, leaf: str) -> None:
        if member.isfifo():
            os.mkfifo(leaf, 0o600, dir_fd=pfd)
        elif self.ignore_devices:
            log.debug("device %s skipped", member.name)
            return
        else:
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(leaf, kind | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=pfd)
        ids = self._ids(member)
        if ids is not None:
            os.chown(leaf, *ids, dir_fd=pfd, follow_symlinks=False)
        os.chmod(leaf, member.mode & 0o7777, dir_fd=pfd, follow_symlinks=False)
        ns = int(member.mtime) * 1_000_000_000
        os.utime(leaf, ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)

    def finish(self) -> None:
        """Directory modes and times, deepest first, on the directories that were made."""
        self.close()
        for rel in sorted(self._pending, key=lambda r: r.count("/"), reverse=True):
            dev, ino, mode, mtime = self._pending[rel]
            try:
                fd = open_in_root(self.root_fd, rel, os.O_RDONLY | os.O_DIRECTORY)
            except OSLevelError:
                continue  # replaced by a later entry
            try:
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) == (dev, ino):
                    os.fchmod(fd, mode)
                    os.utime(fd, ns=(mtime, mtime))
            finally:
                os.close(fd)


def _copy_data(tf: tarfile.TarFile, member: tarfile.TarInfo, fd: int) -> None:
    src = tf.extractfile(member)
    if src is None:
        return
    while chunk := src.read(_CHUNK):
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]


def extract(
    stream: BinaryIO,
    root_fd: int,
    base: str,
    *,
    owner: tuple[int, int] | None = None,
    keep_owners: bool = True,
    ignore_devices: bool = False,
    overwrite: bool = False,
) -> None:
    """Write the tar read from `stream` (plain, gzip or zstd) into directory `base` of the tree
    whose root is `root_fd`.

    `owner`: give every entry these ids (podman's `--archive`); else the tar's ids are kept
    when `keep_owners` and we are root.  `ignore_devices`: skip device nodes (copies to the
    host).  `overwrite`: replace a directory by a non-directory and the other way round
    (otherwise refused).  Hardlink targets are names in the tar, so inside `base`.
    """
    from pypod.storage.archive.stream import TarStream

    ex = _Extractor(root_fd, base, owner=owner, keep_owners=keep_owners,
                    ignore_devices=ignore_devices, overwrite=overwrite)  # fmt: skip
    member: tarfile.TarInfo | None = None
    try:
        try:
            source = TarStream(stream)
            with tarfile.open(fileobj=cast(IO[bytes], source), mode="r|", encoding="utf-8",
                              errors="surrogateescape") as tf:  # fmt: skip
                for member in tf:
                    ex.entry(tf, member)
        except (tarfile.TarError, EOFError) as e:
            where = f" at {member.name!r}" if member is not None else ""
            raise InvalidArgument(f"the tar stream is not valid{where}: {e}") from None
        ex.finish()
    except OSError as e:
        where = member.name if member is not None else base
        raise CopyError(f"copy {where}: {e.strerror or e}") from e
    except StorageError as e:
        raise CopyError(str(e)) from e
    finally:
        ex.close()
