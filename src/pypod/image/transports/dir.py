"""`dir:PATH`: an image as plain files (containers/image's directory transport).

``manifest.json`` (and ``<hex>.manifest.json`` for the members of an index), each blob in a
file named by its hex digest, and ``version`` holding "Directory Transport Version: 1.1".
Blobs are written first (under temporary names, renamed once verified), the manifest and the
version at commit; files of an earlier image in the directory are removed only then.
"""

from __future__ import annotations

import os
from typing import BinaryIO

from pypod.atomic import write_atomic
from pypod.errors import InvalidArgument, NotFound, NotSupported, from_oserror
from pypod.image.transports._common import (
    DestinationBase,
    SourceBase,
    verified,
    write_blob,
)
from pypod.image.types import BlobInfo, ImageDestination, ImageSource, SystemContext
from pypod.oci.digest import Digest, encoded_of
from pypod.oci.image_spec import detect_manifest_type

VERSION = "Directory Transport Version: 1.1\n"
MANIFEST = "manifest.json"


class DirReference:
    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    @property
    def transport_name(self) -> str:
        return "dir"

    def string_within_transport(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return f"dir:{self.path}"

    def manifest_path(self, instance: Digest | None = None) -> str:
        if instance is None:
            return os.path.join(self.path, MANIFEST)
        return os.path.join(self.path, f"{encoded_of(instance)}.{MANIFEST}")

    def blob_path(self, digest: Digest) -> str:
        hexa = encoded_of(digest)
        name = hexa if digest.startswith("sha256:") else digest.replace(":", "-")
        return os.path.join(self.path, name)

    def new_source(self, ctx: SystemContext) -> ImageSource:
        return DirSource(self)

    def new_destination(self, ctx: SystemContext) -> ImageDestination:
        return DirDestination(self)

    def delete(self, ctx: SystemContext) -> None:
        raise NotSupported("Deleting images not implemented for dir: images")


class DirSource(SourceBase):
    def __init__(self, ref: DirReference) -> None:
        self._ref = ref

    @property
    def reference(self) -> DirReference:
        return self._ref

    def get_manifest(self, instance_digest: Digest | None = None) -> tuple[bytes, str]:
        path = self._ref.manifest_path(instance_digest)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise from_oserror(f"reading manifest {path}", e) from None
        try:
            return data, detect_manifest_type(data)
        except InvalidArgument as e:
            raise InvalidArgument(f"{path}: {e}") from None

    def get_blob(self, info: BlobInfo) -> tuple[BinaryIO, int]:
        path = self._ref.blob_path(info.digest)
        try:
            f = open(path, "rb")  # noqa: SIM115 - the caller closes the stream
        except OSError as e:
            raise from_oserror(f"reading blob {info.digest} in {self._ref.path}", e) from None
        size = os.fstat(f.fileno()).st_size
        return verified(f, info, f"blob {info.digest} in dir:{self._ref.path}"), size


class DirDestination(DestinationBase):
    def __init__(self, ref: DirReference) -> None:
        self._ref = ref
        path = ref.path
        try:
            os.makedirs(path, exist_ok=True)
            entries = os.listdir(path)
        except OSError as e:
            raise from_oserror(f"creating directory {path}", e) from None
        if entries and not os.path.exists(os.path.join(path, "version")):
            raise InvalidArgument(
                f'non-empty directory "{path}" is not an image directory (no version file); '
                "choose an empty or new directory"
            )
        self._written: set[str] = set()
        self._manifests: dict[str, bytes] = {}

    @property
    def reference(self) -> DirReference:
        return self._ref

    def try_reusing_blob(self, info: BlobInfo) -> BlobInfo | None:
        if not info.digest:
            return None
        path = self._ref.blob_path(info.digest)
        try:
            size = os.stat(path).st_size
        except OSError:
            return None
        if info.size >= 0 and size != info.size:
            return None
        self._written.add(os.path.basename(path))
        return BlobInfo(digest=info.digest, size=size, media_type=info.media_type)

    def put_blob(self, stream: BinaryIO, info: BlobInfo, *, is_config: bool) -> BlobInfo:
        stored = write_blob(stream, self._ref.path, self._ref.blob_path, info)
        self._written.add(os.path.basename(self._ref.blob_path(stored.digest)))
        return stored

    def put_manifest(
        self, manifest: bytes, media_type: str, instance_digest: Digest | None = None
    ) -> None:
        path = self._ref.manifest_path(instance_digest)
        self._manifests[path] = manifest

    def commit(self) -> None:
        if self._ref.manifest_path() not in self._manifests:
            raise NotFound(f"dir:{self._ref.path}: no manifest was written")
        for path, data in self._manifests.items():
            write_atomic(path, data)
            self._written.add(os.path.basename(path))
        write_atomic(os.path.join(self._ref.path, "version"), VERSION.encode())
        self._written.add("version")
        for name in os.listdir(self._ref.path):
            if name not in self._written and not name.startswith(".tmp-"):
                try:
                    os.unlink(os.path.join(self._ref.path, name))
                except IsADirectoryError:
                    pass


class DirTransport:
    @property
    def name(self) -> str:
        return "dir"

    def parse_reference(self, reference: str) -> DirReference:
        if not reference:
            raise InvalidArgument("dir: an image directory path is required")
        return DirReference(reference)


TRANSPORT = DirTransport()
