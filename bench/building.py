"""Build benchmarks for `make bench`: `pypod build` against `buildah bud`, in one run.

The Containerfile is issue 6's: FROM busybox + 3 RUN + COPY.  Both tools get a private store
under /var/tmp with the busybox image imported from the same tarball (podman imports it into
buildah's store: they share containers/storage), both use the host's network for RUN
(`--network host`: pypod's default; buildah's default would configure a network namespace) and
`--layers`.

- cold: `--no-cache`, medians of interleaved runs;
- warm: the same build again with the cache filled (every step a cache hit), medians.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tarfile
import tempfile
from pathlib import Path

from containers import Tool, log
from images import CONTAINERS_CONF

from pypod.testing import find_busybox, make_busybox_rootfs

Row = tuple[str, float, float]

IMAGE = "localhost/busybox:latest"
CONTAINERFILE = f"""\
FROM {IMAGE}
RUN echo one > /one
RUN mkdir -p /app && echo two > /app/two
RUN sh -c 'for i in 1 2 3; do echo $i; done > /three'
COPY payload.txt /app/payload.txt
"""


def _tools(work: Path, bin_dir: Path) -> tuple[Tool, Tool, Tool]:
    env = dict(os.environ)
    pypod = Tool("pypod", [str(bin_dir / "pypod"), "--root", str(work / "pypod-root"),
                           "--runroot", str(work / "pypod-run")], env)  # fmt: skip
    conf = work / "conf"
    (conf / "networks").mkdir(parents=True)
    (conf / "containers.conf").write_text(CONTAINERS_CONF.format(conf=conf))
    benv = {**env, "CONTAINERS_CONF": str(conf / "containers.conf")}
    store = ["--root", str(work / "buildah-root"), "--runroot", str(work / "buildah-run")]
    buildah = Tool("buildah", ["buildah", *store], benv)
    podman = Tool("podman", ["podman", *store, "--tmpdir", str(work / "podman-tmp")], benv)
    return pypod, buildah, podman


def bench_all(bin_dir: Path, n: int) -> list[Row]:
    if shutil.which("buildah") is None or shutil.which("podman") is None:
        log("build: buildah and podman are needed, skipped")
        return []
    busybox = find_busybox()
    if busybox is None:
        log("build: busybox-static is not installed, skipped")
        return []
    work = Path(tempfile.mkdtemp(prefix="pypod-bench-build-", dir="/var/tmp"))
    pypod, buildah, podman = _tools(work, bin_dir)
    try:
        rootfs = make_busybox_rootfs(str(work / "rootfs"), busybox)
        with tarfile.open(work / "busybox.tar", "w") as tar:
            tar.add(rootfs, arcname=".")
        pypod("import", "-q", str(work / "busybox.tar"), IMAGE)
        podman("import", "-q", str(work / "busybox.tar"), IMAGE)
        context = work / "context"
        context.mkdir()
        (context / "Containerfile").write_text(CONTAINERFILE)
        (context / "payload.txt").write_text("payload\n" * 1000)
        common = ("--layers", "--network", "host", "-q", "-t", "localhost/bench:latest")
        args = {
            "pypod": ("build", *common, str(context)),
            "buildah": ("bud", *common, str(context)),
        }
        cold: dict[str, list[float]] = {"pypod": [], "buildah": []}
        warm: dict[str, list[float]] = {"pypod": [], "buildah": []}
        rounds = max(3, n // 2)
        for i in range(rounds + 1):  # the first round warms the page cache and is dropped
            for tool in (pypod, buildah):
                t = tool.timed(*args[tool.name][:1], "--no-cache", *args[tool.name][1:])
                if i:
                    cold[tool.name].append(t)
        for i in range(rounds + 1):
            for tool in (pypod, buildah):
                t = tool.timed(*args[tool.name])
                if i:
                    warm[tool.name].append(t)
    finally:
        pypod("rm", "-a", "-f", check=False)
        buildah("rm", "--all", check=False)
        podman("system", "reset", "-f", check=False)
        from containers import _unmount_under

        _unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)
    return [
        ("build, no cache (FROM+3 RUN+COPY): pypod vs buildah",
         statistics.median(cold["pypod"]), statistics.median(cold["buildah"])),
        ("build, warm cache: pypod vs buildah",
         statistics.median(warm["pypod"]), statistics.median(warm["buildah"])),
    ]  # fmt: skip
