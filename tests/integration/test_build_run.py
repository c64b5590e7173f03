"""A command in a build container (pypod.build.run): real namespaces, compared with buildah 1.28.

Most tests run `run_in_rootfs` on a busybox root filesystem; `test_run_in_builder_*` go through
a working container of the store (what a RUN step does); `test_buildah_*` run the same command
with `buildah run` (its own --root/--runroot, vfs) on an image of the same busybox root and
compare what the command sees.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pypod.build.run import RunOptions, run_in_rootfs
from pypod.config.etchosts import host_address, hosts_text
from pypod.errors import CannotInvoke, CommandNotFound, InvalidArgument
from pypod.testing import make_busybox_rootfs
from tests.podman_support import reference_env

pytestmark = pytest.mark.root

IMAGE_CONFIG = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}


def _mountinfo(below: Path) -> list[str]:
    """The mounts of this process at or below `below` (other tests mount elsewhere meanwhile)."""
    with open("/proc/self/mountinfo") as f:
        lines = [line.split(" - ")[0].split(" ", 4)[4] for line in f]
    return sorted(line for line in lines if line.startswith(str(below)))


def _tree(root: Path) -> dict[str, tuple[int, int, bytes | str]]:
    """path -> (mode, size, content or link target) of everything below `root`."""
    out: dict[str, tuple[int, int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = (st.st_mode, 0, os.readlink(path))
            elif path.is_file():
                out[rel] = (st.st_mode, st.st_size, path.read_bytes())
            else:
                out[rel] = (st.st_mode, 0, b"")
    return out


class Runner:
    """run_in_rootfs on one busybox rootfs, capturing the command's output."""

    def __init__(self, base: Path) -> None:
        self.rootfs = base / "rootfs"
        make_busybox_rootfs(str(self.rootfs))
        self.runroot = base / "runroot"
        self.base = base

    def __call__(
        self, *argv: str, config: dict[str, Any] | None = None, stdin: bytes = b"", **kw: Any
    ) -> tuple[int, str, str]:
        with (
            tempfile.TemporaryFile() as inp,
            tempfile.TemporaryFile() as out,
            tempfile.TemporaryFile() as err,
        ):
            inp.write(stdin)
            inp.seek(0)
            opts = RunOptions(
                argv=argv, stdin=inp.fileno(), stdout=out.fileno(), stderr=err.fileno(), **kw
            )
            code = run_in_rootfs(
                str(self.rootfs),
                IMAGE_CONFIG if config is None else config,
                opts,
                runroot=str(self.runroot),
            )
            out.seek(0)
            err.seek(0)
            return code, out.read().decode(), err.read().decode()

    def sh(self, script: str, **kw: Any) -> str:
        code, out, err = self("sh", "-c", script, **kw)
        assert code == 0, f"{script}: exit {code}\n{err}{out}"
        return out

    def assert_clean(self) -> None:
        """No state, no private directory left; no cgroup of a step either."""
        runtime_root = self.runroot / "build-runtime"
        # (the compiled seccomp programs are kept, as the runtime keeps them)
        assert not runtime_root.exists() or os.listdir(runtime_root) in ([], ["@seccomp-cache"])
        private = self.runroot / "build-run"
        assert not private.exists() or os.listdir(private) == []


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    r = Runner(tmp_path)
    yield r
    r.assert_clean()
    assert _mountinfo(tmp_path) == []


def _env(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


# --------------------------------------------------------------------------- the process


def test_environment_user_and_directory(runner: Runner) -> None:
    config = {**IMAGE_CONFIG, "Env": [*IMAGE_CONFIG["Env"], "A=image", "B=image"]}
    out = runner.sh("env; id; pwd", config=config, env=("B=step", "C=step"), hostname="box")
    env = _env(out)
    assert env["A"] == "image" and env["B"] == "step" and env["C"] == "step"
    assert env["HOME"] == "/root" and env["HOSTNAME"] == "box"
    assert env["PATH"] == IMAGE_CONFIG["Env"][0].split("=", 1)[1]
    assert "uid=0(root) gid=0(root) groups=0(root)" in out
    assert out.splitlines()[-1] == "/"


def test_path_default_when_the_image_has_none(runner: Runner) -> None:
    env = _env(runner.sh("env", config={}))
    assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def test_user_from_config_and_option(runner: Runner) -> None:
    out = runner.sh("id; echo $HOME; grep CapEff /proc/self/status", config={"User": "user"})
    assert out.splitlines()[:2] == ["uid=1000(user) gid=1000(user) groups=1000(user)", "/home/user"]
    assert out.split()[-1] == "0000000000000000"  # buildah: no effective capabilities
    out = runner.sh("id; echo $HOME", config={"User": "user"}, user="1234:55")
    assert out.splitlines() == ["uid=1234 gid=55 groups=55", "/"]
    with pytest.raises(InvalidArgument, match="unable to find user nobody2"):
        runner("true", user="nobody2")


def test_capabilities_are_buildahs(runner: Runner) -> None:
    out = runner.sh("grep -E '^Cap(Prm|Eff|Bnd|Inh|Amb)' /proc/self/status")
    caps = dict(line.split(":\t") for line in out.splitlines())
    assert caps == {
        "CapInh": "0000000000000000",
        "CapPrm": "00000000a80425fb",
        "CapEff": "00000000a80425fb",
        "CapBnd": "00000000a80425fb",
        "CapAmb": "0000000000000000",
    }


def test_workdir_is_created_and_kept(runner: Runner) -> None:
    assert runner.sh("pwd", workdir="/new/dir") == "/new/dir\n"
    assert (runner.rootfs / "new" / "dir").is_dir()
    assert runner.sh("pwd", config={"WorkingDir": "/home/user"}) == "/home/user\n"


def test_exit_codes(runner: Runner) -> None:
    assert runner("sh", "-c", "exit 7")[0] == 7
    # killed by a signal: 128+N (no pid namespace, so the command is not an init ignoring it)
    assert runner("sh", "-c", "kill -9 $$", isolation="chroot")[0] == 137
    assert runner("false")[0] == 1


def test_command_not_found(runner: Runner) -> None:
    with pytest.raises(CommandNotFound) as info:
        runner("nosuchcmd", "arg")
    assert 'exec: "nosuchcmd": executable file not found in $PATH' in str(info.value)
    assert "[nosuchcmd arg]" in str(info.value)
    with pytest.raises(CommandNotFound, match="stat /nosuch: no such file or directory"):
        runner("/nosuch")
    runner.assert_clean()


def test_cannot_invoke(runner: Runner) -> None:
    with pytest.raises(CannotInvoke, match='exec: "/etc/passwd": permission denied'):
        runner("/etc/passwd")
    with pytest.raises(CannotInvoke, match='exec: "/etc": permission denied'):
        runner("/etc")


def test_cgroup_is_removed(runner: Runner) -> None:
    lines = runner.sh("cat /proc/self/cgroup").splitlines()
    pids = next(line.split(":", 2)[2] for line in lines if line.split(":")[1] == "pids")
    assert pids.startswith("/pypod-build-")
    assert not Path("/sys/fs/cgroup/pids", pids.lstrip("/")).exists()


def test_stdio_passes_through(runner: Runner) -> None:
    code, out, err = runner("sh", "-c", "cat; echo to-err >&2", stdin=b"from stdin\n")
    assert (code, out, err) == (0, "from stdin\n", "to-err\n")


def test_terminal(runner: Runner) -> None:
    import pty

    master, slave = pty.openpty()
    try:
        code = run_in_rootfs(
            str(runner.rootfs),
            IMAGE_CONFIG,
            RunOptions(argv=("sh", "-c", "tty; echo $TERM"), terminal=True, stdin=slave,
                       stdout=slave, stderr=slave),
            runroot=str(runner.runroot),
        )  # fmt: skip
        os.set_blocking(master, False)
        data = b""
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(master, 4096):
                data += chunk
    finally:
        os.close(master)
        os.close(slave)
    assert code == 0
    assert b"/dev/pts/0" in data


def test_bad_options(runner: Runner) -> None:
    with pytest.raises(InvalidArgument, match='network "bridge"'):
        runner("true", network="bridge")
    with pytest.raises(InvalidArgument, match='isolation "rootless"'):
        runner("true", isolation="rootless")
    with pytest.raises(InvalidArgument, match="no command"):
        runner()


# --------------------------------------------------------------------------- namespaces, network


def _ns(out: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in out.splitlines())


_NS_SCRIPT = "for n in pid mnt net ipc uts; do echo $n $(readlink /proc/self/ns/$n); done"


def _host_ns() -> dict[str, str]:
    return {n: os.readlink(f"/proc/self/ns/{n}") for n in ("pid", "mnt", "net", "ipc", "uts")}


def test_oci_isolation_namespaces(runner: Runner) -> None:
    ns = _ns(runner.sh(_NS_SCRIPT))
    host = _host_ns()
    assert ns["net"] == host["net"]  # network host: the default of builds
    assert all(ns[n] != host[n] for n in ("pid", "mnt", "ipc", "uts"))
    assert runner.sh("echo $$") == "1\n"


def test_chroot_isolation(runner: Runner) -> None:
    ns = _ns(runner.sh(_NS_SCRIPT, isolation="chroot"))
    host = _host_ns()
    assert (ns["pid"], ns["net"], ns["ipc"]) == (host["pid"], host["net"], host["ipc"])
    assert ns["mnt"] != host["mnt"] and ns["uts"] != host["uts"]  # as buildah's chroot
    assert runner.sh("hostname", isolation="chroot", hostname="chrooted") == "chrooted\n"


def test_etc_files_host_network(runner: Runner) -> None:
    out = runner.sh(
        "cat /etc/hosts; echo ==; cat /etc/resolv.conf; echo ==; cat /etc/hostname; hostname;"
        "echo ==; cat /run/.containerenv",
        container_id="ab" * 32,
        name="busybox-working-container",
        image="docker.io/library/busybox:latest",
    )
    hosts, resolv, hostname, containerenv = out.split("==\n")
    with open("/etc/hosts") as f:
        assert hosts == hosts_text(f.read(), [], host_address())
    assert "host.containers.internal" in hosts
    with open("/etc/resolv.conf") as f:
        assert resolv == f.read()
    assert hostname == "abababababab\nabababababab\n"  # the container's id, 12 characters
    assert 'name="busybox-working-container"' in containerenv
    assert f'id="{"ab" * 32}"' in containerenv
    assert containerenv.endswith("rootless=0\n")
    # generated outside the rootfs: nothing of them is left in it
    assert sorted(os.listdir(runner.rootfs / "etc")) == ["group", "passwd"]
    assert not (runner.rootfs / "run").exists()


def test_network_none(runner: Runner) -> None:
    assert _ns(runner.sh(_NS_SCRIPT, network="none"))["net"] != _host_ns()["net"]
    out = runner.sh("cat /etc/hosts 2>&1; echo 10.1.2.3 mine > /etc/hosts", network="none")
    assert "No such file" in out  # the image's own /etc/hosts (none here): not generated
    # as buildah: with no network, /etc/hosts is the image's and changes to it are kept
    assert (runner.rootfs / "etc" / "hosts").read_text() == "10.1.2.3 mine\n"
    (runner.rootfs / "etc" / "hosts").unlink()


def test_network_private(runner: Runner) -> None:
    out = runner.sh("cat /etc/hosts; cat /proc/net/dev", network="private", hostname="priv")
    assert "127.0.0.1\tpriv" in out
    devices = [line.split(":")[0].strip() for line in out.splitlines() if ":" in line]
    assert "lo" in devices and "eth0" not in devices


_LOOPBACK_SCRIPT = (
    "mkdir -p /tmp/www && echo served > /tmp/www/index.html"
    " && httpd -p 127.0.0.1:8080 -h /tmp/www"
    " && wget -q -O - http://127.0.0.1:8080/index.html"
    " && (echo over-nc | nc -l -p 9090 &) && sleep 0.2 && nc 127.0.0.1 9090 </dev/null"
    " ; ip -o link | cut -d: -f2 | tr -d ' '"
)


@pytest.mark.parametrize("network", ["none", "private"])
def test_loopback_serves_and_fetches(runner: Runner, network: str) -> None:
    """With a network namespace of its own the step has `lo`, up (buildah and runc bring it
    up): a server on 127.0.0.1 answers; no other interface."""
    out = runner.sh(_LOOPBACK_SCRIPT, network=network)
    assert out.splitlines() == ["served", "over-nc", "lo"]


#: sethostname in a user and uts namespace of the step's own: the kernel allows it, podman's
#: and buildah's default seccomp profile does not (without CAP_SYS_ADMIN in the bounding set)
_SECCOMP_SCRIPT = (
    "grep -E '^Seccomp:' /proc/self/status;"
    " unshare -r -u sh -c 'hostname blocked.example && hostname' 2>&1; echo $?"
)


def test_default_seccomp_profile(runner: Runner) -> None:
    out = runner.sh(_SECCOMP_SCRIPT)
    assert out == "Seccomp:\t2\nhostname: sethostname: Operation not permitted\n1\n"
    # chroot isolation has the profile too, as buildah's
    assert runner.sh("grep -E '^Seccomp:' /proc/self/status", isolation="chroot") == (
        "Seccomp:\t2\n"
    )


# --------------------------------------------------------------------------- mounts


def test_bind_mounts_from_the_context(runner: Runner, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "src").mkdir(parents=True)
    (ctx / "src" / "file").write_text("from context\n")
    code, out, err = runner(
        "sh",
        "-c",
        "cat /mnt/ctx/file; touch /mnt/ctx/new 2>&1; touch /rw/new && echo wrote",
        mounts=("type=bind,src=src,target=/mnt/ctx", "type=bind,src=src,target=/rw,rw"),
        context_dir=str(ctx),
    )
    assert code == 0, err
    assert "from context" in out and "Read-only file system" in out and "wrote" in out
    assert (ctx / "src" / "new").exists()
    assert not (runner.rootfs / "mnt").exists()  # the mount points are not left in the rootfs
    assert not (runner.rootfs / "rw").exists()


def test_bind_from_stage_and_volume(runner: Runner, tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    (stage / "out").mkdir(parents=True)
    (stage / "out" / "artifact").write_text("built\n")
    vol = tmp_path / "vol"
    vol.mkdir()
    out = runner.sh(
        "cat /from/artifact; echo data > /data/f; ls -d /data",
        mounts=("type=bind,from=builder,src=/out,target=/from",),
        volumes=(f"{vol}:/data",),
        stage_roots={"builder": str(stage)},
        context_dir=str(tmp_path),
    )
    assert out == "built\n/data\n"
    assert (vol / "f").read_text() == "data\n"


def test_tmpfs_mount(runner: Runner) -> None:
    out = runner.sh(
        "grep ' /scratch ' /proc/self/mountinfo; echo x > /scratch/f && cat /scratch/f",
        mounts=("type=tmpfs,target=/scratch,tmpfs-size=1m",),
    )
    assert "tmpfs" in out and "size=1024k" in out and out.endswith("x\n")
    assert not (runner.rootfs / "scratch").exists()


def test_cache_mount_persists_between_runs(runner: Runner, tmp_path: Path) -> None:
    cache_root = tmp_path / "cache"
    mount = ("type=cache,target=/root/.cache,id=pkgs",)
    runner.sh("echo 1 >> /root/.cache/count", mounts=mount, cache_root=str(cache_root))
    out = runner.sh("echo 2 >> /root/.cache/count; cat /root/.cache/count", mounts=mount,
                    cache_root=str(cache_root))  # fmt: skip
    assert out == "1\n2\n"
    assert not (runner.rootfs / "root" / ".cache").exists()  # never in the layer
    other = runner.sh("ls /root/.cache", mounts=("type=cache,target=/root/.cache",),
                      cache_root=str(cache_root))  # fmt: skip
    assert other == ""  # keyed by id (else the target): another cache


def test_cache_mount_locked_sharing(runner: Runner, tmp_path: Path) -> None:
    out = runner.sh(
        "ls -ld /c | cut -c1-10; stat -c '%u %g' /c",
        mounts=("type=cache,target=/c,sharing=locked,mode=0700,uid=1000,gid=1000",),
        cache_root=str(tmp_path / "cache"),
    )
    assert out == "drwx------\n1000 1000\n"


def test_secret_mount(runner: Runner, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret")
    out = runner.sh(
        "cat /run/secrets/token; echo; stat -c '%a %u' /run/secrets/token; cat /k",
        mounts=("type=secret,id=token", "type=secret,id=token,target=/k,mode=0444,uid=1000"),
        secrets={"token": str(secret)},
    )
    assert out == "s3cret\n400 0\ns3cret"
    assert not (runner.rootfs / "run").exists() and not (runner.rootfs / "k").exists()
    assert runner.sh("ls /run/secrets 2>&1 || true", mounts=("type=secret,id=absent",)).strip()
    with pytest.raises(InvalidArgument, match="secret required but no secret with id gone"):
        runner("true", mounts=("type=secret,id=gone,required",))


def test_mount_points_kept_when_the_command_writes_there(runner: Runner) -> None:
    # /run is created for /run/.containerenv; the command adds a file: /run stays
    runner.sh("mkdir -p /run/lock && echo x > /run/lock/f")
    assert (runner.rootfs / "run" / "lock" / "f").read_text() == "x\n"
    assert sorted(os.listdir(runner.rootfs / "run")) == ["lock"]  # not .containerenv


def test_mount_points_through_a_dangling_link_stay_in_the_rootfs(
    runner: Runner, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    # /run is a link to an absolute path that exists on the host, not in the rootfs: the
    # mount point of /run/.containerenv is made (and removed) below the rootfs
    (runner.rootfs / "run").symlink_to(victim)
    assert runner.sh("ls -a /run/") == ".\n..\n.containerenv\n"
    assert list(victim.iterdir()) == []
    assert os.readlink(runner.rootfs / "run") == str(victim)
    assert sorted(os.listdir(runner.rootfs / "tmp")) == []  # the made path is gone again


def test_untouched_parent_keeps_its_times(runner: Runner) -> None:
    etc = runner.rootfs / "etc"
    os.utime(etc, ns=(1_000_000_000, 2_000_000_000))
    runner.sh("true")
    assert etc.stat().st_mtime_ns == 2_000_000_000
    runner.sh("echo x > /etc/new")
    assert etc.stat().st_mtime_ns != 2_000_000_000  # the command's own change shows


# --------------------------------------------------------------------------- interruption


_SCRIPT = """
import sys
from pypod.build.run import RunOptions, run_in_rootfs
code = run_in_rootfs(sys.argv[1], {}, RunOptions(argv=tuple(sys.argv[3:])), runroot=sys.argv[2])
print("exit", code, flush=True)
"""


def _interrupt(runner: Runner, argv: list[str], signals: int) -> str:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, str(runner.rootfs), str(runner.runroot), *argv],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        runtime_root = runner.runroot / "build-runtime"
        while not (runtime_root.is_dir() and any(runtime_root.iterdir())):
            assert time.monotonic() < deadline, "the step did not start"
            time.sleep(0.02)
        time.sleep(0.3)
        for _ in range(signals):
            proc.send_signal(signal.SIGINT)
            time.sleep(0.3)
        out, _ = proc.communicate(timeout=20)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    return out


def test_ctrl_c_stops_the_step(runner: Runner) -> None:
    # sh waits for sleep: sleep gets SIGINT (every process of the step does)
    assert _interrupt(runner, ["sh", "-c", "sleep 60; echo not reached"], 1) == "exit 130\n"


def test_second_ctrl_c_kills_an_init_that_ignores_it(runner: Runner) -> None:
    # sleep is the pid namespace's init: without a handler SIGINT does nothing to it
    assert _interrupt(runner, ["sleep", "60"], 2) == "exit 137\n"


# --------------------------------------------------------------------------- a working container


@pytest.fixture
def builder(tmp_path: Path) -> Iterator[Any]:
    from pypod.build.builder import Builder, FromOptions
    from pypod.storage.store import Store
    from tests.image_fixtures import build_image, busybox_layer, context, write_image

    graphroot, runroot = tmp_path / "graph", tmp_path / "runroot"
    image = build_image([busybox_layer(tmp_path)])
    write_image(context(graphroot, runroot), "localhost/busybox:latest", image)
    store = Store.open(str(graphroot), str(runroot))
    b = Builder.new(store, "localhost/busybox:latest", FromOptions(pull="never"))
    try:
        yield b
    finally:
        b.remove()


def _layer_members(builder: Any) -> list[str]:
    with tempfile.TemporaryFile() as f:
        builder.store.export_container_diff(builder.container_id, f)
        f.seek(0)
        with tarfile.open(fileobj=f) as t:
            return sorted(t.getnames())


def test_run_in_builder_leaves_nothing_in_the_layer(builder: Any) -> None:
    from pypod.build.run import run

    before = _mountinfo(Path(builder.store.graphroot).parent)
    assert run(builder, RunOptions(argv=("true",))) == 0
    assert _layer_members(builder) == []  # buildah 1.28 leaves etc/host*, etc/resolv.conf, run
    assert run(builder, RunOptions(argv=("sh", "-c", "echo hi > /etc/motd"))) == 0
    assert _layer_members(builder) == ["etc", "etc/motd"]
    assert _mountinfo(Path(builder.store.graphroot).parent) == before
    assert builder.store.container_mount_count(builder.container_id) == 0
    runtime_root = Path(builder.store.runroot) / "build-runtime"
    assert not runtime_root.exists() or os.listdir(runtime_root) in ([], ["@seccomp-cache"])


def test_run_in_builder_hostname_and_env(builder: Any) -> None:
    from pypod.build.run import run

    builder.config["Env"] = ["PATH=/bin", "FOO=bar"]
    with tempfile.TemporaryFile() as out:
        code = run(builder, RunOptions(argv=("sh", "-c", "hostname; env"), stdout=out.fileno()))
        out.seek(0)
        text = out.read().decode()
    assert code == 0
    assert text.splitlines()[0] == builder.container_id[:12]
    env = _env(text)
    assert env["FOO"] == "bar" and env["PATH"] == "/bin"
    assert env["HOSTNAME"] == builder.container_id[:12]


# --------------------------------------------------------------------------- buildah side by side


class Buildah:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.env = reference_env(base)
        rootfs = base / "rootfs"
        make_busybox_rootfs(str(rootfs))
        cid = self.ok("from", "scratch").strip()
        self.ok("copy", cid, str(rootfs), "/")
        self.ok("config", "--env", IMAGE_CONFIG["Env"][0], cid)
        self.ok("commit", "-q", cid, "localhost/bb")
        self.ok("rm", cid)
        self.container = self.ok("from", "localhost/bb").strip()

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["buildah", "--root", str(self.base / "root"), "--runroot", str(self.base / "run"),
             "--storage-driver", "vfs", *args],
            env=self.env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    def ok(self, *args: str) -> str:
        proc = self(*args)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def run(self, *argv: str, options: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        return self("run", *options, self.container, "--", *argv)

    def cleanup(self) -> None:
        self("rm", "-a")
        self("rmi", "-a", "-f")


@pytest.fixture(scope="module")
def buildah(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Buildah]:
    if shutil.which("buildah") is None or shutil.which("runc") is None:
        pytest.skip("buildah and runc are not installed (apt-get install buildah runc)")
    b = Buildah(tmp_path_factory.mktemp("buildah"))
    yield b
    b.cleanup()


@pytest.mark.compat
@pytest.mark.parametrize(
    ("script", "options", "ours"),
    [
        ("env | sort | grep -v HOSTNAME", (), {}),
        ("env | sort | grep -v HOSTNAME", ("--user", "user"), {"user": "user"}),
        ("env | sort | grep -v HOSTNAME", ("--user", "1234:55"), {"user": "1234:55"}),
        ("env | sort | grep -v HOSTNAME", ("--env", "A=1", "--env", "PATH=/x:/bin"),
         {"env": ("A=1", "PATH=/x:/bin")}),
        ("id; pwd", ("--workingdir", "/new/dir"), {"workdir": "/new/dir"}),
        ("id", ("--user", "user"), {"user": "user"}),
        ("grep -E '^Cap' /proc/self/status", (), {}),
        ("grep -E '^Cap' /proc/self/status", ("--user", "user"), {"user": "user"}),
        ("ulimit -n; umask", (), {}),
        ("cat /etc/hosts /etc/resolv.conf", ("--network", "host"), {"network": "host"}),
        ("cat /etc/hostname | wc -c; ls -a /run", (), {}),
        ("exit 7", (), {}),
        (_SECCOMP_SCRIPT, (), {}),
        ("grep -E '^Seccomp' /proc/self/status", ("--isolation", "chroot"),
         {"isolation": "chroot"}),
        (_LOOPBACK_SCRIPT, ("--network", "none"), {"network": "none"}),
    ],
)  # fmt: skip
def test_buildah_same_output(
    buildah: Buildah, runner: Runner, script: str, options: tuple[str, ...], ours: dict[str, Any]
) -> None:
    theirs = buildah.run("sh", "-c", script, options=options)
    code, out, _ = runner("sh", "-c", script, **ours)
    assert (code, out) == (theirs.returncode, theirs.stdout)


@pytest.mark.compat
def test_buildah_missing_command_message(buildah: Buildah, runner: Runner) -> None:
    theirs = buildah.run("nosuchcmd")
    assert 'exec: \\"nosuchcmd\\": executable file not found in $PATH' in theirs.stderr
    with pytest.raises(CommandNotFound) as info:
        runner("nosuchcmd")
    assert 'exec: "nosuchcmd": executable file not found in $PATH' in str(info.value)


@pytest.mark.compat
def test_buildah_bind_mount_read_only_by_default(buildah: Buildah, runner: Runner,
                                                 tmp_path: Path) -> None:  # fmt: skip
    src = tmp_path / "src"
    src.mkdir()
    script = "touch /m/x 2>&1 | sed 's/.*: //'; ls /m"
    theirs = buildah.run("sh", "-c", script, options=("--mount", f"type=bind,src={src},target=/m"))
    _, out, _ = runner("sh", "-c", script, mounts=(f"type=bind,src={src},target=/m",))
    assert out == theirs.stdout == "Read-only file system\n"


@pytest.mark.compat
def test_buildah_layer_leftovers(buildah: Buildah) -> None:
    """What buildah 1.28 leaves in the layer after `RUN true` (pypod leaves nothing: see
    test_run_in_builder_leaves_nothing_in_the_layer) — if this changes, buildah changed."""
    cid = buildah.ok("from", "localhost/bb").strip()
    try:
        assert buildah("run", cid, "true").returncode == 0
        mount = Path(buildah.ok("mount", cid).strip())
        paths = ["etc/hostname", "etc/hosts", "etc/resolv.conf", "run"]
        made = [p for p in paths if (mount / p).exists()]
        assert made == ["etc/hostname", "etc/hosts", "etc/resolv.conf", "run"]
        assert all((mount / p).stat().st_size == 0 for p in made[:3])
    finally:
        buildah("umount", cid)
        buildah("rm", cid)
