"""A client for one registry (the OCI distribution spec), on `http.client` and `ssl` only.

One `RegistryClient` talks to one `host[:port]` (the HTTP side, TLS, auth and retries are in
`session.py`).  Everything a caller receives is checked: manifests fetched by digest must match
it, blobs always match their digest and size (see `blob.py`).  Uploads are monolithic (POST,
PUT) or chunked (POST, PATCH..., PUT), mounts fall back to uploads when declined; tag and
repository lists follow `Link` pagination.

The client is safe to share between threads (a blob stream is not: one reader per stream).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import IO
from urllib.parse import quote, urlencode, urljoin

from pypod.errors import (
    BlobUnknown,
    InvalidArgument,
    ManifestUnknown,
    RegistryError,
    RepositoryUnknown,
)
from pypod.image.registry.blob import BlobReader
from pypod.image.registry.session import (
    RETRY_STATUSES,
    Reply,
    SendReader,
    Session,
    next_link,
    with_query,
)
from pypod.log import get_logger
from pypod.oci.digest import Digest, DigestMismatch, algorithm_of, digest_bytes, parse_digest
from pypod.oci.image_spec import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
    OCI_INDEX,
    OCI_MANIFEST,
    detect_manifest_type,
    schema1_payload,
)
from pypod.record import record

log = get_logger(__name__)

#: what `get_manifest` accepts unless told otherwise
MANIFEST_MEDIA_TYPES = (
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_SCHEMA1_SIGNED,
    DOCKER_SCHEMA1,
)
#: a manifest larger than this is refused (containers/image's limit)
MAX_MANIFEST_SIZE = 4 << 20


@record
class ManifestHead:
    """What a HEAD on a manifest tells: its media type, digest and size."""

    media_type: str
    digest: str
    size: int


def is_digest(ref: str) -> bool:
    """A manifest reference is a digest (else a tag: tags cannot hold ':')."""
    return ":" in ref


class RegistryClient(Session):
    """The distribution API of one registry (`host[:port]`); see the module documentation.

    RegistryClient(registry, *, tls_verify=True, credentials=None, certs_dir=None,
    user_agent=None, retries=3, backoff=1.0, timeout=60.0)
    """

    # -- the API -------------------------------------------------------------------------

    def ping(self) -> None:
        """Check that the registry answers the v2 API and accepts our credentials (`login`)."""
        self._probe()
        self._call("GET", "/v2/", what=f"logging in to {self.registry}", scopes=())

    def _manifest_url(self, repo: str, ref: str) -> str:
        return f"/v2/{quote(repo)}/manifests/{quote(ref, safe=':')}"

    def _blob_url(self, repo: str, digest: str) -> str:
        return f"/v2/{quote(repo)}/blobs/{quote(digest, safe=':')}"

    def get_manifest(
        self, repo: str, ref: str, accept: Sequence[str] | None = None
    ) -> tuple[bytes, str, Digest]:
        """(manifest bytes, media type, digest) of `ref` (a tag or a digest) in `repo`.

        Fetched by digest, the bytes are checked against it; by tag, the digest is computed.
        """
        algorithm = algorithm_of(parse_digest(ref)) if is_digest(ref) else "sha256"
        reply = self._call(
            "GET",
            self._manifest_url(repo, ref),
            what=f"reading manifest {ref} in {self.registry}/{repo}",
            scopes=(f"repository:{repo}:pull",),
            headers={"Accept": ", ".join(accept or MANIFEST_MEDIA_TYPES)},
            read_limit=MAX_MANIFEST_SIZE,
            not_found=ManifestUnknown,
        )
        data = reply.data
        where = f"manifest {ref} in {self.registry}/{repo}"
        try:
            media_type = detect_manifest_type(data, reply.header("Content-Type"))
            # a signed schema 1 manifest is named by the digest of its payload (whether it is
            # signed is read from the content, as containers/image's manifest.Digest does)
            signed = media_type in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED) and (
                detect_manifest_type(data) == DOCKER_SCHEMA1_SIGNED
            )
            digest = digest_bytes(schema1_payload(data) if signed else data, algorithm)
        except InvalidArgument as e:
            raise InvalidArgument(f"{where}: {e}") from None
        if is_digest(ref) and digest != ref:
            raise DigestMismatch(
                f"{where} has digest {digest}: refused", expected=ref, actual=digest
            )
        return data, media_type, digest

    def head_manifest(
        self, repo: str, ref: str, accept: Sequence[str] | None = None
    ) -> ManifestHead | None:
        """Media type, digest and size of `ref` without its body; None when it is not there."""
        reply = self._call(
            "HEAD",
            self._manifest_url(repo, ref),
            what=f"checking manifest {ref} in {self.registry}/{repo}",
            scopes=(f"repository:{repo}:pull",),
            ok=(200, 404),
            headers={"Accept": ", ".join(accept or MANIFEST_MEDIA_TYPES)},
            not_found=ManifestUnknown,
        )
        if reply.status == 404:
            return None
        digest = reply.header("Docker-Content-Digest") or ""
        media_type = (reply.header("Content-Type") or "").split(";")[0].strip()
        size = int(reply.header("Content-Length") or -1)
        if not digest or media_type not in MANIFEST_MEDIA_TYPES:
            data, media_type, digest = self.get_manifest(repo, ref, accept)
            size = len(data)
        elif is_digest(ref) and digest != ref:
            raise DigestMismatch(
                f"manifest {ref} in {self.registry}/{repo}: the registry says {digest}",
                expected=ref,
                actual=digest,
            )
        return ManifestHead(media_type=media_type, digest=digest, size=size)

    def put_manifest(self, repo: str, ref: str, data: bytes, media_type: str) -> Digest:
        """Store a manifest under a tag or its digest; returns its digest."""
        algorithm = algorithm_of(parse_digest(ref)) if is_digest(ref) else "sha256"
        digest = digest_bytes(data, algorithm)
        if is_digest(ref) and digest != ref:
            raise DigestMismatch(
                f"manifest to store as {ref} has digest {digest}", expected=ref, actual=digest
            )
        reply = self._call(
            "PUT",
            self._manifest_url(repo, ref),
            what=f"writing manifest {ref} to {self.registry}/{repo}",
            scopes=(f"repository:{repo}:pull,push",),
            ok=(200, 201, 202),
            headers={"Content-Type": media_type},
            body=data,
        )
        said = reply.header("Docker-Content-Digest")
        if said and said.startswith(algorithm + ":") and said != digest:
            raise RegistryError(
                f"writing manifest {ref} to {self.registry}/{repo}: the registry stored it "
                f"as {said}, not {digest}",
                status=reply.status,
            )
        return digest

    def delete_manifest(self, repo: str, digest: str) -> None:
        """Delete a manifest (and so every tag on it) by digest."""
        parse_digest(digest)
        self._call(
            "DELETE",
            self._manifest_url(repo, digest),
            what=f"deleting manifest {digest} in {self.registry}/{repo}",
            scopes=(f"repository:{repo}:*",),
            ok=(200, 202),
            not_found=ManifestUnknown,
        )

    def blob_exists(self, repo: str, digest: str) -> int | None:
        """The size of a blob in `repo`, or None when it is not there (HEAD)."""
        parse_digest(digest)
        reply = self._call(
            "HEAD",
            self._blob_url(repo, digest),
            what=f"checking blob {digest} in {self.registry}/{repo}",
            scopes=(f"repository:{repo}:pull",),
            ok=(200, 404),
            not_found=BlobUnknown,
        )
        if reply.status == 404:
            return None
        return int(reply.header("Content-Length") or -1)

    def get_blob(self, repo: str, digest: str, size: int = -1) -> BlobReader:
        """A stream of the blob's bytes (read it once, to its end, then close it).

        Redirects are followed; a broken connection is resumed with Range.  The digest (and
        `size` when given, else the announced length) is checked at the end: the read that
        would report EOF raises DigestMismatch instead when they do not match.
        """
        parse_digest(digest)
        reader = BlobReader(self, repo, digest, size, self._blob_url(repo, digest))
        reader.connect()
        return reader

    def _start_upload(self, repo: str, query: Sequence[tuple[str, str]] = (),
                      scopes: tuple[str, ...] = ()) -> Reply:  # fmt: skip
        url = f"/v2/{quote(repo)}/blobs/uploads/"
        if query:
            url += "?" + urlencode(query)
        return self._call(
            "POST",
            url,
            what=f"starting an upload to {self.registry}/{repo}",
            scopes=(f"repository:{repo}:pull,push", *scopes),
            ok=(201, 202),
            not_found=RepositoryUnknown,
        )

    def _location(self, reply: Reply, what: str) -> str:
        location = reply.header("Location")
        if not location:
            raise RegistryError(f"{what}: the registry sent no Location", status=reply.status)
        return urljoin(reply.url, location)

    def _cancel_upload(self, repo: str, location: str) -> None:
        try:
            self._call("DELETE", location, what="cancelling upload", scopes=(
                f"repository:{repo}:pull,push",), ok=(200, 202, 204, 404), retry=False)  # fmt: skip
        except RegistryError as e:
            log.debug("cancelling upload %s: %s", location, e)

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Mount a blob of `from_repo` into `repo`: True when done, False when the caller must
        upload it (the registry declined: 202)."""
        parse_digest(digest)
        reply = self._start_upload(
            repo, (("mount", digest), ("from", from_repo)), (f"repository:{from_repo}:pull",)
        )
        if reply.status == 201:
            return True
        self._cancel_upload(repo, self._location(reply, f"mounting {digest}"))
        return False

    def upload_blob(
        self,
        repo: str,
        stream: IO[bytes],
        digest: str,
        size: int,
        *,
        chunk_size: int | None = None,
    ) -> Digest:
        """Upload `size` bytes of `stream` as blob `digest`: one PUT, or PATCHes of
        `chunk_size` bytes then a PUT.  The bytes sent must match; a seekable stream is
        rewound and the whole upload retried on retriable failures.  Returns the digest."""
        checked = parse_digest(digest)
        algorithm = algorithm_of(checked)
        if size < 0:
            raise InvalidArgument(f"uploading {digest}: size must be known")
        if chunk_size is not None and chunk_size <= 0:
            raise InvalidArgument(f"invalid chunk size {chunk_size}")
        start: int | None = None
        try:
            start = stream.tell() if stream.seekable() else None
        except (OSError, ValueError, AttributeError):
            start = None
        attempt = 0
        while True:
            try:
                self._upload_once(repo, stream, digest, size, algorithm, chunk_size)
                return checked
            except RegistryError as e:
                retriable = e.status in RETRY_STATUSES or e.status == 0
                if start is None or not retriable or attempt >= self.retries:
                    raise
                delay = self._delay(attempt, None)
                log.info("uploading %s: %s; starting again in %.1fs", digest, e, delay)
                time.sleep(delay)
                stream.seek(start)
                attempt += 1

    def _upload_once(
        self,
        repo: str,
        stream: IO[bytes],
        digest: str,
        size: int,
        algorithm: str,
        chunk_size: int | None,
    ) -> None:
        what = f"uploading blob {digest} to {self.registry}/{repo}"
        scopes = (f"repository:{repo}:pull,push",)
        location = self._location(self._start_upload(repo), what)
        source = SendReader(stream, size, algorithm)
        octet = {"Content-Type": "application/octet-stream"}
        if chunk_size is None:
            try:
                reply = self._call(
                    "PUT", with_query(location, [("digest", digest)]), what=what, scopes=scopes,
                    ok=(201, 204), headers={**octet, "Content-Length": str(size)},
                    body=source, not_found=BlobUnknown,
                )  # fmt: skip
            except RegistryError:
                self._check_sent(source, digest, what)
                raise
            self._check_sent(source, digest, what)
            self._check_stored(reply, digest, what)
            return
        offset = 0
        while offset < size:
            data = source.read(min(chunk_size, size - offset))
            reply = self._call(
                "PATCH", location, what=what, scopes=scopes, ok=(202, 204),
                headers={**octet, "Content-Range": f"{offset}-{offset + len(data) - 1}",
                         "Content-Length": str(len(data))},
                body=data, not_found=BlobUnknown, retry=False,
            )  # fmt: skip
            location = self._location(reply, what)
            offset += len(data)
        try:
            self._check_sent(source, digest, what)
        except DigestMismatch:
            self._cancel_upload(repo, location)
            raise
        reply = self._call(
            "PUT", with_query(location, [("digest", digest)]), what=what, scopes=scopes,
            ok=(201, 204), not_found=BlobUnknown,
        )  # fmt: skip
        self._check_stored(reply, digest, what)

    @staticmethod
    def _check_stored(reply: Reply, digest: str, what: str) -> None:
        said = reply.header("Docker-Content-Digest")
        if said and said.partition(":")[0] == digest.partition(":")[0] and said != digest:
            raise RegistryError(
                f"{what}: the registry stored the blob as {said}", status=reply.status
            )

    @staticmethod
    def _check_sent(source: SendReader, digest: str, what: str) -> None:
        if source.left > 0:
            return  # not all sent: the error in flight says why
        actual = f"{source.hash.name}:{source.hash.hexdigest()}"
        if actual != digest:
            raise DigestMismatch(
                f"{what}: the bytes have digest {actual}: refused", expected=digest, actual=actual
            )

    def _paginate(self, path: str, key: str, page_size: int | None, what: str,
                  scopes: tuple[str, ...]) -> list[str]:  # fmt: skip
        url = self._base() + path + (f"?n={page_size}" if page_size else "")
        found: list[str] = []
        seen = set()
        while url not in seen:
            seen.add(url)
            reply = self._call("GET", url, what=what, scopes=scopes,
                               not_found=RepositoryUnknown, read_limit=16 << 20)  # fmt: skip
            try:
                doc = json.loads(reply.data)
                items = doc.get(key) or []
            except (ValueError, UnicodeDecodeError, AttributeError):
                raise RegistryError(f"{what}: the answer is not JSON", status=200) from None
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise RegistryError(f"{what}: `{key}` is not a list of names", status=200)
            found += items
            link = next_link(reply.header("Link"))
            if link is None:
                break
            url = urljoin(reply.url, link)
        return found

    def list_tags(self, repo: str, *, page_size: int | None = None) -> list[str]:
        """Every tag of `repo`, following `Link: <...>; rel="next"` pages."""
        return self._paginate(f"/v2/{quote(repo)}/tags/list", "tags", page_size,
                              f"listing tags of {self.registry}/{repo}",
                              (f"repository:{repo}:pull",))  # fmt: skip

    def catalog(self, *, page_size: int | None = None) -> list[str]:
        """Every repository of the registry (`/v2/_catalog`, paginated)."""
        return self._paginate("/v2/_catalog", "repositories", page_size,
                              f"listing repositories of {self.registry}",
                              ("registry:catalog:*",))  # fmt: skip
