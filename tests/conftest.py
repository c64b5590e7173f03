"""Shared fixtures: the pypod-runtime CLI on a private state root, busybox bundles, runc."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
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


def run_captured(
    argv: list[str], *, input: str | None = None, timeout: float = 60, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """Run `argv` (text; `kw` as subprocess.run's: env, cwd, user...) with its output in files.

    Files, not pipes: a created or detached container (its monitor, conmon) keeps the caller's
    stdio open, so reading a pipe to its end would wait for the container to exit.  stdin is
    /dev/null unless `input` is given.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.run(
            argv,
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


class CLI:
    """One program (pypod-runtime or runc) on its own --root; calls return CompletedProcess."""

    def __init__(self, exe: str, root: Path) -> None:
        self.exe = exe
        self.root = root

    def __call__(
        self, *args: str, input: str | None = None, timeout: float = 60, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        return run_captured([self.exe, "--root", str(self.root), *args], input=input,
                            timeout=timeout, **kw)  # fmt: skip

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


def _remove_cgroup_tree(relative: str) -> None:
    """Kill what is left in a test's cgroups and rmdir them (deepest first), in every hierarchy.

    Runs before the runtime fixtures delete their containers (pytest tears fixtures down in
    reverse order), so it cannot count on the containers being gone already.
    """
    tops = [h / relative for h in Path("/sys/fs/cgroup").iterdir() if (h / relative).is_dir()]
    dirs = sorted(
        (d for top in tops for d in [top, *top.rglob("*")] if d.is_dir()),
        key=lambda d: -len(d.parts),
    )
    for d in dirs:
        if (d / "freezer.state").exists():
            with contextlib.suppress(OSError):
                (d / "freezer.state").write_text("THAWED")
        with contextlib.suppress(OSError):
            for pid in (d / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
    deadline = time.monotonic() + 5
    for d in dirs:
        while True:
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)


@pytest.fixture
def bundle(tmp_path: Path, busybox: str) -> Iterator[BundleFactory]:
    """make(args, **options) -> a fresh bundle directory running `args` (runc's default spec).

    Each bundle gets its own cgroupsPath below a parent unique to the test: by default the
    cgroup is named after the container id (as with runc), so tests running at the same time
    with the same ids under different --root would share (and kill) each other's cgroups.
    """
    counter = iter(range(1000))
    parent = f"pypod-tests-{uuid.uuid4().hex[:12]}"

    def make(
        args: list[str], *, edit: Callable[[dict[str, Any]], None] | None = None, **kw: Any
    ) -> Path:
        n = next(counter)
        path = tmp_path / f"bundle{n}"

        def edit_all(spec: dict[str, Any]) -> None:
            spec["linux"]["cgroupsPath"] = f"/{parent}/b{n}"
            if edit is not None:
                edit(spec)

        make_bundle(str(path), args, edit=edit_all, **kw)
        return path

    yield make
    _remove_cgroup_tree(parent)
