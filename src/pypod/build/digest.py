"""The content digest buildah 1.28 writes into history for COPY and ADD.

`COPY f.txt /f.txt` is recorded as `/bin/sh -c #(nop) COPY file:<hex> in /f.txt `; the hex
is what buildah's `CompositeDigester` computed while copying:

- each glob match of a local source gets one digester: "dir" for a directory, "file"
  otherwise; it hashes the tar stream buildah's copier produced for the match, re-written by
  Go's tar.Writer with every time zeroed.  A file is one entry named as it lands (its base
  name, or the destination's when the destination is a file); a directory is its contents
  (not itself) named relative to it, walked in Go's order, hard links as links.  Owners are
  the --chown ids (0:0 by default), user and group names those of the source's owner on the
  host, modes the source's or --chmod's, extended attributes PAX records.  An archive that
  ADD unpacks is hashed as its own entries;
- a URL gets a plain digester over the tar buildah wraps the download in (one entry: the
  name, size, mode 0600 or --chmod, the owner, the Last-Modified time);
- one digester: "<type>:<hex>" (a URL's has no type: the bare hex); several: "multi:" and the
  sha256 of "type:hex,type:hex,...".
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
from collections.abc import Iterator, Mapping, Sequence
from typing import BinaryIO

from pypod.build import gotar
from pypod.build.gomatch import clean
from pypod.build.ignore import Ignore, walk_context
from pypod.build.sources import (
    ARCHIVE,
    MKDIR,
    CopyItem,
    glob_in_root,
    host_path,
    is_archive,
    is_url,
    resolve_in_root,
)
from pypod.config.hostusers import HostNames

__all__ = ["content_digest", "url_digest"]

_CHUNK = 1 << 20


def combine(digests: Sequence[tuple[str, str]]) -> str:
    """buildah's CompositeDigester.Digest as history shows it."""
    if len(digests) == 1:
        kind, hexdigest = digests[0]
        return f"{kind}:{hexdigest}" if kind else hexdigest
    content = ",".join(f"{kind}:{hexdigest}" if kind else hexdigest for kind, hexdigest in digests)
    return "multi:" + hashlib.sha256(content.encode()).hexdigest()


def url_digest(name: str, path: str, *, mode: int, owner: tuple[int, int], mtime: int) -> str:
    """The digest of a download (`path` on the host), as buildah wraps it: one tar entry."""
    h = hashlib.sha256()
    size = os.path.getsize(path)
    h.update(gotar.encode_header(gotar.GoHeader(name=name, typeflag=gotar.TYPE_REG, mode=mode,
                                                uid=owner[0], gid=owner[1], size=size,
                                                mtime=mtime)))  # fmt: skip
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    h.update(gotar.padding(size))
    h.update(gotar.TRAILER)
    return h.hexdigest()


def content_digest(
    root: str,
    sources: Sequence[str],
    plan: Sequence[CopyItem],
    *,
    add: bool,
    ignore: Ignore | None,
    owner: tuple[int, int],
    mode: int | None,
    url_digests: Mapping[str, str],
) -> str:
    """The history digest of `COPY/ADD sources` from `root` (the context or --from root),
    carried out as `plan`."""
    root = os.path.abspath(root)
    host_names = HostNames()
    rules = ignore if ignore is not None else Ignore()
    names = {item.source: posixpath.basename(item.dest) for item in plan
             if item.kind not in (MKDIR, ARCHIVE) and not is_url(item.source)}  # fmt: skip
    digests: list[tuple[str, str]] = []
    for src in sources:
        if is_url(src):
            digests.append(("", url_digests[src]))
            continue
        for match in glob_in_root(root, clean("/" + src)):
            resolved = resolve_in_root(root, match)
            host = host_path(root, resolved)
            st = os.lstat(host)
            is_dir = stat.S_ISDIR(st.st_mode)
            rel = match.lstrip("/") or "."
            if rules and rel != "." and rules.excluded(rel, is_dir):
                continue
            h = hashlib.sha256()
            if is_dir:
                _dir_entries(h, root, resolved, rules, owner, mode, host_names)
            elif add and stat.S_ISREG(st.st_mode) and is_archive(host):
                _archive_entries(h, host)
            else:
                name = names.get(host, posixpath.basename(match))
                _entry(h, host, st, name, owner, mode, host_names, {})
            h.update(gotar.TRAILER)
            digests.append(("dir" if is_dir else "file", h.hexdigest()))
    return combine(digests)


def _xattr_records(path: str) -> tuple[tuple[str, str], ...]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    out = []
    for n in names:
        try:
            value = os.getxattr(path, n, follow_symlinks=False)
        except OSError:
            continue
        out.append(("SCHILY.xattr." + n, value.decode("utf-8", "surrogateescape")))
    return tuple(out)


def _entry(h: hashlib._Hash, path: str, st: os.stat_result, name: str, owner: tuple[int, int],
           mode: int | None, names: HostNames, links: dict[tuple[int, int], str]
           ) -> None:  # fmt: skip
    """One item as the copier's Get writes it and the digester re-writes it."""
    fmt = stat.S_IFMT(st.st_mode)
    linkname = ""
    size = 0
    devmajor = devminor = 0
    if fmt == stat.S_IFREG:
        typeflag = gotar.TYPE_REG
        size = st.st_size
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            if key in links:
                typeflag, linkname, size = gotar.TYPE_LINK, links[key], 0
            else:
                links[key] = name
    elif fmt == stat.S_IFDIR:
        typeflag = gotar.TYPE_DIR
    elif fmt == stat.S_IFLNK:
        typeflag = gotar.TYPE_SYMLINK
        linkname = os.readlink(path)
    elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
        typeflag = gotar.TYPE_CHAR if fmt == stat.S_IFCHR else gotar.TYPE_BLOCK
        devmajor, devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif fmt == stat.S_IFIFO:
        typeflag = gotar.TYPE_FIFO
    else:
        return  # sockets: not in a tar
    header = gotar.GoHeader(
        name=name,
        typeflag=typeflag,
        mode=stat.S_IMODE(st.st_mode) if mode is None else mode,
        uid=owner[0],
        gid=owner[1],
        size=size,
        linkname=linkname,
        uname=names.user(st.st_uid),
        gname=names.group(st.st_gid),
        devmajor=devmajor,
        devminor=devminor,
        pax_records=_xattr_records(path),
    )
    h.update(gotar.encode_header(header))
    if typeflag == gotar.TYPE_REG and size:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        h.update(gotar.padding(size))


def _dir_entries(h: hashlib._Hash, root: str, resolved: str, rules: Ignore,
                 owner: tuple[int, int], mode: int | None, names: HostNames) -> None:  # fmt: skip
    top = resolved.lstrip("/")
    prefix = f"{top}/" if top else ""
    links: dict[tuple[int, int], str] = {}
    for entry in walk_context(root, rules, top=top):
        path = host_path(root, "/" + entry)
        _entry(h, path, os.lstat(path), entry[len(prefix) :], owner, mode, names, links)


# --- an archive that ADD unpacks: its entries as Go's tar.Reader returns them ---------------
def _archive_entries(h: hashlib._Hash, path: str) -> None:
    from pypod.build.copier import open_decompressed

    with open(path, "rb") as raw, open_decompressed(raw) as stream:
        for header, content in _read_tar(stream):
            h.update(gotar.encode_header(header))
            if not gotar.header_only(header.typeflag):
                size = 0
                for chunk in content:
                    h.update(chunk)
                    size += len(chunk)
                h.update(gotar.padding(size))
            else:
                for _ in content:
                    pass


def _nts(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _number(b: bytes) -> int:
    if b and b[0] & 0x80:
        value = int.from_bytes(bytes([b[0] & 0x7F]) + b[1:], "big")
        if b[0] & 0x40:
            value -= 1 << (len(b) * 8 - 1)
        return value
    text = b.strip(b" \0")
    return int(text, 8) if text else 0


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = stream.read(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def _data(stream: BinaryIO, size: int) -> Iterator[bytes]:
    left = size
    while left > 0:
        chunk = stream.read(min(left, _CHUNK))
        if not chunk:
            raise ValueError("unexpected end of the archive")
        left -= len(chunk)
        yield chunk
    _read_exact(stream, -size % 512)


def _records(data: bytes) -> dict[str, str]:
    """PAX records: "<length> <key>=<value>\\n", the length counting the whole record."""
    out: dict[str, str] = {}
    while data:
        length, _, _ = data.partition(b" ")
        n = int(length)
        record = data[len(length) + 1 : n - 1]
        key, _, value = record.partition(b"=")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        data = data[n:]
    return out


def _read_tar(stream: BinaryIO) -> Iterator[tuple[gotar.GoHeader, Iterator[bytes]]]:
    """(header, content chunks) of each entry, as Go's tar.Reader hands them out."""
    pax: dict[str, str] = {}
    long_name: str | None = None
    long_link: str | None = None
    while True:
        blk = _read_exact(stream, 512)
        if len(blk) < 512 or blk == b"\0" * 512:
            return
        typeflag = blk[156:157]
        size = _number(blk[124:136])
        if typeflag in (b"x", b"g"):
            records = _records(b"".join(_data(stream, size)))
            if typeflag == b"g":
                yield (gotar.GoHeader(name=_nts(blk[0:100]), typeflag=b"g",
                                      pax_records=tuple(records.items()), format=gotar.PAX),
                       iter(()))  # fmt: skip
                continue
            pax.update(records)
            continue
        if typeflag in (b"L", b"K"):
            value = _nts(b"".join(_data(stream, size)))
            if typeflag == b"L":
                long_name = value
            else:
                long_link = value
            continue
        magic = blk[257:263]
        fmt = gotar.GNU if magic == b"ustar " else gotar.USTAR if magic == b"ustar\0" else 0
        name = _nts(blk[0:100])
        if fmt == gotar.USTAR and blk[345:500].strip(b"\0"):
            name = _nts(blk[345:500]) + "/" + name
        text = {
            "name": long_name if long_name is not None else name,
            "linkname": long_link if long_link is not None else _nts(blk[157:257]),
            "uname": _nts(blk[265:297]),
            "gname": _nts(blk[297:329]),
        }
        num = {
            "mode": _number(blk[100:108]),
            "uid": _number(blk[108:116]),
            "gid": _number(blk[116:124]),
            "size": size,
            "devmajor": _number(blk[329:337]) if fmt else 0,
            "devminor": _number(blk[337:345]) if fmt else 0,
        }
        for key, field in (("path", "name"), ("linkpath", "linkname"), ("uname", "uname"),
                           ("gname", "gname")):  # fmt: skip
            if key in pax:
                text[field] = pax[key]
        for key in ("uid", "gid", "size"):
            if key in pax:
                num[key] = int(pax[key])
        if typeflag == b"\0":
            typeflag = gotar.TYPE_DIR if text["name"].endswith("/") else gotar.TYPE_REG
        if pax:
            fmt = gotar.PAX
        content_size = 0 if gotar.header_only(typeflag) else num["size"]
        entry = gotar.GoHeader(
            name=text["name"],
            typeflag=typeflag,
            mode=num["mode"],
            uid=num["uid"],
            gid=num["gid"],
            size=num["size"],
            linkname=text["linkname"],
            uname=text["uname"],
            gname=text["gname"],
            devmajor=num["devmajor"],
            devminor=num["devminor"],
            pax_records=tuple(pax.items()),
            format=fmt,
        )
        pax = {}
        long_name = long_link = None
        content = _data(stream, content_size)
        yield entry, content
        for _ in content:  # the caller may not read it all
            pass
