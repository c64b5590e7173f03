"""Docker schema 1 images from the real docker-registry: `pypod-image inspect` (and --raw),
`pypod-image copy docker://… oci:…`, `pypod pull`; checked against skopeo's conversion.

docker-registry 2.8 takes only signed schema 1 manifests (libtrust JWS, "missing signature
key" otherwise) and only with ``compatibility.schema1.enabled``; the manifests here are signed
with a throwaway P-256 key by a small ECDSA written with the standard library.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import json
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pypod.image.copy import CopyOptions, copy_image
from pypod.image.copy.schema1 import read_schema1, schema2_config
from pypod.image.transports import parse_image_name
from pypod.image.types import SystemContext
from pypod.oci.image_spec import DOCKER_SCHEMA1_SIGNED, schema1_payload
from tests.conftest import BIN
from tests.e2e.test_pypod_images import _unmount_below
from tests.engine_support import Pypod
from tests.image_support import Registry, busybox_layer, need_registry, sha, tar_of_files

pytestmark = [pytest.mark.registry]

INSECURE = SystemContext(tls_verify=False)
PYPOD_IMAGE = str(BIN / "pypod-image")

# --------------------------------------------------------------------------- ES256, stdlib only

_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_G = (
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)
Point = tuple[int, int] | None


def _add(a: Point, b: Point) -> Point:
    if a is None:
        return b
    if b is None:
        return a
    if a[0] == b[0] and (a[1] + b[1]) % _P == 0:
        return None
    if a == b:
        lam = (3 * a[0] * a[0] - 3) * pow(2 * a[1], -1, _P) % _P
    else:
        lam = (b[1] - a[1]) * pow(b[0] - a[0], -1, _P) % _P
    x = (lam * lam - a[0] - b[0]) % _P
    return x, (lam * (a[0] - x) - a[1]) % _P


def _mul(k: int, p: Point) -> Point:
    out: Point = None
    while k:
        if k & 1:
            out = _add(out, p)
        p = _add(p, p)
        k >>= 1
    return out


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Key:
    """A throwaway P-256 key that signs as libtrust does (ES256, JWK with libtrust's kid)."""

    def __init__(self) -> None:
        self.d = secrets.randbelow(_N - 1) + 1
        pub = _mul(self.d, _G)
        assert pub is not None
        self.x, self.y = (c.to_bytes(32, "big") for c in pub)
        der = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")
        der += b"\x04" + self.x + self.y
        b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
        self.kid = ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))

    def sign(self, data: bytes) -> bytes:
        z = int.from_bytes(hashlib.sha256(data).digest(), "big")
        while True:
            k = secrets.randbelow(_N - 1) + 1
            point = _mul(k, _G)
            assert point is not None
            r = point[0] % _N
            s = pow(k, -1, _N) * (z + r * self.d) % _N
            if r and s:
                return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def jwk(self) -> dict[str, str]:
        return {"crv": "P-256", "kid": self.kid, "kty": "EC", "x": _b64(self.x), "y": _b64(self.y)}


def sign_manifest(doc: dict[str, Any], key: Key) -> bytes:
    """`doc` as docker signed it: indented JSON with a libtrust "signatures" member."""
    payload = json.dumps(doc, indent=3).encode()
    length, tail = len(payload) - 2, payload[-2:]
    assert tail == b"\n}"
    protected = _b64(json.dumps({
        "formatLength": length, "formatTail": _b64(tail), "time": "2024-01-01T00:00:00Z",
    }).encode())  # fmt: skip
    signature = key.sign(f"{protected}.{_b64(payload)}".encode())
    sigs = [{"header": {"jwk": key.jwk(), "alg": "ES256"}, "signature": _b64(signature),
             "protected": protected}]  # fmt: skip
    block = json.dumps(sigs, indent=3).replace("\n", "\n   ").encode()
    return payload[:length] + b',\n   "signatures": ' + block + tail


# --------------------------------------------------------------------------- the image

EMPTY_LAYER = gzip.compress(tar_of_files({}), mtime=0)


def v1_id(n: int) -> str:
    return hashlib.sha256(f"layer {n}".encode()).hexdigest()


class Schema1Image:
    """busybox, an empty ("throwaway") ENV layer, a layer with /hello.txt."""

    def __init__(self, repo: str, tag: str, text: bytes = b"schema one\n") -> None:
        self.tars = [busybox_layer(), tar_of_files({"hello.txt": text})]
        self.layers = [gzip.compress(t, mtime=0) for t in self.tars]
        base = {"id": v1_id(0), "created": "2024-01-01T00:00:00.5Z",
                "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) ADD file:abc in /"]},
                "architecture": "amd64", "os": "linux", "Size": 123}  # fmt: skip
        env = {"id": v1_id(1), "parent": v1_id(0), "created": "2024-01-02T00:00:00Z",
               "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) ENV A=b"]},
               "throwaway": True}  # fmt: skip
        top = {"id": v1_id(2), "parent": v1_id(1), "created": "2024-01-03T00:00:00Z",
               "author": "someone <a@b.c>", "docker_version": "1.13.1",
               "architecture": "amd64", "os": "linux",
               "container_config": {"Cmd": ["/bin/sh", "-c", "echo schema one > /hello.txt"]},
               "config": {"Env": ["PATH=/bin", "A=b"], "Cmd": ["cat", "/hello.txt"],
                          "Labels": {"kind": "schema1"}}}  # fmt: skip
        self.doc = {
            "schemaVersion": 1, "name": repo, "tag": tag, "architecture": "amd64",
            "fsLayers": [{"blobSum": sha(self.layers[1])}, {"blobSum": sha(EMPTY_LAYER)},
                         {"blobSum": sha(self.layers[0])}],
            "history": [{"v1Compatibility": json.dumps(v)} for v in (top, env, base)],
        }  # fmt: skip
        self.manifest = sign_manifest(self.doc, Key())
        self.diff_ids = [sha(t) for t in self.tars]
        self.payload_digest = sha(self.manifest[: self.manifest.index(b',\n   "signatures"')]
                                  + b"\n}")  # fmt: skip

    def push(self, reg: Registry, repo: str, tag: str) -> None:
        conn = http.client.HTTPConnection(reg.host, timeout=30)
        try:
            for blob in [*self.layers, EMPTY_LAYER]:
                conn.request("POST", f"/v2/{repo}/blobs/uploads/")
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 202, resp.status
                loc = resp.getheader("Location") or ""
                sep = "&" if "?" in loc else "?"
                conn.request("PUT", f"{loc}{sep}digest={sha(blob)}", body=blob)
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 201, resp.status
            conn.request("PUT", f"/v2/{repo}/manifests/{tag}", body=self.manifest,
                         headers={"Content-Type": DOCKER_SCHEMA1_SIGNED})  # fmt: skip
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 201, (resp.status, body, (reg.data.parent / "registry.log"))
            assert resp.getheader("Docker-Content-Digest") == self.payload_digest
        finally:
            conn.close()


REPO, TAG = "pypod-s1/bb", "v1"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    need_registry()
    reg = Registry(tmp_path_factory.mktemp("registry"),
                   "compatibility:\n  schema1:\n    enabled: true\n")  # fmt: skip
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def image(registry: Registry, busybox: str) -> Schema1Image:
    img = Schema1Image(REPO, TAG)
    img.push(registry, REPO, TAG)
    return img


def pypod_image(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYPOD_IMAGE, *args], capture_output=True, text=True, timeout=120)


def read_layout(path: Path) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """(manifest, config, config bytes) of the one image of OCI layout `path`."""
    index = json.loads((path / "index.json").read_text())
    (desc,) = index["manifests"]

    def blob(digest: str) -> bytes:
        return (path / "blobs" / digest.replace(":", "/")).read_bytes()

    manifest = json.loads(blob(desc["digest"]))
    raw = blob(manifest["config"]["digest"])
    return manifest, json.loads(raw), raw


# --------------------------------------------------------------------------- tests


def test_inspect_schema1_and_raw(registry: Registry, image: Schema1Image) -> None:
    ref = f"docker://{registry.host}/{REPO}:{TAG}"
    proc = pypod_image("inspect", "--tls-verify=false", "--raw", ref)
    assert proc.returncode == 0, proc.stderr
    raw = proc.stdout.encode()
    # the registry serves the manifest signed (with a signature of its own): same payload
    assert json.loads(raw)["signatures"]
    assert schema1_payload(raw) == schema1_payload(image.manifest)
    assert sha(schema1_payload(raw)) == image.payload_digest
    proc = pypod_image("inspect", "--tls-verify=false", ref)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["Digest"] == image.payload_digest
    assert doc["Created"] == "2024-01-03T00:00:00Z"
    assert doc["DockerVersion"] == "1.13.1"
    assert doc["Labels"] == {"kind": "schema1"}
    assert (doc["Architecture"], doc["Os"]) == ("amd64", "linux")
    assert doc["Env"] == ["PATH=/bin", "A=b"]
    # every layer, base first, the empty one included (containers/image's LayerInfos)
    assert doc["Layers"] == [sha(image.layers[0]), sha(EMPTY_LAYER), sha(image.layers[1])]
    proc = pypod_image("inspect", "--tls-verify=false", "--config", ref)
    assert proc.returncode == 0, proc.stderr
    config = json.loads(proc.stdout)
    assert config["config"]["Cmd"] == ["cat", "/hello.txt"] and "id" not in config
    assert config["rootfs"]["diff_ids"] == ["", ""]  # unknown until the layers are read


def test_inspect_is_skopeos(registry: Registry, image: Schema1Image) -> None:
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        pytest.skip("skopeo is not installed (apt-get install skopeo)")
    ref = f"docker://{registry.host}/{REPO}:{TAG}"
    for extra in ([], ["--config"]):
        args = ["inspect", "--tls-verify=false", *extra, ref]
        theirs = subprocess.run([skopeo, *args], capture_output=True, text=True, timeout=60)
        ours = pypod_image(*args)
        assert ours.returncode == theirs.returncode == 0, ours.stderr + theirs.stderr
        assert ours.stdout == theirs.stdout, extra


def test_copy_schema1_to_oci_builds_config_with_diff_ids(
    registry: Registry, image: Schema1Image, tmp_path: Path
) -> None:
    ref = f"docker://{registry.host}/{REPO}:{TAG}"
    proc = pypod_image("copy", "--src-tls-verify=false", ref, f"oci:{tmp_path}/ours:s1")
    assert proc.returncode == 0, proc.stderr
    manifest, config, _ = read_layout(tmp_path / "ours")
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert config["rootfs"] == {"type": "layers", "diff_ids": image.diff_ids}
    assert [d["digest"] for d in manifest["layers"]] == [sha(b) for b in image.layers]
    assert all(d["mediaType"].endswith("tar+gzip") for d in manifest["layers"])
    assert config["config"]["Cmd"] == ["cat", "/hello.txt"]
    for key in ("id", "parent", "throwaway", "Size"):
        assert key not in config
    assert [h.get("empty_layer", False) for h in config["history"]] == [False, True, False]
    assert config["history"][0] == {
        "created": "2024-01-01T00:00:00.5Z",
        "created_by": "/bin/sh -c #(nop) ADD file:abc in /",
    }
    assert config["history"][2]["author"] == "someone <a@b.c>"
    # --preserve-digests cannot be honoured: schema 1 must be converted
    proc = pypod_image("copy", "--preserve-digests", "--src-tls-verify=false", ref,
                       f"oci:{tmp_path}/no:s1")  # fmt: skip
    assert proc.returncode != 0 and "--preserve-digests" in proc.stderr


def test_manifest_and_config_are_the_ones_skopeo_writes(
    registry: Registry, image: Schema1Image, tmp_path: Path
) -> None:
    """Byte for byte, as OCI and as Docker schema 2: the same image IDs as podman's."""
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        pytest.skip("skopeo is not installed (apt-get install skopeo)")
    ref = f"docker://{registry.host}/{REPO}:{TAG}"
    for fmt in ("oci", "v2s2"):
        subprocess.run([skopeo, "copy", "-q", "--format", fmt, "--src-tls-verify=false", ref,
                        f"dir:{tmp_path}/theirs-{fmt}"], check=True, timeout=120)  # fmt: skip
        opts = CopyOptions(src_ctx=INSECURE, manifest_format=fmt)
        copy_image(parse_image_name(ref), parse_image_name(f"dir:{tmp_path}/ours-{fmt}"), opts)
        theirs = (tmp_path / f"theirs-{fmt}/manifest.json").read_bytes()
        ours = (tmp_path / f"ours-{fmt}/manifest.json").read_bytes()
        assert ours == theirs, fmt
        config = json.loads(ours)["config"]["digest"].split(":")[1]
        assert (tmp_path / f"ours-{fmt}" / config).read_bytes() == (
            tmp_path / f"theirs-{fmt}" / config
        ).read_bytes()
    v2s2 = json.loads((tmp_path / "ours-v2s2/manifest.json").read_text())
    assert v2s2["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert v2s2["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    config = json.loads((tmp_path / "ours-v2s2" / v2s2["config"]["digest"][7:]).read_text())
    assert config["docker_version"] == "1.13.1" and "container_config" in config


def test_pull_schema1_and_run(
    registry: Registry, image: Schema1Image, tmp_path: Path, busybox: str
) -> None:
    pypod = Pypod(tmp_path / "pypod")
    try:
        target = f"{registry.host}/{REPO}:{TAG}"
        image_id = pypod.ok("pull", "-q", "--tls-verify=false", target).strip()
        data = json.loads(pypod.ok("image", "inspect", target))[0]
        assert data["Id"] == image_id
        # stored as Docker schema 2: the image ID is the digest of containers/image's config
        config = schema2_config(read_schema1(image.manifest), image.diff_ids)
        assert image_id == sha(config)[7:]
        assert data["RootFS"]["Layers"] == image.diff_ids
        assert data["Config"]["Cmd"] == ["cat", "/hello.txt"]
        out = pypod.ok("run", "--rm", "--network", "none", target)
        assert out == "schema one\n"
    finally:
        pypod("rmi", "-a", "-f")
        _unmount_below(tmp_path)


def test_corrupt_schema1_layer_is_refused(
    registry: Registry, image: Schema1Image, tmp_path: Path
) -> None:
    """A layer whose bytes do not match its blobSum: nothing is written."""
    bad = Schema1Image("pypod-s1/bad", "v1", b"a layer of its own\n")
    bad.push(registry, "pypod-s1/bad", "v1")
    path = registry.blob_file(sha(bad.layers[1]))
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    src = f"docker://{registry.host}/pypod-s1/bad:v1"
    proc = pypod_image("copy", "--src-tls-verify=false", src, f"oci:{tmp_path}/bad:s1")
    assert proc.returncode != 0
    assert "digest" in proc.stderr.lower()
    index = tmp_path / "bad" / "index.json"
    assert not index.exists() or json.loads(index.read_text()).get("manifests") in (None, [])


def test_by_digest_and_into_a_registry(
    registry: Registry, image: Schema1Image, tmp_path: Path
) -> None:
    """By the payload's digest (what the registry names it), and pushed on as schema 2."""
    by_digest = f"docker://{registry.host}/{REPO}@{image.payload_digest}"
    opts = CopyOptions(src_ctx=INSECURE, dst_ctx=INSECURE)
    copy_image(parse_image_name(by_digest), parse_image_name(f"oci:{tmp_path}/d:1"), opts)
    _, config, _ = read_layout(tmp_path / "d")
    assert config["rootfs"]["diff_ids"] == image.diff_ids
    dest = f"docker://{registry.host}/pypod-s1/converted:1"
    written = copy_image(parse_image_name(by_digest), parse_image_name(dest), opts)
    with parse_image_name(dest).new_source(INSECURE) as src:
        raw, media_type = src.get_manifest()
    assert raw == written
    assert media_type == "application/vnd.docker.distribution.manifest.v2+json"
    config_digest = json.loads(raw)["config"]["digest"]
    expected = schema2_config(read_schema1(image.manifest), image.diff_ids)
    assert config_digest == sha(expected)
