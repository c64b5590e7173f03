"""The reference tools (podman, buildah) beside pypod in tests: their configuration on these
machines, and a podman sandbox.

MACHINE.md: podman and buildah need a containers.conf that keeps the rlimits under the hard
limit of these machines and runs runc (crun refuses the hybrid cgroups here); every test gives
them a store of their own so that nothing else on the machine is touched.

`podman_sandbox` is the side-by-side setup of the compat tests: podman (netavark, cgroupfs,
file events, all under one directory in /tmp) and pypod, each on a store of its own below that
directory, the busybox image imported into both as `localhost/busybox`; afterwards every pod,
container and network is removed, podman's store reset and unmounted, and the pod cgroups the
tools left behind removed.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import BIN, run_captured
from tests.engine_support import make_busybox_tar, unmount_below

#: what podman and buildah need on these machines (MACHINE.md), and nothing else
MINIMAL_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=30000:30000"]
[engine]
runtime = "runc"
"""


def reference_env(base: Path, conf: str = MINIMAL_CONF) -> dict[str, str]:
    """The environment that gives podman or buildah `conf` as their containers.conf (written
    to `base`/containers.conf)."""
    path = base / "containers.conf"
    path.write_text(conf)
    return {**os.environ, "CONTAINERS_CONF": str(path)}


#: podman with everything in one directory (`{store}`), no network (CNI, netns none), runc
_PRIVATE_CONF = """\
[containers]
{containers}default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]
netns = "none"

[network]
network_backend = "cni"
network_config_dir = "{store}/networks"

[engine]
runtime = "runc"
{engine}cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{store}/events.log"
tmp_dir = "{store}/tmp"
lock_type = "file"
static_dir = "{store}/root/libpod"
volume_path = "{store}/root/volumes"
"""
_PRIVATE_STORAGE_CONF = """\
[storage]
driver = "overlay"
graphroot = "{store}/root"
runroot = "{store}/run"
"""


def write_private_store(
    store: Path,
    *,
    containers: str = "",
    engine: str = "",
    nofile: int = 20000,
    nproc: int = 30000,
    name: str = "containers.conf",
) -> None:
    """The configuration of a podman that keeps everything in `store` (the containers.conf
    `name`, storage.conf, an empty registries.conf, the networks and tmp directories), with no
    network and runc; `containers` and `engine`: more lines for those tables."""
    for sub in ("networks", "tmp"):
        (store / sub).mkdir(exist_ok=True)
    conf = _PRIVATE_CONF.format(
        store=store, containers=containers, engine=engine, nofile=nofile, nproc=nproc
    )
    (store / name).write_text(conf)
    (store / "storage.conf").write_text(_PRIVATE_STORAGE_CONF.format(store=store))
    (store / "registries.conf").write_text("")


def private_store_env(store: Path, conf: str = "containers.conf") -> dict[str, str]:
    """The environment of a podman on the store `write_private_store` made."""
    return {
        **os.environ,
        "CONTAINERS_CONF": str(store / conf),
        "CONTAINERS_STORAGE_CONF": str(store / "storage.conf"),
        "CONTAINERS_REGISTRIES_CONF": str(store / "registries.conf"),
    }


def podman_cgroups() -> set[str]:
    """podman's cgroupfs parents (and conmon's cgroup below them) that exist now."""
    found = set()
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        for sub in ("libpod_parent/conmon", "libpod_parent"):
            if (hierarchy / sub).is_dir():
                found.add(str(hierarchy / sub))
    return found


@contextlib.contextmanager
def private_store_cleanup(store: Path, podman: Callable[..., object]) -> Iterator[None]:
    """Afterwards, even on failure: the containers of `podman` (a podman on `store`) removed,
    its store reset, unmounted and deleted, and the podman cgroups it left removed."""
    cgroups_before = podman_cgroups()
    try:
        yield
    finally:
        podman("rm", "--all", "--force", "--time", "0")
        podman("system", "reset", "--force")
        unmount_below(store)
        shutil.rmtree(store, ignore_errors=True)
        for cgroup in sorted(podman_cgroups() - cgroups_before, reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(cgroup)


IMAGE = "localhost/busybox"
#: the tools' default networks, never removed
DEFAULT_NETWORKS = ("podman", "pypod")

Tool = Callable[..., subprocess.CompletedProcess[str]]


def sandbox_conf(store: Path, *, default_subnet: str | None = None) -> str:
    """podman's containers.conf for a sandbox in `store`: netavark with its configurations in
    the store, runc, cgroupfs, events in a file of the store."""
    subnet = f'default_subnet = "{default_subnet}"\n' if default_subnet else ""
    return (
        '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=30000:30000"]\n'
        f'[network]\nnetwork_backend = "netavark"\nnetwork_config_dir = "{store}/networks"\n'
        f"{subnet}"
        f'[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
        f'events_logfile_path = "{store}/events.log"\n'
    )


def pod_cgroups() -> set[str]:
    """The pods' cgroup directories (podman's and pypod's) in every cgroup hierarchy."""
    found = glob.glob("/sys/fs/cgroup/*/libpod_parent/*") + glob.glob(
        "/sys/fs/cgroup/*/pypod_parent/*"
    )
    return {p for p in found if re.fullmatch(r"[0-9a-f]{64}", os.path.basename(p))}


def both(tools: dict[str, Tool], *args: str) -> dict[str, subprocess.CompletedProcess[str]]:
    """The same command through each tool."""
    return {name: tool(*args) for name, tool in tools.items()}


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _require(*, catatonit: bool) -> None:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (apt-get install podman)")
    if not any(os.path.exists(f"{d}/netavark") for d in ("/usr/lib/podman", "/usr/libexec/podman")):
        pytest.skip("netavark is not installed (apt-get install netavark aardvark-dns)")
    if catatonit and shutil.which("catatonit") is None:
        pytest.skip("catatonit is not installed (apt-get install catatonit)")


def _runner(argv: list[str], env: dict[str, str]) -> Tool:
    def run(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_captured([*argv, *args], env=env, cwd=cwd, timeout=120)

    return run


@contextlib.contextmanager
def podman_sandbox(
    prefix: str,
    work: Path | None,
    *,
    catatonit: bool = False,
    default_subnet: str | None = None,
) -> Iterator[dict[str, Tool]]:
    """{"podman": ..., "pypod": ...}: each tool's calls, `tool(*args, cwd=None)`, on a store of
    its own (`<sandbox>/<tool>/{root,run,tmp}`) in a directory of /tmp named `prefix...`
    (podman wants a runroot under 50 characters).  With `work` (a scratch directory), the
    busybox image is imported into both as `localhost/busybox`; without, podman's networking
    must at least start.  Skips with the reason when podman, netavark or (`catatonit`)
    catatonit is missing."""
    _require(catatonit=catatonit)
    busybox = make_busybox_tar(work) if work is not None else None
    store = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    env = reference_env(store, sandbox_conf(store, default_subnet=default_subnet))
    exes = {"podman": shutil.which("podman") or "podman", "pypod": str(BIN / "pypod")}
    tools = {}
    for name, exe in exes.items():
        (store / name / "tmp").mkdir(parents=True)
        tools[name] = _runner([exe, "--root", str(store / name / "root"), "--runroot",
                               str(store / name / "run"), "--tmpdir", str(store / name / "tmp")],
                              env)  # fmt: skip
    cgroups_before = pod_cgroups()
    try:
        if busybox is not None:
            for tool in tools.values():
                proc = tool("import", "-q", str(busybox), IMAGE)
                if proc.returncode != 0:
                    pytest.skip(f"cannot import busybox: {proc.stderr}")
        elif tools["podman"]("network", "ls").returncode != 0:
            pytest.skip("podman with netavark does not start here")
        yield tools
    finally:
        for tool in tools.values():
            tool("pod", "rm", "-a", "-f", "-t", "0")
            tool("rm", "-a", "-f", "-t", "0")
            for name in tool("network", "ls", "-q").stdout.split():
                if name not in DEFAULT_NETWORKS:
                    tool("network", "rm", "-f", name)
        tools["podman"]("system", "reset", "-f")
        subprocess.run(["umount", "-R", str(store / "podman" / "root" / "overlay")],
                       capture_output=True, check=False)  # fmt: skip
        shutil.rmtree(store, ignore_errors=True)
        for path in sorted(pod_cgroups() - cgroups_before):  # podman leaves some behind
            with contextlib.suppress(OSError):
                os.rmdir(path)


@contextlib.contextmanager
def podman_for_images(driver: str = "overlay") -> Iterator[Callable[..., str]]:
    """podman for image commands (pull, push, load, save, images...) on a store of its own in
    /tmp: `podman(*args)` returns the output of a command that must succeed.  Its images are
    removed and its store deleted afterwards; skips when podman is not installed."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    store = Path(tempfile.mkdtemp(prefix="ppm", dir="/tmp"))  # podman: runroot < 50 characters
    (store / "tmp").mkdir()
    env = reference_env(store, '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
                               f'events_logfile_path = "{store}/events.log"\n')  # fmt: skip
    base = ["podman", "--root", str(store / "root"), "--runroot", str(store / "run"),
            "--tmpdir", str(store / "tmp"), "--storage-driver", driver]  # fmt: skip

    def podman(*args: str) -> str:
        proc = run_captured([*base, *args], env=env, timeout=120)
        assert proc.returncode == 0, f"podman {args}: {proc.stderr}"
        return proc.stdout

    try:
        yield podman
    finally:
        subprocess.run([*base, "rmi", "-a", "-f"], env=env, capture_output=True, check=False)
        unmount_below(store)
        shutil.rmtree(store, ignore_errors=True)
