"""Tar headers byte for byte as Go 1.19's archive/tar writes them.

buildah records COPY/ADD in history as `COPY file:<hex> in /dest`, where <hex> is the sha256
of a tar stream its copier produced and Go's `tar.Writer` re-serialised (with the times
zeroed).  To give the same history text, and so hit the same layer cache keys, the bytes must
be Go's: its choice between USTAR, PAX and GNU (`Header.allowedFormats`), its numeric and
string field encodings, its PAX record layout and its GNU long-name records.  Only what that
digest needs is here: no sparse files, no reading.
"""

from __future__ import annotations

import posixpath

from pypod.errors import InvalidArgument
from pypod.record import record

__all__ = ["GNU", "PAX", "TRAILER", "USTAR", "GoHeader", "encode_header", "padding"]

BLOCK = 512
TRAILER = b"\0" * (2 * BLOCK)

USTAR = 2
PAX = 4
GNU = 8
_ANY = USTAR | PAX | GNU

TYPE_REG = b"0"
TYPE_LINK = b"1"
TYPE_SYMLINK = b"2"
TYPE_CHAR = b"3"
TYPE_BLOCK = b"4"
TYPE_DIR = b"5"
TYPE_FIFO = b"6"
_HEADER_ONLY = (TYPE_LINK, TYPE_SYMLINK, TYPE_CHAR, TYPE_BLOCK, TYPE_DIR, TYPE_FIFO)
_BASIC_KEYS = {"path", "linkpath", "size", "uid", "gid", "uname", "gname", "mtime", "atime",
               "ctime"}  # fmt: skip


@record
class GoHeader:
    """The fields of Go's `tar.Header` the digest uses.  `mtime` None is Go's zero time;
    `format` 0 is FormatUnknown, else USTAR, PAX or GNU (what a tar.Reader reported)."""

    name: str
    typeflag: bytes
    mode: int = 0
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime: int | None = None
    linkname: str = ""
    uname: str = ""
    gname: str = ""
    devmajor: int = 0
    devminor: int = 0
    pax_records: tuple[tuple[str, str], ...] = ()
    format: int = 0


def padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


def _b(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def _is_ascii(s: str) -> bool:
    return all(ord(c) < 0x80 for c in s)


def _to_ascii(s: str) -> str:
    return "".join(c for c in s if ord(c) < 0x80)


def _fits_octal(n: int, x: int) -> bool:
    return x >= 0 and (n >= 22 or x < 1 << ((n - 1) * 3))


def _fits_base256(n: int, x: int) -> bool:
    bits = (n - 1) * 8
    return n >= 9 or -(1 << bits) <= x < 1 << bits


def _split_ustar_path(name: str) -> tuple[str, str] | None:
    raw = _b(name)
    length = len(raw)
    if length <= 100 or not _is_ascii(name):
        return None
    if length > 156:
        length = 156
    elif raw[length - 1 : length] == b"/":
        length -= 1
    i = raw[:length].rfind(b"/")
    nlen = len(raw) - i - 1
    if i <= 0 or nlen > 100 or nlen == 0 or i > 155:
        return None
    return name[:i], name[i + 1 :]


def _allowed(h: GoHeader) -> tuple[int, dict[str, str]]:
    """Go's Header.allowedFormats: the formats that can hold `h`, and its PAX records."""
    fmt = _ANY
    pax: dict[str, str] = {}
    records = dict(h.pax_records)
    prefer_pax = False

    def string(s: str, size: int, key: str) -> None:
        nonlocal fmt
        too_long = len(_b(s)) > size
        long_gnu = key in ("path", "linkpath")
        if "\0" in s or (too_long and not long_gnu):
            fmt &= ~GNU
        if not _is_ascii(s) or too_long:
            if key != "path" or _split_ustar_path(s) is None:
                fmt &= ~USTAR
            if not key:
                fmt &= ~PAX
            else:
                pax[key] = s
        if key and records.get(key) == s:
            pax[key] = s

    def numeric(n: int, size: int, key: str) -> None:
        nonlocal fmt
        if not _fits_base256(size, n):
            fmt &= ~GNU
        if not _fits_octal(size, n):
            fmt &= ~USTAR
            if not key:
                fmt &= ~PAX
            else:
                pax[key] = str(n)
        if key and records.get(key) == str(n):
            pax[key] = str(n)

    def mtime(ts: int | None) -> None:
        nonlocal fmt, prefer_pax
        if ts is None:
            return
        if not _fits_base256(12, ts):
            fmt &= ~GNU
        if not _fits_octal(12, ts):
            fmt &= ~USTAR
            prefer_pax = True
            pax["mtime"] = str(ts)
        if records.get("mtime") == str(ts):
            pax["mtime"] = str(ts)

    string(h.name, 100, "path")
    string(h.linkname, 100, "linkpath")
    string(h.uname, 32, "uname")
    string(h.gname, 32, "gname")
    numeric(h.mode, 8, "")
    numeric(h.uid, 8, "uid")
    numeric(h.gid, 8, "gid")
    numeric(h.size, 12, "size")
    numeric(h.devmajor, 8, "")
    numeric(h.devminor, 8, "")
    mtime(h.mtime)
    if h.typeflag in (TYPE_REG, TYPE_CHAR, TYPE_BLOCK, TYPE_FIFO) and h.name.endswith("/"):
        raise InvalidArgument(f"archive/tar: filename may not have trailing slash: {h.name!r}")
    if records:
        for k, v in records.items():
            if k in pax:
                continue
            if k not in _BASIC_KEYS and not k.startswith("GNU.sparse."):
                pax[k] = v
        fmt &= PAX
    if h.format:
        want = h.format
        if want & PAX and not prefer_pax:
            want |= USTAR
        fmt &= want
    if not fmt:
        raise InvalidArgument(f"archive/tar: cannot encode the header of {h.name!r}")
    return fmt, pax


def _string(blk: bytearray, start: int, size: int, s: str) -> None:
    raw = _b(s)
    blk[start : start + min(len(raw), size)] = raw[:size]
    if len(raw) < size:
        blk[start + len(raw)] = 0
    if len(raw) > size and blk[start + size - 1] == ord("/"):
        n = len(raw[:size].rstrip(b"/"))
        blk[start + n] = 0


def _octal(blk: bytearray, start: int, size: int, x: int) -> None:
    if not _fits_octal(size, x):
        x = 0
    s = format(x, "o")
    if size - len(s) - 1 > 0:
        s = "0" * (size - len(s) - 1) + s
    _string(blk, start, size, s)


def _numeric(blk: bytearray, start: int, size: int, x: int) -> None:
    if _fits_octal(size, x):
        _octal(blk, start, size, x)
        return
    if _fits_base256(size, x):
        value = x & ((1 << (size * 8)) - 1)
        raw = bytearray(value.to_bytes(size, "big"))
        raw[0] |= 0x80
        blk[start : start + size] = raw
        return
    _octal(blk, start, size, 0)


def _template(h: GoHeader, name: str, ascii_only: bool, numeric: bool) -> bytearray:
    blk = bytearray(BLOCK)

    def st(start: int, size: int, s: str) -> None:
        _string(blk, start, size, _to_ascii(s) if ascii_only else s)

    num = _numeric if numeric else _octal
    blk[156:157] = h.typeflag
    st(0, 100, name)
    st(157, 100, h.linkname)
    num(blk, 100, 8, h.mode)
    num(blk, 108, 8, h.uid)
    num(blk, 116, 8, h.gid)
    num(blk, 124, 12, h.size)
    num(blk, 136, 12, h.mtime or 0)
    st(265, 32, h.uname)
    st(297, 32, h.gname)
    num(blk, 329, 8, h.devmajor)
    num(blk, 337, 8, h.devminor)
    return blk


def _set_format(blk: bytearray, fmt: int) -> bytes:
    if fmt & GNU:
        blk[257:263] = b"ustar "
        blk[263:265] = b" \0"
    else:
        blk[257:263] = b"ustar\0"
        blk[263:265] = b"00"
    blk[148:156] = b" " * 8
    chksum = sum(blk)
    _octal(blk, 148, 7, chksum)
    blk[155] = ord(" ")
    return bytes(blk)


def _raw_file(name: str, data: bytes, flag: bytes, fmt: int) -> bytes:
    """Go's writeRawFile: a minimal header (PAX records, GNU long names) and its data."""
    blk = bytearray(BLOCK)
    name = _to_ascii(name)
    raw = _b(name)[:100].rstrip(b"/")
    blk[156:157] = flag
    _string(blk, 0, 100, raw.decode("ascii"))
    for start in (100, 108, 116):
        _octal(blk, start, 8, 0)
    _octal(blk, 124, 12, len(data))
    _octal(blk, 136, 12, 0)
    return _set_format(blk, fmt) + data + padding(len(data))


def _pax_record(k: str, v: str) -> str:
    size = len(_b(k)) + len(_b(v)) + 3
    size += len(str(size))
    rec = f"{size} {k}={v}\n"
    if len(_b(rec)) != size:
        size = len(_b(rec))
        rec = f"{size} {k}={v}\n"
    return rec


def encode_header(h: GoHeader) -> bytes:
    """The bytes `tar.Writer.WriteHeader(h)` writes (the header blocks, before the data)."""
    if h.typeflag == b"g":  # a PAX global header: only its records
        data = "".join(_pax_record(k, v) for k, v in sorted(h.pax_records, key=lambda r: _b(r[0])))
        return _raw_file(h.name or "GlobalHead.0.0", _b(data), b"g", PAX)
    fmt, pax = _allowed(h)
    if fmt & USTAR:
        name, prefix = h.name, ""
        split = _split_ustar_path(h.name)
        if split is not None:
            prefix, name = split
        blk = _template(h, name, False, False)
        _string(blk, 345, 155, prefix)
        return _set_format(blk, USTAR)
    if fmt & PAX:
        out = b""
        if pax:
            data = "".join(_pax_record(k, pax[k]) for k in sorted(pax, key=_b))
            directory, base = posixpath.split(h.name)
            path = posixpath.normpath(posixpath.join(directory, "PaxHeaders.0", base))
            out = _raw_file(path, _b(data), b"x", PAX)
        blk = _template(h, h.name, True, False)
        return out + _set_format(blk, PAX)
    out = b""
    if len(_b(h.name)) > 100:
        out += _raw_file("././@LongLink", _b(h.name) + b"\0", b"L", GNU)
    if len(_b(h.linkname)) > 100:
        out += _raw_file("././@LongLink", _b(h.linkname) + b"\0", b"K", GNU)
    blk = _template(h, h.name, False, True)
    return out + _set_format(blk, GNU)


def header_only(typeflag: bytes) -> bool:
    return typeflag in _HEADER_ONLY
