"""`make bench`: pypod against the reference tools, measured side by side in one run.

Prints medians and ratios (pypod / reference); a ratio <= 1.00 meets an "at most the reference's
time" target.  Nothing here is asserted: timings on a shared machine are noisy, so targets are
read from the ratios of one run, never checked in tests.  The image measurements (pull, copy,
`images`) are in bench/images.py; their inputs are built once and cached under
/var/tmp/pypod-bench-cache.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import building  # bench/building.py: the script's directory is on sys.path
import containers
import images
import network  # bench/network.py
import pods

from pypod.testing import make_bundle

BIN = Path(sys.executable).parent
TARGETS = (
    "targets: pull <= 0.50, copy <= 1.00, images <= 1.00, runtime run <= 1.00, "
    "run --rm <= 0.50, 20 x run -d <= 0.50, ps -a <= 1.00, run --rm bridge <= 0.50, "
    "published port time <= 1.00, build no cache <= 0.70, build warm cache <= 1.00, "
    "pod create + 2 x run -d --pod + pod rm -f <= 0.50"
)


def timed_runs(fn: Callable[[int], None], n: int) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t)
    return out


def bench_runtime_run_true(n: int, work: Path) -> list[tuple[str, float, float]]:
    """`<runtime> run` of a busybox bundle running `true`, runc vs pypod-runtime, interleaved."""
    bundle = work / "bundle"
    make_bundle(str(bundle), ["true"])
    tools = {"pypod-runtime": str(BIN / "pypod-runtime")}
    for ref in ("runc",):
        if shutil.which(ref):
            tools[ref] = shutil.which(ref) or ref
    times: dict[str, list[float]] = {name: [] for name in tools}
    for i in range(n + 3):  # the first rounds warm caches and are dropped
        for name, exe in tools.items():
            root = work / f"state-{name}"
            t = time.perf_counter()
            proc = subprocess.run(
                [exe, "--root", str(root), "run", "--bundle", str(bundle), f"b{i}"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
            )
            elapsed = time.perf_counter() - t
            if proc.returncode != 0:
                raise SystemExit(f"{name} run failed: {proc.stderr.decode()}")
            if i >= 3:
                times[name].append(elapsed)
    results = []
    base = statistics.median(times["pypod-runtime"])
    for name, ts in times.items():
        if name == "pypod-runtime":
            continue
        results.append((f"runtime run true: pypod-runtime vs {name}", base, statistics.median(ts)))
    return results


def _tmpfs() -> str | None:
    """State roots live on tmpfs, as runc's and pypod-runtime's defaults (/run) do."""
    return "/run" if os.path.isdir("/run") and os.access("/run", os.W_OK) else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=30, help="repetitions of `runtime run`")
    parser.add_argument("--slow-n", type=int, default=3, help="repetitions of pull and copy")
    parser.add_argument("--list-n", type=int, default=10, help="repetitions of `images`")
    parser.add_argument(
        "--only",
        choices=("runtime", "images", "containers", "network", "build", "pods"),
        help="run only these measurements",
    )
    parser.add_argument(
        "--synthetic", action="store_true", help="pull a synthetic image, not a debootstrap one"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench: run as root (containers are created)", file=sys.stderr)
        return 1
    rows = []
    if args.only in (None, "runtime"):
        with tempfile.TemporaryDirectory(prefix="pypod-bench-", dir=_tmpfs()) as tmp:
            rows += bench_runtime_run_true(args.n, Path(tmp))
    if args.only in (None, "containers"):
        rows += containers.bench_all(BIN, args.list_n)
    if args.only in (None, "network"):
        rows += network.bench_all(BIN, args.list_n)
    if args.only in (None, "pods"):
        rows += pods.bench_all(BIN, args.list_n)
    if args.only in (None, "build"):
        rows += building.bench_all(BIN, args.list_n)
    if args.only in (None, "images"):
        rows += images.bench_all(BIN, args.slow_n, args.list_n, args.synthetic)
    print(f"{'measurement':<56} {'pypod':>10} {'reference':>10} {'ratio':>7}")
    for name, ours, ref in rows:
        print(f"{name:<56} {ours * 1000:>8.1f}ms {ref * 1000:>8.1f}ms {ours / ref:>7.2f}")
    print(TARGETS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
