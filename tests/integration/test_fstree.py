"""pypod.fstree.remove_tree's errors, provoked with a mount point inside the tree (root)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pypod.fstree import remove_tree


def test_errors_name_the_entry_and_ignore_errors_removes_what_it_can(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: a mount point inside the tree is the error provoked")
    top = tmp_path / "top"
    (top / "busy").mkdir(parents=True)
    (top / "free").write_text("x")
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(top / "busy")], check=True)
    try:
        (top / "busy" / "inside").write_text("x")
        with pytest.raises(OSError) as info:
            remove_tree(str(top))
        assert "busy" in str(info.value.filename)  # rmdir of a mount point: EBUSY
        (top / "free2").write_text("x")
        remove_tree(str(top), ignore_errors=True)
        assert (top / "busy").is_dir()
        assert sorted(os.listdir(top)) == ["busy"]
    finally:
        subprocess.run(["umount", str(top / "busy")], check=True)
