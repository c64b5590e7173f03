"""`oci-archive:PATH[:REF]`: an OCI image layout in a tar file.

Read: the tar is unpacked (regular files and directories only, nothing outside the
directory) into a temporary directory that the source reads as `oci:`.  Written: a layout is
built in a temporary directory, tarred next to PATH and renamed over it at commit, so PATH is
either the old archive or the new one.  As with containers/image, the new archive holds the one
image copied.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from typing import BinaryIO

from pypod.errors import InvalidArgument, NotSupported, from_oserror
from pypod.image.transports._common import archive_output
from pypod.image.transports.oci_layout import (
    LayoutReference,
    OCILayoutDestination,
    OCILayoutSource,
    parse_layout_reference,
)
from pypod.image.types import BlobInfo, ImageDestination, ImageSource, SystemContext
from pypod.oci.digest import Digest


class OCIArchiveReference(LayoutReference):
    __slots__ = ()
    TRANSPORT = "oci-archive"

    def new_source(self, ctx: SystemContext) -> ImageSource:
        return OCIArchiveSource(self, ctx)

    def new_destination(self, ctx: SystemContext) -> ImageDestination:
        return OCIArchiveDestination(self, ctx)

    def delete(self, ctx: SystemContext) -> None:
        raise NotSupported("Deleting images not implemented for oci-archive: images")


def extract_layout(archive: str, dest: str) -> None:
    """Unpack the tar `archive` into `dest`: directories and regular files only."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = []
            for m in tar.getmembers():
                name = os.path.normpath(m.name.lstrip("/"))
                if name.startswith("..") or not (m.isfile() or m.isdir()):
                    continue
                m.name = name
                m.mode = 0o755 if m.isdir() else 0o644
                members.append(m)
            tar.extractall(dest, members=members)  # names and types checked above
    except FileNotFoundError:
        raise InvalidArgument(f"open {archive}: no such file or directory") from None
    except tarfile.TarError as e:
        raise InvalidArgument(f"{archive} is not a valid tar archive: {e}") from None
    except OSError as e:
        raise from_oserror(f"reading {archive}", e) from None


def tar_layout(layout: str, archive: str) -> None:
    """Tar the layout directory `layout` into `archive` (see `archive_output`)."""
    with (
        archive_output(archive) as f,
        tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for root, dirs, files in os.walk(layout):
            dirs.sort()
            for name in sorted(dirs) + sorted(files):
                full = os.path.join(root, name)
                arc = os.path.relpath(full, layout)
                info = tar.gettarinfo(full, arc)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if info.isfile():
                    with open(full, "rb") as src:
                        tar.addfile(info, src)
                else:
                    tar.addfile(info)


class OCIArchiveSource:
    def __init__(self, ref: OCIArchiveReference, ctx: SystemContext) -> None:
        self._ref = ref
        self._tmp = tempfile.mkdtemp(prefix="oci-archive-", dir=ctx.tmpdir)
        try:
            extract_layout(ref.path, self._tmp)
            self._layout = OCILayoutSource(self._tmp, ref.image, ref)
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise

    @property
    def reference(self) -> OCIArchiveReference:
        return self._ref

    def get_manifest(self, instance_digest: Digest | None = None) -> tuple[bytes, str]:
        return self._layout.get_manifest(instance_digest)

    def get_blob(self, info: BlobInfo) -> tuple[BinaryIO, int]:
        return self._layout.get_blob(info)

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> OCIArchiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OCIArchiveDestination:
    def __init__(self, ref: OCIArchiveReference, ctx: SystemContext) -> None:
        self._ref = ref
        self._tmp = tempfile.mkdtemp(prefix="oci-archive-", dir=ctx.tmpdir)
        self._layout = OCILayoutDestination(self._tmp, ref.image, ref)

    @property
    def reference(self) -> OCIArchiveReference:
        return self._ref

    def supported_manifest_types(self) -> tuple[str, ...]:
        return self._layout.supported_manifest_types()

    def desired_layer_compression(self) -> str:
        return self._layout.desired_layer_compression()

    def try_reusing_blob(self, info: BlobInfo) -> BlobInfo | None:
        return self._layout.try_reusing_blob(info)

    def put_blob(self, stream: BinaryIO, info: BlobInfo, *, is_config: bool) -> BlobInfo:
        return self._layout.put_blob(stream, info, is_config=is_config)

    def put_manifest(
        self, manifest: bytes, media_type: str, instance_digest: Digest | None = None
    ) -> None:
        self._layout.put_manifest(manifest, media_type, instance_digest)

    def commit(self) -> None:
        self._layout.commit()
        tar_layout(self._tmp, self._ref.path)

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> OCIArchiveDestination:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OCIArchiveTransport:
    @property
    def name(self) -> str:
        return "oci-archive"

    def parse_reference(self, reference: str) -> OCIArchiveReference:
        path, image = parse_layout_reference(reference, "oci-archive")
        return OCIArchiveReference(path, image)


TRANSPORT = OCIArchiveTransport()
