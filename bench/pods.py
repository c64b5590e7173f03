"""Pod benchmarks for `make bench`: pypod against podman in one run, interleaved, medians.

- `pod create` + 2 x `run -d --pod POD busybox sleep 1000` + `pod rm -f -t 0 POD`, the pods
  on `--network none` (as the container benches run);
- the same with the pod on the default bridge network and a published port (`-p`).

The first pod of each tool is made before timing (it builds the infra image: podman's
`podman-pause`, pypod's `pypod-pause`, from the host's catatonit).  Both tools get a private
store under /var/tmp and the busybox image imported from the same tarball; podman uses runc
and cgroupfs (MACHINE.md).
"""

from __future__ import annotations

import shutil
import socket
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

from containers import IMAGE, Row, Tool, _tools, _unmount_under, log

from pypod.testing import find_busybox, make_busybox_rootfs


def bench_all(bin_dir: Path, n: int) -> list[Row]:
    if shutil.which("podman") is None:
        log("pods: podman is not installed, skipped")
        return []
    if shutil.which("catatonit") is None:
        log("pods: catatonit is not installed (the infra image is built from it), skipped")
        return []
    busybox = find_busybox()
    if busybox is None:
        log("pods: busybox-static is not installed, skipped")
        return []
    rows: list[Row] = []
    work = Path(tempfile.mkdtemp(prefix="pypod-bench-pod-", dir="/var/tmp"))
    pypod, podman = _tools(work, bin_dir)
    try:
        rootfs = make_busybox_rootfs(str(work / "rootfs"), busybox)
        with tarfile.open(work / "busybox.tar", "w") as tar:
            tar.add(rootfs, arcname=".")
        for tool in (pypod, podman):
            tool("import", "-q", str(work / "busybox.tar"), IMAGE)
            _cycle(tool, "warm", ("--network", "none"))  # builds the infra image
        rows.append(_measure(pypod, podman, n, ("--network", "none"), "--network none"))
        try:
            rows.append(_measure(pypod, podman, n, None, "bridge, -p"))
        except SystemExit as e:  # a tool without a working bridge here: say so, go on
            log(f"pods: the bridge variant failed: {e}")
    finally:
        for tool in (pypod, podman):
            tool("pod", "rm", "-a", "-f", "-t", "0", check=False)
            tool("rm", "-a", "-f", "-t", "0", check=False)
        podman("system", "reset", "-f", check=False)
        _unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)
    return rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cycle(tool: Tool, name: str, net: tuple[str, ...] | None) -> float:
    """One pod's life: create, two members, remove; its wall time."""
    flags = net if net is not None else ("-p", f"{_free_port()}:80")
    t = time.perf_counter()
    tool("pod", "create", "--name", name, *flags)
    for _ in range(2):
        tool("run", "-d", "--pod", name, IMAGE, "sleep", "1000")
    tool("pod", "rm", "-f", "-t", "0", name)
    return time.perf_counter() - t


def _measure(pypod: Tool, podman: Tool, n: int, net: tuple[str, ...] | None,
             label: str) -> Row:  # fmt: skip
    times: dict[str, list[float]] = {"pypod": [], "podman": []}
    for i in range(max(n, 3)):
        for tool in (pypod, podman):
            times[tool.name].append(_cycle(tool, f"bench{i}", net))
    return (
        f"pod create + 2 x run -d --pod + pod rm -f ({label})",
        statistics.median(times["pypod"]),
        statistics.median(times["podman"]),
    )


if __name__ == "__main__":  # `python bench/pods.py`: this bench alone
    import os
    import sys

    if os.geteuid() != 0:
        sys.exit("bench: run as root (containers are created)")
    here = Path(__file__).resolve().parent
    bin_dir = here.parent / ".venv" / "bin"
    for name, ours, ref in bench_all(bin_dir, 5):
        print(f"{name:<64} {ours * 1000:>8.1f}ms {ref * 1000:>8.1f}ms {ours / ref:>7.2f}")
