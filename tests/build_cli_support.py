"""Test support for `pypod-build`: the program on a `pypod` store, and buildah on its own.

`Build` runs the real `pypod-build` (a subprocess) with the `--root`/`--runroot` of a `Pypod`
store (so `pypod images` sees what it commits); `Buildah` runs buildah 1.28 on a store of its
own (vfs, runc, the machine's limits in a containers.conf), with a `localhost/busybox` image
built the buildah way (from scratch, copy, config, commit).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN, run_captured
from tests.engine_support import Pypod, busybox_store, unmount_below
from tests.podman_support import reference_env

PYPOD_BUILD = str(BIN / "pypod-build")


class Tool:
    """A build tool on one store: calls return CompletedProcess[str]."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.env = env

    def __call__(self, *args: str, cwd: str | Path | None = None, input: str | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return run_captured([*self.argv, *args], cwd=cwd, env=self.env, input=input,
                            timeout=timeout)  # fmt: skip

    def ok(self, *args: str, **kw: Any) -> str:
        proc = self(*args, **kw)
        assert proc.returncode == 0, f"{args}: rc={proc.returncode}\n{proc.stderr}{proc.stdout}"
        return proc.stdout

    def fails(self, code: int, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        proc = self(*args, **kw)
        assert (
            proc.returncode == code
        ), f"{args}: rc={proc.returncode}, wanted {code}\n{proc.stderr}{proc.stdout}"
        return proc

    def remove_all(self) -> None:
        self("rm", "--all")


class Build(Tool):
    def __init__(self, store: Pypod) -> None:
        super().__init__([PYPOD_BUILD, "--root", str(store.root), "--runroot", str(store.runroot)])
        self.store = store


class Buildah(Tool):
    def __init__(self, base: Path) -> None:
        base.mkdir(parents=True, exist_ok=True)
        env = reference_env(base)
        super().__init__(["buildah", "--root", str(base / "root"), "--runroot",
                          str(base / "run"), "--storage-driver", "vfs"], env)  # fmt: skip
        self.base = base


@pytest.fixture(scope="module", name="build_store")
def build_store_fixture(busybox_tar: Path) -> Iterator[Pypod]:
    """A pypod store of the module's own with localhost/busybox."""
    with busybox_store("pbld", busybox_tar) as p:
        try:
            yield p
        finally:
            Build(p).remove_all()


@pytest.fixture(name="build")
def build_fixture(build_store: Pypod) -> Iterator[Build]:
    """pypod-build on the module's store; the working containers a test leaves are removed."""
    b = Build(build_store)
    yield b
    b.remove_all()


@pytest.fixture(scope="module", name="buildah_tool")
def buildah_tool_fixture(tmp_path_factory: pytest.TempPathFactory, build_store: Pypod
                         ) -> Iterator[Buildah]:  # fmt: skip
    """buildah on a store of its own, with the very localhost/busybox image of `build_store`
    (copied through an OCI layout: the same image ID on both sides)."""
    if shutil.which("buildah") is None:
        pytest.skip("buildah is not installed (apt-get install buildah)")
    base = tmp_path_factory.mktemp("buildah")
    tool = Buildah(base)
    layout = base / "layout"
    build_store.ok("push", "-q", "localhost/busybox", f"oci:{layout}:busybox")
    image_id = tool.ok("pull", "-q", f"oci:{layout}:busybox").strip()
    tool.ok("tag", image_id, "localhost/busybox")
    for name in json.loads(tool.ok("images", "--json"))[0]["names"]:
        if name != "localhost/busybox:latest":  # buildah names it after the layout's path
            tool.ok("rmi", name)
    try:
        yield tool
    finally:
        tool.remove_all()
        unmount_below(base)
        shutil.rmtree(base, ignore_errors=True)


HEX64 = re.compile(r"\b[0-9a-f]{64}\b")
HEX12 = re.compile(r"\b[0-9a-f]{12}\b")


def normalize(text: str) -> str:
    """Output with IDs, ages and program names made comparable."""
    text = HEX64.sub("<ID>", text)
    text = re.sub(r"^--> [0-9a-f]{11}$", "--> <id>", text, flags=re.M)
    text = HEX12.sub("<id>", text)
    text = re.sub(r"(Less than a second|\d+ seconds?|About a minute|\d+ minutes) ago", "<age>",
                  text)  # fmt: skip
    return text.replace("pypod-build", "buildah")
