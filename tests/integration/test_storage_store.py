"""The store on this kernel, as root: overlay and vfs drivers, images, containers, crash
recovery and two processes at once.  Layers are tarballs made here with tarfile."""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pypod.errors import InUse
from pypod.linux import syscalls
from pypod.storage.drivers.mountstate import mount_points
from pypod.storage.store import Store
from tests.storage_support import killed_child

pytestmark = pytest.mark.root

MEDIA = "application/vnd.oci.image.manifest.v1+json"
MTIME = 1_700_000_000


# --- layer tarballs ------------------------------------------------------------------------
def _info(name: str, kind: bytes, mode: int, **kw: Any) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.mtime = kw.pop("mtime", MTIME)
    ti.uid = kw.pop("uid", 0)
    ti.gid = kw.pop("gid", 0)
    for key, value in kw.items():
        setattr(ti, key, value)
    return ti


class TarBuilder:
    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def dir(self, name: str, mode: int = 0o755, **kw: Any) -> TarBuilder:
        self.tar.addfile(_info(name, tarfile.DIRTYPE, mode, **kw))
        return self

    def file(self, name: str, data: bytes, mode: int = 0o644, **kw: Any) -> TarBuilder:
        xattrs = kw.pop("xattrs", None)
        ti = _info(name, tarfile.REGTYPE, mode, **kw)
        ti.size = len(data)
        if xattrs:
            ti.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
        self.tar.addfile(ti, io.BytesIO(data))
        return self

    def symlink(self, name: str, target: str) -> TarBuilder:
        self.tar.addfile(_info(name, tarfile.SYMTYPE, 0o777, linkname=target))
        return self

    def hardlink(self, name: str, target: str) -> TarBuilder:
        self.tar.addfile(_info(name, tarfile.LNKTYPE, 0o644, linkname=target))
        return self

    def chardev(self, name: str, major: int, minor: int, mode: int = 0o666) -> TarBuilder:
        self.tar.addfile(_info(name, tarfile.CHRTYPE, mode, devmajor=major, devminor=minor))
        return self

    def fifo(self, name: str) -> TarBuilder:
        self.tar.addfile(_info(name, tarfile.FIFOTYPE, 0o600))
        return self

    def whiteout(self, name: str) -> TarBuilder:
        parent, _, base = name.rpartition("/")
        return self.file(f"{parent}/.wh.{base}" if parent else f".wh.{base}", b"")

    def opaque(self, directory: str) -> TarBuilder:
        return self.file(f"{directory}/.wh..wh..opq", b"")

    def bytes(self) -> bytes:
        self.tar.close()
        return self.buf.getvalue()


def layer1() -> bytes:
    return (
        TarBuilder()
        .dir("etc")
        .file("etc/hostname", b"base\n")
        .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")
        .file("etc/secret", b"s3cret\n", mode=0o600, uid=1000, gid=1000)
        .file("etc/tagged", b"x", xattrs={"user.pypod": "yes"})
        .hardlink("etc/passwd-link", "etc/passwd")
        .dir("bin")
        .file("bin/tool", b"#!/bin/sh\n", mode=0o4755)
        .symlink("bin/sh", "tool")
        .dir("dev")
        .chardev("dev/null", 1, 3)
        .fifo("dev/pipe")
        .dir("opt")
        .dir("opt/old")
        .file("opt/old/a", b"old a")
        .file("opt/old/b", b"old b")
        .bytes()
    )


def layer2() -> bytes:
    return (
        TarBuilder()
        .dir("etc")
        .file("etc/hostname", b"middle\n")
        .whiteout("etc/secret")
        .dir("opt")
        .dir("opt/old")
        .opaque("opt/old")
        .file("opt/old/c", b"new c")
        .dir("usr")
        .file("usr/readme", b"layer two")
        .bytes()
    )


def layer3() -> bytes:
    return (
        TarBuilder()
        .dir("usr")
        .file("usr/readme", b"layer three", mode=0o640, uid=7, gid=8)
        .whiteout("bin/sh")
        .dir("var")
        .dir("var/log", mode=0o750)
        .bytes()
    )


def config_for(store: Store, top: str | None, tag: str = "") -> bytes:
    diff_ids = [layer.diff_id for layer in reversed(store.chain(top))] if top else []
    return json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"tag": tag}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        },
        sort_keys=True,
    ).encode()


def manifest_for(config: bytes) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                "size": len(config),
            },
            "layers": [],
        }
    ).encode()


def put_image(store: Store, layers: list[bytes], names: list[str], tag: str = "") -> Any:
    top = None
    for blob in layers:
        top = store.put_layer(top, io.BytesIO(blob)).id
    config = config_for(store, top, tag)
    return store.put_image(config, manifest_for(config), MEDIA, top, names)


# --- fixtures ------------------------------------------------------------------------------
def _unmount_below(path: Path) -> None:
    for point in sorted(mount_points(str(path)), key=len, reverse=True):
        try:
            syscalls.umount2(point, syscalls.MNT_DETACH)
        except OSError:
            pass
        except Exception:
            pass


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[Callable[..., Store]]:
    opened: list[Store] = []

    def make(driver: str = "overlay", name: str = "store") -> Store:
        store = Store(str(tmp_path / name / "graph"), str(tmp_path / name / "run"), driver)
        opened.append(store)
        return store

    try:
        yield make
    finally:
        for store in opened:
            store.close()
        _unmount_below(tmp_path)
        assert not mount_points(str(tmp_path)), "mounts left behind"


def tree(root: str) -> dict[str, tuple[Any, ...]]:
    """What a user sees in a root: every entry's type, mode, owner, content, target, device,
    xattrs (files' mtimes too; a directory's mtime changes as its entries do)."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            extra: Any = None
            if stat.S_ISREG(st.st_mode):
                extra = (hashlib.sha256(Path(path).read_bytes()).hexdigest(), st.st_nlink)
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                extra = (os.major(st.st_rdev), os.minor(st.st_rdev))
            xattrs = {}
            if not stat.S_ISLNK(st.st_mode):
                for key in os.listxattr(path, follow_symlinks=False):
                    if key.startswith("user.") or key.startswith("security.capability"):
                        xattrs[key] = os.getxattr(path, key, follow_symlinks=False)
            mtime = None if stat.S_ISDIR(st.st_mode) else st.st_mtime_ns
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, extra, tuple(sorted(xattrs.items())),
                        mtime)  # fmt: skip
    return out


# --- tests ---------------------------------------------------------------------------------
@pytest.mark.parametrize("driver", ["overlay", "vfs"])
def test_three_layers_merge_with_whiteouts(make_store: Callable[..., Store], driver: str) -> None:
    store = make_store(driver)
    image = put_image(store, [layer1(), layer2(), layer3()], ["localhost/three:latest"])
    assert len(store.chain(image.top_layer)) == 3
    container = store.create_container(image.id, ["three"], "{}")
    root = store.mount_container(container.id)
    try:
        assert Path(root, "etc/hostname").read_text() == "middle\n"
        assert not os.path.lexists(os.path.join(root, "etc/secret"))  # whiteout
        assert not os.path.lexists(os.path.join(root, "bin/sh"))  # whiteout of a symlink
        assert sorted(os.listdir(os.path.join(root, "opt/old"))) == ["c"]  # opaque dir
        assert Path(root, "usr/readme").read_text() == "layer three"
        st = os.lstat(os.path.join(root, "usr/readme"))
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (7, 8, 0o640)
        tool = os.lstat(os.path.join(root, "bin/tool"))
        assert stat.S_IMODE(tool.st_mode) == 0o4755
        null = os.lstat(os.path.join(root, "dev/null"))
        assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1
        assert stat.S_ISFIFO(os.lstat(os.path.join(root, "dev/pipe")).st_mode)
        assert os.getxattr(os.path.join(root, "etc/tagged"), "user.pypod") == b"yes"
        a, b = (os.lstat(os.path.join(root, p)) for p in ("etc/passwd", "etc/passwd-link"))
        assert a.st_ino == b.st_ino and a.st_nlink == 2
        assert os.path.ismount(root) == (driver == "overlay")
    finally:
        store.unmount_container(container.id)


def test_overlay_and_vfs_merge_to_the_same_tree(make_store: Callable[..., Store]) -> None:
    roots = {}
    stores = {d: make_store(d, name=d) for d in ("overlay", "vfs")}
    for driver, store in stores.items():
        image = put_image(store, [layer1(), layer2(), layer3()], ["three"])
        container = store.create_container(image.id, ["c"], "")
        roots[driver] = store.mount_container(container.id)
    try:
        over, vfs = tree(roots["overlay"]), tree(roots["vfs"])
        assert over.keys() == vfs.keys()
        assert over == vfs
    finally:
        for store in stores.values():
            store.unmount_container("c")
    # the same layers have the same (chain) ids whatever the driver
    ids = {d: [x.id for x in s.layers() if x.diff_id] for d, s in stores.items()}
    assert ids["overlay"] == ids["vfs"] and len(ids["vfs"]) == 3


@pytest.mark.parametrize("driver", ["overlay", "vfs"])
def test_container_diff_and_export(make_store: Callable[..., Store], driver: str) -> None:
    store = make_store(driver)
    image = put_image(store, [layer1(), layer2()], ["base"])
    container = store.create_container("base", ["work"], "")
    root = store.mount_container("work")
    try:
        Path(root, "etc/added").write_text("new file")
        Path(root, "etc/hostname").write_text("changed\n")
        os.unlink(os.path.join(root, "etc/passwd-link"))
        os.mkdir(os.path.join(root, "srv"))
        Path(root, "srv/data").write_bytes(b"d" * 1000)
        changes = {str(c) for c in store.diff("work")}
        assert {
            "A /etc/added",
            "C /etc/hostname",
            "D /etc/passwd-link",
            "A /srv",
            "A /srv/data",
        } <= changes
        assert not any(c.endswith("/etc/passwd") for c in changes)
        out = io.BytesIO()
        result = store.export_container_diff("work", out, compression="gzip")
        assert result.digest == "sha256:" + hashlib.sha256(out.getvalue()).hexdigest()
        with tarfile.open(fileobj=io.BytesIO(out.getvalue()), mode="r:gz") as tf:
            names = set(tf.getnames())
        assert {"etc/added", "etc/hostname", "etc/.wh.passwd-link", "srv/data"} <= names
        # commit: the exported diff applied as a new layer gives the container's tree
        committed = store.put_layer(image.top_layer, io.BytesIO(out.getvalue()))
        assert committed.diff_id == result.diff_id
        assert committed.compressed_digest == result.digest
        config = config_for(store, committed.id, "committed")
        store.put_image(config, manifest_for(config), MEDIA, committed.id, ["committed"])
        store.create_container("committed", ["check"], "")
        check = store.mount_container("check")
        try:
            mine, theirs = tree(root), tree(check)
            assert mine.keys() == theirs.keys()
            for rel in ("etc/added", "etc/hostname", "srv/data"):
                assert mine[rel][3] == theirs[rel][3], rel
        finally:
            store.unmount_container("check")
    finally:
        store.unmount_container("work")
    assert container.image_id == image.id


def test_shared_base_layer_is_stored_once(make_store: Callable[..., Store]) -> None:
    store = make_store()
    one = put_image(store, [layer1(), layer2()], ["one"])
    two = put_image(store, [layer1(), layer3()], ["two"])
    assert one.id != two.id
    assert len(store.layers()) == 3
    base = store.chain(one.top_layer)[-1]
    assert store.chain(two.top_layer)[-1] == base
    # the same blob again (with its diff id known): nothing read, the layer reused
    again = store.put_layer(None, io.BytesIO(b"not read"), diff_id=base.diff_id)
    assert again == base
    assert store.delete_image("one") == [one.top_layer]
    assert store.layer(base.id) == base
    assert set(store.delete_image("two")) == {two.top_layer, base.id}
    assert store.layers() == []
    assert os.listdir(store.storage_paths().images) == []
    assert sorted(os.listdir(store.driver.home)) == ["empty", "l"]
    assert os.listdir(os.path.join(store.driver.home, "l")) == []


def test_delete_rules(make_store: Callable[..., Store]) -> None:
    store = make_store()
    image = put_image(store, [layer1(), layer2()], ["img"])
    base = store.chain(image.top_layer)[-1]
    with pytest.raises(InUse, match="layer"):
        store.delete_layer(base.id)
    with pytest.raises(InUse, match="image"):
        store.delete_layer(image.top_layer)
    container = store.create_container("img", ["c"], "")
    with pytest.raises(InUse, match="container"):
        store.delete_image("img")
    with pytest.raises(InUse, match="container"):
        store.delete_layer(container.layer_id)
    store.mount_container("c")
    store.mount_container("c")
    store.delete_container("c")  # unmounts, whatever the count
    assert not mount_points(store.graphroot)
    assert len(store.delete_image("img")) == 2
    assert store.layers() == []


def test_names_and_retag(make_store: Callable[..., Store]) -> None:
    store = make_store()
    one = put_image(store, [layer1()], ["repo:1", "repo:latest"], tag="one")
    two = put_image(store, [layer1()], ["repo:2"], tag="two")
    assert store.image("repo:latest").id == one.id
    # re-putting an image adds names; a name moves from the image that had it
    again = put_image(store, [layer1()], ["repo:latest"], tag="two")
    assert again.id == two.id and again.names == ("repo:2", "repo:latest")
    assert store.image(one.id).names == ("repo:1",)
    store.add_names(one.id, ["other:x"])
    store.remove_names("repo:1", ["repo:1"])
    assert store.image(one.id).names == ("other:x",)
    assert store.image(one.id[:12]).id == one.id
    assert store.image(one.digest).id == one.id
    manifest, media = store.image_manifest(one.id)
    assert media == MEDIA and json.loads(manifest)["schemaVersion"] == 2
    config = store.image_blob(one.id, one.config_digest)
    assert json.loads(config)["config"]["Labels"]["tag"] == "one"
    assert len(store.layers()) == 1


@pytest.mark.slow
def test_deep_chain_fits_in_a_page(make_store: Callable[..., Store]) -> None:
    store = make_store()
    top = None
    for i in range(120):
        blob = TarBuilder().dir("d").file(f"d/f{i}", str(i).encode()).bytes()
        top = store.put_layer(top, io.BytesIO(blob)).id
    config = config_for(store, top)
    store.put_image(config, manifest_for(config), MEDIA, top, ["deep"])
    store.create_container("deep", ["deep"], "")
    driver: Any = store.driver
    real = driver._mount_from_home
    relative: list[str] = []

    def spy(merged: str, data: str) -> None:
        relative.append(data)
        real(merged, data)

    driver._mount_from_home = spy
    root = store.mount_container("deep")
    try:
        # absolute lower dirs would not fit: mounted with l/<short> names from the home
        assert len(relative) == 1 and relative[0].startswith("lowerdir=l/")
        assert len(relative[0]) < os.sysconf("SC_PAGESIZE")
        assert len(os.listdir(os.path.join(root, "d"))) == 120
        assert Path(root, "d/f0").read_text() == "0"
    finally:
        store.unmount_container("deep")


def test_mount_counts_shared_between_processes(make_store: Callable[..., Store]) -> None:
    store = make_store()
    put_image(store, [layer1()], ["img"])
    store.create_container("img", ["c"], "")
    root = store.mount_container("c")
    assert store.mount_container("c") == root
    assert store.container_mount_count("c") == 2
    script = (
        "import sys; from pypod.storage.store import Store; "
        "s = Store(sys.argv[1], sys.argv[2]); print(s.unmount_container('c'))"
    )

    def unmount_elsewhere() -> str:  # another command: `pypod umount c`
        proc = subprocess.run(
            [sys.executable, "-c", script, store.graphroot, store.runroot],
            capture_output=True,
            text=True,
            check=True,
        )
        return proc.stdout.strip()

    assert unmount_elsewhere() == "False"
    assert os.path.ismount(root)
    assert unmount_elsewhere() == "True"
    assert not os.path.ismount(root)
    assert store.container_mount_count("c") == 0


def test_open_repairs_stale_mounts(make_store: Callable[..., Store]) -> None:
    store = make_store()
    put_image(store, [layer1()], ["img"])
    a = store.create_container("img", ["a"], "")
    b = store.create_container("img", ["b"], "")
    root_a = store.mount_container("a")
    root_b = store.mount_container("b")
    # a: unmounted behind the store's back (count stale); b: count lost (mount not counted)
    syscalls.umount2(root_a, 0)
    os.unlink(os.path.join(store.runroot, "overlay", "mounts", b.layer_id))
    fresh = Store.open(store.graphroot, store.runroot)
    try:
        assert fresh.container_mount_count(a.id) == 0
        assert not os.path.ismount(root_b)
        assert fresh.mount_container("a") == root_a and os.path.ismount(root_a)
        fresh.unmount_container("a")
    finally:
        fresh.close()


# --- two processes at once -------------------------------------------------------------------
def _put_same(graph: str, run: str, barrier: Any, results: Any) -> None:
    try:
        store = Store(graph, run)
        barrier.wait(10)
        image = put_image(store, [layer1(), layer2()], [f"same:{os.getpid()}"])
        results.put(("ok", image.id))
    except BaseException as e:  # reported to the parent
        results.put(("error", repr(e)))


def test_two_processes_put_the_same_image(make_store: Callable[..., Store]) -> None:
    store = make_store()
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(3)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_put_same, args=(store.graphroot, store.runroot, barrier, results))
        for _ in range(3)
    ]
    for p in procs:
        p.start()
    got = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    assert all(kind == "ok" for kind, _ in got), got
    assert len({image_id for _, image_id in got}) == 1
    assert len(store.images()) == 1
    assert len(store.images()[0].names) == 3
    assert len(store.layers()) == 2
    assert sorted(os.listdir(store.driver.home)) == sorted(
        ["empty", "l", *(x.id for x in store.layers())]
    )
    assert len(os.listdir(os.path.join(store.driver.home, "l"))) == 2


# --- crash recovery --------------------------------------------------------------------------
class _Stalling:
    """A big generated layer, read slowly: after `after` bytes, tells the parent and stalls."""

    def __init__(self, data: bytes, after: int, ready: int) -> None:
        self._data = io.BytesIO(data)
        self._after = after
        self._ready = ready

    def read(self, n: int = -1) -> bytes:
        if self._data.tell() >= self._after:
            os.write(self._ready, b"x")
            time.sleep(3600)
        return self._data.read(min(n, 64 * 1024) if n > 0 else 64 * 1024)


def _big_layer() -> bytes:
    builder = TarBuilder().dir("big")
    for i in range(400):
        builder.file(f"big/file{i:04}", os.urandom(1) * 50_000)
    return builder.bytes()


@pytest.mark.parametrize("driver", ["overlay", "vfs"])
def test_sigkill_mid_apply_leaves_a_clean_store(
    make_store: Callable[..., Store], driver: str
) -> None:
    store = make_store(driver)
    base = store.put_layer(None, io.BytesIO(layer1()))
    big = _big_layer()
    graph, run = store.graphroot, store.runroot

    def child(ready: int) -> None:
        mine = Store(graph, run, driver)
        mine.put_layer(base.id, _Stalling(big, len(big) // 2, ready))  # type: ignore[arg-type]

    killed_child(child)
    # the killed process left an incomplete layer with files: the next open removes it
    staged = [x for x in store.driver.layer_ids() if x != base.id]
    assert len(staged) == 1 and os.listdir(store.driver.diff_path(staged[0]))
    fresh = Store.open(graph, run, driver)
    try:
        assert fresh.layers() == [base]
        assert fresh.driver.layer_ids() == [base.id]
        assert os.listdir(os.path.join(run, "locks")) == []
        rows = fresh._q("SELECT COUNT(*) FROM layers")
        assert rows[0][0] == 1
        layer = fresh.put_layer(base.id, io.BytesIO(big))  # and it works again
        assert fresh.chain(layer.id)[-1] == base
    finally:
        fresh.close()


def test_sigkill_mid_image_commit_leaves_a_clean_store(make_store: Callable[..., Store]) -> None:
    store = make_store()
    top = store.put_layer(None, io.BytesIO(layer1()))
    graph, run = store.graphroot, store.runroot
    config = config_for(store, top.id)

    def child(ready: int) -> None:
        import pypod.storage.images as images_module

        real = images_module.write_atomic

        def stall_after_write(path: str, data: bytes, *, mode: int = 0o644) -> None:
            real(path, data, mode=mode)
            if data == config:  # the config is on disk, the row is not
                os.write(ready, b"x")
                time.sleep(3600)

        images_module.write_atomic = stall_after_write  # type: ignore[assignment]
        Store(graph, run).put_image(config, manifest_for(config), MEDIA, top.id, ["crash"])

    killed_child(child)
    assert os.listdir(os.path.join(graph, "images"))  # the blob the dead process wrote
    fresh = Store.open(graph, run)
    try:
        assert fresh.images() == []
        assert os.listdir(os.path.join(graph, "images")) == []
        assert fresh.layers() == [top]
        image = fresh.put_image(config, manifest_for(config), MEDIA, top.id, ["crash"])
        assert fresh.image("crash") == image
    finally:
        fresh.close()


def test_sigkill_mid_layer_removal(make_store: Callable[..., Store]) -> None:
    store = make_store()
    image = put_image(store, [layer1(), layer2()], ["doomed"])
    graph, run = store.graphroot, store.runroot

    def child(ready: int) -> None:
        mine = Store(graph, run)
        real = mine.driver.remove

        def stall(layer_id: str) -> None:
            real(layer_id)
            os.write(ready, b"x")
            time.sleep(3600)

        mine.driver.remove = stall  # type: ignore[method-assign]
        mine.delete_image(image.id)

    killed_child(child)
    fresh = Store.open(graph, run)
    try:
        assert fresh.images() == []
        assert fresh.layers() == []
        assert fresh._q("SELECT COUNT(*) FROM layers")[0][0] == 0
        assert sorted(os.listdir(fresh.driver.home)) == ["empty", "l"]
    finally:
        fresh.close()


@pytest.mark.parametrize("driver", ["overlay", "vfs"])
def test_container_of_no_image(make_store: Callable[..., Store], driver: str) -> None:
    """`pypod-build from scratch`: a container on no image, an empty root of its own."""
    store = make_store(driver)
    image = put_image(store, [layer1()], ["base"])
    c = store.create_container(None, ["empty"], "{}")
    assert c.image_id == "" and store.layer(c.layer_id).parent is None
    assert store.images() == [image]  # no hidden image for it
    root = store.mount_container("empty")
    try:
        assert os.listdir(root) == []
        Path(root, "made").write_text("x")
        assert [str(x) for x in store.diff("empty")] == ["A /made"]
        out = io.BytesIO()
        store.export_container_diff("empty", out)
        out.seek(0)
        with tarfile.open(fileobj=out) as tf:
            assert [m.name.lstrip("./") for m in tf.getmembers()] == ["made"]
    finally:
        store.unmount_container("empty")
    usage = store.disk_usage()
    assert [u.containers for u in usage.images] == [0]
    assert dict(usage.containers)[c.id] >= 1
    assert len(store.delete_image("base")) == 1  # nothing holds the image
    store.delete_container("empty")
    assert store.containers() == [] and store.layers() == []


def test_sigkill_mid_create_of_a_container_of_no_image(make_store: Callable[..., Store]) -> None:
    store = make_store()
    graph, run = store.graphroot, store.runroot

    def child(ready: int) -> None:
        mine = Store(graph, run)
        real = mine.driver.create

        def stall(layer_id: str, parent: str | None, **kw: Any) -> None:
            real(layer_id, parent, **kw)
            os.write(ready, b"x")
            time.sleep(3600)

        mine.driver.create = stall  # type: ignore[method-assign]
        mine.create_container(None, ["half"], "{}")

    killed_child(child)
    assert store._q("SELECT COUNT(*) FROM layers WHERE incomplete = 1")[0][0] == 1
    fresh = Store.open(graph, run)
    try:
        assert fresh.containers() == [] and fresh.layers() == []
        assert sorted(os.listdir(fresh.driver.home)) == ["empty", "l"]
        assert fresh.create_container(None, ["half"], "{}").names == ("half",)  # name is free
    finally:
        fresh.close()


def _mount_options(point: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == point:
                return fields[fields.index("-") + 3].split(",")
    raise AssertionError(f"{point} is not mounted")


def test_volatile_mount_of_a_throwaway_layer(make_store: Callable[..., Store]) -> None:
    """A `--rm` container's layer is mounted "volatile" (as containers/storage does): its
    writes are never synced.  The kernel refuses any mount of a layer once mounted volatile
    (its work dir keeps a mark): after a clean unmount the store removes the mark, so the
    layer can be mounted again (`pypod cp`, `mount`); other layers are not volatile."""
    store = make_store()
    put_image(store, [layer1()], ["img"])
    store.create_container("img", ["gone"], "")
    store.create_container("img", ["kept"], "")
    root = store.mount_container("gone", volatile=True)
    assert any(o in ("volatile", "fsync=volatile") for o in _mount_options(root))
    with open(os.path.join(root, "written"), "w") as f:
        f.write("data")
    assert store.unmount_container("gone")
    root = store.mount_container("gone")  # `pypod cp` or `mount` later: still mountable
    assert not any(o in ("volatile", "fsync=volatile") for o in _mount_options(root))
    with open(os.path.join(root, "written")) as f:
        assert f.read() == "data"
    kept = store.mount_container("kept")
    assert not any(o in ("volatile", "fsync=volatile") for o in _mount_options(kept))
    assert store.unmount_container("gone")
    store.delete_container("gone")
    assert [list(c.names) for c in store.containers()] == [["kept"]]
