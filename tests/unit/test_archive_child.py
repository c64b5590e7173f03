"""Layers applied by a child process (`archive.child`): the same result as in process, errors
handed back, the caller's stream errors raised as they are, no child left behind, no lock or
descriptor of the parent kept by the child, and a child that dies with its parent."""

from __future__ import annotations

import errno
import fcntl
import gzip
import io
import os
import signal
import time
from pathlib import Path

import pytest

from pypod.errors import RegistryError, StorageError
from pypod.storage.archive import OVERLAY, VFS
from pypod.storage.archive.apply import ISOLATE_MIN, ApplyResult, apply_layer
from pypod.storage.archive.stream import LayoutRecorder
from tests.storage_support import killed_child
from tests.unit.test_archive_apply import SIMPLE, dir_, reg, sym, tar_bytes


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    d = tmp_path / "layer"
    d.mkdir()
    return d


#: children this process had before the test (in the whole suite pytest may have some: the
#: orphans of other tests, when one made it a subreaper): not the test's
_BEFORE: set[int] = set()


@pytest.fixture(autouse=True)
def _children_before() -> None:
    _BEFORE.clear()
    _BEFORE.update(_all_children())


def _children() -> set[int]:
    """The pids of this process's children made during the test (zombies included)."""
    return _all_children() - _BEFORE


def _all_children() -> set[int]:
    me = str(os.getpid())
    out = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
            except OSError:
                continue
            if fields[1] == me:
                out.add(int(name))
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _tree(root: Path) -> dict[str, tuple[int, int, bytes]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            data = p.read_bytes() if p.is_file() and not p.is_symlink() else b""
            out[str(p.relative_to(root))] = (st.st_mode, st.st_mtime_ns, data)
    return out


def _big_tar() -> bytes:
    """More than ISOLATE_MIN even gzipped: applied by a child when isolate is None."""
    files = [reg(f"d/f{i:03}", os.urandom(20_000), mode=0o640) for i in range(120)]
    return tar_bytes(*SIMPLE, dir_("d/", mode=0o750), *files, sym("d/l", "f000"))


class _Stream(io.RawIOBase):
    """A blob read in small pieces; `at(pos)` runs before each read."""

    def __init__(self, data: bytes, at: object = None) -> None:
        self.data = io.BytesIO(data)
        self.at = at

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.at is not None:
            self.at(self.data.tell())  # type: ignore[operator]
        return self.data.read(min(n, 64 << 10) if n > 0 else 64 << 10)


def test_big_layers_go_to_a_child_small_ones_stay(
    dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forks: list[int] = []
    real_fork = os.fork

    def fork() -> int:
        forks.append(1)
        return real_fork()

    monkeypatch.setattr(os, "fork", fork)
    apply_layer(io.BytesIO(tar_bytes(*SIMPLE)), str(dest), rootless=True)
    assert forks == []
    big = _big_tar()
    assert len(big) > ISOLATE_MIN
    (dest.parent / "big").mkdir()
    apply_layer(io.BytesIO(big), str(dest.parent / "big"), rootless=True)
    assert forks == [1]
    (dest.parent / "forced").mkdir()
    apply_layer(io.BytesIO(tar_bytes(*SIMPLE)), str(dest.parent / "forced"), rootless=True,
                isolate=True)  # fmt: skip
    assert forks == [1, 1]


@pytest.mark.parametrize("compression", ["none", "gzip"])
@pytest.mark.parametrize("whiteouts", [OVERLAY, VFS], ids=["overlay", "vfs"])
def test_a_child_applies_exactly_as_in_process(
    tmp_path: Path, compression: str, whiteouts: object
) -> None:
    plain = _big_tar() + b"\0" * 1024
    blob = gzip.compress(plain, 1) if compression == "gzip" else plain
    results: list[ApplyResult] = []
    layouts: list[LayoutRecorder] = []
    for isolate in (False, True):
        d = tmp_path / str(isolate)
        d.mkdir()
        layout = LayoutRecorder()
        results.append(
            apply_layer(
                io.BytesIO(blob),
                str(d),
                whiteouts=whiteouts,
                layout=layout,  # type: ignore[arg-type]
                rootless=True,
                isolate=isolate,
            )  # fmt: skip
        )
        layouts.append(layout)
    assert results[0] == results[1]
    assert results[1].compression == compression and results[1].compressed_size == len(blob)
    assert _tree(tmp_path / "False") == _tree(tmp_path / "True")
    assert layouts[0].state() == layouts[1].state() and layouts[1].complete
    assert layouts[1].finish()[-1] == layouts[0].finish()[-1]


def test_errors_of_the_child_come_back_as_storage_errors(dest: Path) -> None:
    with pytest.raises(StorageError, match=r"entry 'a/\.\./\.\./x'.*climbs out"):
        apply_layer(io.BytesIO(tar_bytes(reg("a/../../x"))), str(dest), isolate=True)
    blob = gzip.compress(_big_tar())
    with pytest.raises(StorageError, match="gzip stream is truncated"):
        apply_layer(io.BytesIO(blob[: len(blob) - 100]), str(dest), isolate=True)
    with pytest.raises(StorageError, match="larger than the limit"):
        apply_layer(io.BytesIO(blob), str(dest), max_size=1 << 20, isolate=True)
    with pytest.raises(StorageError, match=r"apply layer to .*: entry 'x+'") as info:
        apply_layer(io.BytesIO(tar_bytes(reg("x" * 300))), str(dest), isolate=True)
    assert info.value.errno == errno.ENAMETOOLONG
    assert _children() == set()


def test_a_failing_child_stops_the_sender_early(dest: Path) -> None:
    """A layer refused at its first entry is not read to its end by the child; the caller
    is told at once (its next send fails), not after the whole blob."""
    reads: list[int] = []
    data = tar_bytes(reg("../x")) + os.urandom(8 << 20)
    with pytest.raises(StorageError, match="climbs out"):
        apply_layer(_Stream(data, reads.append), str(dest), isolate=True)  # type: ignore[arg-type]
    assert max(reads) < len(data) // 2


def test_stream_errors_are_raised_as_they_are_and_no_child_is_left(dest: Path) -> None:
    big = _big_tar()

    def fail(pos: int) -> None:
        if pos > len(big) // 2:
            raise RegistryError("connection broken at half the blob")

    with pytest.raises(RegistryError, match="connection broken"):
        apply_layer(_Stream(big, fail), str(dest), rootless=True)  # type: ignore[arg-type]
    assert _children() == set()

    def os_error(pos: int) -> None:
        if pos > len(big) // 2:
            raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")

    with pytest.raises(StorageError, match="reading the layer: Connection reset") as info:
        apply_layer(_Stream(big, os_error), str(dest), rootless=True)  # type: ignore[arg-type]
    assert info.value.errno == errno.ECONNRESET
    assert _children() == set()


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "no-pidfd"])
def test_a_killed_child_is_an_error(
    dest: Path, pidfd: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not pidfd:  # an old kernel: the child is watched with waitpid(WNOHANG)

        def no_pidfd(pid: int, flags: int = 0) -> int:
            raise OSError(errno.ENOSYS, "Function not implemented")

        monkeypatch.setattr(os, "pidfd_open", no_pidfd)
        ok = apply_layer(io.BytesIO(_big_tar()), str(dest), rootless=True)
        assert ok.size == len(_big_tar()) and _children() == set()
        dest = dest.parent / "again"
        dest.mkdir()
    big = _big_tar()
    killed: list[int] = []

    def kill(pos: int) -> None:
        if pos > len(big) // 2 and not killed:
            (pid,) = _children()
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    with pytest.raises(StorageError, match="killed by signal 9 without an answer"):
        apply_layer(_Stream(big, kill), str(dest), rootless=True)  # type: ignore[arg-type]
    assert killed and _children() == set()


def test_the_child_keeps_no_lock_or_descriptor_of_the_parent(dest: Path, tmp_path: Path) -> None:
    """A flock held (by another thread, say the store lock) when the child is forked is free
    as soon as the parent lets it go; the child holds none of the parent's descriptors."""
    lock_path = tmp_path / "storage.lock"
    held = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(held, fcntl.LOCK_EX)
    big = _big_tar()
    seen: dict[str, object] = {}

    def check(pos: int) -> None:
        if pos > ISOLATE_MIN + (256 << 10) and "fds" not in seen:
            (pid,) = _children()
            seen["fds"] = sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd"))
            os.close(held)
            again = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
            try:
                fcntl.flock(again, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError if kept
                seen["locked"] = True
            finally:
                os.close(again)

    apply_layer(_Stream(big, check), str(dest), rootless=True)  # type: ignore[arg-type]
    assert seen["locked"] is True
    fds = seen["fds"]
    assert isinstance(fds, list) and fds[:3] == [0, 1, 2]
    # stdio, its socket, and what it opened itself: the layer root, a directory, a file
    assert len(fds) <= 8, fds


def test_without_a_child_the_layer_is_applied_in_process(
    dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_fork() -> int:
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    big = _big_tar()
    result = apply_layer(io.BytesIO(big), str(dest), rootless=True, isolate=True)
    assert result.size == len(big)
    assert (dest / "etc/hostname").read_bytes() == b"box\n"


def test_the_child_dies_with_its_parent(tmp_path: Path) -> None:
    """pypod killed mid-apply: its child stops writing at once (PR_SET_PDEATHSIG), so the
    next start can remove the incomplete layer (whose liveness lock died with pypod)."""
    big = _big_tar()
    pid_file = tmp_path / "grandchild"

    def target(ready: int) -> None:
        from pypod.storage.archive import apply as apply_module

        entry = apply_module._Applier.entry

        def slow_entry(self: object, tf: object, member: object) -> None:
            if os.getpid() != parent:  # the child: slow, busy with what it has received
                time.sleep(0.1)
            entry(self, tf, member)  # type: ignore[arg-type]

        parent = os.getpid()
        apply_module._Applier.entry = slow_entry  # type: ignore[method-assign]

        def stall(pos: int) -> None:
            if pos > ISOLATE_MIN + (256 << 10):
                pid_file.write_text(str(next(iter(_children()))))
                os.write(ready, b"x")
                time.sleep(3600)

        (tmp_path / "layer").mkdir()
        apply_layer(_Stream(big, stall), str(tmp_path / "layer"), rootless=True)  # type: ignore[arg-type]

    killed_child(target)
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 1  # it would work on for seconds (slow_entry)
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _alive(grandchild)


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "child"])
def test_a_layout_with_a_path_is_written_by_whoever_applied(tmp_path: Path, isolate: bool) -> None:
    from pypod.storage.tarsplit import rebuild_tar

    plain = _big_tar()
    (tmp_path / "layer").mkdir()
    layout = LayoutRecorder(path=str(tmp_path / "layout.gz"))
    result = apply_layer(io.BytesIO(gzip.compress(plain, 1)), str(tmp_path / "layer"),
                         rootless=True, layout=layout, isolate=isolate)  # fmt: skip
    assert layout.saved and layout.save_error is None
    assert layout.raw == b"" and layout.entries == []  # written, then dropped
    out = io.BytesIO()
    assert rebuild_tar(str(tmp_path / "layout.gz"), str(tmp_path / "layer"), out) == result.diff_id
    assert out.getvalue() == plain


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "child"])
def test_a_layout_that_cannot_be_written_is_reported(tmp_path: Path, isolate: bool) -> None:
    (tmp_path / "layer").mkdir()
    (tmp_path / "file").write_text("not a directory")
    layout = LayoutRecorder(path=str(tmp_path / "file" / "layout.gz"))
    apply_layer(io.BytesIO(_big_tar()), str(tmp_path / "layer"), rootless=True, layout=layout,
                isolate=isolate)  # fmt: skip
    assert not layout.saved
    assert layout.save_error is not None and layout.save_error.startswith(str(tmp_path / "file"))
    assert layout.complete and layout.raw  # still there: nothing was written


_NO_IMPORTS = """
import os, sys
from pypod.storage.archive import apply as A
from pypod.storage.archive.stream import LayoutRecorder
parent = os.getpid()
real = A._apply
def spy(*args):
    before = set(sys.modules)
    try:
        return real(*args)
    finally:
        if os.getpid() != parent:
            os.write(1, ("child imported %r\\n" % sorted(set(sys.modules) - before)).encode())
A._apply = spy
for path in sys.argv[1:]:
    os.mkdir(path + ".d")
    with open(path, "rb") as f:
        A.apply_layer(f, path + ".d", rootless=True, isolate=True,
                      layout=LayoutRecorder(path=path + ".layout.gz"))
"""


def test_a_child_imports_nothing(tmp_path: Path) -> None:
    """A module another thread was importing when the child was forked stays locked in the
    child: every module the work needs is imported before the fork.  In a fresh interpreter,
    which has imported nothing of what a layer needs (decompressors, the layout writer)."""
    import subprocess
    import sys

    import zstandard

    plain = _big_tar()
    blobs = {"plain": plain, "gzip": gzip.compress(plain, 1),
             "zstd": zstandard.ZstdCompressor().compress(plain)}  # fmt: skip
    paths = []
    for name, blob in blobs.items():
        (tmp_path / name).write_bytes(blob)
        paths.append(str(tmp_path / name))
    proc = subprocess.run([sys.executable, "-c", _NO_IMPORTS, *paths], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["child imported []"] * 3
    for name in blobs:
        assert (tmp_path / f"{name}.layout.gz").exists()
