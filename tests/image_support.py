"""Test support for images: small images built by hand, and Debian's docker-registry.

`Registry` is the same helper as in tests/integration/test_registry_client.py (kept there as
well, so that test does not change); new registry tests should use this one.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from pypod.testing import make_busybox_rootfs

REGISTRY_BIN = "/usr/bin/docker-registry"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def tar_of_dir(root: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name in sorted(os.listdir(root)):
            t.add(os.path.join(root, name), arcname=name)
    return buf.getvalue()


def tar_of_files(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def busybox_layer() -> bytes:
    with tempfile.TemporaryDirectory() as d:
        make_busybox_rootfs(d)
        return tar_of_dir(d)


class Image:
    """Blobs of one image: layers (gzip), config and an OCI manifest (bytes as written)."""

    def __init__(self, tars: list[bytes], *, arch: str = "amd64", labels: dict[str, str] | None
                 = None) -> None:  # fmt: skip
        self.tars = tars
        self.layers = [gzip.compress(t, mtime=0) for t in tars]
        config: dict[str, Any] = {
            "created": "2024-01-02T03:04:05Z", "architecture": arch, "os": "linux",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "Labels": labels or {"a": "b"}},
            "rootfs": {"type": "layers", "diff_ids": [sha(t) for t in tars]},
        }  # fmt: skip
        self.config = json.dumps(config).encode()
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha(self.config),
                       "size": len(self.config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": sha(b), "size": len(b)}
                       for b in self.layers],
        }).encode()  # fmt: skip
        self.arch = arch

    @property
    def digest(self) -> str:
        return sha(self.manifest)

    def blobs(self) -> list[bytes]:
        return [*self.layers, self.config, self.manifest]

    def write_dir(self, dest: Path) -> Path:
        dest.mkdir(parents=True)
        for b in (*self.layers, self.config):
            (dest / sha(b)[7:]).write_bytes(b)
        (dest / "manifest.json").write_bytes(self.manifest)
        (dest / "version").write_text("Directory Transport Version: 1.1\n")
        return dest


def write_oci_index(dest: Path, images: list[Image], ref: str) -> str:
    """An OCI layout at `dest` holding an index of `images` named `ref`; the index digest."""
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    for image in images:
        for b in image.blobs():
            (blobs / sha(b)[7:]).write_bytes(b)
    index = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": i.digest, "size": len(i.manifest),
                       "platform": {"architecture": i.arch, "os": "linux"}} for i in images],
    }).encode()  # fmt: skip
    (blobs / sha(index)[7:]).write_bytes(index)
    (dest / "index.json").write_text(json.dumps({
        "schemaVersion": 2,
        "manifests": [{"mediaType": OCI_INDEX, "digest": sha(index), "size": len(index),
                       "annotations": {"org.opencontainers.image.ref.name": ref}}],
    }))  # fmt: skip
    return sha(index)


class Registry:
    """docker-registry serving a temp directory on a free loopback port."""

    def __init__(self, root: Path, extra_yaml: str = "") -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.data = root / "data"
        config = root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.data}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n" + extra_yaml
        )
        self.log = open(root / "registry.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [REGISTRY_BIN, "serve", str(config)], stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                conn = http.client.HTTPConnection(self.host, timeout=2)
                conn.request("GET", "/v2/")
                conn.getresponse()
                conn.close()
                break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"docker-registry did not start: {root / 'registry.log'}")
            time.sleep(0.05)

    def blob_file(self, digest: str) -> Path:
        hexa = digest.split(":", 1)[1]
        return self.data / "docker/registry/v2/blobs/sha256" / hexa[:2] / hexa / "data"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def need_registry() -> None:
    if not os.access(REGISTRY_BIN, os.X_OK):
        pytest.skip(f"{REGISTRY_BIN} is missing (apt-get install docker-registry)")


def bcrypt_line(user: str, password: str) -> str:
    """An htpasswd line (registry's htpasswd wants bcrypt): htpasswd if installed, else crypt."""
    exe = shutil.which("htpasswd")
    if exe:
        out = subprocess.run([exe, "-nbBC", "4", user, password], capture_output=True, text=True)
        return out.stdout.strip()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    if not hashed or not hashed.startswith("$2"):
        pytest.skip("no bcrypt: install apache2-utils (htpasswd)")
    return f"{user}:{hashed}"


def start_registry(root: Path, *, users: Mapping[str, str] | None = None) -> Registry:
    """A docker-registry in `root` (skips the test if missing); with `users`, htpasswd auth."""
    need_registry()
    extra = ""
    if users:
        htpasswd = root / "htpasswd"
        htpasswd.write_text("".join(bcrypt_line(u, pw) + "\n" for u, pw in users.items()))
        extra = f"auth:\n  htpasswd:\n    realm: pypod-test\n    path: {htpasswd}\n"
    return Registry(root, extra)
