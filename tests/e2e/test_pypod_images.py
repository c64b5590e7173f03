"""`pypod` image commands as users type them, compared with podman 4.3 where practical."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BIN
from tests.image_fixtures import build_image, busybox_layer, context, small_layer, write_image
from tests.podman_support import podman_for_images

pytestmark = [pytest.mark.root]

PYPOD = str(BIN / "pypod")


class Pypod:
    def __init__(self, store: Path) -> None:
        self.store = store

    @property
    def ctx(self):  # type: ignore[no-untyped-def]
        return context(self.store / "root", self.store / "run", self.store / "tmp")

    def argv(self, *args: str) -> list[str]:
        return [PYPOD, "--root", str(self.store / "root"), "--runroot", str(self.store / "run"),
                *args]  # fmt: skip

    def __call__(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )  # fmt: skip

    def ok(self, *args: str, input: str | None = None) -> str:
        proc = self(*args, input=input)
        assert proc.returncode == 0, f"{args}: rc={proc.returncode}\n{proc.stderr}{proc.stdout}"
        return proc.stdout


def _unmount_below(path: Path) -> None:
    with open("/proc/self/mounts") as f:
        mounts = [line.split()[1] for line in f]
    for m in reversed(mounts):
        if m.startswith(str(path)):
            subprocess.run(["umount", "-l", m], check=False)


@pytest.fixture
def pypod(tmp_path: Path, busybox: str) -> Iterator[Pypod]:
    p = Pypod(tmp_path / "pypod")
    yield p
    _unmount_below(tmp_path)


@pytest.fixture
def with_images(pypod: Pypod, tmp_path: Path) -> dict[str, str]:
    """busybox (docker.io/library/busybox:latest) and quay.io/x/app:1.0 on top of it."""
    base = busybox_layer(tmp_path)
    bb = build_image([base])
    app = build_image([base, small_layer(tmp_path, "app", "app\n")], labels={"app": "yes"})
    write_image(pypod.ctx, "busybox", bb)
    write_image(pypod.ctx, "quay.io/x/app:1.0", app)
    return {"busybox": bb.id, "app": app.id}


def _table(text: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()]


def test_images_table_and_formats(pypod: Pypod, with_images: dict[str, str]) -> None:
    rows = _table(pypod.ok("images"))
    assert rows[0] == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    got = {(r[0], r[1]): r for r in rows[1:]}
    bb = got[("docker.io/library/busybox", "latest")]
    assert bb[2] == with_images["busybox"][:12]
    assert re.fullmatch(r"\d+ years ago", bb[3])
    assert re.fullmatch(r"[\d.]+ (MB|kB)", bb[4])
    assert ("quay.io/x/app", "1.0") in got
    # the same column layout as podman: tabwriter(minwidth 12, padding 2)
    header = pypod.ok("images").splitlines()[0]
    assert header.startswith("REPOSITORY                 TAG         IMAGE ID      CREATED")
    out = pypod.ok("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert sorted(out.split()) == ["docker.io/library/busybox:latest", "quay.io/x/app:1.0"]
    out = pypod.ok("image", "ls", "--format", "table {{.ID}}\\t{{.Tag}}")
    assert _table(out)[0] == ["IMAGE ID", "TAG"]
    assert sorted(pypod.ok("images", "-q").split()) == sorted(i[:12] for i in with_images.values())
    no_trunc = pypod.ok("images", "-q", "--no-trunc").split()
    assert sorted(no_trunc) == sorted("sha256:" + i for i in with_images.values())
    rows = _table(pypod.ok("images", "--digests"))
    assert rows[0] == ["REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "SIZE"]
    assert all(r[2].startswith("sha256:") for r in rows[1:])
    data = json.loads(pypod.ok("images", "--format", "json"))
    assert {d["Id"] for d in data} == set(with_images.values())
    assert set(data[0]) == {
        "Id",
        "ParentId",
        "RepoTags",
        "RepoDigests",
        "Size",
        "SharedSize",
        "VirtualSize",
        "Labels",
        "Containers",
        "Names",
        "Digest",
        "History",
        "Created",
        "CreatedAt",
    }  # fmt: skip  (podman 4.3's keys)
    app = next(d for d in data if d["Id"] == with_images["app"])
    assert app["Labels"] == {"app": "yes"} and app["ParentId"] == with_images["busybox"]
    assert pypod.ok("images", "--format", "{{json .Names}}", "app").strip() == (
        '["quay.io/x/app:1.0"]'
    )
    bad = pypod("images", "--format", "{{.Nope}}")
    assert bad.returncode == 125 and "can't evaluate field Nope" in bad.stderr


def test_tag_untag_rmi(pypod: Pypod, with_images: dict[str, str]) -> None:
    pypod.ok("tag", "busybox", "mine", "quay.io/me/bb:2")
    names = pypod.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    assert {"localhost/mine:latest", "quay.io/me/bb:2"} <= set(names)
    proc = pypod("rmi", with_images["busybox"][:12])
    assert proc.returncode == 2 and "by ID with more than one tag" in proc.stderr
    assert pypod.ok("rmi", "mine") == "Untagged: localhost/mine:latest\n"
    pypod.ok("untag", "quay.io/me/bb:2", "quay.io/me/bb:2")
    pypod.ok("untag", "busybox")
    # untagged, and app builds on it: an intermediate image, shown with -a only
    assert "<none>" not in pypod.ok("images")
    assert "<none>" in pypod.ok("images", "-a")
    # the app image builds on busybox's layer: rmi removes only what nothing else uses
    out = pypod.ok("rmi", with_images["busybox"])
    assert out == f"Deleted: {with_images['busybox']}\n"
    out = pypod.ok("image", "rm", "quay.io/x/app:1.0")
    assert out == f"Untagged: quay.io/x/app:1.0\nDeleted: {with_images['app']}\n"
    assert pypod.ok("images", "-q") == ""


def test_rmi_all_and_errors(pypod: Pypod, with_images: dict[str, str]) -> None:
    proc = pypod("rmi", "nosuch")
    assert (proc.returncode, proc.stderr) == (1, "Error: nosuch: image not known\n")
    proc = pypod("rmi")
    assert proc.returncode == 125 and "image name or ID must be specified" in proc.stderr
    for args in (("tag", "nosuch", "x"), ("untag", "nosuch"), ("history", "nosuch")):
        proc = pypod(*args)
        assert (proc.returncode, proc.stderr) == (125, "Error: nosuch: image not known\n"), args
    out = pypod.ok("rmi", "-a")
    assert sorted(re.findall(r"Deleted: (\w+)", out)) == sorted(with_images.values())
    assert pypod.ok("images", "-a", "-q") == ""


def test_exists_inspect_history(pypod: Pypod, with_images: dict[str, str]) -> None:
    assert pypod("image", "exists", "busybox").returncode == 0
    proc = pypod("image", "exists", "nosuch")
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", "")
    data = json.loads(pypod.ok("image", "inspect", "quay.io/x/app:1.0"))
    assert len(data) == 1
    got = data[0]
    assert set(got) == {
        "Id",
        "Digest",
        "RepoTags",
        "RepoDigests",
        "Parent",
        "Comment",
        "Created",
        "Config",
        "Version",
        "Author",
        "Architecture",
        "Os",
        "Size",
        "VirtualSize",
        "GraphDriver",
        "RootFS",
        "Labels",
        "Annotations",
        "ManifestType",
        "User",
        "History",
        "NamesHistory",
    }  # fmt: skip  (podman 4.3's keys)
    assert got["Id"] == with_images["app"] and got["RepoTags"] == ["quay.io/x/app:1.0"]
    assert got["Config"]["Cmd"] == ["/bin/sh"] and got["Labels"] == {"app": "yes"}
    assert len(got["RootFS"]["Layers"]) == 2 and got["GraphDriver"]["Name"] == "overlay"
    assert pypod.ok("inspect", "--format", "{{.Id}} {{.Os}}", "busybox").strip() == (
        f"{with_images['busybox']} linux"
    )
    proc = pypod("inspect", "nosuch")
    assert proc.returncode == 125 and proc.stdout == "[]\n"
    assert proc.stderr == 'Error: inspecting object: no such object: "nosuch"\n'
    proc = pypod("image", "inspect", "nosuch")
    assert proc.stderr == "Error: inspecting object: nosuch: image not known\n"
    rows = _table(pypod.ok("history", "app:1.0"))
    assert rows[0] == ["ID", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    assert rows[1][0] == with_images["app"][:12] and rows[2][0] == "<missing>"
    assert rows[1][2].endswith("...") and len(rows[1][2]) == 45
    hist = json.loads(pypod.ok("image", "history", "--format", "json", "app:1.0"))
    assert [set(h) for h in hist] == [
        {"id", "created", "CreatedBy", "size", "comment", "Created"}
    ] * 2  # podman 4.3's keys
    assert pypod.ok("history", "-q", "--no-trunc", "busybox").split() == [with_images["busybox"]]


def test_prune_and_system_df(pypod: Pypod, with_images: dict[str, str]) -> None:
    rows = _table(pypod.ok("system", "df"))
    assert rows[0] == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert rows[1][:3] == ["Images", "2", "0"] and rows[1][4].endswith("(100%)")
    assert rows[2] == ["Containers", "0", "0", "0B", "0B (0%)"]
    assert rows[3] == ["Local Volumes", "0", "0", "0B", "0B (0%)"]
    assert pypod.ok("image", "prune", "-f") == ""  # nothing dangling
    pypod.ok("untag", "quay.io/x/app:1.0")
    proc = pypod("image", "prune")  # no answer on stdin: podman says EOF
    assert proc.returncode == 125 and proc.stderr == "Error: EOF\n"
    assert "WARNING! This command removes all dangling images." in proc.stdout
    assert pypod.ok("image", "prune", input="n\n").endswith("[y/N] ")
    out = pypod.ok("image", "prune", input="y\n")
    assert out.splitlines()[-1].endswith(with_images["app"])
    assert pypod.ok("image", "prune", "-a", "-f").split() == [with_images["busybox"]]


def test_global_flags_and_help(pypod: Pypod) -> None:
    proc = pypod("nosuch")
    assert proc.returncode == 125 and "unrecognized command" in proc.stderr
    assert "images" in pypod.ok("--help")
    proc = pypod("--storage-driver", "btrfs", "images")
    assert proc.returncode == 125
    assert pypod.ok("--log-level", "debug", "images").startswith("REPOSITORY")
    assert pypod.ok("images", "--storage-driver", "overlay").startswith("REPOSITORY")


@pytest.mark.compat
def test_columns_match_podman(tmp_path: Path, pypod: Pypod, with_images: dict[str, str]) -> None:
    """The same tarball imported by podman: same header lines and JSON keys."""
    with podman_for_images("overlay") as podman:
        subprocess.run(["tar", "-C", str(tmp_path / "rootfs"), "-cf", str(tmp_path / "r.tar"),
                        "."], check=True)  # fmt: skip
        podman("import", "-q", str(tmp_path / "r.tar"), "quay.io/x/app:1.0")
        for args in (("images",), ("images", "--digests"), ("system", "df"),
                     ("history", "quay.io/x/app:1.0")):  # fmt: skip
            ours, theirs = pypod.ok(*args).splitlines()[0], podman(*args).splitlines()[0]
            assert ours.split() == theirs.split(), args
        ours_keys = set(json.loads(pypod.ok("images", "--format", "json"))[0])
        assert ours_keys == set(json.loads(podman("images", "--format", "json"))[0])
        ours_keys = set(json.loads(pypod.ok("image", "inspect", "quay.io/x/app:1.0"))[0])
        assert ours_keys == set(json.loads(podman("image", "inspect", "quay.io/x/app:1.0"))[0])
        theirs_fmt = podman("images", "--format", "{{.Repository}}:{{.Tag}}")
        ours_fmt = pypod.ok("images", "--format", "{{.Repository}}:{{.Tag}}", "app")
        assert ours_fmt == theirs_fmt


def test_images_filter_sort_noheading(pypod: Pypod, with_images: dict[str, str]) -> None:
    def repos(*args: str) -> list[str]:
        return pypod.ok("images", "--format", "{{.Repository}}", *args).split()

    assert repos("--filter", "reference=app") == ["quay.io/x/app"]
    assert repos("--filter", "reference=docker.io/library/*") == ["docker.io/library/busybox"]
    assert repos("--filter", "label=app=yes") == ["quay.io/x/app"]
    assert repos("--filter", "label=app=no") == []
    assert repos("--filter", f"id={with_images['busybox'][:8]}") == ["docker.io/library/busybox"]
    assert repos("-f", "dangling=true") == []
    assert repos("--sort", "repository") == ["docker.io/library/busybox", "quay.io/x/app"]
    out = pypod.ok("images", "--noheading")
    assert len(out.splitlines()) == 2 and "REPOSITORY" not in out
    proc = pypod("images", "--filter", "bogus=1")
    assert proc.returncode == 125 and proc.stderr == 'Error: invalid image filter "bogus"\n'
    proc = pypod("images", "--sort", "nope")
    assert proc.returncode == 125 and "invalid option for --sort" in proc.stderr


def test_rmi_ignore_skips_missing_images(tmp_path: Path) -> None:
    """podman rmi --ignore: a missing image is neither printed nor an error."""
    root = ["--root", str(tmp_path / "root"), "--runroot", str(tmp_path / "run")]
    plain = subprocess.run([PYPOD, *root, "rmi", "nosuch"], capture_output=True, text=True)
    assert plain.returncode == 1 and "image not known" in plain.stderr
    ignored = subprocess.run(
        [PYPOD, *root, "rmi", "--ignore", "nosuch"], capture_output=True, text=True
    )
    assert ignored.returncode == 0 and ignored.stderr == ""


def test_system_df_verbose(pypod: Pypod, with_images: dict[str, str]) -> None:
    pypod.ok("tag", "busybox", "localhost/bb:2")
    out = pypod.ok("system", "df", "-v")
    sections = out.split("\n\n")
    assert sections[0] == "Images space usage:"
    images = _table(sections[1])
    assert images[0] == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE",
                         "UNIQUE SIZE", "CONTAINERS"]  # fmt: skip
    rows = {(r[0], r[1]): r for r in images[1:]}
    assert set(rows) == {("docker.io/library/busybox", "latest"), ("localhost/bb", "2"),
                         ("quay.io/x/app", "1.0")}  # fmt: skip
    bb, app = rows[("localhost/bb", "2")], rows[("quay.io/x/app", "1.0")]
    assert bb[2] == with_images["busybox"][:12] and re.fullmatch(r"\d+ years", bb[3])
    # app is built on busybox: busybox's bytes are all shared, app shares busybox's size
    assert bb[5] == bb[4] and bb[6] == "0B" and bb[7] == "0"
    assert app[5] == bb[4] and app[6] != "0B"
    assert sections[2] == "Containers space usage:"
    assert _table(sections[3]) == [["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES",
                                    "SIZE", "CREATED", "STATUS", "NAMES"]]  # fmt: skip
    assert sections[4] == "Local Volumes space usage:"
    assert _table(sections[5]) == [["VOLUME NAME", "LINKS", "SIZE"]]
    # the summary counts what -v lists, as podman does (one row per tag)
    summary = _table(pypod.ok("system", "df"))
    assert summary[1][:3] == ["Images", "3", "0"] and summary[1][4].endswith("(100%)")


def test_image_prune_filters(pypod: Pypod, tmp_path: Path) -> None:
    ids = {}
    for name, label in (("old", "keep=no"), ("kept", "keep=yes"), ("named", "keep=no")):
        layer = small_layer(tmp_path, name, name)
        image = build_image([layer], labels=dict([label.split("=")]))
        write_image(pypod.ctx, f"localhost/{name}:1", image)
        ids[name] = image.id
    pypod.ok("untag", "localhost/old:1")
    pypod.ok("untag", "localhost/kept:1")  # two dangling images, "named" is not
    assert pypod.ok("image", "prune", "-f", "--filter", "label=keep=yes").split() == [ids["kept"]]
    assert pypod.ok("image", "prune", "-f", "--filter", "until=2000-01-01").split() == []
    assert pypod.ok("image", "prune", "-f", "--filter", "until=1h").split() == [ids["old"]]
    assert pypod.ok("image", "prune", "-a", "-f", "--filter", "dangling=false",
                    "--filter", "label=keep").split() == [ids["named"]]  # fmt: skip
    for flt, message in (
        ("dangling=false", 'specifying "dangling" filter more than once with different values'),
        ("nosuch=1", 'unsupported image filter "nosuch"'),
        ("until=soon", 'failed to parse value as time or duration: "soon"'),
        ("novalue", "filter input must be in the form of filter=value: novalue is invalid"),
    ):
        proc = pypod("image", "prune", "-f", "--filter", flt)
        assert proc.returncode == 125 and message in proc.stderr, (flt, proc.stderr)


def test_build_steps_are_intermediate_not_dangling(pypod: Pypod, with_images: dict[str, str],
                                                   tmp_path: Path) -> None:  # fmt: skip
    """As libimage: an untagged image another image builds on (its top layer, or the layer
    below, with its history continued) is intermediate: hidden without -a, not dangling —
    also when the step added no layer (ENV, CMD), as podman shows a build's steps."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Containerfile").write_text('FROM busybox\nENV A=1\nRUN echo x > /x\nCMD ["sh"]\n')
    built = pypod.ok("build", "-q", "-t", "localhost/site", str(ctx)).strip()
    shown = pypod.ok("images", "--format", "{{.ID}} {{.Repository}}").split("\n")[:-1]
    assert sorted(shown) == sorted([f"{built[:12]} localhost/site",
                                    f"{with_images['busybox'][:12]} docker.io/library/busybox",
                                    f"{with_images['app'][:12]} quay.io/x/app"])  # fmt: skip
    every = pypod.ok("images", "-a", "--format", "{{.Repository}}").split()
    assert every.count("<none>") == 2  # the ENV and RUN steps
    assert pypod.ok("images", "-q", "--filter", "dangling=true") == ""
    pypod.ok("untag", "localhost/site")  # now the last step is dangling, the others not
    assert pypod.ok("images", "-q", "--no-trunc", "--filter", "dangling=true").split() == [
        f"sha256:{built}"]  # fmt: skip


def test_save_a_name_that_is_also_an_id_prefix(pypod: Pypod, with_images: dict[str, str],
                                               tmp_path: Path) -> None:  # fmt: skip
    """As podman: a name the image has wins over the id prefix it also is (an image named
    after the start of its own id, 1 in 256 for a two-letter name, kept its tag out once)."""
    import tarfile

    prefix = with_images["busybox"][:2]
    pypod.ok("tag", "busybox", prefix)
    pypod.ok("save", "-o", str(tmp_path / "a.tar"), prefix)
    with tarfile.open(tmp_path / "a.tar") as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == [f"localhost/{prefix}:latest"]
