"""pypod-runtime run by an unprivileged user: `spec --rootless`, id maps, cgroups left alone.

A session fixture creates a test user with subordinate ids (/etc/subuid, /etc/subgid) and
removes it, its home and its entries at the end.  Every command runs as that user with HOME and
XDG_RUNTIME_DIR in its home, on bundles it owns.  runc 1.1.5 rootless works on this host, so
the same bundles are run by runc where the output can be compared.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pypod.linux.cgroups import new_manager
from pypod.oci.runtime_defaults import dump_spec_json
from pypod.testing import make_busybox_rootfs
from tests.conftest import CLI, PYPOD_RUNTIME, messages

pytestmark = [pytest.mark.root, pytest.mark.rootless]

SUB_START, SUB_SIZE = 200000, 65536
SUB_RANGE = f"{SUB_START}-{SUB_START + SUB_SIZE - 1}"
USER_PREFIX = "pypodt"


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    home: Path

    @property
    def runtime_dir(self) -> Path:
        return self.home / "run"

    def env(self) -> dict[str, str]:
        return {
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        }

    def run(
        self, argv: list[str], *, cwd: Path | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run argv as the user (files, not pipes: a detached container keeps its stdio)."""
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            proc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                text=True,
                timeout=timeout,
                check=False,
                user=self.uid,
                group=self.gid,
                extra_groups=[self.gid],
                env=self.env(),
                cwd=cwd or self.home,
            )
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(argv, proc.returncode, out.read(), err.read())

    def chown_tree(self, path: Path) -> None:
        for dirpath, dirnames, filenames in os.walk(path):
            os.lchown(dirpath, self.uid, self.gid)
            for name in dirnames + filenames:
                os.lchown(os.path.join(dirpath, name), self.uid, self.gid)


class UserCLI(CLI):
    """CLI run as the test user (on its own --root, as the lifecycle fixtures do)."""

    def __init__(self, exe: str, root: Path, user: User) -> None:
        super().__init__(exe, root)
        self.user = user

    def __call__(
        self, *args: str, input: str | None = None, timeout: float = 60, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        kw.setdefault("cwd", self.user.home)
        return super().__call__(
            *args,
            input=input,
            timeout=timeout,
            user=self.user.uid,
            group=self.user.gid,
            extra_groups=[self.user.gid],
            env=self.user.env(),
            **kw,
        )


def _probe() -> str | None:
    """Why rootless tests cannot run here, or None."""
    for tool in ("useradd", "usermod", "userdel", "newuidmap", "newgidmap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install passwd uidmap)"
    for path, bad in (
        ("/proc/sys/kernel/unprivileged_userns_clone", "0"),
        ("/proc/sys/user/max_user_namespaces", "0"),
    ):
        try:
            if Path(path).read_text().strip() == bad:
                return f"unprivileged user namespaces are disabled ({path} is {bad})"
        except OSError:
            pass
    return None


@pytest.fixture(scope="session")
def rootless_user() -> Iterator[User]:
    if os.geteuid() != 0:
        pytest.skip("needs root to create the rootless test user")
    reason = _probe()
    if reason:
        pytest.skip(reason)
    for stale in pwd.getpwall():  # left by a session that was killed before its teardown
        pid = stale.pw_name.removeprefix(USER_PREFIX)
        if (
            stale.pw_name.startswith(USER_PREFIX)
            and pid.isdigit()
            and not Path(f"/proc/{pid}").exists()
        ):
            _remove_user(stale.pw_name)
    name = f"{USER_PREFIX}{os.getpid()}"  # one per session: parallel runs never share a user
    subprocess.run(
        ["useradd", "-m", "-s", "/bin/sh", "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", name],
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(
            ["usermod", "--add-subuids", SUB_RANGE, "--add-subgids", SUB_RANGE, name],
            check=True,
            capture_output=True,
        )
        pw = pwd.getpwnam(name)
        user = User(name, pw.pw_uid, pw.pw_gid, Path(pw.pw_dir))
        user.runtime_dir.mkdir(mode=0o700)
        os.chown(user.runtime_dir, user.uid, user.gid)
        yield user
    finally:
        _remove_user(name)


def _remove_user(name: str) -> None:
    """The user, its group, home and subordinate id entries."""
    subprocess.run(
        ["usermod", "--del-subuids", SUB_RANGE, "--del-subgids", SUB_RANGE, name],
        capture_output=True,
    )
    subprocess.run(["userdel", "-r", "-f", name], capture_output=True)
    for path in ("/etc/subuid", "/etc/subgid"):
        lines = Path(path).read_text().splitlines()
        assert not [line for line in lines if line.startswith(name + ":")], path


@pytest.fixture
def workdir(rootless_user: User, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A directory of the user's for this test's bundles and state."""
    path = rootless_user.home / request.node.name
    path.mkdir()
    os.chown(path, rootless_user.uid, rootless_user.gid)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def urt(rootless_user: User, workdir: Path) -> Iterator[UserCLI]:
    cli = UserCLI(PYPOD_RUNTIME, workdir / "pypod-state", rootless_user)
    yield cli
    cli.cleanup()


@pytest.fixture
def urunc(rootless_user: User, workdir: Path) -> Iterator[UserCLI]:
    exe = shutil.which("runc")
    if exe is None:
        pytest.skip("runc is not installed (apt-get install runc)")
    cli = UserCLI(exe, workdir / "runc-state", rootless_user)
    yield cli
    cli.cleanup()


UserBundle = Callable[..., Path]


@pytest.fixture
def user_bundle(rootless_user: User, workdir: Path, urt: UserCLI) -> UserBundle:
    """make(args, edit=None) -> a bundle owned by the user, config from `spec --rootless`."""
    counter = iter(range(1000))

    def make(args: list[str], edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
        path = workdir / f"bundle{next(counter)}"
        path.mkdir()
        make_busybox_rootfs(str(path / "rootfs"))
        rootless_user.chown_tree(path)
        urt.ok("spec", "--rootless", "--bundle", str(path))
        config = json.loads((path / "config.json").read_text())
        config["process"]["args"] = args
        config["process"]["terminal"] = False
        if edit is not None:
            edit(config)
        (path / "config.json").write_text(dump_spec_json(config))
        return path

    return make


def shared_dir(user: User, workdir: Path) -> Path:
    path = workdir / "shared"
    path.mkdir()
    os.chown(path, user.uid, user.gid)
    return path


def bind(config: dict[str, Any], source: Path, destination: str = "/mnt") -> None:
    config["mounts"].append(
        {"destination": destination, "type": "bind", "source": str(source), "options": ["rbind"]}
    )


def full_ranges(user: User) -> Callable[[dict[str, Any]], None]:
    """Container root -> the user, 1..65536 -> the user's subordinate ids (newuidmap)."""

    def edit(config: dict[str, Any]) -> None:
        for key, own in (("uidMappings", user.uid), ("gidMappings", user.gid)):
            config["linux"][key] = [
                {"containerID": 0, "hostID": own, "size": 1},
                {"containerID": 1, "hostID": SUB_START, "size": SUB_SIZE},
            ]
        for kind in ("bounding", "effective", "permitted"):
            config["process"]["capabilities"][kind].append("CAP_CHOWN")

    return edit


def test_spec_rootless_matches_runc(
    rootless_user: User, urt: UserCLI, urunc: UserCLI, workdir: Path
) -> None:
    ours, theirs = workdir / "ours", workdir / "theirs"
    for path in (ours, theirs):
        path.mkdir()
        os.chown(path, rootless_user.uid, rootless_user.gid)
    urt.ok("spec", "--rootless", "--bundle", str(ours))
    urunc.ok("spec", "--rootless", "--bundle", str(theirs))
    assert (ours / "config.json").read_text() == (theirs / "config.json").read_text()
    config = json.loads((ours / "config.json").read_text())
    assert config["linux"]["uidMappings"] == [
        {"containerID": 0, "hostID": rootless_user.uid, "size": 1}
    ]
    assert (ours / "config.json").stat().st_uid == rootless_user.uid


def test_single_id_mapping(
    rootless_user: User, urt: UserCLI, urunc: UserCLI, user_bundle: UserBundle, workdir: Path
) -> None:
    shared = shared_dir(rootless_user, workdir)
    script = "id; cat /proc/self/uid_map /proc/self/gid_map; touch /mnt/made-inside"
    b = user_bundle(["sh", "-c", script], edit=lambda c: bind(c, shared))
    out = urt.ok("run", "--bundle", str(b), "single")
    lines = out.splitlines()
    assert lines[0].startswith("uid=0(root) gid=0(root)")
    assert lines[1].split() == ["0", str(rootless_user.uid), "1"]
    assert lines[2].split() == ["0", str(rootless_user.gid), "1"]
    st = (shared / "made-inside").stat()
    assert (st.st_uid, st.st_gid) == (rootless_user.uid, rootless_user.gid)
    # runc, as the same user on the same bundle, sees the same
    (shared / "made-inside").unlink()
    assert urunc.ok("run", "--bundle", str(b), "single") == out
    assert urt.ok("list", "-q") == ""


def test_full_ranges_through_newuidmap(
    rootless_user: User, urt: UserCLI, urunc: UserCLI, user_bundle: UserBundle, workdir: Path
) -> None:
    shared = shared_dir(rootless_user, workdir)

    def edit(config: dict[str, Any]) -> None:
        full_ranges(rootless_user)(config)
        bind(config, shared)

    b = user_bundle(["sleep", "1000"], edit=edit)
    urt.ok("run", "--detach", "--bundle", str(b), "full")
    assert urt.ok("exec", "full", "id").startswith("uid=0(root) gid=0(root)")
    uid_map = [
        line.split()
        for line in urt.ok("exec", "full", "cat", "/proc/self/uid_map").split("\n")
        if line
    ]
    assert uid_map == [["0", str(rootless_user.uid), "1"], ["1", str(SUB_START), str(SUB_SIZE)]]
    # root in the container hands a file to a user of the container (CAP_CHOWN over its ids)
    urt.ok("exec", "full", "sh", "-c", "touch /mnt/given && chown 1000:1000 /mnt/given")
    assert urt.ok("exec", "--user", "1000:1000", "full", "id").startswith("uid=1000(user)")
    urt.ok("exec", "--user", "1000:1000", "full", "sh", "-c", "echo x > /mnt/given")
    st = (shared / "given").stat()
    assert (st.st_uid, st.st_gid) == (SUB_START + 999, SUB_START + 999)
    assert (shared / "given").read_text() == "x\n"
    # what runc shows for the same bundle
    urunc.ok("run", "--detach", "--bundle", str(b), "full")
    for args in (["id"], ["cat", "/proc/self/gid_map"]):
        assert urt.ok("exec", "full", *args) == urunc.ok("exec", "full", *args)
    assert urt.ok("exec", "-u", "1000:1000", "full", "id") == urunc.ok(
        "exec", "-u", "1000:1000", "full", "id"
    )


def test_lifecycle_in_default_root(rootless_user: User, user_bundle: UserBundle) -> None:
    """No --root: the state lives in $XDG_RUNTIME_DIR/pypod-runtime, owned by the user."""
    cid = f"life{os.getpid()}"
    b = user_bundle(["sleep", "1000"])
    state_dir = rootless_user.runtime_dir / "pypod-runtime" / cid

    def rt(*args: str) -> subprocess.CompletedProcess[str]:
        return rootless_user.run([PYPOD_RUNTIME, *args], cwd=b)

    try:
        proc = rt("create", cid)
        assert proc.returncode == 0, proc.stderr
        assert (state_dir / "state.json").stat().st_uid == rootless_user.uid
        st = json.loads(rt("state", cid).stdout)
        assert st["status"] == "created" and st["bundle"] == str(b)
        assert rt("start", cid).returncode == 0
        row = [line.split() for line in rt("list").stdout.splitlines() if line.startswith(cid)]
        assert row and row[0][2] == "running" and row[0][5] == rootless_user.name
        assert json.loads(rt("list", "--format", "json").stdout)[0]["id"] == cid
        pid = json.loads(rt("state", cid).stdout)["pid"]
        assert Path(f"/proc/{pid}").stat().st_uid == rootless_user.uid
        # no cgroup was made for it: cgroups are not delegated to the user here
        made = [p for p in new_manager("", cid, rootless=True).paths.values() if os.path.isdir(p)]
        assert made == [], "a rootless container created cgroups"
        assert rt("kill", cid, "KILL").returncode == 0
        deadline = time.monotonic() + 10
        while json.loads(rt("state", cid).stdout)["status"] != "stopped":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert rt("delete", cid).returncode == 0
        assert not state_dir.exists()
        assert rt("list", "-q").stdout == ""
    finally:
        rt("delete", "--force", cid)


def test_memory_limit_fails_clearly(urt: UserCLI, urunc: UserCLI, user_bundle: UserBundle) -> None:
    def edit(config: dict[str, Any]) -> None:
        config["linux"]["resources"] = {"memory": {"limit": 64 << 20}}

    b = user_bundle(["true"], edit=edit)
    proc = urt("run", "--bundle", str(b), "limited")
    assert proc.returncode == 1
    msg = messages(proc.stderr)
    assert "cannot set memory limits" in msg and "rootless" in msg, msg
    assert urt.ok("list", "-q") == ""
    assert not (urt.root / "limited").exists()
    # runc refuses it too ("cannot set memory limit: container could not join or create cgroup")
    proc = urunc("run", "--bundle", str(b), "limited")
    assert proc.returncode == 1 and "memory" in messages(proc.stderr)
