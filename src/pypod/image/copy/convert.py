"""Media types across formats: which manifest type to write, and layer types within it."""

from __future__ import annotations

from pypod.errors import InvalidArgument
from pypod.oci.image_spec import (
    DOCKER_CONFIG,
    DOCKER_FOREIGN_LAYER,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_NONDIST,
    OCI_LAYER_NONDIST_GZIP,
    OCI_LAYER_NONDIST_ZSTD,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
)

DOCKER_LAYER_UNCOMPRESSED = "application/vnd.docker.image.rootfs.diff.tar"
FORMATS = {"oci": OCI_MANIFEST, "v2s2": DOCKER_MANIFEST}
_LIST_OF = {OCI_MANIFEST: OCI_INDEX, DOCKER_MANIFEST: DOCKER_MANIFEST_LIST}
_SINGLE_OF = {OCI_INDEX: OCI_MANIFEST, DOCKER_MANIFEST_LIST: DOCKER_MANIFEST}


def manifest_type_for(source_type: str, requested: str | None, supported: tuple[str, ...]) -> str:
    """The single-image manifest type to write: `requested` ("oci", "v2s2"), else the
    source's when the destination takes it, else the destination's first choice."""
    if requested is not None:
        if requested not in FORMATS:
            raise InvalidArgument(f'unknown format "{requested}". Choose one of the supported '
                                  'formats: "oci", "v2s2", or "v2s1"')  # fmt: skip
        wanted = FORMATS[requested]
        if supported and wanted not in supported:
            raise InvalidArgument(
                f"the destination does not accept {wanted} manifests (it takes "
                f"{', '.join(supported)})"
            )
        return wanted
    if not supported or source_type in supported:
        return source_type
    for candidate in supported:
        if candidate in (OCI_MANIFEST, DOCKER_MANIFEST):
            return candidate
    raise InvalidArgument(f"the destination accepts none of {OCI_MANIFEST}, {DOCKER_MANIFEST}")


def list_type_for(single_type: str) -> str:
    return _LIST_OF.get(single_type, OCI_INDEX)


def single_type_of(list_type: str) -> str:
    return _SINGLE_OF.get(list_type, OCI_MANIFEST)


def config_type_for(manifest_type: str) -> str:
    return DOCKER_CONFIG if manifest_type == DOCKER_MANIFEST else OCI_CONFIG


def _nondistributable(media_type: str) -> bool:
    return "nondistributable" in media_type or media_type == DOCKER_FOREIGN_LAYER


def layer_type_for(manifest_type: str, source_type: str, compression: str) -> str:
    """The media type of a layer compressed with `compression` in a `manifest_type` manifest."""
    foreign = _nondistributable(source_type)
    if manifest_type == DOCKER_MANIFEST:
        if compression == "zstd":
            raise InvalidArgument("zstd-compressed layers cannot be stored in a Docker schema 2 "
                                  "manifest; use --format oci or gzip")  # fmt: skip
        if foreign:
            return DOCKER_FOREIGN_LAYER
        return DOCKER_LAYER if compression == "gzip" else DOCKER_LAYER_UNCOMPRESSED
    if foreign:
        return {"gzip": OCI_LAYER_NONDIST_GZIP, "zstd": OCI_LAYER_NONDIST_ZSTD}.get(
            compression, OCI_LAYER_NONDIST
        )
    return {"gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}.get(compression, OCI_LAYER)


def wanted_compression(
    current: str, desired: str, requested: str | None, manifest_type: str
) -> str:
    """The compression a layer must have at the destination.

    `desired` is the destination's wish ("preserve", "compress", "decompress"), `requested` the
    copy's (--dest-compress-format)."""
    if desired == "decompress":
        return "none"
    wanted = current
    if requested is not None:
        wanted = requested
    elif desired == "compress" and current == "none":
        wanted = "gzip"
    if manifest_type == DOCKER_MANIFEST and wanted == "zstd":
        wanted = "gzip"
    return wanted
