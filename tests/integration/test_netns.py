"""Persistent network namespaces (pypod.linux.netns): made with lo up, removed without trace."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pypod.linux import netns

pytestmark = pytest.mark.root


def test_create_has_lo_up_and_remove_leaves_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "ns" / "one")
    netns.create(path)
    try:
        out = subprocess.run(["nsenter", f"--net={path}", "ip", "-o", "link"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert "lo:" in out and ",UP" in out and len(out.splitlines()) == 1
    finally:
        netns.remove(path)
    assert not os.path.exists(path)


def test_remove_of_a_file_no_longer_mounted(tmp_path: Path) -> None:
    # the namespace's mount went with its mount namespace (a rootless user namespace that was
    # killed): only the file is left, and remove takes it away too
    path = tmp_path / "stale"
    path.write_text("")
    netns.remove(str(path))
    assert not path.exists()
    netns.remove(str(path))  # and again: nothing to do, no error
