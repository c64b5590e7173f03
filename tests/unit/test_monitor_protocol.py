"""The monitor's wire format, detach keys, its configuration, its sync errors, and how a runtime
binary's messages become pypod errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pypod.errors import (
    AlreadyExists,
    CannotInvoke,
    CommandNotFound,
    ContainerNotFound,
    InvalidArgument,
    InvalidState,
    NotSupported,
    OSLevelError,
    RuntimeError_,
)
from pypod.monitor import loop, protocol, sync
from pypod.monitor.config import MonitorConfig
from pypod.monitor.protocol import DetachMatcher, parse_detach_keys
from pypod.runtime.oci_runtime import _stderr_message, classify_runtime_message


def test_loop_and_protocol_agree_on_the_numbers() -> None:
    for name in ("STREAM_STDOUT", "STREAM_STDERR", "MSG_STDIN", "MSG_STDIN_EOF", "MSG_RESIZE",
                 "MSG_CLEANUP_CLAIM", "MSG_CLEANUP_DONE",
                 "CTL_RESIZE", "CTL_REOPEN_LOG"):  # fmt: skip
        assert getattr(loop, name) == getattr(protocol, name), name
    # conmon's stream numbers
    assert (protocol.STREAM_STDOUT, protocol.STREAM_STDERR) == (2, 3)


# --------------------------------------------------------------------------- detach keys


@pytest.mark.parametrize(
    ("spec", "keys"),
    [
        ("ctrl-p,ctrl-q", b"\x10\x11"),
        ("ctrl-a", b"\x01"),
        ("a,b", b"ab"),
        ("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_", b"\x00\x1b\x1c\x1d\x1e\x1f"),
        ("CTRL-P", b"\x10"),
        ("", b""),
    ],
)
def test_parse_detach_keys(spec: str, keys: bytes) -> None:
    assert parse_detach_keys(spec) == keys


@pytest.mark.parametrize("spec", ["ctrl-", "ctrl-1", "ab", "ctrl-p,,ctrl-q", "shift-a"])
def test_parse_detach_keys_refuses(spec: str) -> None:
    with pytest.raises(InvalidArgument, match="detach keys"):
        parse_detach_keys(spec)


def test_detach_matcher_in_one_read() -> None:
    m = DetachMatcher(b"\x10\x11")
    assert m.feed(b"abc\x10\x11rest") == (b"abc", True)


def test_detach_matcher_across_reads() -> None:
    m = DetachMatcher(b"\x10\x11")
    assert m.feed(b"ab\x10") == (b"ab", False)
    assert m.feed(b"\x11") == (b"", True)


def test_detach_matcher_forwards_a_broken_sequence() -> None:
    m = DetachMatcher(b"\x10\x11")
    assert m.feed(b"\x10") == (b"", False)
    assert m.feed(b"x") == (b"\x10x", False)
    assert m.feed(b"\x10\x10\x11") == (b"\x10", True)


def test_detach_matcher_flush_and_disabled() -> None:
    m = DetachMatcher(b"\x10\x11")
    assert m.feed(b"a\x10") == (b"a", False)
    assert m.flush() == b"\x10"
    assert DetachMatcher(b"").feed(b"\x10\x11") == (b"\x10\x11", False)


# --------------------------------------------------------------------------- config


def _config(tmp_path: Path, **kw: object) -> MonitorConfig:
    values: dict[str, object] = {
        "container_id": "c1",
        "bundle": "b",
        "runtime": "pypod",
        "runtime_root": "r",
        "userdata": str(tmp_path),
        "log_driver": "k8s-file",
        "log_path": str(tmp_path / "ctr.log"),
        "log_max_size": 0,
        "tty": False,
        "stdin": True,
        "exit_file": str(tmp_path / "exit"),
    }
    values.update(kw)
    return MonitorConfig.from_dict(values)


def test_config_round_trip(tmp_path: Path) -> None:
    cfg = _config(tmp_path, exit_command=["pypod", "cleanup"], exec_process={"args": ["sh"]})
    assert cfg.exit_command == ("pypod", "cleanup")
    assert MonitorConfig.from_json(cfg.to_json()) == cfg
    assert cfg.is_exec
    cfg.validate()


def test_config_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = _config(tmp_path, runtime="./bin/runc").absolute()
    assert cfg.bundle == str(tmp_path / "b")
    assert cfg.runtime == str(tmp_path / "bin/runc")
    assert _config(tmp_path, runtime="runc").absolute().runtime == "runc"


def test_config_refuses(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="unknown keys"):
        MonitorConfig.from_dict({**_config(tmp_path).to_dict(), "extra": 1})
    with pytest.raises(InvalidArgument, match="missing argument 'bundle'"):
        MonitorConfig.from_dict({"container_id": "x"})
    with pytest.raises(InvalidArgument, match="invalid JSON"):
        MonitorConfig.from_json("{")
    with pytest.raises(NotSupported, match="journald"):
        _config(tmp_path, log_driver="journald").validate()
    with pytest.raises(InvalidArgument, match="not known"):
        _config(tmp_path, log_driver="syslog").validate()
    with pytest.raises(InvalidArgument, match="log path"):
        _config(tmp_path, log_path="").validate()
    with pytest.raises(InvalidArgument, match="0 \\(none\\) or more"):
        _config(tmp_path, log_max_size=-1).validate()
    with pytest.raises(InvalidArgument, match="does not exist"):
        _config(tmp_path, userdata=str(tmp_path / "missing")).validate()
    _config(tmp_path, log_driver="none", log_path="").validate()


# --------------------------------------------------------------------------- sync errors


def test_sync_errors_keep_their_class() -> None:
    data = sync.error_data(CommandNotFound('exec: "x": executable file not found in $PATH'))
    err = sync.raise_error(data)
    assert type(err) is CommandNotFound
    assert str(err) == 'exec: "x": executable file not found in $PATH'
    err = sync.raise_error(sync.error_data(OSLevelError("open log", errno=13)))
    assert type(err) is OSLevelError and err.errno == 13
    err = sync.raise_error(sync.error_data(ValueError("boom")))
    assert type(err) is RuntimeError_ and "internal error: ValueError: boom" in str(err)
    assert type(sync.raise_error({"error": "os", "message": "m"})) is RuntimeError_


# --------------------------------------------------------------------------- runtime messages


@pytest.mark.parametrize(
    ("message", "starting", "cls"),
    [
        ('runc create failed: unable to start container process: exec: "x": executable file '
         "not found in $PATH", True, CommandNotFound),
        ('exec: "/etc/passwd": permission denied', True, CannotInvoke),
        ("open /x: no such file or directory", True, CommandNotFound),
        ("container does not exist", False, ContainerNotFound),
        ("container with id exists: c1", True, AlreadyExists),
        ("container not running", False, InvalidState),
        ("cannot start a container that has stopped", True, InvalidState),
        ("cannot use console socket if runc will not detach or allocate tty", True,
         InvalidArgument),
        ("something else broke", False, RuntimeError_),
    ],
)  # fmt: skip
def test_classify_runtime_message(message: str, starting: bool, cls: type) -> None:
    assert type(classify_runtime_message(message, starting=starting)) is cls


def test_stderr_message() -> None:
    stderr = (
        'time="2026-11-25T19:00:19Z" level=warning msg="ignored"\n'
        'time="2026-11-25T19:00:19Z" level=error msg="container \\"x\\" does not exist"\n'
    )
    assert _stderr_message(stderr) == 'container "x" does not exist'
    assert _stderr_message("plain failure\n") == "plain failure"
