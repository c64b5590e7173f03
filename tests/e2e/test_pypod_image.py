"""`pypod-image` (skopeo's command line) as a user runs it, compared with skopeo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import messages
from tests.image_support import (
    Image,
    Registry,
    sha,
    start_registry,
    tar_of_files,
    write_oci_index,
)

PYPOD_IMAGE = str(Path(sys.executable).parent / "pypod-image")


def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    stdin = None if input is not None else subprocess.DEVNULL
    return subprocess.run(
        [PYPOD_IMAGE, *args], capture_output=True, text=True, input=input, timeout=120, stdin=stdin
    )


def ok(*args: str, input: str | None = None) -> str:
    proc = run(*args, input=input)
    assert proc.returncode == 0, f"{args}: {proc.stderr}"
    return proc.stdout


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("skopeo")
    if exe is None:
        pytest.skip("skopeo is not installed (apt-get install skopeo)")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def image() -> Image:
    return Image([tar_of_files({"bin/hello": b"#!/bin/sh\necho hi\n"}),
                  tar_of_files({"etc/motd": b"motd\n"})], labels={"x": "<y>"})  # fmt: skip


@pytest.fixture
def src(image: Image, tmp_path: Path) -> Path:
    return image.write_dir(tmp_path / "src")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


def test_version_and_help() -> None:
    assert ok("--version").startswith("pypod-image version ")
    out = ok("--help")
    for command in ("copy", "inspect", "delete", "list-tags", "login", "logout",
                    "manifest-digest"):  # fmt: skip
        assert command in out
    assert "--dest-compress-format" in ok("copy", "--help")


def test_copy_is_quiet_off_a_terminal_and_writes_the_digest_file(
    image: Image, src: Path, tmp_path: Path
) -> None:
    proc = run("copy", "--digestfile", str(tmp_path / "digest"), f"dir:{src}",
               f"oci:{tmp_path}/layout:v1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert (tmp_path / "digest").read_text() == image.digest
    assert ok("copy", "-q", f"oci:{tmp_path}/layout:v1",
              f"dir:{tmp_path}/back") == ""  # fmt: skip


@pytest.mark.compat
def test_inspect_matches_skopeo(image: Image, src: Path, tmp_path: Path) -> None:
    ok("copy", f"dir:{src}", f"oci:{tmp_path}/layout:v1")
    name = f"oci:{tmp_path}/layout:v1"
    ours = json.loads(ok("inspect", name))
    theirs = json.loads(skopeo("inspect", name).stdout)
    assert ours.pop("LayersData")[0]["MIMEType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert ours == theirs
    fmt = "{{.Digest}} {{.Os}} {{.Labels}} {{.Layers}} {{.Architecture}}"
    assert ok("inspect", "--format", fmt, name) == skopeo("inspect", "--format", fmt, name).stdout
    assert ok("inspect", "--raw", name).encode() == image.manifest
    assert ok("inspect", "--config", "--raw", name).encode() == image.config
    assert json.loads(ok("inspect", "--config", name)) == json.loads(image.config)
    assert "\\u003cy\\u003e" in ok("inspect", name)  # Go escapes HTML characters


@pytest.mark.compat
def test_manifest_digest_matches_skopeo(src: Path) -> None:
    path = str(src / "manifest.json")
    assert ok("manifest-digest", path) == skopeo("manifest-digest", path).stdout


@pytest.mark.compat
@pytest.mark.parametrize("name", ["foo:bar", "busybox", "docker:busybox", "docker://Busy"])
def test_bad_image_names_fail_as_skopeo_does(name: str) -> None:
    proc = run("inspect", name)
    theirs = skopeo("inspect", name)
    assert proc.returncode == theirs.returncode == 1
    assert messages(proc.stderr) == messages(theirs.stderr)


def test_unknown_command_and_format_fail() -> None:
    assert run("frobnicate").returncode == 1
    proc = run("copy", "--format", "v3", "dir:/nonexistent", "dir:/tmp/nowhere")
    assert proc.returncode == 1


@pytest.mark.registry
def test_push_list_tags_inspect_delete(image: Image, src: Path, registry: Registry,
                                       tmp_path: Path) -> None:  # fmt: skip
    repo = f"{registry.host}/e2e/app"
    for tag in ("1", "2"):
        ok("copy", "--dest-tls-verify=false", "--format", "v2s2", f"dir:{src}",
           f"docker://{repo}:{tag}")  # fmt: skip
    tags = json.loads(ok("list-tags", "--tls-verify=false", f"docker://{repo}"))
    assert tags["Repository"] == repo and sorted(tags["Tags"]) == ["1", "2"]
    if shutil.which("skopeo"):
        assert json.loads(skopeo("list-tags", "--tls-verify=false", f"docker://{repo}").stdout
                          ) == tags  # fmt: skip
    info = json.loads(ok("inspect", "--tls-verify=false", f"docker://{repo}:1"))
    assert info["Name"] == repo and sorted(info["RepoTags"]) == ["1", "2"]
    raw = ok("inspect", "--raw", "--tls-verify=false", f"docker://{repo}:1")
    assert json.loads(raw)["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    catalog = subprocess.run(["curl", "-sf", f"http://{registry.host}/v2/_catalog"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "e2e/app" in json.loads(catalog)["repositories"]
    ok("copy", "--src-tls-verify=false", f"docker://{repo}:2", f"oci-archive:{tmp_path}/a.tar")
    ok("delete", "--tls-verify=false", f"docker://{repo}:1")
    gone = run("inspect", "--tls-verify=false", f"docker://{repo}:2")
    assert gone.returncode == 1  # 1 and 2 were one manifest: both tags are gone
    ok("copy", f"oci-archive:{tmp_path}/a.tar", f"dir:{tmp_path}/back")
    assert (tmp_path / "back" / sha(image.config)[7:]).read_bytes() == image.config


@pytest.mark.registry
def test_copy_all_of_an_index(registry: Registry, tmp_path: Path) -> None:
    amd = Image([tar_of_files({"a": b"amd64 e2e"})], arch="amd64")
    arm = Image([tar_of_files({"a": b"arm64 e2e"})], arch="arm64")
    digest = write_oci_index(tmp_path / "src", [amd, arm], "m")
    remote = f"docker://{registry.host}/e2e/multi:1"
    ok("copy", "--all", "--dest-tls-verify=false", f"oci:{tmp_path}/src:m", remote)
    raw = ok("inspect", "--raw", "--tls-verify=false", remote)
    assert sha(raw.encode()) == digest
    info = json.loads(ok("--override-arch", "arm64", "inspect", "--tls-verify=false", remote))
    assert info["Architecture"] == "arm64" and info["Digest"] == digest


@pytest.mark.registry
def test_login_and_logout(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    root.mkdir()
    reg = start_registry(root, users={"me": "pw"})
    try:
        authfile = str(tmp_path / "auth.json")
        bad = run("login", "--tls-verify=false", "--authfile", authfile, "-u", "me", "-p", "no",
                  reg.host)  # fmt: skip
        assert bad.returncode == 1
        out = ok("login", "--tls-verify=false", "--authfile", authfile, "-u", "me",
                 "--password-stdin", reg.host, input="pw\n")  # fmt: skip
        assert out.strip() == "Login Succeeded!"
        assert reg.host in json.loads(Path(authfile).read_text())["auths"]
        img = Image([tar_of_files({"auth": b"yes"})])
        ok("copy", "--dest-tls-verify=false", "--authfile", authfile,
           f"dir:{img.write_dir(tmp_path / 'img')}", f"docker://{reg.host}/a/b:1")  # fmt: skip
        assert ok("logout", "--authfile", authfile, reg.host).strip() == (
            f"Removed login credentials for {reg.host}"
        )
        denied = run("inspect", "--tls-verify=false", "--authfile", authfile,
                     f"docker://{reg.host}/a/b:1")  # fmt: skip
        assert denied.returncode == 1
    finally:
        reg.stop()


@pytest.mark.registry
def test_sync_registry_to_dir_to_oci_and_back(image: Image, src: Path, registry: Registry,
                                              tmp_path: Path) -> None:  # fmt: skip
    repo = f"{registry.host}/sync/busy"
    for tag in ("a", "b"):
        ok("copy", "--dest-tls-verify=false", f"dir:{src}", f"docker://{repo}:{tag}")
    out = ok("sync", "--src", "docker", "--dest", "dir", "--src-tls-verify=false", repo,
             str(tmp_path / "mirror"))  # fmt: skip
    assert out.strip() == "Synced 2 images from 1 sources"
    assert sorted(os.listdir(tmp_path / "mirror")) == ["busy:a", "busy:b"]
    assert (tmp_path / "mirror/busy:a/manifest.json").read_bytes() == image.manifest
    ok("sync", "--src", "dir", "--dest", "oci", str(tmp_path / "mirror/busy:b"),
       str(tmp_path / "layouts"))  # fmt: skip
    assert json.loads((tmp_path / "layouts/busy/index.json").read_text())["manifests"][0][
        "annotations"
    ] == {"org.opencontainers.image.ref.name": "b"}
    ok("sync", "-s", "docker", "-d", "docker", "--src-tls-verify=false",
       "--dest-tls-verify=false", f"{repo}:a", f"{registry.host}/copied")  # fmt: skip
    info = json.loads(
        ok("inspect", "--tls-verify=false", f"docker://{registry.host}/copied/busy:a")
    )
    assert info["Digest"] == image.digest
    dry = ok("sync", "--dry-run", "-s", "docker", "-d", "dir", "--src-tls-verify=false", repo,
             str(tmp_path / "nothing"))  # fmt: skip
    assert "Would have copied image ref busy:a" in dry and not (tmp_path / "nothing").exists()


def test_malformed_manifest_is_a_clear_error(src: Path, tmp_path: Path) -> None:
    (src / "manifest.json").write_text('{"schemaVersion": 2, "config": 5}')
    proc = run("copy", f"dir:{src}", f"dir:{tmp_path}/out")
    assert proc.returncode == 1
    assert f"manifest of dir:{src}: config: must be a JSON object" in messages(proc.stderr)
    (src / "manifest.json").write_text("nope")
    proc = run("inspect", f"dir:{src}")
    assert proc.returncode == 1 and "manifest.json: manifest is not valid JSON" in proc.stderr


def test_progress_is_shown_on_a_terminal_only(image: Image, src: Path, tmp_path: Path) -> None:
    import pty

    def on_tty(*args: str) -> str:
        leader, follower = pty.openpty()
        proc = subprocess.run([PYPOD_IMAGE, *args], stdout=follower, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, timeout=60)  # fmt: skip
        os.close(follower)
        out = b""
        try:
            while chunk := os.read(leader, 65536):
                out += chunk
        except OSError:  # EIO: the terminal is closed
            pass
        os.close(leader)
        assert proc.returncode == 0, proc.stderr
        return out.decode().replace("\r\n", "\n")

    shown = on_tty("copy", f"dir:{src}", f"oci:{tmp_path}/layout:v1")
    assert shown.splitlines()[0] == "Getting image source signatures"
    assert f"Copying blob {sha(image.layers[0])[7:19]} done" in shown
    assert f"Copying config {sha(image.config)[7:19]} done" in shown
    assert "Writing manifest to image destination" in shown
    assert on_tty("copy", "-q", f"dir:{src}", f"oci:{tmp_path}/layout:v2") == ""
