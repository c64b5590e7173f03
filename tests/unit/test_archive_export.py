"""Exporting changes as a layer tar: content, determinism, whiteouts, hardlinks, round trip."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pypod.errors import InvalidArgument
from pypod.storage.archive import VFS
from pypod.storage.archive.apply import apply_layer
from pypod.storage.archive.changes import Change, ChangeKind, changes_between
from pypod.storage.archive.export import export_changes
from tests.unit.test_archive_apply import dir_, link, reg, sym, tar_bytes


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Everything a layer keeps about each path below `root` (hardlinks as groups)."""
    groups: dict[tuple[int, int], str] = {}
    out: dict[str, tuple[Any, ...]] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        st = path.lstat()
        group = groups.setdefault((st.st_dev, st.st_ino), rel)
        target = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
        data = None
        if stat.S_ISREG(st.st_mode):
            data = hashlib.sha256(path.read_bytes()).hexdigest()
        try:
            names = os.listxattr(path, follow_symlinks=False)
        except OSError:
            names = []
        xattrs = {
            n: os.getxattr(path, n, follow_symlinks=False)
            for n in sorted(names)
            if "overlay" not in n
        }
        out[rel] = (
            st.st_mode,
            st.st_uid,
            st.st_gid,
            st.st_rdev,
            int(st.st_mtime) if not stat.S_ISDIR(st.st_mode) else int(st.st_mtime),
            target,
            data,
            xattrs,
            group,
        )
    return out


def _members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
        return tf.getmembers()


def _tree(root: Path) -> None:
    (root / "etc/apt").mkdir(parents=True)
    (root / "etc/apt/sources.list").write_text("deb\n")
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n")
    (root / "bin").mkdir()
    (root / "bin/busybox").write_bytes(b"\x7fELF")
    os.chmod(root / "bin/busybox", 0o755)
    os.link(root / "bin/busybox", root / "bin/ls")
    os.symlink("busybox", root / "bin/sh")
    os.mkfifo(root / "fifo")
    for p in (root / "bin/busybox", root / "etc"):
        os.utime(p, (1_600_000_000, 1_600_000_000))


def test_export_is_a_deterministic_pax_layer(tmp_path: Path) -> None:
    _tree(tmp_path)
    chg = [
        Change(path="/bin/ls", kind=ChangeKind.ADD),
        Change(path="/bin/busybox", kind=ChangeKind.ADD),
        Change(path="/bin/sh", kind=ChangeKind.ADD),
        Change(path="/fifo", kind=ChangeKind.ADD),
        Change(path="/etc/apt/sources.list", kind=ChangeKind.MODIFY),
        Change(path="/etc/gone", kind=ChangeKind.DELETE),
    ]
    first, second = io.BytesIO(), io.BytesIO()
    r1 = export_changes(str(tmp_path), chg, first)
    r2 = export_changes(str(tmp_path), list(reversed(chg)), second)
    assert first.getvalue() == second.getvalue()
    assert r1 == r2
    data = first.getvalue()
    assert r1.diff_id == r1.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert r1.size == r1.uncompressed_size == len(data)
    assert data.endswith(b"\0" * 1024) and len(data) % 512 == 0
    members = _members(data)
    names = [m.name for m in members]
    # parents first (etc and etc/apt added although only a file in them changed)
    assert names == [
        "bin",
        "bin/busybox",
        "bin/ls",
        "bin/sh",
        "etc",
        "etc/apt",
        "etc/apt/sources.list",
        "etc/.wh.gone",  # sorted by the name it deletes
        "fifo",
    ]
    by = {m.name: m for m in members}
    assert by["bin/ls"].islnk() and by["bin/ls"].linkname == "bin/busybox"
    assert by["bin/busybox"].mode == stat.S_IFREG | 0o755  # type bits in the mode, as Go
    assert by["bin/busybox"].mtime == 1_600_000_000
    assert by["bin/sh"].issym() and by["bin/sh"].linkname == "busybox"
    assert by["fifo"].isfifo()
    assert by["etc"].isdir() and by["etc"].mtime == 1_600_000_000
    assert all(m.uname == "" and m.gname == "" for m in members)
    assert by["etc/.wh.gone"].isreg() and by["etc/.wh.gone"].size == 0


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_compressed_export_digests(tmp_path: Path, compression: str) -> None:
    _tree(tmp_path)
    chg = [Change(path="/etc/hosts", kind=ChangeKind.ADD)]
    plain, comp = io.BytesIO(), io.BytesIO()
    rp = export_changes(str(tmp_path), chg, plain)
    rc = export_changes(str(tmp_path), chg, comp, compression=compression)
    blob = comp.getvalue()
    assert rc.diff_id == rp.diff_id
    assert rc.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert rc.size == len(blob)
    if compression == "gzip":
        assert gzip.decompress(blob) == plain.getvalue()
    else:
        import zstandard

        assert zstandard.ZstdDecompressor().decompressobj().decompress(blob) == plain.getvalue()
    with pytest.raises(InvalidArgument):
        export_changes(str(tmp_path), chg, io.BytesIO(), compression="lz4")


def test_opaque_directory_exports_the_marker_and_not_its_deletions(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d/new").write_text("n")
    try:
        os.setxattr(tmp_path / "d", "user.overlay.opaque", b"y")
    except OSError:
        pytest.skip("no user xattrs on the test filesystem")
    chg = [
        Change(path="/d", kind=ChangeKind.MODIFY),
        Change(path="/d/old", kind=ChangeKind.DELETE),
        Change(path="/d/new", kind=ChangeKind.ADD),
    ]
    out = io.BytesIO()
    export_changes(str(tmp_path), chg, out)
    members = _members(out.getvalue())
    assert [m.name for m in members] == ["d", "d/.wh..wh..opq", "d/new"]
    assert "SCHILY.xattr.user.overlay.opaque" not in members[0].pax_headers


def test_deleted_but_present_directory_becomes_opaque(tmp_path: Path) -> None:
    # changes() lists `rm -rf /d; mkdir /d` as podman does: "D /d", then "A" below it
    (tmp_path / "d").mkdir(mode=0o700)
    (tmp_path / "d/new").write_text("n")
    os.mknod(tmp_path / "gone", stat.S_IFCHR, os.makedev(0, 0))
    chg = [
        Change(path="/d", kind=ChangeKind.DELETE),
        Change(path="/d/new", kind=ChangeKind.ADD),
        Change(path="/gone", kind=ChangeKind.DELETE),
    ]
    out = io.BytesIO()
    export_changes(str(tmp_path), chg, out)
    members = _members(out.getvalue())
    assert [m.name for m in members] == ["d", "d/.wh..wh..opq", "d/new", ".wh.gone"]
    assert members[0].isdir() and stat.S_IMODE(members[0].mode) == 0o700


def test_user_xattrs_exported_overlay_ones_not(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    try:
        os.setxattr(tmp_path / "f", "user.a", b"\xff\x01")
        os.setxattr(tmp_path / "f", "user.overlay.origin", b"z")
    except OSError:
        pytest.skip("no user xattrs on the test filesystem")
    out = io.BytesIO()
    export_changes(str(tmp_path), [Change(path="/f", kind=ChangeKind.ADD)], out)
    (m,) = _members(out.getvalue())
    xattrs = {k: v for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")}
    assert list(xattrs) == ["SCHILY.xattr.user.a"]
    assert xattrs["SCHILY.xattr.user.a"].encode("utf-8", "surrogateescape") == b"\xff\x01"


def test_round_trip_unprivileged(tmp_path: Path) -> None:
    """apply a base; change a copy; export changes_between; apply on a fresh base; compare."""
    base_tar = tar_bytes(
        dir_("etc/"),
        reg("etc/passwd", b"root\n"),
        reg("etc/keep", b"k"),
        dir_("etc/apt/"),
        reg("etc/apt/a", b"a"),
        dir_("usr/bin/"),
        reg("usr/bin/tool", b"t", mode=0o755),
        link("usr/bin/tool2", "usr/bin/tool"),
        sym("bin", "usr/bin"),
        dir_("tmp/", mode=0o1777),
    )
    roots = {}
    for name in ("base", "work", "fresh"):
        roots[name] = tmp_path / name
        roots[name].mkdir()
        apply_layer(io.BytesIO(base_tar), str(roots[name]), whiteouts=VFS, rootless=True)
    work = roots["work"]
    (work / "etc/passwd").write_text("root\nuser\n")
    os.chmod(work / "etc/keep", 0o600)
    import shutil

    shutil.rmtree(work / "etc/apt")
    (work / "etc/apt").mkdir()
    (work / "etc/apt/b").write_text("b")
    (work / "tmp/x").write_text("x")
    os.link(work / "tmp/x", work / "tmp/y")
    os.unlink(work / "bin")
    os.symlink("/usr/bin", work / "bin")
    (work / "usr/bin/tool2").unlink()
    found = changes_between(str(roots["base"]), str(work))
    out = io.BytesIO()
    res = export_changes(str(work), found, out, compression="gzip")
    out.seek(0)
    applied = apply_layer(out, str(roots["fresh"]), whiteouts=VFS, rootless=True)
    assert applied.diff_id == res.diff_id
    assert snapshot(roots["fresh"]) == snapshot(work)


_NAMES = st.sampled_from(["a", "b", "c", "dir", "x y", "\u00e9t\u00e9", "long" * 30])
_NODE = st.tuples(
    st.lists(_NAMES, min_size=1, max_size=3),
    st.sampled_from(["file", "dir", "symlink", "hardlink", "fifo"]),
    st.binary(max_size=700),
    st.sampled_from([0o644, 0o600, 0o755, 0o1777, 0o700, 0o444]),
    st.integers(min_value=0, max_value=2_000_000_000),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_NODE, min_size=1, max_size=12))
def test_property_export_then_apply_gives_the_same_tree(
    tmp_path: Path, nodes: list[tuple[list[str], str, bytes, int, int]]
) -> None:
    import shutil
    import uuid

    box = tmp_path / uuid.uuid4().hex
    src, dst = box / "src", box / "dst"
    src.mkdir(parents=True)
    dst.mkdir()
    files: list[Path] = []
    for parts, kind, data, mode, mtime in nodes:
        path = src.joinpath(*parts)
        parents = [src.joinpath(*parts[:i]) for i in range(1, len(parts))]
        if os.path.lexists(path) or any(
            os.path.lexists(p) and (p.is_symlink() or not p.is_dir()) for p in parents
        ):
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "file":
            path.write_bytes(data)
            files.append(path)
        elif kind == "dir":
            path.mkdir()
        elif kind == "symlink":
            os.symlink(data.decode("latin-1").replace("\0", "") or "target", path)
        elif kind == "hardlink" and files:
            os.link(files[0], path)
        elif kind == "fifo":
            os.mkfifo(path)
        if not path.is_symlink() and path.exists() and not (kind == "hardlink" and files):
            os.chmod(path, mode)
        if os.path.lexists(path):
            os.utime(path, (mtime, mtime), follow_symlinks=False)
    for d in sorted((p for p in src.rglob("*") if p.is_dir() and not p.is_symlink()), reverse=True):
        os.utime(d, (1_500_000_000, 1_500_000_000))
    everything = [
        Change(path="/" + str(p.relative_to(src)), kind=ChangeKind.ADD) for p in src.rglob("*")
    ]
    out = io.BytesIO()
    result = export_changes(str(src), everything, out)
    out.seek(0)
    assert apply_layer(out, str(dst), rootless=True).diff_id == result.diff_id
    assert snapshot(dst) == snapshot(src)
    shutil.rmtree(box)
