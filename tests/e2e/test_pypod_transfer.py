"""`pypod import/push/pull/save/load/login/logout` against Debian's docker-registry and podman."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pypod.testing import make_busybox_rootfs
from tests.e2e.test_pypod_images import Pypod, _unmount_below
from tests.image_support import Registry, start_registry
from tests.integration.test_registry_client import PASSWORD, USER
from tests.podman_support import podman_for_images

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
                 str(rootfs_tar), "busy")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    image_id = proc.stdout.strip().removeprefix("sha256:")
    assert proc.stdout.startswith("sha256:") and len(image_id) == 64
    assert "Writing manifest to image destination" in proc.stderr
    data = json.loads(pypod.ok("image", "inspect", "localhost/busy:latest"))[0]
    assert data["Id"] == image_id
    assert data["Config"] == {
        "Cmd": ["/bin/sh", "-c", "/bin/sh"], "Entrypoint": ["/bin/env"], "Env": ["A=b"],
        "Labels": {"k": "v"}, "WorkingDir": "/tmp",
    }  # fmt: skip
    assert data["Comment"] == "hello" and data["History"][0]["comment"] == "hello"
    proc = pypod("import", "-c", "BOGUS=1", str(rootfs_tar))
    assert proc.returncode == 125 and "BOGUS is not a valid instruction" in proc.stderr


def test_push_pull_round_trip(pypod: Pypod, rootfs_tar: Path, registry: Registry) -> None:
    imported = pypod.ok("import", "-q", "-c", "CMD=/bin/true", str(rootfs_tar), "busy")
    target = f"{registry.host}/pypod-e2e/bb:1"
    proc = pypod("push", "--tls-verify=false", "busy", target)
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
    with podman_for_images("overlay") as podman:
        pypod.ok("import", "-q", "-c", "CMD=/bin/true", "-c", "ENV=FROM=pypod", str(rootfs_tar),
                 "busy")  # fmt: skip
        target = f"{registry.host}/pypod-compat/bb:1"
        pypod.ok("push", "--tls-verify=false", "busy", target)
        podman("pull", "-q", "--tls-verify=false", target)
        cfg = json.loads(podman("image", "inspect", target))[0]["Config"]
        assert cfg["Env"] == ["FROM=pypod"] and cfg["Cmd"] == ["/bin/sh", "-c", "/bin/true"]
        # docker-archive from pypod loads in podman, and podman's loads in pypod
        pypod.ok("save", "-o", str(tmp_path / "ours.tar"), "busy")
        assert "localhost/busy:latest" in podman("load", "-i", str(tmp_path / "ours.tar"))
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


def _two_images(pypod: Pypod, tmp_path: Path) -> tuple[str, str]:
    """localhost/one:latest (also localhost/one:v2) and localhost/two:latest: two tiny
    one-layer images; their ids."""
    ids = []
    for name in ("one", "two"):
        (tmp_path / name).write_text(f"{name}\n")
        tar = tmp_path / f"{name}.tar"
        subprocess.run(["tar", "-C", str(tmp_path), "-cf", str(tar), name], check=True)
        ids.append(pypod.ok("import", "-q", str(tar), f"localhost/{name}").strip()[7:])
    pypod.ok("tag", "localhost/one", "localhost/one:v2")
    return ids[0], ids[1]


def test_pull_all_tags(pypod: Pypod, registry: Registry, tmp_path: Path) -> None:
    one, two = _two_images(pypod, tmp_path)
    repo = f"{registry.host}/pypod-e2e/multi"
    for src, tag in (("localhost/one", "a"), ("localhost/two", "b"), ("localhost/one", "c")):
        pypod.ok("push", "--tls-verify=false", src, f"{repo}:{tag}")
    with urllib.request.urlopen(f"http://{repo.replace('/', '/v2/', 1)}/tags/list") as resp:
        order = json.load(resp)["tags"]  # the registry's order, which podman keeps
    fresh = Pypod(tmp_path / "fresh")
    proc = fresh("pull", "--all-tags", "--tls-verify=false", f"{repo}:ignored")
    assert proc.returncode == 0, proc.stderr
    ids = {"a": one, "b": two, "c": one}
    assert proc.stdout.split() == [ids[t] for t in order]  # one id per tag, as podman
    tries = [line for line in proc.stderr.splitlines() if line.startswith("Trying to pull")]
    assert tries == [f"Trying to pull {repo}:{t}..." for t in order]
    names = fresh.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    assert sorted(names) == [f"{repo}:{t}" for t in "abc"]
    proc = fresh("pull", "-a", "-q", "--tls-verify=false", f"docker://{repo}")
    assert proc.returncode == 0 and proc.stderr == "" and len(proc.stdout.split()) == 3
    proc = fresh("pull", "-a", "--tls-verify=false", f"{registry.host}/pypod-e2e/nothere")
    assert proc.returncode == 125 and proc.stderr.startswith("Error: ")
    proc = fresh("pull", "-a", "oci:/nothing")
    assert proc.returncode == 125
    assert proc.stderr == "Error: pulling all tags is not supported for oci transport\n"


def _manifest_json(archive: Path) -> list[dict[str, object]]:
    import tarfile

    with tarfile.open(archive) as tar:
        f = tar.extractfile("manifest.json")
        assert f is not None
        doc: list[dict[str, object]] = json.load(f)
        return doc


def test_save_several_images(pypod: Pypod, tmp_path: Path) -> None:
    one, two = _two_images(pypod, tmp_path)
    # without -m, more names are more tags of the first image (docker-archive only)
    pypod.ok("save", "-o", str(tmp_path / "tags.tar"), "localhost/one", "two:latest")
    doc = _manifest_json(tmp_path / "tags.tar")
    assert [d["RepoTags"] for d in doc] == [["localhost/two:latest", "localhost/one:latest"]]
    assert doc[0]["Config"] == f"{one}.json"
    # -m: several images, each once with all the names given for it, in the order given
    archive = tmp_path / "multi.tar"
    pypod.ok("save", "-m", "-o", str(archive), "localhost/one", "localhost/two", "one:v2", one)
    doc = _manifest_json(archive)
    assert [(d["Config"], d["RepoTags"]) for d in doc] == [
        (f"{one}.json", ["localhost/one:latest", "localhost/one:v2"]),
        (f"{two}.json", ["localhost/two:latest"]),
    ]
    proc = pypod("save", "-m", "--format", "oci-archive", "-o", str(tmp_path / "x.tar"),
                 "localhost/one", "localhost/two")  # fmt: skip
    assert proc.returncode == 125 and proc.stderr == (
        'Error: unsupported format "oci-archive" for saving multiple images (only '
        "docker-archive)\n"
    )
    # the archive loads back with every name
    pypod.ok("rmi", "-a", "-f")
    out = pypod.ok("load", "-i", str(archive))
    assert out.splitlines() == [
        "Loaded image: localhost/one:latest",
        "Loaded image: localhost/one:v2",
        "Loaded image: localhost/two:latest",
    ]
    # to a pipe: written through, /dev/stdout stays what it is
    proc = subprocess.run(
        f"{shlex.join(pypod.argv('save', '-m', 'localhost/one', 'localhost/two'))} | tar -tf -",
        shell=True, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0 and "manifest.json" in proc.stdout.split(), proc.stderr
    assert os.path.islink("/dev/stdout")


@pytest.mark.compat
def test_podman_loads_our_multi_image_archive_and_we_load_its(pypod: Pypod, tmp_path: Path) -> None:
    one, two = _two_images(pypod, tmp_path)
    with podman_for_images("vfs") as podman:
        ours = tmp_path / "ours.tar"
        pypod.ok("save", "-m", "-o", str(ours), "localhost/one", "localhost/two", "one:v2")
        assert podman("load", "-i", str(ours)).splitlines() == [
            "Loaded image: localhost/one:latest",
            "Loaded image: localhost/one:v2",
            "Loaded image: localhost/two:latest",
        ]
        listed = podman("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").split("\n")
        assert sorted(filter(None, listed)) == [
            f"localhost/one:latest {one[:12]}",
            f"localhost/one:v2 {one[:12]}",
            f"localhost/two:latest {two[:12]}",
        ]
        theirs = tmp_path / "theirs.tar"
        podman("save", "-q", "-m", "-o", str(theirs), "localhost/two", "localhost/one:v2")
        fresh = Pypod(tmp_path / "fresh")
        assert fresh.ok("load", "-i", str(theirs)).splitlines() == [
            "Loaded image: localhost/two:latest",
            "Loaded image: localhost/one:v2",
        ]
        assert sorted(fresh.ok("images", "-q", "--no-trunc").split()) == sorted(
            f"sha256:{i}" for i in (one, two)
        )
