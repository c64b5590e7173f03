"""The containers-storage transport: images written through its destination and read back."""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pypod.errors import ImageNotFound, InvalidArgument
from pypod.image import local
from pypod.image.transports import parse_image_name
from pypod.image.transports.containers_storage import (
    StorageReference,
    open_store,
    parse_storage_reference,
)
from pypod.image.types import BlobInfo, SystemContext
from pypod.oci import image_spec as spec
from pypod.oci.digest import Digest, DigestMismatch, digest_bytes
from tests.image_fixtures import (
    BuiltImage,
    build_image,
    busybox_layer,
    context,
    small_layer,
    write_image,
)

pytestmark = [pytest.mark.root]


@pytest.fixture(params=["overlay", "vfs"])
def ctx(request: pytest.FixtureRequest, tmp_path: Path, busybox: str) -> Iterator[SystemContext]:
    c = context(tmp_path / "root", tmp_path / "run", driver=request.param)
    yield c
    _unmount_below(tmp_path)


def _unmount_below(path: Path) -> None:
    with open("/proc/self/mounts") as f:
        mounts = [line.split()[1] for line in f]
    for m in reversed(mounts):
        if m.startswith(str(path)):
            os.system(f"umount -l {m}")


def _store(ctx: SystemContext):  # type: ignore[no-untyped-def]
    return open_store(parse_storage_reference("x").store_location(ctx))


def _read_all(ref: StorageReference, ctx: SystemContext) -> tuple[bytes, str, bytes, list[bytes]]:
    with ref.new_source(ctx) as src:
        manifest, media_type = src.get_manifest()
        doc = json.loads(manifest)
        stream, size = src.get_blob(BlobInfo(digest=doc["config"]["digest"]))
        with stream:
            config = stream.read()
        assert size == len(config)
        layers = []
        for desc in doc["layers"]:
            stream, size = src.get_blob(BlobInfo(digest=desc["digest"], size=desc["size"]))
            with stream:
                data = stream.read()
            assert len(data) == size == desc["size"]
            assert digest_bytes(data) == desc["digest"]
            layers.append(data)
    return manifest, media_type, config, layers


def test_reference_syntax() -> None:
    ref = parse_storage_reference("busybox")
    assert str(ref.name) == "docker.io/library/busybox:latest"
    ref = parse_storage_reference("[vfs@/var/lib/x+/run/x]quay.io/a/b:1")
    assert ref.location is not None and ref.location.driver == "vfs"
    assert ref.location.graphroot == "/var/lib/x" and ref.location.runroot == "/run/x"
    assert ref.string_within_transport() == "[vfs@/var/lib/x+/run/x]quay.io/a/b:1"
    image_id = "a" * 64
    assert parse_storage_reference("@" + image_id).image_id == image_id
    assert parse_storage_reference(image_id).image_id == image_id
    both = parse_storage_reference(f"busybox:1@{image_id}")
    assert both.image_id == image_id and str(both.name) == "docker.io/library/busybox:1"
    with pytest.raises(InvalidArgument):
        parse_storage_reference("[relative+/run]x")
    with pytest.raises(InvalidArgument):
        parse_storage_reference("Upper/Case")
    via_registry = parse_image_name("containers-storage:busybox")
    assert via_registry.transport_name == "containers-storage"


def test_write_and_read_back(ctx: SystemContext, tmp_path: Path) -> None:
    layers = [busybox_layer(tmp_path), small_layer(tmp_path, "hello", "hello world\n")]
    image = build_image(layers)
    write_image(ctx, "busybox:test", image)
    with _store(ctx) as store:
        stored = store.image("docker.io/library/busybox:test")
        assert stored.id == image.id
        assert stored.digest == image.manifest_digest
        assert [layer.diff_id for layer in reversed(store.chain(stored.top_layer))] == [
            digest_bytes(t) for t in layers
        ]
        # the content is there: the second layer's file on top of busybox
        top = store.layer(stored.top_layer or "")
        assert (Path(store.driver.diff_path(top.id)) / "etc" / "hello").read_text() == (
            "hello world\n"
        )
    manifest, media_type, config, blobs = _read_all(parse_storage_reference("busybox:test"), ctx)
    # the layers' tars are rebuilt byte for byte (the recorded tar layout and the files): the
    # config and image id are kept; the manifest names the tars uncompressed
    assert media_type == spec.OCI_MANIFEST
    doc = json.loads(manifest)
    assert [d["mediaType"] for d in doc["layers"]] == [spec.OCI_LAYER, spec.OCI_LAYER]
    assert config == image.config and blobs == layers
    # without the recorded layout, GNU tar's bytes cannot be rebuilt: pypod's exporter writes
    # new tars, and a new config names them; the files and image settings are the same
    shutil.rmtree(Path(ctx.graphroot or "") / "tar-split")
    manifest, media_type, config, blobs = _read_all(parse_storage_reference("busybox:test"), ctx)
    cdoc, original = json.loads(config), json.loads(image.config)
    assert config != image.config
    assert cdoc["rootfs"]["diff_ids"] == [digest_bytes(b) for b in blobs]
    assert cdoc["config"] == original["config"] and cdoc["history"] == original["history"]
    # writing what was read gives the same files again (a round trip through the store)
    back = BuiltImage(blobs, cdoc["rootfs"]["diff_ids"], config, manifest, media_type)
    write_image(ctx, "localhost/roundtrip:1", back)
    with _store(ctx) as store:
        again = store.image("localhost/roundtrip:1")
        assert again.id == digest_bytes(config).partition(":")[2]
        top = store.layer(again.top_layer or "")
        assert (Path(store.driver.diff_path(top.id)) / "etc" / "hello").read_text() == (
            "hello world\n"
        )
    # and now the stored tars are pypod's own: served unchanged, with the stored manifest
    manifest2, _, config2, blobs2 = _read_all(parse_storage_reference("localhost/roundtrip:1"), ctx)
    assert manifest2 == manifest and config2 == config and blobs2 == blobs


def test_layers_reused_by_chain_id_and_digest(ctx: SystemContext, tmp_path: Path) -> None:
    base = busybox_layer(tmp_path)
    first = build_image([base])
    write_image(ctx, "localhost/base:1", first)
    second = build_image([base, small_layer(tmp_path, "two", "2\n")], cmd=("/bin/true",))
    with _store(ctx) as store:
        before = {layer.id for layer in store.layers()}
    ref = parse_storage_reference("localhost/second:1")
    with ref.new_destination(ctx) as dst:
        reused = dst.try_reusing_blob(BlobInfo(digest=Digest(digest_bytes(second.layers[0]))))
        assert reused is not None  # the base layer is stored: not sent again
        blob = second.layers[1]
        info = BlobInfo(digest=Digest(digest_bytes(blob)), size=len(blob))
        assert dst.try_reusing_blob(info) is None
        dst.put_blob(io.BytesIO(blob), info, is_config=False)
        cinfo = BlobInfo(digest=Digest(digest_bytes(second.config)), size=len(second.config))
        dst.put_blob(io.BytesIO(second.config), cinfo, is_config=True)
        dst.put_manifest(second.manifest, second.media_type)
        dst.commit()
    with _store(ctx) as store:
        after = {layer.id for layer in store.layers()}
        assert len(after - before) == 1  # only the new layer was stored
        assert store.image("localhost/second:1").id == second.id


def test_diff_id_mismatch_stores_nothing(ctx: SystemContext, tmp_path: Path) -> None:
    good = busybox_layer(tmp_path)
    image = build_image([good])
    # the config claims a diff id the layer does not have
    lying = build_image([small_layer(tmp_path, "x", "x\n")])
    cdoc = json.loads(lying.config)
    cdoc["rootfs"]["diff_ids"] = [digest_bytes(b"something else")]
    config = json.dumps(cdoc).encode()
    mdoc = json.loads(lying.manifest)
    mdoc["config"]["digest"], mdoc["config"]["size"] = digest_bytes(config), len(config)
    bad = BuiltImage(lying.layers, cdoc["rootfs"]["diff_ids"], config,
                     json.dumps(mdoc).encode(), lying.media_type)  # fmt: skip
    with pytest.raises(DigestMismatch):
        write_image(ctx, "localhost/bad:1", bad)
    with _store(ctx) as store:
        assert store.images() == [] and store.layers() == []
    # a blob that is not what its digest says is refused at put_blob
    ref = parse_storage_reference("localhost/bad:2")
    with ref.new_destination(ctx) as dst, pytest.raises(DigestMismatch):
        dst.put_blob(io.BytesIO(b"tampered"), BlobInfo(digest=Digest(digest_bytes(good))),
                     is_config=False)  # fmt: skip
    write_image(ctx, "localhost/good:1", image)  # the store still works


def test_docker_schema2_uncompressed_served_unchanged_when_canonical(
    ctx: SystemContext, tmp_path: Path
) -> None:
    """An image whose layer tars came from pypod's exporter reads back byte for byte."""
    image = build_image([busybox_layer(tmp_path)], docker=True)
    write_image(ctx, "localhost/d:1", image)
    manifest, media_type, config, blobs = _read_all(parse_storage_reference("localhost/d:1"), ctx)
    assert media_type == spec.DOCKER_MANIFEST
    again = BuiltImage(blobs, [digest_bytes(b) for b in blobs], config, manifest, media_type)
    write_image(ctx, "localhost/d:2", again)
    assert _read_all(parse_storage_reference("localhost/d:2"), ctx)[0] == manifest


def test_names_ids_and_local_helpers(ctx: SystemContext, tmp_path: Path) -> None:
    image = build_image([busybox_layer(tmp_path)], labels={"a": "b"})
    write_image(ctx, "busybox", image)
    by_id = parse_storage_reference("@" + image.id)
    assert _read_all(by_id, ctx)[3]
    with pytest.raises(ImageNotFound):
        parse_storage_reference("nothere").new_source(ctx)
    with _store(ctx) as store:
        assert local.find_image(store, "busybox").id == image.id
        assert local.find_image(store, image.id[:12]).id == image.id
        assert local.image_exists(store, "library/busybox:latest")
        assert not local.image_exists(store, "busybox:other")
        local.tag_image(store, "busybox", ["mine", "quay.io/me/bb:2"])
        assert set(store.image(image.id).names) == {
            "docker.io/library/busybox:latest", "localhost/mine:latest", "quay.io/me/bb:2",
        }  # fmt: skip
        summaries = local.list_images(store)
        assert [s.labels for s in summaries] == [{"a": "b"}]
        reports = local.remove_images(store, [image.id])
        assert reports[0].error is not None and "more than one tag" in str(reports[0].error)
        reports = local.remove_images(store, ["mine"])
        assert reports[0].untagged == ("localhost/mine:latest",) and reports[0].deleted is None
        local.untag_image(store, "busybox")
        assert store.image(image.id).names == ()
        assert local.prune_images(store) == [image.id]
        assert store.images() == [] and store.layers() == []
        assert os.listdir(Path(ctx.graphroot or "") / "tar-split") == []


def test_delete_through_reference(ctx: SystemContext, tmp_path: Path) -> None:
    write_image(ctx, "localhost/gone:1", build_image([busybox_layer(tmp_path)]))
    parse_storage_reference("localhost/gone:1").delete(ctx)
    with _store(ctx) as store:
        assert store.images() == []


def test_a_layer_applied_as_it_arrives_is_dropped_when_its_digest_is_wrong(
    ctx: SystemContext, tmp_path: Path
) -> None:
    """The blob is a good layer tar, but not the one announced: it was applied while it
    arrived (overlay) or staged (vfs), and nothing of it stays once the digest is found wrong;
    nor when the commit that would use staged layers never comes."""
    import gzip

    good = gzip.compress(busybox_layer(tmp_path))
    other = gzip.compress(small_layer(tmp_path, "x", "x\n"))
    ref = parse_storage_reference("localhost/bad:3")
    with ref.new_destination(ctx) as dst:
        with pytest.raises(DigestMismatch):
            dst.put_blob(io.BytesIO(other), BlobInfo(digest=Digest(digest_bytes(good))),
                         is_config=False)  # fmt: skip
        dst.put_blob(io.BytesIO(good), BlobInfo(digest=Digest(digest_bytes(good))),
                     is_config=False)  # fmt: skip
        # no manifest, no commit: what was staged goes when the destination closes
    with _store(ctx) as store:
        assert store.layers() == [] and store.images() == []
        assert store._q("SELECT COUNT(*) FROM layers")[0][0] == 0
        assert store.driver.layer_ids() == []
        layouts = os.path.join(store.graphroot, "tar-split")
        assert not os.path.exists(layouts) or not os.listdir(layouts)
    write_image(ctx, "localhost/good:1", build_image([busybox_layer(tmp_path)]))


def test_the_same_layer_twice_in_one_image(ctx: SystemContext, tmp_path: Path) -> None:
    """Images often repeat a layer (an empty one): it is sent once, staged once, and stored at
    both places of the chain (different chain ids), whether the copy sent it once or twice."""
    layer = small_layer(tmp_path, "same", "same\n")
    image = build_image([busybox_layer(tmp_path), layer, layer])
    write_image(ctx, "localhost/twice:1", image)  # sends the repeated blob once
    blob = image.layers[1]
    again = build_image([layer, layer], docker=True)
    ref = parse_storage_reference("localhost/twice:2")
    with ref.new_destination(ctx) as dst:  # sends it twice, as parallel copies can
        for data in again.layers:
            dst.put_blob(io.BytesIO(data), BlobInfo(digest=Digest(digest_bytes(data))),
                         is_config=False)  # fmt: skip
        info = BlobInfo(digest=Digest(digest_bytes(again.config)), size=len(again.config))
        dst.put_blob(io.BytesIO(again.config), info, is_config=True)
        dst.put_manifest(again.manifest, again.media_type)
        dst.commit()
    with _store(ctx) as store:
        for name, count in (("localhost/twice:1", 3), ("localhost/twice:2", 2)):
            chain = store.chain(store.image(name).top_layer)
            assert len(chain) == count and len({x.id for x in chain}) == count
        assert digest_bytes(blob) in {x.compressed_digest for x in store.layers()}
    _, _, _, layers = _read_all(parse_storage_reference("localhost/twice:1"), ctx)
    assert len(layers) == 3 and layers[1] == layers[2]
