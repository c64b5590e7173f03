"""Reading Docker schema 1 images (never writing them), as containers/image does.

A schema 1 manifest lists its layers top first (``fsLayers``) with, for each, a
``history[].v1Compatibility`` JSON string: that layer's v1 image JSON.  Layers whose
v1Compatibility says ``throwaway`` are empty (the gzipped empty tar) and are not copied.  There
is no config blob: the image configuration is built from the top v1Compatibility, with
``rootfs.diff_ids`` computed from the layers while they are copied (manifest.Schema1's
ToSchema2Config), so a copy always writes Docker schema 2 or OCI.  Signed manifests
(``v1+prettyjws``) are read without verifying their signatures.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Sequence
from typing import Any, BinaryIO

from pypod.errors import InvalidArgument
from pypod.oci.digest import Digest, Digester
from pypod.oci.image_spec import (
    DOCKER_MANIFEST,
    ImageManifest,
    Schema1Manifest,
    config_to_dict,
    manifest_to_dict,
    parse_config,
    parse_schema1,
)
from pypod.record import replace
from pypod.storage.archive.stream import sniff

__all__ = [
    "DiffIDReader",
    "inspect_document",
    "manifest_bytes",
    "oci_config",
    "read_schema1",
    "schema1_layer_infos",
    "schema2_config",
]

_HEX64 = re.compile(r"[a-f0-9]{64}")


def _v1(text: str, where: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise InvalidArgument(f"{where}: a v1Compatibility is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"{where}: a v1Compatibility is not a JSON object")
    return data


def read_schema1(raw: bytes, *, source: str = "manifest") -> Schema1Manifest:
    """Parse a schema 1 manifest (signed or not) and check its layer chain as containers/image
    does (fixManifestLayers): every v1 ID 64 hex digits, each layer's parent the next one's ID,
    the base without parent; consecutive repeats of one ID are dropped (docker did write them)."""
    m = parse_schema1(raw, source=source)
    compat = [_v1(v, source) for v in m.v1_compatibility]
    ids = [str(c.get("id") or "") for c in compat]
    parents = [str(c.get("parent") or "") for c in compat]
    for i in ids:
        if not _HEX64.fullmatch(i):
            raise InvalidArgument(
                f"malformed {source}: v1 image ID {i!r} is invalid (64 hex digits expected)"
            )
    if parents[-1]:
        raise InvalidArgument(f"malformed {source}: the base layer has a parent ID")
    seen: set[str] = set()
    last = ""
    for i in ids:
        if i != last and i in seen:
            raise InvalidArgument(f"malformed {source}: ID {i} appears several times")
        seen.add(i)
        last = i
    layers = list(m.fs_layers)
    history = list(m.v1_compatibility)
    for n in range(len(ids) - 2, -1, -1):
        if ids[n] == ids[n + 1]:
            del layers[n], history[n]
        elif parents[n] != ids[n + 1]:
            raise InvalidArgument(
                f"malformed {source}: invalid parent ID: expected {ids[n + 1]}, got {parents[n]}"
            )
    return replace(m, fs_layers=tuple(layers), v1_compatibility=tuple(history))


def schema1_layer_infos(m: Schema1Manifest) -> list[tuple[Digest, bool]]:
    """All layers base first as (blob digest, empty): the empty ("throwaway") ones included,
    as containers/image's LayerInfos lists them."""
    out = []
    for blob, v1 in zip(reversed(m.fs_layers), reversed(m.v1_compatibility), strict=True):
        out.append((blob, bool(_v1(v1, "manifest").get("throwaway"))))
    return out


# --------------------------------------------------------------------------- Go's JSON

_GO_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)")


def go_time(value: object) -> str:
    """A time as Go's time.Time marshals it (RFC3339Nano, zeros trimmed; zero time when
    missing)."""
    m = _GO_TIME.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        return "0001-01-01T00:00:00Z"
    frac = (m.group(2) or "")[:9].rstrip("0")
    zone = "Z" if m.group(3) in ("Z", "+00:00") else m.group(3)
    return f"{m.group(1)}{'.' + frac if frac else ''}{zone}"


def _go_json(value: object) -> str:
    """Compact JSON with Go's HTML escaping (encoding/json's default)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(ch, esc)
    return text


def schema2_config(m: Schema1Manifest, diff_ids: Sequence[str]) -> bytes:
    """The image configuration containers/image builds for schema 1 image `m` (ToSchema2Config):
    the top v1Compatibility without its v1 chain fields (id, parent, parent_id, layer_id,
    throwaway, Size), with ``rootfs`` (`diff_ids`, base first, empty layers left out) and the
    whole ``history``; top-level keys sorted as Go writes a map."""
    top = _v1(m.v1_compatibility[0], "manifest")
    for key in ("id", "parent", "parent_id", "layer_id", "throwaway", "Size"):
        top.pop(key, None)
    history = []
    for v1 in reversed(m.v1_compatibility):
        compat = _v1(v1, "manifest")
        item: dict[str, Any] = {"created": go_time(compat.get("created"))}
        cmd = (compat.get("container_config") or {}).get("Cmd") or []
        if not isinstance(cmd, list):
            cmd = []
        fields = (  # manifest.Schema2History's order
            ("author", compat.get("author")),
            ("created_by", " ".join(str(c) for c in cmd)),
            ("comment", compat.get("comment")),
        )
        for key, value in fields:
            if value:
                item[key] = str(value)
        if compat.get("throwaway"):
            item["empty_layer"] = True
        history.append(item)
    top["rootfs"] = {"type": "layers", "diff_ids": list(diff_ids)}
    top["history"] = history
    return _go_json({k: top[k] for k in sorted(top)}).encode()


def manifest_bytes(manifest: ImageManifest) -> bytes:
    """`manifest` as containers/image writes it: a Docker schema 2 manifest with its
    descriptors' fields in manifest.Schema2Descriptor's order (mediaType, size, digest, urls);
    an OCI one as :func:`manifest_to_dict` has it."""
    doc = manifest_to_dict(manifest)
    if manifest.media_type == DOCKER_MANIFEST:

        def descriptor(d: dict[str, Any]) -> dict[str, Any]:
            out = {"mediaType": d["mediaType"], "size": d["size"], "digest": d["digest"]}
            if "urls" in d:
                out["urls"] = d["urls"]
            return out

        doc["config"] = descriptor(doc["config"])
        doc["layers"] = [descriptor(d) for d in doc["layers"]]
    return _go_json(doc).encode()


def oci_config(m: Schema1Manifest, diff_ids: Sequence[str]) -> bytes:
    """The OCI configuration containers/image writes when schema 1 image `m` is copied as OCI
    (its schema 2 config through the OCI image struct: the OCI fields in their order, the
    Docker-only ones such as container_config and docker_version left out).  `diff_ids` may be
    empty strings where they are not known (skopeo inspect --config shows them so)."""
    c = parse_config(schema2_config(m, []), source="converted schema 1 config")
    doc = config_to_dict(c)
    if "created" in doc:
        doc["created"] = go_time(doc["created"])
    doc["rootfs"]["diff_ids"] = list(diff_ids)
    return _go_json(doc).encode()


def inspect_document(m: Schema1Manifest) -> dict[str, Any]:
    """The fields skopeo inspect shows of a schema 1 image (manifest.Schema1.Inspect): its tag,
    every layer base first (the empty ones too), no LayersData (sizes are unknown)."""
    top = _v1(m.v1_compatibility[0], "manifest")
    found = top.get("config")
    config: dict[str, Any] = found if isinstance(found, dict) else {}
    infos = schema1_layer_infos(m)
    out: dict[str, Any] = {"Tag": m.tag} if m.tag else {}
    return out | {
        "Created": go_time(top.get("created")),
        "DockerVersion": str(top.get("docker_version") or ""),
        "Labels": config.get("Labels") or None,
        "Architecture": str(top.get("architecture") or ""),
        "Os": str(top.get("os") or ""),
        "Layers": [d for d, _ in infos],
        "Env": config.get("Env") or None,
    }


# --------------------------------------------------------------------------- diff IDs


class DiffIDReader:
    """Reads a layer blob through, decompressing (gzip, zstd or none, recognised from its first
    bytes) and digesting what passes: the layer's diff ID, known once the blob is read to its
    end (:meth:`diff_id`)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._digester = Digester()
        self._head = b""
        self._kind = ""
        self._d: Any = None
        self._open = False  # a compressed member/frame begun and not ended
        self.eof = False

    def _new_decompressor(self) -> Any:
        if self._kind == "gzip":
            return zlib.decompressobj(31)
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj()

    def _feed(self, data: bytes) -> None:
        if not self._kind:
            self._head += data
            if len(self._head) < 8 and data:
                return
            self._kind = sniff(self._head)
            data, self._head = self._head, b""
            if self._kind != "none":
                self._d = self._new_decompressor()
        if self._kind == "none":
            self._digester.update(data)
            return
        while data:
            self._digester.update(self._d.decompress(data))
            self._open = not self._d.eof
            if self._open:
                return
            data = self._d.unused_data  # another gzip member / zstd frame follows
            self._d = self._new_decompressor()

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        if data:
            self._feed(data)
        else:
            self.eof = True
            if not self._kind:
                self._feed(b"")
        return data

    def close(self) -> None:
        self._stream.close()

    def diff_id(self) -> Digest:
        """The digest of the uncompressed layer (the stream is read to its end first)."""
        while not self.eof:
            self.read(1 << 20)
        if self._open:
            raise InvalidArgument(f"layer blob: truncated {self._kind} stream; nothing stored")
        return self._digester.digest()
