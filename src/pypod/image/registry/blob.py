"""Blob downloads: a stream that resumes after broken connections and checks what it gives.

The digest (and the size: given, or announced by the registry) is checked at the end: the read
that would report EOF raises DigestMismatch instead when they do not match, and a stream that
failed keeps failing, so a caller that reads to EOF without an exception has the right bytes.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import re
import time
from typing import Any

from pypod.errors import BlobUnknown, RegistryError
from pypod.image.registry.session import BLOCK_SIZE, Reply, Session
from pypod.log import get_logger
from pypod.oci.digest import DigestMismatch, algorithm_of, parse_digest

log = get_logger(__name__)


class BlobReader(io.RawIOBase):
    """A blob being downloaded; resumes after broken connections, checks digest and size."""

    def __init__(self, client: Session, repo: str, digest: str, size: int, url: str) -> None:
        super().__init__()
        self.client = client
        self.url = url
        self.repo = repo
        self.digest = digest
        #: the expected size (-1 until the registry announces it, when not given)
        self.size = size
        self.offset = 0
        self._hash = hashlib.new(algorithm_of(parse_digest(digest)))
        self._reply: Reply | None = None
        self._failures = 0
        self._progress_mark = 0
        self._done = False
        self._error: RegistryError | DigestMismatch | None = None
        self._what = f"reading blob {digest} from {client.registry}/{repo}"

    def readable(self) -> bool:
        return True

    def readall(self) -> bytes:
        chunks = []
        while chunk := self.read(BLOCK_SIZE):
            chunks.append(chunk)
        return b"".join(chunks)

    def connect(self) -> None:
        """(Re)open the download from the current offset (`Range` when not at 0)."""
        headers = {"Range": f"bytes={self.offset}-"} if self.offset else {}
        reply = self.client._call(
            "GET",
            self.url,
            what=self._what,
            scopes=(f"repository:{self.repo}:pull",),
            ok=(200, 206),
            headers=headers,
            read_limit=None,
            not_found=BlobUnknown,
        )
        self._reply = reply
        total = -1
        if reply.status == 206:
            m = re.match(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", reply.header("Content-Range") or "")
            if m is None or int(m.group(1)) != self.offset:
                reply.close()
                raise RegistryError(
                    f"{self._what}: asked for bytes from {self.offset}, got "
                    f"{reply.header('Content-Range')!r}",
                    status=206,
                )
            total = int(m.group(3)) if m.group(3) != "*" else -1
        else:
            length = reply.header("Content-Length")
            total = int(length) if length and length.isdigit() else -1
            skip = self.offset  # the registry ignored Range: drop what we already have
            while skip:
                got = reply.resp.read(min(skip, BLOCK_SIZE))
                if not got:
                    raise http.client.IncompleteRead(b"", skip)
                skip -= len(got)
        if self.size < 0:
            self.size = total
        elif total >= 0 and total != self.size:
            reply.close()
            self._reply = None
            raise DigestMismatch(
                f"{self._what}: the registry announces {total} bytes, expected {self.size}",
                expected=str(self.size),
                actual=str(total),
            )

    def readinto(self, buffer: Any) -> int:
        if self._error is not None:
            raise self._error  # a stream that failed never reports EOF
        try:
            return self._readinto(buffer)
        except (RegistryError, DigestMismatch) as e:
            self._error = e
            self._drop()
            raise

    def _readinto(self, buffer: Any) -> int:
        if self._done:
            return 0
        view = memoryview(buffer).cast("B")
        limit = len(view)
        if self.size >= 0:
            limit = min(limit, self.size - self.offset + 1)  # +1: notice extra bytes
        if limit <= 0:
            return 0
        while True:
            try:
                if self._reply is None:
                    self.connect()
                assert self._reply is not None
                resp = self._reply.resp
                n = resp.readinto(view[:limit])
                # http.client reports a connection closed before the announced length as EOF
                if n == 0 and (resp.length or 0 <= self.offset < self.size):
                    missing = resp.length or self.size - self.offset
                    raise http.client.IncompleteRead(b"", missing)
                break
            except (OSError, http.client.HTTPException) as e:
                self._broken(e)
        if n == 0:
            self._finish()
            return 0
        self._hash.update(view[:n])
        self.offset += n
        if self.size >= 0 and self.offset > self.size:
            self._drop()
            raise DigestMismatch(
                f"{self._what}: more than the expected {self.size} bytes: refused",
                expected=str(self.size),
                actual=f">{self.size}",
            )
        return n

    def _broken(self, error: BaseException) -> None:
        self._drop()
        if self.offset > self._progress_mark:
            self._failures = 0
            self._progress_mark = self.offset
        self._failures += 1
        if self._failures > self.client.retries:
            raise RegistryError(
                f"{self._what}: connection broken at byte {self.offset} of {self.size}: "
                f"{error or type(error).__name__} (after {self._failures} attempts)"
            ) from None
        delay = self.client._delay(self._failures - 1, None)
        log.info("%s: connection broken at byte %d (%s); resuming in %.1fs", self._what,
                 self.offset, error, delay)  # fmt: skip
        time.sleep(delay)

    def _finish(self) -> None:
        if self._reply is not None:
            self._reply.release()
            self._reply = None
        actual = f"{self._hash.name}:{self._hash.hexdigest()}"
        if self.size >= 0 and self.offset != self.size:
            raise DigestMismatch(
                f"{self._what}: got {self.offset} bytes, expected {self.size}: refused",
                expected=str(self.size),
                actual=str(self.offset),
            )
        if actual != self.digest:
            raise DigestMismatch(
                f"{self._what}: the bytes have digest {actual}: refused",
                expected=self.digest,
                actual=actual,
            )
        self._done = True

    def _drop(self) -> None:
        if self._reply is not None:
            self._reply.close()
            self._reply = None

    def close(self) -> None:
        if not self.closed:
            self._drop()
        super().close()
