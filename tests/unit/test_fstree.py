"""pypod.fstree.remove_tree: shutil.rmtree's job without shutil (on `run --rm`'s path)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pypod.fstree import remove_tree


def _tree(top: Path) -> None:
    (top / "a" / "b" / "c").mkdir(parents=True)
    (top / "a" / "file").write_text("x")
    (top / "a" / "b" / "c" / "deep").write_text("y")
    (top / ".hidden").write_text("z")
    os.mkfifo(top / "a" / "fifo")
    os.symlink("/", top / "a" / "to-root")
    os.symlink("b", top / "a" / "to-b")


def test_removes_everything_below_and_the_top(tmp_path: Path) -> None:
    top = tmp_path / "top"
    _tree(top)
    remove_tree(str(top))
    assert not top.exists()
    assert os.listdir(tmp_path) == []


def test_symlinks_inside_are_removed_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    top = tmp_path / "top"
    top.mkdir()
    os.symlink(outside, top / "link-to-dir")
    os.symlink(outside / "keep", top / "link-to-file")
    remove_tree(str(top))
    assert not top.exists()
    assert (outside / "keep").read_text() == "keep"


def test_missing_path_raises_unless_ignored(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        remove_tree(str(tmp_path / "nope"))
    remove_tree(str(tmp_path / "nope"), ignore_errors=True)


def test_a_symlink_or_a_file_as_the_top_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "dir"
    target.mkdir()
    (target / "keep").write_text("k")
    os.symlink(target, tmp_path / "link")
    with pytest.raises(OSError, match="symbolic link"):
        remove_tree(str(tmp_path / "link"))
    assert (target / "keep").exists()
    with pytest.raises(NotADirectoryError):
        remove_tree(str(target / "keep"))
    remove_tree(str(tmp_path / "link"), ignore_errors=True)
    assert (target / "keep").exists()
