"""Shared fixtures: the pypod-runtime CLI on a private state root, busybox bundles, runc."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pypod.testing import find_busybox, make_bundle

BIN = Path(sys.executable).parent
PYPOD_RUNTIME = str(BIN / "pypod-runtime")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("root") and os.geteuid() != 0:
        pytest.skip("needs root (run the suite as root, as CI does)")


_LOGRUS_MSG = re.compile(r'msg=("(?:[^"\\]|\\.)*"|\S+)')


def messages(stderr: str) -> str:
    """The messages of runc-style logrus lines (`time=... level=error msg="..."`), unquoted."""
    out = []
    for line in stderr.splitlines():
        m = _LOGRUS_MSG.search(line)
        if m is None:
            out.append(line)
        else:
            raw = m.group(1)
            out.append(json.loads(raw) if raw.startswith('"') else raw)
    return "\n".join(out)


class CLI:
    """One program (pypod-runtime or runc) on its own --root; calls return CompletedProcess."""

    def __init__(self, exe: str, root: Path) -> None:
        self.exe = exe
        self.root = root

    def __call__(
        self, *args: str, input: str | None = None, timeout: float = 60, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        # Files, not pipes: a created or detached container keeps the caller's stdio open (as
        # with runc), so reading a pipe to its end would wait for the container to exit.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            proc = subprocess.run(
                [self.exe, "--root", str(self.root), *args],
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                text=True,
                timeout=timeout,
                check=False,
                **kw,
            )
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), err.read())

    def ok(self, *args: str, **kw: Any) -> str:
        proc = self(*args, **kw)
        assert proc.returncode == 0, f"{args}: rc={proc.returncode}\n{proc.stderr}{proc.stdout}"
        return proc.stdout

    def cleanup(self) -> None:
        proc = self("list", "-q")
        for cid in proc.stdout.split():
            self("delete", "--force", cid)


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[CLI]:
    cli = CLI(PYPOD_RUNTIME, tmp_path / "pypod-state")
    yield cli
    cli.cleanup()


@pytest.fixture
def runc(tmp_path: Path) -> Iterator[CLI]:
    exe = shutil.which("runc")
    if exe is None:
        pytest.skip("runc is not installed (apt-get install runc)")
    cli = CLI(exe, tmp_path / "runc-state")
    yield cli
    cli.cleanup()


@pytest.fixture(scope="session")
def busybox() -> str:
    path = find_busybox()
    if path is None:
        pytest.skip("busybox-static is not installed (apt-get install busybox-static)")
    return path


BundleFactory = Callable[..., Path]


@pytest.fixture
def bundle(tmp_path: Path, busybox: str) -> BundleFactory:
    """make(args, **options) -> a fresh bundle directory running `args` (runc's default spec)."""
    counter = iter(range(1000))

    def make(args: list[str], **kw: Any) -> Path:
        path = tmp_path / f"bundle{next(counter)}"
        make_bundle(str(path), args, **kw)
        return path

    return make
