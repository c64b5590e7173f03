"""Busybox images built by hand (a layer tar, a config, a manifest) for storage and CLI tests."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from pypod.image.transports.containers_storage import parse_storage_reference
from pypod.image.types import BlobInfo, SystemContext
from pypod.oci import image_spec as spec
from pypod.oci.digest import Digest, digest_bytes
from pypod.testing import make_busybox_rootfs


class BuiltImage:
    def __init__(self, layers: list[bytes], diff_ids: list[str], config: bytes, manifest: bytes,
                 media_type: str) -> None:  # fmt: skip
        self.layers = layers
        self.diff_ids = diff_ids
        self.config = config
        self.manifest = manifest
        self.media_type = media_type

    @property
    def id(self) -> str:
        return digest_bytes(self.config).partition(":")[2]

    @property
    def manifest_digest(self) -> str:
        return digest_bytes(self.manifest)


def tar_of(directory: Path) -> bytes:
    """GNU tar of a directory (as a foreign tool writes a layer)."""
    return subprocess.run(
        ["tar", "--numeric-owner", "--sort=name", "-C", str(directory), "-cf", "-", "."],
        check=True,
        capture_output=True,
    ).stdout


def busybox_layer(work: Path) -> bytes:
    rootfs = work / "rootfs"
    if not rootfs.exists():
        make_busybox_rootfs(str(rootfs))
    return tar_of(rootfs)


def small_layer(work: Path, name: str, content: str) -> bytes:
    d = work / f"layer-{name}"
    (d / "etc").mkdir(parents=True, exist_ok=True)
    (d / "etc" / name).write_text(content)
    return tar_of(d)


def build_image(layers: list[bytes], *, compress: bool = True, docker: bool = False,
                cmd: tuple[str, ...] = ("/bin/sh",), labels: dict[str, str] | None = None,
                created: str = "2024-01-02T03:04:05.123456789Z") -> BuiltImage:  # fmt: skip
    diff_ids = [digest_bytes(t) for t in layers]
    blobs = [gzip.compress(t, mtime=0) if compress else t for t in layers]
    config_doc: dict[str, Any] = {
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Cmd": list(cmd),
            "Env": ["PATH=/bin"],
            **({"Labels": labels} if labels else {}),
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            {"created": created, "created_by": f"/bin/sh -c #(nop) ADD file:{d[7:]} in / "}
            for d in diff_ids
        ],
    }
    config = json.dumps(config_doc).encode()
    if docker:
        media_type = spec.DOCKER_MANIFEST
        layer_type = (
            spec.DOCKER_LAYER if compress else "application/vnd.docker.image.rootfs.diff.tar"
        )
        config_type = spec.DOCKER_CONFIG
    else:
        media_type = spec.OCI_MANIFEST
        layer_type = spec.OCI_LAYER_GZIP if compress else spec.OCI_LAYER
        config_type = spec.OCI_CONFIG
    manifest_doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": config_type, "digest": digest_bytes(config), "size": len(config)},
        "layers": [
            {"mediaType": layer_type, "digest": digest_bytes(b), "size": len(b)} for b in blobs
        ],
    }
    manifest = json.dumps(manifest_doc).encode()
    return BuiltImage(blobs, diff_ids, config, manifest, media_type)


def context(graphroot: Path, runroot: Path, tmpdir: Path | None = None,
            driver: str | None = None) -> SystemContext:  # fmt: skip
    tmp = tmpdir or graphroot.parent / "tmp"
    os.makedirs(tmp, exist_ok=True)
    return SystemContext(graphroot=str(graphroot), runroot=str(runroot), tmpdir=str(tmp),
                         storage_driver=driver)  # fmt: skip


def write_image(ctx: SystemContext, name: str, image: BuiltImage) -> None:
    """Write `image` through the containers-storage destination under `name`."""
    ref = parse_storage_reference(name)
    with ref.new_destination(ctx) as dst:
        for blob in image.layers:
            info = BlobInfo(digest=Digest(digest_bytes(blob)), size=len(blob))
            if dst.try_reusing_blob(info) is None:
                dst.put_blob(io.BytesIO(blob), info, is_config=False)
        info = BlobInfo(digest=Digest(digest_bytes(image.config)), size=len(image.config))
        dst.put_blob(io.BytesIO(image.config), info, is_config=True)
        dst.put_manifest(image.manifest, image.media_type)
        dst.commit()
