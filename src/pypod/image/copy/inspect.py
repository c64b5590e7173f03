"""What `pypod-image inspect` shows of an image where it lies (skopeo inspect's document)."""

from __future__ import annotations

import json
import re
from typing import Any

from pypod.errors import InvalidArgument
from pypod.image.types import BlobInfo, ImageReference, ImageSource, SystemContext
from pypod.oci.digest import Digest
from pypod.oci.image_spec import (
    DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
    MANIFEST_LIST_TYPES,
    choose_platform,
    manifest_digest,
    parse_index,
    parse_manifest,
)
from pypod.record import record

__all__ = ["Inspection", "inspect_image", "manifest_digest"]


@record
class Inspection:
    raw_manifest: bytes
    manifest_type: str
    #: the manifest of the image chosen for this platform (the same as raw when not an index)
    image_manifest: bytes
    raw_config: bytes
    document: dict[str, Any]


def _go_time(value: str) -> str | None:
    """An RFC 3339 time as Go's time.Time marshals it (RFC3339Nano, zeros trimmed)."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", value)
    if m is None:
        return value or None
    frac = (m.group(2) or "")[:9].rstrip("0")
    zone = "Z" if m.group(3) in ("Z", "+00:00") else m.group(3)
    return f"{m.group(1)}{'.' + frac if frac else ''}{zone}"


def _read_config(source: ImageSource, manifest: bytes) -> tuple[bytes, Any]:
    m = parse_manifest(manifest)
    stream, _ = source.get_blob(
        BlobInfo(digest=m.config.digest, size=m.config.size, media_type=m.config.media_type)
    )
    with stream:
        data = b""
        while chunk := stream.read(1 << 16):
            data += chunk
    return data, m


def inspect_image(
    ref: ImageReference,
    ctx: SystemContext,
    *,
    repo_tags: list[str] | None = None,
    name: str | None = None,
) -> Inspection:
    """Read `ref`'s manifest and config and build skopeo inspect's document."""
    with ref.new_source(ctx) as source:
        raw, media_type = source.get_manifest()
        image_raw = raw
        image_type = media_type
        if media_type in MANIFEST_LIST_TYPES:
            chosen = choose_platform(parse_index(raw), ctx.os, ctx.arch, ctx.variant)
            image_raw, image_type = source.get_manifest(Digest(chosen.digest))
        if image_type in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED):
            return _inspect_schema1(raw, media_type, image_raw, repo_tags, name)
        config_raw, manifest = _read_config(source, image_raw)
    config = json.loads(config_raw)
    if not isinstance(config, dict):
        raise InvalidArgument("the image configuration is not a JSON object")
    inner = config.get("config") or {}
    doc: dict[str, Any] = {}
    if name:
        doc["Name"] = name
    doc["Digest"] = manifest_digest(raw)
    doc["RepoTags"] = repo_tags or []
    created = _go_time(str(config.get("created") or ""))
    if created:
        doc["Created"] = created
    doc["DockerVersion"] = str(config.get("docker_version") or "")
    doc["Labels"] = inner.get("Labels") or None
    doc["Architecture"] = str(config.get("architecture") or "")
    if config.get("variant"):
        doc["Variant"] = config["variant"]
    doc["Os"] = str(config.get("os") or "")
    doc["Layers"] = [d.digest for d in manifest.layers]
    doc["LayersData"] = [
        {"MIMEType": d.media_type, "Digest": d.digest, "Size": d.size,
         "Annotations": dict(d.annotations) or None}
        for d in manifest.layers
    ]  # fmt: skip
    doc["Env"] = inner.get("Env") or None
    return Inspection(
        raw_manifest=raw,
        manifest_type=media_type,
        image_manifest=image_raw,
        raw_config=config_raw,
        document=doc,
    )


def _inspect_schema1(
    raw: bytes, media_type: str, image_raw: bytes, repo_tags: list[str] | None, name: str | None
) -> Inspection:
    """skopeo inspect of a Docker schema 1 image: what its manifest says.  It has no config
    blob; --config shows the OCI configuration a copy would write, with empty diff IDs (only
    the layers' contents give them), as skopeo does."""
    from pypod.image.copy.schema1 import (
        inspect_document,
        oci_config,
        read_schema1,
        schema1_layer_infos,
    )

    m = read_schema1(image_raw)
    fields = inspect_document(m)
    doc: dict[str, Any] = {}
    if name:
        doc["Name"] = name
    if "Tag" in fields:
        doc["Tag"] = fields.pop("Tag")
    doc["Digest"] = manifest_digest(raw)
    doc["RepoTags"] = repo_tags or []
    doc.update(fields)
    return Inspection(
        raw_manifest=raw,
        manifest_type=media_type,
        image_manifest=image_raw,
        raw_config=oci_config(m, [""] * sum(not e for _, e in schema1_layer_infos(m))),
        document=doc,
    )
