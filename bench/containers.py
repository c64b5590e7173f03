"""Container benchmarks for `make bench`: run, run -d, ps, pypod against podman in one run.

- `run --rm busybox true` (`--network none` on both sides), interleaved, medians;
- 20 x `run -d busybox sleep 1000`: the total wall time of each tool, then the memory of each
  monitor (pypod's monitor, podman's conmon): RSS and PSS from /proc/PID/smaps_rollup;
- `ps -a` with 100 containers (created, not started), medians.

Both tools get a private store under /var/tmp and the busybox image imported from the same
tarball (Debian's busybox-static); podman uses runc and cgroupfs (MACHINE.md).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from images import CONTAINERS_CONF  # bench/images.py: podman's containers.conf for benches

from pypod.testing import find_busybox, make_busybox_rootfs

Row = tuple[str, float, float]

IMAGE = "localhost/busybox:latest"


def log(msg: str) -> None:
    print(f"bench: {msg}", flush=True)


class Tool:
    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name, self.argv, self.env = name, argv, env

    def __call__(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run([*self.argv, *args], env=self.env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)  # fmt: skip
        if check and proc.returncode != 0:
            raise SystemExit(f"{self.name} {' '.join(args)} failed: {proc.stderr}")
        return proc.stdout

    def timed(self, *args: str) -> float:
        t = time.perf_counter()
        self(*args)
        return time.perf_counter() - t


def _tools(work: Path, bin_dir: Path) -> tuple[Tool, Tool]:
    env = dict(os.environ)
    pypod = Tool("pypod", [str(bin_dir / "pypod"), "--root", str(work / "pypod-root"),
                           "--runroot", str(work / "pypod-run")], env)  # fmt: skip
    conf = work / "podman-conf"
    (conf / "networks").mkdir(parents=True)
    (conf / "containers.conf").write_text(CONTAINERS_CONF.format(conf=conf))
    penv = {**env, "CONTAINERS_CONF": str(conf / "containers.conf")}
    podman = Tool("podman", ["podman", "--root", str(work / "podman-root"), "--runroot",
                             str(work / "podman-run"), "--tmpdir", str(work / "podman-tmp")],
                  penv)  # fmt: skip
    return pypod, podman


def _memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes of `pid`."""
    rss = pss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Rss:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
    return rss, pss


def _unmount_under(path: Path) -> None:
    prefix = str(path).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f if line.split()[4].startswith(prefix)]
    for point in sorted(points, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def bench_all(bin_dir: Path, n: int) -> list[Row]:
    if shutil.which("podman") is None:
        log("containers: podman is not installed, skipped")
        return []
    busybox = find_busybox()
    if busybox is None:
        log("containers: busybox-static is not installed, skipped")
        return []
    rows: list[Row] = []
    work = Path(tempfile.mkdtemp(prefix="pypod-bench-ctr-", dir="/var/tmp"))
    pypod, podman = _tools(work, bin_dir)
    try:
        rootfs = make_busybox_rootfs(str(work / "rootfs"), busybox)
        with tarfile.open(work / "busybox.tar", "w") as tar:
            tar.add(rootfs, arcname=".")
        for tool in (pypod, podman):
            tool("import", "-q", str(work / "busybox.tar"), IMAGE)
        rows += _run_rm(pypod, podman, n)
        rows += _run_detached(pypod, podman)
        rows += _ps(pypod, podman, n)
    finally:
        for tool in (pypod, podman):
            tool("rm", "-a", "-f", "-t", "0", check=False)
        podman("system", "reset", "-f", check=False)
        _unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)
    return rows


def _run_rm(pypod: Tool, podman: Tool, n: int) -> list[Row]:
    times: dict[str, list[float]] = {"pypod": [], "podman": []}
    args = ("run", "--rm", "--network", "none", IMAGE, "true")
    for i in range(n + 2):
        for tool in (pypod, podman):
            t = tool.timed(*args)
            if i >= 2:
                times[tool.name].append(t)
    return [("run --rm busybox true: pypod vs podman", statistics.median(times["pypod"]),
             statistics.median(times["podman"]))]  # fmt: skip


def _run_detached(pypod: Tool, podman: Tool) -> list[Row]:
    totals = {}
    memory: dict[str, list[tuple[int, int]]] = {}
    for tool in (pypod, podman):
        t = time.perf_counter()
        for _ in range(20):
            tool("run", "-d", "--network", "none", IMAGE, "sleep", "1000")
        totals[tool.name] = time.perf_counter() - t
        ids = tool("ps", "-q", "--no-trunc").split()
        pids = [int(tool("inspect", "--format", "{{.State.ConmonPid}}", cid).strip())
                for cid in ids]  # fmt: skip
        memory[tool.name] = [_memory(pid) for pid in pids if pid > 0]
        tool("rm", "-a", "-f", "-t", "0")
    for name, mems in memory.items():
        if mems:
            rss = statistics.median(m[0] for m in mems) / 1e6
            pss = statistics.median(m[1] for m in mems) / 1e6
            label = "monitor" if name == "pypod" else "conmon"
            log(f"{name} {label} per container: RSS {rss:.2f} MB, PSS {pss:.2f} MB")
    return [("20 x run -d busybox sleep: pypod vs podman", totals["pypod"], totals["podman"])]


def _ps(pypod: Tool, podman: Tool, n: int) -> list[Row]:
    for tool in (pypod, podman):
        for _ in range(100):
            tool("create", "--network", "none", IMAGE, "true")
    times: dict[str, list[float]] = {"pypod": [], "podman": []}
    for i in range(n + 2):
        for tool in (pypod, podman):
            t = tool.timed("ps", "-a")
            if i >= 2:
                times[tool.name].append(t)
    return [("ps -a with 100 containers: pypod vs podman", statistics.median(times["pypod"]),
             statistics.median(times["podman"]))]  # fmt: skip


if __name__ == "__main__":
    for row in bench_all(Path(sys.executable).parent, 5):
        print(row)
