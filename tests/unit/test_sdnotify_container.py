"""`--sdnotify=container`, the parts that need no container: what is relayed, the flag, the
spec's mount and environment, the monitor's config and socket, the start's MAINPID.

What podman 4.3.1 + conmon 2.1.6 do, seen on this machine (a listener on NOTIFY_SOCKET, a
container sending with the host's systemd-notify): the container gets
`NOTIFY_SOCKET=/run/notify/notify.sock` and `<userdata>/notify` bound at /run/notify
(`bind,rprivate`; with --read-only also `ro,nosuid,noexec,nodev`); podman sends `MAINPID=<conmon
pid>` (no READY=1) from its own process; conmon sends on `READY=1` for `READY=1\\nSTATUS=up`,
`WATCHDOG=1` for `WATCHDOG=1`, nothing for `STATUS=hello`.  The same, end to end through the
CLI: tests/e2e/test_pypod_sdnotify_container.py.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pypod.cli.engine.run_flags import parse_run
from pypod.engine import sdnotify
from pypod.engine.config import ContainerConfig, MountSpec
from pypod.engine.spec import DEFAULT_PATH, build_spec
from pypod.errors import InvalidArgument, PypodError
from pypod.monitor import config as monitor_config
from pypod.monitor import loop
from pypod.monitor.config import MonitorConfig
from pypod.monitor.notify import bind_container_socket

CID = "de840067dfb3afb346f84cdcf6daad009bac6a9e8994ebfe2f2f46f1e4323abe"


@pytest.fixture(name="host_socket")
def host_socket_fixture(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """systemd's side: a bound unix datagram socket and its path."""
    path = str(tmp_path / "host.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(5)
        yield sock, path


# --- what conmon relays ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "relayed"),
    [
        (b"READY=1", b"READY=1"),
        (b"READY=1\n", b"READY=1"),
        (b"READY=1\nSTATUS=up", b"READY=1"),  # systemd-notify --ready --status=up
        (b"STATUS=up\nREADY=1\nMAINPID=1", b"READY=1"),
        (b"WATCHDOG=1", b"WATCHDOG=1"),
        (b"WATCHDOG=1\nREADY=1", b"READY=1"),  # READY=1 first, as conmon
        (b"STATUS=hello", b""),
        (b"MAINPID=1", b""),  # the container cannot name the unit's main process
        (b"RELOADING=1", b""),
        (b"STOPPING=1", b""),
        (b"WATCHDOG=trigger", b""),
        (b"READY=10", b""),
        (b"", b""),
    ],
)
def test_relayed_is_what_conmon_relays(sent: bytes, relayed: bytes) -> None:
    assert loop.notify_relayed(sent) == relayed


def test_notify_address() -> None:
    assert loop.notify_address("/run/systemd/notify") == "/run/systemd/notify"
    assert loop.notify_address("@name") == "\0name"


def test_the_loop_and_the_config_agree_on_the_socket_path() -> None:
    assert (loop.NOTIFY_DIR, loop.NOTIFY_SOCKET_NAME) == (
        monitor_config.NOTIFY_DIR,
        monitor_config.NOTIFY_SOCKET_NAME,
    )
    cfg = _monitor_config("/b", sdnotify_socket="/run/systemd/notify")
    assert cfg.notify_socket_path == "/b/notify/notify.sock"


# --- the flag ---------------------------------------------------------------------------------


def test_flag_values() -> None:
    cfg, _ = parse_run(["--sdnotify=container", "img"])
    assert cfg.sdnotify == "container"
    cfg, _ = parse_run(["img"])
    assert cfg.sdnotify == ""  # not given: podman's default, container
    assert sdnotify.mode("") == "container"
    with pytest.raises(InvalidArgument, match='invalid sdnotify value "bogus"'):
        parse_run(["--sdnotify=bogus", "img"])


def test_relayed_socket_follows_the_mode_and_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert [sdnotify.relayed_socket(m) for m in ("", "container", "conmon", "ignore")] == [""] * 4
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    got = [sdnotify.relayed_socket(m) for m in ("", "container", "conmon", "ignore")]
    assert got == ["/run/systemd/notify", "/run/systemd/notify", "", ""]


# --- the spec ---------------------------------------------------------------------------------


@pytest.fixture(name="rootfs")
def rootfs_fixture(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    for d in ("etc", "tmp", "root"):
        (root / d).mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\n")
    return root


def _spec(rootfs: Path, userdata: Path, **kw: object) -> dict[str, object]:
    userdata.mkdir(exist_ok=True)
    cfg = ContainerConfig(image="localhost/bb", image_id="fe1051ea", name="t1",
                          command=("true",), **kw)  # type: ignore[arg-type]  # fmt: skip
    return build_spec(cfg, {}, container_id=CID, rootfs=str(rootfs), userdata=str(userdata))


def _env(doc: dict[str, object]) -> list[str]:
    return list(doc["process"]["env"])  # type: ignore[index]


def _notify_mount(doc: dict[str, object]) -> list[dict[str, object]]:
    return [m for m in doc["mounts"] if m["destination"] == "/run/notify"]  # type: ignore[attr-defined]


def test_spec_gets_the_socket_under_a_notify_socket(
    rootfs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    for given in ("container", ""):
        userdata = tmp_path / f"ud-{given or 'default'}"
        doc = _spec(rootfs, userdata, sdnotify=given, env={"A": "1", "NOTIFY_SOCKET": "/mine"})
        env = _env(doc)
        assert env == [
            f"PATH={DEFAULT_PATH}",
            "container=pypod",
            "A=1",
            "NOTIFY_SOCKET=/run/notify/notify.sock",  # the user's is replaced, as with podman
            "HOME=/root",
            f"HOSTNAME={CID[:12]}",
        ]
        directory = userdata / "notify"
        assert _notify_mount(doc) == [
            {"destination": "/run/notify", "type": "bind", "source": str(directory),
             "options": ["bind", "rprivate"]}
        ]  # fmt: skip
        assert stat.S_IMODE(directory.stat().st_mode) == 0o755
    doc = _spec(rootfs, tmp_path / "ud-ro", sdnotify="container", read_only=True)
    assert _notify_mount(doc)[0]["options"] == ["bind", "rprivate", "ro", "nosuid", "noexec",
                                                "nodev"]  # fmt: skip


def test_spec_without_the_socket(
    rootfs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    doc = _spec(rootfs, tmp_path / "ud1", sdnotify="container")
    assert not _notify_mount(doc) and not any(e.startswith("NOTIFY_SOCKET=") for e in _env(doc))
    assert not (tmp_path / "ud1" / "notify").exists()
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    for mode in ("conmon", "ignore"):  # the socket is not the container's business
        doc = _spec(rootfs, tmp_path / f"ud-{mode}", sdnotify=mode)
        assert not _notify_mount(doc)
        assert not any(e.startswith("NOTIFY_SOCKET=") for e in _env(doc))


def test_a_mount_of_the_users_at_run_notify_wins(
    rootfs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    mine = tmp_path / "mine"
    mine.mkdir()
    doc = _spec(rootfs, tmp_path / "ud", sdnotify="container",
                mounts=(MountSpec(type="bind", source=str(mine), destination="/run/notify",
                                  options=("rbind",)),))  # fmt: skip
    [mount] = _notify_mount(doc)
    assert mount["source"] == str(mine)
    assert "NOTIFY_SOCKET=/run/notify/notify.sock" in _env(doc)


# --- the monitor's config and socket ----------------------------------------------------------


def _monitor_config(bundle: str, **kw: object) -> MonitorConfig:
    values: dict[str, object] = {
        "container_id": "c1", "bundle": bundle, "runtime": "pypod", "runtime_root": "/r",
        "userdata": bundle, "log_driver": "none", "log_path": "", "log_max_size": 0,
        "tty": False, "stdin": False, "exit_file": os.path.join(bundle, "exit"),
    }  # fmt: skip
    values.update(kw)
    return MonitorConfig(**values)  # type: ignore[arg-type]


def test_monitor_config_carries_the_host_socket(tmp_path: Path) -> None:
    cfg = _monitor_config(str(tmp_path), sdnotify_socket="/run/systemd/notify")
    assert MonitorConfig.from_json(cfg.to_json()) == cfg
    assert _monitor_config(str(tmp_path)).sdnotify_socket == ""
    # the monitor's directory is /: a relative path is made absolute, an abstract name kept
    assert cfg.absolute().sdnotify_socket == "/run/systemd/notify"
    rel = _monitor_config(str(tmp_path), sdnotify_socket="n.sock").absolute()
    assert rel.sdnotify_socket == os.path.abspath("n.sock")
    assert _monitor_config(str(tmp_path), sdnotify_socket="@n").absolute().sdnotify_socket == "@n"
    cfg.validate()
    session = _monitor_config(str(tmp_path), sdnotify_socket="/x", exec_process={"args": ["a"]})
    with pytest.raises(InvalidArgument, match="sdnotify_socket is for a container's monitor"):
        session.validate()


def test_bind_container_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a bundle path longer than a socket address can hold (108 bytes): bound all the same
    bundle = tmp_path / ("b" * 100) / "userdata"
    bundle.mkdir(parents=True)
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    cfg = _monitor_config(str(bundle), sdnotify_socket="/run/systemd/notify")
    path = Path(cfg.notify_socket_path)
    path.parent.mkdir()
    path.write_text("stale")  # left by an earlier monitor: replaced
    sock = bind_container_socket(cfg)
    try:
        assert stat.S_ISSOCK(path.lstat().st_mode)
        assert stat.S_IMODE(path.stat().st_mode) == 0o777  # any user of the container
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755
        assert "NOTIFY_SOCKET" not in os.environ  # not for the runtime (runc would proxy it)
        dir_fd = os.open(path.parent, os.O_PATH)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
                sender.sendto(b"READY=1", f"/proc/self/fd/{dir_fd}/{path.name}")
        finally:
            os.close(dir_fd)
        assert sock.recv(100) == b"READY=1"
        with pytest.raises(BlockingIOError):
            sock.recv(100)  # non-blocking: the loop polls it
    finally:
        sock.close()


def test_bind_container_socket_failure_names_the_path(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    cfg = _monitor_config(str(tmp_path / "file"), sdnotify_socket="/x")
    with pytest.raises(PypodError, match=r"notification socket directory .*/file/notify"):
        bind_container_socket(cfg)


# --- the start's MAINPID ----------------------------------------------------------------------


def test_the_start_announces_the_monitor(
    host_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = host_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    for mode, expected in (("container", b"MAINPID=42"), ("", b"MAINPID=42"),
                           ("conmon", b"MAINPID=42\nREADY=1")):  # fmt: skip
        sdnotify.notify_started(sdnotify=mode, conmon_pidfile="", monitor_pid=42)
        assert sock.recv(4096) == expected, mode
    sdnotify.notify_started(sdnotify="ignore", conmon_pidfile="", monitor_pid=42)
    sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        sock.recv(4096)
