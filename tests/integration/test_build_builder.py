"""Working containers (build/builder.py, build/copier.py) on a real store under tmp_path:
names, metadata, mounts, commits (formats, squash, empty layers, reproducible timestamps,
atomicity) and COPY/ADD into the mounted root; compared with buildah 1.28 where it shows."""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import logging
import os
import shutil
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pypod.build.builder import (
    BASE_DIGEST,
    BASE_NAME,
    BUILDER_TYPE,
    Builder,
    CommitOptions,
    FromOptions,
    list_builders,
)
from pypod.errors import AlreadyExists, ContainerNotFound, ImageNotFound, InvalidArgument
from pypod.image.local import image_config
from pypod.storage.store import Store
from tests.build_cli_support import Buildah
from tests.build_support import ctx_fixture  # noqa: F401  (fixture)
from tests.engine_support import unmount_below
from tests.image_fixtures import BuiltImage, build_image, busybox_layer, context, write_image

pytestmark = pytest.mark.root

BUSYBOX = "docker.io/library/busybox:latest"


@pytest.fixture(scope="module")
def busybox_image(tmp_path_factory: pytest.TempPathFactory, busybox: str) -> BuiltImage:
    work = tmp_path_factory.mktemp("busybox-image")
    return build_image([busybox_layer(work)], compress=False)


@pytest.fixture(params=["overlay", "vfs"])
def store(request: pytest.FixtureRequest, tmp_path: Path, busybox_image: BuiltImage
          ) -> Iterator[Store]:  # fmt: skip
    driver = str(request.param)
    graph, run = tmp_path / "graph", tmp_path / "run"
    write_image(context(graph, run, driver=driver), BUSYBOX, busybox_image)
    s = Store.open(str(graph), str(run), driver)
    try:
        yield s
    finally:
        for b in list_builders(s):
            with contextlib.suppress(Exception):
                b.remove()
        s.close()
        unmount_below(tmp_path)


def _config(store: Store, image_id: str) -> dict[str, Any]:
    return image_config(store, store.image(image_id))


def _top_layer_tar(store: Store, image_id: str) -> dict[str, tarfile.TarInfo]:
    image = store.image(image_id)
    assert image.top_layer is not None
    out = io.BytesIO()
    store.layer_tar(store.layer(image.top_layer), out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tf:
        return {m.name.lstrip("./"): m for m in tf.getmembers()}


def _layer_count(store: Store, image_id: str) -> int:
    return len(store.chain(store.image(image_id).top_layer))


# --- new / open / save / list / remove -----------------------------------------------------
def test_names_follow_buildah(store: Store) -> None:
    a = Builder.new(store, "busybox", FromOptions(pull="never"))
    b = Builder.new(store, BUSYBOX, FromOptions(pull="never"))
    c = Builder.new(store, "busybox", FromOptions(pull="never"))
    s1 = Builder.new(store, "scratch", FromOptions())
    s2 = Builder.new(store, "scratch", FromOptions())
    named = Builder.new(store, "busybox", FromOptions(name="mine", pull="never"))
    assert [a.name, b.name, c.name] == [
        "busybox-working-container",
        "busybox-working-container-1",
        "busybox-working-container-2",
    ]
    assert [s1.name, s2.name, named.name] == ["working-container", "working-container-1", "mine"]
    with pytest.raises(AlreadyExists):
        Builder.new(store, "busybox", FromOptions(name="mine", pull="never"))
    assert a.from_image == BUSYBOX
    assert a.from_image_id == store.image(BUSYBOX).id
    assert a.history_comment == f"FROM {BUSYBOX}"
    assert a.config["Cmd"] == ["/bin/sh"]
    assert len(a.history) == 1  # the base image's
    assert s1.from_image == s1.from_image_id == "" and s1.config == {} and s1.history == []
    assert sorted(x.name for x in list_builders(store)) == sorted(
        [a.name, b.name, c.name, s1.name, s2.name, "mine"]
    )


def test_open_save_and_list_only_builders(store: Store) -> None:
    b = Builder.new(store, "busybox", FromOptions(pull="never"))
    b.config["Env"] = ["A=1"]
    b.author = "me"
    b.add_history("/bin/sh -c #(nop) ENV A=1")
    b.save()
    again = Builder.open(store, b.name)
    assert again.container_id == b.container_id
    assert Builder.open(store, b.container_id[:12]).name == b.name
    assert again.config["Env"] == ["A=1"] and again.author == "me"
    assert again.history[-1]["created_by"] == "/bin/sh -c #(nop) ENV A=1"
    assert again.history[-1]["empty_layer"] is True
    meta = json.loads(store.container(b.container_id).metadata)
    assert meta["Type"] == BUILDER_TYPE
    # a container of another program is not a working container
    other = store.create_container(BUSYBOX, ["engine-one"], metadata='{"Type": "other"}')
    assert [x.name for x in list_builders(store)] == [b.name]
    with pytest.raises(ContainerNotFound, match="container not known"):
        Builder.open(store, other.id)
    with pytest.raises(ContainerNotFound, match='reading build container "nope"'):
        Builder.open(store, "nope")
    store.delete_container(other.id)


def test_remove_and_scratch_leaves_no_image(store: Store) -> None:
    before = {i.id for i in store.images()}
    s = Builder.new(store, "scratch", FromOptions())
    assert store.container(s.container_id).image_id == ""  # stands on no image at all
    assert {i.id for i in store.images()} == before
    b = Builder.new(store, "busybox", FromOptions(pull="never"))
    s.mount()
    b.mount()
    s.remove()
    b.remove()
    assert list_builders(store) == []
    assert {i.id for i in store.images()} == before
    with pytest.raises(ContainerNotFound):
        Builder.open(store, b.name)


def test_pull_policy(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ImageNotFound, match="pull policy is never"):
        Builder.new(store, "localhost/absent", FromOptions(pull="never"))
    with pytest.raises(InvalidArgument, match="pull policy"):
        Builder.new(store, "busybox", FromOptions(pull="sometimes"))
    # a missing image is pulled (here from another local store, through its transport)
    paths = store.storage_paths()
    other = Store.open(str(tmp_path / "g2"), str(tmp_path / "r2"), paths.driver)
    other.close()
    source = f"containers-storage:[{paths.driver}@{paths.graphroot}+{paths.runroot}]{BUSYBOX}"
    from pypod.image.transfer import TransferOptions
    from pypod.image.transports.containers_storage import StoreLocation

    s2 = Store.open(str(tmp_path / "g2"), str(tmp_path / "r2"), paths.driver)
    try:
        loc = StoreLocation(graphroot=str(tmp_path / "g2"), runroot=str(tmp_path / "r2"),
                            driver=paths.driver)  # fmt: skip
        lines: list[str] = []
        b = Builder.new(s2, source, FromOptions(pull="missing", transfer=TransferOptions(store=loc),
                                                progress=lines.append))  # fmt: skip
        assert b.from_image_id == store.image(BUSYBOX).id
        assert any("Copying" in line for line in lines)
        b.remove()
    finally:
        s2.close()
        unmount_below(tmp_path / "g2")


# --- mount / unmount -----------------------------------------------------------------------
def test_mount_counts(store: Store) -> None:
    b = Builder.new(store, "busybox", FromOptions(pull="never"))
    path = b.mount()
    assert os.path.isfile(os.path.join(path, "bin", "busybox"))
    assert b.mount() == path
    assert store.container_mount_count(b.container_id) == 2
    assert Builder.open(store, b.name).mount_point == path
    b.unmount()
    assert b.mount_point == path and os.path.isdir(os.path.join(path, "bin"))
    b.unmount()
    assert b.mount_point is None
    assert Builder.open(store, b.name).mount_point is None
    b.unmount()  # not mounted: nothing to do
    assert store.container_mount_count(b.container_id) == 0


# --- commit --------------------------------------------------------------------------------
def _write(b: Builder, rel: str, text: str) -> None:
    root = b.mount()
    try:
        Path(root, rel).parent.mkdir(parents=True, exist_ok=True)
        Path(root, rel).write_text(text)
    finally:
        b.unmount()


def test_commit_oci(store: Store) -> None:
    b = Builder.new(store, "busybox", FromOptions(pull="never"))
    _write(b, "etc/hello", "hi\n")
    b.config["Env"] = ["PATH=/bin", "A=1"]
    b.author = "me"
    b.save()
    image_id = b.commit("img1", CommitOptions())
    image = store.image(image_id)
    assert image.names == ("localhost/img1:latest",)
    cfg = _config(store, image_id)
    base = _config(store, BUSYBOX)
    assert list(cfg) == ["created", "author", "architecture", "os", "config", "rootfs", "history"]
    assert cfg["author"] == "me" and cfg["architecture"] == "amd64" and cfg["os"] == "linux"
    assert cfg["config"] == {"Env": ["PATH=/bin", "A=1"], "Cmd": ["/bin/sh"]}
    diff_ids = cfg["rootfs"]["diff_ids"]
    assert diff_ids[:-1] == base["rootfs"]["diff_ids"] and len(diff_ids) == 2
    assert cfg["history"][:-1] == base["history"]
    last = cfg["history"][-1]
    assert list(last) == ["created", "created_by", "author", "comment"]
    assert last["created_by"] == "/bin/sh" and last["comment"] == f"FROM {BUSYBOX}"
    assert last["created"] == cfg["created"]
    layer = _top_layer_tar(store, image_id)
    assert "etc/hello" in layer and "bin/busybox" not in layer
    manifest, media_type = store.image_manifest(image_id)
    assert media_type == "application/vnd.oci.image.manifest.v1+json"
    assert [x["digest"] for x in json.loads(manifest)["layers"]] == diff_ids
    # the working container stays and can commit again
    assert Builder.open(store, b.name).container_id == b.container_id


def test_commit_docker_keeps_docker_fields_oci_warns(store: Store, caplog: pytest.LogCaptureFixture
                                                     ) -> None:  # fmt: skip
    b = Builder.new(store, "busybox", FromOptions(pull="never"))
    b.config.update(Shell=["/bin/bash", "-c"], OnBuild=["RUN true"],
                    Healthcheck={"Test": ["CMD", "true"], "Interval": 30000000000,
                                 "Timeout": 30000000000, "Retries": 3})  # fmt: skip
    docker_id = b.commit(None, CommitOptions(format="docker"))
    cfg = _config(store, docker_id)
    assert list(cfg)[:4] == ["created", "container", "container_config", "config"]
    assert cfg["container"] == b.container_id
    assert cfg["parent"] == f"sha256:{b.from_image_id}"
    inner = cfg["config"]
    assert inner == cfg["container_config"]
    assert inner["Shell"] == ["/bin/bash", "-c"] and inner["OnBuild"] == ["RUN true"]
    assert inner["Healthcheck"]["Test"] == ["CMD", "true"]
    assert inner["Image"] == "" and inner["Entrypoint"] is None
    assert cfg["history"][-1]["created_by"] == "/bin/bash -c"  # the SHELL, as buildah
    assert store.image_manifest(docker_id)[1] == (
        "application/vnd.docker.distribution.manifest.v2+json"
    )
    with caplog.at_level(logging.WARNING):
        oci_id = b.commit(None, CommitOptions())
    inner = _config(store, oci_id)["config"]
    assert not {"Shell", "OnBuild", "Healthcheck"} & set(inner)
    text = caplog.text
    assert "SHELL is not supported for OCI image format, [/bin/bash -c] will be ignored" in text
    assert "HEALTHCHECK is not supported for OCI image format and will be ignored" in text
    assert "ONBUILD is not supported for OCI image format, RUN true will be ignored" in text


def test_commit_empty_layer(store: Store) -> None:
    b = Builder.new(store, "busybox", FromOptions(pull="never"))
    _write(b, "ignored", "x")
    b.config["Env"] = ["A=1"]
    image_id = b.commit(None, CommitOptions(empty_layer=True,
                                            created_by="/bin/sh -c #(nop) ENV A=1"))  # fmt: skip
    base = store.image(BUSYBOX)
    assert store.image(image_id).top_layer == base.top_layer
    cfg = _config(store, image_id)
    assert cfg["rootfs"]["diff_ids"] == _config(store, BUSYBOX)["rootfs"]["diff_ids"]
    assert cfg["history"][-1]["empty_layer"] is True
    assert cfg["history"][-1]["created_by"] == "/bin/sh -c #(nop) ENV A=1"
    assert cfg["config"]["Env"] == ["A=1"]
    # scratch with no layer at all
    s = Builder.new(store, "scratch", FromOptions())
    sid = s.commit("nothing", CommitOptions(empty_layer=True))
    assert store.image(sid).top_layer is None
    assert _config(store, sid)["rootfs"]["diff_ids"] == []


@pytest.mark.parametrize("fmt", ["oci", "docker"])
def test_commit_writes_annotations_and_a_new_builder_inherits_them(store: Store, fmt: str
                                                                   ) -> None:  # fmt: skip
    s = Builder.new(store, "scratch", FromOptions())
    assert s.annotations == {BASE_DIGEST: "", BASE_NAME: ""}  # buildah's, for scratch
    s.annotations["org.example.k"] = "v"
    s.save()
    assert Builder.open(store, s.name).annotations["org.example.k"] == "v"
    _write(s, "f", "x\n")
    first = s.commit("annotated", CommitOptions(format=fmt))
    manifest = json.loads(store.image_manifest(first)[0])
    if fmt == "docker":  # Docker's manifest has no annotations: dropped, as buildah does
        assert "annotations" not in manifest
        return
    assert manifest["annotations"] == {BASE_DIGEST: "", BASE_NAME: "", "org.example.k": "v"}
    # a working container from that image inherits them; the base ones name that image
    b = Builder.new(store, "annotated", FromOptions(pull="never"))
    assert b.annotations == {"org.example.k": "v", BASE_DIGEST: store.image(first).digest,
                             BASE_NAME: "localhost/annotated:latest"}  # fmt: skip
    second = b.commit(None, CommitOptions(empty_layer=True))
    assert json.loads(store.image_manifest(second)[0])["annotations"] == b.annotations
    assert store.image(second).digest != store.image(first).digest


def test_commit_squash(store: Store) -> None:
    b = Builder.new(store, "busybox", FromOptions(pull="never"))
    _write(b, "etc/hello", "hi\n")
    image_id = b.commit(None, CommitOptions(squash=True))
    assert _layer_count(store, image_id) == 1
    cfg = _config(store, image_id)
    assert len(cfg["rootfs"]["diff_ids"]) == 1
    assert [h["comment"] for h in cfg["history"]] == [f"FROM {BUSYBOX}"]  # base history dropped
    layer = _top_layer_tar(store, image_id)
    assert "etc/hello" in layer and "bin/busybox" in layer
    # the squashed image runs from its one layer: a builder from it sees both
    again = Builder.new(store, image_id, FromOptions(pull="never"))
    root = again.mount()
    try:
        assert Path(root, "etc/hello").read_text() == "hi\n"
        assert Path(root, "bin/busybox").is_file()
    finally:
        again.unmount()
    assert again.history_comment == f"FROM {image_id}"


def test_commit_timestamp_is_reproducible(store: Store) -> None:
    ids = []
    for _ in range(2):
        b = Builder.new(store, "busybox", FromOptions(pull="never"))
        _write(b, "etc/hello", "hi\n")
        _write(b, "usr/local/x", "x\n")
        ids.append(b.commit(None, CommitOptions(timestamp=0, rm=True)))
    assert ids[0] == ids[1]
    cfg = _config(store, ids[0])
    assert cfg["created"] == "1970-01-01T00:00:00Z"
    assert cfg["history"][-1]["created"] == "1970-01-01T00:00:00Z"
    assert {m.mtime for m in _top_layer_tar(store, ids[0]).values()} == {0}
    assert list_builders(store) == []  # rm
    # squashed too
    squashed = []
    for _ in range(2):
        b = Builder.new(store, "busybox", FromOptions(pull="never"))
        _write(b, "etc/hello", "hi\n")
        squashed.append(b.commit(None, CommitOptions(timestamp=1700000000, squash=True, rm=True)))
    assert squashed[0] == squashed[1]


def test_commit_failure_stores_nothing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from pypod.image.transports import containers_storage

    b = Builder.new(store, "busybox", FromOptions(pull="never"))
    _write(b, "etc/hello", "hi\n")
    images = {i.id for i in store.images()}
    layers = {layer.id for layer in store.layers()}

    def broken(self: Any, manifest: bytes, media_type: str, instance_digest: Any = None) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(containers_storage.StorageDestination, "put_manifest", broken)
    with pytest.raises(OSError):
        b.commit("broken", CommitOptions())
    monkeypatch.undo()
    assert {i.id for i in store.images()} == images
    assert {layer.id for layer in store.layers()} == layers
    with pytest.raises(InvalidArgument):
        b.commit(None, CommitOptions(format="tar"))
    assert Builder.open(store, b.name).name == b.name  # still there, commits fine
    assert b.commit("fine", CommitOptions())


# --- copy ----------------------------------------------------------------------------------
def test_copy_file_owner_mode_and_digest(store: Store, ctx: Path) -> None:
    b = Builder.new(store, "busybox", FromOptions(pull="never"))
    f = ctx / "f.txt"
    f.write_text("hello\n")
    os.chown(f, 1234, 1234)
    os.chmod(f, 0o640)
    os.utime(f, (1577934245, 1577934245))
    d1 = b.copy(["f.txt"], "/f.txt", context_dir=str(ctx))
    assert d1.startswith("file:") and len(d1) == 5 + 64
    root = b.mount()
    try:
        st = os.lstat(os.path.join(root, "f.txt"))
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o640)
        assert int(st.st_mtime) == 1577934245
        # --chown by name in the container's /etc/passwd, --chmod
        b.copy(["f.txt"], "/owned", context_dir=str(ctx), chown="user", chmod="4755")
        st = os.lstat(os.path.join(root, "owned"))
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1000, 1000, 0o4755)
        b.copy(["f.txt"], "/n/", context_dir=str(ctx), chown="5")
        st = os.lstat(os.path.join(root, "n", "f.txt"))
        assert (st.st_uid, st.st_gid) == (5, 5)
        parent = os.lstat(os.path.join(root, "n"))
        assert (parent.st_uid, parent.st_mode & 0o777) == (5, 0o755)
        with pytest.raises(InvalidArgument, match="unable to find user nosuch"):
            b.copy(["f.txt"], "/x", context_dir=str(ctx), chown="nosuch")
    finally:
        b.unmount()
    # the digest follows the content, not the mtime
    os.utime(f, (1, 1))
    assert b.copy(["f.txt"], "/f.txt", context_dir=str(ctx)) == d1
    f.write_text("other\n")
    assert b.copy(["f.txt"], "/f.txt", context_dir=str(ctx)) != d1


def test_copy_dirs_links_and_multi(store: Store, ctx: Path) -> None:
    b = Builder.new(store, "busybox", FromOptions(pull="never"))
    (ctx / "d" / "sub").mkdir(parents=True)
    (ctx / "d" / "sub" / "y").write_text("y\n")
    os.chmod(ctx / "d" / "sub", 0o711)
    os.utime(ctx / "d" / "sub", (1500000000, 1500000000))
    os.symlink("sub/y", ctx / "d" / "link")
    (ctx / "g.txt").write_text("g\n")
    digest = b.copy(["d"], "/dd/", context_dir=str(ctx))
    assert digest.startswith("dir:")
    assert b.copy(["d/sub/y", "g.txt"], "/m/", context_dir=str(ctx)).startswith("multi:")
    root = b.mount()
    try:
        sub = os.lstat(os.path.join(root, "dd", "sub"))
        assert sub.st_mode & 0o7777 == 0o711 and int(sub.st_mtime) == 1500000000
        assert os.readlink(os.path.join(root, "dd", "link")) == "sub/y"
        assert Path(root, "m", "y").read_text() == "y\n"
        assert Path(root, "m", "g.txt").read_text() == "g\n"
    finally:
        b.unmount()


def test_copy_cannot_escape_through_image_links(store: Store, ctx: Path, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    b = Builder.new(store, "busybox", FromOptions(pull="never"))
    root = b.mount()
    try:
        os.symlink(str(host), os.path.join(root, "escape"))  # absolute: the host's directory
        os.symlink("../../../../../../..", os.path.join(root, "up"))
        os.symlink(str(host / "file"), os.path.join(root, "target"))
        (ctx / "f.txt").write_text("x\n")
        b.copy(["f.txt"], "/escape/", context_dir=str(ctx))
        b.copy(["f.txt"], "/up/tmp/", context_dir=str(ctx))
        b.copy(["f.txt"], "/target", context_dir=str(ctx))  # replaces the link
        # a directory copy, and an image link where a copied directory goes
        (ctx / "d" / "sub").mkdir(parents=True)
        (ctx / "d" / "sub" / "y").write_text("y\n")
        os.makedirs(os.path.join(root, "dd"))
        host2 = tmp_path / "host2"
        host2.mkdir()
        os.symlink(str(host2), os.path.join(root, "dd", "sub"))  # not a directory in the root
        b.copy(["d"], "/dd/", context_dir=str(ctx))
        b.copy(["d"], "/escape/", context_dir=str(ctx))
        assert list(host.iterdir()) == [] and list(host2.iterdir()) == []
        assert Path(root, host.relative_to("/"), "f.txt").read_text() == "x\n"
        assert Path(root, host.relative_to("/"), "sub", "y").read_text() == "y\n"
        assert not os.path.islink(os.path.join(root, "dd", "sub"))
        assert Path(root, "dd", "sub", "y").read_text() == "y\n"
        assert Path(root, "tmp", "f.txt").read_text() == "x\n"
        assert not os.path.islink(os.path.join(root, "target"))
    finally:
        b.unmount()


def test_add_archive_unpacks_inside(store: Store, ctx: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "top").mkdir(parents=True)
    (tree / "top" / "a").write_text("a\n")
    os.chown(tree / "top" / "a", 123, 456)
    with tarfile.open(ctx / "a.tgz", "w:gz") as tf:
        tf.add(tree / "top", arcname="top")
    with tarfile.open(ctx / "b.tar.xz", "w:xz") as tf:
        tf.add(tree / "top" / "a", arcname="xa")
    with tarfile.open(ctx / "evil.tar", "w") as tf:
        evil = tarfile.TarInfo("../../../../evil")
        evil.size = 2
        tf.addfile(evil, io.BytesIO(b"e\n"))
    b = Builder.new(store, "busybox", FromOptions(pull="never"))
    assert b.copy(["a.tgz"], "/ad/", context_dir=str(ctx), add=True).startswith("file:")
    b.copy(["b.tar.xz"], "/ax", context_dir=str(ctx), add=True, chown="7:8")
    # COPY does not unpack
    b.copy(["a.tgz"], "/copied.tgz", context_dir=str(ctx))
    with pytest.raises(InvalidArgument, match="climbs out"):
        b.copy(["evil.tar"], "/ev/", context_dir=str(ctx), add=True)
    root = b.mount()
    try:
        a = os.lstat(os.path.join(root, "ad", "top", "a"))
        assert (a.st_uid, a.st_gid) == (123, 456)  # the archive's owners, as buildah
        xa = os.lstat(os.path.join(root, "ax", "xa"))
        assert (xa.st_uid, xa.st_gid) == (123, 456)  # buildah 1.28: --chown not applied
        assert Path(root, "ax", "xa").read_text() == "a\n"
        assert Path(root, "copied.tgz").read_bytes() == (ctx / "a.tgz").read_bytes()
        assert not Path(root, "evil").exists()
        assert not (tmp_path / "evil").exists() and not Path("/evil").exists()
    finally:
        b.unmount()


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    served = tmp_path / "served"
    served.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: _Handler(*a, directory=str(served))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_add_url(store: Store, ctx: Path, http_dir: tuple[Path, str]) -> None:
    served, url = http_dir
    (served / "f.txt").write_text("hello\n")
    os.utime(served / "f.txt", (1577934245, 1577934245))
    b = Builder.new(store, "busybox", FromOptions(pull="never"))
    digest = b.copy([f"{url}/f.txt"], "/u/", context_dir=str(ctx), add=True)
    assert len(digest) == 64 and ":" not in digest  # buildah: the bare hex for a download
    root = b.mount()
    try:
        st = os.lstat(os.path.join(root, "u", "f.txt"))
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o600)
        assert int(st.st_mtime) == 1577934245
        assert Path(root, "u", "f.txt").read_text() == "hello\n"
        with pytest.raises(InvalidArgument, match="getting"):
            b.copy([f"{url}/missing"], "/u/", context_dir=str(ctx), add=True)
        assert sorted(os.listdir(os.path.join(root, "u"))) == ["f.txt"]
    finally:
        b.unmount()
    with pytest.raises(InvalidArgument, match="source can't be a URL for COPY"):
        b.copy([f"{url}/f.txt"], "/u/", context_dir=str(ctx))


def test_copy_from_root(store: Store, ctx: Path) -> None:
    """COPY --from: the sources come from another root (a stage's or image's), no ignore."""
    stage = Builder.new(store, "busybox", FromOptions(pull="never"))
    _write(stage, "out/result", "built\n")
    b = Builder.new(store, "busybox", FromOptions(pull="never"))
    stage_root = stage.mount()
    try:
        b.copy(["/out/result"], "/r", context_dir=str(ctx), from_root=stage_root)
    finally:
        stage.unmount()
    root = b.mount()
    try:
        assert Path(root, "r").read_text() == "built\n"
    finally:
        b.unmount()


#: digests buildah 1.28.2 wrote into history (`bud --layers`) for the tree `_digest_tree` makes
BUILDAH_DIGESTS = [
    (["f.txt"], "/f.txt", {},
     "file:34f5a86be9aa45c21c1a9308f6a8592897613de4d4b87f5e4420c7116942ba81"),
    (["f.txt"], "/c/", {},
     "file:34f5a86be9aa45c21c1a9308f6a8592897613de4d4b87f5e4420c7116942ba81"),
    (["d"], "/d/", {}, "dir:0eb6328ceec01463164d22c843e8095bcbfd998812d185305e7cda6e02578044"),
    (["f.txt", "g.txt"], "/m/", {},
     "multi:545e2e3f3ffaf4149f94bfa609689e4e2a8fdf2d212dbf2c819010e2550d6ec5"),
    (["a.tgz"], "/ad/", {"add": True},
     "file:49dec21501e0e0c5bfd67a7f7098f94610abe2754d457ebbccec0c23e7451ece"),
    (["f.txt"], "/af", {"add": True},
     "file:1d10f2ec8996d8bcd2701571201a543d26cf0aa8070613af152a8f579cd138c1"),
    (["f.txt"], "/owned", {"chown": "1:2"},
     "file:5e8c7552b880436b117ae09c00a3c0dc80edd04b848aa785d6ef1fd5b4f82037"),
    (["own.tar"], "/y/", {"add": True, "chown": "7:8"},
     "file:a582adf0d0071bfca4b11408e098bf0fc0adf9f20476bb3fe6d6ff8786387a4c"),
]  # fmt: skip


def _digest_tree(ctx: Path, tmp_path: Path) -> None:
    """f.txt, g.txt, d/sub/y, a.tgz (GNU tar of d), own.tar (top/a owned 123:456, 0640)."""
    (ctx / "f.txt").write_text("hello\n")
    (ctx / "g.txt").write_text("z\n")
    (ctx / "d" / "sub").mkdir(parents=True)
    (ctx / "d" / "sub" / "y").write_text("y\n")
    for path in (ctx / "f.txt", ctx / "g.txt", ctx / "d" / "sub" / "y"):
        os.chmod(path, 0o644)
    for path in (ctx / "d", ctx / "d" / "sub"):
        os.chmod(path, 0o755)
    with tarfile.open(ctx / "a.tgz", "w:gz", format=tarfile.GNU_FORMAT) as tf:
        tf.add(ctx / "d", arcname="d")
    own = tmp_path / "own" / "top"
    own.mkdir(parents=True)
    (own / "a").write_text("a\n")
    os.chmod(own, 0o755)
    os.chmod(own / "a", 0o640)
    os.chown(own / "a", 123, 456)
    os.chown(own, 123, 456)
    with tarfile.open(ctx / "own.tar", "w", format=tarfile.GNU_FORMAT) as tf:
        tf.add(own, arcname="top")


@pytest.mark.parametrize(("sources", "dest", "kw", "expected"), BUILDAH_DIGESTS)
def test_copy_digest_is_buildahs(store: Store, ctx: Path, tmp_path: Path, sources: list[str],
                                 dest: str, kw: dict[str, Any], expected: str) -> None:  # fmt: skip
    _digest_tree(ctx, tmp_path)
    b = Builder.new(store, "scratch", FromOptions())
    assert b.copy(sources, dest, context_dir=str(ctx), **kw) == expected


def test_add_url_digest_is_buildahs(store: Store, ctx: Path, http_dir: tuple[Path, str]) -> None:
    served, url = http_dir
    (served / "f.txt").write_text("hello\n")
    os.utime(served / "f.txt", (1577934245, 1577934245))  # Last-Modified 2020-01-02 03:04:05
    b = Builder.new(store, "scratch", FromOptions())
    digest = b.copy([f"{url}/f.txt"], "/u/", context_dir=str(ctx), add=True)
    assert digest == "928a2871f9c28ce046353b92f12bfaaeb2e710020d617159cdeb380d9864b037"


# --- against buildah -----------------------------------------------------------------------
def _buildah(tmp_path: Path) -> Buildah:
    """buildah on a vfs store under tmp_path (skipped when it is not installed)."""
    if shutil.which("buildah") is None:
        pytest.skip("buildah is not installed (apt-get install buildah)")
    return Buildah(tmp_path / "buildah")


@pytest.mark.compat
@pytest.mark.parametrize("fmt", ["oci", "docker"])
def test_commit_matches_buildah(store: Store, ctx: Path, tmp_path: Path, fmt: str) -> None:
    """scratch + COPY + config, committed by buildah and by the builder: the same config
    fields and history entries (dates, ids and buildah's own label aside)."""
    buildah = _buildah(tmp_path)

    def bh(*args: str) -> str:
        return buildah.ok(*args).strip()

    (ctx / "f.txt").write_text("hello\n")
    try:
        c = bh("from", "scratch")
        bh("copy", c, str(ctx / "f.txt"), "/f.txt")
        bh("config", "--env", "A=1", "--cmd", "sh", "--author", "me", "--port", "80/tcp",
           "--label", "k=v", "--workingdir", "/w", "--user", "1:2", "--annotation", "z=1",
           "--annotation", "a=2", c)  # fmt: skip
        theirs_id = bh("commit", "-q", "--format", fmt, c, "theirs")
        key = "Docker" if fmt == "docker" else "OCIv1"
        inspected = json.loads(bh("inspect", "--type", "image", theirs_id))
        theirs = inspected[key]
        theirs_manifest = json.loads(inspected["Manifest"])
        bh("rm", c)
    finally:
        unmount_below(buildah.base)
    b = Builder.new(store, "scratch", FromOptions())
    b.copy(["f.txt"], "/f.txt", context_dir=str(ctx))
    b.config.update(Env=["A=1"], Cmd=["sh"], ExposedPorts={"80/tcp": {}}, Labels={"k": "v"},
                    WorkingDir="/w", User="1:2")  # fmt: skip
    b.author = "me"
    b.annotations.update(z="1", a="2")
    ours_id = b.commit(None, CommitOptions(format=fmt))
    ours = _config(store, ours_id)
    ours_manifest = json.loads(store.image_manifest(ours_id)[0])
    # the manifest's annotations (OCI only) and their order (keys sorted, as Go's map)
    assert list(ours_manifest.get("annotations") or {}) == list(
        theirs_manifest.get("annotations") or {}
    )
    assert ours_manifest.get("annotations") == theirs_manifest.get("annotations")
    if fmt == "oci":
        assert ours_manifest["annotations"]["z"] == "1"
    for doc in (ours, theirs):
        doc.pop("created")
        doc.pop("container", None)
        doc["rootfs"]["diff_ids"] = len(doc["rootfs"]["diff_ids"])
        for h in doc["history"]:
            h.pop("created")
        for inner in ("config", "container_config"):
            if inner in doc and doc[inner].get("Labels"):
                doc[inner]["Labels"].pop("io.buildah.version", None)
    assert list(ours) == list(theirs)
    assert ours == theirs


@pytest.mark.compat
def test_copy_history_matches_buildah_bud(store: Store, ctx: Path, tmp_path: Path) -> None:
    """COPY/ADD lines built by `buildah bud --layers`: each history entry is
    `/bin/sh -c #(nop) <INSTRUCTION> <digest> in <dest> ` with the digest Builder.copy gives."""
    buildah = _buildah(tmp_path)
    _digest_tree(ctx, tmp_path)
    (ctx / "d" / "link").symlink_to("sub/y")
    os.link(ctx / "d" / "sub" / "y", ctx / "d" / "hard")
    steps = [
        ("COPY", ["f.txt"], "/f.txt", {}),
        ("COPY", ["d"], "/d/", {}),
        ("COPY", ["f.txt", "g.txt"], "/m/", {}),
        ("ADD", ["a.tgz"], "/ad/", {}),
        ("ADD", ["own.tar"], "/y/", {"chown": "7:8"}),
        ("COPY", ["f.txt"], "/owned", {"chown": "1:2", "chmod": "755"}),
        ("COPY", ["*.txt"], "/glob/", {}),
    ]
    lines = ["FROM scratch"]
    for verb, sources, dest, kw in steps:
        flags = "".join(f"--{k}={v} " for k, v in kw.items())
        lines.append(f"{verb} {flags}{' '.join(sources)} {dest}")
    (tmp_path / "Containerfile").write_text("\n".join(lines) + "\n")
    try:
        buildah.ok("bud", "--layers", "-q", "-t", "hist", "-f", str(tmp_path / "Containerfile"),
                   str(ctx), timeout=300)  # fmt: skip
        doc = json.loads(buildah.ok("inspect", "--type", "image", "hist"))
    finally:
        unmount_below(buildah.base)
    theirs = [h["created_by"] for h in doc["OCIv1"]["history"]]
    b = Builder.new(store, "scratch", FromOptions())
    ours = []
    for verb, sources, dest, kw in steps:
        digest = b.copy(sources, dest, context_dir=str(ctx), add=verb == "ADD", **kw)
        ours.append(f"/bin/sh -c #(nop) {verb} {digest} in {dest} ")
    assert ours == theirs
