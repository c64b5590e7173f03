"""Apply a layer tar to a directory, with no way for an entry to land outside it.

tarfile parses the headers; every file is written here, relative to directory fds:

- Names are cleaned lexically: absolute names are taken relative to the layer, a name whose
  ".." climbs above it is refused.
- Parents are opened one component at a time with O_NOFOLLOW from the layer root, so nothing is
  ever written through a symlink, whether it was in `dest` before or an earlier entry of the same
  tar put it there (a symlink swapped in for a directory).  A symlink itself may point anywhere.
- Leaves are created with O_EXCL / mknodat / symlinkat / linkat (no follow): an existing entry is
  removed first (a directory is kept when the new entry is a directory too).
- Hardlink targets are resolved the same way, so they cannot leave the layer or pass a symlink.
- Device nodes are created only when privileged, setuid/setgid bits are kept only then; owners
  are set (or id-mapped) when privileged, skipped rootless unless an id map is given.
- Directories get their mode and times last, after their content.

Whiteouts follow `WhiteoutFormat`: OVERLAY turns `.wh.name` into a 0:0 character device and
`.wh..wh..opq` into the opaque xattr; VFS deletes from `dest` (an opaque marker deletes what the
layers below had in the directory, not what this layer put there).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from typing import Any, BinaryIO, cast

from pypod.errors import StorageError
from pypod.linux import userns
from pypod.log import get_logger
from pypod.record import record
from pypod.storage.archive import (
    OPAQUE_MARKER,
    OPAQUE_XATTR,
    OPAQUE_XATTR_USER,
    OVERLAY,
    OVERLAY_XATTR_PREFIXES,
    WHITEOUT_META_PREFIX,
    WHITEOUT_PREFIX,
    IdMap,
    WhiteoutFormat,
    clean_path,
)
from pypod.storage.archive.stream import LayoutRecorder, ReadAhead, TarInput, TarStream
from pypod.storage.archive.tarread import LayerReader, check_end

log = get_logger(__name__)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_COPY_CHUNK = 1 << 20
#: directory fds kept open (trimmed between entries, never while one is in use)
_MAX_OPEN_DIRS = 512
_XATTR_PAX = "SCHILY.xattr."
#: deeper paths are refused: no real layer comes near, and removing such a tree would recurse
_MAX_DEPTH = 256


@record
class ApplyResult:
    #: "sha256:..." of the uncompressed tar (the layer's DiffID)
    diff_id: str
    #: bytes of the uncompressed tar
    size: int
    #: bytes read from the stream (equal to `size` for a plain tar)
    compressed_size: int
    #: "none", "gzip" or "zstd"
    compression: str


class _Refused(Exception):
    """An entry that cannot be applied; becomes a StorageError naming the entry."""


class _Tree:
    """The layer directory, walked by fds with O_NOFOLLOW; a cache of open directories."""

    def __init__(self, dest: str, on_implied: Any) -> None:
        self.root = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._fds: dict[str, int] = {"": self.root}
        self._on_implied = on_implied

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def trim(self) -> None:
        if len(self._fds) > _MAX_OPEN_DIRS:
            for rel in list(self._fds)[1 : _MAX_OPEN_DIRS // 2]:
                os.close(self._fds.pop(rel))

    def forget(self, rel: str) -> None:
        """Drop the cached fds of `rel` and below (it is being removed or replaced)."""
        prefix = rel + "/"
        for key in [k for k in self._fds if k == rel or k.startswith(prefix)]:
            os.close(self._fds.pop(key))

    def dir(self, rel: str, *, create: bool) -> int | None:
        """An fd of directory `rel`; missing ones created when `create`, else None."""
        fd = self._fds.get(rel)
        if fd is not None:
            return fd
        names: list[str] = []
        cur = rel
        while True:
            cur, _, name = cur.rpartition("/")
            names.append(name)
            found = self._fds.get(cur)
            if found is not None:
                fd = found
                break
        for name in reversed(names):
            path = f"{cur}/{name}" if cur else name
            try:
                new = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    return None
                os.mkdir(name, 0o700, dir_fd=fd)
                new = os.open(name, _DIR_FLAGS, dir_fd=fd)
                self._fds[path] = new
                self._on_implied(path, new)
            except OSError as e:
                if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                what = "a symlink" if _is_link(fd, name) else "not a directory"
                raise _Refused(f"{path} is {what}; nothing is written through it") from None
            else:
                self._fds[path] = new
            fd = new
            cur = path
        return fd

    def remove(self, parent_fd: int, name: str, rel: str) -> bool:
        """Remove `name` (a whole tree for a directory); False when it did not exist."""
        try:
            st = os.lstat(name, dir_fd=parent_fd)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            self.forget(rel)
            shutil.rmtree(name, dir_fd=parent_fd)
        else:
            os.unlink(name, dir_fd=parent_fd)
        return True


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(name, dir_fd=dir_fd).st_mode)
    except OSError:
        return False


def _pax_ns(member: tarfile.TarInfo, key: str, fallback: float) -> int:
    """A PAX time ("1700000000.123456789") in ns, exactly; `fallback` seconds without it."""
    raw = member.pax_headers.get(key)
    if raw:
        sec, _, frac = raw.partition(".")
        try:
            neg = sec.startswith("-")
            whole = int(sec)
            ns = int((frac + "000000000")[:9]) if frac else 0
            return whole * 1_000_000_000 + (-ns if neg else ns)
        except ValueError:
            pass
    return int(fallback) * 1_000_000_000


class _Applier:
    def __init__(
        self,
        dest: str,
        whiteouts: WhiteoutFormat,
        id_map: IdMap | None,
        privileged: bool,
    ) -> None:
        self.dest = dest
        self.whiteouts = whiteouts
        self.id_map = id_map
        self.privileged = privileged
        #: root of a user namespace (rootless): no device nodes, `user.` overlay xattrs
        self.userns = privileged and userns.in_user_namespace()
        #: paths this layer wrote (VFS: an opaque marker keeps them)
        self.unpacked: set[str] = set()
        #: directory -> (mode, atime ns, mtime ns), applied at the end
        self.dirs: dict[str, tuple[int, int, int]] = {}
        self.tree = _Tree(dest, self._implied)

    # --- ownership, modes, xattrs, times ---------------------------------------------------
    def _owner(self, uid: int, gid: int) -> tuple[int, int] | None:
        if self.id_map is not None:
            uid, gid = self.id_map.to_host(uid, gid)
        elif not self.privileged:
            return None
        return uid, gid

    def _chown(self, target: int | str, owner: tuple[int, int] | None, dir_fd: int | None) -> None:
        if owner is None:
            return
        try:
            if isinstance(target, int):
                os.chown(target, owner[0], owner[1])
            else:
                os.chown(target, owner[0], owner[1], dir_fd=dir_fd, follow_symlinks=False)
        except OSError as e:
            if self.userns and e.errno == errno.EINVAL:  # an id the namespace does not map
                raise _Refused(
                    f"potentially insufficient UIDs or GIDs available in user namespace "
                    f"(requested {owner[0]}:{owner[1]}): check /etc/subuid and /etc/subgid"
                ) from None
            if self.privileged or e.errno not in (errno.EPERM, errno.EINVAL):
                raise
            # rootless with an id map, outside the user namespace: keep our own ids

    def _mode(self, member: tarfile.TarInfo) -> int:
        mode = member.mode & 0o7777
        return mode if self.privileged else mode & ~(stat.S_ISUID | stat.S_ISGID)

    def _xattrs(self, member: tarfile.TarInfo, target: int | str) -> None:
        for key, value in member.pax_headers.items():
            if not key.startswith(_XATTR_PAX):
                continue
            name = key[len(_XATTR_PAX) :]
            if name.startswith(OVERLAY_XATTR_PREFIXES) or not name:
                continue  # overlayfs' own (opaque, redirect, metacopy): never from a layer
            raw = value.encode("utf-8", "surrogateescape")
            try:
                if isinstance(target, int):
                    os.setxattr(target, name, raw)
                else:
                    os.setxattr(target, name, raw, follow_symlinks=False)
            except OSError as e:
                # EPERM: unprivileged, or user.* on a symlink or device (the kernel allows
                # those only on files and directories)
                quiet = not self.privileged or name.startswith("user.")
                if e.errno != errno.ENOTSUP and not (quiet and e.errno == errno.EPERM):
                    raise
                log.debug("xattr %s of %s not kept: %s", name, member.name, e.strerror)

    def _implied(self, rel: str, fd: int) -> None:
        """A parent the tar did not list (yet): 0755, owned by the (mapped) root."""
        os.fchmod(fd, 0o755)
        self._chown(fd, self._owner(0, 0), None)
        self.unpacked.add(rel)

    # --- entries ---------------------------------------------------------------------------
    def entry(self, tf: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        if "\0" in member.name or "\0" in member.linkname:
            raise _Refused("a NUL byte in the name or link target")
        rel = clean_path(member.name)
        if rel is None:
            raise _Refused("the name climbs out of the layer with '..'")
        if rel.count("/") >= _MAX_DEPTH:
            raise _Refused(f"the path is more than {_MAX_DEPTH} levels deep")
        parent, _, base = rel.rpartition("/")
        if rel == "":
            if not member.isdir():
                raise _Refused("the layer root can only be a directory")
            self._dir_attrs(member, "", self.tree.root)
            return
        if rel.split("/", 1)[0].startswith(WHITEOUT_META_PREFIX) and rel != OPAQUE_MARKER:
            return  # AUFS metadata (.wh..wh.plnk, .wh..wh.aufs)
        if base == OPAQUE_MARKER:
            self._opaque(parent)
            return
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(member, parent, base[len(WHITEOUT_PREFIX) :])
            return
        pfd = self.tree.dir(parent, create=True)
        assert pfd is not None
        self.unpacked.add(rel)
        if member.isreg():
            self._file(tf, member, pfd, base, rel)
        elif member.isdir():
            self._dir(member, pfd, base, rel)
        elif member.issym():
            self._create(pfd, base, rel, lambda: os.symlink(member.linkname, base, dir_fd=pfd))
            self._attrs(member, pfd, base)
        elif member.islnk():
            self._hardlink(member, pfd, base, rel)
        elif member.ischr() or member.isblk() or member.isfifo():
            self._special(member, pfd, base, rel)
        else:
            raise _Refused(f"unsupported tar entry type {member.type!r}")

    def _create(self, pfd: int, base: str, rel: str, make: Any) -> None:
        try:
            make()
        except FileExistsError:
            self.tree.remove(pfd, base, rel)
            make()

    def _file(
        self, tf: tarfile.TarFile, member: tarfile.TarInfo, pfd: int, base: str, rel: str
    ) -> None:
        try:
            fd = os.open(base, _FILE_FLAGS, 0o600, dir_fd=pfd)
        except FileExistsError:
            self.tree.remove(pfd, base, rel)
            fd = os.open(base, _FILE_FLAGS, 0o600, dir_fd=pfd)
        try:
            _copy_data(tf, member, fd, rel)
            self._file_attrs(member, fd)
        finally:
            os.close(fd)

    def _file_attrs(self, member: tarfile.TarInfo, fd: int) -> None:
        self._chown(fd, self._owner(member.uid, member.gid), None)
        os.fchmod(fd, self._mode(member))
        self._xattrs(member, fd)
        mtime = _pax_ns(member, "mtime", member.mtime)
        atime = max(_pax_ns(member, "atime", member.mtime), mtime)
        os.utime(fd, ns=(atime, mtime))

    def _dir(self, member: tarfile.TarInfo, pfd: int, base: str, rel: str) -> None:
        try:
            os.mkdir(base, 0o700, dir_fd=pfd)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(base, dir_fd=pfd).st_mode):
                self.tree.remove(pfd, base, rel)
                os.mkdir(base, 0o700, dir_fd=pfd)
        fd = self.tree.dir(rel, create=False)
        assert fd is not None
        self._dir_attrs(member, rel, fd)

    def _dir_attrs(self, member: tarfile.TarInfo, rel: str, fd: int) -> None:
        self._chown(fd, self._owner(member.uid, member.gid), None)
        self._xattrs(member, fd)
        mtime = _pax_ns(member, "mtime", member.mtime)
        atime = max(_pax_ns(member, "atime", member.mtime), mtime)
        self.dirs[rel] = (self._mode(member), atime, mtime)

    def _attrs(self, member: tarfile.TarInfo, pfd: int, base: str, mode: bool = False) -> None:
        """Owner, xattrs, times (and mode) of a symlink, device or fifo, never followed."""
        self._chown(base, self._owner(member.uid, member.gid), pfd)
        if mode:
            os.chmod(base, self._mode(member), dir_fd=pfd)
        self._xattrs(member, f"/proc/self/fd/{pfd}/{base}")
        mtime = _pax_ns(member, "mtime", member.mtime)
        atime = max(_pax_ns(member, "atime", member.mtime), mtime)
        os.utime(base, ns=(atime, mtime), dir_fd=pfd, follow_symlinks=False)

    def _hardlink(self, member: tarfile.TarInfo, pfd: int, base: str, rel: str) -> None:
        target = clean_path(member.linkname)
        if target is None:
            raise _Refused(f"hardlink target {member.linkname!r} climbs out of the layer")
        if target == "":
            raise _Refused("hardlink to the layer root")
        if target == rel:
            return  # a link to itself: nothing to do
        tparent, _, tbase = target.rpartition("/")
        tfd = self.tree.dir(tparent, create=False)
        if tfd is None or not os.path.lexists(f"/proc/self/fd/{tfd}/{tbase}"):
            raise _Refused(f"hardlink target {member.linkname!r} is not in the layer")

        def link() -> None:
            os.link(tbase, base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)

        self._create(pfd, base, rel, link)

    def _special(self, member: tarfile.TarInfo, pfd: int, base: str, rel: str) -> None:
        kind: int
        if member.isfifo():
            kind, dev = stat.S_IFIFO, 0
        else:
            if not self.privileged or self.userns:
                log.debug("device node %s skipped: not privileged", member.name)
                self.unpacked.discard(rel)
                return
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            dev = os.makedev(member.devmajor, member.devminor)
        self._create(pfd, base, rel, lambda: os.mknod(base, kind | 0o600, dev, dir_fd=pfd))
        self._attrs(member, pfd, base, mode=True)

    # --- whiteouts -------------------------------------------------------------------------
    def _whiteout(self, member: tarfile.TarInfo, parent: str, name: str) -> None:
        if name in ("", ".", "..") or "/" in name:
            raise _Refused("invalid whiteout name")
        rel = f"{parent}/{name}" if parent else name
        if self.whiteouts is OVERLAY:
            pfd = self.tree.dir(parent, create=True)
            assert pfd is not None

            def make() -> None:
                os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=pfd)

            self._create(pfd, name, rel, make)
            owner = self._owner(member.uid, member.gid)
            self._chown(name, owner if self.privileged else None, pfd)
            self.unpacked.add(rel)
        else:
            pfd = self.tree.dir(parent, create=False)
            if pfd is not None:
                self.tree.remove(pfd, name, rel)
            self.unpacked.discard(rel)

    def _opaque(self, parent: str) -> None:
        if self.whiteouts is OVERLAY:
            fd = self.tree.dir(parent, create=True)
            assert fd is not None
            name = OPAQUE_XATTR if self.privileged and not self.userns else OPAQUE_XATTR_USER
            os.setxattr(fd, name, b"y")
        else:
            fd = self.tree.dir(parent, create=False)
            if fd is not None:
                self._prune(fd, parent)

    def _prune(self, fd: int, rel: str) -> None:
        """Remove what this layer did not write below `rel` (VFS opaque directory)."""
        for name in os.listdir(fd):
            child = f"{rel}/{name}" if rel else name
            if child not in self.unpacked:
                self.tree.remove(fd, name, child)
            elif stat.S_ISDIR(os.lstat(name, dir_fd=fd).st_mode):
                sub = self.tree.dir(child, create=False)
                if sub is not None:
                    self._prune(sub, child)

    def finish(self) -> None:
        """Directory modes and times, deepest first, now that nothing is added below them."""
        for rel in sorted(self.dirs, key=lambda r: r.count("/"), reverse=True):
            mode, atime, mtime = self.dirs[rel]
            try:
                fd = self.tree.dir(rel, create=False)
            except _Refused:
                continue  # replaced by a later entry
            if fd is None:
                continue
            os.fchmod(fd, mode)
            os.utime(fd, ns=(atime, mtime))


def _copy_data(tf: tarfile.TarFile, member: tarfile.TarInfo, fd: int, rel: str) -> None:
    if member.sparse is not None:
        src = tf.extractfile(member)
        assert src is not None
        while chunk := src.read(_COPY_CHUNK):
            _write_all(fd, chunk)
        return
    cast(TarInput, tf.fileobj).copy_to(fd, member.offset_data, member.size, rel)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


#: a blob larger than this (compressed) is applied by a child process when `isolate` is None
ISOLATE_MIN = 1 << 20


class _Prefixed:
    """`head`, then the rest of `stream`."""

    __slots__ = ("_head", "_stream")

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = head
        self._stream = stream

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0 or n >= len(self._head):
                data, self._head = self._head, b""
            else:
                data, self._head = self._head[:n], self._head[n:]
            return data
        return self._stream.read(n)


def _read_head(stream: BinaryIO, size: int, dest: str) -> tuple[bytes, bool]:
    """Up to `size` bytes of the stream; (them, whether the stream ended there)."""
    parts: list[bytes] = []
    got = 0
    while got < size:
        try:
            data = stream.read(size - got)
        except OSError as e:
            err = StorageError(f"apply layer to {dest}: reading the layer: {e.strerror or e}")
            err.errno = e.errno
            raise err from e
        if not data:
            return b"".join(parts), True
        parts.append(data)
        got += len(data)
    return b"".join(parts), False


def apply_layer(
    stream: BinaryIO,
    dest: str,
    *,
    whiteouts: WhiteoutFormat = OVERLAY,
    id_map: IdMap | None = None,
    rootless: bool = False,
    max_size: int | None = None,
    layout: LayoutRecorder | None = None,
    isolate: bool | None = None,
) -> ApplyResult:
    """Apply the layer tar read (once) from `stream` to the directory `dest`.

    `whiteouts`: OVERLAY when `dest` is an overlay layer directory, VFS when it is a full copy
    of the layers below.  `id_map` maps the tar's owners to the host (a store with shifted
    ids); `rootless` (or not being root) skips owners without a map, device nodes, setuid
    bits and trusted xattrs.  `max_size` bounds the uncompressed size.  `layout` records the
    tar's layout in the same pass (to rebuild the tar byte for byte from the files later), and
    writes it to its `path` once the layer is applied.

    `isolate`: apply in a child process (`archive.child`), so that layers applied by several
    threads at once use every CPU instead of taking turns at the GIL; None (the default): when
    the blob is larger than ISOLATE_MIN (a small layer costs less than a fork).  The stream is
    read by the calling thread either way, and its errors are raised as they are.

    On error, `dest` may hold part of the layer: the caller removes it (the store marks a layer
    incomplete until it is applied).  Nothing outside `dest` is ever touched.
    """
    privileged = os.geteuid() == 0 and not rootless

    def work(source: BinaryIO) -> ApplyResult:
        return _apply(source, dest, whiteouts, id_map, privileged, max_size, layout)

    if isolate is False:
        return work(stream)
    head, ended = _read_head(stream, ISOLATE_MIN, dest)
    if ended and isolate is None:
        return work(cast(BinaryIO, _Prefixed(head, stream)))
    from pypod.storage.archive import stream as stream_module
    from pypod.storage.archive.child import NoChild, run_in_child

    def in_child(source: BinaryIO) -> tuple[Any, ...]:
        result = work(source)
        return (result.diff_id, result.size, result.compressed_size, result.compression,
                layout.state() if layout is not None else None)  # fmt: skip

    def preload() -> None:
        stream_module.preload(head, save_layout=layout is not None and layout.path is not None)

    try:
        reply = run_in_child(stream, head, in_child, preload=preload, what=f"apply layer to {dest}")
    except NoChild as e:
        log.debug("applying the layer to %s in process: %s", dest, e)
        return work(cast(BinaryIO, _Prefixed(head, stream)))
    diff_id, size, compressed_size, compression, state = reply
    if layout is not None:
        layout.load(state)
    return ApplyResult(diff_id=diff_id, size=size, compressed_size=compressed_size,
                       compression=compression)  # fmt: skip


def _apply(
    stream: BinaryIO,
    dest: str,
    whiteouts: WhiteoutFormat,
    id_map: IdMap | None,
    privileged: bool,
    max_size: int | None,
    layout: LayoutRecorder | None,
) -> ApplyResult:
    """apply_layer, in this process.

    The stream is read and decompressed by a thread of its own while this one writes the
    files (more threads writing files cost more in thread switches than they save: measured).
    """
    source = TarStream(stream, max_size=max_size)
    try:
        applier = _Applier(dest, whiteouts, id_map, privileged)
    except OSError as e:
        raise StorageError(f"apply layer to {dest}: {e.strerror}") from e
    ahead = ReadAhead(source)
    tar_input = TarInput(ahead, layout)
    member: tarfile.TarInfo | None = None
    try:
        reader = LayerReader(tar_input)
        tf = reader.tf
        while tf is not None:
            member = reader.next()
            if member is None:
                break
            applier.tree.trim()
            applier.entry(tf, member)
        member = None
        if tf is not None:
            check_end(tf, reader.end)
        applier.finish()
        tar_input.drain()
        if layout is not None:
            layout.save()
    except _Refused as e:
        assert member is not None
        raise StorageError(f"apply layer to {dest}: entry {member.name!r}: {e}") from None
    except (tarfile.TarError, EOFError, ValueError) as e:
        where = f" at entry {member.name!r}" if member is not None else ""
        raise StorageError(f"apply layer to {dest}: invalid or truncated tar{where}: {e}") from e
    except StorageError as e:
        where = f" at entry {member.name!r}" if member is not None else ""
        raise StorageError(f"apply layer to {dest}{where}: {e}") from e
    except OSError as e:
        what = f"entry {member.name!r}" if member is not None else "finishing directories"
        err = StorageError(f"apply layer to {dest}: {what}: {e.strerror or e}")
        err.errno = e.errno
        raise err from e
    finally:
        ahead.close()
        applier.tree.close()
    return ApplyResult(
        diff_id=source.digest,
        size=source.size,
        compressed_size=source.compressed_size,
        compression=source.compression,
    )
