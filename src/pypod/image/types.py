"""What every transport provides: references, sources and destinations (as containers/image).

A transport (`docker`, `oci`, `oci-archive`, `docker-archive`, `dir`, `containers-storage`)
parses the part of `transport:reference` after its name into an ImageReference.  A reference
opens an ImageSource (read a manifest and blobs) and/or an ImageDestination (write them, in
this order: blobs -> manifest -> commit).  The one copy pipeline (`pypod.image.copy`) drives
any source into any destination and never names a concrete transport.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import BinaryIO, Protocol

from pypod.oci.digest import Digest
from pypod.record import field, record


@record
class SystemContext:
    """Settings of one side of a copy (podman/skopeo flags and config files)."""

    #: None: as registries.conf says (secure unless `insecure = true` there)
    tls_verify: bool | None = None
    #: auth.json to read credentials from (None: podman's search order)
    authfile: str | None = None
    #: "user:password" given on the command line (--creds)
    credentials: str | None = None
    registries_conf: str | None = None
    certs_dir: str | None = None
    #: platform to choose from an index (None: the host's)
    os: str | None = None
    arch: str | None = None
    variant: str | None = None
    #: local storage (containers-storage transport)
    graphroot: str | None = None
    runroot: str | None = None
    storage_driver: str | None = None
    tmpdir: str | None = None
    retries: int = 3
    environ: Mapping[str, str] = field(default_factory=dict)


@record
class BlobInfo:
    """A blob as a manifest names it."""

    digest: Digest
    size: int = -1  # -1: unknown
    media_type: str = ""
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)


class ImageReference(Protocol):
    @property
    def transport_name(self) -> str: ...

    def string_within_transport(self) -> str:
        """The part after `transport:` (what `str()` of the full name repeats)."""
        ...

    def new_source(self, ctx: SystemContext) -> ImageSource: ...

    def new_destination(self, ctx: SystemContext) -> ImageDestination: ...

    def delete(self, ctx: SystemContext) -> None:
        """Remove the image (skopeo delete); NotSupported where the transport cannot."""
        ...


class ImageSource(Protocol):
    """Read side; use as a context manager (close releases connections, files, locks)."""

    @property
    def reference(self) -> ImageReference: ...

    def get_manifest(self, instance_digest: Digest | None = None) -> tuple[bytes, str]:
        """(raw manifest bytes, media type); `instance_digest` picks one from an index."""
        ...

    def get_blob(self, info: BlobInfo) -> tuple[BinaryIO, int]:
        """A stream of the blob as stored (compressed layers stay compressed) and its size.

        The stream verifies the digest: reading it to the end raises DigestMismatch if the
        content is not what `info.digest` names."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> ImageSource: ...

    def __exit__(self, *exc: object) -> None: ...


class ImageDestination(Protocol):
    """Write side; use as a context manager. Nothing is visible before `commit`."""

    @property
    def reference(self) -> ImageReference: ...

    def supported_manifest_types(self) -> tuple[str, ...]:
        """Media types it can store, preferred first; empty: any."""
        ...

    def desired_layer_compression(self) -> str:
        """ "preserve", "compress" (gzip unless the copy says zstd) or "decompress"."""
        ...

    def try_reusing_blob(self, info: BlobInfo) -> BlobInfo | None:
        """The blob if the destination has it already (or could mount it): then it is not sent."""
        ...

    def put_blob(self, stream: BinaryIO, info: BlobInfo, *, is_config: bool) -> BlobInfo:
        """Store a blob; verifies `info.digest` when known and returns the stored digest/size."""
        ...

    def put_manifest(self, manifest: bytes, media_type: str, instance_digest: Digest | None = None
                     ) -> None:  # fmt: skip
        """The image's manifest (or, with `instance_digest`, one manifest of an index)."""
        ...

    def commit(self) -> None:
        """Make the image visible (tag it, write index.json, register it in local storage)."""
        ...

    def close(self) -> None:
        """Without commit: discard what was written."""
        ...

    def __enter__(self) -> ImageDestination: ...

    def __exit__(self, *exc: object) -> None: ...


class Transport(Protocol):
    @property
    def name(self) -> str: ...

    def parse_reference(self, reference: str) -> ImageReference:
        """Parse what follows `name:`; InvalidArgument naming the problem otherwise."""
        ...
