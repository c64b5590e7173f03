"""Change lists (A/C/D) of full copies and of overlay upper directories (read without mounting)."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from pypod.errors import InvalidArgument
from pypod.storage.archive import VFS
from pypod.storage.archive.changes import Change, changes, changes_between


def _shown(found: list[Change]) -> list[str]:
    return [str(c) for c in found]


def _base(root: Path) -> None:
    (root / "etc/apt").mkdir(parents=True)
    (root / "etc/hosts").write_text("hosts")
    (root / "etc/apt/sources.list").write_text("deb")
    (root / "bin").mkdir()
    (root / "bin/sh").symlink_to("busybox")
    (root / "bin/busybox").write_text("bb")
    (root / "var/log").mkdir(parents=True)
    for p in sorted(root.rglob("*"), reverse=True):
        os.utime(p, (1_600_000_000, 1_600_000_000), follow_symlinks=False)


def _copy(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, symlinks=True)
    for p in sorted(src.rglob("*"), reverse=True):  # copytree sets dir times before content
        st = p.lstat()
        os.utime(
            dst / p.relative_to(src), ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False
        )


def test_changes_between_full_copies(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    _base(old)
    _copy(old, new)
    assert changes_between(str(old), str(new)) == []
    (new / "etc/hosts").write_text("hosts changed")
    (new / "bin/sh").unlink()
    (new / "bin/sh").symlink_to("/bin/busybox")
    os.utime(new / "bin/sh", (1_600_000_000, 1_600_000_000), follow_symlinks=False)
    os.utime(new / "bin", (1_600_000_000, 1_600_000_000))
    shutil.rmtree(new / "etc/apt")
    (new / "var/log/new.log").write_text("x")
    (new / "var/log/sub").mkdir()
    (new / "var/log/sub/f").write_text("x")
    assert _shown(changes_between(str(old), str(new))) == [
        "C /bin",  # holds a change: listed although its own stat is the same
        "C /bin/sh",  # only the link target differs
        "C /etc",
        "D /etc/apt",
        "C /etc/hosts",
        "C /var",
        "C /var/log",
        "A /var/log/new.log",
        "A /var/log/sub",
        "A /var/log/sub/f",
    ]


def test_changes_between_metadata_and_content(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    _base(old)
    _copy(old, new)
    os.chmod(new / "bin/busybox", 0o700)
    os.utime(new / "bin", (1_600_000_000, 1_600_000_000))
    assert _shown(changes_between(str(old), str(new))) == ["C /bin", "C /bin/busybox"]
    os.chmod(new / "bin/busybox", stat.S_IMODE((old / "bin/busybox").stat().st_mode))
    # same size and mtime, other bytes: only seen when asked to compare content
    (new / "etc/hosts").write_text("HOSTS")
    st = (old / "etc/hosts").stat()
    os.utime(new / "etc/hosts", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert changes_between(str(old), str(new)) == []
    assert _shown(changes_between(str(old), str(new), compare_content=True)) == [
        "C /etc",
        "C /etc/hosts",
    ]
    try:
        os.setxattr(new / "var/log", "user.x", b"1")
    except OSError:
        return
    assert "C /var/log" in _shown(changes_between(str(old), str(new)))


def _whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR, os.makedev(0, 0))


def _opaque(path: Path) -> None:
    os.setxattr(path, "user.overlay.opaque", b"y")


def test_changes_of_an_overlay_upper(tmp_path: Path) -> None:
    lower1, lower2, upper = tmp_path / "l1", tmp_path / "l2", tmp_path / "upper"
    for d in (lower1, lower2, upper):
        d.mkdir()
    _base(lower1)  # bottom layer
    (lower2 / "etc").mkdir()  # a layer that deleted /bin/busybox and emptied /var
    os.utime(lower2 / "etc", (1_600_000_000, 1_600_000_000))
    (lower2 / "bin").mkdir()
    try:
        _whiteout(lower2 / "bin/busybox")
        (lower2 / "var").mkdir()
        _opaque(lower2 / "var")
    except OSError as e:
        pytest.skip(f"cannot make overlay whiteouts or user xattrs here: {e}")
    (lower2 / "var/only").write_text("o")
    # the container: /etc/hosts changed, /bin/sh deleted, /etc/apt replaced (opaque), copy-ups
    (upper / "etc/apt").mkdir(parents=True)
    (upper / "etc/hosts").write_text("changed")
    _opaque(upper / "etc/apt")
    (upper / "etc/apt/fresh").write_text("f")
    (upper / "bin").mkdir()
    _whiteout(upper / "bin/sh")
    _whiteout(upper / "bin/busybox")  # deleted below already: not a change
    _whiteout(upper / "nothing")  # never existed: not a change
    (upper / "var").mkdir()
    (upper / "var/log").mkdir()  # hidden below by the opaque /var of lower2: an addition
    os.utime(upper / "etc", (1_600_000_000, 1_600_000_000))  # /etc itself only copied up
    found = changes([str(lower2), str(lower1)], str(upper))
    assert [c.path for c in found] == sorted(c.path for c in found)
    # as podman diff shows it: an opaque directory over a lower one is "D", its content "A"
    assert _shown(found) == [
        "C /bin",
        "D /bin/sh",
        "D /etc/apt",
        "A /etc/apt/fresh",
        "C /etc/hosts",
        "C /var",
        "A /var/log",
    ]
    assert "C /etc" not in _shown(found)
    with pytest.raises(InvalidArgument):
        changes([str(lower1)], str(upper), whiteouts=VFS)
