"""The store's metadata, locks and recovery, with the vfs driver (no mounts, no root needed)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import sqlite3
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pypod.atomic import write_atomic
from pypod.errors import (
    AlreadyExists,
    ContainerNotFound,
    ImageNotFound,
    InUse,
    InvalidArgument,
    LayerNotFound,
    NotFound,
)
from pypod.linux.mounts import unescape_mountinfo as _unescape
from pypod.oci.digest import DigestMismatch
from pypod.storage.drivers import driver_names, get_driver
from pypod.storage.locks import FileLock
from pypod.storage.store import Store, chain_id

MEDIA = "application/vnd.oci.image.manifest.v1+json"


def tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1_700_000_000
            info.uid = os.getuid()
            info.gid = os.getgid()
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def config(diff_ids: list[str], tag: str = "") -> bytes:
    return json.dumps({"rootfs": {"type": "layers", "diff_ids": diff_ids}, "tag": tag}).encode()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(str(tmp_path / "graph"), str(tmp_path / "run"), "vfs")
    try:
        yield s
    finally:
        s.close()


def image_of(store: Store, blobs: list[bytes], names: list[str], tag: str = "") -> str:
    top = None
    diff_ids = []
    for blob in blobs:
        layer = store.put_layer(top, io.BytesIO(blob))
        top = layer.id
        assert layer.diff_id is not None
        diff_ids.append(layer.diff_id)
    return store.put_image(config(diff_ids, tag), b"{}", MEDIA, top, names).id


def test_chain_id() -> None:
    d1 = "sha256:" + "a" * 64
    d2 = "sha256:" + "b" * 64
    assert chain_id(None, d1) == "a" * 64
    expected = hashlib.sha256(f"sha256:{'a' * 64} {d2}".encode()).hexdigest()
    assert chain_id("a" * 64, d2) == expected
    with pytest.raises(InvalidArgument):
        chain_id(None, "nonsense")


def test_same_layer_twice_is_one_layer(store: Store) -> None:
    blob = tar({"a": b"1"})
    first = store.put_layer(None, io.BytesIO(blob))
    second = store.put_layer(None, io.BytesIO(blob))
    assert first == second
    assert first.id == hashlib.sha256(blob).hexdigest()
    assert store.layers() == [first]
    assert store.driver.layer_ids() == [first.id]


def test_compressed_layer_records_both_digests(store: Store) -> None:
    plain = tar({"a": b"x" * 10_000})
    blob = gzip.compress(plain)
    layer = store.put_layer(None, io.BytesIO(blob))
    assert layer.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert layer.compressed_digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert (layer.compressed_size, layer.uncompressed_size) == (len(blob), len(plain))
    assert store.layers_by_compressed_digest(layer.compressed_digest) == [layer]
    assert store.layers_by_diff_id(layer.diff_id) == [layer]


def test_wrong_diff_id_stores_nothing(store: Store) -> None:
    with pytest.raises(DigestMismatch):
        store.put_layer(None, io.BytesIO(tar({"a": b"1"})), diff_id="sha256:" + "0" * 64)
    assert store.layers() == []
    assert store.driver.layer_ids() == []
    assert store._q("SELECT COUNT(*) FROM layers")[0][0] == 0


def test_bad_tar_stores_nothing(store: Store) -> None:
    with pytest.raises(Exception, match="tar"):
        store.put_layer(None, io.BytesIO(tar({"a": b"1"})[:700] + b"\1" * 600))
    assert store._q("SELECT COUNT(*) FROM layers")[0][0] == 0
    assert store.driver.layer_ids() == []
    assert os.listdir(os.path.join(store.runroot, "locks")) == []


def test_unknown_parent(store: Store) -> None:
    with pytest.raises(LayerNotFound):
        store.put_layer("f" * 64, io.BytesIO(tar({"a": b"1"})))
    with pytest.raises(LayerNotFound):
        store.layer("f" * 64)


def test_image_lookup_and_errors(store: Store) -> None:
    a = image_of(store, [tar({"a": b"1"})], ["localhost/a:1"], tag="a")
    image = store.image("localhost/a:1")
    assert image.id == a and image.config_digest == "sha256:" + a
    assert store.image(a[:5]) == image
    assert store.image(image.digest) == image
    assert store.image(image.config_digest) == image
    with pytest.raises(ImageNotFound, match="image not known: nope"):
        store.image("nope")
    with pytest.raises(NotFound):
        store.image_blob(a, "sha256:" + "0" * 64)
    assert json.loads(store.image_blob(a, image.config_digest))["tag"] == "a"


def test_config_that_does_not_match_the_layers_is_refused(store: Store) -> None:
    layer = store.put_layer(None, io.BytesIO(tar({"a": b"1"})))
    with pytest.raises(InvalidArgument, match="diff ids"):
        store.put_image(config(["sha256:" + "0" * 64]), b"{}", MEDIA, layer.id, ["x"])
    with pytest.raises(LayerNotFound):
        store.put_image(config([]), b"{}", MEDIA, "e" * 64, ["x"])
    assert store.images() == []
    assert os.listdir(os.path.join(store.graphroot, "images")) == []


def test_second_manifest_digest_is_added(store: Store) -> None:
    layer = store.put_layer(None, io.BytesIO(tar({"a": b"1"})))
    assert layer.diff_id is not None
    cfg = config([layer.diff_id])
    one = store.put_image(cfg, b'{"a":1}', MEDIA, layer.id, ["x:1"])
    two = store.put_image(cfg, b'{"a":2}', "application/vnd.docker.distribution.manifest.v2+json",
                          layer.id, ["x:2"])  # fmt: skip
    assert two.id == one.id
    assert two.digests == (one.digest, "sha256:" + hashlib.sha256(b'{"a":2}').hexdigest())
    assert two.digest == one.digest and two.names == ("x:1", "x:2")
    assert store.image_blob(two.id, two.digests[1]) == b'{"a":2}'


def test_containers(store: Store) -> None:
    image_id = image_of(store, [tar({"a": b"1"})], ["img"])
    c = store.create_container("img", ["web"], '{"k": 1}')
    assert store.container("web") == c == store.container(c.id[:8])
    assert c.image_id == image_id
    assert store.layer(c.layer_id).parent == store.image("img").top_layer
    with pytest.raises(AlreadyExists, match="web"):
        store.create_container("img", ["web"], "")
    store.set_container_metadata("web", "{}")
    assert store.container("web").metadata == "{}"
    assert [str(x) for x in store.diff("web")] == []
    Path(store.mount_container("web"), "b").write_text("new")
    assert [str(x) for x in store.diff("web")] == ["A /b"]
    assert store.unmount_container("web")
    with pytest.raises(InUse):
        store.delete_image("img")
    store.delete_container("web")
    with pytest.raises(ContainerNotFound):
        store.container("web")
    assert store.containers() == []
    assert len(store.delete_image("img")) == 1
    assert store.layers() == []


def test_disk_usage(store: Store) -> None:
    base = tar({"base": b"b" * 3000})
    image_of(store, [base, tar({"one": b"1"})], ["one"])
    image_of(store, [base, tar({"two": b"2"})], ["two"])
    c = store.create_container("one", ["c"], "")
    Path(store.mount_container("c"), "data").write_bytes(b"z" * 1234)
    usage = store.disk_usage()
    by_name = {u.names[0]: u for u in usage.images}
    base_size = store.layers_by_diff_id("sha256:" + hashlib.sha256(base).hexdigest())[0]
    assert by_name["one"].shared_size == base_size.uncompressed_size
    assert by_name["one"].containers == 1 and by_name["two"].containers == 0
    assert usage.layers_size == sum(x.uncompressed_size or 0 for x in store.layers())
    assert dict(usage.containers)[c.id] >= 1234 + 3000  # vfs: the copy of the image too
    paths = store.storage_paths()
    assert paths.database.endswith("storage.db") and paths.driver == "vfs"


def test_open_removes_dead_incomplete_layers_keeps_live_ones(tmp_path: Path) -> None:
    graph, run = str(tmp_path / "graph"), str(tmp_path / "run")
    store = Store(graph, run, "vfs")
    dead, live = "d" * 64, "e" * 64
    for layer_id in (dead, live):
        store._db.execute(
            "INSERT INTO layers (id, created, incomplete) VALUES (?, 0, 1)", (layer_id,)
        )
        store.driver.create(layer_id, None)
        Path(store.driver.diff_path(layer_id), "f").write_text("partial")
    os.makedirs(os.path.join(graph, "images", "f" * 64))  # blobs of an image never committed
    holder = FileLock(os.path.join(run, "locks", f"{live}.lock"))
    assert holder.try_acquire()  # a live process still applying it
    try:
        fresh = Store.open(graph, run, "vfs")
        rows = {r[0] for r in fresh._q("SELECT id FROM layers")}
        assert rows == {live}
        assert fresh.driver.layer_ids() == [live]
        assert os.listdir(os.path.join(graph, "images")) == []
        fresh.close()
    finally:
        holder.release()
    again = Store.open(graph, run, "vfs")
    assert again._q("SELECT COUNT(*) FROM layers")[0][0] == 0
    assert again.driver.layer_ids() == []
    again.close()
    store.close()


def test_database_is_wal_with_foreign_keys(store: Store) -> None:
    db = sqlite3.connect(os.path.join(store.graphroot, "storage.db"))
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    with pytest.raises(sqlite3.IntegrityError):
        store._db.execute("INSERT INTO layers (id, parent, created) VALUES ('x', 'nope', 0)")


def test_file_lock(tmp_path: Path) -> None:
    path = str(tmp_path / "l.lock")
    a, b = FileLock(path), FileLock(path)
    with a:
        with a:  # reentrant in one thread
            assert not b.try_acquire()
        assert not b.try_acquire()
    assert b.try_acquire()
    b.unlink()
    assert not os.path.exists(path)
    assert a.try_acquire()  # a new file: a lock on the removed one would protect nothing
    b.release()
    a.release()


def test_write_atomic(tmp_path: Path) -> None:
    path = str(tmp_path / "f")
    write_atomic(path, b"one")
    write_atomic(path, b"two")
    assert Path(path).read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["f"]


def test_driver_registry(tmp_path: Path) -> None:
    assert driver_names() == ("overlay", "vfs")
    with pytest.raises(InvalidArgument, match="unknown storage driver"):
        get_driver("btrfs", str(tmp_path))
    assert get_driver("vfs", str(tmp_path / "v")).name == "vfs"


def test_mountinfo_unescape() -> None:
    assert _unescape(r"/a\040b\134c") == "/a b\\c"
    assert _unescape("/plain") == "/plain"


def test_threads_put_layers_at_once(store: Store) -> None:
    import threading

    blobs = [tar({"shared": b"s" * 100_000})] * 3 + [tar({f"f{i}": b"x"}) for i in range(3)]
    results: list[object] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(blobs))

    def put(blob: bytes) -> None:
        try:
            start.wait(10)
            results.append(store.put_layer(None, io.BytesIO(blob)))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=put, args=(b,)) for b in blobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(results) == 6 and len(set(results)) == 4
    assert len(store.layers()) == 4
    assert sorted(store.driver.layer_ids()) == sorted(x.id for x in store.layers())
