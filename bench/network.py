"""Network benchmarks for `make bench`: pypod against podman in one run (rootful).

- `run --rm busybox true` on each tool's default bridge network, interleaved, medians;
- throughput through a published port: a 200 MB file from busybox httpd in a container
  (`-p PORT:80`) to curl on the host at 127.0.0.1:PORT, best of a few rounds each.

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
    best: dict[str, float] = {}
    for tool in (pypod, podman):
        port = _free_port()
        tool("run", "-d", "--network", "bridge", "--name", "web", "-p", f"{port}:80", "-v",
             f"{site}:/srv:ro", IMAGE,
             "httpd", "-f", "-p", "80", "-h", "/srv")  # fmt: skip
        url = f"http://127.0.0.1:{port}/big"
        deadline = time.monotonic() + 10
        while subprocess.run(["curl", "-sf", "-o", "/dev/null", "-r", "0-0", url],
                             check=False).returncode != 0:  # fmt: skip
            if time.monotonic() > deadline:
                raise SystemExit(f"{tool.name}: {url} does not answer")
            time.sleep(0.1)
        times = []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run(["curl", "-sf", "-o", "/dev/null", url], check=True)
            times.append(time.perf_counter() - t)
        best[tool.name] = min(times)
        log(f"{tool.name} published port: {BIG_MB / best[tool.name]:.0f} MB/s")
        tool("rm", "-f", "-t", "0", "web")
    return [(f"{BIG_MB} MB through a published port (time): pypod vs podman", best["pypod"],
             best["podman"])]  # fmt: skip
