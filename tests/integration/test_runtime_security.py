"""pypod-runtime against the container-breakout classes runc has had CVEs for.

Each test is written so that a naive runtime fails it: one that lets inherited fds reach the
container (CVE-2024-21626), execs the container's program straight from the host's interpreter
(CVE-2019-5736), resolves mount destinations with the host's rules (CVE-2021-30465), or skips
masked and read-only paths.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pypod.linux import exec_helper
from tests.conftest import CLI, BundleFactory, messages

pytestmark = pytest.mark.root

#: fd numbers the caller leaves open when it starts pypod-runtime (high, so that the
#: listing's own directory fd, the lowest free one, is not mistaken for them)
LEAKED_FILE_FD = 40
LEAKED_DIR_FD = 41


@pytest.fixture
def leaked_fds(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """A file and a host directory (/sys/fs/cgroup, O_RDONLY) open in the caller."""
    file_fd = os.open(tmp_path / "secret", os.O_RDWR | os.O_CREAT, 0o600)
    dir_fd = os.open("/sys/fs/cgroup", os.O_RDONLY | os.O_DIRECTORY)
    os.dup2(file_fd, LEAKED_FILE_FD)
    os.dup2(dir_fd, LEAKED_DIR_FD)
    os.close(file_fd)
    os.close(dir_fd)
    try:
        yield LEAKED_FILE_FD, LEAKED_DIR_FD
    finally:
        os.close(LEAKED_FILE_FD)
        os.close(LEAKED_DIR_FD)


@pytest.fixture
def cid() -> str:
    """A container id of this test only: the cgroup path follows the id, and another test run
    on the machine using the same id would share (and kill) the container's cgroup."""
    return f"sec-{uuid.uuid4().hex[:12]}"


def state(rt: CLI, cid: str) -> dict[str, Any]:
    st: dict[str, Any] = json.loads(rt.ok("state", cid))
    return st


# --------------------------------------------------------------------------- fds (CVE-2024-21626)


def test_no_runtime_fd_reaches_the_container_process(
    rt: CLI, bundle: BundleFactory, leaked_fds: tuple[int, int], cid: str
) -> None:
    b = bundle(["sh", "-c", "ls /proc/self/fd; readlink /proc/1/cwd"])
    proc = rt("run", "-b", str(b), cid, pass_fds=leaked_fds)
    assert proc.returncode == 0, proc.stderr
    # 3 is the directory `ls` itself opened
    assert proc.stdout.split() == ["0", "1", "2", "3", "/"]


def test_no_runtime_fd_reaches_init_or_exec(
    rt: CLI, bundle: BundleFactory, leaked_fds: tuple[int, int], cid: str
) -> None:
    b = bundle(["sleep", "1000"])
    rt.ok("create", "-b", str(b), cid, pass_fds=leaked_fds)
    pid = state(rt, cid)["pid"]
    # waiting for `start` the init still runs the runtime's code: only stdio, the exec fifo and
    # the sealed exec helper (its sync socket it closes right after READY: `create` may return
    # before it did)
    deadline = time.monotonic() + 5
    while True:
        fds = {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        extra = {fds[fd] for fd in set(fds) - {0, 1, 2}}
        if not any(e.startswith("socket:") for e in extra) or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert extra == {str(rt.root / cid / "exec.fifo"), "/memfd:pypod-exec (deleted)"}
    rt.ok("start", cid)
    deadline = time.monotonic() + 5  # `start` returns before the init's exec
    while len(os.listdir(f"/proc/{pid}/fd")) > 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(os.listdir(f"/proc/{pid}/fd")) == ["0", "1", "2"]
    # the init's cwd is the rootfs, seen from the host too
    cwd, rootfs = os.stat(f"/proc/{pid}/cwd"), os.stat(b / "rootfs")
    assert (cwd.st_dev, cwd.st_ino) == (rootfs.st_dev, rootfs.st_ino)

    script = "ls /proc/self/fd; readlink /proc/1/cwd; pwd"
    out = rt.ok("exec", cid, "sh", "-c", script, pass_fds=leaked_fds)
    assert out.split() == ["0", "1", "2", "3", "/", "/"]


@pytest.mark.parametrize("how", ["config", "exec"])
def test_cwd_through_a_leaked_directory_fd_is_refused(
    rt: CLI, bundle: BundleFactory, leaked_fds: tuple[int, int], how: str, cid: str
) -> None:
    # The CVE-2024-21626 attack itself: cwd /proc/self/fd/N, N a host directory left open by
    # the runtime, gives the container a working directory on the host.
    cwd = f"/proc/self/fd/{LEAKED_DIR_FD}"
    script = "pwd; ls; ls ../../.."
    if how == "config":
        b = bundle(["sh", "-c", script], edit=lambda s: s["process"].update(cwd=cwd))
        proc = rt("run", "-b", str(b), cid, pass_fds=leaked_fds)
    else:
        b = bundle(["sleep", "1000"])
        rt.ok("run", "-d", "-b", str(b), cid)
        proc = rt("exec", "--cwd", cwd, cid, "sh", "-c", script, pass_fds=leaked_fds)
    assert proc.returncode == (1 if how == "config" else 255)  # runc's codes for run / exec
    assert proc.stdout == ""
    assert "cwd" in messages(proc.stderr) or "proc/self/fd" in messages(proc.stderr)


def test_cwd_outside_the_root_is_refused_even_with_preserved_fds(
    rt: CLI, bundle: BundleFactory, leaked_fds: tuple[int, int], cid: str
) -> None:
    # --preserve-fds hands fds to the container on purpose; a directory among them must still
    # not become the process's working directory (runc checks the cwd after chdir too).
    b = bundle(["sleep", "1000"])
    rt.ok("run", "-d", "-b", str(b), cid)
    exec_args = ["exec", "--preserve-fds", "1", "--cwd", "/proc/self/fd/3", cid, "ls"]
    # the shell puts the host directory on fd 3 of the runtime
    redirect = ["bash", "-c", f'exec "$@" 3<&{LEAKED_DIR_FD}', "bash"]
    proc = subprocess.run(
        [*redirect, rt.exe, "--root", str(rt.root), *exec_args],
        pass_fds=leaked_fds,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 255 and proc.stdout == ""  # runc's exit code for a failed exec
    assert "outside of the container's root" in messages(proc.stderr)


def test_waiting_init_is_not_reachable_from_the_container(
    rt: CLI, bundle: BundleFactory, cid: str
) -> None:
    # Until `start` the init runs the host's Python: a process in the container that could open
    # /proc/1/exe would hold the host's interpreter, to overwrite it once no longer busy.
    b = bundle(["sleep", "1000"])
    rt.ok("create", "-b", str(b), cid)
    script = "cat /proc/1/exe > /dev/null; echo exe=$?; readlink /proc/1/fd/0; echo fd=$?"
    out = rt.ok("exec", cid, "sh", "-c", script)
    assert out == "exe=1\nfd=1\n"
    rt.ok("start", cid)  # once it runs the container's program, it is an ordinary process
    assert rt.ok("exec", cid, "readlink", "/proc/1/exe") == "/bin/busybox\n"


# --------------------------------------------------------------------------- /proc/self/exe


EVIL_SCRIPT = """#!/proc/self/exe
import sys
print("HOST PYTHON RAN", sys.version)
open("/proc/self/exe", "r+b").write(b"pwned")
"""


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_proc_self_exe_script_cannot_reach_the_host_interpreter(
    rt: CLI, bundle: BundleFactory, cid: str
) -> None:
    interpreter = os.path.realpath(sys.executable)
    before = _sha256(interpreter)

    def add_script(spec: dict[str, Any]) -> None:
        spec["root"]["readonly"] = False

    b = bundle(["/evil"], edit=add_script)
    (b / "rootfs" / "evil").write_text(EVIL_SCRIPT)
    os.chmod(b / "rootfs" / "evil", 0o755)

    proc = rt("run", "-b", str(b), cid)
    assert proc.returncode == 126, proc.stderr
    assert "HOST PYTHON RAN" not in proc.stdout + proc.stderr

    b2 = bundle(["sleep", "1000"])
    shutil.copy(b / "rootfs" / "evil", b2 / "rootfs" / "evil")
    rt.ok("run", "-d", "-b", str(b2), cid + "-2")
    proc = rt("exec", cid + "-2", "/evil")
    assert proc.returncode == 126, proc.stderr
    assert "HOST PYTHON RAN" not in proc.stdout + proc.stderr
    assert _sha256(interpreter) == before


def test_exec_helper_memfd_is_sealed() -> None:
    fd = exec_helper.sealed_helper_fd()
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        for seal in (fcntl.F_SEAL_WRITE, fcntl.F_SEAL_SEAL, fcntl.F_SEAL_GROW, fcntl.F_SEAL_SHRINK):
            assert seals & seal, seal
        assert not os.get_inheritable(fd)
        image = os.pread(fd, 1 << 16, 0)
        assert image == exec_helper.helper_image() and image.startswith(b"\x7fELF")
        with pytest.raises(PermissionError) as e:
            os.pwrite(fd, b"x", 0)
        assert e.value.errno == errno.EPERM
        # reopened through /proc (as /proc/<pid>/exe would be) it stays unwritable
        wfd = os.open(f"/proc/self/fd/{fd}", os.O_RDWR)
        try:
            with pytest.raises(PermissionError):
                os.write(wfd, b"x")
            with pytest.raises(PermissionError):
                os.ftruncate(wfd, 0)
        finally:
            os.close(wfd)
        with pytest.raises(PermissionError):
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, 0)  # F_SEAL_SEAL: the seals cannot change
        assert os.pread(fd, 1 << 16, 0) == image
    finally:
        os.close(fd)


# ------------------------------------------------------------------------ mounts (CVE-2021-30465)


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A directory on the host, outside every bundle, that no container may touch."""
    path = Path(tempfile.mkdtemp(prefix="pypod-host-"))
    (path / "marker").write_text("host")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _host_mount_points() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


@pytest.mark.parametrize("kind", ["tmpfs", "bind"])
@pytest.mark.parametrize("link", ["absolute", "dotdot"])
def test_mount_destination_through_symlink_stays_in_rootfs(
    rt: CLI, bundle: BundleFactory, tmp_path: Path, host_dir: Path, kind: str, link: str, cid: str
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "from-source").write_text("s")
    if link == "absolute":
        dest = "/escape"  # -> /tmp/pypod-host-xxx: the host's directory, by the host's rules
    else:
        dest = "/up/" + str(host_dir).lstrip("/")  # up -> ../../..: above the rootfs
    mount: dict[str, Any] = {"destination": dest, "type": "tmpfs", "source": "tmpfs"}
    if kind == "bind":
        mount = {"destination": dest, "type": "bind", "source": str(source), "options": ["rbind"]}

    def edit(spec: dict[str, Any]) -> None:
        spec["mounts"].append(mount)
        spec["root"]["readonly"] = False

    script = f"touch {dest}/written-inside && ls {dest}; echo --; cut -d' ' -f5 /proc/1/mountinfo"
    b = bundle(["sh", "-c", script], edit=edit)
    rootfs = b / "rootfs"
    os.symlink(str(host_dir), rootfs / "escape")
    os.symlink("../../..", rootfs / "up")

    proc = rt("run", "-b", str(b), cid)

    assert proc.returncode == 0, proc.stderr
    listing, mount_points = (part.split() for part in proc.stdout.split("--\n"))
    assert "written-inside" in listing
    assert ("from-source" in listing) == (kind == "bind")
    # inside, the mount sits at the symlink's target, taken as a path of the container
    assert str(host_dir) in mount_points
    # the host directory is untouched, nothing is mounted on the host ...
    assert os.listdir(host_dir) == ["marker"]
    assert not any(p.startswith(str(host_dir)) for p in _host_mount_points())
    # ... and the symlink's target was made inside the rootfs instead
    assert (rootfs / str(host_dir).lstrip("/")).is_dir()
    assert os.readlink(rootfs / "escape") == str(host_dir)


def test_file_bind_through_dangling_symlink_creates_nothing_on_the_host(
    rt: CLI, bundle: BundleFactory, host_dir: Path, cid: str
) -> None:
    # Making the mount point of a file bind must not create it through the symlink by the
    # host's rules (O_CREAT follows symlinks).
    def edit(spec: dict[str, Any]) -> None:
        spec["mounts"].append(
            {"destination": "/evil", "type": "bind", "source": "/etc/hostname", "options": ["bind"]}
        )

    b = bundle(["cat", "/evil"], edit=edit)
    os.symlink(str(host_dir / "created"), b / "rootfs" / "evil")
    proc = rt("run", "-b", str(b), cid)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == Path("/etc/hostname").read_text()
    assert os.listdir(host_dir) == ["marker"]
    assert (b / "rootfs" / str(host_dir).lstrip("/") / "created").is_file()


# --------------------------------------------------------------------------- masked, read-only


@pytest.mark.parametrize("path", ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/cpuinfo"])
def test_masked_files_read_empty(rt: CLI, bundle: BundleFactory, path: str, cid: str) -> None:
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist on this kernel")
    with open(path, "rb") as f:
        assert f.read(1), f"{path} reads empty on the host: the test would prove nothing"

    def edit(spec: dict[str, Any]) -> None:
        if path not in spec["linux"]["maskedPaths"]:
            spec["linux"]["maskedPaths"].append(path)  # /proc/cpuinfo: the config adds it

    b = bundle(["sh", "-c", f"wc -c < {path}; grep -c ' {path} ' /proc/self/mountinfo"], edit=edit)
    assert rt.ok("run", "-b", str(b), cid).split() == ["0", "1"]


def test_default_masked_paths_apply_without_being_asked(
    rt: CLI, bundle: BundleFactory, cid: str
) -> None:
    b = bundle(["sh", "-c", "cat /proc/keys /proc/timer_list | wc -c; cat /proc/cpuinfo | wc -c"])
    out = rt.ok("run", "-b", str(b), cid).split()
    assert out[0] == "0" and int(out[1]) > 0  # cpuinfo is not in runc's default list


def test_masked_directory_is_empty(rt: CLI, bundle: BundleFactory, cid: str) -> None:
    if not os.listdir("/sys/firmware"):
        pytest.skip("/sys/firmware is empty on this host: the test would prove nothing")
    b = bundle(["sh", "-c", "ls -A /sys/firmware | wc -l; touch /sys/firmware/x"])
    proc = rt("run", "-b", str(b), cid)
    assert proc.stdout == "0\n"
    assert proc.returncode == 1 and "Read-only file system" in proc.stderr


def test_readonly_paths_refuse_writes(rt: CLI, bundle: BundleFactory, cid: str) -> None:
    # kernel.domainname belongs to the container's UTS namespace: harmless if the test fails
    script = "echo x > /proc/sys/kernel/domainname; echo rc=$?; cat /proc/sys/kernel/domainname"
    b = bundle(["sh", "-c", script])
    proc = rt("run", "-b", str(b), cid)
    assert proc.stdout == "rc=1\n(none)\n"
    assert "Read-only file system" in proc.stderr


@pytest.mark.parametrize("readonly", [True, False])
def test_readonly_root(rt: CLI, bundle: BundleFactory, readonly: bool, cid: str) -> None:
    def edit(spec: dict[str, Any]) -> None:
        spec["root"]["readonly"] = readonly

    b = bundle(["sh", "-c", "touch /new; echo touch=$?; mkdir /newdir; echo mkdir=$?"], edit=edit)
    proc = rt("run", "-b", str(b), cid)
    if readonly:
        assert proc.stdout == "touch=1\nmkdir=1\n"
        assert "Read-only file system" in proc.stderr
        assert not (b / "rootfs" / "new").exists()
    else:
        assert proc.stdout == "touch=0\nmkdir=0\n"
        assert (b / "rootfs" / "new").exists()
