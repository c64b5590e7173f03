"""What the file-based transports share: verified blob streams and atomically written files."""

from __future__ import annotations

import contextlib
import io
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, cast

from pypod.atomic import replacing
from pypod.errors import InvalidArgument
from pypod.image.types import BlobInfo
from pypod.oci.digest import (
    Digest,
    Digester,
    DigestMismatch,
    algorithm_of,
    verify_digest,
)

CHUNK = 1 << 20


class VerifyingReader(io.RawIOBase):
    """`raw` read through, hashed and counted; the read that reaches EOF raises DigestMismatch
    instead of returning b"" when digest or size are not the announced ones."""

    def __init__(self, raw: BinaryIO, digest: Digest, size: int, what: str) -> None:
        super().__init__()
        self._raw = raw
        self._digest = digest
        self._size = size
        self._what = what
        self._digester = Digester.for_digest(digest)
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._done:
            return 0
        view = memoryview(buffer).cast("B")
        data = self._raw.read(len(view))
        n = len(data)
        if n == 0:
            self._check()
            self._done = True
            return 0
        view[:n] = data
        self._digester.update(data)
        if 0 <= self._size < self._digester.size:
            self._check()
        return n

    def _check(self) -> None:
        if self._size >= 0 and self._digester.size != self._size:
            raise DigestMismatch(
                f"{self._what}: {self._digester.size} bytes, expected {self._size}: refused",
                expected=str(self._size),
                actual=str(self._digester.size),
            )
        verify_digest(self._digest, self._digester.digest(), what=self._what)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


def verified(raw: BinaryIO, info: BlobInfo, what: str) -> BinaryIO:
    """`raw` wrapped so that reading it to the end checks `info`'s digest and size."""
    return cast(BinaryIO, io.BufferedReader(VerifyingReader(raw, info.digest, info.size, what)))


def write_blob(
    stream: BinaryIO, directory: str, final_path: Callable[[Digest], str], info: BlobInfo
) -> BlobInfo:
    """Copy `stream` into a temporary file of `directory`, check it against `info` (digest
    and size, when known), then rename it to `final_path(digest)`.  Nothing is left behind
    when anything fails."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-blob-")
    try:
        digester = Digester(algorithm_of(info.digest) if info.digest else "sha256")
        with os.fdopen(fd, "wb") as f:
            while chunk := stream.read(CHUNK):
                digester.update(chunk)
                f.write(chunk)
        actual = digester.digest()
        what = f"blob {info.digest or actual}"
        if info.size >= 0 and digester.size != info.size:
            raise DigestMismatch(
                f"{what}: {digester.size} bytes, expected {info.size}: refused",
                expected=str(info.size),
                actual=str(digester.size),
            )
        if info.digest:
            verify_digest(info.digest, actual, what=what)
        os.replace(tmp, final_path(actual))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return BlobInfo(digest=actual, size=digester.size, media_type=info.media_type)


@contextlib.contextmanager
def archive_output(path: str) -> Iterator[BinaryIO]:
    """The file an archive is written to.  A new or regular file is replaced atomically (a
    temporary file renamed over it once complete); anything else is written through as it is:
    a pipe, a terminal, a device, or a symlink such as /dev/stdout (`pypod save > file`), which
    must never be replaced by a file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise InvalidArgument(f"{path} is a directory; give a file name")
    if st is not None and not stat.S_ISREG(st.st_mode):
        with open(path, "wb") as f:
            yield f
        return
    with replacing(os.path.abspath(path), sync=False) as tmp, open(tmp, "wb") as f:
        yield f


class Closing:
    """Context-manager plumbing: `with` closes."""

    def close(self) -> None:
        pass

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SourceBase(Closing):
    """What every ImageSource shares."""


class DestinationBase(Closing):
    """What every ImageDestination shares, with the defaults most of them keep: any manifest
    type, blobs stored as they come."""

    def supported_manifest_types(self) -> tuple[str, ...]:
        return ()

    def desired_layer_compression(self) -> str:
        return "preserve"
