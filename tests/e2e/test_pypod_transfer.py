"""`pypod import/push/pull/save/load/login/logout` against Debian's docker-registry and podman."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pypod.testing import make_busybox_rootfs
from tests.e2e.test_pypod_images import Pypod, _unmount_below
from tests.image_support import Registry, start_registry
from tests.integration.test_registry_client import PASSWORD, USER

pytestmark = [pytest.mark.root, pytest.mark.registry]


@pytest.fixture
def pypod(tmp_path: Path, busybox: str) -> Iterator[Pypod]:
    p = Pypod(tmp_path / "pypod")
    yield p
    _unmount_below(tmp_path)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("auth-registry"), users={USER: PASSWORD})
    yield reg
    reg.stop()


@pytest.fixture
def rootfs_tar(tmp_path: Path, busybox: str) -> Path:
    make_busybox_rootfs(str(tmp_path / "rootfs"))
    out = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(tmp_path / "rootfs"), "-cf", str(out), "."], check=True)
    return out


def _catalog(reg: Registry) -> list[str]:
    with urllib.request.urlopen(f"http://{reg.host}/v2/_catalog", timeout=10) as resp:
        repos: list[str] = json.load(resp)["repositories"]
        return repos


def test_import_with_changes(pypod: Pypod, rootfs_tar: Path) -> None:
    proc = pypod("import", "--change", "CMD=/bin/sh", "--change", 'ENTRYPOINT ["/bin/env"]',
                 "-c", "ENV=A=b", "-c", "LABEL=k=v", "-c", "WORKDIR=/tmp", "-m", "hello",
                 str(rootfs_tar), "bb")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    image_id = proc.stdout.strip().removeprefix("sha256:")
    assert proc.stdout.startswith("sha256:") and len(image_id) == 64
    assert "Writing manifest to image destination" in proc.stderr
    data = json.loads(pypod.ok("image", "inspect", "localhost/bb:latest"))[0]
    assert data["Id"] == image_id
    assert data["Config"] == {
        "Cmd": ["/bin/sh", "-c", "/bin/sh"], "Entrypoint": ["/bin/env"], "Env": ["A=b"],
        "Labels": {"k": "v"}, "WorkingDir": "/tmp",
    }  # fmt: skip
    assert data["Comment"] == "hello" and data["History"][0]["comment"] == "hello"
    proc = pypod("import", "-c", "BOGUS=1", str(rootfs_tar))
    assert proc.returncode == 125 and "BOGUS is not a valid instruction" in proc.stderr


def test_push_pull_round_trip(pypod: Pypod, rootfs_tar: Path, registry: Registry) -> None:
    imported = pypod.ok("import", "-q", "-c", "CMD=/bin/true", str(rootfs_tar), "bb")
    target = f"{registry.host}/pypod-e2e/bb:1"
    proc = pypod("push", "--tls-verify=false", "bb", target)
    assert proc.returncode == 0, proc.stderr
    assert "Copying blob" in proc.stderr and proc.stdout == ""
    assert "pypod-e2e/bb" in _catalog(registry)
    pypod.ok("rmi", "-a")
    out = pypod.ok("pull", "-q", "--tls-verify=false", target)
    image_id = out.strip()
    assert image_id == imported.strip().removeprefix("sha256:")  # the layer tar rebuilt exactly
    names = pypod.ok("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").split()
    assert names == [target, image_id[:12]]
    config = json.loads(pypod.ok("image", "inspect", target))[0]["Config"]
    assert config["Cmd"] == ["/bin/sh", "-c", "/bin/true"]
    # pushing again: the registry has every blob
    proc = pypod("push", "--tls-verify=false", target, f"docker://{registry.host}/pypod-e2e/bb:2")
    assert proc.returncode == 0, proc.stderr
    proc = pypod("pull", "--tls-verify=false", f"{registry.host}/pypod-e2e/nothere:1")
    assert proc.returncode == 125
    assert proc.stderr.splitlines()[-1].startswith("Error: ") and "manifest unknown" in proc.stderr


def test_save_load_round_trip(pypod: Pypod, rootfs_tar: Path, tmp_path: Path) -> None:
    image_id = pypod.ok("import", "-q", str(rootfs_tar), "quay.io/me/bb:3").strip()[7:]
    for fmt in ("docker-archive", "oci-archive"):
        archive = tmp_path / f"{fmt}.tar"
        pypod.ok("save", "--format", fmt, "-o", str(archive), "quay.io/me/bb:3")
        pypod.ok("rmi", "-a")
        out = pypod.ok("load", "-i", str(archive))
        assert out == "Loaded image: quay.io/me/bb:3\n", fmt
        assert pypod.ok("images", "--format", "{{.Repository}}:{{.Tag}}") == "quay.io/me/bb:3\n"
    del image_id


def test_login_logout(pypod: Pypod, auth_registry: Registry, tmp_path: Path) -> None:
    authfile = str(tmp_path / "auth.json")
    proc = pypod("login", "--tls-verify=false", "--authfile", authfile, "-u", USER,
                 "-p", "wrong", auth_registry.host)  # fmt: skip
    assert proc.returncode == 125 and not os.path.exists(authfile)
    proc = pypod("login", "--tls-verify=false", "--authfile", authfile, "-u", USER,
                 "--password-stdin", auth_registry.host, input=PASSWORD + "\n")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Login Succeeded!\n"
    assert auth_registry.host in json.loads(Path(authfile).read_text())["auths"]
    out = pypod.ok("logout", "--authfile", authfile, auth_registry.host)
    assert out == f"Removed login credentials for {auth_registry.host}\n"
    assert json.loads(Path(authfile).read_text())["auths"] == {}


@pytest.mark.compat
def test_podman_pulls_what_pypod_pushed_and_loads_its_archives(
    pypod: Pypod, rootfs_tar: Path, registry: Registry, tmp_path: Path
) -> None:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    store = Path(tempfile.mkdtemp(prefix="ppm", dir="/tmp"))  # podman: runroot < 50 characters
    (store / "tmp").mkdir()
    conf = store / "containers.conf"
    conf.write_text(f'[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
                    f'events_logfile_path = "{store}/events.log"\n')  # fmt: skip
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    base = ["podman", "--root", str(store / "root"), "--runroot", str(store / "run"),
            "--tmpdir", str(store / "tmp"), "--storage-driver", "overlay"]  # fmt: skip

    def podman(*args: str) -> str:
        proc = subprocess.run([*base, *args], env=env, capture_output=True, text=True,
                              timeout=120, check=False)  # fmt: skip
        assert proc.returncode == 0, f"podman {args}: {proc.stderr}"
        return proc.stdout

    try:
        pypod.ok("import", "-q", "-c", "CMD=/bin/true", "-c", "ENV=FROM=pypod", str(rootfs_tar),
                 "bb")  # fmt: skip
        target = f"{registry.host}/pypod-compat/bb:1"
        pypod.ok("push", "--tls-verify=false", "bb", target)
        podman("pull", "-q", "--tls-verify=false", target)
        cfg = json.loads(podman("image", "inspect", target))[0]["Config"]
        assert cfg["Env"] == ["FROM=pypod"] and cfg["Cmd"] == ["/bin/sh", "-c", "/bin/true"]
        # docker-archive from pypod loads in podman, and podman's loads in pypod
        pypod.ok("save", "-o", str(tmp_path / "ours.tar"), "bb")
        assert "localhost/bb:latest" in podman("load", "-i", str(tmp_path / "ours.tar"))
        podman("import", "-q", str(rootfs_tar), "localhost/theirs:2")
        podman("save", "-o", str(tmp_path / "theirs.tar"), "localhost/theirs:2")
        assert pypod.ok("load", "-i", str(tmp_path / "theirs.tar")) == (
            "Loaded image: localhost/theirs:2\n"
        )
        # and a podman push is pulled by pypod
        podman("push", "-q", "--tls-verify=false", "localhost/theirs:2",
               f"{registry.host}/pypod-compat/theirs:2")  # fmt: skip
        out = pypod.ok("pull", "-q", "--tls-verify=false", f"{registry.host}/pypod-compat/theirs:2")
        assert len(out.strip()) == 64
    finally:
        subprocess.run([*base, "rmi", "-a", "-f"], env=env, capture_output=True, check=False)
        _unmount_below(store)
        shutil.rmtree(store, ignore_errors=True)
