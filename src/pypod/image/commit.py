"""Storing a committed image: what `pypod commit` and the builder both end with.

The image is given as its config, the (digest, size) of each of its layers, bottom first, and
the tar of the last one when it is new (the others are already in the store, found by chain
id; with no new layer every layer is).  It goes into the store through the containers-storage
destination, as every other image arrives; the manifest names each layer by its diff id
(layers are kept uncompressed), as buildah writes it.  Formats: "oci" or "docker" (Docker's
schema 2 media types).  Manifest annotations are written in an OCI manifest (keys sorted, as
Go writes a map) and dropped from a Docker one, which has no place for them (as buildah).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, BinaryIO

from pypod.image.transports.containers_storage import StoreLocation

__all__ = ["DOCKER_LAYER_TAR", "store_image"]

DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"


def store_image(
    location: StoreLocation,
    stored_name: str | None,
    config: bytes,
    layers: Sequence[tuple[str, int]],
    new_layer: BinaryIO | None,
    *,
    format: str = "oci",
    progress: Callable[[str], None] | None = None,
    tmpdir: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> str:
    """Store the image (named `stored_name`, if any); its ID.  `new_layer` is the tar of the
    last of `layers` (None: no new layer, every layer is in the store already).  Progress
    lines as podman prints them ("Copying blob ...") go to `progress`."""
    from pypod.image.reference import parse_normalized
    from pypod.image.transports.containers_storage import StorageReference
    from pypod.image.types import BlobInfo, SystemContext
    from pypod.oci import image_spec as spec
    from pypod.oci.digest import Digest, digest_bytes

    docker = format == "docker"
    layer_type = DOCKER_LAYER_TAR if docker else spec.OCI_LAYER
    config_digest = digest_bytes(config)
    manifest_doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": spec.DOCKER_MANIFEST if docker else spec.OCI_MANIFEST,
        "config": {
            "mediaType": spec.DOCKER_CONFIG if docker else spec.OCI_CONFIG,
            "digest": config_digest,
            "size": len(config),
        },
        "layers": [{"mediaType": layer_type, "digest": d, "size": s} for d, s in layers],
    }
    if annotations and not docker:
        manifest_doc["annotations"] = dict(sorted(annotations.items()))
    manifest = json.dumps(manifest_doc, separators=(",", ":")).encode()
    media_type = str(manifest_doc["mediaType"])
    ctx = SystemContext(graphroot=location.graphroot, runroot=location.runroot,
                        storage_driver=location.driver, tmpdir=tmpdir)  # fmt: skip
    ref = StorageReference(
        name=parse_normalized(stored_name) if stored_name else None, location=location
    )
    say = progress or (lambda _line: None)
    with ref.new_destination(ctx) as dst:
        say("Getting image source signatures")
        for digest, _size in layers:
            say(f"Copying blob {digest}")
        if new_layer is not None:
            new_digest, new_size = layers[-1]
            dst.put_blob(new_layer, BlobInfo(digest=Digest(new_digest), size=new_size),
                         is_config=False)  # fmt: skip
        say(f"Copying config {config_digest}")
        dst.put_blob(io.BytesIO(config), BlobInfo(digest=Digest(config_digest), size=len(config)),
                     is_config=True)  # fmt: skip
        say("Writing manifest to image destination")
        dst.put_manifest(manifest, media_type)
        dst.commit()
        say("Storing signatures")
    return config_digest.partition(":")[2]
