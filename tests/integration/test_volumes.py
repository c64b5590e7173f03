"""pypod.engine.volumes on a real store: directories, owners, the state DB, tmpfs mounts."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pypod.engine.config import ContainerConfig, MountSpec, to_json
from pypod.engine.db import EngineDB
from pypod.engine.volumes import Volumes, inspect_json, parse_until
from pypod.errors import AlreadyExists, InUse, InvalidArgument, NotFound, NotSupported


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "root"
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f]
    for m in reversed(mounts):
        if m.startswith(str(tmp_path)):
            subprocess.run(["umount", "-l", m], check=False)


@pytest.fixture
def volumes(root: Path) -> Iterator[Volumes]:
    root.mkdir()
    db = EngineDB(str(root / "engine.db"))
    yield Volumes(db, str(root))
    db.close()


def _add_container(vols: Volumes, cid: str, *names: str) -> None:
    cfg = ContainerConfig(
        image="busybox",
        image_id="",
        mounts=tuple(
            MountSpec(type="bind", source=f"/v/{n}", destination=f"/d{i}", volume=n)
            for i, n in enumerate(names)
        ),
    )
    with vols.db.transaction():
        vols.db.execute(
            "INSERT INTO containers (id, name, config, state, created) VALUES (?, ?, ?, ?, ?)",
            (cid, f"c{cid}", json.dumps(to_json(cfg)), "{}", time.time()),
        )


def _is_mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def test_create_layout_and_inspect(volumes: Volumes, root: Path) -> None:
    vol = volumes.create("data", labels={"a": "b"})
    assert vol.mountpoint == str(root / "volumes" / "data" / "_data")
    assert os.stat(root / "volumes" / "data").st_mode & 0o777 == 0o700
    assert os.stat(vol.mountpoint).st_mode & 0o777 == 0o755
    info = volumes.inspect("data")
    assert list(info) == ["Name", "Driver", "Mountpoint", "CreatedAt", "Labels", "Scope",
                          "Options", "MountCount", "NeedsCopyUp", "NeedsChown"]  # fmt: skip
    assert info["Labels"] == {"a": "b"} and info["Scope"] == "local"
    assert info["CreatedAt"].endswith("Z") and "T" in info["CreatedAt"]
    assert volumes.get("data") == vol
    assert volumes.exists("data") and not volumes.exists("nope")


def test_names(volumes: Volumes) -> None:
    anon = volumes.create(None, anonymous=True)
    assert len(anon.name) == 64 and int(anon.name, 16) >= 0 and anon.anonymous
    assert inspect_json(anon)["Anonymous"] is True
    with pytest.raises(InvalidArgument, match=r"names must match \[a-zA-Z0-9\]"):
        volumes.create("bad name")
    with pytest.raises(InvalidArgument):
        volumes.create("-x")
    volumes.create("v1")
    with pytest.raises(AlreadyExists, match="volume with name v1 already exists"):
        volumes.create("v1")
    assert volumes.create("v1", ignore_if_exists=True).name == "v1"
    with pytest.raises(NotFound, match="no such volume nope"):
        volumes.get("nope")
    # a unique prefix finds the volume, as podman's lookup
    assert volumes.get(anon.name[:12]).name == anon.name
    with pytest.raises(NotFound, match="uses volume plugin foo"):
        volumes.create("x", driver="foo")
    with pytest.raises(NotSupported):
        volumes.create("x", driver="image")


def test_options_and_owner(volumes: Volumes) -> None:
    vol = volumes.create("owned", options={"uid": "1000", "gid": "100"})
    st = os.stat(vol.mountpoint)
    assert (st.st_uid, st.st_gid) == (1000, 100)
    assert (vol.uid, vol.gid, vol.needs_chown) == (1000, 100, False)
    tv = volumes.create("t", options={"type": "tmpfs", "device": "tmpfs", "o": "size=10m,uid=7"})
    assert tv.options == {"type": "tmpfs", "device": "tmpfs", "o": "size=10m,uid=7", "UID": "7"}
    assert tv.uid == 7 and inspect_json(tv)["UID"] == 7 and "NeedsChown" not in inspect_json(tv)
    assert not volumes.create("nc", options={"nocopy": ""}).needs_copy_up
    for options, message in (
        ({"foo": "bar"}, "invalid mount option foo for driver 'local': invalid argument"),
        ({"uid": "abc"}, 'cannot convert UID abc to integer: strconv.Atoi: parsing "abc"'),
        ({"o": "uid"}, "uid option must provide a UID"),
        ({"size": "10m"}, "volume options size and inodes not supported"),
        ({"device": "/dev/sda"}, "give the filesystem of /dev/sda with -o type=TYPE"),
        ({"type": "bind", "device": "/nonexist"}, "stat /nonexist: no such file or directory"),
    ):  # fmt: skip
        with pytest.raises(InvalidArgument) as e:
            volumes.create("bad", options=options)
        assert message in str(e.value)
    assert not volumes.exists("bad")


def test_list_filters(volumes: Volumes) -> None:
    volumes.create("a1", labels={"k": "v"})
    volumes.create("b1", labels={"k": "w", "z": ""})
    volumes.create("b2", options={"uid": "5"})
    _add_container(volumes, "c1", "b1")

    def names(**filters: list[str]) -> list[str]:
        return [v.name for v in volumes.list(filters)]

    assert names() == ["a1", "b1", "b2"]
    assert names(name=["a1", "b2"]) == ["a1", "b2"]
    assert names(name=["^b"]) == ["b1", "b2"]
    assert names(label=["k"]) == ["a1", "b1"]
    assert names(label=["k=w"]) == ["b1"]
    assert names(label=["k=v", "z"]) == ["a1", "b1"]
    assert names(label=["k"], name=["b"]) == ["b1"]
    assert names(dangling=["true"]) == ["a1", "b2"]
    assert names(dangling=["false"]) == ["b1"]
    assert names(driver=["local"]) == ["a1", "b1", "b2"]
    assert names(opt=["uid=5"]) == ["b2"]
    assert names(until=["1h"]) == []
    assert names(until=[str(time.time() + 10)]) == ["a1", "b1", "b2"]
    with pytest.raises(InvalidArgument, match='"foo" is an invalid volume filter'):
        names(foo=["1"])
    with pytest.raises(InvalidArgument, match='"maybe" is not a valid value for the "dangling"'):
        names(dangling=["maybe"])
    with pytest.raises(InvalidArgument, match="failed to parse value as time or duration"):
        names(until=["abc"])


def test_parse_until() -> None:
    assert parse_until("1h30m", now=10000.0) == 10000.0 - 5400
    assert parse_until("1700000000") == 1700000000.0
    assert parse_until("2024-01-02T03:04:05Z") == 1704164645.0
    assert parse_until("2024-01-02") == 1704153600.0


def test_remove_in_use_and_prune(volumes: Volumes) -> None:
    vol = volumes.create("used")
    Path(vol.mountpoint, "file").write_text("x")
    volumes.create("free")
    volumes.create("labelled", labels={"keep": "no"})
    _add_container(volumes, "c1", "used")
    _add_container(volumes, "c2", "used", "other")
    assert volumes.users("used") == ["c1", "c2"]
    with pytest.raises(InUse) as e:
        volumes.remove("used")
    assert str(e.value) == (
        "volume used is being used by the following container(s): c1, c2: volume is being used"
    )
    assert volumes.prune({"label": ["keep=no"]}) == ["labelled"]
    assert volumes.prune({}) == ["free"]
    assert volumes.prune({}) == []
    with pytest.raises(InvalidArgument, match='"name" is an invalid volume filter'):
        volumes.prune({"name": ["x"]})
    volumes.remove("used", force=True)
    assert not volumes.exists("used") and not os.path.exists(os.path.dirname(vol.mountpoint))
    with pytest.raises(NotFound):
        volumes.remove("used")


@pytest.mark.root
def test_tmpfs_volume_is_mounted_on_first_use_and_counted(volumes: Volumes) -> None:
    vol = volumes.create(
        "t", options={"type": "tmpfs", "device": "tmpfs", "o": "size=1m,uid=1000,nodev"}
    )
    assert not _is_mounted(vol.mountpoint)
    assert volumes.mount("t") == vol.mountpoint
    assert _is_mounted(vol.mountpoint)
    with open("/proc/self/mountinfo") as f:
        line = next(x for x in f if x.split()[4] == vol.mountpoint)
    assert " - tmpfs tmpfs " in line and "size=1024k" in line and "uid=1000" in line
    assert "nodev" in line.split()[5]
    Path(vol.mountpoint, "f").write_text("in tmpfs")
    assert volumes.mount("t") == vol.mountpoint
    assert volumes.get("t").mount_count == 2
    volumes.unmount("t")
    assert _is_mounted(vol.mountpoint)
    with pytest.raises(InUse, match="mounted by a container"):
        volumes.remove("t")
    volumes.unmount("t")
    assert not _is_mounted(vol.mountpoint) and volumes.get("t").mount_count == 0
    assert not os.path.exists(os.path.join(vol.mountpoint, "f"))  # it lived in the tmpfs
    volumes.unmount("t")  # one too many: nothing to do
    # a crash after the mount but before the count was written: no second mount on top
    volumes.mount("t")
    with volumes.db.transaction():
        volumes.db.execute("UPDATE volumes SET config = json_set(config, '$.mount_count', 0)")
    volumes.mount("t")
    with open("/proc/self/mountinfo") as f:
        assert sum(1 for x in f if x.split()[4] == vol.mountpoint) == 1
    volumes.remove("t", force=True)
    assert not _is_mounted(vol.mountpoint) and not volumes.exists("t")


@pytest.mark.root
def test_bind_volume(volumes: Volumes, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello").write_text("hi")
    volumes.create("b", options={"type": "bind", "device": str(src), "o": "bind,ro"})
    path = volumes.mount("b")
    assert Path(path, "hello").read_text() == "hi"
    with pytest.raises(OSError):
        Path(path, "new").write_text("x")
    volumes.unmount("b")
    assert not Path(path, "hello").exists()
    volumes.remove("b")


def test_plain_volume_mount_is_its_directory(volumes: Volumes) -> None:
    vol = volumes.create("p")
    assert volumes.mount("p") == vol.mountpoint and not _is_mounted(vol.mountpoint)
    volumes.unmount("p")
    assert volumes.get("p").mount_count == 0
    volumes.set_needs("p", copy_up=False, chown=False)
    got = volumes.get("p")
    assert (got.needs_copy_up, got.needs_chown) == (False, False)


def _mount_many(root: str, n: int) -> None:
    db = EngineDB(os.path.join(root, "engine.db"))
    vols = Volumes(db, root)
    for _ in range(n):
        vols.mount("t")
    db.close()


@pytest.mark.root
def test_concurrent_mounts_are_all_counted(volumes: Volumes, root: Path) -> None:
    volumes.create("t", options={"type": "tmpfs", "device": "tmpfs"})
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_mount_many, args=(str(root), 10)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert volumes.get("t").mount_count == 40
    for _ in range(40):
        volumes.unmount("t")
    assert not _is_mounted(volumes.get("t").mountpoint)
