"""The monitor loop's pieces that need no container: the k8s-file log, exit codes, the exit
file, and what the loop imports (it must stay a small interpreter)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pypod.monitor import loop

TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}[+-]\d\d:\d\d"


@pytest.fixture
def log(tmp_path: Path) -> Iterator[tuple[loop.K8sLog, Path]]:
    path = tmp_path / "ctr.log"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    k8s = loop.K8sLog(str(path), fd, 0)
    yield k8s, path
    k8s.close()


def test_full_and_partial_lines_share_one_timestamp(log: tuple[loop.K8sLog, Path]) -> None:
    k8s, path = log
    k8s.write("stdout", b"hi\npartial")
    k8s.write("stderr", b"err\n")
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert re.fullmatch(TS.encode() + rb" stdout F hi", lines[0])
    assert re.fullmatch(TS.encode() + rb" stdout P partial", lines[1])
    assert re.fullmatch(TS.encode() + rb" stderr F err", lines[2])
    assert lines[0].split(b" ")[0] == lines[1].split(b" ")[0]  # one read, one timestamp


def test_terminal_output_keeps_its_carriage_returns(log: tuple[loop.K8sLog, Path]) -> None:
    k8s, path = log
    k8s.write("stdout", b"hi\r\n")
    assert path.read_bytes().endswith(b" stdout F hi\r\n")


def test_empty_lines_and_binary_content(log: tuple[loop.K8sLog, Path]) -> None:
    k8s, path = log
    k8s.write("stdout", b"\n\x00\xff\n")
    lines = path.read_bytes().split(b"\n")
    assert lines[0].endswith(b" stdout F ")
    assert lines[1].endswith(b" stdout F \x00\xff")


def _max_size_log(tmp_path: Path, max_size: int) -> tuple[loop.K8sLog, Path]:
    path = tmp_path / "limited.log"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    return loop.K8sLog(str(path), fd, max_size), path


def test_max_size_replaces_the_file_like_conmon(tmp_path: Path) -> None:
    """Each line costs len(timestamp + stream) + 2 + len(content); `line1\\n` costs 51 bytes:
    five fit in 300, the sixth starts a new file (what podman --log-opt max-size=300 shows)."""
    k8s, path = _max_size_log(tmp_path, 300)
    for i in range(1, 11):
        k8s.write("stdout", f"line{i}\n".encode())
    k8s.close()
    contents = [line.split(b" ", 3)[3] for line in path.read_bytes().splitlines()]
    assert contents == [b"line6", b"line7", b"line8", b"line9", b"line10"]
    assert not Path(str(path) + ".tmp").exists()


def test_max_size_within_one_read(tmp_path: Path) -> None:
    k8s, path = _max_size_log(tmp_path, 300)
    k8s.write("stdout", b"".join(f"line{i}\n".encode() for i in range(1, 11)))
    k8s.close()
    contents = [line.split(b" ", 3)[3] for line in path.read_bytes().splitlines()]
    assert contents == [b"line6", b"line7", b"line8", b"line9", b"line10"]


def test_a_line_longer_than_the_limit_is_still_written(tmp_path: Path) -> None:
    k8s, path = _max_size_log(tmp_path, 60)
    k8s.write("stdout", b"x" * 100 + b"\n")
    k8s.write("stdout", b"y\n")
    k8s.close()
    contents = [line.split(b" ", 3)[3] for line in path.read_bytes().splitlines()]
    assert contents == [b"y"]


def test_max_size_counts_what_the_file_already_holds(tmp_path: Path) -> None:
    path = tmp_path / "restart.log"
    path.write_bytes(b"x" * 290)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    k8s = loop.K8sLog(str(path), fd, 300)
    k8s.write("stdout", b"new\n")
    k8s.close()
    assert path.read_bytes().split(b" ", 3)[3] == b"new\n"


def test_reopen_after_rotation(log: tuple[loop.K8sLog, Path], tmp_path: Path) -> None:
    k8s, path = log
    k8s.write("stdout", b"before\n")
    path.rename(tmp_path / "rotated.log")
    k8s.reopen(truncate=False)
    k8s.write("stdout", b"after\n")
    assert path.read_bytes().endswith(b" stdout F after\n")
    assert b"after" not in (tmp_path / "rotated.log").read_bytes()


def test_timestamp_is_local_time_with_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "EST+5")
    time.tzset()
    try:
        stamp = loop.timestamp("stderr").decode()
    finally:
        monkeypatch.undo()
        time.tzset()
    assert re.fullmatch(TS + " stderr ", stamp)
    assert stamp[29:35] == "-05:00"
    assert len(stamp) == 43  # conmon's TSBUFLEN - 1


def test_exit_codes() -> None:
    assert loop.exit_code(3 << 8) == 3
    assert loop.exit_code(0) == 0
    assert loop.exit_code(9) == 137  # killed by SIGKILL
    assert loop.exit_code(15) == 143
    assert loop.exit_code(-1) == -1


def test_exit_file(tmp_path: Path) -> None:
    path = tmp_path / "exit"
    loop.write_exit_file(str(path), 137, True)
    data = json.loads(path.read_text())
    assert data["exit_code"] == 137 and data["oom_killed"] is True
    assert abs(data["finished"] - time.time()) < 60
    assert os.listdir(tmp_path) == ["exit"]
    assert json.loads(loop.exit_file_json(0, 1.5, False)) == {
        "exit_code": 0,
        "finished": 1.5,
        "oom_killed": False,
    }


def test_args_round_trip() -> None:
    args = {"config": {"tty": True, "exit_command": ["a", "b"], "exec_process": None},
            "pid": 7, "fds": {"attach": 3}, "oom": None}  # fmt: skip
    import marshal

    assert marshal.loads(bytes.fromhex(loop.encode_args(args))) == args


def test_loop_imports_no_pypod_and_no_heavy_modules() -> None:
    here = os.path.dirname(loop.__file__)
    code = f"import sys;sys.path.append({here!r});import loop;print(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "loop" in out
    assert not [m for m in out if m.startswith("pypod")]
    heavy = {"json", "re", "enum", "typing", "signal", "socket", "collections", "subprocess"}
    assert heavy.isdisjoint(out), heavy & set(out)
