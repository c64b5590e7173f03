"""Fixtures shared by the build tests (executor, `pypod build`, the comparisons with buildah).

`pp`: a pypod store of the test module's own, with `localhost/busybox` imported (under /tmp
with a short name: unix socket paths count); `ctx`: an empty build context directory.
Import them into a test module with
`from tests.build_support import ctx_fixture, pp_fixture  # noqa: F401`
(and `busybox_tar_fixture` from tests.engine_support, which `pp` uses).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine_support import Pypod, busybox_store


@pytest.fixture(scope="module", name="pp")
def pp_fixture(busybox_tar: Path) -> Iterator[Pypod]:
    """A pypod store of the module's own with localhost/busybox; destroyed afterwards."""
    with busybox_store("pbld", busybox_tar) as p:
        yield p


@pytest.fixture(name="ctx")
def ctx_fixture(tmp_path: Path) -> Path:
    """An empty build context directory."""
    d = tmp_path / "ctx"
    d.mkdir()
    return d
