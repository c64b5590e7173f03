"""Network benchmarks for `make bench`: pypod against podman in one run (rootful).

- `run --rm busybox true` on each tool's default bridge network, interleaved, medians;
- throughput through a published port: a 200 MB file from busybox httpd in a container
  (`-p PORT:80`) to curl on the host at 127.0.0.1:PORT, best of a few rounds each;
- the same rootless, as a user made for the run: pypod with pasta (its default) against podman
  with slirp4netns (podman 4.3's default).

podman gets a private store and containers.conf (bench/images.py's, with the CNI backend this
machine's figures were measured with, MACHINE.md) and its default network on 10.87.0.0/16, so
that its bridge and pypod's (10.88.0.0/16) do not share a subnet.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from containers import IMAGE, Tool, _unmount_under, log
from images import CONTAINERS_CONF

from pypod.testing import find_busybox, make_busybox_rootfs

Row = tuple[str, float, float]
BIG_MB = 200


def _tools(work: Path, bin_dir: Path) -> tuple[Tool, Tool]:
    env = dict(os.environ)
    pypod = Tool("pypod", [str(bin_dir / "pypod"), "--root", str(work / "pypod-root"),
                           "--runroot", str(work / "pypod-run")], env)  # fmt: skip
    conf = work / "podman-conf"
    (conf / "networks").mkdir(parents=True)
    text = CONTAINERS_CONF.format(conf=conf).replace(
        "[network]\n", '[network]\ndefault_subnet = "10.87.0.0/16"\n'
    )
    (conf / "containers.conf").write_text(text)
    penv = {**env, "CONTAINERS_CONF": str(conf / "containers.conf")}
    podman = Tool("podman", ["podman", "--root", str(work / "podman-root"), "--runroot",
                             str(work / "podman-run"), "--tmpdir", str(work / "podman-tmp")],
                  penv)  # fmt: skip
    return pypod, podman


def bench_all(bin_dir: Path, n: int) -> list[Row]:
    if shutil.which("podman") is None or shutil.which("curl") is None:
        log("network: podman or curl is not installed, skipped")
        return []
    busybox = find_busybox()
    if busybox is None:
        log("network: busybox-static is not installed, skipped")
        return []
    rows: list[Row] = []
    work = Path(tempfile.mkdtemp(prefix="pypod-bench-net-", dir="/var/tmp"))
    pypod, podman = _tools(work, bin_dir)
    try:
        rootfs = make_busybox_rootfs(str(work / "rootfs"), busybox)
        with tarfile.open(work / "busybox.tar", "w") as tar:
            tar.add(rootfs, arcname=".")
        for tool in (pypod, podman):
            tool("import", "-q", str(work / "busybox.tar"), IMAGE)
        rows += _run_rm_bridge(pypod, podman, n)
        rows += _throughput(pypod, podman, work)
        rows += bench_rootless(n)
    finally:
        for tool in (pypod, podman):
            tool("rm", "-a", "-f", "-t", "0", check=False)
        podman("system", "reset", "-f", check=False)
        _unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)
    return rows


def _run_rm_bridge(pypod: Tool, podman: Tool, n: int) -> list[Row]:
    times: dict[str, list[float]] = {"pypod": [], "podman": []}
    args = ("run", "--rm", "--network", "bridge", IMAGE, "true")
    for i in range(n + 2):
        for tool in (pypod, podman):
            t = tool.timed(*args)
            if i >= 2:
                times[tool.name].append(t)
    return [("run --rm busybox true, bridge network: pypod vs podman",
             statistics.median(times["pypod"]), statistics.median(times["podman"]))]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _throughput(pypod: Tool, podman: Tool, work: Path) -> list[Row]:
    site = work / "site"
    site.mkdir()
    with open(site / "big", "wb") as f:
        f.truncate(BIG_MB * 1024 * 1024)  # sparse: the page cache serves it, disks stay out
    urls = {}
    for tool in (pypod, podman):
        port = _free_port()
        tool("run", "-d", "--network", "bridge", "--name", "web", "-p", f"{port}:80", "-v",
             f"{site}:/srv:ro", IMAGE,
             "httpd", "-f", "-p", "80", "-h", "/srv")  # fmt: skip
        urls[tool.name] = f"http://127.0.0.1:{port}/big"
    # both servers up, the downloads interleaved: what the machine does meanwhile (other
    # load, frequency) weighs on both alike; the best of each
    best = _interleaved_best(urls, 7)
    for tool in (pypod, podman):
        log(f"{tool.name} published port: {BIG_MB / best[tool.name]:.0f} MB/s")
        tool("rm", "-f", "-t", "0", "web")
    return [(f"{BIG_MB} MB through a published port (time): pypod vs podman", best["pypod"],
             best["podman"])]  # fmt: skip


# --- rootless: pasta (pypod's default) against podman's slirp4netns ----------------------------
PODMAN_ROOTLESS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=30000:30000"]
[network]
default_rootless_network_cmd = "slirp4netns"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


def bench_rootless(n: int) -> list[Row]:
    """200 MB through a published port, rootless: pypod with pasta, podman with slirp4netns.

    A user with a subordinate range is made for the run (tests/rootless_support.py) and
    removed after; /dev/net/tun, 0600 on these VMs, is opened to the user meanwhile (pasta
    and slirp4netns need it) and restored."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests import rootless_support as rs

    reason = rs.probe()
    if reason or shutil.which("pasta") is None or shutil.which("slirp4netns") is None:
        log(f"network: rootless skipped: {reason or 'pasta or slirp4netns is not installed'}")
        return []
    tun = Path("/dev/net/tun")
    tun_mode = tun.stat().st_mode & 0o777
    user = rs.create_user()
    work = Path(tempfile.mkdtemp(prefix="pypod-bench-rl-", dir="/tmp"))
    try:
        tun.chmod(0o666)
        work.chmod(0o755)
        pypod = rs.UserPypod(user, rs.install_pypod(work / "lib"))
        tar = rs.make_busybox_tar(work)
        conf = work / "containers.conf"
        conf.write_text(PODMAN_ROOTLESS_CONF)
        conf.chmod(0o644)
        penv = user.env(CONTAINERS_CONF=str(conf))

        def podman(*args: str) -> str:
            proc = user.run(["podman", *args], env=penv, timeout=120)
            if proc.returncode != 0:
                raise SystemExit(f"podman (rootless) {' '.join(args)} failed: {proc.stderr}")
            return proc.stdout

        pypod.ok("import", "-q", str(tar), IMAGE, timeout=120)
        podman("import", "-q", str(tar), IMAGE)
        site = work / "site"
        site.mkdir(mode=0o755)
        with open(site / "big", "wb") as f:
            f.truncate(BIG_MB * 1024 * 1024)
        (site / "big").chmod(0o644)
        runs = {
            "pypod": lambda *a: pypod.ok(*a, timeout=120),
            "podman": podman,
        }
        nets = {"pypod": "pasta", "podman": "slirp4netns"}
        urls = {}
        for name, tool in runs.items():
            port = _free_port()
            tool("run", "-d", "--network", nets[name], "--name", "web", "-p", f"{port}:80", "-v",
                 f"{site}:/srv:ro", IMAGE, "httpd", "-f", "-p", "80", "-h", "/srv")  # fmt: skip
            urls[name] = f"http://127.0.0.1:{port}/big"
        best = _interleaved_best(urls, 7)
        for name, tool in runs.items():
            log(f"{name} rootless ({nets[name]}) published port: {BIG_MB / best[name]:.0f} MB/s")
            tool("rm", "-f", "-t", "0", "web")
        return [(f"{BIG_MB} MB, rootless: pypod+pasta vs podman+slirp4netns", best["pypod"],
                 best["podman"])]  # fmt: skip
    finally:
        tun.chmod(tun_mode)
        rs.remove_user(user.name)
        shutil.rmtree(work, ignore_errors=True)


def _interleaved_best(urls: dict[str, str], rounds: int) -> dict[str, float]:
    """The best download time of each of `urls` (by name), rounds taken in turn."""
    for who, url in urls.items():
        _fetch_best(url, who, 1)  # answers (and warms up)
    times: dict[str, list[float]] = {who: [] for who in urls}
    for _ in range(rounds):
        for who, url in urls.items():
            t = time.perf_counter()
            subprocess.run(["curl", "-sf", "-o", "/dev/null", url], check=True)
            times[who].append(time.perf_counter() - t)
    return {who: min(ts) for who, ts in times.items()}


def _fetch_best(url: str, who: str, rounds: int) -> float:
    """The best time of `rounds` downloads of `url` (once it answers)."""
    deadline = time.monotonic() + 10
    while subprocess.run(["curl", "-sf", "-o", "/dev/null", "-r", "0-0", url],
                         check=False).returncode != 0:  # fmt: skip
        if time.monotonic() > deadline:
            raise SystemExit(f"{who}: {url} does not answer")
        time.sleep(0.1)
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        subprocess.run(["curl", "-sf", "-o", "/dev/null", url], check=True)
        times.append(time.perf_counter() - t)
    return min(times)
