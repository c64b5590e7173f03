"""Test support for `pypod` containers: a store with the busybox image, the CLI, a pty.

`Pypod` runs the real `pypod` program (a subprocess) on one `--root`/`--runroot`; the
session-scoped `pypod` fixture (via `pypod_session`) shares one store with the busybox image
(`localhost/busybox`, from `pypod.testing.make_busybox_rootfs`, imported with `pypod import`)
between the tests of a session, and `fresh_pypod` gives a test a store of its own when it
kills monitors or empties the run directory.  Teardown removes every container, then whatever
a bug may have left: processes in the containers' cgroups, the cgroups, mounts below the store.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pypod.testing import find_busybox, make_busybox_rootfs
from tests.conftest import BIN, run_captured

PYPOD = str(BIN / "pypod")
IMAGE = "localhost/busybox"
#: podman's (and pypod's) parent of every container cgroup (engine/spec.py CGROUP_PARENT)
CGROUP_PARENT = "pypod_parent"

T = TypeVar("T")


def wait_for(cond: Callable[[], T], timeout: float = 10, what: str = "condition") -> T:
    """Poll `cond` until it returns something true; that value (fails after `timeout`)."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def table(text: str) -> list[list[str]]:
    """Rows of a podman table, header first, cut where the header's columns start (podman's
    tabwriter aligns them), so that empty cells (PORTS) stay in place."""
    lines = text.rstrip("\n").splitlines()
    if not lines:
        return []
    starts = [m.start() for m in re.finditer(r"(?:^|(?<=\s\s))\S", lines[0])]
    rows = []
    for line in lines:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        rows.append(cells)
    return rows


class Pypod:
    """`pypod --root R --runroot RR ...` as a subprocess; calls return CompletedProcess[str]."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.root = store / "root"
        self.runroot = store / "run"

    @property
    def argv(self) -> list[str]:
        return [PYPOD, "--root", str(self.root), "--runroot", str(self.runroot)]

    def command(self, *args: str) -> str:
        """The command line as a shell would take it (for pexpect)."""
        import shlex

        return shlex.join([*self.argv, *args])

    def __call__(
        self, *args: str, input: str | None = None, timeout: float = 60,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return run_captured([*self.argv, *args], input=input, timeout=timeout, env=env)

    def ok(self, *args: str, input: str | None = None, timeout: float = 60) -> str:
        proc = self(*args, input=input, timeout=timeout)
        assert proc.returncode == 0, f"{args}: rc={proc.returncode}\n{proc.stderr}{proc.stdout}"
        return proc.stdout

    def fails(self, code: int, *args: str, input: str | None = None) -> str:
        """Run a command that must exit with `code`; its stderr."""
        proc = self(*args, input=input)
        assert (
            proc.returncode == code
        ), f"{args}: rc={proc.returncode}, wanted {code}\n{proc.stderr}{proc.stdout}"
        return proc.stderr

    def run_d(self, *args: str) -> str:
        """`run -d ARGS...`: the new container's full ID."""
        out = self.ok("run", "-d", *args).strip()
        assert re.fullmatch(r"[0-9a-f]{64}", out), out
        return out

    def sleeper(self, *flags: str, seconds: int = 1000) -> str:
        """A detached busybox `sleep` container; its ID."""
        return self.run_d(*flags, IMAGE, "sleep", str(seconds))

    def fmt(self, what: str, template: str) -> str:
        """`inspect --format TEMPLATE WHAT`, stripped."""
        return self.ok("inspect", "--format", template, what).strip()

    def status(self, what: str) -> str:
        return self.fmt(what, "{{.State.Status}}")

    def wait_status(self, what: str, status: str, timeout: float = 10) -> None:
        wait_for(lambda: self.status(what) == status, timeout, f"{what} to be {status}")

    def known_ids(self) -> set[str]:
        """Every container ID this store ever had (from its events, which outlive removal)."""
        out = self("events", "--stream=false", "--format", "{{.ID}}").stdout
        ids = set(out.split())
        ids |= set(self("ps", "-a", "-q", "--no-trunc").stdout.split())
        return {i for i in ids if re.fullmatch(r"[0-9a-f]{64}", i)}

    def remove_all(self) -> None:
        self("rm", "--all", "--force", "--time", "0", timeout=120)


def make_busybox_tar(dest: Path) -> Path:
    busybox = find_busybox()
    if busybox is None:
        pytest.skip("busybox-static is not installed (apt-get install busybox-static)")
    rootfs = make_busybox_rootfs(str(dest / "rootfs"), busybox)
    tar_path = dest / "busybox.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(rootfs, arcname=".")
    shutil.rmtree(dest / "rootfs")
    return tar_path


def new_store(where: Path, busybox_tar: Path) -> Pypod:
    """A store under `where` with the busybox image imported as `localhost/busybox`."""
    p = Pypod(where)
    p.ok("import", "-q", str(busybox_tar), IMAGE)
    return p


@contextlib.contextmanager
def busybox_store(prefix: str, busybox_tar: Path) -> Iterator[Pypod]:
    """A store of its own with localhost/busybox, under /tmp with a short name (unix socket
    paths count); destroyed afterwards with all it holds."""
    p = Pypod(Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp")))
    try:
        p.ok("import", "-q", str(busybox_tar), IMAGE)
        yield p
    finally:
        destroy_store(p)


def remove_cgroups(cid: str) -> None:
    """Kill whatever is left in container `cid`'s cgroups and remove them, in every hierarchy."""
    base = Path("/sys/fs/cgroup")
    if not base.is_dir():
        return
    dirs = []
    for hier in base.iterdir():
        d = hier / CGROUP_PARENT / f"pypod-{cid}"
        if d.is_dir():
            dirs.append(d)
    for d in dirs:
        freezer = d / "freezer.state"
        if freezer.exists():
            with contextlib.suppress(OSError):
                freezer.write_text("THAWED")
        with contextlib.suppress(OSError):
            for pid in (d / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
    for d in dirs:
        for sub in sorted(d.rglob("*"), key=lambda p: -len(p.parts)):
            if sub.is_dir():
                with contextlib.suppress(OSError):
                    sub.rmdir()
        deadline = time.monotonic() + 5
        while d.exists() and time.monotonic() < deadline:
            try:
                d.rmdir()
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)


def leftover_cgroups(ids: set[str]) -> list[str]:
    """The cgroup directories still there for containers `ids`."""
    base = Path("/sys/fs/cgroup")
    found = []
    for hier in base.iterdir() if base.is_dir() else ():
        for cid in ids:
            d = hier / CGROUP_PARENT / f"pypod-{cid}"
            if d.is_dir():
                found.append(str(d))
    return found


def _monitors_of(store: Path) -> list[int]:
    """Processes whose command line names the store (monitors, cleanup commands)."""
    needle = str(store).encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if needle in cmdline:
            pids.append(int(entry))
    return pids


def unmount_below(path: Path) -> None:
    prefix = str(path).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f if line.split()[4].startswith(prefix)]
    for point in reversed(points):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def destroy_store(p: Pypod) -> None:
    """Remove every container of `p`'s store and whatever is left of them on the machine."""
    ids = set()
    with contextlib.suppress(Exception):
        ids = p.known_ids()
    with contextlib.suppress(Exception):
        p.remove_all()
    for cid in ids:
        remove_cgroups(cid)
    for pid in _monitors_of(p.store):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    unmount_below(p.store)
    shutil.rmtree(p.store, ignore_errors=True)


@pytest.fixture(scope="session", name="busybox_tar")
def busybox_tar_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_busybox_tar(tmp_path_factory.mktemp("busybox-image"))


@pytest.fixture(scope="session", name="pypod_session")
def pypod_session_fixture(busybox_tar: Path) -> Iterator[Pypod]:
    """One store per session, with localhost/busybox."""
    with busybox_store("pe2e", busybox_tar) as p:
        yield p


@pytest.fixture(name="pypod")
def pypod_fixture(pypod_session: Pypod) -> Iterator[Pypod]:
    """The session's store; the containers a test leaves are removed after it."""
    before = set(pypod_session("ps", "-a", "-q", "--no-trunc").stdout.split())
    yield pypod_session
    after = set(pypod_session("ps", "-a", "-q", "--no-trunc").stdout.split())
    left = sorted(after - before)
    if left:  # pods first: an infra container goes only with its pod
        pypod_session("pod", "rm", "--all", "--force", "--time", "0", timeout=120)
        pypod_session("rm", "--force", "--ignore", "--time", "0", *left, timeout=120)


@pytest.fixture(name="pods")
def pods_fixture(pypod: Pypod) -> Iterator[Pypod]:
    """The session store; every pod a test leaves is removed (members first) after it."""
    before = set(pypod("pod", "ps", "-q", "--no-trunc").stdout.split())
    yield pypod
    left = set(pypod("pod", "ps", "-q", "--no-trunc").stdout.split()) - before
    if left:
        pypod("pod", "rm", "-f", "-t", "0", *sorted(left), timeout=120)


@pytest.fixture(name="fresh_pypod")
def fresh_pypod_fixture(busybox_tar: Path) -> Iterator[Pypod]:
    """A store of the test's own (for tests that kill monitors or empty the run directory)."""
    with busybox_store("pe2f", busybox_tar) as p:
        yield p


def spawn(p: Pypod, *args: str, timeout: float = 20, **kw: Any) -> Any:
    """`pypod ARGS...` on a real pty, driven by pexpect."""
    pexpect = pytest.importorskip("pexpect")
    kw.setdefault("dimensions", (24, 80))
    child = pexpect.spawn(
        p.argv[0], [*p.argv[1:], *args], timeout=timeout, encoding="utf-8", **kw
    )  # fmt: skip
    return child
