"""What the store hands out: frozen records of layers, images and containers."""

from __future__ import annotations

from pypod.record import record


@record
class Layer:
    #: 64 hex digits: the chain id (without "sha256:") for an image layer, random for a
    #: container's read-write layer
    id: str
    parent: str | None
    #: "sha256:..." of the uncompressed tar; None for a container's layer
    diff_id: str | None
    #: digest and size of the blob as it was given (equal to diff_id / size when uncompressed)
    compressed_digest: str | None
    compressed_size: int | None
    #: bytes of the uncompressed tar
    uncompressed_size: int | None
    #: seconds since the epoch
    created: float


@record
class StagedLayer:
    """A layer applied but not stored yet (`Store.stage_layer`): no parent, no chain id."""

    #: random: the chain id comes with the parent, at `Store.commit_staged`
    id: str
    diff_id: str
    compressed_digest: str
    compressed_size: int
    uncompressed_size: int


@record
class Image:
    #: 64 hex digits: the digest of the config blob
    id: str
    names: tuple[str, ...]
    #: "sha256:..." of the manifest stored first (the one `digest` of podman)
    digest: str
    #: every manifest digest this image was stored under (a manifest list's entry, a
    #: converted manifest ...), first one first
    digests: tuple[str, ...]
    manifest_media_type: str
    config_digest: str
    top_layer: str | None
    created: float


@record
class Container:
    id: str
    names: tuple[str, ...]
    #: "" for a container of no image (a `from scratch` working container)
    image_id: str
    #: the container's own read-write layer, on top of the image's top layer
    layer_id: str
    #: opaque to the store (the engine's JSON)
    metadata: str
    created: float


@record
class StoragePaths:
    graphroot: str
    runroot: str
    driver: str
    #: `<graphroot>/<driver>`: layer directories
    driver_home: str
    #: `<graphroot>/storage.db`
    database: str
    #: `<graphroot>/images`: manifest and config blobs, `<id>/<algorithm>-<hex>`
    images: str


@record
class ImageUsage:
    id: str
    names: tuple[str, ...]
    #: uncompressed bytes of all its layers
    size: int
    #: uncompressed bytes of the layers no other image uses
    unique_size: int
    #: bytes shared with other images
    shared_size: int
    containers: int


@record
class DiskUsage:
    images: tuple[ImageUsage, ...]
    #: uncompressed bytes of every image layer, each counted once
    layers_size: int
    #: container id -> bytes in its read-write layer
    containers: tuple[tuple[str, int], ...]
