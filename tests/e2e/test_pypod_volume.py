"""`pypod volume ...` as users type it, and volumes used by containers (`run -v NAME:/dst`)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BIN
from tests.image_fixtures import build_image, busybox_layer, context, write_image

pytestmark = [pytest.mark.root]

PYPOD = str(BIN / "pypod")


class Pypod:
    def __init__(self, store: Path) -> None:
        self.store = store

    def __call__(self, *args: str, input: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PYPOD, "--root", str(self.store / "root"), "--runroot", str(self.store / "run"),
             *args],
            input=input, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    def ok(self, *args: str, input: str = "") -> str:
        proc = self(*args, input=input)
        assert proc.returncode == 0, f"{args}: rc={proc.returncode}\n{proc.stderr}{proc.stdout}"
        return proc.stdout

    def fails(self, code: int, *args: str) -> str:
        proc = self(*args)
        assert proc.returncode == code, f"{args}: rc={proc.returncode}\n{proc.stderr}"
        return proc.stderr


def _unmount_below(path: Path) -> None:
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f]
    for m in reversed(mounts):
        if m.startswith(str(path)):
            subprocess.run(["umount", "-l", m], check=False)


@pytest.fixture
def pypod(tmp_path: Path) -> Iterator[Pypod]:
    p = Pypod(tmp_path / "pypod")
    yield p
    for cid in p("ps", "-a", "-q").stdout.split():
        p("rm", "-f", cid)
    _unmount_below(tmp_path)


@pytest.fixture
def busybox_image(pypod: Pypod, tmp_path: Path, busybox: str) -> str:
    ctx = context(pypod.store / "root", pypod.store / "run", pypod.store / "tmp")
    write_image(ctx, "busybox", build_image([busybox_layer(tmp_path)]))
    return "busybox"


def _table(text: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()]


def test_create_ls_inspect_exists(pypod: Pypod) -> None:
    assert pypod.ok("volume", "ls") == ""  # no volume: not even a header, as podman
    anon = pypod.ok("volume", "create").strip()
    assert re.fullmatch(r"[0-9a-f]{64}", anon)
    assert pypod.ok("volume", "create", "data") == "data\n"
    assert pypod.ok("volume", "create", "-l", "a=b", "--label", "c", "-o", "uid=1000",
                    "web") == "web\n"  # fmt: skip
    assert "volume with name data already exists: volume already exists" in pypod.fails(
        125, "volume", "create", "data"
    )
    assert pypod.ok("volume", "create", "--ignore", "data") == "data\n"

    names = sorted([anon, "data", "web"])  # listed by name
    assert _table(pypod.ok("volume", "ls")) == [
        ["DRIVER", "VOLUME NAME"], *(["local", n] for n in names)
    ]  # fmt: skip
    assert pypod.ok("volume", "ls", "-q") == "".join(n + "\n" for n in names)
    assert pypod.ok("volume", "list", "--noheading").splitlines()[0].split() == [
        "local", names[0]
    ]  # fmt: skip
    assert pypod.ok("volume", "ls", "--format", "{{.Name}}={{.Labels}}", "-f", "label=a") == (
        "web=map[a:b c:]\n"
    )
    assert _table(pypod.ok("volume", "ls", "--format", "table {{.Name}} {{.Scope}}",
                           "--filter", "name=dat")) == [["VOLUME NAME", "SCOPE"],
                                                        ["data", "local"]]  # fmt: skip
    listed = json.loads(pypod.ok("volume", "ls", "--format", "json"))
    assert [v["Name"] for v in listed] == names
    web = listed[names.index("web")]
    assert web["Options"] == {"uid": "1000"} and web["UID"] == 1000
    assert "filter input must be in the form of filter=value: foo is invalid" in pypod.fails(
        125, "volume", "ls", "--filter", "foo"
    )
    assert '"foo" is an invalid volume filter' in pypod.fails(
        125, "volume", "ls", "--filter", "foo=bar"
    )

    (info,) = json.loads(pypod.ok("volume", "inspect", "data"))
    assert info["Name"] == "data" and info["Driver"] == "local"
    assert info["Mountpoint"] == str(pypod.store / "root" / "volumes" / "data" / "_data")
    assert Path(info["Mountpoint"]).is_dir()
    assert pypod.ok("volume", "inspect", "--format", "{{.Name}} {{.Scope}} {{.Anonymous}}",
                    anon) == f"{anon} local false\n"  # fmt: skip
    assert len(json.loads(pypod.ok("volume", "inspect", "--all"))) == 3
    proc = pypod("volume", "inspect", "data", "nosuch")
    assert proc.returncode == 125 and json.loads(proc.stdout)[0]["Name"] == "data"
    assert proc.stderr == "Error: inspecting object: no such volume nosuch\n"
    assert "provide one or more volume names or use --all" in pypod.fails(125, "volume", "inspect")

    assert pypod("volume", "exists", "data").returncode == 0
    assert pypod("volume", "exists", "nosuch").returncode == 1


def test_rm_and_prune(pypod: Pypod) -> None:
    for name in ("a", "b", "c", "keep"):
        pypod.ok("volume", "create", *(["-l", "keep=yes"] if name == "keep" else []), name)
    assert pypod.ok("volume", "rm", "a") == "a\n"
    proc = pypod("volume", "rm", "b", "nosuch", "c")
    assert proc.returncode == 1 and proc.stdout == "b\nc\n"
    assert proc.stderr == 'Error: no volume with name "nosuch" found: no such volume\n'
    assert "choose either one or more volumes or all" in pypod.fails(125, "volume", "rm")
    pypod.ok("volume", "create", "d")
    out = pypod.ok("volume", "prune", input="n\n")
    assert out == (
        "WARNING! This will remove all volumes not used by at least one container. The "
        "following volumes will be removed:\nd\nkeep\nAre you sure you want to continue? [y/N] "
    )
    assert pypod.ok("volume", "ls", "-q") == "d\nkeep\n"
    assert pypod.ok("volume", "prune", "-f", "--filter", "label=keep=yes") == "keep\n"
    assert pypod.ok("volume", "prune", input="y\n").endswith("[y/N] d\n")
    assert pypod.ok("volume", "prune", input="y\n").endswith("No dangling volumes found\n")
    assert pypod.ok("volume", "ls") == ""


def test_volumes_used_by_containers(pypod: Pypod, busybox_image: str, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    out = pypod.ok("run", "--rm", "-v", "data:/data", "-v", f"{host}:/host:Z", busybox_image,
                   "sh", "-c", "echo hi > /data/f; echo there > /host/g; cat /data/f")  # fmt: skip
    assert out == "hi\n"
    assert (host / "g").read_text() == "there\n"
    (info,) = json.loads(pypod.ok("volume", "inspect", "data"))
    assert Path(info["Mountpoint"], "f").read_text() == "hi\n"
    # a second container sees the data; read-only when asked
    proc = pypod("run", "--rm", "-v", "data:/data:ro", busybox_image, "sh", "-c",
                 "cat /data/f; touch /data/x")  # fmt: skip
    assert proc.stdout == "hi\n" and proc.returncode != 0

    cid = pypod.ok("create", "--name", "user", "-v", "data:/data", busybox_image, "true").strip()
    assert pypod.ok("volume", "ls", "-q", "--filter", "dangling=false") == "data\n"
    assert pypod.ok("volume", "prune", "-f") == ""
    err = pypod.fails(2, "volume", "rm", "data")
    assert err == (
        f"Error: volume data is being used by the following container(s): {cid}: volume is "
        "being used\n"
    )
    assert pypod.ok("volume", "rm", "-f", "data") == "data\n"
    assert pypod.ok("ps", "-a", "-q") == ""
    assert pypod.ok("volume", "ls") == ""


def test_run_flag_errors_exit_125(pypod: Pypod, busybox_image: str) -> None:
    assert pypod.fails(125, "run", "--foo", busybox_image, "true").startswith(
        "Error: unknown flag: --foo\n"
    )
    assert pypod.fails(125, "run", "-v", "/nonexist:/x", busybox_image, "true") == (
        "Error: statfs /nonexist: no such file or directory\n"
    )
    assert pypod.fails(125, "create", "-m", "1x", busybox_image, "true") == (
        "Error: invalid value for memory: invalid size: '1x'\n"
    )
    assert pypod.fails(125, "run", "--restart", "always", "--rm", busybox_image, "true") == (
        'Error: the --rm option conflicts with --restart, when the restartPolicy is not "" and '
        '"no"\n'
    )


def test_anonymous_volumes(pypod: Pypod, busybox_image: str) -> None:
    cid = pypod.ok("create", "-v", "/scratch", busybox_image, "true").strip()
    (info,) = json.loads(pypod.ok("volume", "inspect", "--all"))
    assert re.fullmatch(r"[0-9a-f]{64}", info["Name"]) and info["Anonymous"] is True
    assert pypod.ok("volume", "ls", "-q", "--filter", "dangling=true") == ""
    pypod.ok("rm", "--volumes", cid)
    assert pypod.ok("volume", "ls", "-q") == ""
