"""`pypod-build` next to buildah 1.28: the same commands on each one's own store, compared.

Outputs are compared after IDs, ages and the program's name are normalized; exit codes
exactly.  Both stores hold a `localhost/busybox` made from the same busybox tree.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.build_cli_support import (  # noqa: F401  (fixtures)
    Build,
    Buildah,
    Tool,
    build_fixture,
    build_store_fixture,
    buildah_tool_fixture,
    normalize,
)
from tests.engine_support import busybox_tar_fixture  # noqa: F401  (fixture)

pytestmark = [pytest.mark.root, pytest.mark.compat]

IMAGE = "localhost/busybox"


@pytest.fixture(name="buildah")
def buildah_fixture(buildah_tool: Buildah) -> Iterator[Buildah]:
    yield buildah_tool
    buildah_tool.remove_all()


def both(build: Build, buildah: Buildah, fn: Callable[[Tool], Any]) -> tuple[Any, Any]:
    return fn(build), fn(buildah)


def same_result(build: Build, buildah: Buildah, *args: str, **kw: Any) -> None:
    """The command gives the same exit code, stdout and stderr (normalized) on both."""
    ours, theirs = build(*args, **kw), buildah(*args, **kw)
    assert ours.returncode == theirs.returncode, (args, ours.stderr, theirs.stderr)
    assert normalize(ours.stdout) == normalize(theirs.stdout), args
    assert normalize(ours.stderr) == normalize(theirs.stderr), args


def test_from_names_containers_and_mount_listing(build: Build, buildah: Buildah) -> None:
    for args in (("from", IMAGE), ("from", "-q", IMAGE), ("from", "--name", "named", IMAGE),
                 ("from", "scratch"), ("from", "scratch")):  # fmt: skip
        same_result(build, buildah, *args)
    for args in (("containers",), ("containers", "--noheading"), ("containers", "--notruncate"),
                 ("containers", "--format", "{{.ContainerName}} {{.ImageName}}"),
                 ("containers", "--format", "table {{.ContainerName}} {{.Builder}}"),
                 ("containers", "--filter", "name=named"),
                 ("containers", "--filter", f"ancestor={IMAGE}"),
                 ("containers", "--filter", "ancestor=busybox"),
                 ("containers", "--filter", "id=nomatch")):  # fmt: skip
        same_result(build, buildah, *args)
    ours, theirs = both(build, buildah, lambda t: json.loads(t.ok("containers", "--json")))
    strip = [{k: v for k, v in d.items() if k not in ("id", "imageid")} for d in ours]
    assert strip == [{k: v for k, v in d.items() if k not in ("id", "imageid")} for d in theirs]
    # mount: one container → its path; several → "name path"; none → the mounted ones
    for tool in (build, buildah):
        path = tool.ok("mount", "named").strip()
        assert path.startswith("/") and tool.ok("mount") == f"named {path}\n"
        two = tool.ok("mount", "named", "busybox-working-container").splitlines()
        assert [line.split()[0] for line in two] == ["named", "busybox-working-container"]
    same_result(build, buildah, "umount", "busybox-working-container", "nosuch")
    same_result(build, buildah, "rm", "nosuch", "busybox-working-container-1", "nosuch2")


def test_errors_and_exit_codes(build: Build, buildah: Buildah) -> None:
    build.ok("from", IMAGE)
    buildah.ok("from", IMAGE)
    c = "busybox-working-container"
    for args in (("nosuch",), ("images", "--nosuch"), ("tag",), ("rm", "nosuch"),
                 ("config", c, "--env", "A=1"), ("commit", c, "--entrypoint=/bin/true"),
                 ("commit", "--entrypoint=/bin/true", c), ("mount", c + "x"), ("rmi", "nosuch"),
                 ("inspect", "nosuch"), ("inspect", "--type", "image", "nosuch"),
                 ("images", "nosuch"), ("containers", "x"), ("tag", "nosuch", "x")):  # fmt: skip
        same_result(build, buildah, *args)


def _config(tool: Tool, name: str) -> dict[str, Any]:
    info = json.loads(tool.ok("inspect", name))
    cfg = info["OCIv1"]["config"]
    labels = cfg.get("Labels") or {}
    labels.pop("io.buildah.version", None)
    if not labels:
        cfg.pop("Labels", None)
    return {"config": cfg, "author": info["OCIv1"].get("author"),
            "docker": {k: v for k, v in info["Docker"]["config"].items() if k != "Labels"},
            "history": [h["created_by"] for h in info["History"]][1:]}  # fmt: skip


@pytest.mark.parametrize("flags", [
    ("--cmd", "echo hi", "--entrypoint", '["/bin/sh","-c"]', "--env", "A=1", "--env",
     "B=${A}x", "--label", "l=v", "--port", "80", "--port", "53/udp", "--workingdir", "/w",
     "--user", "nobody", "--author", "me", "--volume", "/data", "--stop-signal", "TERM"),
    ("--entrypoint", "exec top", "--cmd", '["-b"]'),
    ("--env", "PATH-", "--cmd", ""),
    ("--add-history", "--env", "Q=1", "--cmd", "a b", "--label", "x=y", "--user", "u"),
    ("--healthcheck", "CMD-SHELL test -f /x", "--healthcheck-retries", "2", "--port", "53/UDP",
     "--shell", "/bin/bash -c", "--hostname", "h", "--domainname", "d", "--onbuild", "RUN x",
     "--volume", "/v", "--label", "-"),
])  # fmt: skip
def test_config_edits_match(build: Build, buildah: Buildah, flags: tuple[str, ...]) -> None:
    warnings = []
    for tool in (build, buildah):
        name = tool.ok("from", IMAGE).strip()
        tool.ok("config", "--cmd", "/bin/sh", "--env", "PATH=/bin", name)
        proc = tool("config", *flags, name)
        assert proc.returncode == 0, proc.stderr
        warnings.append(re.sub(r'time="[^"]*" ', "", proc.stderr))
    assert warnings[0] == warnings[1]
    ours, theirs = _config(build, name), _config(buildah, name)
    assert ours == theirs
    same_warnings = [re.sub(r'time="[^"]*" ', "", e) for e in (build("config", "--entrypoint",
                     "[\"/x\"]", name).stderr, buildah("config", "--entrypoint", "[\"/x\"]",
                     name).stderr)]  # fmt: skip
    assert same_warnings[0] == same_warnings[1]


def test_run_copy_commit(build: Build, buildah: Buildah, tmp_path: Path) -> None:
    src = tmp_path / "index.html"
    src.write_text("<h1>I made a container</h1>\n")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a").write_text("a\n")
    (tree / "sub" / "b").write_text("b\n")
    for tool in (build, buildah):
        tool.ok("from", IMAGE)
    c = "busybox-working-container"
    same_result(build, buildah, "run", c, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    same_result(build, buildah, "run", "--user", "nobody", "--workingdir", "/tmp", c, "sh",
                "-c", "id; pwd")  # fmt: skip
    # the same variables (the order differs: buildah puts its default PATH first; reported)
    ours_env, theirs_env = both(build, buildah, lambda t: t.ok("run", "-e", "X=1", c, "env"))
    assert sorted(normalize(ours_env).splitlines()) == sorted(normalize(theirs_env).splitlines())
    assert build("run", c, "nosuchcmd").returncode == buildah("run", c, "nosuchcmd").returncode
    # copy: the digest buildah prints (file, directory), with and without --contextdir
    same_result(build, buildah, "copy", c, str(src), "/www/")
    same_result(build, buildah, "copy", c, str(tree), "/tree")
    same_result(build, buildah, "copy", "--contextdir", str(tmp_path), c, str(src), "/x/")
    same_result(build, buildah, "copy", "--contextdir", str(tmp_path), c, "index.html", "/x/")
    same_result(build, buildah, "copy", "--chown", "nobody", c, "index.html", "/y/",
                cwd=tmp_path)  # fmt: skip
    listing = "ls -lnR /www /tree /x /y | sed 's/ [A-Z][a-z][a-z] .*:[0-9][0-9] / /'"
    same_result(build, buildah, "run", c, "sh", "-c", listing)
    # commit: progress on stderr, the ID on stdout; -q; the image's history and config
    ours, theirs = build("commit", c, "committed"), buildah("commit", c, "committed")
    assert (ours.returncode, theirs.returncode) == (0, 0)
    assert re.fullmatch(r"[0-9a-f]{64}\n", ours.stdout) and re.fullmatch(r"[0-9a-f]{64}\n",
                                                                         theirs.stdout)  # fmt: skip
    lines = [re.sub(r"sha256:[0-9a-f]{64}", "<D>", line) for line in ours.stderr.splitlines()]
    assert lines == [re.sub(r"sha256:[0-9a-f]{64}", "<D>", line)
                     for line in theirs.stderr.splitlines()]  # fmt: skip
    same_result(build, buildah, "commit", "-q", c)
    same_result(build, buildah, "images", "--format", "{{.Name}}:{{.Tag}}", "committed")
    ours_doc, theirs_doc = both(build, buildah, lambda t: json.loads(
        t.ok("inspect", "--type", "image", "committed")))  # fmt: skip
    assert [h.get("created_by") for h in ours_doc["OCIv1"]["history"]][-1] == \
        [h.get("created_by") for h in theirs_doc["OCIv1"]["history"]][-1]  # fmt: skip
    assert len(ours_doc["OCIv1"]["rootfs"]["diff_ids"]) == \
        len(theirs_doc["OCIv1"]["rootfs"]["diff_ids"]) == 2  # fmt: skip


def test_images_tag_rmi_outputs(build: Build, buildah: Buildah) -> None:
    for tool in (build, buildah):
        tool.ok("commit", "-q", "--rm", tool.ok("from", IMAGE).strip(), "listed")
    for args in (("tag", "listed", "other:1", "third"), ("images", "listed"),
                 ("images", "--noheading", "other:1"), ("images", "-q", "third"),
                 ("images", "--format", "table {{.Name}} {{.Tag}} {{.Size}}", "listed"),
                 ("rmi", "other:1"), ("rmi", "third", "nosuch"), ("rmi", "listed")):  # fmt: skip
        same_result(build, buildah, *args)
    for tool in (build, buildah):
        tool.ok("commit", "-q", "--rm", tool.ok("from", IMAGE).strip())  # a dangling image
    ours, theirs = build.ok("rmi", "--prune"), buildah.ok("rmi", "--prune")
    assert len(ours.split()) == len(theirs.split()) >= 1
    assert normalize(ours) == normalize(theirs)


def test_bud_output_and_failure(build: Build, buildah: Buildah, tmp_path: Path) -> None:
    (tmp_path / "Containerfile").write_text(f"FROM {IMAGE}\nRUN echo hi > /hi\nCMD cat /hi\n")
    (tmp_path / "Failing").write_text(f"FROM {IMAGE}\nRUN echo before; exit 7\n")
    ours, theirs = build("bud", "-t", "b1", str(tmp_path)), buildah("bud", "-t", "b1",
                                                                      str(tmp_path))  # fmt: skip
    assert ours.returncode == theirs.returncode == 0
    # the commit's progress: buildah writes it on stderr, the executor on stdout (reported)
    progress = ("Getting image", "Copying ", "Writing manifest", "Storing signatures")
    ours_out = [line for line in ours.stdout.splitlines() if not line.startswith(progress)]
    assert normalize("\n".join(ours_out) + "\n") == normalize(theirs.stdout)
    same_result(build, buildah, "bud", "-q", "-f", "Failing", str(tmp_path))
    same_result(build, buildah, "containers")
    ours_doc, theirs_doc = both(build, buildah, lambda t: json.loads(
        t.ok("inspect", "--type", "image", "b1")))  # fmt: skip
    assert len(ours_doc["OCIv1"]["rootfs"]["diff_ids"]) == \
        len(theirs_doc["OCIv1"]["rootfs"]["diff_ids"])  # fmt: skip
    assert ours_doc["OCIv1"]["config"]["Cmd"] == theirs_doc["OCIv1"]["config"]["Cmd"]


def test_same_image_listed_and_inspected_alike(build: Build, buildah: Buildah) -> None:
    """Both stores hold the very same busybox image: its listings and inspection match."""
    for args in (("images", "--format", "{{.Name}} {{.Tag}} {{.ID}} {{.Digest}} {{.Size}} "
                  "{{.Created}} {{.CreatedAtRaw}}", IMAGE),
                 ("images", "--noheading", "--no-trunc", IMAGE),
                 ("inspect", "--type", "image", "--format",
                  "{{.FromImage}} {{.FromImageID}} {{.OCIv1.Config.Cmd}} {{.OCIv1.OS}} "
                  "{{.Docker.Config.Env}} {{.OCIv1.RootFS.DiffIDs}}", IMAGE)):  # fmt: skip
        same_result(build, buildah, *args)
    ours, theirs = both(build, buildah, lambda t: json.loads(t.ok("images", "--json", IMAGE)))
    for doc in ours + theirs:
        doc.pop("createdat")
        doc.pop("digest")  # buildah rewrote the manifest when it pulled the image in
    assert ours == theirs
    ours, theirs = both(build, buildah, lambda t: json.loads(
        t.ok("inspect", "--type", "image", IMAGE)))  # fmt: skip
    # (not FromImageDigest: buildah rewrote the manifest when it pulled the image in)
    for key in ("OCIv1", "Docker", "FromImage", "FromImageID", "Config",
                "History", "NamespaceOptions", "IDMappingOptions", "Type"):  # fmt: skip
        assert ours[key] == theirs[key], key
    # a working container from it: the same view (but its own ID and name)
    for tool in (build, buildah):
        tool.ok("from", IMAGE)
    ours, theirs = both(build, buildah, lambda t: json.loads(
        t.ok("inspect", "busybox-working-container")))  # fmt: skip
    for key in ("OCIv1", "Docker", "FromImage", "FromImageID", "Container", "History"):
        assert ours[key] == theirs[key], key
    assert sorted(ours["ImageAnnotations"]) == sorted(theirs["ImageAnnotations"])
    name = "org.opencontainers.image.base.name"
    assert ours["ImageAnnotations"][name] == theirs["ImageAnnotations"][name]


def test_config_annotations_reach_the_manifest(build: Build, buildah: Buildah,
                                               tmp_path: Path) -> None:  # fmt: skip
    """`config --annotation` K=V / K / K- as buildah: shown by inspect, written by commit."""

    def annotations(tool: Tool) -> tuple[str, dict[str, str]]:
        cid = tool.ok("from", IMAGE).strip()
        tool.ok("config", "--annotation", "a=b", "--annotation", "c", "--annotation", "d=e", cid)
        tool.ok("config", "--annotation", "d-", cid)
        shown = tool.ok("inspect", "--format", "{{.ImageAnnotations}}", cid)
        layout = tmp_path / f"oci-{type(tool).__name__}"
        tool.ok("commit", "-q", cid, f"oci:{layout}:x")
        index = json.loads((layout / "index.json").read_text())
        digest = index["manifests"][0]["digest"].split(":")[1]
        manifest = json.loads((layout / "blobs/sha256" / digest).read_text())
        tool.ok("rm", cid)
        return shown, manifest.get("annotations")

    ours, theirs = both(build, buildah, annotations)
    assert ours[1]["a"] == "b" and ours[1]["c"] == "" and "d" not in ours[1]
    assert ours[1].keys() == theirs[1].keys()
    assert ours[0] == theirs[0].replace(theirs[1][BASE_DIGEST], ours[1][BASE_DIGEST])


BASE_DIGEST = "org.opencontainers.image.base.digest"
