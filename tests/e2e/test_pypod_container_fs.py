"""`pypod cp/diff/export/commit/mount/umount/port` as users type them, compared with podman 4.3.

Both tools get the same busybox image (one tarball, `import`ed) and run the same command
sequences; what is compared is what a user sees: exit codes, error lines, stdout, the files on
both sides (names, types, modes, owners, bytes) and tar streams.  podman runs on a private
store and configuration (MACHINE.md) with runc.
"""

from __future__ import annotations

import io
import json
import os
import pty
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN
from tests.engine_support import make_busybox_tar, unmount_below
from tests.podman_support import private_store_cleanup, private_store_env, write_private_store

pytestmark = [pytest.mark.root]

PYPOD = str(BIN / "pypod")


class Tool:
    """pypod or podman on a private store; calls return CompletedProcess with bytes."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.env = env

    def __call__(self, *args: str, input: bytes = b"", timeout: float = 60
                 ) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
        # files, not pipes: a detached container's monitor must not hold our pipes open
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.run([*self.argv, *args], input=input, stdout=out, stderr=err,
                                  env=self.env, timeout=timeout, check=False)  # fmt: skip
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), err.read())

    def ok(self, *args: str, input: bytes = b"") -> str:
        proc = self(*args, input=input)
        assert proc.returncode == 0, f"{args}: rc={proc.returncode}\n{proc.stderr.decode()}"
        return proc.stdout.decode()


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_busybox_tar(tmp_path_factory.mktemp("bbtar"))


@pytest.fixture
def pypod(tmp_path: Path, busybox_tar: Path) -> Iterator[Tool]:
    store = tmp_path / "pypod"
    tool = Tool([PYPOD, "--root", str(store / "root"), "--runroot", str(store / "run")])
    tool.ok("import", "-q", str(busybox_tar), "localhost/busybox")
    yield tool
    tool("rm", "--all", "--force", "--time", "0")
    unmount_below(tmp_path)


@pytest.fixture(scope="session")
def podman_session(busybox_tar: Path) -> Iterator[Tool]:
    exe = shutil.which("podman")
    if exe is None:
        pytest.skip("podman is not installed (apt-get install podman): nothing to compare with")
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed (apt-get install runc): podman needs it here")
    store = Path(tempfile.mkdtemp(prefix="pfs", dir="/tmp"))  # podman: a short runroot
    write_private_store(store)
    tool = Tool([exe, "--root", str(store / "root"), "--runroot", str(store / "run"),
                 "--tmpdir", str(store / "tmp")], private_store_env(store))  # fmt: skip
    with private_store_cleanup(store, tool):
        tool.ok("import", "-q", str(busybox_tar), "localhost/busybox")
        yield tool


@pytest.fixture
def podman(podman_session: Tool) -> Iterator[Tool]:
    yield podman_session
    podman_session("rm", "--all", "--force", "--time", "0")
    for line in podman_session.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split():
        if line != "localhost/busybox:latest":
            podman_session("rmi", "--force", line)


def _error(proc: subprocess.CompletedProcess[bytes], work: Path) -> tuple[int, str]:
    """(exit code, the Error: line with the work directory replaced)."""
    lines = [ln for ln in proc.stderr.decode().splitlines() if ln.startswith("Error:")]
    return proc.returncode, (lines[0] if lines else "").replace(str(work), "WORK")


def _tree(path: Path) -> dict[str, tuple[str, int, int, int, bytes | str]]:
    out: dict[str, tuple[str, int, int, int, bytes | str]] = {}
    for p in sorted(path.rglob("*")):
        st = p.lstat()
        rel = str(p.relative_to(path))
        if p.is_symlink():
            out[rel] = ("l", 0, st.st_uid, st.st_gid, os.readlink(p))
        elif p.is_dir():
            out[rel] = ("d", st.st_mode & 0o7777, st.st_uid, st.st_gid, b"")
        else:
            out[rel] = ("f", st.st_mode & 0o7777, st.st_uid, st.st_gid, p.read_bytes())
    return out


def _tar_list(data: bytes) -> list[tuple[str, bytes, int, int, int, int, str]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return [(m.name, m.type, m.mode & 0o7777, m.uid, m.gid, m.size, m.linkname) for m in tf]


def _host_tree(work: Path) -> Path:
    src = work / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a").write_bytes(b"A" * 5000)
    (src / "sub" / "b").write_bytes(b"B\n")
    (src / "link").symlink_to("/etc/shadow")
    os.chmod(src / "a", 0o640)
    for p in (src, src / "a", src / "sub", src / "sub" / "b"):
        os.chown(p, 1234, 4321)
    (work / "file").write_bytes(b"F\n")
    (work / "out").mkdir()
    (work / "out" / "existing-file").write_bytes(b"old\n")
    return work


Scenario = tuple[list[tuple[int, str]], dict[str, Any], dict[str, Any], object]


def _cp_scenario(tool: Tool, work: Path) -> Scenario:
    _host_tree(work)
    w = str(work)
    tool.ok("create", "--name", "cpc", "--user", "55:66", "busybox", "sh")
    src_tar = subprocess.run(["tar", "-C", f"{w}/src", "-cf", "-", "a", "sub"], check=True,
                             capture_output=True).stdout  # fmt: skip
    steps: list[tuple[tuple[str, ...], bytes]] = [
        (("cp", f"{w}/src", "cpc:/srcdir"), b""),
        (("cp", f"{w}/src/.", "cpc:/dotdir"), b""),
        (("cp", f"{w}/src", "cpc:/tmp"), b""),
        (("cp", f"{w}/file", "cpc:/file1"), b""),
        (("cp", f"{w}/file", "cpc:/tmp/"), b""),
        (("cp", "--archive=false", f"{w}/file", "cpc:/noarchive"), b""),
        (("cp", "--archive=false", f"{w}/src", "cpc:/srcnoarchive"), b""),
        (("cp", "-", "cpc:/tmp"), src_tar),
        (("cp", "cpc:/srcdir", f"{w}/out/new"), b""),
        (("cp", "cpc:/srcdir/.", f"{w}/out/dot"), b""),
        (("cp", "cpc:/srcdir", f"{w}/out"), b""),
        (("cp", "cpc:/etc/passwd", f"{w}/out/"), b""),
        (("cp", "cpc:/file1", f"{w}/out/existing-file"), b""),
        (("cp", "cpc:/", f"{w}/out/root"), b""),
        # errors
        (("cp", "cpc:/nonexist", f"{w}/out/x"), b""),
        (("cp", "cpc:/etc/passwd", "/nonexist/dir/x"), b""),
        (("cp", "cpc:/etc/passwd", f"{w}/out/nodir/"), b""),
        (("cp", "cpc:/etc", f"{w}/out/existing-file"), b""),
        (("cp", f"{w}/nofile", "cpc:/x"), b""),
        (("cp", f"{w}/file", "cpc:/nonexist/x"), b""),
        (("cp", f"{w}/file", "cpc:/newdir/"), b""),
        (("cp", f"{w}/src", "cpc:/file1"), b""),
        (("cp", "-", "cpc:/fromstdin"), src_tar),
        (("cp", "-", "cpc:/tmp"), b"not a tar\n" * 50),
        (("cp", "cpc:", "x"), b""),
        (("cp", "one"), b""),
    ]
    results = [_error(tool(*args, input=data), work) for args, data in steps]
    mountpoint = Path(tool.ok("mount", "cpc").strip())
    try:
        inside = {d: _tree(mountpoint / d) for d in ("srcdir", "dotdir", "tmp", "srcnoarchive")}
        for f in ("file1", "noarchive"):
            st = (mountpoint / f).stat()
            inside[f] = {"": ("f", st.st_mode & 0o7777, st.st_uid, st.st_gid,
                              (mountpoint / f).read_bytes())}  # fmt: skip
    finally:
        tool.ok("umount", "cpc")
    host = _tree(work / "out")
    # out/root: its names only (its mode is the container root's: containers/storage makes
    # every layer root 0555 whatever the tar says, pypod's store keeps the tar's)
    host = {k: v for k, v in host.items() if k != "root" and not k.startswith("root/")}
    root_names = sorted(p.name for p in (work / "out" / "root").iterdir())
    stream = tool("cp", "cpc:/srcdir", "-")
    assert stream.returncode == 0, stream.stderr
    return results, inside, {"host": host, "root": root_names}, _tar_list(stream.stdout)


@pytest.mark.compat
def test_cp_matches_podman(pypod: Tool, podman: Tool, tmp_path: Path) -> None:
    ours = _cp_scenario(pypod, tmp_path / "pypod-work")
    theirs = _cp_scenario(podman, tmp_path / "podman-work")
    assert ours[0] == theirs[0]  # exit codes and error lines, step by step
    assert all(code == 0 for code, _ in ours[0][:14])
    assert ours[1] == theirs[1]  # the files in the container
    assert ours[2] == theirs[2]  # the files on the host
    assert ours[3] == theirs[3]  # the tar stream on stdout
    assert ours[1]["srcdir"]["a"] == ("f", 0o640, 55, 66, b"A" * 5000)
    assert ours[1]["srcnoarchive"]["a"] == ("f", 0o640, 1234, 4321, b"A" * 5000)


@pytest.mark.compat
def test_diff_matches_podman(pypod: Tool, podman: Tool) -> None:
    script = (
        "echo hi > /hello; mkdir -p /d/e; echo x > /d/e/f; rm /bin/ls; ln -s /etc /lnk; "
        "chown 5:6 /d/e/f; rm -rf /home; mkdir /home; touch /home/new"
    )
    outputs = []
    for tool in (pypod, podman):
        tool.ok("run", "--name", "dx", "busybox", "sh", "-c", script)
        outputs.append((
            tool.ok("diff", "dx"),
            json.loads(tool.ok("diff", "--format", "json", "dx")),
            tool.ok("container", "diff", "--latest"),
            tool.ok("diff", "busybox"),
            sorted(tool.ok("diff", "dx", "busybox").splitlines()),  # podman's order is its own
            sorted(tool.ok("diff", "busybox", "dx").splitlines()),
            [(p.returncode, p.stderr.decode().splitlines()[-1].replace("podman", "pypod"))
             for p in (tool("diff", "--format", "xx", "dx"), tool("diff", "nosuch"),
                       tool("diff"))],
        ))  # fmt: skip
    text = outputs[0][0]
    assert "D /bin/ls\n" in text and "A /hello\n" in text and "D /home\n" in text
    assert "/etc/hosts" not in text  # the engine's own files are not listed
    between = outputs[0][4]
    assert "D /bin/ls" in between and "A /d/e/f" in between and "A /home/new" in between
    reverse = outputs[0][5]
    assert "A /bin/ls" in reverse and "D /d" in reverse and "D /d/e" not in reverse
    if "A /bin/busybox\n" in outputs[1][0]:
        # seen once on a fresh clone: podman listed the whole image as added (its naive diff
        # when it does not find the layer's parent), so there is nothing to compare with
        pytest.skip("podman's diff listed the image's own files as added")
    assert outputs[0] == outputs[1]


@pytest.mark.compat
def test_export_matches_podman(pypod: Tool, podman: Tool, tmp_path: Path) -> None:
    lists = []
    for tool in (pypod, podman):
        tool.ok("create", "--name", "ex", "busybox", "sh")
        (tmp_path / "f").write_bytes(b"exported\n")
        tool.ok("cp", str(tmp_path / "f"), "ex:/etc/f")
        out = tmp_path / "export.tar"
        tool.ok("export", "-o", str(out), "ex")
        piped = tool("export", "ex")
        assert piped.returncode == 0 and piped.stdout == out.read_bytes()
        lists.append(_tar_list(out.read_bytes()))
        with tarfile.open(out) as tf:
            f = tf.extractfile("etc/f")
            assert f is not None and f.read() == b"exported\n"
        assert tool.ok("mount") == ""  # mounted for the export only
        refused = _export_to_terminal(tool)
        assert refused == (125, "Error: refusing to export to terminal. Use -o flag or redirect")
        assert _error(tool("export"), tmp_path) == (125, "Error: accepts 1 arg(s), received 0")
    assert lists[0] == lists[1]


def _export_to_terminal(tool: Tool) -> tuple[int, str]:
    main, sub = pty.openpty()
    try:
        proc = subprocess.run([*tool.argv, "export", "ex"], stdout=sub, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, env=tool.env, timeout=60,
                              check=False)  # fmt: skip
    finally:
        os.close(sub)
        os.close(main)
    return proc.returncode, proc.stderr.decode().strip().splitlines()[-1]


_CHANGES = (
    "-c", 'CMD ["/bin/cat", "/hello"]', "-c", "EXPOSE 8080", "-c", "LABEL k=v",
    "-c", "STOPSIGNAL SIGINT", "-c", "WORKDIR /w", "-c", "USER nobody", "-c", "VOLUME /vol",
    "-c", "ENV A=1",
)  # fmt: skip


@pytest.mark.compat
def test_commit_matches_podman(pypod: Tool, podman: Tool) -> None:
    seen = []
    for tool in (pypod, podman):
        tool.ok("run", "--name", "cm", "busybox", "sh", "-c", "echo hi > /hello")
        proc = tool("commit", "-a", "Me <me@x>", *_CHANGES, "cm", "committed")
        assert proc.returncode == 0, proc.stderr
        image_id = proc.stdout.decode().strip()
        assert re.fullmatch(r"[0-9a-f]{64}", image_id)
        progress = proc.stderr.decode().splitlines()
        assert progress[0] == "Getting image source signatures"
        assert progress[-2:] == ["Writing manifest to image destination", "Storing signatures"]
        info = json.loads(tool.ok("image", "inspect", "committed"))[0]
        assert info["Id"] == image_id and info["RepoTags"] == ["localhost/committed:latest"]
        cfg = info["Config"]
        env = [e for e in cfg.pop("Env") if not e.startswith(("container=", "TERM="))]
        history = [{k: v for k, v in h.items() if k != "created"} for h in info["History"]]
        quiet = tool("commit", "-q", "-f", "docker", "-m", "msg", "cm", "other")
        docker = json.loads(tool.ok("image", "inspect", "other"))[0]
        seen.append((
            cfg, env, history, len(info["RootFS"]["Layers"]), info["Author"],
            info["ManifestType"], docker["ManifestType"], docker["Comment"],
            quiet.returncode, len(quiet.stdout.decode().split()),
            _error(tool("commit", "-m", "x", "cm", "y"), Path("/")),
            _error(tool("commit"), Path("/")),
            _error(tool("commit", "nosuch", "y"), Path("/")),
        ))  # fmt: skip
    assert seen[0] == seen[1]
    assert pypod("commit", "-q", "cm", "again").stderr == b""  # -q: no progress
    # the new image runs (its CMD, USER, WORKDIR), and has the container's files
    assert pypod.ok("run", "--rm", "committed") == "hi\n"
    assert pypod.ok("run", "--rm", "committed", "sh", "-c", "id -u; pwd") == "65534\n/w\n"


def test_commit_cli(pypod: Tool, tmp_path: Path) -> None:
    pypod.ok("create", "--name", "c", "busybox", "sh")
    (tmp_path / "f").write_bytes(b"payload\n")
    pypod.ok("cp", str(tmp_path / "f"), "c:/payload")
    iid = tmp_path / "iid"
    proc = pypod("commit", "-q", "--iidfile", str(iid), "c")
    assert proc.returncode == 0 and proc.stderr == b""
    image_id = proc.stdout.decode().strip()
    assert iid.read_text() == image_id
    listed = pypod.ok("images", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}").splitlines()
    assert f"{image_id[:12]} <none>:<none>" in listed
    pypod.ok("commit", "-q", "--squash", "c", "squashed")
    assert len(json.loads(pypod.ok("image", "inspect", "squashed"))[0]["RootFS"]["Layers"]) == 1
    assert pypod.ok("run", "--rm", "squashed", "cat", "/payload") == "payload\n"


# --- mount / umount / port ------------------------------------------------------------------------
def test_mount_and_umount_cli(pypod: Tool, tmp_path: Path) -> None:
    a = pypod.ok("create", "--name", "a", "busybox", "sh").strip()
    b = pypod.ok("create", "--name", "b", "busybox", "sh").strip()
    assert pypod.ok("mount") == ""
    path_a = pypod.ok("mount", "a").strip()
    assert Path(path_a, "bin", "busybox").exists()
    assert pypod.ok("mount", "a", "b").splitlines()[0] == path_a
    path_b = pypod.ok("mount").splitlines()[1].split()[1]
    assert pypod.ok("mount").splitlines() == [f"{a[:12]}  {path_a}", f"{b[:12]}  {path_b}"]
    assert pypod.ok("mount", "--no-trunc").splitlines()[0] == f"{a}  {path_a}"
    doc = json.loads(pypod.ok("mount", "--format", "json"))
    assert doc == [{"id": a, "Names": ["a"], "mountpoint": path_a},
                   {"id": b, "Names": ["b"], "mountpoint": path_b}]  # fmt: skip
    assert pypod.ok("mount", "--format", "json").startswith('[\n {\n  "id"')  # podman's indent
    assert pypod.ok("umount", "a") == "a\n"  # a was mounted twice: still mounted
    assert [ln.split()[0] for ln in pypod.ok("mount").splitlines()] == [a[:12], b[:12]]
    assert pypod.ok("unmount", "a") == "a\n"
    assert pypod.ok("container", "umount", "a") == "a\n"  # not mounted: no error
    assert pypod.ok("mount").splitlines() == [f"{b[:12]}  {path_b}"]
    assert pypod.ok("umount", "--all") == f"{b}\n"
    assert pypod.ok("mount") == ""
    assert pypod("mount", "--format", "xx").returncode == 125
    missing = pypod("umount", "nosuch")
    assert missing.returncode == 125 and b'no container with name or ID "nosuch"' in missing.stderr
    assert _error(pypod("umount"), tmp_path) == (
        125,
        "Error: you must provide at least one name or id",
    )

    # a running container stays mounted whatever umount is asked
    vol = tmp_path / "vol"
    vol.mkdir()
    run = pypod.ok("run", "-d", "--name", "r", "-v", f"{vol}:/data", "busybox", "sleep", "1000")
    rid = run.strip()
    path_r = pypod.ok("mount", "r").strip()
    assert pypod.ok("umount", "r") == "r\n"
    assert pypod.ok("umount", "-f", "r") == "r\n"
    assert pypod.ok("mount").splitlines() == [f"{rid[:12]}  {path_r}"]
    assert os.path.ismount(path_r)
    pypod.ok("stop", "-t", "0", "r")
    assert pypod.ok("mount") == ""


def test_cp_running_container(pypod: Tool, tmp_path: Path) -> None:
    """A running container is seen as it sees itself: its volume is where it mounted it."""
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "v").write_text("volfile\n")
    pypod.ok("run", "-d", "--name", "r", "-v", f"{vol}:/data", "busybox", "sleep", "1000")
    (tmp_path / "hin").write_text("hostin\n")
    pypod.ok("cp", str(tmp_path / "hin"), "r:/data/")
    assert (vol / "hin").read_text() == "hostin\n"
    pypod.ok("cp", "r:/data/v", str(tmp_path / "vcopy"))
    assert (tmp_path / "vcopy").read_text() == "volfile\n"
    pypod.ok("exec", "r", "sh", "-c", "echo inside > /tmp/t")
    stream = pypod("cp", "r:/tmp/t", "-")
    with tarfile.open(fileobj=io.BytesIO(stream.stdout)) as tf:
        f = tf.extractfile("t")
        assert f is not None and f.read() == b"inside\n"
    pypod.ok("cp", str(tmp_path / "hin"), "r:/hin")
    assert pypod.ok("exec", "r", "cat", "/hin", "/data/hin") == "hostin\nhostin\n"
    assert "A /hin" in pypod.ok("diff", "r").splitlines()
    image_id = pypod.ok("commit", "-q", "-p", "r", "fromrunning").strip()
    # unpaused (podman 4.3's {{.State}} in a template is the status text)
    assert pypod.ok("ps", "--format", "{{.Names}} {{.State}}").startswith("r Up ")
    assert image_id
    pypod.ok("stop", "-t", "0", "r")
    pypod.ok("cp", str(tmp_path / "hin"), "r:/data/hin2")  # stopped: still the volume
    assert (vol / "hin2").read_text() == "hostin\n"
    assert pypod.ok("mount") == ""


def test_cp_named_volumes_of_stopped_container(pypod: Tool, tmp_path: Path) -> None:
    pypod.ok("volume", "create", "plain")
    pypod.ok("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "tv")
    pypod.ok("create", "--name", "cv", "-v", "plain:/p", "-v", "tv:/t", "busybox", "sh")
    (tmp_path / "f").write_text("f\n")
    pypod.ok("cp", str(tmp_path / "f"), "cv:/p/")
    data = Path(pypod.ok("volume", "inspect", "plain", "--format", "{{.Mountpoint}}").strip())
    assert (data / "f").read_text() == "f\n"
    # a tmpfs volume has no files while no container runs: refused (podman writes into the
    # directory the tmpfs will hide, where the container never sees it)
    code, line = _error(pypod("cp", str(tmp_path / "f"), "cv:/t/"), tmp_path)
    assert (code, line.split(":")[0:2]) == (
        125,
        ["Error", " volume tv is not mounted, cannot copy into it"],
    )
    assert pypod.ok("mount") == ""


@pytest.mark.compat
def test_port_matches_podman(pypod: Tool, podman: Tool) -> None:
    seen = []
    for tool in (pypod, podman):
        tool.ok("create", "--name", "p", "busybox", "sh")
        tool.ok("run", "-d", "--name", "pr", "busybox", "sleep", "1000")
        runs = [tool(*args) for args in (
            ("port", "p"), ("port", "pr"), ("port", "pr", "80"), ("port", "-a"),
            ("port", "-l"), ("port",), ("port", "pr", "80/tcp/x"), ("port", "pr", "abc"),
            ("port", "pr", "1", "2"), ("port", "nosuch"),
        )]  # fmt: skip
        seen.append([(p.returncode, p.stdout, p.stderr.decode().replace("podman", "pypod"))
                     for p in runs])  # fmt: skip
    assert seen[0] == seen[1]


def test_port_lines_format() -> None:
    from pypod.cli.engine.container_fs import port_lines

    ports = (("", 8080, 80, "tcp", 1), ("127.0.0.1", 9000, 53, "tcp,udp", 2))
    assert port_lines(ports, None) == [
        "80/tcp -> 0.0.0.0:8080",
        "53/tcp -> 127.0.0.1:9000",
        "54/tcp -> 127.0.0.1:9001",
        "53/udp -> 127.0.0.1:9000",
        "54/udp -> 127.0.0.1:9001",
    ]
    assert port_lines(ports, (54, "udp")) == ["127.0.0.1:9001"]
    assert port_lines(ports, (81, "tcp")) is None
