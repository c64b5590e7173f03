"""COPY and ADD carried out: `sources.plan_copy`'s items written into a mounted root.

Every write happens inside the root: the parent directory of each destination is resolved
with `resolve_in_root` (links in the image cannot send a write to the host), opened with
O_NOFOLLOW, and the entry itself is created relative to that directory without following a
link in its last component (an existing non-directory is replaced, as buildah does).

Owners and modes, as buildah 1.28: what COPY and ADD write belongs to 0:0 unless `--chown`
(names looked up in the container's /etc/passwd and /etc/group; a lone number is uid and gid);
`--chmod` sets the mode of copied files and directories; otherwise files, directories (their
mode and mtime), links and special files keep their metadata.  Missing parent directories are
created 0755 (or the `--chmod` mode) with the same owner.  ADD unpacks a local archive with
the owners and modes it holds (buildah 1.28 applies neither `--chown` nor `--chmod` to them)
through the store's own layer applier (nothing lands outside the destination directory), and
downloads a URL (mode 0600, mtime from Last-Modified).

The result is the content digest buildah writes into history (`COPY file:<hex> in /dest`),
computed as buildah 1.28 does, byte for byte (`build/digest.py`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import stat
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, BinaryIO

from pypod.build.sources import (
    ARCHIVE,
    DIR,
    FILE,
    MKDIR,
    SPECIAL,
    SYMLINK,
    URL,
    CopyItem,
    host_path,
    parse_chmod,
    parse_chown,
    plan_copy,
    resolve_in_root,
)
from pypod.errors import InvalidArgument, PypodError, from_oserror

if TYPE_CHECKING:
    from pypod.build.ignore import Ignore

__all__ = ["copy_into", "copy_owner"]

_CHUNK = 1 << 20
#: the longest a download may take between two reads
URL_TIMEOUT = 60.0


def copy_owner(rootfs: str, chown: str | None) -> tuple[int, int]:
    """(uid, gid) of what COPY/ADD writes: 0:0, or `--chown` resolved in the container."""
    parsed = parse_chown(chown or "")
    if parsed is None:
        return 0, 0
    numeric = parsed.numeric()
    if numeric is not None:
        return numeric
    from pypod.runtime.users import lookup_user, read_etc_file

    passwd = read_etc_file(rootfs, "/etc/passwd")
    group = read_etc_file(rootfs, "/etc/group")
    spec = parsed.user + (f":{parsed.group}" if parsed.group else "")
    try:
        user = lookup_user(spec, passwd=passwd, group=group)
    except InvalidArgument as e:
        raise InvalidArgument(f'looking up UID/GID for "{chown}": {e}') from None
    return user.uid, user.gid


def copy_into(
    rootfs: str,
    sources: Sequence[str],
    dest: str,
    *,
    context_dir: str,
    workdir: str = "/",
    add: bool = False,
    chown: str | None = None,
    chmod: str | None = None,
    ignore: Ignore | None = None,
) -> str:
    """Copy `sources` (from `context_dir`) to `dest` in the mounted `rootfs`; the digest."""
    mode = parse_chmod(chmod) if chmod else None
    plan = plan_copy(context_dir, sources, dest, ignore=ignore, workdir=workdir, rootfs=rootfs,
                     add=add)  # fmt: skip
    owner = copy_owner(rootfs, chown)
    writer = _Writer(rootfs, owner, mode)
    try:
        for item in plan:
            writer.item(item)
        writer.finish()
    except OSError as e:
        raise from_oserror(f"copying to {dest} in the container", e) from None
    from pypod.build.digest import content_digest

    return content_digest(context_dir, sources, plan, add=add, ignore=ignore, owner=owner,
                          mode=mode, url_digests=writer.url_digests)  # fmt: skip


class _Writer:
    def __init__(self, rootfs: str, owner: tuple[int, int], mode: int | None) -> None:
        self.rootfs = os.path.abspath(rootfs)
        self.owner = owner
        self.mode = mode
        #: URL -> buildah's digest of the download
        self.url_digests: dict[str, str] = {}
        #: directories whose mtime is set once their contents are written (innermost last)
        self._dir_times: list[tuple[str, int]] = []

    # --- paths inside the root -----------------------------------------------------------
    def _host(self, path: str) -> str:
        return host_path(self.rootfs, resolve_in_root(self.rootfs, path))

    def _ensure_dir(self, path: str) -> str:
        """Create `path` (and missing parents) inside the root; its host path."""
        done = "/"
        for part in [p for p in path.split("/") if p]:
            # a link met on the way may point at several missing directories: each is made
            done = resolve_in_root(self.rootfs, posixpath.join(done, part))
            made = "/"
            for piece in [p for p in done.split("/") if p]:
                made = posixpath.join(made, piece)
                host = host_path(self.rootfs, made)
                try:
                    st = os.lstat(host)
                except FileNotFoundError:
                    os.mkdir(host, 0o700)
                    os.lchown(host, *self.owner)
                    os.chmod(host, 0o755 if self.mode is None else self.mode)
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    raise InvalidArgument(
                        f"copier: put: {made} exists but is not a directory: remove it or "
                        "copy elsewhere"
                    )
        return host_path(self.rootfs, done)

    def _parent(self, dest: str) -> tuple[int, str]:
        """An fd of `dest`'s parent directory (created if missing) and the entry's name."""
        parent, name = posixpath.split(dest)
        host = self._ensure_dir(parent)
        fd = os.open(host, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        return fd, name

    @staticmethod
    def _clear(pfd: int, name: str, dest: str) -> None:
        """Remove a non-directory in the way; a directory cannot be replaced by a file."""
        try:
            st = os.lstat(name, dir_fd=pfd)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise InvalidArgument(
                f"copier: put: cannot overwrite directory {dest} with a non-directory: "
                "remove it first"
            )
        os.unlink(name, dir_fd=pfd)

    # --- the items -------------------------------------------------------------------------
    def item(self, item: CopyItem) -> None:
        if item.kind == MKDIR:
            self._ensure_dir(item.dest)
        elif item.kind == DIR:
            self._dir(item)
        elif item.kind == FILE:
            self._file(item)
        elif item.kind == SYMLINK:
            self._symlink(item)
        elif item.kind == SPECIAL:
            self._special(item)
        elif item.kind == ARCHIVE:
            self._archive(item)
        elif item.kind == URL:
            self._url(item)
        else:  # pragma: no cover - plan_copy's kinds are all above
            raise InvalidArgument(f"unknown copy item kind {item.kind!r}")

    def _dir(self, item: CopyItem) -> None:
        st = os.lstat(item.source)
        mode = stat.S_IMODE(st.st_mode) if self.mode is None else self.mode
        pfd, name = self._parent(item.dest)
        try:
            try:
                existing = os.lstat(name, dir_fd=pfd)
            except FileNotFoundError:
                existing = None
            if existing is not None and not stat.S_ISDIR(existing.st_mode):
                # a link to a directory (inside the root) is kept and written through
                target = self._host(item.dest)
                if not (stat.S_ISLNK(existing.st_mode) and os.path.isdir(target)):
                    os.unlink(name, dir_fd=pfd)
                    existing = None
            if existing is None:
                os.mkdir(name, 0o700, dir_fd=pfd)
        finally:
            os.close(pfd)
        host = self._host(item.dest)
        os.lchown(host, *self.owner)
        os.chmod(host, mode)
        self._dir_times.append((host, st.st_mtime_ns))

    def _file(self, item: CopyItem) -> None:
        src = os.open(item.source, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            st = os.fstat(src)
            mode = stat.S_IMODE(st.st_mode) if self.mode is None else self.mode
            pfd, name = self._parent(item.dest)
            try:
                self._clear(pfd, name, item.dest)
                out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                              | os.O_CLOEXEC, 0o600, dir_fd=pfd)  # fmt: skip
            finally:
                os.close(pfd)
            try:
                while chunk := os.read(src, _CHUNK):
                    _write_all(out, chunk)
                os.fchown(out, *self.owner)
                os.fchmod(out, mode)
                os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(out)
        finally:
            os.close(src)

    def _symlink(self, item: CopyItem) -> None:
        target = os.readlink(item.source)
        st = os.lstat(item.source)
        pfd, name = self._parent(item.dest)
        try:
            self._clear(pfd, name, item.dest)
            os.symlink(target, name, dir_fd=pfd)
            os.chown(name, *self.owner, dir_fd=pfd, follow_symlinks=False)
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=pfd,
                     follow_symlinks=False)  # fmt: skip
        finally:
            os.close(pfd)

    def _special(self, item: CopyItem) -> None:
        st = os.lstat(item.source)
        if stat.S_ISSOCK(st.st_mode):
            return  # tar has no sockets: buildah skips them too
        mode = stat.S_IMODE(st.st_mode) if self.mode is None else self.mode
        pfd, name = self._parent(item.dest)
        try:
            self._clear(pfd, name, item.dest)
            if stat.S_ISFIFO(st.st_mode):
                os.mkfifo(name, 0o600, dir_fd=pfd)
            else:
                os.mknod(name, stat.S_IFMT(st.st_mode) | 0o600, st.st_rdev, dir_fd=pfd)
            os.chown(name, *self.owner, dir_fd=pfd, follow_symlinks=False)
            os.chmod(name, mode, dir_fd=pfd)
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=pfd)
        finally:
            os.close(pfd)

    def _archive(self, item: CopyItem) -> None:
        from pypod.storage.archive import VFS
        from pypod.storage.archive.apply import apply_layer

        host = self._ensure_dir(item.dest)
        with open(item.source, "rb") as raw:
            stream = _decompressed(raw)
            try:
                apply_layer(stream, host, whiteouts=VFS)
            except PypodError as e:
                raise InvalidArgument(f"extracting archive {item.source} to {item.dest}: {e}"
                                      ) from None  # fmt: skip
            finally:
                if stream is not raw:
                    stream.close()

    def _url(self, item: CopyItem) -> None:
        import urllib.request
        from email.utils import parsedate_to_datetime

        mode = 0o600 if self.mode is None else self.mode
        pfd, name = self._parent(item.dest)
        os.close(pfd)
        parent = self._host(posixpath.dirname(item.dest))
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=".pypod-add-")
        when = time.time()
        try:
            try:
                request = urllib.request.Request(item.source, headers={"User-Agent": "pypod"})
                with urllib.request.urlopen(request, timeout=URL_TIMEOUT) as response:
                    modified = response.headers.get("Last-Modified")
                    while chunk := response.read(_CHUNK):
                        _write_all(fd, chunk)
            except OSError as e:
                raise InvalidArgument(
                    f"getting {item.source!r}: {getattr(e, 'reason', None) or e}: check the URL"
                ) from None
            os.fchown(fd, *self.owner)
            os.fchmod(fd, mode)
            if modified:
                try:
                    when = parsedate_to_datetime(modified).timestamp()
                    os.utime(fd, (when, when))
                except (TypeError, ValueError, OverflowError):
                    pass
            from pypod.build.digest import url_digest

            self.url_digests[item.source] = url_digest(
                posixpath.basename(item.dest),
                tmp,
                mode=mode,
                owner=self.owner,
                mtime=int(round(when)),
            )
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        pfd, name = self._parent(item.dest)
        try:
            self._clear(pfd, name, item.dest)
            os.rename(os.path.basename(tmp), name, src_dir_fd=pfd, dst_dir_fd=pfd)
        except BaseException:
            os.unlink(tmp)
            raise
        finally:
            os.close(pfd)

    def finish(self) -> None:
        """Directory mtimes, innermost first (writing into them changed them)."""
        for host, mtime in reversed(self._dir_times):
            try:
                os.utime(host, ns=(mtime, mtime), follow_symlinks=False)
            except OSError as e:
                if e.errno != errno.ENOENT:
                    raise


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _decompressed(raw: BinaryIO) -> BinaryIO:
    """bzip2 and xz are undone here; plain, gzip and zstd are the layer applier's."""
    head = raw.read(6)
    raw.seek(0)
    if head.startswith(b"BZh"):
        import bz2

        return bz2.open(raw, "rb")  # type: ignore[return-value]
    if head.startswith(b"\xfd7zXZ\x00"):
        import lzma

        return lzma.open(raw, "rb")  # type: ignore[return-value]
    return raw


@contextlib.contextmanager
def open_decompressed(raw: BinaryIO) -> Iterator[BinaryIO]:
    """The uncompressed tar of an archive (plain, gzip, bzip2, xz or zstd)."""
    head = raw.read(6)
    raw.seek(0)
    if head.startswith(b"\x1f\x8b"):
        import gzip

        with gzip.open(raw, "rb") as g:
            yield g  # type: ignore[misc]
        return
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        import zstandard

        with zstandard.ZstdDecompressor().stream_reader(raw) as z:
            yield z
        return
    stream = _decompressed(raw)
    try:
        yield stream
    finally:
        if stream is not raw:
            stream.close()
