"""Reading a layer tar's entries: tarfile's results, most of them without tarfile's cost.

tarfile parses every kind of header (ustar, GNU, PAX, long names, sparse files, global
headers) and reports every kind of damage; it costs about as much Python per entry as applying
the entry.  So:

- `LayerReader` decodes the common entries itself, in one step from the bytes ahead (a ustar
  header of a file, directory, link, device or fifo, alone or after a PAX header of the usual
  keys), exactly as tarfile would.  Anything else (GNU long names and sparse files, global PAX
  headers, character sets, base-256 numbers, a bad checksum, the end of the archive) is left
  to tarfile, which reads it from the same position: results and errors stay tarfile's;
- when tarfile does read headers, its decoding (`TarInfo._frombuf`) is replaced by the same
  decoding with fewer Python objects (`LayerMember`);
- tarfile stops quietly at a bad or cut header in the middle of an archive; `check_end`
  refuses that (a layer whose entries stop there is broken).
"""

from __future__ import annotations

import struct
import tarfile
from typing import IO, Any, Self, cast
from zlib import adler32

#: tarfile's private header errors and helpers (tarfile raises and uses them; they are
#: stable across Python 3 versions)
_tarfile: Any = tarfile
_EOF_HEADER: type[Exception] = _tarfile.EOFHeaderError
_TRUNCATED_HEADER: type[Exception] = _tarfile.TruncatedHeaderError
_INVALID_HEADER: type[Exception] = _tarfile.InvalidHeaderError
_EMPTY_HEADER: type[Exception] = _tarfile.EmptyHeaderError
_ZERO_BLOCK = bytes(tarfile.BLOCKSIZE)


def _nti(field: bytes) -> int:
    """tarfile.nti: a numeric header field (octal text, or GNU base-256)."""
    if field[0] not in (0o200, 0o377):
        end = field.find(b"\0")
        text = field[:end] if end >= 0 else field
        try:
            return int(text.strip() or b"0", 8)
        except ValueError:
            pass  # tarfile's own parsing decides (and raises its own error)
    value: int = _tarfile.nti(field)
    return value


def _byte_sum(block: bytes) -> int:
    """sum(block) for a 512-byte header, without a Python loop: Adler-32's first sum is
    1 + the sum of the bytes modulo 65521, exact for 256 bytes (at most 65280)."""
    return (adler32(block[:256]) & 0xFFFF) + (adler32(block[256:]) & 0xFFFF) - 2


def _nts(field: bytes, encoding: str, errors: str) -> str:
    end = field.find(b"\0")
    return (field[:end] if end >= 0 else field).decode(encoding, errors)


class LayerMember(tarfile.TarInfo):
    """A tar entry, decoded as tarfile decodes it (see the module docstring)."""

    @classmethod
    def frombuf(cls, buf: bytes, encoding: str, errors: str) -> Self:
        return cls._frombuf(buf, encoding, errors)

    @classmethod
    def _frombuf(cls, buf: bytes, encoding: str, errors: str, *, dircheck: bool = True) -> Self:
        if len(buf) == 0:
            raise _EMPTY_HEADER("empty header")
        if len(buf) != tarfile.BLOCKSIZE:
            raise _TRUNCATED_HEADER("truncated header")
        if buf == _ZERO_BLOCK:
            raise _EOF_HEADER("end of file header")
        chksum = _nti(buf[148:156])
        # unsigned sum with the checksum field counted as spaces; tarfile also accepts the
        # signed sum some old tars wrote
        if chksum != 256 + _byte_sum(buf) - sum(buf[148:156]) and (
            chksum not in _tarfile.calc_chksums(buf)
        ):
            raise _INVALID_HEADER("bad checksum")
        obj = cls()
        obj.name = _nts(buf[0:100], encoding, errors)
        obj.mode = _nti(buf[100:108])
        obj.uid = _nti(buf[108:116])
        obj.gid = _nti(buf[116:124])
        obj.size = _nti(buf[124:136])
        obj.mtime = _nti(buf[136:148])
        obj.chksum = chksum
        obj.type = buf[156:157]
        obj.linkname = _nts(buf[157:257], encoding, errors)
        obj.uname = _nts(buf[265:297], encoding, errors)
        obj.gname = _nts(buf[297:329], encoding, errors)
        obj.devmajor = _nti(buf[329:337])
        obj.devminor = _nti(buf[337:345])
        prefix = _nts(buf[345:500], encoding, errors)
        # old V7 tars write a directory as a regular file whose name ends with "/"
        if dircheck and obj.type == tarfile.AREGTYPE and obj.name.endswith("/"):
            obj.type = tarfile.DIRTYPE
        if obj.type == tarfile.GNUTYPE_SPARSE:
            pos = 386
            structs = []
            for _ in range(4):
                try:
                    offset = _nti(buf[pos : pos + 12])
                    numbytes = _nti(buf[pos + 12 : pos + 24])
                except ValueError:
                    break
                structs.append((offset, numbytes))
                pos += 24
            isextended = bool(buf[482])
            origsize = _nti(buf[483:495])
            cast(Any, obj)._sparse_structs = (structs, isextended, origsize)
        if obj.isdir():
            obj.name = obj.name.rstrip("/")
        if prefix and obj.type not in tarfile.GNU_TYPES:
            obj.name = prefix + "/" + obj.name
        return obj


def open_tar(fileobj: IO[bytes]) -> tuple[tarfile.TarFile | None, list[Exception]]:
    """The archive read from `fileobj` (which seeks forward only) and the list the header
    errors met while reading it go to (for `check_end`); None for an empty stream (an empty
    layer, as Go's archive/tar reads it)."""
    end: list[Exception] = []

    class _Member(LayerMember):
        @classmethod
        def fromtarfile(cls, tarfile_: tarfile.TarFile) -> Self:
            try:
                return super().fromtarfile(tarfile_)
            except tarfile.HeaderError as e:
                end.append(e)
                raise

    try:
        tf = tarfile.open(
            fileobj=fileobj,
            mode="r:",
            tarinfo=_Member,
            encoding="utf-8",
            errors="surrogateescape",
        )
    except tarfile.ReadError:
        if fileobj.tell() != 0 or fileobj.read(1):
            raise
        return None, end
    return tf, end


#: entry types decoded here: files, hard and symbolic links, devices, directories, fifos
_SIMPLE = (b"0", b"\0", b"1", b"2", b"3", b"4", b"5", b"6", b"7")
_REGULAR = (b"0", b"\0", b"7")
#: PAX keys decoded here; tarfile handles the others (sparse maps, hdrcharset, ...)
_PAX_FIELDS = ("path", "linkpath", "size", "mtime", "uid", "gid", "uname", "gname")
_PAX_NUMBERS: dict[str, type] = {
    "atime": float, "ctime": float, "mtime": float, "uid": int, "gid": int, "size": int,
}  # fmt: skip
_PAX_PLAIN = ("atime", "ctime", "comment")
_MAX_FAST_PAX = 64 << 10


def _block(count: int) -> int:
    """tarfile's TarInfo._block: `count` rounded up to whole blocks."""
    blocks, remainder = divmod(count, tarfile.BLOCKSIZE)
    return (blocks + 1 if remainder else blocks) * tarfile.BLOCKSIZE


def _num(field: bytes) -> int | None:
    """An octal field as tarfile reads it; None for anything tarfile should decide (base-256,
    blanks, garbage: int() refuses them all)."""
    text = field.split(b"\0", 1)[0]
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        return None


#: a ustar header's fields up to the prefix (the checksum too, as text)
_USTAR = struct.Struct("100s8s8s8s12s12s8sc100s8x32s32s8s8s155s")


def _decode(buf: bytes, *, dircheck: bool) -> LayerMember | None:
    """A ustar header decoded as tarfile decodes it; None for one it must decode itself."""
    (name, mode, uid, gid, size, mtime, chk, kind, linkname, uname, gname, major, minor,
     prefix) = _USTAR.unpack_from(buf)  # fmt: skip
    chksum = _num(chk)
    if chksum is None or chksum != 256 + _byte_sum(buf) - sum(chk):
        return None
    numbers = (_num(mode), _num(uid), _num(gid), _num(size), _num(mtime), _num(major),
               _num(minor))  # fmt: skip
    if None in numbers:
        return None
    obj = LayerMember()
    obj.mode, obj.uid, obj.gid, obj.size, obj.mtime, obj.devmajor, obj.devminor = cast(
        tuple[int, int, int, int, int, int, int], numbers
    )
    obj.name = _nts(name, "utf-8", "surrogateescape")
    obj.chksum = chksum
    obj.type = kind
    obj.linkname = _nts(linkname, "utf-8", "surrogateescape")
    obj.uname = _nts(uname, "utf-8", "surrogateescape")
    obj.gname = _nts(gname, "utf-8", "surrogateescape")
    if dircheck and kind == tarfile.AREGTYPE and obj.name.endswith("/"):
        obj.type = tarfile.DIRTYPE
    if obj.type == tarfile.DIRTYPE:
        obj.name = obj.name.rstrip("/")
    if prefix[0]:
        text = _nts(prefix, "utf-8", "surrogateescape")
        if text:
            obj.name = text + "/" + obj.name
    return obj


def _pax(data: bytes) -> dict[str, str] | None:
    """The records of an extended (PAX) header as tarfile reads them, when they are all valid
    UTF-8 and of the usual keys; None otherwise."""
    out: dict[str, str] = {}
    pos, size = 0, len(data)
    while pos < size and data[pos] != 0:
        space = data.find(b" ", pos, pos + 21)
        digits = data[pos:space]
        if space < 0 or not digits.isdigit():
            return None
        length = int(digits)
        if length < 5 or pos + length > size or data[pos + length - 1] != 0x0A:
            return None
        key, eq, value = data[space + 1 : pos + length - 1].partition(b"=")
        if not key or not eq:
            return None
        try:
            k, v = key.decode("utf-8"), value.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if k not in _PAX_FIELDS and k not in _PAX_PLAIN and not k.startswith("SCHILY.xattr."):
            return None
        out[k] = v
        pos += length
    return out


def _apply_pax(member: LayerMember, pax: dict[str, str]) -> None:
    """tarfile's TarInfo._apply_pax_info."""
    for key, text in pax.items():
        if key not in _PAX_FIELDS:
            continue
        value: Any = text
        if key in _PAX_NUMBERS:
            try:
                value = _PAX_NUMBERS[key](text)
            except ValueError:
                value = 0
        if key == "path":
            value = text.rstrip("/")
        setattr(member, key, value)
    member.pax_headers = dict(pax)


class LayerReader:
    """The entries of a layer tar read from `fileobj` (a `TarInput`), in order."""

    def __init__(self, fileobj: Any) -> None:
        self._input = fileobj
        self.tf, self.end = open_tar(fileobj)
        #: tarfile read the first header when it opened the archive: none means no entries
        self._done = self.tf is None or cast(Any, self.tf).firstmember is None

    def next(self) -> tarfile.TarInfo | None:
        tf = self.tf
        if tf is None or self._done:
            return None
        state: Any = tf
        if state.firstmember is None and not tf.pax_headers:
            offset = tf.offset
            if self._input.seek(offset) < offset:  # what tarfile checks before each header
                raise tarfile.ReadError("unexpected end of data")
            fast = self._fast(offset)
            if fast is not None:
                return fast
        member = tf.next()
        state.members.clear()  # the archive's members are not kept
        self._done = member is None
        return member

    def _fast(self, offset: int) -> LayerMember | None:
        head = self._input.peek(tarfile.BLOCKSIZE)
        if len(head) < tarfile.BLOCKSIZE or head == _ZERO_BLOCK:
            return None
        member = _decode(head, dircheck=True)
        if member is None:
            return None
        pax: dict[str, str] | None = None
        used = tarfile.BLOCKSIZE
        if member.type == tarfile.XHDTYPE:
            if not 0 <= member.size <= _MAX_FAST_PAX:
                return None
            padded = _block(member.size)
            data = self._input.peek(2 * tarfile.BLOCKSIZE + padded)
            pax = _pax(data[tarfile.BLOCKSIZE : tarfile.BLOCKSIZE + member.size])
            next_header = data[tarfile.BLOCKSIZE + padded :]
            if pax is None or len(next_header) < tarfile.BLOCKSIZE or next_header == _ZERO_BLOCK:
                return None
            member = _decode(next_header, dircheck=False)
            if member is None:
                return None
            used += padded + tarfile.BLOCKSIZE
        if member.type not in _SIMPLE:
            return None
        if member.type == tarfile.DIRTYPE:  # again, after the ustar prefix (_proc_builtin)
            member.name = member.name.rstrip("/")
        member.offset = offset
        member.offset_data = offset + used
        if pax is not None:
            _apply_pax(member, pax)
        end = member.offset_data
        if member.type in _REGULAR:
            end += _block(member.size)
        self._input.read(used)
        cast(Any, self.tf).offset = end
        return member


def check_end(tf: tarfile.TarFile, end: list[Exception]) -> None:
    """The tar must end with a zero block (or exactly at a block boundary), not garbage.

    tarfile stops quietly at a bad or cut header in the middle of an archive; a layer whose
    entries stop there is broken, and applying half of it as if complete would be wrong.
    """
    why = end[-1] if end else None
    if isinstance(why, _EOF_HEADER):
        nxt = cast(IO[bytes], tf.fileobj).read(tarfile.BLOCKSIZE)
        if nxt.strip(b"\0"):
            raise tarfile.ReadError(f"a zero block then data at offset {tf.offset}")
    elif isinstance(why, _TRUNCATED_HEADER):
        raise tarfile.ReadError(f"truncated header at offset {tf.offset}")
    elif isinstance(why, _INVALID_HEADER):
        raise tarfile.ReadError(f"invalid header at offset {tf.offset}: {why}")
