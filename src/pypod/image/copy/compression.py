"""Layer (de)compression on the fly: streams that read a blob and give it transformed.

The source stream is always read to its end (so its digest check runs) before the
transformed stream reports EOF.
"""

from __future__ import annotations

import zlib
from typing import Any, BinaryIO

from pypod.errors import InvalidArgument
from pypod.storage.archive.stream import TarStream, sniff

CHUNK = 1 << 20
GZIP_LEVEL = 6
ZSTD_LEVEL = 3


class Peeked:
    """A stream whose first bytes were read to recognise its compression, put back."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        head = b""
        while len(head) < 8:
            more = stream.read(8 - len(head))
            if not more:
                break
            head += more
        self.head = head
        self._pending = head

    @property
    def compression(self) -> str:
        return sniff(self.head)

    def read(self, n: int = -1) -> bytes:
        if self._pending:
            if n < 0 or n > len(self._pending):
                data, self._pending = self._pending, b""
                return data + self._stream.read(n - len(data) if n > 0 else -1)
            data, self._pending = self._pending[:n], self._pending[n:]
            return data
        return self._stream.read(n)

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    def close(self) -> None:
        self._stream.close()


class _Decompressed:
    def __init__(self, source: Peeked) -> None:
        self._source = source
        self._tar = TarStream(source)  # type: ignore[arg-type]

    def read(self, n: int = -1) -> bytes:
        data = self._tar.read(n if n > 0 else CHUNK)
        if not data:
            self._source.drain()
        return data


class _Compressed:
    def __init__(self, source: Any, algorithm: str) -> None:
        self._source = source
        self._done = False
        self._out = b""
        if algorithm == "gzip":
            self._c: Any = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        elif algorithm == "zstd":
            import zstandard

            self._c = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()
        else:
            raise InvalidArgument(f"unknown compression {algorithm!r}: use gzip or zstd")

    def read(self, n: int = -1) -> bytes:
        want = n if n > 0 else CHUNK
        while len(self._out) < want and not self._done:
            data = self._source.read(CHUNK)
            if data:
                self._out += self._c.compress(data)
            else:
                self._out += self._c.flush()
                self._done = True
        out, self._out = self._out[:want], self._out[want:]
        return out


def transform(source: Peeked, current: str, wanted: str) -> BinaryIO:
    """`source` (compressed with `current`: "none", "gzip", "zstd") as `wanted`."""
    stream: Any = source
    if current != "none":
        stream = _Decompressed(source)
    if wanted != "none":
        stream = _Compressed(stream, wanted)
    result: BinaryIO = stream
    return result


def compression_of_media_type(media_type: str) -> str | None:
    """What a layer media type says of its compression; None when it says nothing."""
    if media_type.endswith(("+gzip", ".tar.gzip")):
        return "gzip"
    if media_type.endswith("+zstd"):
        return "zstd"
    if media_type.endswith((".tar", "layer.v1.tar")):
        return "none"
    return None
