"""The `containers-storage:` transport: images in pypod's own store (`pypod.storage`).

Reference syntax, loosely as containers/image's storage transport:

    containers-storage:[DRIVER@GRAPHROOT+RUNROOT:OPTIONS]NAME
    containers-storage:NAME[@DIGEST]     a name (busybox: docker.io/library/busybox:latest)
    containers-storage:@ID | ID          an image id (64 hex digits)

The store comes from the bracketed prefix, else from the SystemContext (graphroot, runroot,
storage_driver), else pypod's defaults (/var/lib/pypod, /run/pypod).

Destination: blobs are staged to temporary files (the copy may send them in any order and in
parallel); `commit` applies the layers bottom-up with `Store.put_layer`, checking each against
the config's `rootfs.diff_ids`, reusing a layer already stored under the same chain id, then
stores the image with its name.  Layers it created are removed again when the commit fails.

Source: the store keeps layer contents, not the blobs they came from.  Each layer's tar is
rebuilt byte for byte from the layout recorded when it was stored (`<graphroot>/tar-split/`,
as containers/storage's tar-split) and its files, so its diff id and the image's config and id
stay the same; a layer with no usable record is exported anew (`storage.archive.export`) and a
config naming the new diff ids is served.  The manifest served names the tars uncompressed
(containers/image's storage source does the same through LayerInfosForCopy); the stored
manifest is served unchanged when it names exactly those blobs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
from typing import Any, BinaryIO

from pypod.atomic import replacing
from pypod.errors import (
    ImageNotFound,
    InvalidArgument,
    LayerNotFound,
    NotSupported,
    PypodError,
)
from pypod.image.reference import Reference, parse_normalized
from pypod.image.transports._common import DestinationBase
from pypod.image.types import BlobInfo, ImageDestination, ImageSource, SystemContext
from pypod.log import get_logger
from pypod.oci import image_spec as spec
from pypod.oci.digest import Digest, Digester, digest_bytes, parse_digest, verify_digest
from pypod.record import record
from pypod.storage.records import Image, Layer
from pypod.storage.store import Store, chain_id

log = get_logger(__name__)

TRANSPORT_NAME = "containers-storage"
DEFAULT_GRAPHROOT = "/var/lib/pypod"
DEFAULT_RUNROOT = "/run/pypod"
DEFAULT_TMPDIR = "/var/tmp"
#: Docker's media type of an uncompressed layer (schema 2)
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"

_ID = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20

__all__ = [
    "TRANSPORT_NAME",
    "Image",
    "StorageReference",
    "StorageTransport",
    "Store",
    "default_store_location",
    "open_store",
    "parse_storage_reference",
    "sweep_tar_split",
]


@record
class StoreLocation:
    graphroot: str
    runroot: str
    driver: str | None = None


def default_store_location(ctx: SystemContext | None = None) -> StoreLocation:
    """Where the store is: the SystemContext's settings, else pypod's defaults."""
    ctx = ctx or SystemContext()
    return StoreLocation(
        graphroot=ctx.graphroot or DEFAULT_GRAPHROOT,
        runroot=ctx.runroot or DEFAULT_RUNROOT,
        driver=ctx.storage_driver,
    )


def open_store(location: StoreLocation) -> Store:
    if location.driver:
        return Store.open(location.graphroot, location.runroot, location.driver)
    return Store.open(location.graphroot, location.runroot)


@record
class StorageReference:
    """An image in a store: by name (a normalised docker reference) and/or by id."""

    name: Reference | None = None
    image_id: str | None = None
    #: the bracketed store spec; None: the SystemContext's store
    location: StoreLocation | None = None

    @property
    def transport_name(self) -> str:
        return TRANSPORT_NAME

    def string_within_transport(self) -> str:
        out = ""
        if self.location is not None:
            loc = self.location
            driver = f"{loc.driver}@" if loc.driver else ""
            out = f"[{driver}{loc.graphroot}+{loc.runroot}]"
        if self.name is not None:
            out += str(self.name)
            if self.image_id is not None:
                out += "@" + self.image_id
        elif self.image_id is not None:
            out += "@" + self.image_id
        return out

    def __str__(self) -> str:
        return f"{TRANSPORT_NAME}:{self.string_within_transport()}"

    def store_location(self, ctx: SystemContext) -> StoreLocation:
        return self.location or default_store_location(ctx)

    def resolve(self, store: Store) -> Image:
        """The stored image this reference names; ImageNotFound otherwise."""
        if self.image_id is not None:
            found = store.image(self.image_id)
            if self.name is None or str(self.name) in found.names:
                return found
        if self.name is not None:
            ref = self.name
            candidates = [str(ref)]
            if ref.digest is not None:
                candidates.append(f"{ref.name}@{ref.digest}")
            for candidate in candidates:
                try:
                    return store.image(candidate)
                except ImageNotFound:
                    pass
            if ref.digest is not None:
                for img in store.images():
                    if ref.digest in img.digests and any(
                        n.split("@")[0].rpartition(":")[0] == ref.name or n.startswith(ref.name)
                        for n in img.names
                    ):
                        return img
        raise ImageNotFound(f"{self.string_within_transport()}: image not known")

    def new_source(self, ctx: SystemContext) -> ImageSource:
        return StorageSource(self, ctx)

    def new_destination(self, ctx: SystemContext) -> ImageDestination:
        """Writes the image under this reference's name (none: an image with no name)."""
        return StorageDestination(self, ctx)

    def delete(self, ctx: SystemContext) -> None:
        with open_store(self.store_location(ctx)) as store:
            store.delete_image(self.resolve(store).id)
            sweep_tar_split(store)


def parse_storage_reference(text: str) -> StorageReference:
    """Parse what follows `containers-storage:`."""
    location: StoreLocation | None = None
    rest = text
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise InvalidArgument(f"{TRANSPORT_NAME}:{text}: missing ']' after the store spec")
        location = _parse_location(rest[1:end], text)
        rest = rest[end + 1 :]
    if not rest:
        if location is None:
            raise InvalidArgument(f"{TRANSPORT_NAME}: an image name or id is needed")
        return StorageReference(location=location)
    if rest.startswith("@"):
        if not _ID.fullmatch(rest[1:]):
            raise InvalidArgument(f"{TRANSPORT_NAME}:{text}: {rest[1:]!r} is not an image id")
        return StorageReference(image_id=rest[1:], location=location)
    if _ID.fullmatch(rest):
        return StorageReference(image_id=rest, location=location)
    image_id: str | None = None
    name_part, at, tail = rest.rpartition("@")
    if at and _ID.fullmatch(tail):
        rest, image_id = name_part, tail
    ref = parse_normalized(rest).with_default_tag()
    return StorageReference(name=ref, image_id=image_id, location=location)


def _parse_location(inner: str, text: str) -> StoreLocation:
    driver = None
    if "@" in inner:
        driver, _, inner = inner.partition("@")
    inner = inner.split(":", 1)[0]  # ":OPTIONS" are not used
    graphroot, plus, runroot = inner.partition("+")
    if not graphroot.startswith("/") or (plus and not runroot.startswith("/")):
        raise InvalidArgument(
            f"{TRANSPORT_NAME}:{text}: the store spec is [DRIVER@GRAPHROOT+RUNROOT] with "
            "absolute paths"
        )
    if not plus:
        runroot = DEFAULT_RUNROOT
    return StoreLocation(graphroot=graphroot, runroot=runroot, driver=driver or None)


class StorageTransport:
    @property
    def name(self) -> str:
        return TRANSPORT_NAME

    def parse_reference(self, reference: str) -> StorageReference:
        return parse_storage_reference(reference)


TRANSPORT = StorageTransport()


# --- destination --------------------------------------------------------------------------
class StorageDestination(DestinationBase):
    def __init__(self, ref: StorageReference, ctx: SystemContext) -> None:
        self._ref = ref
        self._store = open_store(ref.store_location(ctx))
        tmp = ctx.tmpdir or DEFAULT_TMPDIR
        os.makedirs(tmp, exist_ok=True)
        self._staging = tempfile.mkdtemp(prefix="pypod-storage-", dir=tmp)
        self._lock = threading.Lock()
        self._blobs: dict[str, str] = {}  # digest -> staged file
        self._manifest: tuple[bytes, str] | None = None
        self._lists: list[bytes] = []
        self._committed = False
        self.image: Image | None = None

    @property
    def reference(self) -> StorageReference:
        return self._ref

    def try_reusing_blob(self, info: BlobInfo) -> BlobInfo | None:
        if not info.digest:
            return None
        with self._lock:
            if info.digest in self._blobs:
                return info
        for layer in self._store.layers_by_compressed_digest(info.digest):
            return BlobInfo(digest=info.digest, size=layer.compressed_size or info.size,
                            media_type=info.media_type)  # fmt: skip
        for layer in self._store.layers_by_diff_id(info.digest):
            return BlobInfo(digest=info.digest, size=layer.uncompressed_size or info.size,
                            media_type=info.media_type)  # fmt: skip
        return None

    def put_blob(self, stream: BinaryIO, info: BlobInfo, *, is_config: bool) -> BlobInfo:
        fd, path = tempfile.mkstemp(dir=self._staging, suffix=".blob")
        digester = Digester.for_digest(info.digest) if info.digest else Digester()
        try:
            with os.fdopen(fd, "wb") as out:
                while True:
                    chunk = stream.read(_CHUNK)
                    if not chunk:
                        break
                    digester.update(chunk)
                    out.write(chunk)
            actual = digester.digest()
            if info.digest:
                verify_digest(info.digest, actual, what=f"blob {info.digest}")
            if info.size >= 0 and digester.size != info.size:
                raise InvalidArgument(
                    f"blob {actual}: {digester.size} bytes where {info.size} were announced; "
                    "it was not stored"
                )
        except BaseException:
            os.unlink(path)
            raise
        with self._lock:
            self._blobs[actual] = path
        return BlobInfo(digest=actual, size=digester.size, media_type=info.media_type)

    def put_manifest(
        self, manifest: bytes, media_type: str, instance_digest: Digest | None = None
    ) -> None:
        media_type = spec.detect_manifest_type(manifest, media_type or None)
        if media_type in (spec.OCI_INDEX, spec.DOCKER_MANIFEST_LIST):
            self._lists.append(manifest)
        elif self._manifest is None or instance_digest is None:
            self._manifest = (manifest, media_type)

    def commit(self) -> None:
        if self._manifest is None:
            raise InvalidArgument(f"{self._ref}: no image manifest was written; nothing to commit")
        manifest, media_type = self._manifest
        doc = _json(manifest, "manifest")
        if media_type not in (spec.OCI_MANIFEST, spec.DOCKER_MANIFEST):
            raise NotSupported(
                f"{self._ref}: cannot store a {media_type} manifest; convert it to an OCI or "
                "Docker schema 2 manifest (--format oci)"
            )
        config_digest = parse_digest(doc["config"]["digest"])
        config = self._config_blob(config_digest)
        diff_ids = _diff_ids(config)
        layers = doc.get("layers") or []
        if len(layers) != len(diff_ids):
            raise InvalidArgument(
                f"the manifest lists {len(layers)} layers but the config {len(diff_ids)} diff "
                "ids; the image was not stored"
            )
        created: list[str] = []
        try:
            parent: str | None = None
            for desc, diff_id in zip(layers, diff_ids, strict=True):
                parent = self._layer(parent, desc["digest"], diff_id, created)
            names = [_stored_name(self._ref.name)] if self._ref.name is not None else []
            image = self._store.put_image(config, manifest, media_type, parent, names)
            for blob in self._lists:
                image = self._store.put_image(config, blob, spec.detect_manifest_type(blob),
                                              parent, names)  # fmt: skip
        except BaseException:
            for layer_id in reversed(created):
                try:
                    self._store.delete_layer(layer_id)
                except PypodError as e:
                    log.warning("cannot remove layer %s of a failed commit: %s", layer_id, e)
            raise
        self.image = image
        self._committed = True

    def _config_blob(self, digest: str) -> bytes:
        path = self._blobs.get(digest)
        if path is None:
            for img in self._store.images():
                if img.config_digest == digest:
                    return self._store.image_blob(img.id, digest)
            raise InvalidArgument(f"the config blob {digest} was not written; nothing stored")
        with open(path, "rb") as f:
            return f.read()

    def _layer(self, parent: str | None, digest: str, diff_id: str, created: list[str]) -> str:
        """Store one layer over `parent` (or find it stored); its chain id."""
        want = chain_id(parent, diff_id)
        try:
            return self._store.layer(want).id
        except LayerNotFound:
            pass
        path = self._blobs.get(digest) or self._blobs.get(diff_id)
        if path is None:
            path = self._export_known(digest, diff_id)
        # the tar's layout is recorded while the layer is applied (both read the blob)
        recorded: list[bool] = []
        recorder = threading.Thread(target=self._record, args=(want, path, recorded))
        recorder.start()
        try:
            with open(path, "rb") as f:
                layer = self._store.put_layer(parent, f, diff_id=diff_id)
        except BaseException:
            recorder.join()
            if recorded:
                _remove_tar_split(self._store, want)
            raise
        recorder.join()
        created.append(layer.id)
        return layer.id

    def _record(self, layer_id: str, path: str, recorded: list[bool]) -> None:
        try:
            write_tar_split(self._store, layer_id, path)
            recorded.append(True)
        except (OSError, PypodError) as e:  # without it, a push rewrites the layer
            log.warning("cannot record the tar layout of layer %s: %s", layer_id, e)

    def _export_known(self, digest: str, diff_id: str) -> str:
        """The content of a layer stored elsewhere in the store (reused blob, other parent)."""
        found = self._store.layers_by_diff_id(diff_id) or self._store.layers_by_compressed_digest(
            digest
        )
        if not found:
            raise InvalidArgument(f"layer {digest} was neither written nor stored; nothing stored")
        path = os.path.join(self._staging, f"export-{found[0].id}.tar")
        with open(path, "wb") as out:
            _export_layer(self._store, found[0], out)
        return path

    def close(self) -> None:
        shutil.rmtree(self._staging, ignore_errors=True)
        self._store.close()

    def __enter__(self) -> StorageDestination:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stored_name(ref: Reference) -> str:
    """The name an image is stored under: `repo:tag`, or `repo@digest` without a tag."""
    if ref.tag is not None:
        return f"{ref.name}:{ref.tag}"
    return str(ref)


def _json(blob: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(blob)
    except ValueError as e:
        raise InvalidArgument(f"malformed {what}: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"malformed {what}: not a JSON object")
    return doc


def _diff_ids(config: bytes) -> list[str]:
    doc = _json(config, "image config")
    rootfs = doc.get("rootfs")
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise InvalidArgument("malformed image config: rootfs.diff_ids is not a list of digests")
    for i in ids:
        parse_digest(i)
    return ids


def _export_layer(store: Store, layer: Layer, out: BinaryIO) -> str:
    """Write the layer's tar to `out`; its diff id.  The tar it was stored from when its
    layout was recorded (`write_tar_split`) and the files rebuild it exactly, else a new tar
    of the layer's files (reproducible, `storage.archive.export`)."""
    if layer.diff_id is not None and _rebuild_tar(store, layer, out) == layer.diff_id:
        return layer.diff_id
    from pypod.storage.archive.export import export_changes

    out.seek(0)
    out.truncate()
    changes = store.driver.changes(layer.id, layer.parent)
    return export_changes(store.driver.diff_path(layer.id), changes, out).diff_id


# --- tar-split: a layer's tar rebuilt byte for byte from its files -------------------------
# As containers/storage keeps `<layer>.tar-split.gz`: the bytes of the tar that are not file
# content (headers, padding, the end blocks) and, in between, which file's content follows.
# Rebuilt from the layer's directory, the tar has the layer's diff id again, so a pushed image
# keeps its config and image id.  The record is named by the chain id, which fixes the diff id
# and so the tar bytes: a record left by a removed layer is still right if the layer returns.
_TAR_SPLIT_DIR = "tar-split"


def _tar_split_path(store: Store, layer_id: str) -> str:
    return os.path.join(store.graphroot, _TAR_SPLIT_DIR, f"{layer_id}.gz")


def sweep_tar_split(store: Store) -> None:
    """Remove the recorded tar layouts of layers no longer stored (after rmi, prune)."""
    directory = os.path.join(store.graphroot, _TAR_SPLIT_DIR)
    try:
        names = os.listdir(directory)
    except OSError:
        return
    known = {layer.id for layer in store.layers()}
    for name in names:
        if name.endswith(".gz") and name[:-3] not in known:
            _remove_tar_split(store, name[:-3])


def _remove_tar_split(store: Store, layer_id: str) -> None:
    try:
        os.unlink(_tar_split_path(store, layer_id))
    except OSError:
        pass


def write_tar_split(store: Store, layer_id: str, blob_path: str) -> None:
    """Record the layout of the layer tar (plain, gzip or zstd) at `blob_path`."""
    import gzip

    from pypod.storage.archive.stream import TarStream

    with open(blob_path, "rb") as f:
        entries, raw = _scan_tar(TarStream(f))
    directory = os.path.join(store.graphroot, _TAR_SPLIT_DIR)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    final = _tar_split_path(store, layer_id)
    with replacing(final, sync=False) as tmp, gzip.open(tmp, "wb", compresslevel=1) as out:
        out.write(json.dumps({"version": 1, "entries": entries}).encode() + b"\n")
        out.write(raw)


def _read_exact(stream: Any, n: int) -> bytes:
    parts: list[bytes] = []
    while n > 0:
        data = stream.read(min(n, _CHUNK))
        if not data:
            raise InvalidArgument("truncated layer tar")
        parts.append(data)
        n -= len(data)
    return b"".join(parts)


def _tar_number(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:  # base-256 (GNU)
        return int.from_bytes(field[1:], "big")
    text = field.rstrip(b"\0 ").lstrip(b" ")
    return int(text, 8) if text else 0


def _pax_records(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    i = 0
    while i < len(data):
        space = data.find(b" ", i)
        if space < 0 or not data[i:space].isdigit():
            break
        length = int(data[i:space])
        if length <= 0:
            break
        key, _, value = data[space + 1 : i + length - 1].partition(b"=")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        i += length
    return out


def _scan_tar(stream: Any) -> tuple[list[tuple[int, str | None, int]], bytes]:
    """[(raw bytes, file name, content bytes)] and the raw bytes: everything of the tar but
    the content of regular files, which is read and dropped."""
    entries: list[tuple[int, str | None, int]] = []
    raw = bytearray()
    start = 0
    long_name: str | None = None
    pax: dict[str, str] = {}
    while True:
        block = stream.read(512)
        if not block:
            break
        if len(block) < 512:
            block += _read_exact(stream, 512 - len(block))
        raw += block
        if block == bytes(512):  # end of archive: the rest is raw as it is
            while data := stream.read(_CHUNK):
                raw += data
            break
        kind = block[156:157]
        size = _tar_number(block[124:136])
        if "size" in pax and kind not in (b"x", b"g"):
            size = int(pax["size"])
        padded = (size + 511) // 512 * 512
        if kind in (b"x", b"g", b"L", b"K"):
            data = _read_exact(stream, padded)
            raw += data
            if kind == b"x":
                pax.update(_pax_records(data[:size]))
            elif kind == b"L":
                long_name = data[:size].rstrip(b"\0").decode("utf-8", "surrogateescape")
            continue
        if kind == b"S":
            raise NotSupported("sparse files in a layer tar: its layout is not recorded")
        name = block[:100].rstrip(b"\0").decode("utf-8", "surrogateescape")
        if block[257:263] == b"ustar\0" and block[345:500].strip(b"\0"):
            prefix = block[345:500].rstrip(b"\0").decode("utf-8", "surrogateescape")
            name = f"{prefix}/{name}"
        name = pax.get("path") or long_name or name
        pax, long_name = {}, None
        if kind in (b"0", b"\0", b"7") and size > 0:
            entries.append((len(raw) - start, name, size))
            left = size
            while left > 0:
                data = stream.read(min(left, _CHUNK))
                if not data:
                    raise InvalidArgument("truncated layer tar")
                left -= len(data)
            start = len(raw)
            raw += _read_exact(stream, padded - size)
        elif padded:
            raw += _read_exact(stream, padded)
    entries.append((len(raw) - start, None, 0))
    return entries, bytes(raw)


def _open_below(root: str, rel: str) -> int:
    """A file below `root` opened without following any symlink (layer content is untrusted)."""
    parts = [p for p in rel.split("/") if p]
    if not parts:
        raise IsADirectoryError(root)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                          dir_fd=fd)  # fmt: skip
            os.close(fd)
            fd = nfd
        return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)


def _rebuild_tar(store: Store, layer: Layer, out: BinaryIO) -> str | None:
    """Write the layer's original tar from its recorded layout and its files; the digest of
    what was written, None when there is no record or a file is missing."""
    import gzip
    import hashlib

    from pypod.storage.archive import clean_path

    try:
        with gzip.open(_tar_split_path(store, layer.id), "rb") as f:
            index = json.loads(f.readline())
            raw = f.read()
    except (OSError, ValueError, EOFError):
        return None
    root = store.driver.diff_path(layer.id)
    digest = hashlib.sha256()
    pos = 0
    try:
        for raw_len, name, size in index["entries"]:
            chunk = raw[pos : pos + raw_len]
            pos += raw_len
            out.write(chunk)
            digest.update(chunk)
            if name is None:
                continue
            rel = clean_path(name)
            if rel is None:
                return None
            fd = _open_below(root, rel)
            with os.fdopen(fd, "rb") as content:
                left = size
                while left > 0:
                    data = content.read(min(left, _CHUNK))
                    if not data:
                        return None
                    out.write(data)
                    digest.update(data)
                    left -= len(data)
    except (OSError, KeyError, TypeError, ValueError):
        return None
    return "sha256:" + digest.hexdigest()


# --- source -------------------------------------------------------------------------------
class StorageSource:
    def __init__(self, ref: StorageReference, ctx: SystemContext) -> None:
        self._ref = ref
        self._store = open_store(ref.store_location(ctx))
        try:
            self.image = ref.resolve(self._store)
        except BaseException:
            self._store.close()
            raise
        self._tmp_root = ctx.tmpdir or DEFAULT_TMPDIR
        self._staging: str | None = None
        self._blobs: dict[str, str] = {}  # digest -> exported layer file
        self._config: tuple[str, bytes] | None = None
        self._manifest: tuple[bytes, str] | None = None
        self._lock = threading.Lock()

    @property
    def reference(self) -> StorageReference:
        return self._ref

    def get_manifest(self, instance_digest: Digest | None = None) -> tuple[bytes, str]:
        img = self.image
        if instance_digest is not None and instance_digest != img.digest:
            if instance_digest not in img.digests:
                raise ImageNotFound(f"{self._ref}: no manifest {instance_digest}")
            blob = self._store.image_blob(img.id, instance_digest)
            return blob, spec.detect_manifest_type(blob)
        with self._lock:
            if self._manifest is None:
                self._manifest = self._build_manifest()
            return self._manifest

    def _build_manifest(self) -> tuple[bytes, str]:
        img = self.image
        stored, media_type = self._store.image_manifest(img.id)
        config = self._store.image_blob(img.id, img.config_digest)
        chain = list(reversed(self._store.chain(img.top_layer)))
        os.makedirs(self._tmp_root, exist_ok=True)
        self._staging = tempfile.mkdtemp(prefix="pypod-storage-src-", dir=self._tmp_root)
        exported: list[tuple[str, str, int]] = []  # (diff id, digest, size)
        for layer in chain:
            path = os.path.join(self._staging, f"{layer.id}.tar")
            with open(path, "wb") as out:
                diff_id = _export_layer(self._store, layer, out)
            self._blobs[diff_id] = path
            exported.append((diff_id, diff_id, os.path.getsize(path)))
        doc = _json(stored, "stored manifest")
        same_ids = [e[0] for e in exported] == [layer.diff_id for layer in chain]
        listed = [d.get("digest") for d in doc.get("layers") or []]
        if same_ids and listed == [e[1] for e in exported]:
            self._config = (img.config_digest, config)
            return stored, media_type
        if not same_ids:
            cdoc = _json(config, "stored config")
            cdoc.setdefault("rootfs", {"type": "layers"})["diff_ids"] = [e[0] for e in exported]
            config = json.dumps(cdoc, separators=(",", ":")).encode()
        config_digest = digest_bytes(config)
        self._config = (config_digest, config)
        docker = media_type == spec.DOCKER_MANIFEST
        out_type = spec.DOCKER_MANIFEST if docker else spec.OCI_MANIFEST
        manifest: dict[str, Any] = {"schemaVersion": 2, "mediaType": out_type}
        manifest["config"] = {
            "mediaType": spec.DOCKER_CONFIG if docker else spec.OCI_CONFIG,
            "digest": config_digest,
            "size": len(config),
        }
        manifest["layers"] = [
            {"mediaType": DOCKER_LAYER_TAR if docker else spec.OCI_LAYER, "digest": d, "size": s}
            for _, d, s in exported
        ]
        if not docker and isinstance(doc.get("annotations"), dict):
            manifest["annotations"] = doc["annotations"]
        return json.dumps(manifest, indent=3).encode(), out_type

    def get_blob(self, info: BlobInfo) -> tuple[BinaryIO, int]:
        self.get_manifest()
        assert self._config is not None
        if info.digest == self._config[0]:
            import io

            return io.BytesIO(self._config[1]), len(self._config[1])
        path = self._blobs.get(info.digest)
        if path is None:
            raise ImageNotFound(f"{self._ref}: the image has no blob {info.digest}")
        return open(path, "rb"), os.path.getsize(path)  # noqa: SIM115 (the caller closes it)

    def close(self) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
        self._store.close()

    def __enter__(self) -> StorageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
