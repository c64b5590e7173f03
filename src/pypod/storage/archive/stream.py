"""The uncompressed bytes of a layer blob: sniffed, decompressed, hashed and counted, read once.

A layer blob is a tar, plain or compressed with gzip or zstd; the compression is recognised by
its magic bytes, not by a media type, as containers/storage does.  The diff ID is the SHA-256 of
the uncompressed tar, trailing bytes after the end-of-archive blocks included.

Decompression keeps memory bounded whatever the ratio (a "bomb" expands chunk by chunk), and a
truncated compressed stream is an error, never a short tar taken as complete.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import zlib
from typing import Any, BinaryIO, Protocol

from pypod.errors import StorageError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: zstd skippable frames (0x184D2A50..5F, little-endian): zstd:chunked starts some layers so
_ZSTD_SKIPPABLE = tuple(bytes([0x50 + i, 0x2A, 0x4D, 0x18]) for i in range(16))
XZ_MAGIC = b"\xfd7zXZ\x00"
BZIP2_MAGIC = b"BZh"

#: how much compressed input is read at a time
_RAW_CHUNK = 256 * 1024
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


def _inflate_module() -> Any:
    """zlib, or ISA-L's drop-in (the `isal` package) when it is installed: it inflates about
    twice as fast, and gzip inflation is most of a pull's user time.  Both check the gzip
    trailer (CRC and length) and release the GIL while they work."""
    import importlib

    try:
        return importlib.import_module("isal.isal_zlib")
    except ImportError:
        return zlib


def preload(head: bytes, *, save_layout: bool) -> None:
    """Import now what reading a blob that starts with `head` imports on first use (its
    decompressor; the layout writer with `save_layout`), and set up sha256: a child forked
    to apply it must import nothing (`archive.child`)."""
    import hashlib

    hashlib.sha256()  # OpenSSL fetches (and caches) the algorithm on first use, under a lock
    _inflate_module()
    if head.startswith(ZSTD_MAGIC) or head[:4] in _ZSTD_SKIPPABLE:
        try:
            import zstandard  # noqa: F401
        except ImportError:  # pragma: no cover - a declared dependency
            pass
    if save_layout:
        import gzip  # noqa: F401
        import json  # noqa: F401

        import pypod.atomic
        import pypod.storage.tarsplit  # noqa: F401


class _Gzip:
    """gzip, several members in a row (pigz, concatenated blobs), zero padding at the end."""

    __slots__ = ("_d", "_in", "_mod", "_raw")

    def __init__(self, raw: _Raw) -> None:
        self._raw = raw
        self._mod = _inflate_module()
        self._d = self._mod.decompressobj(16 + zlib.MAX_WBITS)
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
                self._d = self._mod.decompressobj(16 + zlib.MAX_WBITS)
                self._in = rest
            if not self._in:
                self._in = self._raw.read(_RAW_CHUNK)
                if not self._in:
                    raise StorageError("the gzip stream is truncated (no end of stream)")
            try:
                out: bytes = self._d.decompress(self._in, n)
            except self._mod.error as e:
                raise StorageError(f"invalid gzip data: {e}") from None
            self._in = self._d.unconsumed_tail
            if out:
                return out


class _Zstd:
    """zstd, any number of frames, skippable frames (zstd:chunked metadata) included."""

    __slots__ = ("_at", "_d", "_in", "_mod", "_out", "_raw")

    def __init__(self, raw: _Raw) -> None:
        try:
            import zstandard
        except ImportError:  # pragma: no cover - a declared dependency
            raise StorageError("zstd layers need the 'zstandard' package") from None
        self._mod: Any = zstandard
        self._raw = raw
        self._d: Any = zstandard.ZstdDecompressor().decompressobj()
        self._in = b""
        self._at = 0  # what of `_in` was given to the decompressor
        self._out = b""

    def read(self, n: int) -> bytes:
        while not self._out:
            if self._d.eof:
                rest = self._d.unused_data + self._in[self._at :]
                if not rest:
                    rest = self._raw.read(_RAW_CHUNK)
                    if not rest:
                        return b""
                self._d = self._mod.ZstdDecompressor().decompressobj()
                self._in, self._at = rest, 0
            if self._at >= len(self._in):
                self._in, self._at = self._raw.read(_RAW_CHUNK), 0
                if not self._in:
                    raise StorageError("the zstd stream is truncated (frame not complete)")
            piece = self._in[self._at : self._at + _ZSTD_SLICE]
            self._at += len(piece)
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


class Chunks(Protocol):
    """Where TarInput takes the uncompressed tar from, a chunk at a time (b"" at the end)."""

    def read(self, n: int = -1) -> bytes: ...


class ReadAhead:
    """A TarStream read by a thread of its own, a few chunks ahead of the consumer: receiving,
    checking and decompressing a blob (zlib, zstd and hashlib release the GIL on big buffers)
    run beside the consumer applying the tar.  An error of the reader is raised by `read`."""

    __slots__ = ("_chunk", "_done", "_queue", "_source", "_stop", "_thread")

    def __init__(self, source: TarStream, *, chunk: int = 1 << 20, depth: int = 4) -> None:
        self._source = source
        self._chunk = chunk
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, name="pypod-layer-read", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                data = self._source.read(self._chunk)
                self._put(data)
                if not data:
                    return
        except BaseException as e:  # handed to the consumer, raised there
            self._put(e)

    def _put(self, item: bytes | BaseException) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def read(self, n: int = -1) -> bytes:
        """The next chunk (whatever its size); b"" at the end of the stream."""
        if self._done:
            return b""
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._done = True
            self._thread.join()
            raise item
        if not item:
            self._done = True
            self._thread.join()
        return item

    def close(self) -> None:
        """Stop the reader (when the consumer gives up early) and wait for it."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()


#: what a LayoutRecorder hands over to another process: (complete, raw, entries, bytes since the
#: last entry, saved, save error)
LayoutState = tuple[bool, bytes, list[tuple[int, str | None, int]], int, bool, str | None]


class LayoutRecorder:
    """The layout of a layer tar as it is read (containers/storage's tar-split): every byte that
    is not the content of a regular file, and which file's content comes where.

    `entries` are (raw bytes, file, content bytes): that many bytes of `raw`, then the content
    of that file (a path relative to the layer root); the last entry has no file.  Recording
    stops (`complete` is False) when the raw bytes pass `limit` (a tar that is mostly headers
    or trailing data); the layer is then exported anew when it is read back.

    With a `path`, the layout is written there (`tarsplit.write_layout`) by whoever applied the
    layer, as soon as it is applied (`save`: in the child process that applied it, beside the
    layers still being applied); the recorded bytes are then dropped, `saved` is True, and
    `save_error` says why it could not be written (the layer is then exported anew when read).
    """

    __slots__ = ("_parts", "_since", "_size", "complete", "entries", "limit", "path", "save_error",
                 "saved")  # fmt: skip

    def __init__(self, *, limit: int = 64 << 20, path: str | None = None) -> None:
        #: the raw bytes, in pieces (a bytearray grown by ~1 KiB at a time is copied again and
        #: again as it grows: measured at a quarter of the time of reading a layer's headers)
        self._parts: list[bytes] = []
        self._size = 0
        self.entries: list[tuple[int, str | None, int]] = []
        self.limit = limit
        self.complete = True
        self._since = 0
        self.path = path
        self.saved = False
        self.save_error: str | None = None

    def add_raw(self, data: bytes | memoryview) -> None:
        if not self.complete:
            return
        if self._size + len(data) > self.limit:
            self.complete = False
            self._parts, self._size = [], 0
            self.entries = []
            return
        self._parts.append(bytes(data))
        self._size += len(data)
        self._since += len(data)

    @property
    def raw(self) -> bytes:
        """Every byte recorded that is not file content, in order."""
        if len(self._parts) > 1:
            self._parts = [b"".join(self._parts)]
        return self._parts[0] if self._parts else b""

    def add_content(self, name: str, size: int) -> None:
        if self.complete:
            self.entries.append((self._since, name, size))
            self._since = 0

    def finish(self) -> list[tuple[int, str | None, int]]:
        """The entries, the trailing raw bytes last."""
        return [*self.entries, (self._since, None, 0)]

    def save(self) -> None:
        """Write a complete layout to `path` (once), then drop what was recorded."""
        if self.path is None or self.saved or not self.complete:
            return
        from pypod.storage.tarsplit import write_layout

        try:
            write_layout(self.path, self)
        except OSError as e:
            self.save_error = f"{self.path}: {e.strerror or e}"
        else:
            self.saved = True
            self._parts, self._size = [], 0
            self.entries = []

    def state(self) -> LayoutState:
        """What was recorded (and saved), to hand over to another process (`load`)."""
        return self.complete, self.raw, self.entries, self._since, self.saved, self.save_error

    def load(self, state: LayoutState) -> None:
        """Take over what another recorder recorded (its `state`)."""
        self.complete, raw, entries, self._since, self.saved, self.save_error = state
        self._parts, self._size = [raw] if raw else [], len(raw)
        self.entries = list(entries)


class TarInput:
    """The uncompressed tar as tarfile reads it (`read`, `tell`, forward `seek`), taken from
    `source` in big chunks, with file contents copied to their files without going through
    Python objects (`copy_to`) and, with a `layout`, the tar's layout recorded in passing.

    Seeking backwards is possible within the current chunk only (tarfile steps back one byte
    to check that data follows an entry); further back is an error, as on a pipe.
    """

    __slots__ = ("_base", "_buf", "_eof", "_layout", "_pos", "_recorded", "_source")

    def __init__(self, source: Chunks, layout: LayoutRecorder | None = None) -> None:
        self._source = source
        self._layout = layout
        self._buf = memoryview(b"")
        self._pos = 0  # in _buf
        self._base = 0  # offset in the tar of _buf[0]
        self._eof = False
        self._recorded = 0  # the layout has every byte before this offset

    def tell(self) -> int:
        return self._base + self._pos

    def _fill(self) -> bool:
        """The next chunk (the current one is used up); False at the end."""
        if self._eof:
            return False
        data = self._source.read(1 << 20)
        if not data:
            self._eof = True
            return False
        self._base += len(self._buf)
        self._buf = memoryview(data)
        self._pos = 0
        return True

    def _note(self, start: int, data: bytes | memoryview) -> None:
        """Bytes read from `start` on are part of the layout (except what it has already)."""
        end = start + len(data)
        if self._layout is not None and end > self._recorded:
            self._layout.add_raw(data[max(0, self._recorded - start) :])
            self._recorded = end

    def read(self, n: int = -1) -> bytes:
        start = self.tell()
        parts: list[memoryview] = []
        left = n if n >= 0 else 1 << 62
        while left > 0:
            avail = len(self._buf) - self._pos
            if avail == 0:
                if not self._fill():
                    break
                continue
            take = min(left, avail)
            parts.append(self._buf[self._pos : self._pos + take])
            self._pos += take
            left -= take
        data = bytes(parts[0]) if len(parts) == 1 else b"".join(parts)
        self._note(start, data)
        return data

    def peek(self, n: int) -> bytes:
        """The next `n` bytes (fewer at the end), left to be read."""
        while len(self._buf) - self._pos < n and not self._eof:
            data = self._source.read(1 << 20)
            if not data:
                self._eof = True
                break
            rest = self._buf[self._pos :]  # joined with the next chunk: one copy a chunk
            self._base += self._pos
            self._buf = memoryview(b"".join((rest, data)))
            self._pos = 0
        return bytes(self._buf[self._pos : self._pos + n])

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence != 0:
            raise OSError("TarInput seeks to absolute offsets only")
        if offset < self._base:
            raise OSError(f"cannot seek back to offset {offset} in a layer stream")
        while offset > self._base + len(self._buf):
            self._skip_chunk()
            if not self._fill():
                return self.tell()  # past the end: the next read gives b""
        start = self.tell()
        if offset > start:
            self._note(start, self._buf[self._pos : offset - self._base])
        self._pos = offset - self._base
        return offset

    def _skip_chunk(self) -> None:
        start = self.tell()
        self._note(start, self._buf[self._pos :])
        self._pos = len(self._buf)

    def copy_to(self, fd: int, offset: int, size: int, name: str) -> None:
        """Write `size` bytes of file content at `offset` to `fd`; the layout names `name`."""
        import os

        self.seek(offset)
        if self._layout is not None and size:
            if self._recorded != offset:
                raise OSError(f"content of {name!r} at offset {offset} was read before")
            self._layout.add_content(name, size)
            self._recorded = offset + size
        left = size
        while left > 0:
            avail = len(self._buf) - self._pos
            if avail == 0:
                if not self._fill():
                    raise EOFError(f"unexpected end of data ({left} bytes missing)")
                continue
            view = self._buf[self._pos : self._pos + min(left, avail)]
            while view:
                written = os.write(fd, view)
                self._pos += written
                left -= written
                view = view[written:]

    def drain(self) -> None:
        """Read (and record) everything left."""
        while True:
            self._skip_chunk()
            if not self._fill():
                return
