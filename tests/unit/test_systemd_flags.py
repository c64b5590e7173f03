"""Pieces of the flags systemd units call: the own cgroup `--cgroups=split` splits (libpod's
reading of /proc/self/cgroup), the sd_notify datagram, and the `run` flags' values."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from pypod.cli.engine.run_flags import parse_run
from pypod.engine.cgroup_split import own_cgroup
from pypod.engine.sdnotify import notify, notify_started
from pypod.errors import CannotInvoke, InvalidArgument, NotSupported

HYBRID = "9:name=systemd:/\n4:memory:/user.slice/x\n1:cpu:/\n0::/system.slice/web.service\n"


def test_own_cgroup_is_the_cgroup2_line_when_there_is_one() -> None:
    assert own_cgroup(HYBRID) == ("", "/system.slice/web.service")
    assert own_cgroup("0::/a/b\n") == ("", "/a/b")


def test_own_cgroup_on_v1_only_is_the_longest_path() -> None:
    text = "3:name=systemd:/system.slice/web.service\n2:memory:/system.slice\n1:cpu,cpuacct:/\n"
    assert own_cgroup(text) == ("name=systemd", "/system.slice/web.service")


@pytest.mark.parametrize("text", ["0::/\n", "4:memory:/x\n0::/\n", "1:cpu:/\n", ""])
def test_the_root_cgroup_cannot_be_split(text: str) -> None:
    with pytest.raises(CannotInvoke, match='could not find cgroup mount in "/proc/self/cgroup"'):
        own_cgroup(text)


def test_notify_to_a_path_and_to_an_abstract_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    abstract = f"@pypod-unit-{os.getpid()}"
    with (
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as a,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as b,
    ):
        a.bind(path)
        b.bind("\0" + abstract[1:])
        assert notify("READY=1", path)
        assert a.recv(100) == b"READY=1"
        assert notify("MAINPID=7\nREADY=1", abstract)
        assert b.recv(100) == b"MAINPID=7\nREADY=1"
    assert not notify("READY=1", "")  # no socket: nothing to do
    with pytest.raises(OSError):
        notify("READY=1", path + "-missing")


def test_notify_started_writes_the_pid_file_and_survives_a_dead_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody"))
    pid_file = tmp_path / "monitor.pid"
    notify_started(sdnotify="conmon", conmon_pidfile=str(pid_file), monitor_pid=1234)
    assert pid_file.read_text() == "1234"


def test_run_flag_values() -> None:
    cfg, _ = parse_run(["--sdnotify=conmon", "--cgroups=split", "--conmon-pidfile=p", "img"])
    assert (cfg.sdnotify, cfg.cgroups, cfg.cgroup_parent) == ("conmon", "split", None)
    assert cfg.conmon_pidfile == os.path.abspath("p")
    cfg, _ = parse_run(["--cgroups=no-conmon", "--cgroup-parent=/x", "--sdnotify=ignore", "img"])
    assert (cfg.sdnotify, cfg.cgroups, cfg.cgroup_parent) == ("ignore", "", "/x")
    assert parse_run(["--sdnotify=container", "img"])[0].sdnotify == "container"
    with pytest.raises(NotSupported, match="'--cgroups=disabled' is not supported yet"):
        parse_run(["--cgroups=disabled", "img"])
    with pytest.raises(InvalidArgument, match='invalid cgroup mode "x"'):
        parse_run(["--cgroups=x", "img"])
    with pytest.raises(InvalidArgument, match="--cgroup-mode=split with a cgroup-parent"):
        parse_run(["--cgroups=split", "--cgroup-parent=/x", "img"])
