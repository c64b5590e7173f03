"""`pypod` as a regular user: default locations, the pause process, containers, unshare.

Runs as a test user made for the session (tests/rootless_support.py), with pypod copied where
that user can read it.  The user's subordinate range is 300000:65536, so container root is the
user and container id N (N >= 1) is host id 300000 + N - 1.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rootless_support import (
    IMAGE,
    SUB_SIZE,
    SUB_START,
    TMP,
    User,
    UserPypod,
    rootless_pypod,  # noqa: F401 - fixtures
    rootless_user,  # noqa: F401
)

pytestmark = [pytest.mark.root, pytest.mark.rootless]


def pause_pid(user: User, runroot: Path | None = None) -> int:
    text = ((runroot or user.runtime_dir / "pypod") / "pause.pid").read_text()
    return int(text.split()[0])


def test_default_locations_and_pause_process(rootless_pypod: UserPypod) -> None:  # noqa: F811
    user = rootless_pypod.user
    out = rootless_pypod.ok("images", "--format", "{{.Repository}}")
    assert IMAGE in out.split()
    store = user.home / ".local/share/pypod"
    assert store.is_dir() and store.stat().st_uid == user.uid
    runroot = user.runtime_dir / "pypod"
    assert runroot.is_dir() and runroot.stat().st_uid == user.uid
    pid = pause_pid(user)
    assert os.stat(f"/proc/{pid}").st_uid == user.uid
    uid_map = Path(f"/proc/{pid}/uid_map").read_text().split()
    assert uid_map == ["0", str(user.uid), "1", "1", str(SUB_START), str(SUB_SIZE)]
    gid_map = Path(f"/proc/{pid}/gid_map").read_text().split()
    assert gid_map == ["0", str(user.gid), "1", "1", str(SUB_START), str(SUB_SIZE)]
    # later commands join the same namespace
    rootless_pypod.ok("ps", "-a")
    assert pause_pid(user) == pid
    mine = os.readlink(f"/proc/{pid}/ns/user")
    out = rootless_pypod.ok("unshare", "readlink", "/proc/self/ns/user")
    assert out.strip() == mine


def test_pause_process_recreated_when_killed(rootless_pypod: UserPypod) -> None:  # noqa: F811
    user = rootless_pypod.user
    rootless_pypod.ok("ps")
    old = pause_pid(user)
    os.kill(old, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(old, 0)
    deadline = time.monotonic() + 5
    while Path(f"/proc/{old}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    out = rootless_pypod.ok("run", "--rm", "--network", "none", IMAGE, "echo", "again")
    assert out == "again\n"
    assert pause_pid(user) != old


def test_runroot_fallback_without_xdg_runtime_dir(rootless_pypod: UserPypod) -> None:  # noqa: F811
    user = rootless_pypod.user
    fallback = Path(f"/tmp/pypod-run-{user.uid}")
    env = rootless_pypod.env()
    del env["XDG_RUNTIME_DIR"]
    try:
        fallback.mkdir()  # someone else's, even where the user may write: refused
        fallback.chmod(0o1777)
        proc = user.run([*rootless_pypod.argv, "images", "-q"], env=env)
        assert proc.returncode == 125
        assert "is not a directory of this user's" in proc.stderr, proc.stderr
        subprocess.run(["rm", "-rf", str(fallback)], check=True)
        proc = user.run([*rootless_pypod.argv, "images", "-q"], env=env)
        assert proc.returncode == 0, proc.stderr
        assert (fallback / "pypod" / "pause.pid").is_file()
        assert fallback.stat().st_uid == user.uid
    finally:
        with contextlib.suppress(OSError, ValueError):
            os.kill(pause_pid(user, fallback / "pypod"), signal.SIGKILL)
        subprocess.run(["rm", "-rf", str(fallback)], check=False)


def test_run_rm_network_none(rootless_pypod: UserPypod) -> None:  # noqa: F811
    out = rootless_pypod.ok(
        "run", "--rm", "--network", "none", IMAGE, "sh", "-c",
        "id -u; id -g; cat /proc/self/uid_map; ip -o link | wc -l",
    )  # fmt: skip
    lines = out.split("\n")
    assert lines[:2] == ["0", "0"]
    user = rootless_pypod.user
    assert lines[2].split() == ["0", str(user.uid), "1"]
    assert lines[3].split() == ["1", str(SUB_START), str(SUB_SIZE)]
    assert lines[4].strip() == "1"  # only lo
    assert rootless_pypod.ok("ps", "-a", "-q") == ""


def test_detached_container_lifecycle(rootless_pypod: UserPypod) -> None:  # noqa: F811
    p = rootless_pypod
    cid = p.ok("run", "-d", "--network", "none", IMAGE, "sh", "-c", "echo up; sleep 1000").strip()
    try:
        assert p.ok("ps", "-q", "--no-trunc").split() == [cid]
        pid = int(p.ok("inspect", "--format", "{{.State.Pid}}", cid))
        status = Path(f"/proc/{pid}/status").read_text()
        uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
        assert set(uids) == {str(p.user.uid)}  # container root is the user on the host
        assert p.ok("exec", cid, "id", "-u") == "0\n"
        assert p.ok("logs", cid) == "up\n"
        # no cgroup of its own here (cgroup v1): top still shows only the container's processes
        top = p.ok("top", cid, "pid", "args").splitlines()
        assert len(top) == 2 and "sleep 1000" in top[1], top
        p.ok("stop", "-t", "0", cid)
        assert p.ok("inspect", "--format", "{{.State.Status}}", cid).strip() == "exited"
    finally:
        p("rm", "-f", cid)
    assert p.ok("ps", "-a", "-q") == ""


def _owners_layer() -> bytes:
    """A layer whose files have many owners, a setuid file and a directory of user 1000."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        entries = [("data", tarfile.DIRTYPE, 0o755, 0, 0)]
        for uid, gid in ((0, 0), (1, 2), (1000, 1000), (4242, 4343), (65534, 65534)):
            entries.append((f"data/f{uid}", tarfile.REGTYPE, 0o640, uid, gid))
        entries.append(("data/suid", tarfile.REGTYPE, 0o4755, 0, 0))
        entries.append(("data/home", tarfile.DIRTYPE, 0o700, 1000, 1000))
        for name, kind, mode, uid, gid in entries:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.uid, info.gid = kind, mode, uid, gid
            data = name.encode() if kind == tarfile.REGTYPE else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def owners_image(rootless_pypod: UserPypod) -> Iterator[str]:  # noqa: F811
    """An image of busybox plus the owners layer, imported by the user (from a directory it
    can read: pytest's tmp_path is root's alone)."""
    from pypod.testing import make_busybox_rootfs

    with tempfile.TemporaryDirectory(prefix="pypod-owners-", dir=TMP) as tmp:
        base = Path(tmp)
        os.chmod(base, 0o755)
        tar_path = base / "owners.tar"
        rootfs = make_busybox_rootfs(str(base / "rootfs"))
        with tarfile.open(tar_path, "w") as tar:
            tar.add(rootfs, arcname=".")
            with tarfile.open(fileobj=io.BytesIO(_owners_layer())) as extra:
                for member in extra.getmembers():
                    tar.addfile(member, extra.extractfile(member) if member.isfile() else None)
        os.chmod(tar_path, 0o644)
        name = "localhost/owners"
        rootless_pypod.ok("import", "-q", str(tar_path), name)
    yield name
    rootless_pypod("rmi", "-f", name)


def test_layer_with_many_owners(rootless_pypod: UserPypod, owners_image: str) -> None:  # noqa: F811
    out = rootless_pypod.ok(
        "run", "--rm", "--network", "none", owners_image, "stat", "-c", "%n %u:%g %a",
        "/data/f0", "/data/f1", "/data/f1000", "/data/f4242", "/data/f65534", "/data/suid",
        "/data/home",
    )  # fmt: skip
    assert out.splitlines() == [
        "/data/f0 0:0 640",
        "/data/f1 1:2 640",
        "/data/f1000 1000:1000 640",
        "/data/f4242 4242:4343 640",
        "/data/f65534 65534:65534 640",
        "/data/suid 0:0 4755",
        "/data/home 1000:1000 700",
    ]
    # on the host, container id N is the subordinate id SUB_START + N - 1
    store = rootless_pypod.user.home / ".local/share/pypod/overlay"
    found = {(p.name, p.stat().st_uid, p.stat().st_gid) for p in store.glob("*/diff/data/f4242")}
    assert found == {("f4242", SUB_START + 4241, SUB_START + 4342)}


def test_resource_limits_fail_without_delegated_cgroups(
    rootless_pypod: UserPypod,  # noqa: F811
) -> None:
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        pytest.skip("cgroup v2 host: limits depend on delegation")
    for flag, value in (("--memory", "10m"), ("--cpus", "1"), ("--pids-limit", "10")):
        err = rootless_pypod.fails(
            125, "run", "--rm", "--network", "none", flag, value, IMAGE, "true"
        )
        assert "Resource limits are not supported" in err and flag in err, err
    assert rootless_pypod.ok("ps", "-a", "-q") == ""


# --- unshare ---------------------------------------------------------------------------------


def test_unshare_runs_in_the_namespace(rootless_pypod: UserPypod) -> None:  # noqa: F811
    user = rootless_pypod.user
    out = rootless_pypod.ok(
        "unshare", "sh", "-c",
        "id -u; cat /proc/self/uid_map; echo $CONTAINERS_GRAPHROOT; echo $CONTAINERS_RUNROOT",
    )  # fmt: skip
    lines = out.splitlines()
    assert lines[0] == "0"
    assert lines[1].split() == ["0", str(user.uid), "1"]
    assert lines[2].split() == ["1", str(SUB_START), str(SUB_SIZE)]
    assert lines[3] == str(user.home / ".local/share/pypod")
    assert lines[4] == str(user.runtime_dir / "pypod")
    # the user's files are root's in there, the store's files its own
    out = rootless_pypod.ok("unshare", "stat", "-c", "%u", str(user.home))
    assert out == "0\n"


def test_unshare_exit_codes(rootless_pypod: UserPypod) -> None:  # noqa: F811
    assert rootless_pypod("unshare", "sh", "-c", "exit 3").returncode == 3
    err = rootless_pypod.fails(127, "unshare", "no-such-command")
    assert 'exec: "no-such-command": executable file not found in $PATH' in err
    err = rootless_pypod.fails(126, "unshare", "/etc/passwd")
    assert "permission denied" in err
    rootless_pypod.fails(125, "unshare", "--no-such-flag")


def test_unshare_as_root_refused() -> None:
    from tests.engine_support import PYPOD

    proc = subprocess.run([PYPOD, "unshare", "true"], capture_output=True, text=True)
    assert proc.returncode == 125
    assert proc.stderr == "Error: please use unshare with rootless\n"


def test_pypod_inside_unshare_uses_the_users_store(rootless_pypod: UserPypod) -> None:  # noqa: F811
    out = rootless_pypod.ok(
        "unshare", *rootless_pypod.argv, "images", "--format", "{{.Repository}}"
    )
    assert IMAGE in out.split()


def test_pull_from_a_registry(
    rootless_pypod: UserPypod,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """`pypod pull` as the user (the registry on loopback, pushed to by root's pypod)."""
    from tests.engine_support import PYPOD
    from tests.image_support import start_registry

    reg = start_registry(tmp_path_factory.mktemp("registry"))
    store = tmp_path_factory.mktemp("root-store")
    root = [PYPOD, "--root", str(store / "root"), "--runroot", str(store / "run")]
    try:
        with tempfile.TemporaryDirectory(prefix="pypod-pull-", dir=TMP) as tmp:
            from tests.rootless_support import make_busybox_tar

            tar = make_busybox_tar(Path(tmp))
            subprocess.run(
                [*root, "import", "-q", str(tar), IMAGE], check=True, capture_output=True
            )
        ref = f"{reg.host}/rootless/busybox:1"
        subprocess.run(
            [*root, "push", "-q", "--tls-verify=false", IMAGE, f"docker://{ref}"],
            check=True,
            capture_output=True,
        )
        rootless_pypod.ok("pull", "-q", "--tls-verify=false", ref)
        out = rootless_pypod.ok("images", "--format", "{{.Repository}}:{{.Tag}}")
        assert ref in out.split()
        out = rootless_pypod.ok("run", "--rm", "--network", "none", ref, "echo", "pulled")
        assert out == "pulled\n"
        rootless_pypod.ok("rmi", ref)
    finally:
        subprocess.run([*root, "rmi", "-a", "-f"], capture_output=True)
        reg.stop()


def test_pause_process_lost_while_a_container_runs(rootless_pypod: UserPypod) -> None:  # noqa: F811
    """The namespace of the running container is joined again (podman's way), so that it can
    still be reached, exec'd into, stopped and removed."""
    p = rootless_pypod
    cid = p.ok("run", "-d", "--network", "none", IMAGE, "sleep", "1000").strip()
    try:
        old = pause_pid(p.user)
        namespace = os.readlink(f"/proc/{old}/ns/user")
        os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while Path(f"/proc/{old}").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert p.ok("exec", cid, "echo", "still-here") == "still-here\n"
        new = pause_pid(p.user)
        assert new != old
        assert os.readlink(f"/proc/{new}/ns/user") == namespace
        p.ok("rm", "-f", "-t", "0", cid)
    finally:
        p("rm", "-f", "-t", "0", cid)
    assert p.ok("ps", "-a", "-q") == ""


@pytest.fixture(scope="module")
def single_id_pypod(rootless_pypod: UserPypod) -> Iterator[UserPypod]:  # noqa: F811
    """pypod for a user without subordinate ids (the same installation)."""
    from tests.rootless_support import create_user, make_busybox_tar, remove_user

    user = create_user(ranges=False)
    try:
        p = UserPypod(user, rootless_pypod.extra_env)
        with tempfile.TemporaryDirectory(prefix="pypod-single-", dir=TMP) as tmp:
            os.chmod(tmp, 0o755)
            p.ok("import", "-q", str(make_busybox_tar(Path(tmp))), IMAGE)
        yield p
        p("rm", "--all", "--force", "--time", "0")
    finally:
        remove_user(user.name)


def test_single_id_mapping(single_id_pypod: UserPypod) -> None:
    p = single_id_pypod
    out = p.ok("unshare", "cat", "/proc/self/uid_map", "/proc/self/gid_map", "/proc/self/setgroups")
    assert out.split() == ["0", str(p.user.uid), "1", "0", str(p.user.gid), "1", "deny"]
    out = p.ok("run", "--rm", "--network", "none", IMAGE, "sh", "-c", "id -u; ls /dev/pts")
    assert out.split()[0] == "0"
    with tempfile.TemporaryDirectory(prefix="pypod-single-", dir=TMP) as tmp:
        os.chmod(tmp, 0o755)
        tar_path = Path(tmp) / "owned.tar"
        with tarfile.open(tar_path, "w") as tar:
            info = tarfile.TarInfo("owned")
            info.uid = info.gid = 1000
            tar.addfile(info, io.BytesIO(b""))
        os.chmod(tar_path, 0o644)
        err = p.fails(125, "import", "-q", str(tar_path), "localhost/owned")
    assert "potentially insufficient UIDs or GIDs available in user namespace" in err
    assert "(requested 1000:1000)" in err


def test_concurrent_first_commands_share_one_namespace(rootless_pypod: UserPypod) -> None:  # noqa: F811
    user = rootless_pypod.user
    with contextlib.suppress(OSError, ValueError):
        os.kill(pause_pid(user), signal.SIGKILL)
    env = rootless_pypod.env()
    argv = [*rootless_pypod.argv, "unshare", "readlink", "/proc/self/ns/user"]
    procs = [
        subprocess.Popen(
            argv,
            env=env,
            user=user.uid,
            group=user.gid,
            extra_groups=[user.gid],
            cwd=user.home,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(6)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    namespaces = {out.strip() for out, _ in outs}
    assert len(namespaces) == 1
    assert namespaces == {os.readlink(f"/proc/{pause_pid(user)}/ns/user")}
