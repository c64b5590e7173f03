"""The uncompressed bytes of a layer blob: sniffed, decompressed, hashed and counted, read once.

A layer blob is a tar, plain or compressed with gzip or zstd; the compression is recognised by
its magic bytes, not by a media type, as containers/storage does.  The diff ID is the SHA-256 of
the uncompressed tar, trailing bytes after the end-of-archive blocks included.

Decompression keeps memory bounded whatever the ratio (a "bomb" expands chunk by chunk), and a
truncated compressed stream is an error, never a short tar taken as complete.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Any, BinaryIO

from pypod.errors import StorageError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: zstd skippable frames (0x184D2A50..5F, little-endian): zstd:chunked starts some layers so
_ZSTD_SKIPPABLE = tuple(bytes([0x50 + i, 0x2A, 0x4D, 0x18]) for i in range(16))
XZ_MAGIC = b"\xfd7zXZ\x00"
BZIP2_MAGIC = b"BZh"

#: how much compressed input is read at a time
_RAW_CHUNK = 64 * 1024
#: zstd input slice: its worst ratio (~32000:1) keeps one slice's output below ~128 MiB
_ZSTD_SLICE = 4096


def sniff(head: bytes) -> str:
    """ "gzip", "zstd" or "none" from the first bytes of a blob; other compressions refused."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC) or head[:4] in _ZSTD_SKIPPABLE:
        return "zstd"
    if head.startswith(XZ_MAGIC):
        raise StorageError("xz-compressed layers are not supported; recompress with gzip or zstd")
    if head.startswith(BZIP2_MAGIC) and head[3:4].isdigit():
        raise StorageError(
            "bzip2-compressed layers are not supported; recompress with gzip or zstd"
        )
    return "none"


class _Raw:
    """The compressed input, with the sniffed head put back in front, counted."""

    __slots__ = ("_head", "_stream", "count")

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.count = 0
        head = b""
        while len(head) < 6:
            more = stream.read(6 - len(head))
            if not more:
                break
            head += more
        self._head = head
        self.count = len(head)

    @property
    def head(self) -> bytes:
        return self._head

    def read(self, n: int) -> bytes:
        if self._head:
            data, self._head = self._head, b""
            return data
        data = self._stream.read(n)
        self.count += len(data)
        return data


class _Plain:
    __slots__ = ("_raw",)

    def __init__(self, raw: _Raw) -> None:
        self._raw = raw

    def read(self, n: int) -> bytes:
        return self._raw.read(n)


class _Gzip:
    """gzip, several members in a row (pigz, concatenated blobs), zero padding at the end."""

    __slots__ = ("_d", "_in", "_raw")

    def __init__(self, raw: _Raw) -> None:
        self._raw = raw
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._in = b""

    def read(self, n: int) -> bytes:
        while True:
            if self._d.eof:
                rest = self._d.unused_data or self._raw.read(_RAW_CHUNK)
                rest = rest.lstrip(b"\0")
                while not rest:
                    more = self._raw.read(_RAW_CHUNK)
                    if not more:
                        return b""
                    rest = more.lstrip(b"\0")
                self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._in = rest
            if not self._in:
                self._in = self._raw.read(_RAW_CHUNK)
                if not self._in:
                    raise StorageError("the gzip stream is truncated (no end of stream)")
            try:
                out = self._d.decompress(self._in, n)
            except zlib.error as e:
                raise StorageError(f"invalid gzip data: {e}") from None
            self._in = self._d.unconsumed_tail
            if out:
                return out


class _Zstd:
    """zstd, any number of frames, skippable frames (zstd:chunked metadata) included."""

    __slots__ = ("_d", "_in", "_mod", "_out", "_raw")

    def __init__(self, raw: _Raw) -> None:
        try:
            import zstandard
        except ImportError:  # pragma: no cover - a declared dependency
            raise StorageError("zstd layers need the 'zstandard' package") from None
        self._mod: Any = zstandard
        self._raw = raw
        self._d: Any = zstandard.ZstdDecompressor().decompressobj()
        self._in = b""
        self._out = b""

    def read(self, n: int) -> bytes:
        while not self._out:
            if self._d.eof:
                rest = self._d.unused_data + self._in
                if not rest:
                    rest = self._raw.read(_RAW_CHUNK)
                    if not rest:
                        return b""
                self._d = self._mod.ZstdDecompressor().decompressobj()
                self._in = rest
            if not self._in:
                self._in = self._raw.read(_RAW_CHUNK)
                if not self._in:
                    raise StorageError("the zstd stream is truncated (frame not complete)")
            piece, self._in = self._in[:_ZSTD_SLICE], self._in[_ZSTD_SLICE:]
            try:
                self._out = self._d.decompress(piece)
            except self._mod.ZstdError as e:
                raise StorageError(f"invalid zstd data: {e}") from None
        out, self._out = self._out[:n], self._out[n:]
        return out


class TarStream:
    """The uncompressed tar as a file object (`read`) that hashes and counts what it returns."""

    __slots__ = ("_dec", "_hash", "_max", "_raw", "compression", "size")

    def __init__(self, stream: BinaryIO, *, max_size: int | None = None) -> None:
        self._raw = _Raw(stream)
        self.compression = sniff(self._raw.head)
        self._dec: _Plain | _Gzip | _Zstd
        if self.compression == "gzip":
            self._dec = _Gzip(self._raw)
        elif self.compression == "zstd":
            self._dec = _Zstd(self._raw)
        else:
            self._dec = _Plain(self._raw)
        self._hash = hashlib.sha256()
        self._max = max_size
        self.size = 0

    @property
    def compressed_size(self) -> int:
        return self._raw.count

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def read(self, n: int = -1) -> bytes:
        data = self._dec.read(n if n > 0 else _RAW_CHUNK)
        if data:
            self.size += len(data)
            if self._max is not None and self.size > self._max:
                raise StorageError(
                    f"the uncompressed layer is larger than the limit of {self._max} bytes "
                    "(a decompression bomb?)"
                )
            self._hash.update(data)
        return data

    def drain(self) -> None:
        """Read (and hash) everything left, up to the end of the compressed stream."""
        while self.read(1 << 20):
            pass
