"""What a copy is asked to do, and what it reports while it runs."""

from __future__ import annotations

from collections.abc import Callable

from pypod.image.types import SystemContext
from pypod.record import field, record


@record
class ProgressEvent:
    """One step of a copy; `message` is podman's/skopeo's line for it.

    kinds: "start", "blob", "blob-skipped", "config", "manifest", "list-item", "manifest-list",
    "signatures"."""

    kind: str
    message: str
    digest: str = ""


@record
class CopyOptions:
    src_ctx: SystemContext = field(default_factory=SystemContext)
    dst_ctx: SystemContext = field(default_factory=SystemContext)
    #: copy every image of an index (else: the one for the wanted platform)
    all_images: bool = False
    #: None: what the destination takes (the source's format when it can); "oci" or "v2s2"
    manifest_format: str | None = None
    #: None: as the destination prefers; "gzip" or "zstd": compress layers so
    dest_compression: str | None = None
    #: refuse any change that would change a digest (format or compression conversions)
    preserve_digests: bool = False
    progress: Callable[[ProgressEvent], None] | None = None
    #: write the digest of the manifest written to this file
    digest_file: str | None = None
    #: parallel blob copies
    max_parallel: int = 4
