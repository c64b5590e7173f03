"""Transports and the copy pipeline: round trips through every transport, the real registry,
and the reference tools (skopeo, umoci) reading what pypod wrote."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pypod.errors import InvalidArgument, NotFound
from pypod.image.copy import CopyOptions, ProgressEvent, copy_image
from pypod.image.transports import parse_image_name
from pypod.image.types import SystemContext
from pypod.oci.digest import DigestMismatch
from tests.image_support import (
    Image,
    Registry,
    busybox_layer,
    sha,
    start_registry,
    tar_of_files,
    write_oci_index,
)

INSECURE = SystemContext(tls_verify=False)
TO_REGISTRY = CopyOptions(dst_ctx=INSECURE)
FROM_REGISTRY = CopyOptions(src_ctx=INSECURE)


def copy(src: str, dst: str, options: CopyOptions | None = None) -> bytes:
    return copy_image(parse_image_name(src), parse_image_name(dst), options or CopyOptions())


def manifest_of(ref: str, ctx: SystemContext | None = None) -> tuple[dict[str, object], str]:
    with parse_image_name(ref).new_source(ctx or SystemContext()) as src:
        raw, media_type = src.get_manifest()
    return json.loads(raw), media_type


@pytest.fixture(scope="session")
def image() -> Image:
    if shutil.which("busybox") is None and not os.path.exists("/bin/busybox"):
        pytest.skip("busybox-static is not installed (apt-get install busybox-static)")
    return Image([busybox_layer(), tar_of_files({"etc/motd": b"hello\n"})])


@pytest.fixture
def src_dir(image: Image, tmp_path: Path) -> Path:
    return image.write_dir(tmp_path / "src")


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (apt-get install {tool})")
    return path


# --------------------------------------------------------------------------- local transports


def test_dir_to_oci_and_back_keeps_every_byte(image: Image, src_dir: Path, tmp_path: Path) -> None:
    events: list[ProgressEvent] = []
    written = copy(f"dir:{src_dir}", f"oci:{tmp_path}/layout:v1",
                   CopyOptions(progress=events.append))  # fmt: skip
    assert written == image.manifest
    index = json.loads((tmp_path / "layout/index.json").read_text())
    assert index["manifests"][0]["digest"] == image.digest
    assert index["manifests"][0]["annotations"] == {"org.opencontainers.image.ref.name": "v1"}
    assert json.loads((tmp_path / "layout/oci-layout").read_text()) == {
        "imageLayoutVersion": "1.0.0"
    }
    copy(f"oci:{tmp_path}/layout:v1", f"dir:{tmp_path}/back")
    for name in os.listdir(src_dir):
        assert (tmp_path / "back" / name).read_bytes() == (src_dir / name).read_bytes(), name
    messages = [e.message for e in events]
    assert messages[0] == "Getting image source signatures"
    assert f"Copying blob {sha(image.layers[0])[7:19]} done" in messages
    assert f"Copying config {sha(image.config)[7:19]} done" in messages
    assert "Writing manifest to image destination" in messages


def test_second_copy_skips_blobs_the_destination_has(src_dir: Path, tmp_path: Path) -> None:
    copy(f"dir:{src_dir}", f"oci:{tmp_path}/layout:v1")
    events: list[ProgressEvent] = []
    copy(f"dir:{src_dir}", f"oci:{tmp_path}/layout:v2", CopyOptions(progress=events.append))
    assert [e.kind for e in events].count("blob-skipped") == 2
    names = {m["annotations"]["org.opencontainers.image.ref.name"] for m in json.loads(
        (tmp_path / "layout/index.json").read_text())["manifests"]}  # fmt: skip
    assert names == {"v1", "v2"}


def test_oci_layout_with_several_images_needs_a_name(src_dir: Path, tmp_path: Path) -> None:
    copy(f"dir:{src_dir}", f"oci:{tmp_path}/layout:v1")
    copy(f"dir:{src_dir}", f"oci:{tmp_path}/layout:v2", CopyOptions(manifest_format="oci"))
    with pytest.raises(InvalidArgument, match="more than one image"):
        copy(f"oci:{tmp_path}/layout", f"dir:{tmp_path}/x")
    with pytest.raises(NotFound, match='no descriptor found for reference "nope"'):
        copy(f"oci:{tmp_path}/layout:nope", f"dir:{tmp_path}/x")


def test_format_conversion_oci_to_v2s2_and_back(image: Image, src_dir: Path,
                                                 tmp_path: Path) -> None:  # fmt: skip
    copy(f"dir:{src_dir}", f"dir:{tmp_path}/v2s2", CopyOptions(manifest_format="v2s2"))
    m = json.loads((tmp_path / "v2s2/manifest.json").read_bytes())
    assert m["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert m["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert {layer["mediaType"] for layer in m["layers"]} == {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    }
    assert [layer["digest"] for layer in m["layers"]] == [sha(b) for b in image.layers]
    # oci: takes OCI only: converted back, to the same document
    copy(f"dir:{tmp_path}/v2s2", f"oci:{tmp_path}/layout:back")
    back, media_type = manifest_of(f"oci:{tmp_path}/layout:back")
    assert media_type == "application/vnd.oci.image.manifest.v1+json"
    assert back == json.loads(image.manifest)


def test_preserve_digests_refuses_a_conversion(src_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="preserve-digests"):
        copy(f"dir:{src_dir}", f"dir:{tmp_path}/d",
             CopyOptions(manifest_format="v2s2", preserve_digests=True))  # fmt: skip
    assert not (tmp_path / "d/manifest.json").exists()
    copy(f"dir:{src_dir}", f"oci:{tmp_path}/o:x", CopyOptions(preserve_digests=True))


def test_zstd_recompression_keeps_diff_ids(image: Image, src_dir: Path, tmp_path: Path) -> None:
    copy(f"dir:{src_dir}", f"oci:{tmp_path}/z:zstd", CopyOptions(dest_compression="zstd"))
    m, _ = manifest_of(f"oci:{tmp_path}/z:zstd")
    layers = m["layers"]
    assert isinstance(layers, list)
    assert {layer["mediaType"] for layer in layers} == {
        "application/vnd.oci.image.layer.v1.tar+zstd"
    }
    # into docker-archive: decompressed again, the layer files are the original tars
    copy(f"oci:{tmp_path}/z:zstd", f"docker-archive:{tmp_path}/a.tar:localhost/z:1")
    with tarfile.open(tmp_path / "a.tar") as tar:
        items = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        got = [tar.extractfile(n).read() for n in items[0]["Layers"]]  # type: ignore[union-attr]
    assert got == image.tars
    assert items[0]["RepoTags"] == ["localhost/z:1"]


def test_docker_archive_with_several_images(image: Image, src_dir: Path, tmp_path: Path) -> None:
    from pypod.image.reference import parse_docker
    from pypod.image.transports.docker_archive import ArchiveWriter

    other = Image([tar_of_files({"a": b"other"})], labels={"other": "yes"})
    other_dir = other.write_dir(tmp_path / "other")
    with ArchiveWriter(str(tmp_path / "multi.tar")) as writer:
        for src, name in ((src_dir, "one:1"), (other_dir, "two:2")):
            copy_image(parse_image_name(f"dir:{src}"), writer.reference(parse_docker(name)),
                       CopyOptions())  # fmt: skip
        writer.finish()
    copy(f"docker-archive:{tmp_path}/multi.tar:two:2", f"dir:{tmp_path}/two")
    copy(f"docker-archive:{tmp_path}/multi.tar:@0", f"dir:{tmp_path}/one")
    assert (tmp_path / "two" / sha(other.config)[7:]).read_bytes() == other.config
    assert (tmp_path / "one" / sha(image.config)[7:]).read_bytes() == image.config
    with pytest.raises(InvalidArgument, match="contains 2 images"):
        copy(f"docker-archive:{tmp_path}/multi.tar", f"dir:{tmp_path}/x")
    with pytest.raises(NotFound, match='Tag "three:3" not found'):
        copy(f"docker-archive:{tmp_path}/multi.tar:three:3", f"dir:{tmp_path}/x")


def test_corrupt_local_blob_is_refused(image: Image, src_dir: Path, tmp_path: Path) -> None:
    copy(f"dir:{src_dir}", f"oci:{tmp_path}/layout:good")
    before = sorted(os.listdir(tmp_path / "layout/blobs/sha256"))
    index_before = (tmp_path / "layout/index.json").read_bytes()
    other = Image([tar_of_files({"x": b"x" * 1000})])
    bad = other.write_dir(tmp_path / "bad")
    layer = bad / sha(other.layers[0])[7:]
    data = bytearray(layer.read_bytes())
    data[-20] ^= 0xFF
    layer.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch):
        copy(f"dir:{bad}", f"oci:{tmp_path}/layout:bad")
    assert sorted(os.listdir(tmp_path / "layout/blobs/sha256")) == before
    assert (tmp_path / "layout/index.json").read_bytes() == index_before


def test_all_images_copies_an_index(tmp_path: Path) -> None:
    amd = Image([tar_of_files({"arch": b"amd64"})], arch="amd64")
    arm = Image([tar_of_files({"arch": b"arm64"})], arch="arm64")
    index_digest = write_oci_index(tmp_path / "src", [amd, arm], "multi")
    written = copy(f"oci:{tmp_path}/src:multi", f"oci:{tmp_path}/all:multi",
                   CopyOptions(all_images=True))  # fmt: skip
    assert sha(written) == index_digest
    for img in (amd, arm):
        assert (tmp_path / "all/blobs/sha256" / img.digest[7:]).read_bytes() == img.manifest
    # without --all: the image of one platform only
    copy(f"oci:{tmp_path}/src:multi", f"oci:{tmp_path}/one:x",
         CopyOptions(src_ctx=SystemContext(arch="arm64")))  # fmt: skip
    m, _ = manifest_of(f"oci:{tmp_path}/one:x")
    assert m == json.loads(arm.manifest)
    assert not (tmp_path / "one/blobs/sha256" / sha(amd.layers[0])[7:]).exists()
    # converted to a Docker manifest list with Docker manifests inside
    copy(f"oci:{tmp_path}/src:multi", f"dir:{tmp_path}/list",
         CopyOptions(all_images=True, manifest_format="v2s2"))  # fmt: skip
    top = json.loads((tmp_path / "list/manifest.json").read_bytes())
    assert top["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    assert [m["platform"]["architecture"] for m in top["manifests"]] == ["amd64", "arm64"]
    for entry in top["manifests"]:
        sub = (tmp_path / "list" / f"{entry['digest'][7:]}.manifest.json").read_bytes()
        assert sha(sub) == entry["digest"]


def test_unknown_transport_and_bad_references() -> None:
    with pytest.raises(InvalidArgument, match='unknown transport "foo"'):
        parse_image_name("foo:bar")
    with pytest.raises(InvalidArgument, match="expected colon-separated transport:reference"):
        parse_image_name("busybox")
    with pytest.raises(InvalidArgument, match="does not start with //"):
        parse_image_name("docker:busybox")
    with pytest.raises(InvalidArgument, match="must be lowercase"):
        parse_image_name("docker://Busy")
    ref = parse_image_name("docker://busybox")
    assert ref.string_within_transport() == "//docker.io/library/busybox:latest"


# --------------------------------------------------------------------------- registry


@pytest.mark.registry
def test_round_trip_through_every_transport(image: Image, src_dir: Path, tmp_path: Path,
                                            registry: Registry) -> None:  # fmt: skip
    remote = f"docker://{registry.host}/pypod/roundtrip:tag"
    copy(f"dir:{src_dir}", f"oci:{tmp_path}/layout:v1")
    copy(f"oci:{tmp_path}/layout:v1", remote, TO_REGISTRY)
    copy(remote, f"oci-archive:{tmp_path}/img.tar:v1", FROM_REGISTRY)
    copy(f"oci-archive:{tmp_path}/img.tar:v1", f"docker-archive:{tmp_path}/d.tar:x/y:z")
    copy(f"docker-archive:{tmp_path}/d.tar", f"dir:{tmp_path}/end")
    end = json.loads((tmp_path / "end/manifest.json").read_bytes())
    assert end["config"]["digest"] == sha(image.config)
    assert (tmp_path / "end" / sha(image.config)[7:]).read_bytes() == image.config
    for layer, tar in zip(end["layers"], image.tars, strict=True):
        assert layer["digest"] == sha(tar)  # docker-archive layers are the uncompressed tars
    # the registry kept the image as written: same manifest digest
    m, _ = manifest_of(remote, INSECURE)
    assert m == json.loads(image.manifest)
    catalog = subprocess.run(["curl", "-sf", f"http://{registry.host}/v2/_catalog"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "pypod/roundtrip" in json.loads(catalog)["repositories"]


@pytest.mark.registry
def test_index_pushed_with_all(tmp_path: Path, registry: Registry) -> None:
    amd = Image([tar_of_files({"arch": b"amd64 x"})], arch="amd64")
    arm = Image([tar_of_files({"arch": b"arm64 x"})], arch="arm64")
    index_digest = write_oci_index(tmp_path / "src", [amd, arm], "multi")
    remote = f"docker://{registry.host}/pypod/multi:1"
    copy(f"oci:{tmp_path}/src:multi", remote, CopyOptions(all_images=True, dst_ctx=INSECURE))
    with parse_image_name(remote).new_source(INSECURE) as src:
        raw, media_type = src.get_manifest()
        assert sha(raw) == index_digest and media_type.endswith("index.v1+json")
        sub, _ = src.get_manifest(arm.digest)  # type: ignore[arg-type]
        assert sub == arm.manifest


@pytest.mark.registry
def test_corrupt_registry_blob_is_refused(tmp_path: Path, registry: Registry) -> None:
    img = Image([tar_of_files({"corrupt": os.urandom(4096)})])
    remote = f"docker://{registry.host}/pypod/corrupt:1"
    copy(f"dir:{img.write_dir(tmp_path / 'src')}", remote, TO_REGISTRY)
    good = Image([tar_of_files({"good": b"fine"})])
    copy(f"dir:{good.write_dir(tmp_path / 'good')}", f"oci:{tmp_path}/layout:good")
    blobs_before = sorted(os.listdir(tmp_path / "layout/blobs/sha256"))
    index_before = (tmp_path / "layout/index.json").read_bytes()
    blob = registry.blob_file(sha(img.layers[0]))
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch):
        copy(remote, f"oci:{tmp_path}/layout:bad", FROM_REGISTRY)
    assert sorted(os.listdir(tmp_path / "layout/blobs/sha256")) == blobs_before
    assert (tmp_path / "layout/index.json").read_bytes() == index_before
    copy(f"oci:{tmp_path}/layout:good", f"dir:{tmp_path}/still-good")


# --------------------------------------------------------------------------- reference tools


@pytest.mark.compat
def test_skopeo_and_umoci_read_our_oci_layout(src_dir: Path, tmp_path: Path) -> None:
    skopeo = need("skopeo")
    copy(f"dir:{src_dir}", f"oci:{tmp_path}/layout:v1")
    out = subprocess.run([skopeo, "inspect", f"oci:{tmp_path}/layout:v1"], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    from pypod.image.copy.inspect import inspect_image

    ours = inspect_image(parse_image_name(f"oci:{tmp_path}/layout:v1"), SystemContext()).document
    theirs = json.loads(out)
    ours.pop("LayersData")  # skopeo 1.9 does not show it yet
    assert ours == theirs
    umoci = need("umoci")
    stat = subprocess.run([umoci, "stat", "--image", f"{tmp_path}/layout:v1"],
                          capture_output=True, text=True)  # fmt: skip
    assert stat.returncode == 0, stat.stderr
    ls = subprocess.run([umoci, "ls", "--layout", f"{tmp_path}/layout"], capture_output=True,
                        text=True, check=True).stdout  # fmt: skip
    assert ls.split() == ["v1"]
    # skopeo copies it on, and pypod reads what skopeo wrote
    subprocess.run([skopeo, "copy", f"oci:{tmp_path}/layout:v1", f"oci:{tmp_path}/sk:v1"],
                   check=True, capture_output=True)  # fmt: skip
    copy(f"oci:{tmp_path}/sk:v1", f"dir:{tmp_path}/from-skopeo")


@pytest.mark.compat
@pytest.mark.registry
def test_skopeo_push_then_pypod_pull_and_back(image: Image, src_dir: Path, tmp_path: Path,
                                              registry: Registry) -> None:  # fmt: skip
    skopeo = need("skopeo")
    remote = f"docker://{registry.host}/pypod/by-skopeo:1"
    subprocess.run([skopeo, "copy", "--dest-tls-verify=false", f"dir:{src_dir}", remote],
                   check=True, capture_output=True)  # fmt: skip
    copy(remote, f"dir:{tmp_path}/back", FROM_REGISTRY)
    assert (tmp_path / "back" / sha(image.config)[7:]).read_bytes() == image.config
    # and skopeo reads what pypod pushed, and a docker-archive pypod wrote
    mine = f"docker://{registry.host}/pypod/by-pypod:1"
    copy(f"dir:{src_dir}", mine, TO_REGISTRY)
    out = subprocess.run([skopeo, "inspect", "--tls-verify=false", mine], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    assert json.loads(out)["Digest"] == image.digest
    copy(f"dir:{src_dir}", f"docker-archive:{tmp_path}/d.tar:pypod/x:1")
    subprocess.run([skopeo, "copy", f"docker-archive:{tmp_path}/d.tar", f"dir:{tmp_path}/sk"],
                   check=True, capture_output=True)  # fmt: skip
    assert (tmp_path / "sk" / sha(image.config)[7:]).read_bytes() == image.config


@pytest.mark.compat
@pytest.mark.slow
def test_podman_loads_our_docker_archive_and_we_read_podman_save(
    image: Image, src_dir: Path, tmp_path: Path
) -> None:
    podman = need("podman")
    if os.geteuid() != 0:
        pytest.skip("podman with a private --root needs root here")
    import tempfile

    runroot = tempfile.mkdtemp(prefix="pypod-pm-")  # podman wants a runroot of < 50 characters
    base = [podman, "--root", str(tmp_path / "root"), "--runroot", runroot,
            "--tmpdir", f"{runroot}/tmp", "--storage-driver", "vfs"]  # fmt: skip
    copy(f"dir:{src_dir}", f"docker-archive:{tmp_path}/ours.tar:localhost/pypod/ours:1")
    try:
        loaded = subprocess.run([*base, "load", "-i", str(tmp_path / "ours.tar")],
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert loaded.returncode == 0, loaded.stderr
        assert "Loaded image: localhost/pypod/ours:1" in loaded.stdout
        saved = subprocess.run([*base, "save", "-o", str(tmp_path / "theirs.tar"),
                                "localhost/pypod/ours:1"], capture_output=True, text=True,
                               timeout=120)  # fmt: skip
        assert saved.returncode == 0, saved.stderr
        copy(f"docker-archive:{tmp_path}/theirs.tar:localhost/pypod/ours:1", f"dir:{tmp_path}/d")
        assert (tmp_path / "d" / sha(image.config)[7:]).read_bytes() == image.config
        m = json.loads((tmp_path / "d/manifest.json").read_bytes())
        assert [layer["digest"] for layer in m["layers"]] == [sha(t) for t in image.tars]
    finally:
        subprocess.run([*base, "rmi", "-a", "-f"], capture_output=True, timeout=120)
        shutil.rmtree(runroot, ignore_errors=True)


def test_diff_id_mismatch_is_refused_when_decompressing(tmp_path: Path) -> None:
    img = Image([tar_of_files({"f": b"real"})])
    config = json.loads(img.config)
    config["rootfs"]["diff_ids"] = [sha(b"something else")]
    img.config = json.dumps(config).encode()
    manifest = json.loads(img.manifest)
    manifest["config"].update(digest=sha(img.config), size=len(img.config))
    img.manifest = json.dumps(manifest).encode()
    with pytest.raises(DigestMismatch, match="image configuration says"):
        copy(f"dir:{img.write_dir(tmp_path / 'src')}", f"docker-archive:{tmp_path}/a.tar:x:1")
    assert not (tmp_path / "a.tar").exists()


@pytest.mark.registry
def test_copy_within_a_registry_mounts_blobs(tmp_path: Path, registry: Registry) -> None:
    img = Image([tar_of_files({"mount": b"me"}), tar_of_files({"and": b"me"})])
    first = f"docker://{registry.host}/pypod/mount-a:1"
    copy(f"dir:{img.write_dir(tmp_path / 'src')}", first, TO_REGISTRY)
    events: list[ProgressEvent] = []
    second = f"docker://{registry.host}/pypod/mount-b:1"
    copy(first, second,
         CopyOptions(src_ctx=INSECURE, dst_ctx=INSECURE, progress=events.append))  # fmt: skip
    assert [e.kind for e in events].count("blob-skipped") == 2  # mounted, not uploaded
    m, _ = manifest_of(second, INSECURE)
    assert m == json.loads(img.manifest)
    copy(second, f"dir:{tmp_path}/back", FROM_REGISTRY)


def test_parallel_copies_into_one_layout_all_land(src_dir: Path, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    tags = [f"t{i}" for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda t: copy(f"dir:{src_dir}", f"oci:{tmp_path}/layout:{t}"), tags))
    names = [m["annotations"]["org.opencontainers.image.ref.name"] for m in json.loads(
        (tmp_path / "layout/index.json").read_text())["manifests"]]  # fmt: skip
    assert sorted(names) == tags


def test_delete_from_an_oci_layout_removes_unused_blobs(src_dir: Path, tmp_path: Path) -> None:
    copy(f"dir:{src_dir}", f"oci:{tmp_path}/layout:a")
    other = Image([tar_of_files({"only": b"in b"})])
    copy(f"dir:{other.write_dir(tmp_path / 'other')}", f"oci:{tmp_path}/layout:b")
    parse_image_name(f"oci:{tmp_path}/layout:b").delete(SystemContext())
    blobs = set(os.listdir(tmp_path / "layout/blobs/sha256"))
    assert sha(other.layers[0])[7:] not in blobs and sha(other.config)[7:] not in blobs
    copy(f"oci:{tmp_path}/layout:a", f"dir:{tmp_path}/a")  # still whole
    with pytest.raises(NotFound):
        copy(f"oci:{tmp_path}/layout:b", f"dir:{tmp_path}/b")
