"""`pypod-build` as users type it (buildah 1.28's command line) on a pypod store.

Each test is a small workflow: a working container made with `from`, changed with `config`,
`copy`, `run` and through its mount point, committed, and the image seen (and run) by `pypod`.
The outputs and exit codes checked here are buildah's (tests/compat compares them with
buildah side by side).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.build_cli_support import (  # noqa: F401  (fixtures)
    HEX64,
    Build,
    build_fixture,
    build_store_fixture,
)
from tests.engine_support import busybox_tar_fixture  # noqa: F401  (fixture)

pytestmark = pytest.mark.root

IMAGE = "localhost/busybox"


def test_from_names_and_containers_listing(build: Build) -> None:
    assert build.ok("from", IMAGE) == "busybox-working-container\n"
    assert build.ok("from", "-q", IMAGE) == "busybox-working-container-1\n"
    assert build.ok("from", "--name", "mine", "--pull=never", IMAGE) == "mine\n"
    assert build.ok("from", "scratch") == "working-container\n"
    table = build.ok("containers").splitlines()
    assert table[0] == "CONTAINER ID  BUILDER  IMAGE ID     IMAGE NAME                       " \
                       "CONTAINER NAME"  # fmt: skip
    rows = [re.split(r"\s+", line.strip()) for line in table[1:]]
    assert [r[-1] for r in rows] == ["busybox-working-container", "busybox-working-container-1",
                                     "mine", "working-container"]  # fmt: skip
    assert rows[0][1] == "*" and rows[0][3] == "localhost/busybox:latest"
    assert rows[3][2:] == ["scratch", "working-container"]  # no image id for scratch
    ids = build.ok("containers", "-q").split()
    assert len(ids) == 4 and all(HEX64.fullmatch(i) for i in ids)
    doc = json.loads(build.ok("containers", "--json"))
    assert doc[2]["containername"] == "mine" and doc[2]["builder"] is True
    assert doc[3]["imagename"] == "scratch" and doc[3]["imageid"] == ""
    assert build.ok("containers", "--format", "{{.ContainerName}}", "--filter", "name=mine") \
        == "mine\n"  # fmt: skip
    assert build.ok("containers", "--noheading").count("\n") == 4
    # a scratch container stands on no image: nothing extra for `pypod images` to show
    assert "<none>" not in build.ok("images", "--all")
    assert "<none>" not in build.store.ok("images", "--all")
    assert build.store.ok("images", "-a", "-q").split() == build.store.ok("images", "-q").split()


def test_errors_exit_125_with_buildahs_messages(build: Build) -> None:
    p = build.fails(125, "nosuch")
    assert p.stderr == 'Error: unknown command "nosuch" for "pypod-build"\n'
    p = build.fails(125, "images", "--nosuch")
    assert p.stderr == "Error: unknown flag: --nosuch\n"
    p = build.fails(125, "rm", "nosuch")
    assert p.stderr == 'Error: removing container "nosuch": container not known\n'
    p = build.fails(125, "from", "--pull=never", "localhost/nosuch")
    assert "localhost/nosuch: image not known" in p.stderr
    name = build.ok("from", IMAGE).strip()
    p = build.fails(125, "config", name, "--env", "A=1")
    assert p.stderr == (
        "Error: no options (--env) can be specified after the image or container name\n"
    )
    p = build.fails(125, "mount", name, "nosuch")
    assert p.stdout.startswith(f"{name} /") and p.stderr == (
        'Error: reading build container "nosuch": container not known\n'
    )
    p = build.fails(125, "rmi", "nosuch")
    assert p.stderr == "Error: 1 error occurred:\n\t* nosuch: image not known\n\n\n"
    p = build.fails(125, "inspect", "nosuch")
    assert p.stderr == "Error: importing settings: nosuch: image not known\n"


def test_config_then_inspect_and_commit(build: Build) -> None:
    name = build.ok("from", IMAGE).strip()
    build.ok("config", "--cmd", "/bin/sh", "--env", "PATH=/bin", name)
    proc = build("config", "--cmd", "echo hi", "--entrypoint", '["/bin/sh", "-c"]', "--env",
                 "A=1", "--env", "B=$A-2", "--label", "l=v", "--port", "80", "--workingdir",
                 "/w", "--user", "nobody", "--author", "me", "--volume", "/data",
                 "--stop-signal", "TERM", name)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # buildah's warning: the old CMD is now an argument of the entrypoint
    assert 'cmd \\"/bin/sh\\" exists and will be passed to entrypoint as a parameter' in (
        proc.stderr
    )
    info = json.loads(build.ok("inspect", name))
    assert info["Type"] == "buildah 0.0.1" and info["Container"] == name
    cfg = info["OCIv1"]["config"]
    assert cfg["Env"] == ["PATH=/bin", "A=1", "B=1-2"]
    assert cfg["Cmd"] == ["echo", "hi"] and cfg["Entrypoint"] == ["/bin/sh", "-c"]
    assert cfg["ExposedPorts"] == {"80": {}} and cfg["Volumes"] == {"/data": {}}
    assert (cfg["User"], cfg["WorkingDir"], cfg["StopSignal"]) == ("nobody", "/w", "TERM")
    assert info["OCIv1"]["author"] == "me"
    assert info["Docker"]["config"]["Labels"] == {"l": "v"}
    shown = build.ok("inspect", "--format", "{{.FromImage}} {{.OCIv1.Config.Env}} "
                     "{{.Docker.Config.Cmd}}", name)  # fmt: skip
    assert shown == "localhost/busybox:latest [PATH=/bin A=1 B=1-2] [echo hi]"  # no newline
    # unset with K-
    build.ok("config", "--env", "B-", "--label", "l-", name)
    cfg = json.loads(build.ok("inspect", name))["OCIv1"]["config"]
    assert cfg["Env"] == ["PATH=/bin", "A=1"] and "l" not in (cfg.get("Labels") or {})

    proc = build("commit", name, "configured")
    assert proc.returncode == 0, proc.stderr
    image_id = proc.stdout.strip()
    assert HEX64.fullmatch(image_id)
    assert proc.stderr.startswith("Getting image source signatures\n")
    assert proc.stderr.endswith("Writing manifest to image destination\nStoring signatures\n")
    img = json.loads(build.ok("inspect", "--type", "image", "configured"))
    assert img["FromImageID"] == image_id and img["OCIv1"]["config"]["Cmd"] == ["echo", "hi"]
    # the engine sees it, and runs it with that config
    listed = build.store.ok("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}",
                            "localhost/configured")  # fmt: skip
    assert listed == f"localhost/configured:latest {image_id[:12]}\n"
    out = build.store.ok("run", "--rm", "--user", "root", "configured", "echo $A; pwd")
    assert out == "1\n/w\n"


def test_mount_copy_run_commit(build: Build, tmp_path: Path) -> None:
    name = build.ok("from", IMAGE).strip()
    mnt = build.ok("mount", name).strip()
    assert os.path.isdir(os.path.join(mnt, "bin"))
    assert build.ok("mount") == f"{name} {mnt}\n"
    # a file installed into the mount point from the host, seen by `run`
    os.makedirs(os.path.join(mnt, "usr/bin"), exist_ok=True)
    with open(os.path.join(mnt, "usr/bin/startup.sh"), "w") as f:
        f.write('#!/bin/sh\necho started "$@"\n')
    os.chmod(os.path.join(mnt, "usr/bin/startup.sh"), 0o755)
    assert build.ok("run", name, "/usr/bin/startup.sh", "x") == "started x\n"
    assert build.ok("umount", name) == build.ok("containers", "-q").strip().split()[-1] + "\n"
    assert build.ok("mount") == ""
    # copy: the content digest on stdout; files owned as asked
    src = tmp_path / "index.html"
    src.write_text("<h1>hi</h1>\n")
    digest = build.ok("copy", "--chown", "nobody:nogroup", name, str(src), "/www/")
    assert re.fullmatch(r"[0-9a-f]{64}\n", digest)
    assert build.ok("copy", "-q", name, str(src), "/www/again.html") == ""
    out = build.ok("run", name, "--", "sh", "-c", "stat -c '%U:%G %n' /www/*; cat /www/index.html")
    assert out == "root:root /www/again.html\nnobody:nogroup /www/index.html\n<h1>hi</h1>\n"
    # run: the command's exit status is the program's
    p = build.fails(3, "run", name, "sh", "-c", "echo out; exit 3")
    assert p.stdout == "out\n" and p.stderr == "Error: while running runtime: exit status 3\n"
    p = build.fails(1, "run", name, "nosuchcommand")
    assert "nosuchcommand" in p.stderr
    assert build.ok("run", "--user", "nobody", "--workingdir", "/tmp", "-e", "X=y", name,
                    "sh", "-c", "id -un; pwd; echo $X") == "nobody\n/tmp\ny\n"  # fmt: skip
    # commit -q --iidfile --rm: nothing on stdout, the ID in the file, the container gone
    iid = tmp_path / "iid"
    assert build.ok("commit", "-q", "--rm", "--iidfile", str(iid), name, "withfiles") == ""
    image_id = iid.read_text().removeprefix("sha256:")
    assert HEX64.fullmatch(image_id)
    assert build.ok("containers", "-q") == ""
    out = build.store.ok("run", "--rm", "withfiles", "cat", "/www/index.html")
    assert out == "<h1>hi</h1>\n"


def test_images_tag_rmi(build: Build) -> None:
    name = build.ok("from", IMAGE).strip()
    image_id = build.ok("commit", "-q", "--rm", name, "tagme").strip()
    build.ok("tag", "tagme", "other:1.0")
    table = build.ok("images").splitlines()
    assert re.fullmatch(r"REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE", table[0])
    rows = [re.split(r"\s{2,}", line) for line in table[1:]]
    assert ["localhost/tagme", "latest", image_id[:12]] in [r[:3] for r in rows]
    assert ["localhost/other", "1.0", image_id[:12]] in [r[:3] for r in rows]
    assert build.ok("images", "-q", "other:1.0") == image_id[:12] + "\n"
    assert build.ok("images", "--no-trunc", "-q", "tagme") == f"sha256:{image_id}\n"
    doc = json.loads(build.ok("images", "--json", "tagme"))
    assert doc[0]["id"] == image_id[:12]
    assert doc[0]["names"] == ["localhost/tagme:latest", "localhost/other:1.0"]
    assert build.ok("images", "--format", "{{.Name}} {{.Tag}}", "other:1.0").split("\n")[0] \
        in ("localhost/tagme   latest", "localhost/other   1.0")  # fmt: skip
    assert build.ok("images", "-q", "--filter", "reference=other*") == image_id[:12] + "\n"
    assert build.ok("images", "--noheading", "--filter", "reference=nothing") == ""
    assert build.ok("rmi", "other:1.0") == "untagged: localhost/other:1.0\n"
    assert build.ok("rmi", "tagme") == f"untagged: localhost/tagme:latest\n{image_id}\n"
    assert "tagme" not in build.store.ok("images")


def test_bud_defaults_tag_and_failures(build: Build, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {IMAGE}\nRUN echo built > /built\nCMD cat /built\n")
    proc = build("bud", "-t", "budded", str(ctx))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:2] == [f"STEP 1/3: FROM {IMAGE}", "STEP 2/3: RUN echo built > /built"]
    assert "COMMIT budded" in lines and "Successfully tagged localhost/budded:latest" in lines
    # commit progress goes to stderr, as buildah's does; the build's steps to stdout
    assert "Getting image source signatures" not in proc.stdout
    assert "Writing manifest to image destination" not in proc.stdout
    assert "Getting image source signatures\n" in proc.stderr
    assert "Writing manifest to image destination\n" in proc.stderr
    image_id = lines[-1]
    assert HEX64.fullmatch(image_id)
    # buildah's default: no layer cache, so one new layer and no intermediate images
    layers = json.loads(build.ok("inspect", "--type", "image", "budded"))["OCIv1"]["rootfs"]
    assert len(layers["diff_ids"]) == 2
    assert build.store.ok("run", "--rm", "budded") == "built\n"
    # build-using-dockerfile and build are the same command; -f is found in the context
    assert build.ok("build-using-dockerfile", "-q", "-f", "Dockerfile", str(ctx)).strip() \
        != ""  # fmt: skip
    (ctx / "Failing").write_text(f"FROM {IMAGE}\nRUN exit 7\n")
    p = build.fails(7, "build", "-f", str(ctx / "Failing"), str(ctx))
    assert p.stderr.endswith(
        'Error: building at STEP "RUN exit 7": while running runtime: exit status 7\n'
    )
    assert build.ok("containers", "-q") == ""  # removed, as buildah does


def test_bud_annotation(build: Build, tmp_path: Path) -> None:
    """`bud --annotation K=V`: in the image's manifest, with buildah's base annotations."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Containerfile").write_text("FROM scratch\nCOPY Containerfile /\n")
    build.ok("bud", "-q", "--annotation", "k=v", "-t", "annotated", str(ctx))
    doc = json.loads(build.ok("inspect", "--type", "image", "annotated"))
    assert doc["ImageAnnotations"] == {"k": "v", "org.opencontainers.image.base.digest": "",
                                       "org.opencontainers.image.base.name": ""}  # fmt: skip
    assert json.loads(doc["Manifest"])["annotations"] == doc["ImageAnnotations"]


def test_help_version_info(build: Build) -> None:
    out = build.ok("--help")
    assert "Available Commands:" in out and "  commit      Create an image" in out
    assert build.ok("commit", "--help").startswith("\n  Writes a new image")
    version = build.ok("version")
    assert version.startswith("Version:         ") and "OS/Arch:         linux/" in version
    info = json.loads(build.ok("info"))
    assert info["store"]["GraphRoot"] == str(build.store.root)
    assert info["host"]["os"] == "linux"
    assert build.ok("info", "--format", "{{.store.GraphRoot}}") == f"{build.store.root}"


def test_run_volumes_network_isolation_terminal(build: Build, tmp_path: Path) -> None:
    name = build.ok("from", IMAGE).strip()
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "in").write_text("from the host\n")
    out = build.ok("run", "-v", f"{tmp_path / 'shared'}:/shared", name, "sh", "-c",
                   "cat /shared/in; echo back > /shared/out")  # fmt: skip
    assert out == "from the host\n" and (tmp_path / "shared" / "out").read_text() == "back\n"
    p = build.fails(1, "run", "-v", f"{tmp_path / 'shared'}:/ro:ro", name, "touch", "/ro/x")
    assert "Read-only file system" in p.stdout + p.stderr
    # --network none: only a loopback interface; host: the host's interfaces
    links = build.ok("run", "--network", "none", name, "ls", "/sys/class/net").split()
    assert links == ["lo"]
    host_links = sorted(os.listdir("/sys/class/net"))
    assert sorted(build.ok("run", name, "ls", "/sys/class/net").split()) == host_links
    # --isolation chroot: the host's processes are visible; oci: a pid namespace of its own
    assert build.ok("run", name, "sh", "-c", "echo $$") == "1\n"
    assert build.ok("run", "--isolation", "chroot", name, "sh", "-c", "echo $$") != "1\n"
    # -t: a terminal
    assert build.ok("run", "-t", name, "sh", "-c", "test -t 1 && echo tty").strip() == "tty"
    assert build.ok("run", name, "sh", "-c", "test -t 1 || echo notty") == "notty\n"
    # --add-history records the step
    build.ok("run", "--add-history", name, "true")
    history = json.loads(build.ok("inspect", name))["History"]
    assert history[-1]["created_by"] == "/bin/sh -c true"


def test_copy_from_chmod_and_add_archive(build: Build, tmp_path: Path) -> None:
    import tarfile

    first = build.ok("from", "--name", "first", IMAGE).strip()
    build.ok("run", first, "sh", "-c", "mkdir /made && echo made > /made/file")
    second = build.ok("from", "--name", "second", IMAGE).strip()
    # --from a working container, then --from an image (a temporary container, removed)
    build.ok("copy", "-q", "--from", first, second, "/made/file", "/from-first")
    build.ok("copy", "-q", "--from", IMAGE, second, "/bin/busybox", "/from-image")
    assert build.ok("containers", "--format", "{{.ContainerName}}").split() == [first, second]
    src = tmp_path / "script"
    src.write_text("#!/bin/sh\necho script\n")
    build.ok("copy", "-q", "--chmod", "0750", second, str(src), "/script")
    archive = tmp_path / "files.tar.gz"
    inner = tmp_path / "inner.txt"
    inner.write_text("unpacked\n")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(inner, arcname="dir/inner.txt")
    build.ok("add", "-q", second, str(archive), "/unpacked/")
    build.ok("copy", "-q", second, str(archive), "/kept/")
    out = build.ok("run", second, "sh", "-c", "cat /from-first; test -x /from-image && echo x; "
                   "stat -c %a /script; cat /unpacked/dir/inner.txt; ls /kept")  # fmt: skip
    assert out == "made\nx\n750\nunpacked\nfiles.tar.gz\n"


def test_commit_formats_squash_timestamp(build: Build, tmp_path: Path) -> None:
    name = build.ok("from", IMAGE).strip()
    build.ok("run", name, "sh", "-c", "echo x > /x")
    build.ok("config", "--healthcheck", "CMD-SHELL test -f /x", "--healthcheck-interval", "30s",
             "--healthcheck-retries", "2", name)  # fmt: skip
    # OCI has no HEALTHCHECK: buildah's warning, and it is dropped
    proc = build("commit", "-q", name, "oci-image")
    assert proc.returncode == 0
    assert "HEALTHCHECK is not supported for OCI image format" in proc.stderr
    docker_id = build.ok("commit", "-q", "--format", "docker", name, "docker-image").strip()
    doc = json.loads(build.ok("inspect", "--type", "image", "docker-image"))
    assert doc["Docker"]["config"]["Healthcheck"] == {
        "Test": ["CMD-SHELL", "test", "-f", "/x"],  # as buildah stores it: split into words
        "Interval": 30_000_000_000,
        "Timeout": 30_000_000_000,
        "Retries": 2,
    }
    assert json.loads(doc["Manifest"])["mediaType"] == (
        "application/vnd.docker.distribution.manifest.v2+json"
    )
    assert HEX64.fullmatch(docker_id)
    # --squash: one layer holding everything
    build.ok("commit", "-q", "--squash", name, "squashed")
    layers = json.loads(build.ok("inspect", "--type", "image", "squashed"))["OCIv1"]["rootfs"]
    assert len(layers["diff_ids"]) == 1
    # --timestamp: the same content twice gives the same image
    a = build.ok("commit", "-q", "--timestamp", "1700000000", name).strip()
    b = build.ok("commit", "-q", "--timestamp", "1700000000", name).strip()
    assert a == b
    created = json.loads(build.ok("inspect", "--type", "image", a))["OCIv1"]["created"]
    assert created.startswith("2023-11-14T22:13:20")
    # a transport as the destination: written there, not kept in the store
    image_count = len(build.ok("images", "-q").split())
    layout = tmp_path / "layout"
    out = build.ok("commit", "-q", name, f"oci:{layout}:exported")
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "exported"
    assert HEX64.fullmatch(out.strip())
    assert len(build.ok("images", "-q").split()) == image_count
    # --unsetenv: gone from the image, kept in the container
    build.ok("config", "--env", "SECRET=x", name)
    build.ok("commit", "-q", "--unsetenv", "SECRET", name, "unset")
    cfg = json.loads(build.ok("inspect", "--type", "image", "unset"))["OCIv1"]["config"]
    env = cfg.get("Env") or []
    assert not any(e.startswith("SECRET=") for e in env)
    assert "SECRET=x" in json.loads(build.ok("inspect", name))["OCIv1"]["config"]["Env"]
    # rename, then commit by the new name
    build.ok("rename", name, "renamed")
    assert build.ok("containers", "--format", "{{.ContainerName}}") == "renamed\n"
    build.ok("commit", "-q", "--rm", "renamed", "after-rename")


def test_not_supported_commands_say_so(build: Build) -> None:
    p = build.fails(125, "manifest", "create", "list")
    assert p.stderr == "Error: 'manifest' (manifest lists and image indexes) is not supported yet\n"
    p = build.fails(125, "source", "create", "--author", "me", "x")  # no flag-order check
    assert p.stderr == "Error: 'source' (source containers) is not supported yet\n"
    p = build.fails(125, "from", "--cap-add", "NET_ADMIN", IMAGE)
    assert p.stderr == "Error: 'from --cap-add' is not supported yet\n"


def test_unshare_runs_the_command(build: Build) -> None:
    assert build.ok("unshare", "id", "-u") == "0\n"
    assert build.ok("unshare", "sh", "-c", "echo $BUILDAH_ISOLATION") == "oci\n"


def test_push_pull_login_logout(build: Build, tmp_path: Path) -> None:
    from tests.image_support import start_registry

    (tmp_path / "reg").mkdir()
    registry = start_registry(tmp_path / "reg", users={"u": "pw"})
    auth = tmp_path / "auth.json"
    try:
        name = build.ok("from", IMAGE).strip()
        build.ok("commit", "-q", "--rm", name, "to-push")
        target = f"{registry.host}/me/to-push:1"
        p = build.fails(125, "push", "--tls-verify=false", "to-push", f"docker://{target}")
        assert "authentication required" in p.stderr.lower() or "401" in p.stderr
        p = build.fails(125, "login", "--tls-verify=false", "--authfile", str(auth), "-u", "u",
                        "-p", "wrong", registry.host)  # fmt: skip
        out = build.ok("login", "--tls-verify=false", "--authfile", str(auth), "-u", "u",
                       "--password-stdin", registry.host, input="pw\n")  # fmt: skip
        assert out == "Login Succeeded!\n"
        # --get-login: the user stored for the registry (buildah 1.28 prints it)
        assert build.ok("login", "--authfile", str(auth), "--get-login", registry.host) == "u\n"
        proc = build("push", "--tls-verify=false", "--authfile", str(auth), "to-push",
                     f"docker://{target}")  # fmt: skip
        assert proc.returncode == 0 and proc.stdout == "", proc.stderr
        assert proc.stderr.startswith("Getting image source signatures\n")
        image_id = build.ok("pull", "-q", "--tls-verify=false", "--authfile", str(auth),
                            "--policy", "always", target).strip()  # fmt: skip
        assert build.ok("images", "-q", "--no-trunc", target) == f"sha256:{image_id}\n"
        assert build.ok("logout", "--authfile", str(auth), registry.host) == (
            f"Removed login credentials for {registry.host}\n"
        )
        p = build.fails(125, "logout", "--authfile", str(auth), registry.host)
        assert p.stderr == f"Error: not logged into {registry.host}\n"
    finally:
        registry.stop()
