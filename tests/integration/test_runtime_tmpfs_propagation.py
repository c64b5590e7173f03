"""tmpfs mounts and mount propagation as podman's configs use them (compared with runc 1.1).

podman mounts tmpfs with `tmpcopyup` over image directories (--tmpfs, and /tmp, /run, /var/tmp
with --read-only), and sets linux.rootfsPropagation to "shared" for an rshared bind.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLI, BundleFactory, messages

pytestmark = pytest.mark.root


def _tmpfs(dest: str, *options: str) -> dict[str, Any]:
    return {"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": list(options)}


@pytest.fixture
def runc_or_none(tmp_path: Path) -> Iterator[CLI | None]:
    """runc on its own root when installed: compared where it runs, skipped where it does not."""
    exe = shutil.which("runc")
    cli = CLI(exe, tmp_path / "runc-state") if exe else None
    yield cli
    if cli is not None:
        cli.cleanup()


def run_out(cli: CLI, b: Path, cid: str = "c1") -> str:
    proc = cli("run", "-b", str(b), cid)
    assert proc.returncode == 0, messages(proc.stderr) + proc.stdout
    return str(proc.stdout)


def test_tmpfs_over_a_directory_takes_its_mode(
    rt: CLI, runc_or_none: CLI | None, bundle: BundleFactory
) -> None:
    """As runc does: a tmpfs over an existing directory gets that directory's mode (an image's
    /tmp stays 1777 whatever mode= says); on a new mount point mode= applies."""

    def edit(spec: dict[str, Any]) -> None:
        spec["mounts"] += [
            _tmpfs("/tmp", "nosuid", "nodev", "mode=755", "tmpcopyup"),
            _tmpfs("/root", "mode=700"),
            _tmpfs("/fresh", "mode=700"),
            _tmpfs("/var/tmp", "rw", "tmpcopyup"),
            _tmpfs("/home", "ro", "tmpcopyup"),
        ]

    def make() -> Path:  # one bundle per runtime: the first run leaves its mount points
        args = ["stat", "-c", "%a %n", "/tmp", "/root", "/fresh", "/var/tmp", "/home"]
        b = bundle(args, edit=edit)
        os.chmod(b / "rootfs" / "root", 0o750)
        return b

    ours = run_out(rt, make())
    assert ours.split("\n") == ["1777 /tmp", "750 /root", "700 /fresh", "1777 /var/tmp",
                                "755 /home", ""]  # fmt: skip
    if runc_or_none is not None:
        assert ours == run_out(runc_or_none, make())


def test_tmpcopyup_keeps_owners_and_modes(rt: CLI, bundle: BundleFactory) -> None:
    def edit(spec: dict[str, Any]) -> None:
        spec["mounts"].append(_tmpfs("/data", "ro", "tmpcopyup"))

    b = bundle(
        ["sh", "-c", "cd /data && stat -c '%a %u:%g %F %n' * && cat link && touch x"], edit=edit
    )
    data = b / "rootfs" / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "deep").write_text("deep\n")
    (data / "f").write_text("hello\n")
    os.symlink("f", data / "link")
    os.mkfifo(data / "pipe")
    os.chmod(data / "sub", 0o777)  # wider than the umask: kept (runc 1.1.5 narrowed it)
    os.chmod(data / "f", 0o604)  # readable by the default spec's root: no CAP_DAC_OVERRIDE
    os.chown(data / "sub", 1000, 1000)
    os.chown(data / "f", 1000, 5)
    os.chown(data / "link", 0, 5, follow_symlinks=False)
    proc = rt("run", "-b", str(b), "c1")
    assert proc.stdout.split("\n") == [
        "604 1000:5 regular file f",
        "777 0:5 symbolic link link",
        "644 0:0 fifo pipe",
        "777 1000:1000 directory sub",
        "hello",
        "",
    ]
    assert proc.returncode == 1 and "Read-only file system" in proc.stderr  # ro once filled


def test_rshared_bind_with_shared_rootfs_propagation(
    rt: CLI, runc_or_none: CLI | None, bundle: BundleFactory, tmp_path: Path
) -> None:
    """podman's config for `--mount ...,bind-propagation=rshared`: the bind stays shared inside
    the container, and pivot_root works although the rootfs's parent mount became shared."""
    source = tmp_path / "shared-src"
    source.mkdir()

    def edit(spec: dict[str, Any]) -> None:
        spec["linux"]["rootfsPropagation"] = "shared"
        spec["mounts"].append(
            {"destination": "/m", "type": "bind", "source": str(source),
             "options": ["rbind", "rshared"]}
        )  # fmt: skip

    b = bundle(
        ["sh", "-c", "grep ' /m ' /proc/self/mountinfo | cut -d' ' -f5,7 | sed 's/:[0-9]*//'"],
        edit=edit,
    )
    assert run_out(rt, b) == "/m shared\n"
    if runc_or_none is not None:
        assert run_out(runc_or_none, b) == "/m shared\n"
