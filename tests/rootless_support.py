"""Test support for rootless `pypod`: a test user with subordinate ids and pypod runnable by it.

`rootless_user` (session) creates a user `pypodr<pid>` with a /etc/subuid and /etc/subgid
range, a home and an XDG_RUNTIME_DIR, and removes all of it at the end (leaving the machine as
found; users left by a killed session are removed the next time).  The repository may live
where that user cannot read (CI clones under /root, mode 0700), so `rootless_install` copies
the `pypod` package and the third-party packages it imports into a world-readable temporary
directory and runs `/usr/bin/python3.11 -c 'pypod.cli.engine.main'` with PYTHONPATH pointing
there — what the `pypod` console script (pyproject.toml) would run.  `UserPypod` is `pypod` run
as that user with its own default locations (~/.local/share/pypod, $XDG_RUNTIME_DIR/pypod).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import pypod
from pypod.testing import find_busybox
from tests import engine_support
from tests.conftest import run_captured

USER_PREFIX = "pypodr"
#: below the range test_runtime_rootless.py uses (200000:65536), so both can coexist
SUB_START, SUB_SIZE = 300000, 65536
SUB_RANGE = f"{SUB_START}-{SUB_START + SUB_SIZE - 1}"
IMAGE = "localhost/busybox"
#: third-party packages pypod imports (pyproject.toml dependencies)
THIRD_PARTY = ("zstandard", "isal")
PYTHON = "/usr/bin/python3.11"
#: where files the user must read go: not $TMPDIR (it may be root's alone), /tmp (mode 1777)
TMP = "/tmp"


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    home: Path

    @property
    def runtime_dir(self) -> Path:
        return self.home / "run"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            **extra,
        }

    def run(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        input: str | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run argv as the user (output to files: a detached container keeps its stdio)."""
        return run_captured(
            argv,
            input=input,
            timeout=timeout,
            user=self.uid,
            group=self.gid,
            extra_groups=[self.gid],
            env=env or self.env(),
            cwd=self.home,
        )

    def processes(self) -> list[int]:
        """Pids of every process running with the user's (real) uid."""
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError):
                    if os.stat(f"/proc/{entry}").st_uid == self.uid:
                        pids.append(int(entry))
        return pids


def probe() -> str | None:
    """Why rootless tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root to create the rootless test user"
    for tool in ("useradd", "usermod", "userdel", "newuidmap", "newgidmap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install passwd uidmap)"
    if not os.path.exists(PYTHON):
        return f"{PYTHON} is not installed (apt-get install python3.11)"
    for path, bad in (
        ("/proc/sys/kernel/unprivileged_userns_clone", "0"),
        ("/proc/sys/user/max_user_namespaces", "0"),
    ):
        with contextlib.suppress(OSError):
            if Path(path).read_text().strip() == bad:
                return f"unprivileged user namespaces are disabled ({path} is {bad})"
    if find_busybox() is None:
        return "busybox-static is not installed (apt-get install busybox-static)"
    return None


def create_user(*, ranges: bool = True) -> User:
    """A new user: with the subordinate range SUB_RANGE, or (`ranges` false, name ending in
    "s") with none, which gets a single-id mapping."""
    for stale in pwd.getpwall():  # left by a session that was killed before its teardown
        pid = stale.pw_name.removeprefix(USER_PREFIX).removesuffix("s")
        stale_user = stale.pw_name.startswith(USER_PREFIX) and pid.isdigit()
        if stale_user and not Path(f"/proc/{pid}").exists():
            remove_user(stale.pw_name)
    name = f"{USER_PREFIX}{os.getpid()}{'' if ranges else 's'}"
    subprocess.run(
        ["useradd", "-m", "-s", "/bin/sh", "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", name],
        check=True,
        capture_output=True,
    )
    try:
        if ranges:
            subprocess.run(
                ["usermod", "--add-subuids", SUB_RANGE, "--add-subgids", SUB_RANGE, name],
                check=True,
                capture_output=True,
            )
        pw = pwd.getpwnam(name)
        user = User(name, pw.pw_uid, pw.pw_gid, Path(pw.pw_dir))
        user.runtime_dir.mkdir(mode=0o700)
        os.chown(user.runtime_dir, user.uid, user.gid)
    except BaseException:
        remove_user(name)
        raise
    return user


def kill_user_processes(uid: int) -> None:
    """SIGKILL every process of `uid` (the pause process, monitors, containers)."""
    for _ in range(20):
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError):
                    if os.stat(f"/proc/{entry}").st_uid == uid:
                        pids.append(int(entry))
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def remove_user(name: str) -> None:
    """The user's processes, the user, its group, home (with files of its subordinate ids,
    which userdel -r may leave) and subordinate id entries."""
    with contextlib.suppress(KeyError):
        pw = pwd.getpwnam(name)
        kill_user_processes(pw.pw_uid)
        _unmount_below(pw.pw_dir)
    subprocess.run(
        ["usermod", "--del-subuids", SUB_RANGE, "--del-subgids", SUB_RANGE, name],
        capture_output=True,
    )
    home = None
    with contextlib.suppress(KeyError):
        home = pwd.getpwnam(name).pw_dir
    subprocess.run(["userdel", "-r", "-f", name], capture_output=True)
    if home and os.path.isdir(home) and home.startswith("/home/"):
        shutil.rmtree(home, ignore_errors=True)
    for path in ("/etc/subuid", "/etc/subgid"):
        lines = Path(path).read_text().splitlines()
        assert not [line for line in lines if line.startswith(name + ":")], path


def _unmount_below(path: str) -> None:
    """Mounts of the host's namespace below `path` (rootless mounts live in the pause
    process's namespace and vanish with it; this is for a bug that leaked one)."""
    with open("/proc/self/mountinfo") as f:
        targets = [line.split()[4] for line in f]
    for target in sorted(targets, key=len, reverse=True):
        if target == path or target.startswith(path.rstrip("/") + "/"):
            subprocess.run(["umount", "-l", target], capture_output=True)


def install_pypod(dest: Path) -> dict[str, str]:
    """Copy pypod and its third-party packages under `dest` (world-readable); the environment
    entries that make `PYTHON -m`-style runs find them."""
    src = Path(pypod.__file__).parent
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(src, dest / "pypod", ignore=ignore)
    for name in _third_party():
        where = _package_path(name)
        if where is not None and where.is_dir():
            shutil.copytree(where, dest / name, ignore=ignore)
        elif where is not None:  # a single module (or extension) file
            shutil.copy2(where, dest / where.name)
    for dirpath, _dirnames, filenames in os.walk(dest):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o644 if not f.endswith(".so") else 0o755)
    os.chmod(dest, 0o755)
    return {"PYTHONPATH": str(dest), "PYTHONDONTWRITEBYTECODE": "1"}


def _third_party() -> list[str]:
    """The top-level packages of pypod's runtime dependencies (pyproject.toml), or THIRD_PARTY
    when the installed metadata cannot say."""
    import importlib.metadata as metadata
    import re

    try:
        requires = metadata.requires("pypod") or []
        found: list[str] = []
        for req in requires:
            if "extra ==" in req:
                continue
            dist = metadata.distribution(re.split(r"[\s<>=!;\[]", req, maxsplit=1)[0])
            top = dist.read_text("top_level.txt") or ""
            found += [line.strip() for line in top.splitlines() if line.strip()]
    except metadata.PackageNotFoundError:
        return list(THIRD_PARTY)
    return sorted(set(found)) or list(THIRD_PARTY)


def _package_path(name: str) -> Path | None:
    """A package's directory, or a top-level module's file."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return None
    origin = Path(spec.origin)
    return origin.parent if spec.submodule_search_locations is not None else origin


PYPOD_MAIN = "import sys; from pypod.cli.engine.main import main; sys.exit(main())"


class UserPypod:
    """`pypod ARGS` run as the test user, with its default (rootless) locations."""

    def __init__(self, user: User, pythonpath_env: dict[str, str]) -> None:
        self.user = user
        self.extra_env = pythonpath_env

    @property
    def argv(self) -> list[str]:
        return [PYTHON, "-c", PYPOD_MAIN]

    def env(self, **extra: str) -> dict[str, str]:
        return self.user.env(**self.extra_env, **extra)

    def __call__(
        self, *args: str, input: str | None = None, timeout: float = 60, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return self.user.run([*self.argv, *args], env=self.env(**env), input=input, timeout=timeout)

    def ok(self, *args: str, input: str | None = None, timeout: float = 60) -> str:
        proc = self(*args, input=input, timeout=timeout)
        assert proc.returncode == 0, f"{args}: rc={proc.returncode}\n{proc.stderr}{proc.stdout}"
        return proc.stdout

    def fails(self, code: int, *args: str) -> str:
        proc = self(*args)
        assert (
            proc.returncode == code
        ), f"{args}: rc={proc.returncode}, wanted {code}\n{proc.stderr}{proc.stdout}"
        return proc.stderr


@contextlib.contextmanager
def device_opened(path: str) -> Iterator[None]:
    """`path` (a device node: /dev/net/tun for pasta and slirp4netns, /dev/fuse for
    fuse-overlayfs) readable and writable by everyone meanwhile, as Debian ships them (these
    VMs make them 0600); its mode put back after."""
    if not os.path.exists(path):
        pytest.skip(f"{path} is missing")
    mode = os.stat(path).st_mode & 0o7777
    if mode & 0o006 != 0o006:
        os.chmod(path, mode | 0o666)
    try:
        yield
    finally:
        os.chmod(path, mode)


def make_busybox_tar(dest: Path) -> Path:
    """The busybox image's tar, readable by the test user."""
    tar_path = engine_support.make_busybox_tar(dest)
    os.chmod(tar_path, 0o644)
    return tar_path


#: the session's user and pypod, shared by every test module that imports the fixtures (each
#: import is a fixture of its own for pytest: the first one makes them and tears them down)
_SESSION: dict[str, Any] = {}


@pytest.fixture(scope="session")
def rootless_user() -> Iterator[User]:
    if "user" in _SESSION:
        yield _SESSION["user"]
        return
    reason = probe()
    if reason:
        pytest.skip(reason)
    user = create_user()
    _SESSION["user"] = user
    try:
        yield user
    finally:
        del _SESSION["user"]
        remove_user(user.name)


@pytest.fixture(scope="session")
def rootless_pypod(rootless_user: User) -> Iterator[UserPypod]:
    """pypod installed for the user, its default store holding `localhost/busybox`."""
    if "pypod" in _SESSION:
        yield _SESSION["pypod"]
        return
    with tempfile.TemporaryDirectory(prefix="pypod-rootless-", dir=TMP) as tmp:
        base = Path(tmp)
        os.chmod(base, 0o755)
        env = install_pypod(base / "lib")
        p = UserPypod(rootless_user, env)
        tar = make_busybox_tar(base)
        p.ok("import", "-q", str(tar), IMAGE, timeout=120)
        _SESSION["pypod"] = p
        try:
            yield p
        finally:
            del _SESSION["pypod"]
            p("rm", "--all", "--force", "--time", "0", timeout=120)
            kill_user_processes(rootless_user.uid)
