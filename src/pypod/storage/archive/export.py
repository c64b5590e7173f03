"""Write a container's changes as a layer tar (commit, push, export), reproducibly.

The same input tree and change list give the same bytes: entries sorted with each directory
before its content, PAX format, mtimes kept (whole seconds, as containers/storage), no atime or
ctime, uname and gname empty, the end-of-archive blocks and nothing else.  Every parent of a
change is written too (as it is in the tree), so that applying the layer over an overlay does
not give parents the default 0755 root:root.  A deleted path becomes `dir/.wh.name`; a
directory with the opaque xattr, or listed as deleted but present (see `changes`), is followed
by `dir/.wh..wh..opq` (deletions inside it are then implied).  Files that share an inode
become hardlinks to the first one written.  Xattrs kept are those containers/storage keeps:
security.capability, security.ima and user.* (not overlayfs' own).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tarfile
import zlib
from collections.abc import Sequence
from typing import Any, BinaryIO

from pypod.errors import InvalidArgument, StorageError
from pypod.record import record
from pypod.storage.archive import OPAQUE_MARKER, WHITEOUT_PREFIX, IdMap, path_key
from pypod.storage.archive.changes import Change, ChangeKind, is_opaque, xattrs

_CHUNK = 1 << 20
_KEPT_XATTRS = ("security.capability", "security.ima")


@record
class ExportResult:
    #: "sha256:..." of the uncompressed tar (the layer's DiffID)
    diff_id: str
    #: "sha256:..." of the bytes written (the blob digest; equal to diff_id uncompressed)
    digest: str
    #: bytes written
    size: int
    #: bytes of the uncompressed tar
    uncompressed_size: int


class _Sink:
    """Tar bytes in; hashed, compressed, hashed again and written out."""

    def __init__(self, out: BinaryIO, compression: str | None, level: int | None) -> None:
        self._out = out
        self.tar_hash = hashlib.sha256()
        self.blob_hash = hashlib.sha256()
        self.tar_size = 0
        self.size = 0
        self._comp: Any = None
        if compression == "gzip":
            self._comp = zlib.compressobj(6 if level is None else level, zlib.DEFLATED, 31)
        elif compression == "zstd":
            import zstandard

            self._comp = zstandard.ZstdCompressor(level=3 if level is None else level).compressobj()
        elif compression is not None:
            raise InvalidArgument(f"unknown compression {compression!r}: use gzip or zstd")

    def _emit(self, data: bytes) -> None:
        if data:
            self.blob_hash.update(data)
            self.size += len(data)
            self._out.write(data)

    def write(self, data: bytes) -> None:
        self.tar_hash.update(data)
        self.tar_size += len(data)
        self._emit(self._comp.compress(data) if self._comp is not None else data)

    def close(self) -> None:
        if self._comp is not None:
            self._emit(self._comp.flush())


def _as_go_writes_it(buf: bytes, info: tarfile.TarInfo, file_type: int) -> bytes:
    """The header block as Go's archive/tar (so containers/storage and podman) writes it.

    Go puts the file type bits in the mode field (S_IFDIR|0755 is "0040755") and writes the
    device fields of every entry; tarfile keeps only the permission bits and leaves the device
    fields empty.  Written Go's way, the same tree gives the bytes, and digests, podman gives.
    """
    mode = info.mode | file_type
    if mode > 0o7777777 or info.devmajor > 0o7777777 or info.devminor > 0o7777777:
        return buf
    block = bytearray(buf[-tarfile.BLOCKSIZE :])
    block[100:108] = b"%07o\0" % mode
    block[329:337] = b"%07o\0" % info.devmajor
    block[337:345] = b"%07o\0" % info.devminor
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return buf[: -tarfile.BLOCKSIZE] + bytes(block)


def _is_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _xattr_headers(path: str) -> dict[str, str]:
    pax: dict[str, str] = {}
    for name, value in sorted(xattrs(path).items()):
        if name in _KEPT_XATTRS or name.startswith("user."):
            pax["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
    return pax


def _whiteout_header(
    name: str, *, mode: int = 0, owner: tuple[int, int] = (0, 0), mtime: int = 0
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = mode
    info.uid, info.gid = owner
    info.mtime = mtime
    info.uname = info.gname = ""
    return info


class _Writer:
    def __init__(self, root: str, sink: _Sink, id_map: IdMap | None) -> None:
        self.root = root.rstrip("/")
        self.sink = sink
        self.id_map = id_map
        self.inodes: dict[tuple[int, int], str] = {}

    def header(self, info: tarfile.TarInfo, file_type: int = 0) -> None:
        buf = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        self.sink.write(_as_go_writes_it(buf, info, file_type))

    def _owner(self, st: os.stat_result) -> tuple[int, int]:
        if self.id_map is not None:
            return self.id_map.to_container(st.st_uid, st.st_gid)
        return st.st_uid, st.st_gid

    def whiteout(self, rel: str) -> None:
        """`dir/.wh.name`; from an overlay whiteout, with its owner and mtime (as podman)."""
        parent, _, base = rel.rpartition("/")
        name = f"{parent}/{WHITEOUT_PREFIX}{base}" if parent else WHITEOUT_PREFIX + base
        try:
            st = os.lstat(f"{self.root}/{rel}")
        except (FileNotFoundError, NotADirectoryError):
            self.header(_whiteout_header(name))
            return
        self.header(
            _whiteout_header(
                name,
                mode=stat.S_IMODE(st.st_mode),
                owner=self._owner(st),
                mtime=st.st_mtime_ns // 1_000_000_000,
            )
        )

    def entry(self, rel: str, *, opaque: bool = False) -> bool:
        """Write `rel` as it is in the tree (not what is below it); True for an opaque dir.

        `opaque` writes the opaque marker after a directory even without the xattr.
        """
        path = f"{self.root}/{rel}"
        st = os.lstat(path)
        mode = st.st_mode
        info = tarfile.TarInfo(rel)
        info.mode = stat.S_IMODE(mode)
        info.uid, info.gid = self._owner(st)
        info.uname = info.gname = ""
        info.mtime = st.st_mtime_ns // 1_000_000_000
        key = (st.st_dev, st.st_ino)
        if stat.S_ISREG(mode):
            if st.st_nlink > 1 and key in self.inodes:
                info.type = tarfile.LNKTYPE
                info.linkname = self.inodes[key]
            else:
                if st.st_nlink > 1:
                    self.inodes[key] = rel
                info.size = st.st_size
        elif stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
            info.name = rel + "/"
        elif stat.S_ISLNK(mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(path)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        else:
            return False  # sockets cannot be in a tar (containers/storage skips them too)
        info.pax_headers = _xattr_headers(path)
        self.header(info, stat.S_IFMT(mode))
        if info.type == tarfile.REGTYPE and info.size:
            self._content(path, info.size)
        if stat.S_ISDIR(mode) and (opaque or is_opaque(path)):
            marker = f"{rel}/{OPAQUE_MARKER}"
            self.header(_whiteout_header(marker, mode=info.mode, owner=(info.uid, info.gid)))
            return True
        return False

    def _content(self, path: str, size: int) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            left = size
            while left:
                chunk = os.read(fd, min(left, _CHUNK))
                if not chunk:
                    raise StorageError(f"export {path}: the file shrank while it was read")
                self.sink.write(chunk)
                left -= len(chunk)
        finally:
            os.close(fd)
        pad = -size % tarfile.BLOCKSIZE
        if pad:
            self.sink.write(b"\0" * pad)


def export_changes(
    root_or_upper: str,
    changes: Sequence[Change],
    out: BinaryIO,
    *,
    compression: str | None = None,
    level: int | None = None,
    id_map: IdMap | None = None,
) -> ExportResult:
    """Write the layer tar of `changes` (read from `root_or_upper`) to `out`.

    `root_or_upper` is the container's full root (vfs, with `changes_between`) or its overlay
    upper directory (with `changes`).  `compression`: None, "gzip" or "zstd" (`level` for
    either); `id_map` maps the owners on disk back to the container's ids.
    """
    sink = _Sink(out, compression, level)
    writer = _Writer(root_or_upper, sink, id_map)
    by_path: dict[str, ChangeKind] = {}
    for change in changes:
        rel = change.path.strip("/")
        if rel:
            by_path[rel] = change.kind
    wanted = dict(by_path)
    for rel in by_path:  # every parent, as it is in the tree
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            wanted.setdefault("/".join(parts[:i]), ChangeKind.MODIFY)
    opaque: set[str] = set()
    try:
        for rel in sorted(wanted, key=path_key):
            kind = wanted[rel]
            if kind is ChangeKind.DELETE:
                if _is_dir(f"{writer.root}/{rel}"):
                    # deleted and made again (an opaque overlay directory): the directory
                    # as it is now, then the marker that hides what the layers below had
                    writer.entry(rel, opaque=True)
                    opaque.add(rel)
                elif rel.rpartition("/")[0] not in opaque:
                    writer.whiteout(rel)
                continue
            if rel not in by_path and not _is_dir(f"{writer.root}/{rel}"):
                continue  # a parent of a deletion that is gone as well
            if writer.entry(rel):
                opaque.add(rel)
        sink.write(b"\0" * (2 * tarfile.BLOCKSIZE))
        sink.close()
    except OSError as e:
        err = StorageError(f"export changes of {root_or_upper}: {e.filename}: {e.strerror}")
        err.errno = e.errno or errno.EIO
        raise err from e
    tar_digest = "sha256:" + sink.tar_hash.hexdigest()
    return ExportResult(
        diff_id=tar_digest,
        digest=("sha256:" + sink.blob_hash.hexdigest()) if compression else tar_digest,
        size=sink.size,
        uncompressed_size=sink.tar_size,
    )
