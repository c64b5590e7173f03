"""cp, diff, export, commit, mount/umount on containers, through the engine (no CLI).

Containers are made with `Engine.create` from a busybox image written into a store of the test's
own; their files are set up through the store's mount.  What is checked is what a user sees:
files, bytes, owners and modes on both sides, tar entries, image configs and layers, mount
counts — and that no symlink, tar entry or hardlink in a container reaches the host.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pypod.engine import mounts
from pypod.engine.commit import CommitOptions, commit
from pypod.engine.config import ContainerConfig, MountSpec
from pypod.engine.containers import Engine
from pypod.engine.copy import copy, export, split_argument
from pypod.engine.diff import diff
from pypod.engine.state import Container
from pypod.errors import ContainerNotFound, InvalidArgument, NotFound, PypodError
from pypod.image.local import find_image, image_config
from tests.image_fixtures import build_image, busybox_layer, context, write_image

pytestmark = [pytest.mark.root]


def _unmount_below(path: Path) -> None:
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    for m in reversed(points):
        if m.startswith(str(path)):
            subprocess.run(["umount", "-l", m], check=False)


class World:
    """An engine on the test's own store with a busybox image, and a host directory."""

    def __init__(self, tmp: Path, driver: str) -> None:
        self.tmp = tmp
        self.driver = driver
        ctx = context(tmp / "root", tmp / "run", tmp / "tmp", driver=driver)
        self.image = build_image([busybox_layer(tmp)], cmd=("/bin/sh",))
        write_image(ctx, "busybox", self.image)
        self.eng = Engine(str(tmp / "root"), str(tmp / "run"), driver=driver)
        self.host = tmp / "host"
        self.host.mkdir()

    def create(self, name: str, **kw: object) -> Container:
        cfg = ContainerConfig(image="busybox", image_id=self.image.id, name=name, **kw)  # type: ignore[arg-type]
        return self.eng.create(cfg)

    def edit(self, c: Container, fn: Callable[[Path], None]) -> None:
        """Change the container's files through its mounted root."""
        root = Path(self.eng.store.mount_container(c.id))
        try:
            fn(root)
        finally:
            self.eng.store.unmount_container(c.id)

    def read(self, c: Container, fn: Callable[[Path], object]) -> object:
        root = Path(self.eng.store.mount_container(c.id))
        try:
            return fn(root)
        finally:
            self.eng.store.unmount_container(c.id)

    def count(self, c: Container) -> int:
        return self.eng.store.container_mount_count(c.id)


@pytest.fixture(params=["overlay", "vfs"])
def world(request: pytest.FixtureRequest, tmp_path: Path, busybox: str) -> Iterator[World]:
    w = World(tmp_path, request.param)
    yield w
    w.eng.close()
    _unmount_below(tmp_path)


@pytest.fixture
def overlay_world(tmp_path: Path, busybox: str) -> Iterator[World]:
    w = World(tmp_path, "overlay")
    yield w
    w.eng.close()
    _unmount_below(tmp_path)


def _tree(path: Path) -> dict[str, tuple[str, int, int, int, bytes | str]]:
    """rel -> (type, mode, uid, gid, content or link target) of everything below `path`."""
    out: dict[str, tuple[str, int, int, int, bytes | str]] = {}
    for p in sorted(path.rglob("*")):
        st = p.lstat()
        rel = str(p.relative_to(path))
        if p.is_symlink():
            out[rel] = ("l", 0o777, st.st_uid, st.st_gid, os.readlink(p))
        elif p.is_dir():
            out[rel] = ("d", st.st_mode & 0o7777, st.st_uid, st.st_gid, b"")
        else:
            out[rel] = ("f", st.st_mode & 0o7777, st.st_uid, st.st_gid, p.read_bytes())
    return out


def _tar_names(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return {m.name: m for m in tf.getmembers()}


# --- cp -------------------------------------------------------------------------------------------
def test_split_argument() -> None:
    assert split_argument("ctr:/etc/x") == ("ctr", "/etc/x")
    assert split_argument("./ctr:/x") == (None, "./ctr:/x")
    assert split_argument("/abs:x") == (None, "/abs:x")
    assert split_argument("plain") == (None, "plain")
    assert split_argument("ctr:") == ("ctr", "")
    assert split_argument("-") == (None, "-")


def test_cp_host_to_container_and_back(world: World) -> None:
    c = world.create("c1", user="55:66")
    src = world.host / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a").write_bytes(b"A" * 70000)
    (src / "sub" / "b").write_bytes(b"B\n")
    (src / "link").symlink_to("/etc/shadow")
    os.link(src / "a", src / "hard")
    os.chmod(src / "a", 0o640)
    os.chown(src / "a", 1234, 4321)
    (world.host / "file").write_bytes(b"F\n")
    eng = world.eng

    copy(eng, str(world.host / "file"), "c1:/file1")  # a new file
    copy(eng, str(world.host / "file"), "c1:/tmp/")  # into a directory
    copy(eng, str(src), "c1:/srcdir")  # a new directory
    copy(eng, str(src), "c1:/tmp")  # into a directory: /tmp/src
    copy(eng, f"{src}/.", "c1:/dotdir")  # the content, into a new directory
    copy(eng, str(world.host / "file"), "c1:/noarchive", archive=False)
    assert world.count(c) == 0  # mounted for each copy only

    def check(root: Path) -> None:
        assert (root / "file1").read_bytes() == b"F\n"
        assert (root / "tmp" / "file").read_bytes() == b"F\n"
        for d in ("srcdir", "tmp/src", "dotdir"):
            assert (root / d / "a").read_bytes() == b"A" * 70000
            assert (root / d / "sub" / "b").read_bytes() == b"B\n"
            assert os.readlink(root / d / "link") == "/etc/shadow"
            assert (root / d / "hard").stat().st_ino == (root / d / "a").stat().st_ino
            assert (root / d / "a").stat().st_mode & 0o777 == 0o640
            for p in [root / d, *(root / d).rglob("*")]:  # --archive: the container's user
                st = p.lstat()
                assert (st.st_uid, st.st_gid) == (55, 66), p
        assert not (root / "tmp" / "a").exists()
        assert (root / "tmp").stat().st_mode & 0o7777 == 0o1777
        st = (root / "noarchive").stat()
        assert (st.st_uid, st.st_gid) == (0, 0)  # the host file's owner kept

    world.read(c, check)

    out = world.host / "out"
    out.mkdir()
    copy(eng, "c1:/srcdir", str(out / "new"))  # a new host directory named so
    copy(eng, "c1:/srcdir", str(out))  # into an existing one: out/srcdir
    copy(eng, "c1:/srcdir/.", str(out / "dot"))  # the content, into a new one
    copy(eng, "c1:/file1", str(out / "f"))
    copy(eng, "c1:/file1", str(out))
    for d in ("new", "srcdir", "dot"):
        assert (out / d / "a").read_bytes() == b"A" * 70000
        assert (out / d / "sub" / "b").read_bytes() == b"B\n"
        assert os.readlink(out / d / "link") == "/etc/shadow"
        st = (out / d / "a").stat()
        assert (st.st_uid, st.st_gid) == (0, 0)  # the caller's ids on the host
    assert (out / "f").read_bytes() == (out / "file1").read_bytes() == b"F\n"
    assert sorted(p.name for p in out.iterdir()) == ["dot", "f", "file1", "new", "srcdir"]
    assert world.count(c) == 0


def test_cp_errors_as_podman(world: World) -> None:
    world.create("c1")
    eng = world.eng
    (world.host / "dir").mkdir()
    (world.host / "file").write_text("x")
    cases: list[tuple[str, str, type[PypodError], str]] = [
        ("c1:/nonexist", str(world.host / "x"), NotFound,
         '"/nonexist" could not be found on container c1: no such file or directory'),
        ("c1:/etc/passwd", "/nonexist/dir/x", NotFound,
         '"/nonexist/dir/x" could not be found on the host: no such file or directory'),
        ("c1:/etc/passwd", str(world.host / "nodir") + "/", NotFound,
         "could not be found on the host"),
        ("c1:/etc", str(world.host / "file"), InvalidArgument,
         "destination must be a directory when copying a directory"),
        (str(world.host / "nofile"), "c1:/x", NotFound,
         "could not be found on the host: no such file or directory"),
        (str(world.host / "file"), "c1:/nonexist/x", NotFound,
         '"/nonexist/x" could not be found on container c1'),
        (str(world.host / "file"), "c1:/newdir/", NotFound,
         '"/newdir/" could not be found on container c1'),
        (str(world.host / "dir"), "c1:/etc/passwd", InvalidArgument,
         "destination must be a directory when copying a directory"),
        (str(world.host / "file"), "nosuch:/x", ContainerNotFound,
         'container "nosuch" does not exist'),
        ("c1:", "x", InvalidArgument, "you must specify paths"),
        (str(world.host / "file"), str(world.host / "file2"), InvalidArgument,
         "CONTAINER:PATH"),
    ]  # fmt: skip
    for src, dst, kind, message in cases:
        with pytest.raises(kind) as info:
            copy(eng, src, dst)
        assert message in str(info.value), (src, dst)
        assert info.value.engine_exit_code == 125


def test_cp_symlinks_never_leave_the_container(world: World, tmp_path: Path) -> None:
    """Absolute and relative symlinks, dangling ones, and symlinks in the destination path
    all resolve inside the container's root."""
    c = world.create("c1")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host secret\n")

    def setup(root: Path) -> None:
        (root / "etc" / "marker").write_text("container etc\n")
        (root / "abs").symlink_to("/etc")
        (root / "up").symlink_to("../../../../../../../../" + str(outside).lstrip("/"))
        (root / "hostabs").symlink_to(str(outside))
        (root / "dangling").symlink_to("/nowhere/new")

    world.edit(c, setup)
    eng = world.eng
    out = world.host
    copy(eng, "c1:/abs/marker", str(out / "m1"))
    assert (out / "m1").read_text() == "container etc\n"
    with pytest.raises(NotFound):  # `outside` does not exist inside the container
        copy(eng, "c1:/up/secret", str(out / "s"))
    with pytest.raises(NotFound):
        copy(eng, "c1:/hostabs/secret", str(out / "s"))
    assert not (out / "s").exists()
    (out / "payload").write_text("payload\n")
    with pytest.raises(NotFound):  # the parent does not exist in the container
        copy(eng, str(out / "payload"), "c1:/hostabs/secret")
    copy(eng, str(out / "payload"), "c1:/abs/written")
    with pytest.raises(NotFound):  # /nowhere does not exist inside
        copy(eng, str(out / "payload"), "c1:/dangling")
    assert (outside / "secret").read_text() == "host secret\n"
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert not Path("/etc/written").exists()

    def check(root: Path) -> None:
        assert (root / "etc" / "written").read_text() == "payload\n"

    world.read(c, check)
    # a source symlink is followed and the copy takes its target's name, as podman does
    copy(eng, "c1:/abs", str(out / "etccopy"))
    assert (out / "etccopy" / "marker").read_text() == "container etc\n"
    copy(eng, "c1:/abs/marker", str(out))
    assert (out / "marker").read_text() == "container etc\n"


def test_cp_hostile_tar_on_stdin_stays_inside(world: World, tmp_path: Path) -> None:
    c = world.create("c1")
    outside = tmp_path / "outside"
    outside.mkdir()

    def tar_of(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for info, data in entries:
                tf.addfile(info, io.BytesIO(data) if data else None)
        return buf.getvalue()

    def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", link: str = ""
              ) -> tuple[tarfile.TarInfo, bytes]:  # fmt: skip
        info = tarfile.TarInfo(name)
        info.type = kind
        info.size = len(data)
        info.linkname = link
        info.mode = 0o644 if kind != tarfile.DIRTYPE else 0o755
        return info, data

    eng = world.eng
    climb = tar_of([entry("../../../../" + str(outside).lstrip("/") + "/x", data=b"x")])
    with pytest.raises(PypodError, match="climbs out"):
        copy(eng, "-", "c1:/tmp", stdin=io.BytesIO(climb))
    through = tar_of([
        entry("l", tarfile.SYMTYPE, link=str(outside)),
        entry("l/evil", data=b"evil\n"),
        entry("h", tarfile.LNKTYPE, link="l/evil"),
        entry("up", tarfile.SYMTYPE, link="../../../../../../.."),
        entry("up/" + str(outside).lstrip("/") + "/evil2", data=b"evil\n"),
    ])  # fmt: skip
    copy(eng, "-", "c1:/tmp", stdin=io.BytesIO(through))
    assert list(outside.iterdir()) == []

    def check(root: Path) -> None:
        # the symlinks were followed inside the container's root, as a chroot would
        assert (root / str(outside).lstrip("/") / "evil").read_text() == "evil\n"
        assert (root / str(outside).lstrip("/") / "evil2").read_text() == "evil\n"
        evil = root / str(outside).lstrip("/") / "evil"
        assert (root / "tmp" / "h").stat().st_ino == evil.stat().st_ino

    world.read(c, check)
    # hardlink targets are names in the tar: one that is not there (or climbs) is refused
    for target in ("/etc/passwd", "../../../etc/passwd"):
        with pytest.raises(PypodError, match="hardlink"):
            copy(eng, "-", "c1:/tmp", stdin=io.BytesIO(tar_of([entry("h2", tarfile.LNKTYPE,
                                                                      link=target)])))  # fmt: skip
    with pytest.raises(InvalidArgument, match="must be a \\(compressed\\) tar archive"):
        copy(eng, "-", "c1:/tmp", stdin=io.BytesIO(b"not a tar\n" * 100))
    with pytest.raises(InvalidArgument, match="destination must be a directory"):
        copy(eng, "-", "c1:/etc/passwd", stdin=io.BytesIO(through))
    import gzip

    gz = gzip.compress(tar_of([entry("gz-file", data=b"zipped\n")]))
    copy(eng, "-", "c1:/", stdin=io.BytesIO(gz))
    assert world.read(c, lambda root: (root / "gz-file").read_bytes()) == b"zipped\n"


def test_cp_stdout_tar_has_the_container_users_ids(world: World) -> None:
    c = world.create("c1", user="7:8")

    def setup(root: Path) -> None:
        (root / "dd").mkdir()
        (root / "dd" / "a").write_bytes(b"1\n")
        os.chown(root / "dd" / "a", 1, 2)

    world.edit(c, setup)
    buf = io.BytesIO()
    copy(world.eng, "c1:/dd", "-", stdout=buf)
    members = _tar_names(buf.getvalue())
    assert sorted(members) == ["dd", "dd/a"]
    assert all((m.uid, m.gid) == (7, 8) for m in members.values())
    buf = io.BytesIO()
    copy(world.eng, "c1:/dd/.", "-", stdout=buf)
    assert sorted(_tar_names(buf.getvalue())) == ["a"]
    buf = io.BytesIO()
    copy(world.eng, "c1:/", "-", stdout=buf)
    names = _tar_names(buf.getvalue())
    assert "etc/passwd" in names and "dd/a" in names
    assert not any(n.split("/")[0] in ("dev", "proc", "sys") for n in names)


def test_cp_overwrite_dir_and_file(world: World) -> None:
    c = world.create("c1")
    (world.host / "t1" / "x").mkdir(parents=True)
    (world.host / "t1" / "x" / "y").write_text("y")
    (world.host / "t2").mkdir()
    (world.host / "t2" / "x").write_text("notdir")
    eng = world.eng
    copy(eng, f"{world.host}/t1/.", "c1:/tmp/")
    with pytest.raises(PypodError, match="use --overwrite"):
        copy(eng, f"{world.host}/t2/.", "c1:/tmp/")
    copy(eng, f"{world.host}/t2/.", "c1:/tmp/", overwrite=True)
    assert world.read(c, lambda r: (r / "tmp" / "x").read_text()) == "notdir"
    with pytest.raises(PypodError, match="use --overwrite"):
        copy(eng, f"{world.host}/t1/.", "c1:/tmp/")
    copy(eng, f"{world.host}/t1/.", "c1:/tmp/", overwrite=True)
    assert world.read(c, lambda r: (r / "tmp" / "x" / "y").read_text()) == "y"


def test_cp_stopped_container_volume_goes_to_the_host_directory(world: World) -> None:
    vol = world.host / "vol"
    vol.mkdir()
    (vol / "v").write_text("volfile\n")
    mount = MountSpec(type="bind", source=str(vol), destination="/data", options=("rbind",))
    c = world.create("c1", mounts=(mount,))
    (world.host / "f").write_text("in\n")
    copy(world.eng, str(world.host / "f"), "c1:/data/f2")
    assert (vol / "f2").read_text() == "in\n"
    copy(world.eng, "c1:/data/v", str(world.host / "vcopy"))
    assert (world.host / "vcopy").read_text() == "volfile\n"
    assert not world.read(c, lambda r: (r / "data").exists())


def test_cp_between_containers(world: World) -> None:
    a = world.create("a")
    b = world.create("b", user="9:9")
    world.edit(a, lambda r: (r / "etc" / "from-a").write_text("A\n"))
    copy(world.eng, "a:/etc/from-a", "b:/tmp/")
    copy(world.eng, "a:/etc", "b:/etccopy")

    def check(root: Path) -> None:
        assert (root / "tmp" / "from-a").read_text() == "A\n"
        assert (root / "etccopy" / "from-a").read_text() == "A\n"
        assert (root / "etccopy" / "passwd").stat().st_uid == 9

    world.read(b, check)


# --- diff -----------------------------------------------------------------------------------------
def test_diff_lists_changes_and_hides_the_engines_files(world: World) -> None:
    c = world.create("c1")

    def change(root: Path) -> None:
        (root / "hello").write_text("hi\n")
        (root / "d" / "e").mkdir(parents=True)
        (root / "d" / "e" / "f").write_text("x")
        (root / "bin" / "ls").unlink()
        (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
        (root / "run").mkdir(exist_ok=True)
        (root / "run" / ".containerenv").write_text("")

    world.edit(c, change)
    got = [str(ch) for ch in diff(world.eng, "c1")]
    assert got == ["C /bin", "D /bin/ls", "A /d", "A /d/e", "A /d/e/f", "C /etc", "A /hello"]
    image_changes = diff(world.eng, "busybox")
    assert image_changes and all(ch.kind.value == "A" for ch in image_changes)
    assert "A /bin/busybox" in [str(ch) for ch in image_changes]
    with pytest.raises(NotFound, match="nosuch not found"):
        diff(world.eng, "nosuch")


# --- export ---------------------------------------------------------------------------------------
def test_export_is_the_whole_root(world: World) -> None:
    c = world.create("c1")

    def change(root: Path) -> None:
        (root / "hello").write_text("hi\n")
        os.chown(root / "hello", 5, 6)
        os.link(root / "hello", root / "hello2")
        (root / "lnk").symlink_to("/etc")

    world.edit(c, change)
    buf = io.BytesIO()
    export(world.eng, "c1", buf)
    assert world.count(c) == 0
    data = buf.getvalue()
    members = _tar_names(data)
    assert members["hello"].uid == 5 and members["hello"].gid == 6
    assert members["hello2"].islnk() and members["hello2"].linkname == "hello"
    assert members["lnk"].issym() and members["lnk"].linkname == "/etc"
    assert members["bin/busybox"].mode == 0o755 and members["etc/passwd"].uname == "root"
    assert not any(n.startswith(("./", "/")) for n in members)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        f = tf.extractfile("hello")
        assert f is not None and f.read() == b"hi\n"
    names = list(members)
    assert names.index("bin") < names.index("bin/busybox") < names.index("etc")  # name order


# --- commit ---------------------------------------------------------------------------------------
def _layers(eng: Engine, image_id: str) -> list[str]:
    img = eng.store.image(image_id)
    return [lay.diff_id or "" for lay in reversed(eng.store.chain(img.top_layer))]


def test_commit_adds_one_layer_and_the_containers_config(world: World) -> None:
    c = world.create("c1", command=("sh", "-c", "echo hi"), env={"FOO": "bar"},
                     labels={"l": "v"}, workdir="/tmp")  # fmt: skip

    def change(root: Path) -> None:
        (root / "hello").write_text("hi\n")
        (root / "bin" / "ls").unlink()

    world.edit(c, change)
    eng = world.eng
    lines: list[str] = []
    opts = CommitOptions(
        changes=("EXPOSE 8080", "ENV A=1", "LABEL k=v", "STOPSIGNAL SIGINT", "VOLUME /vol",
                 "ONBUILD RUN x"),
        author="Me <me@x>",
        progress=lines.append,
    )  # fmt: skip
    image_id = commit(eng, "c1", "myimg", opts)
    img = find_image(eng.store, "myimg")
    assert img.id == image_id and img.names == ("localhost/myimg:latest",)
    base = _layers(eng, world.image.id)
    layers = _layers(eng, image_id)
    assert layers[:-1] == base and len(layers) == len(base) + 1
    doc = image_config(eng.store, img)
    cfg = doc["config"]
    assert cfg["Cmd"] == ["sh", "-c", "echo hi"]
    assert cfg["Env"] == ["PATH=/bin", "container=pypod", "FOO=bar", "A=1"]
    assert cfg["Labels"] == {"l": "v", "k": "v"}
    assert cfg["WorkingDir"] == "/tmp" and cfg["StopSignal"] == "2"
    assert cfg["ExposedPorts"] == {"8080/tcp": {}} and cfg["Volumes"] == {"/vol": {}}
    assert "OnBuild" not in cfg  # not in an OCI config
    assert doc["author"] == "Me <me@x>"
    assert doc["rootfs"]["diff_ids"] == layers
    assert doc["history"][-1]["created_by"] == "/bin/sh"
    assert doc["history"][-1]["comment"] == "FROM docker.io/library/busybox:latest"
    assert doc["history"][-1]["author"] == "Me <me@x>"
    base_doc = image_config(eng.store, eng.store.image(world.image.id))
    assert doc["history"][:-1] == base_doc["history"]
    manifest, media_type = eng.store.image_manifest(image_id)
    assert media_type == "application/vnd.oci.image.manifest.v1+json"
    mdoc = json.loads(manifest)
    assert [d["digest"] for d in mdoc["layers"]] == layers
    assert {d["mediaType"] for d in mdoc["layers"]} == {"application/vnd.oci.image.layer.v1.tar"}
    assert lines[0] == "Getting image source signatures" and lines[-1] == "Storing signatures"
    assert lines.count(f"Copying blob {layers[-1]}") == 1

    # a container of the new image has the files
    new = eng.create(ContainerConfig(image="myimg", image_id=image_id, name="c2"))

    def check(root: Path) -> None:
        assert (root / "hello").read_text() == "hi\n"
        assert not (root / "bin" / "ls").exists()
        assert (root / "bin" / "busybox").exists()

    world.read(new, check)


def test_commit_formats_and_refusals(world: World) -> None:
    c = world.create("c1")
    world.edit(c, lambda r: (r / "x").write_text("x"))
    eng = world.eng
    with pytest.raises(InvalidArgument, match="only compatible with the docker image format"):
        commit(eng, "c1", "img", CommitOptions(message="msg"))
    with pytest.raises(InvalidArgument, match="unrecognized image type"):
        commit(eng, "c1", "img", CommitOptions(format="v2s1"))
    with pytest.raises(PypodError):
        commit(eng, "c1", "Upper", CommitOptions())
    with pytest.raises(ContainerNotFound):
        commit(eng, "nosuch", "img", CommitOptions())
    image_id = commit(eng, "c1", "quay.io/a/b:t",
                      CommitOptions(format="docker", message="msg",
                                    changes=("ONBUILD RUN y",)))  # fmt: skip
    img = find_image(eng.store, "quay.io/a/b:t")
    assert img.id == image_id
    doc = image_config(eng.store, img)
    assert doc["comment"] == "msg" and doc["container"] == c.id
    assert doc["parent"] == f"sha256:{world.image.id}"
    assert doc["config"]["OnBuild"] == ["RUN y"]
    assert doc["config"]["Image"] == "docker.io/library/busybox:latest"
    assert img.manifest_media_type == "application/vnd.docker.distribution.manifest.v2+json"
    # no name: an image with no name; the same changes: the same layer
    unnamed = commit(eng, "c1", None, CommitOptions())
    assert eng.store.image(unnamed).names == ()
    assert _layers(eng, unnamed)[-1] == _layers(eng, image_id)[-1]


def test_commit_of_unchanged_container_adds_an_empty_layer(world: World) -> None:
    world.create("c1")
    image_id = commit(world.eng, "c1", "same", CommitOptions())
    # the tar of no change: two zero blocks, podman's layer sha256:5f70bf18...
    assert _layers(world.eng, image_id)[-1] == (
        "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
    )


def test_commit_squash_is_one_layer(world: World) -> None:
    c = world.create("c1")
    world.edit(c, lambda r: (r / "hello").write_text("hi\n"))
    image_id = commit(world.eng, "c1", "sq", CommitOptions(squash=True))
    assert len(_layers(world.eng, image_id)) == 1
    doc = image_config(world.eng.store, world.eng.store.image(image_id))
    assert len(doc["history"]) == 1
    new = world.eng.create(ContainerConfig(image="sq", image_id=image_id, name="c2"))
    assert world.read(new, lambda r: (r / "hello").read_text()) == "hi\n"
    assert world.read(new, lambda r: (r / "bin" / "busybox").exists())


# --- mount / umount -------------------------------------------------------------------------------
def test_mount_counts(world: World) -> None:
    c = world.create("c1")
    eng = world.eng
    path = mounts.mount(eng, "c1")
    assert mounts.mount(eng, "c1") == path
    assert world.count(c) == 2
    assert Path(path, "bin", "busybox").exists()
    assert [(m.name, p) for m, p in mounts.mounted(eng)] == [("c1", path)]
    mounts.unmount(eng, "c1")
    assert world.count(c) == 1 and [m.name for m, _ in mounts.mounted(eng)] == ["c1"]
    mounts.unmount(eng, "c1")
    assert world.count(c) == 0 and mounts.mounted(eng) == []
    if world.driver == "overlay":
        assert not os.path.ismount(path)
    mounts.unmount(eng, "c1")  # not mounted: nothing to do, no error
    mounts.mount(eng, "c1")
    mounts.mount(eng, "c1")
    mounts.unmount(eng, "c1", force=True)
    assert world.count(c) == 0
    # copying into a container mounted by the user leaves its mount as it was
    mounts.mount(eng, "c1")
    (world.host / "f").write_text("f")
    copy(eng, str(world.host / "f"), "c1:/f")
    assert world.count(c) == 1
    assert Path(path, "f").read_text() == "f"
    mounts.unmount(eng, "c1")
    with pytest.raises(ContainerNotFound):
        mounts.mount(eng, "nosuch")


def test_live_container_keeps_its_own_mount(overlay_world: World) -> None:
    """The reference a live container holds is never dropped by umount, even forced."""
    w = overlay_world
    c = w.create("c1")
    eng = w.eng
    from pypod.engine.state import start_time

    eng.store.mount_container(c.id)  # what start does; a live process stands for the container
    c.state = {**c.state, "status": "running", "pid": os.getpid(),
               "pid_start": start_time(os.getpid())}  # fmt: skip
    with eng.db.transaction():
        eng.save_state(c)
    mounts.mount(eng, "c1")
    mounts.mount(eng, "c1")
    mounts.unmount(eng, "c1")
    assert w.count(c) == 2
    mounts.unmount(eng, "c1", force=True)
    assert w.count(c) == 1
    mounts.unmount(eng, "c1", force=True)
    assert w.count(c) == 1
    eng.store.unmount_container(c.id)
