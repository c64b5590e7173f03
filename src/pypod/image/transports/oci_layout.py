"""`oci:PATH[:REF]`: an OCI image layout directory (image-spec's image-layout.md).

``oci-layout``, ``index.json`` naming images with ``org.opencontainers.image.ref.name``
annotations, and ``blobs/<algorithm>/<hex>``.  Blobs are content-addressed and written under
temporary names then renamed once verified, so adding them never disturbs an image already in
the layout; ``index.json`` is replaced atomically at commit: a copy that fails leaves the
previous layout as readable as it was.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from typing import Any, BinaryIO

from pypod.atomic import write_atomic
from pypod.errors import InvalidArgument, NotFound, from_oserror
from pypod.image.transports._common import (
    DestinationBase,
    SourceBase,
    verified,
    write_blob,
)
from pypod.image.types import BlobInfo, ImageDestination, ImageSource, SystemContext
from pypod.oci.digest import Digest, algorithm_of, digest_bytes, encoded_of, is_digest
from pypod.oci.image_spec import (
    ANNOTATION_REF_NAME,
    MANIFEST_LIST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    detect_manifest_type,
)

LAYOUT_FILE = "oci-layout"
LAYOUT_VERSION = b'{"imageLayoutVersion": "1.0.0"}'
_REF_RE = r"[A-Za-z0-9._:/@+-]*"


def split_path_and_image(reference: str) -> tuple[str, str]:
    """``PATH[:REF]`` split at the first colon, as containers/image does on Linux."""
    path, _, image = reference.partition(":")
    return path, image


class LayoutReference:
    """`PATH[:IMAGE]`: what the oci and oci-archive references share."""

    __slots__ = ("image", "path")
    #: the transport's name; each subclass sets it
    TRANSPORT = ""

    def __init__(self, path: str, image: str) -> None:
        self.path = path
        self.image = image

    @property
    def transport_name(self) -> str:
        return self.TRANSPORT

    def string_within_transport(self) -> str:
        return f"{self.path}:{self.image}" if self.image else self.path

    def __repr__(self) -> str:
        return f"{self.TRANSPORT}:{self.string_within_transport()}"


class OCIReference(LayoutReference):
    __slots__ = ()
    TRANSPORT = "oci"

    def new_source(self, ctx: SystemContext) -> ImageSource:
        return OCILayoutSource(self.path, self.image, self)

    def new_destination(self, ctx: SystemContext) -> ImageDestination:
        return OCILayoutDestination(self.path, self.image, self)

    def delete(self, ctx: SystemContext) -> None:
        delete_image(self.path, self.image)


def parse_layout_reference(reference: str, transport: str) -> tuple[str, str]:
    path, image = split_path_and_image(reference)
    if not path:
        raise InvalidArgument(f"{transport}: a layout path is required")
    if not re.fullmatch(_REF_RE, image, re.ASCII):
        raise InvalidArgument(f'Invalid image {image}: must match "{_REF_RE}"')
    return path, image


def blob_path(layout: str, digest: Digest) -> str:
    return os.path.join(layout, "blobs", algorithm_of(digest), encoded_of(digest))


def read_index(layout: str) -> dict[str, Any]:
    path = os.path.join(layout, "index.json")
    try:
        with open(path, "rb") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise NotFound(f"open {path}: no such file or directory") from None
    except OSError as e:
        raise from_oserror(f"reading {path}", e) from None
    except ValueError as e:
        raise InvalidArgument(f"{path}: not valid JSON: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("manifests") or [], list):
        raise InvalidArgument(f"{path}: not an OCI image index")
    return doc


def _manifests(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in doc.get("manifests") or [] if isinstance(m, dict)]


def _ref_name(desc: dict[str, Any]) -> str | None:
    annotations = desc.get("annotations")
    if isinstance(annotations, dict):
        name = annotations.get(ANNOTATION_REF_NAME)
        return name if isinstance(name, str) else None
    return None


def find_descriptor(layout: str, image: str) -> dict[str, Any]:
    """The index.json entry for `image` (the only entry when `image` is empty)."""
    entries = _manifests(read_index(layout))
    if not image:
        if len(entries) != 1:
            if not entries:
                raise NotFound(f"no image in the OCI layout {layout}")
            raise InvalidArgument(f"more than one image in oci, choose an image (oci:{layout}:REF)")
        return entries[0]
    for desc in entries:
        if _ref_name(desc) == image:
            return desc
    raise NotFound(f'no descriptor found for reference "{image}"')


def image_names(layout: str) -> list[str]:
    """The names (ref.name annotations) of the images in a layout, in index order."""
    return [n for n in (_ref_name(d) for d in _manifests(read_index(layout))) if n]


class OCILayoutSource(SourceBase):
    def __init__(self, layout: str, image: str, ref: Any) -> None:
        self._layout = layout
        self._ref = ref
        desc = find_descriptor(layout, image)
        digest = desc.get("digest")
        if not isinstance(digest, str) or not is_digest(digest):
            raise InvalidArgument(f"{layout}/index.json: invalid digest {digest!r}")
        self._top = Digest(digest)
        self._top_type = str(desc.get("mediaType") or "")

    @property
    def reference(self) -> Any:
        return self._ref

    def get_manifest(self, instance_digest: Digest | None = None) -> tuple[bytes, str]:
        digest = instance_digest or self._top
        path = blob_path(self._layout, digest)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise from_oserror(f"reading manifest {digest} in {self._layout}", e) from None
        if digest_bytes(data, algorithm_of(digest)) != digest:
            raise InvalidArgument(f"manifest {digest} in {self._layout} is corrupt: refused")
        declared = self._top_type if instance_digest is None else None
        try:
            return data, detect_manifest_type(data, declared)
        except InvalidArgument as e:
            raise InvalidArgument(f"manifest {digest} in {self._layout}: {e}") from None

    def get_blob(self, info: BlobInfo) -> tuple[BinaryIO, int]:
        path = blob_path(self._layout, info.digest)
        try:
            f = open(path, "rb")  # noqa: SIM115 - the caller closes the stream
        except OSError as e:
            raise from_oserror(f"reading blob {info.digest} in {self._layout}", e) from None
        size = os.fstat(f.fileno()).st_size
        return verified(f, info, f"blob {info.digest} in oci:{self._layout}"), size


class OCILayoutDestination(DestinationBase):
    def __init__(self, layout: str, image: str, ref: Any) -> None:
        self._layout = layout
        self._image = image
        self._ref = ref
        self._top: dict[str, Any] | None = None
        try:
            os.makedirs(os.path.join(layout, "blobs"), exist_ok=True)
            if not os.path.exists(os.path.join(layout, LAYOUT_FILE)):
                write_atomic(os.path.join(layout, LAYOUT_FILE), LAYOUT_VERSION)
        except OSError as e:
            raise from_oserror(f"creating the OCI layout {layout}", e) from None

    @property
    def reference(self) -> Any:
        return self._ref

    def supported_manifest_types(self) -> tuple[str, ...]:
        return (OCI_MANIFEST, OCI_INDEX)

    def desired_layer_compression(self) -> str:
        return "compress"  # as containers/image: uncompressed layers get gzip

    def try_reusing_blob(self, info: BlobInfo) -> BlobInfo | None:
        if not info.digest:
            return None
        try:
            size = os.stat(blob_path(self._layout, info.digest)).st_size
        except OSError:
            return None
        if info.size >= 0 and size != info.size:
            return None
        return BlobInfo(digest=info.digest, size=size, media_type=info.media_type)

    def _blob_dir(self, algorithm: str) -> str:
        d = os.path.join(self._layout, "blobs", algorithm)
        os.makedirs(d, exist_ok=True)
        return d

    def put_blob(self, stream: BinaryIO, info: BlobInfo, *, is_config: bool) -> BlobInfo:
        directory = self._blob_dir(algorithm_of(info.digest) if info.digest else "sha256")
        return write_blob(stream, directory, lambda d: blob_path(self._layout, d), info)

    def put_manifest(
        self, manifest: bytes, media_type: str, instance_digest: Digest | None = None
    ) -> None:
        digest = instance_digest or digest_bytes(manifest)
        path = blob_path(self._layout, digest)
        self._blob_dir(algorithm_of(digest))
        write_atomic(path, manifest)
        if instance_digest is None:
            self._top = {"mediaType": media_type, "digest": digest, "size": len(manifest)}

    def commit(self) -> None:
        if self._top is None:
            raise NotFound(f"oci:{self._layout}: no manifest was written")
        with _locked(self._layout):
            self._commit_index()

    def _commit_index(self) -> None:
        assert self._top is not None
        try:
            doc = read_index(self._layout)
        except NotFound:
            doc = {}
        entries = []
        for desc in _manifests(doc):
            name = _ref_name(desc)
            if self._image and name == self._image:
                continue
            if not self._image and name is None and desc.get("digest") == self._top["digest"]:
                continue
            entries.append(desc)
        top = dict(self._top)
        if self._image:
            top["annotations"] = {ANNOTATION_REF_NAME: self._image}
        entries.append(top)
        out = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        for key, value in doc.items():
            if key not in out:
                out[key] = value
        write_atomic(os.path.join(self._layout, "index.json"), json.dumps(out).encode())


@contextlib.contextmanager
def _locked(layout: str) -> Iterator[None]:
    """index.json's read-modify-write under an exclusive flock of the layout directory (two
    copies into one layout at once both land; no lock file is added to the layout)."""
    fd = os.open(layout, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _referenced(layout: str, entries: list[dict[str, Any]]) -> set[str]:
    """Every blob digest reachable from `entries` (manifests, indexes, configs, layers)."""
    seen: set[str] = set()
    todo = [e for e in entries if isinstance(e.get("digest"), str)]
    while todo:
        desc = todo.pop()
        digest = desc["digest"]
        if digest in seen or not is_digest(digest):
            continue
        seen.add(digest)
        media_type = desc.get("mediaType") or ""
        if media_type in (*MANIFEST_LIST_TYPES, OCI_MANIFEST) or media_type.endswith(
            "manifest.v2+json"
        ):
            try:
                with open(blob_path(layout, Digest(digest)), "rb") as f:
                    doc = json.load(f)
            except (OSError, ValueError):
                continue
            children = list(doc.get("manifests") or []) + list(doc.get("layers") or [])
            if isinstance(doc.get("config"), dict):
                children.append(doc["config"])
            todo += [c for c in children if isinstance(c, dict)]
    return seen


def delete_image(layout: str, image: str) -> None:
    """Remove `image` from index.json, then the blobs no other image uses."""
    with _locked(layout):
        _delete_locked(layout, image)


def _delete_locked(layout: str, image: str) -> None:
    desc = find_descriptor(layout, image)
    doc = read_index(layout)
    entries = [d for d in _manifests(doc) if d is not desc and d != desc]
    doc["manifests"] = entries
    write_atomic(os.path.join(layout, "index.json"), json.dumps(doc).encode())
    keep = _referenced(layout, entries)
    blobs = os.path.join(layout, "blobs")
    for algorithm in os.listdir(blobs):
        for name in os.listdir(os.path.join(blobs, algorithm)):
            if f"{algorithm}:{name}" not in keep:
                os.unlink(os.path.join(blobs, algorithm, name))


class OCILayoutTransport:
    @property
    def name(self) -> str:
        return "oci"

    def parse_reference(self, reference: str) -> OCIReference:
        path, image = parse_layout_reference(reference, "oci")
        return OCIReference(path, image)


TRANSPORT = OCILayoutTransport()
