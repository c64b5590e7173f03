"""Docker schema 1 reading (pypod.image.copy.schema1) and its copy through the pipeline between
local transports (dir: holding a schema 1 manifest, as skopeo's dir: transport can)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from pypod.errors import InvalidArgument
from pypod.image.copy import CopyOptions, copy_image
from pypod.image.copy.schema1 import (
    DiffIDReader,
    go_time,
    inspect_document,
    manifest_bytes,
    oci_config,
    read_schema1,
    schema1_layer_infos,
    schema2_config,
)
from pypod.image.transports import parse_image_name
from pypod.oci.digest import Digest, DigestMismatch
from pypod.oci.image_spec import DOCKER_MANIFEST, Descriptor, ImageManifest


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def vid(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


EMPTY = gzip.compress(tar_of({}), mtime=0)
BASE_TAR = tar_of({"etc/base": b"base\n"})
TOP_TAR = tar_of({"etc/top": b"top\n"})
BASE, TOP = gzip.compress(BASE_TAR, mtime=0), gzip.compress(TOP_TAR, mtime=0)


def compat(n: int, parent: int | None, **more: Any) -> str:
    doc: dict[str, Any] = {"id": vid(n)}
    if parent is not None:
        doc["parent"] = vid(parent)
    doc.update(more)
    return json.dumps(doc)


def manifest(layers: list[str], history: list[str], **more: Any) -> bytes:
    doc: dict[str, Any] = {
        "schemaVersion": 1, "name": "x/y", "tag": "1", "architecture": "amd64",
        "fsLayers": [{"blobSum": d} for d in layers],
        "history": [{"v1Compatibility": h} for h in history],
    }  # fmt: skip
    doc.update(more)
    return json.dumps(doc, indent=3).encode()


TOP_V1 = compat(
    2, 1, created="2024-01-03T00:00:00.000000000Z", author="me <m@e>", docker_version="1.13.1",
    architecture="amd64", os="linux", Size=7, throwaway=False, parent_id="x", layer_id="y",
    container_config={"Cmd": ["/bin/sh", "-c", "echo top > /etc/top"]},
    config={"Env": ["A=b"], "Cmd": ["sh"], "Labels": {"k": "v"}},
)  # fmt: skip
THREE = manifest(
    [sha(TOP), sha(EMPTY), sha(BASE)],
    [
        TOP_V1,
        compat(1, 0, created="2024-01-02T00:00:00+00:00", throwaway=True,
               container_config={"Cmd": ["/bin/sh", "-c", "#(nop) ENV A=b"]}),
        compat(0, None, created="2024-01-01T00:00:00.5Z", comment="base"),
    ],
)  # fmt: skip


# --------------------------------------------------------------------------- parsing


def test_layer_infos_base_first_with_empty_layers_marked() -> None:
    m = read_schema1(THREE)
    assert schema1_layer_infos(m) == [(sha(BASE), False), (sha(EMPTY), True), (sha(TOP), False)]
    assert m.layers() == (sha(BASE), sha(TOP))


def test_consecutive_repeated_ids_are_dropped() -> None:
    raw = manifest([sha(TOP), sha(TOP), sha(BASE)],
                   [compat(1, 0), compat(1, 0), compat(0, None)])  # fmt: skip
    m = read_schema1(raw)
    assert m.fs_layers == (sha(TOP), sha(BASE)) and len(m.v1_compatibility) == 2


@pytest.mark.parametrize(
    ("history", "message"),
    [
        ([compat(1, 0), json.dumps({"id": "nothex"})], "image ID 'nothex' is invalid"),
        ([compat(1, 0), compat(0, 5)], "base layer has a parent"),
        ([compat(1, 2), compat(0, None)], "invalid parent ID"),
        ([compat(0, None), compat(1, 0), compat(0, None)], "appears several times"),
        ([compat(1, 0), "[1]"], "not a JSON object"),
        ([compat(1, 0), "{"], "not valid JSON"),
    ],
)
def test_malformed_layer_chains_are_refused(history: list[str], message: str) -> None:
    raw = manifest([sha(BASE)] * len(history), history)
    with pytest.raises(InvalidArgument, match=message):
        read_schema1(raw)


def test_fs_layers_and_history_must_match() -> None:
    with pytest.raises(InvalidArgument, match="must match"):
        read_schema1(manifest([sha(TOP), sha(BASE)], [compat(0, None)]))


# --------------------------------------------------------------------------- configs


def test_schema2_config_as_containers_image_builds_it() -> None:
    m = read_schema1(THREE)
    raw = schema2_config(m, [sha(BASE_TAR), sha(TOP_TAR)])
    doc = json.loads(raw)
    assert list(doc) == sorted(doc)  # a Go map: sorted keys
    for key in ("id", "parent", "parent_id", "layer_id", "throwaway", "Size"):
        assert key not in doc
    assert doc["rootfs"] == {"type": "layers", "diff_ids": [sha(BASE_TAR), sha(TOP_TAR)]}
    assert doc["history"] == [
        {"created": "2024-01-01T00:00:00.5Z", "comment": "base"},
        {"created": "2024-01-02T00:00:00Z", "created_by": "/bin/sh -c #(nop) ENV A=b",
         "empty_layer": True},
        {"created": "2024-01-03T00:00:00Z", "author": "me <m@e>",
         "created_by": "/bin/sh -c echo top > /etc/top"},
    ]  # fmt: skip
    assert list(doc["history"][2]) == ["created", "author", "created_by"]
    assert doc["config"] == {"Env": ["A=b"], "Cmd": ["sh"], "Labels": {"k": "v"}}
    assert doc["docker_version"] == "1.13.1" and doc["container_config"]
    # Go's encoding/json escapes HTML characters, compact
    assert b"me \\u003cm@e\\u003e" in raw and b"\\u003e /etc/top" in raw and b": " not in raw


def test_oci_config_keeps_the_oci_fields_in_their_order() -> None:
    raw = oci_config(read_schema1(THREE), [sha(BASE_TAR), sha(TOP_TAR)])
    doc = json.loads(raw)
    assert doc["rootfs"]["diff_ids"] == [sha(BASE_TAR), sha(TOP_TAR)]
    assert json.loads(oci_config(read_schema1(THREE), ["", ""]))["rootfs"]["diff_ids"] == ["", ""]
    assert list(doc) == ["created", "author", "architecture", "os", "config", "rootfs", "history"]
    assert doc["created"] == "2024-01-03T00:00:00Z"
    assert list(doc["history"][2]) == ["created", "created_by", "author"]
    assert b"\\u003c" in raw


def test_go_time() -> None:
    assert go_time("2024-01-01T00:00:00.120000Z") == "2024-01-01T00:00:00.12Z"
    assert go_time("2024-01-01T00:00:00.1234567891Z") == "2024-01-01T00:00:00.123456789Z"
    assert go_time("2024-01-01T01:00:00+01:00") == "2024-01-01T01:00:00+01:00"
    assert go_time(None) == go_time("garbage") == "0001-01-01T00:00:00Z"


def test_inspect_document() -> None:
    doc = inspect_document(read_schema1(THREE))
    assert doc["Created"] == "2024-01-03T00:00:00Z" and doc["DockerVersion"] == "1.13.1"
    assert doc["Labels"] == {"k": "v"} and doc["Env"] == ["A=b"]
    assert doc["Layers"] == [sha(BASE), sha(EMPTY), sha(TOP)]
    assert next(iter(doc)) == "Tag" and doc["Tag"] == "1"
    assert "LayersData" not in doc  # skopeo shows none for schema 1 (no sizes)


def test_schema2_manifest_descriptors_in_go_order() -> None:
    d = Descriptor(media_type="a", digest=Digest(sha(b"c")), size=1)
    out = manifest_bytes(ImageManifest(schema_version=2, media_type=DOCKER_MANIFEST, config=d,
                                       layers=(d,)))  # fmt: skip
    doc = json.loads(out)
    assert list(doc["config"]) == list(doc["layers"][0]) == ["mediaType", "size", "digest"]


# --------------------------------------------------------------------------- diff IDs


class Trickle(io.BytesIO):
    """Gives at most `n` bytes a read."""

    def __init__(self, data: bytes, n: int) -> None:
        super().__init__(data)
        self.n = n

    def read(self, size: int | None = -1) -> bytes:
        return super().read(self.n if size is None or size < 0 else min(size, self.n))


@pytest.mark.parametrize("chunk", [1, 3, 7, 1 << 16])
def test_diff_id_of_gzip_plain_and_multi_member(chunk: int) -> None:
    for blob, expected in (
        (TOP, sha(TOP_TAR)),
        (TOP_TAR, sha(TOP_TAR)),
        (gzip.compress(TOP_TAR[:700]) + gzip.compress(TOP_TAR[700:]), sha(TOP_TAR)),
        (b"", sha(b"")),
        (b"abc", sha(b"abc")),
    ):
        reader = DiffIDReader(Trickle(blob, chunk))  # type: ignore[arg-type]
        out = b""
        while data := reader.read(5):
            out += data
        assert out == blob  # passed through unchanged
        assert reader.diff_id() == expected


def test_diff_id_of_zstd_and_unread_rest() -> None:
    zstandard = pytest.importorskip("zstandard")
    blob = zstandard.ZstdCompressor().compress(TOP_TAR)
    reader = DiffIDReader(io.BytesIO(blob))
    reader.read(10)
    assert reader.diff_id() == sha(TOP_TAR)  # reads the rest itself


def test_truncated_gzip_is_refused() -> None:
    reader = DiffIDReader(io.BytesIO(TOP[:-20]))
    with pytest.raises(InvalidArgument, match="truncated gzip"):
        reader.diff_id()


# --------------------------------------------------------------------------- the pipeline


def write_dir(path: Path, raw: bytes, blobs: list[bytes]) -> Path:
    path.mkdir()
    (path / "version").write_text("Directory Transport Version: 1.1\n")
    (path / "manifest.json").write_bytes(raw)
    for b in blobs:
        (path / sha(b).split(":")[1]).write_bytes(b)
    return path


def read_oci(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    (desc,) = json.loads((path / "index.json").read_text())["manifests"]
    m = json.loads((path / "blobs" / desc["digest"].replace(":", "/")).read_text())
    c = json.loads((path / "blobs" / m["config"]["digest"].replace(":", "/")).read_text())
    return m, c


def copy(src: str, dst: str, **opts: Any) -> bytes:
    return copy_image(parse_image_name(src), parse_image_name(dst), CopyOptions(**opts))


def test_copy_schema1_dir_to_oci_and_v2s2(tmp_path: Path) -> None:
    src = write_dir(tmp_path / "src", THREE, [BASE, EMPTY, TOP])
    copy(f"dir:{src}", f"oci:{tmp_path}/oci:1")
    m, c = read_oci(tmp_path / "oci")
    assert m["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert [d["digest"] for d in m["layers"]] == [sha(BASE), sha(TOP)]  # no empty layer
    assert [d["size"] for d in m["layers"]] == [len(BASE), len(TOP)]
    assert c["rootfs"]["diff_ids"] == [sha(BASE_TAR), sha(TOP_TAR)]
    out = copy(f"dir:{src}", f"dir:{tmp_path}/v2s2")
    doc = json.loads(out)
    assert doc["mediaType"] == DOCKER_MANIFEST
    config = json.loads((tmp_path / "v2s2" / doc["config"]["digest"][7:]).read_bytes())
    assert config["rootfs"]["diff_ids"] == [sha(BASE_TAR), sha(TOP_TAR)]
    assert config["docker_version"] == "1.13.1"
    # decompressing for the destination (docker-archive wants plain tars) gives the same ids
    copy(f"dir:{src}", f"docker-archive:{tmp_path}/a.tar:x/y:1")
    with tarfile.open(tmp_path / "a.tar") as t:
        (entry,) = json.load(t.extractfile("manifest.json"))  # type: ignore[arg-type]
        layers = [t.extractfile(n).read() for n in entry["Layers"]]  # type: ignore[union-attr]
        config = json.load(t.extractfile(entry["Config"]))  # type: ignore[arg-type]
    assert layers == [BASE_TAR, TOP_TAR]
    assert config["rootfs"]["diff_ids"] == [sha(BASE_TAR), sha(TOP_TAR)]


def test_signed_schema1_is_read_without_verifying(tmp_path: Path) -> None:
    doc = json.loads(THREE)
    import base64

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    protected = b64(
        json.dumps({"formatLength": len(THREE) - 2, "formatTail": b64(b"\n}")}).encode()
    )
    doc["signatures"] = [{"header": {"alg": "ES256"}, "signature": "AAAA", "protected": protected}]
    signed = THREE[:-2] + b',\n   "signatures": ' + json.dumps(doc["signatures"]).encode() + b"\n}"
    src = write_dir(tmp_path / "src", signed, [BASE, EMPTY, TOP])
    copy(f"dir:{src}", f"oci:{tmp_path}/oci:1")
    _, c = read_oci(tmp_path / "oci")
    assert c["rootfs"]["diff_ids"] == [sha(BASE_TAR), sha(TOP_TAR)]


def test_preserve_digests_and_corrupt_layers_are_refused(tmp_path: Path) -> None:
    src = write_dir(tmp_path / "src", THREE, [BASE, EMPTY, TOP])
    with pytest.raises(InvalidArgument, match="--preserve-digests"):
        copy(f"dir:{src}", f"oci:{tmp_path}/oci:1", preserve_digests=True)
    (src / sha(TOP).split(":")[1]).write_bytes(gzip.compress(b"something else"))
    with pytest.raises(DigestMismatch):
        copy(f"dir:{src}", f"oci:{tmp_path}/bad:1")
    index = tmp_path / "bad" / "index.json"
    assert not index.exists() or not json.loads(index.read_text()).get("manifests")


def test_missing_empty_layer_blob_is_not_needed(tmp_path: Path) -> None:
    """Throwaway layers are not copied, so their blob is never read."""
    src = write_dir(tmp_path / "src", THREE, [BASE, TOP])
    copy(f"dir:{src}", f"oci:{tmp_path}/oci:1")
    m, _ = read_oci(tmp_path / "oci")
    assert len(m["layers"]) == 2
