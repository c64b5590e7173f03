"""`docker-archive:PATH[:REF]`: the `docker save` format.

A tar with ``manifest.json`` (a list of ``{"Config", "RepoTags", "Layers"}``), each config as
``<hex>.json`` and each layer as an uncompressed tar.  Reading: any image of the archive, chosen
by ``:name:tag`` or ``:@N`` (the N-th), or the only one; the Docker schema 2 manifest is built
from the files (layer digests computed by reading them once).  Writing: layers decompressed,
the archive built in a temporary file renamed over PATH at commit; :class:`ArchiveWriter`
puts several images in one archive (``pypod save IMG1 IMG2``).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from typing import Any, BinaryIO

from pypod.errors import InvalidArgument, NotFound, NotSupported, from_oserror
from pypod.image.reference import Reference, parse_normalized
from pypod.image.transports._common import CHUNK, archive_output, verified, write_blob
from pypod.image.types import BlobInfo, ImageDestination, ImageSource, SystemContext
from pypod.oci.digest import Digest, Digester, digest_bytes, encoded_of
from pypod.oci.image_spec import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    parse_manifest,
)
from pypod.storage.archive.stream import sniff

DOCKER_LAYER_UNCOMPRESSED = "application/vnd.docker.image.rootfs.diff.tar"


class DockerArchiveReference:
    __slots__ = ("docker_reference", "index", "path", "tags", "writer")

    def __init__(
        self,
        path: str,
        ref: Reference | None,
        index: int = -1,
        writer: ArchiveWriter | None = None,
        tags: Sequence[Reference] = (),
    ) -> None:
        self.path = path
        self.docker_reference = ref
        self.index = index
        self.writer = writer
        #: more names for the image written (RepoTags), before `ref`'s
        self.tags = tuple(tags)

    @property
    def transport_name(self) -> str:
        return "docker-archive"

    def string_within_transport(self) -> str:
        if self.docker_reference is not None:
            return f"{self.path}:{self.docker_reference.familiar()}"
        if self.index >= 0:
            return f"{self.path}:@{self.index}"
        return self.path

    def __repr__(self) -> str:
        return f"docker-archive:{self.string_within_transport()}"

    def new_source(self, ctx: SystemContext) -> ImageSource:
        return DockerArchiveSource(self)

    def new_destination(self, ctx: SystemContext) -> ImageDestination:
        if self.index >= 0:
            raise InvalidArgument("docker-archive: @N references are for reading only")
        if self.writer is not None:
            return DockerArchiveDestination(self, self.writer, own_writer=False)
        return DockerArchiveDestination(self, ArchiveWriter(self.path, ctx.tmpdir), True)

    def delete(self, ctx: SystemContext) -> None:
        raise NotSupported("Deleting images not implemented for docker-archive: images")


# --------------------------------------------------------------------------- reading


class _Member:
    __slots__ = ("offset", "size")

    def __init__(self, offset: int, size: int) -> None:
        self.offset = offset
        self.size = size


class _Slice(io.RawIOBase):
    """`size` bytes of a file from `offset` (its own file handle: readers run in parallel)."""

    def __init__(self, path: str, offset: int, size: int) -> None:
        super().__init__()
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._f.seek(offset)
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), self._left)
        if n <= 0:
            return 0
        data = self._f.read(n)
        view[: len(data)] = data
        self._left -= len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()


def _scan(path: str) -> dict[str, _Member]:
    """Regular files of the tar by normalised name (links resolved to their targets)."""
    members: dict[str, _Member] = {}
    links: dict[str, str] = {}
    try:
        with tarfile.open(path, "r:") as tar:
            for m in tar:
                name = os.path.normpath(m.name.lstrip("/"))
                if m.isfile():
                    members[name] = _Member(m.offset_data, m.size)
                elif m.issym():
                    links[name] = os.path.normpath(os.path.join(os.path.dirname(name), m.linkname))
                elif m.islnk():
                    links[name] = os.path.normpath(m.linkname.lstrip("/"))
    except FileNotFoundError:
        raise NotFound(f"open {path}: no such file or directory") from None
    except tarfile.TarError as e:
        raise InvalidArgument(f"{path} is not a valid (uncompressed) tar archive: {e}") from None
    except OSError as e:
        raise from_oserror(f"reading {path}", e) from None
    for name, target in links.items():
        for _ in range(16):
            if target in members or target not in links:
                break
            target = links[target]
        if target in members:
            members[name] = members[target]
    return members


class DockerArchiveSource:
    def __init__(self, ref: DockerArchiveReference) -> None:
        self._ref = ref
        self._path = ref.path
        self._members = _scan(ref.path)
        items = json.loads(self._read_member("manifest.json"))
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise InvalidArgument(f"{ref.path}: manifest.json is not a list of images")
        item = self._choose(items)
        config_name = str(item.get("Config") or "")
        config = self._read_member(config_name)
        self._blobs: dict[str, str] = {digest_bytes(config): config_name}
        layers = []
        for name in item.get("Layers") or []:
            digest, size, compression = self._hash_member(str(name))
            self._blobs[digest] = str(name)
            media_type = DOCKER_LAYER if compression == "gzip" else DOCKER_LAYER_UNCOMPRESSED
            layers.append({"mediaType": media_type, "size": size, "digest": digest})
        manifest = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": len(config),
                       "digest": digest_bytes(config)},
            "layers": layers,
        }  # fmt: skip
        self._manifest = json.dumps(manifest, separators=(",", ":")).encode()

    def _choose(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        ref, index = self._ref.docker_reference, self._ref.index
        if index >= 0:
            if index >= len(items):
                raise NotFound(f"Invalid source index @{index}, only {len(items)} manifest "
                               "items available")  # fmt: skip
            return items[index]
        if ref is None:
            if len(items) != 1:
                raise InvalidArgument(
                    f"docker-archive {self._path} contains {len(items)} images; choose one "
                    "with docker-archive:PATH:NAME:TAG or docker-archive:PATH:@N"
                )
            return items[0]
        for item in items:
            for tag in item.get("RepoTags") or []:
                try:
                    if str(parse_normalized(str(tag))) == str(ref):
                        return item
                except InvalidArgument:
                    continue
        raise NotFound(f'Tag "{ref.familiar()}" not found')

    def _read_member(self, name: str) -> bytes:
        m = self._members.get(os.path.normpath(name))
        if m is None:
            raise NotFound(f"{self._path}: file {name} not found in the archive")
        with _Slice(self._path, m.offset, m.size) as s:
            return s.readall()

    def _hash_member(self, name: str) -> tuple[Digest, int, str]:
        m = self._members.get(os.path.normpath(name))
        if m is None:
            raise NotFound(f"{self._path}: layer {name} not found in the archive")
        digester = Digester()
        head = b""
        with _Slice(self._path, m.offset, m.size) as s:
            while chunk := s.read(CHUNK):
                if not head:
                    head = chunk[:8]
                digester.update(chunk)
        return digester.digest(), m.size, sniff(head)

    @property
    def reference(self) -> DockerArchiveReference:
        return self._ref

    def get_manifest(self, instance_digest: Digest | None = None) -> tuple[bytes, str]:
        if instance_digest is not None:
            raise NotFound("docker-archive images have no manifest list")
        return self._manifest, DOCKER_MANIFEST

    def get_blob(self, info: BlobInfo) -> tuple[BinaryIO, int]:
        name = self._blobs.get(info.digest)
        if name is None:
            raise NotFound(f"blob {info.digest} not found in {self._path}")
        m = self._members[os.path.normpath(name)]
        raw: BinaryIO = io.BufferedReader(_Slice(self._path, m.offset, m.size))
        return verified(raw, info, f"blob {info.digest} in {self._path}"), m.size

    def close(self) -> None:
        pass

    def __enter__(self) -> DockerArchiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- writing


class ArchiveWriter:
    """One docker-archive being written: blobs gathered in a temporary directory, images
    added by `add_image`, the tar written by `finish` (atomically) and `close` cleaning up."""

    def __init__(self, path: str, tmpdir: str | None = None) -> None:
        self.path = path
        self.blobs = tempfile.mkdtemp(prefix="docker-archive-", dir=tmpdir)
        self.items: list[dict[str, Any]] = []

    def reference(
        self, ref: Reference | None, tags: Sequence[Reference] = ()
    ) -> DockerArchiveReference:
        """A reference whose destination adds its image to this archive, named `tags` (then
        `ref`)."""
        return DockerArchiveReference(self.path, ref, writer=self, tags=tags)

    def blob_path(self, digest: Digest) -> str:
        return os.path.join(self.blobs, encoded_of(digest))

    def add_image(self, config: Digest, layers: Sequence[Digest], tags: Sequence[str]) -> None:
        for item in self.items:  # a tag names one image: move it
            item["RepoTags"] = [t for t in item["RepoTags"] if t not in tags]
        self.items.append({
            "Config": f"{encoded_of(config)}.json",
            "RepoTags": list(tags),
            "Layers": [f"{encoded_of(d)}.tar" for d in layers],
        })  # fmt: skip

    def finish(self) -> None:
        with (
            archive_output(self.path) as f,
            tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT) as tar,
        ):
            written: set[str] = set()
            repositories: dict[str, dict[str, str]] = {}
            for item in self.items:
                for name in [item["Config"], *item["Layers"]]:
                    if name not in written:
                        written.add(name)
                        self._add_file(tar, name, self.blob_path(
                            Digest("sha256:" + name.rsplit(".", 1)[0])))  # fmt: skip
                if item["Layers"]:
                    top = item["Layers"][-1].rsplit(".", 1)[0]
                    for tag in item["RepoTags"]:
                        repo, _, t = tag.rpartition(":")
                        repositories.setdefault(repo, {})[t] = top
            self._add_bytes(tar, "manifest.json", json.dumps(self.items).encode())
            if repositories:
                self._add_bytes(tar, "repositories", json.dumps(repositories).encode())

    @staticmethod
    def _add_file(tar: tarfile.TarFile, name: str, path: str) -> None:
        info = tarfile.TarInfo(name)
        info.size = os.stat(path).st_size
        info.mode = 0o644
        with open(path, "rb") as f:
            tar.addfile(info, f)

    @staticmethod
    def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))

    def close(self) -> None:
        shutil.rmtree(self.blobs, ignore_errors=True)

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DockerArchiveDestination:
    def __init__(self, ref: DockerArchiveReference, writer: ArchiveWriter,
                 own_writer: bool) -> None:  # fmt: skip
        self._ref = ref
        self._writer = writer
        self._own = own_writer
        self._manifest: bytes | None = None

    @property
    def reference(self) -> DockerArchiveReference:
        return self._ref

    def supported_manifest_types(self) -> tuple[str, ...]:
        return (DOCKER_MANIFEST,)

    def desired_layer_compression(self) -> str:
        return "decompress"

    def try_reusing_blob(self, info: BlobInfo) -> BlobInfo | None:
        if info.digest and os.path.exists(self._writer.blob_path(info.digest)):
            size = os.stat(self._writer.blob_path(info.digest)).st_size
            return BlobInfo(digest=info.digest, size=size, media_type=info.media_type)
        return None

    def put_blob(self, stream: BinaryIO, info: BlobInfo, *, is_config: bool) -> BlobInfo:
        return write_blob(stream, self._writer.blobs, self._writer.blob_path, info)

    def put_manifest(
        self, manifest: bytes, media_type: str, instance_digest: Digest | None = None
    ) -> None:
        if instance_digest is not None:
            raise NotSupported("docker-archive cannot store a manifest list")
        self._manifest = manifest

    def commit(self) -> None:
        if self._manifest is None:
            raise NotFound(f"docker-archive:{self._ref.path}: no manifest was written")
        m = parse_manifest(self._manifest)
        ref = self._ref.docker_reference
        names = [*self._ref.tags, *([ref] if ref is not None else [])]
        # full names, as containers/image writes them (docker normalises them alike)
        tags = list(dict.fromkeys(f"{r.name}:{r.tag or 'latest'}" for r in names))
        self._writer.add_image(m.config.digest, [d.digest for d in m.layers], tags)
        if self._own:
            self._writer.finish()

    def close(self) -> None:
        if self._own:
            self._writer.close()

    def __enter__(self) -> DockerArchiveDestination:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_archive_reference(reference: str) -> DockerArchiveReference:
    path, _, rest = reference.partition(":")
    if not path:
        raise InvalidArgument("docker-archive reference must not be empty")
    if not rest:
        return DockerArchiveReference(path, None)
    if rest.startswith("@"):
        if not rest[1:].isdigit():
            raise InvalidArgument(f"Invalid source index {rest}")
        return DockerArchiveReference(path, None, int(rest[1:]))
    ref = parse_normalized(rest)
    if ref.digest is not None:
        raise InvalidArgument(f"docker-archive doesn't support digest references: {rest}")
    return DockerArchiveReference(path, ref.with_default_tag())


class DockerArchiveTransport:
    @property
    def name(self) -> str:
        return "docker-archive"

    def parse_reference(self, reference: str) -> DockerArchiveReference:
        return parse_archive_reference(reference)


TRANSPORT = DockerArchiveTransport()
