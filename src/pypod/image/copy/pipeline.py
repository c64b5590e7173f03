"""The one copy engine: any ImageSource into any ImageDestination.

Order (as containers/image's copy.Image): manifest -> (index: one platform or, with
all_images, every instance) -> for each image: layers in parallel, then config, then its
manifest -> the index -> commit.  Each blob is read once and streamed; (de)compressed only when
the destination or the manifest format needs it; skipped when the destination has it.  Blob
digests are verified by the sources' streams and again by the destinations.
"""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pypod.errors import InvalidArgument, NotSupported
from pypod.image.copy.compression import Peeked, compression_of_media_type, transform
from pypod.image.copy.convert import (
    config_type_for,
    layer_type_for,
    list_type_for,
    manifest_type_for,
    wanted_compression,
)
from pypod.image.copy.options import CopyOptions, ProgressEvent
from pypod.image.copy.schema1 import (
    DiffIDReader,
    manifest_bytes,
    oci_config,
    read_schema1,
    schema1_layer_infos,
    schema2_config,
)
from pypod.image.types import BlobInfo, ImageDestination, ImageReference, ImageSource
from pypod.log import get_logger
from pypod.oci.digest import Digest, DigestMismatch, digest_bytes, encoded_of
from pypod.oci.image_spec import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
    MANIFEST_LIST_TYPES,
    Descriptor,
    ImageIndex,
    ImageManifest,
    choose_platform,
    index_to_dict,
    manifest_digest,
    manifest_to_dict,
    parse_index,
    parse_manifest,
)
from pypod.record import replace

log = get_logger(__name__)

#: a config larger than this is refused (it is read into memory)
MAX_CONFIG_SIZE = 16 << 20


def short(digest: str) -> str:
    """The 12 hex digits podman shows for a blob."""
    return encoded_of(Digest(digest))[:12]


def serialize(doc: dict[str, Any]) -> bytes:
    """JSON as Go's json.Marshal writes it (compact)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _diff_ids(config: bytes) -> list[str]:
    """The config's rootfs.diff_ids ([] when it has none, or is no image config)."""
    try:
        doc = json.loads(config)
        ids = doc["rootfs"]["diff_ids"]
    except (ValueError, KeyError, TypeError):
        return []
    return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []


class _Copier:
    def __init__(self, source: ImageSource, dest: ImageDestination, options: CopyOptions) -> None:
        self.source = source
        self.dest = dest
        self.options = options
        ref = source.reference
        self.name = f"{ref.transport_name}:{ref.string_within_transport()}"

    def emit(self, kind: str, message: str, digest: str = "") -> None:
        if self.options.progress is not None:
            self.options.progress(ProgressEvent(kind=kind, message=message, digest=digest))

    # -- one image ---------------------------------------------------------------------------

    def copy_image(self, raw: bytes, media_type: str, instance: Digest | None) -> tuple[bytes, str]:
        """Copy one image (not an index) whose manifest is `raw`; returns what was written."""
        if media_type in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED):
            return self.copy_schema1(raw, instance)
        where = f"manifest {instance} of {self.name}" if instance else f"manifest of {self.name}"
        manifest = parse_manifest(raw, source=where)
        target = manifest_type_for(
            media_type, self.options.manifest_format, self.dest.supported_manifest_types()
        )
        config_data = self._read_config(manifest.config)
        diff_ids = _diff_ids(config_data)
        layers = self._copy_layers(manifest, target, diff_ids)
        config = self._copy_config(manifest.config, target, config_data)
        new = replace(manifest, media_type=target, config=config, layers=tuple(layers))
        if new == replace(manifest, media_type=manifest.media_type or media_type) and (
            target == media_type
        ):
            out = raw
        else:
            if self.options.preserve_digests:
                raise InvalidArgument(
                    "copying this image would change its manifest digest (the format or the "
                    "layers' compression must change for the destination); leave out "
                    "--preserve-digests or choose a destination that takes the image as it is"
                )
            out = serialize(manifest_to_dict(new))
        self.emit("manifest", "Writing manifest to image destination")
        self.dest.put_manifest(out, target, manifest_digest(out) if instance else None)
        return out, target

    def _copy_layers(
        self, manifest: ImageManifest, target: str, diff_ids: list[str]
    ) -> list[Descriptor]:
        layers = manifest.layers
        if not layers:
            return []
        if len(diff_ids) != len(layers):
            diff_ids = [""] * len(layers)  # not an image config as we know it: no check
        workers = max(1, min(self.options.max_parallel, len(layers)))
        if workers == 1:
            return [self._copy_layer(d, target, i) for d, i in zip(layers, diff_ids, strict=True)]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pypod-copy") as pool:
            futures = [
                pool.submit(self._copy_layer, d, target, i)
                for d, i in zip(layers, diff_ids, strict=True)
            ]
            return [f.result() for f in futures]

    def copy_schema1(self, raw: bytes, instance: Digest | None) -> tuple[bytes, str]:
        """A Docker schema 1 image, written as Docker schema 2 (or OCI when the destination or
        the options want it): its non-empty layers are copied while their diff IDs are
        computed, then the config is built from the manifest's v1Compatibility and them."""
        where = f"manifest {instance} of {self.name}" if instance else f"manifest of {self.name}"
        if self.options.preserve_digests:
            raise InvalidArgument(
                f"{where} is a Docker schema 1 manifest, which cannot be written: it must be "
                "converted, which changes its digest; leave out --preserve-digests"
            )
        m = read_schema1(raw, source=where)
        target = manifest_type_for(
            DOCKER_MANIFEST, self.options.manifest_format, self.dest.supported_manifest_types()
        )
        blobs = [
            Descriptor(media_type=DOCKER_LAYER, digest=d, size=-1)
            for d, empty in schema1_layer_infos(m)
            if not empty
        ]
        workers = max(1, min(self.options.max_parallel, len(blobs)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pypod-copy") as pool:
            copied = list(pool.map(lambda d: self._copy_layer_diff_id(d, target), blobs))
        diff_ids = [diff_id for _, diff_id in copied]
        config_type = config_type_for(target)
        if config_type == DOCKER_CONFIG:
            config = schema2_config(m, diff_ids)
        else:
            config = oci_config(m, diff_ids)
        info = BlobInfo(digest=digest_bytes(config), size=len(config), media_type=config_type)
        if self.dest.try_reusing_blob(info) is None:
            self.dest.put_blob(io.BytesIO(config), info, is_config=True)
        self.emit("config", f"Copying config {short(info.digest)} done", info.digest)
        manifest = ImageManifest(
            schema_version=2,
            media_type=target,
            config=Descriptor(media_type=config_type, digest=info.digest, size=len(config)),
            layers=tuple(desc for desc, _ in copied),
        )
        out = manifest_bytes(manifest)
        self.emit("manifest", "Writing manifest to image destination")
        self.dest.put_manifest(out, target, manifest_digest(out) if instance else None)
        return out, target

    def _copy_layer_diff_id(self, desc: Descriptor, target: str) -> tuple[Descriptor, Digest]:
        """Copy a layer whose diff ID nobody knows yet (schema 1): it is always read (never
        reused unread), and decompressed on the side to digest it."""
        out, diff_id = self._copy_layer_impl(desc, target, "", learn_diff_id=True)
        assert diff_id is not None
        return out, diff_id

    def _copy_layer(self, desc: Descriptor, target: str, diff_id: str) -> Descriptor:
        return self._copy_layer_impl(desc, target, diff_id, learn_diff_id=False)[0]

    def _copy_layer_impl(
        self, desc: Descriptor, target: str, diff_id: str, *, learn_diff_id: bool
    ) -> tuple[Descriptor, Digest | None]:
        info = BlobInfo(
            digest=desc.digest, size=desc.size, media_type=desc.media_type, urls=desc.urls,
            annotations=desc.annotations,
        )  # fmt: skip
        desired = self.dest.desired_layer_compression()
        requested = self.options.dest_compression
        declared = compression_of_media_type(desc.media_type)
        if (
            not learn_diff_id
            and declared is not None
            and (wanted_compression(declared, desired, requested, target) == declared)
        ):
            reused = self.dest.try_reusing_blob(info)
            if reused is not None:
                self.emit("blob-skipped", f"Copying blob {short(desc.digest)} skipped: already "
                          "exists", desc.digest)  # fmt: skip
                return replace(
                    desc, media_type=layer_type_for(target, desc.media_type, declared)
                ), None
        stream, _ = self.source.get_blob(info)
        learner: DiffIDReader | None = None
        with stream:
            if learn_diff_id:
                learner = DiffIDReader(stream)
                stream = learner  # type: ignore[assignment]
            peeked = Peeked(stream)
            current = peeked.compression
            wanted = wanted_compression(current, desired, requested, target)
            if wanted == current:
                stored = self.dest.put_blob(peeked, info, is_config=False)  # type: ignore[arg-type]
                if learner is not None:
                    peeked.drain()  # the destination may stop at the tar's end
            else:
                if self.options.preserve_digests:
                    raise InvalidArgument(
                        f"layer {desc.digest} would have to be recompressed ({current} -> "
                        f"{wanted}), which changes its digest; leave out --preserve-digests"
                    )
                new_info = BlobInfo(digest=Digest(""), size=-1, media_type=desc.media_type)
                stored = self.dest.put_blob(
                    transform(peeked, current, wanted), new_info, is_config=False
                )
                peeked.drain()
                if wanted == "none" and diff_id and stored.digest != diff_id:
                    raise DigestMismatch(
                        f"layer {desc.digest} uncompressed has digest {stored.digest}, but the "
                        f"image configuration says {diff_id}: the image is corrupt, refused",
                        expected=diff_id,
                        actual=stored.digest,
                    )
            learned = learner.diff_id() if learner is not None else None  # before closing
        self.emit("blob", f"Copying blob {short(desc.digest)} done", desc.digest)
        return replace(
            desc,
            digest=stored.digest,
            size=stored.size,
            media_type=layer_type_for(target, desc.media_type, wanted),
        ), learned

    def _read_config(self, desc: Descriptor) -> bytes:
        info = BlobInfo(digest=desc.digest, size=desc.size, media_type=desc.media_type)
        if desc.size > MAX_CONFIG_SIZE:
            raise InvalidArgument(f"config {desc.digest} is too large ({desc.size} bytes)")
        stream, _ = self.source.get_blob(info)
        with stream:
            data = stream.read(MAX_CONFIG_SIZE + 1)
            while more := stream.read(1 << 16):  # to the end: that runs the digest check
                data += more
                if len(data) > MAX_CONFIG_SIZE:
                    raise InvalidArgument(f"config {desc.digest} is too large")
        return data

    def _copy_config(self, desc: Descriptor, target: str, data: bytes) -> Descriptor:
        info = BlobInfo(digest=desc.digest, size=desc.size, media_type=desc.media_type)
        if self.dest.try_reusing_blob(info) is None:
            self.dest.put_blob(io.BytesIO(data), info, is_config=True)
        self.emit("config", f"Copying config {short(desc.digest)} done", desc.digest)
        return replace(desc, media_type=config_type_for(target))

    # -- an index -----------------------------------------------------------------------------

    def copy_index(self, raw: bytes, media_type: str) -> tuple[bytes, str]:
        index = parse_index(raw, source=f"index of {self.name}")
        supported = self.dest.supported_manifest_types()
        if supported and not any(t in MANIFEST_LIST_TYPES for t in supported):
            raise NotSupported(
                "the destination cannot store a manifest list or image index; leave out --all "
                "to copy one image"
            )
        entries: list[Descriptor] = []
        total = len(index.manifests)
        single_target: str | None = None
        for i, desc in enumerate(index.manifests, 1):
            self.emit("list-item", f"Copying image {desc.digest} ({i}/{total})", desc.digest)
            sub_raw, sub_type = self.source.get_manifest(desc.digest)
            if sub_type in MANIFEST_LIST_TYPES:
                raise NotSupported(f"nested index {desc.digest} in an index: not supported")
            out, out_type = self.copy_image(sub_raw, sub_type, desc.digest)
            single_target = single_target or out_type
            entries.append(
                replace(desc, media_type=out_type, digest=manifest_digest(out), size=len(out))
            )
        target = list_type_for(single_target) if single_target else media_type
        if supported and target not in supported:
            target = next(t for t in supported if t in MANIFEST_LIST_TYPES)
        new = replace(index, manifests=tuple(entries), media_type=target)
        if new == replace(index, media_type=index.media_type or media_type) and (
            target == media_type
        ):
            out_raw = raw
        else:
            if self.options.preserve_digests:
                raise InvalidArgument(
                    "copying this index would change its digest; leave out --preserve-digests"
                )
            out_raw = serialize(index_to_dict(new))
        self.emit("manifest-list", "Writing manifest list to image destination")
        self.dest.put_manifest(out_raw, target)
        return out_raw, target


def copy_image(src: ImageReference, dst: ImageReference, options: CopyOptions) -> bytes:
    """Copy the image `src` names to `dst`; returns the (top) manifest written."""
    with src.new_source(options.src_ctx) as source:
        raw, media_type = source.get_manifest()
        with dst.new_destination(options.dst_ctx) as dest:
            copier = _Copier(source, dest, options)
            # a source that says where its blobs are lets a destination on the same registry
            # mount them (cross-repository blob mount) instead of uploading them again
            origin = getattr(source, "blob_origin", None)
            note = getattr(dest, "note_blob_origin", None)
            if origin is not None and note is not None:
                note(origin)
            copier.emit("start", "Getting image source signatures")
            if media_type in MANIFEST_LIST_TYPES and options.all_images:
                out, _ = copier.copy_index(raw, media_type)
            else:
                instance: Digest | None = None
                if media_type in MANIFEST_LIST_TYPES:
                    ctx = options.src_ctx
                    chosen = choose_platform(parse_index(raw), ctx.os, ctx.arch, ctx.variant)
                    instance = chosen.digest
                    raw, media_type = source.get_manifest(instance)
                    if media_type in MANIFEST_LIST_TYPES:
                        raise NotSupported(f"nested index {instance}: not supported")
                out, _ = copier.copy_image(raw, media_type, None)
            copier.emit("signatures", "Storing signatures")
            dest.commit()
    if options.digest_file:
        with open(options.digest_file, "w") as f:
            f.write(manifest_digest(out))
    return out


__all__ = ["ImageIndex", "copy_image"]
