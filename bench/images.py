"""Image benchmarks for `make bench`: pull, copy and `images`, pypod against podman and skopeo.

Inputs are built once and cached under /var/tmp/pypod-bench-cache/<CACHE_VERSION>/:
- `debian-oci/`: an OCI layout of a ~95 MB (gzip) four-layer image made from
  `debootstrap --variant=minbase bookworm` (its downloaded .debs are kept in /var/cache/apt, as
  MACHINE.md's 95 MB figure has them); a synthetic rootfs of about the same size when debootstrap
  is missing or fails (reported in the output);
- `images-pypod/`, `images-podman/`: stores holding 200 distinct tiny imported images.

Each bench run starts Debian's docker-registry on a free loopback port, pushes the image to it
once, measures, and stops it.  Bump CACHE_VERSION when what is cached changes.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import io
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

CACHE_VERSION = "v2"
CACHE = Path("/var/tmp/pypod-bench-cache") / CACHE_VERSION
WORK_DIR = "/var/tmp"  # fresh stores and layouts: on disk, the same filesystem for every tool
REGISTRY_BIN = "/usr/bin/docker-registry"
MIRROR = "http://deb.debian.org/debian"
REPO = "bench/debian"
N_IMAGES = 200
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=30000:30000"]
netns = "none"

[network]
network_backend = "cni"
network_config_dir = "{conf}/networks"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{conf}/events.log"
lock_type = "file"
"""
POLICY = '{"default": [{"type": "insecureAcceptAnything"}]}\n'

Row = tuple[str, float, float]


class Skip(Exception):
    """A measurement that cannot run here; the message says why."""


def log(msg: str) -> None:
    print(f"bench: {msg}", flush=True)


def unmount_under(path: Path) -> None:
    """Unmount whatever is mounted below `path` (podman's overlay driver bind-mounts its home)."""
    prefix = str(path).rstrip("/") + "/"
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            if point == str(path) or point.startswith(prefix):
                points.append(point)
    for point in reversed(points):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def remove_tree(path: Path) -> None:
    if path.exists():
        unmount_under(path)
        shutil.rmtree(path, ignore_errors=True)


def run(cmd: list[str], env: dict[str, str] | None = None, what: str = "") -> None:
    proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{what or cmd[0]} failed (rc={proc.returncode}): {proc.stderr[-2000:]}")


# --------------------------------------------------------------------------- tools


@dataclass(frozen=True, slots=True)
class Tools:
    """The programs compared, and the private configuration the reference tools read."""

    bin: Path  # pypod's venv bin
    conf: Path  # containers.conf, registries.conf, policy.json for podman and skopeo
    podman: str | None
    skopeo: str | None

    @classmethod
    def find(cls, bin_dir: Path, conf: Path) -> Tools:
        (conf / "networks").mkdir(parents=True, exist_ok=True)
        (conf / "containers.conf").write_text(CONTAINERS_CONF.format(conf=conf))
        (conf / "registries.conf").write_text("")
        (conf / "policy.json").write_text(POLICY)
        return cls(bin_dir, conf, shutil.which("podman"), shutil.which("skopeo"))

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CONTAINERS_CONF": str(self.conf / "containers.conf"),
            "CONTAINERS_REGISTRIES_CONF": str(self.conf / "registries.conf"),
        }

    def pypod(self, store: Path, *args: str) -> list[str]:
        return [str(self.bin / "pypod"), "--root", str(store / "root"),
                "--runroot", str(store / "run"), *args]  # fmt: skip

    def require_podman(self) -> str:
        if self.podman is None:
            raise Skip("podman is not installed (apt-get install podman)")
        return self.podman

    def podman_cmd(self, store: Path, *args: str) -> list[str]:
        (store / "tmp").mkdir(parents=True, exist_ok=True)
        root, run, tmp = (str(store / sub) for sub in ("root", "run", "tmp"))
        return [self.require_podman(), "--root", root, "--runroot", run, "--tmpdir", tmp,
                "--storage-driver", "overlay", *args]  # fmt: skip

    def skopeo_cmd(self, *args: str) -> list[str]:
        if self.skopeo is None:
            raise Skip("skopeo is not installed (apt-get install skopeo)")
        return [self.skopeo, "--policy", str(self.conf / "policy.json"), *args]


def interleaved(fns: dict[str, Callable[[int], float]], n: int, warmup: int) -> dict[str, float]:
    """Median of the times each fn returns over n rounds (the wall time of the command it runs,
    without set-up and clean-up); the order alternates, warm-up rounds are dropped."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for i in range(warmup + n):
        for name in names if i % 2 == 0 else reversed(names):
            elapsed = fns[name](i)
            if i >= warmup:
                times[name].append(elapsed)
    return {name: statistics.median(ts) for name, ts in times.items()}


# --------------------------------------------------------------------------- the big image


class _HashingWriter:
    """A file-like sink that hashes and counts what gzip writes, and stores it in `out`."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()


class _TarHasher(io.RawIOBase):
    """Between tarfile and gzip: hashes the uncompressed stream (the layer's diff ID)."""

    def __init__(self, gz: gzip.GzipFile) -> None:
        self.gz = gz
        self.sha = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.sha.update(data)
        self.gz.write(data)
        return len(data)


def _write_layer(rootfs: Path, names: list[str], blobs: Path) -> tuple[str, str, int]:
    """A gzip layer of `names` (paths relative to rootfs): (diff ID, blob digest, blob size)."""
    tmp = blobs / ".layer.tmp"
    with open(tmp, "wb") as raw:
        sink = _HashingWriter(raw)
        with gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=6, mtime=0) as gz:
            hasher = _TarHasher(gz)
            with tarfile.open(
                fileobj=cast(IO[bytes], hasher), mode="w|", format=tarfile.PAX_FORMAT
            ) as tar:
                parents: set[str] = set()
                for name in names:
                    parent = os.path.dirname(name)
                    if parent and parent not in parents:  # e.g. usr/ before usr/lib
                        parents.add(parent)
                        tar.add(rootfs / parent, arcname=parent, recursive=False)
                    tar.add(rootfs / name, arcname=name)
    digest = "sha256:" + sink.sha.hexdigest()
    tmp.rename(blobs / digest[7:])
    return "sha256:" + hasher.sha.hexdigest(), digest, sink.size


def _debootstrap(dest: Path) -> str | None:
    """debootstrap a minbase bookworm into dest; None on success, else why it did not work."""
    exe = shutil.which("debootstrap")
    if exe is None:
        log("installing debootstrap (apt-get install debootstrap)")
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False)
        apt = subprocess.run(["apt-get", "install", "-y", "-qq", "debootstrap"],
                              capture_output=True, check=False)  # fmt: skip
        exe = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
        if apt.returncode != 0 or not os.path.exists(exe):
            return "debootstrap is missing and apt-get install debootstrap failed"
    log(f"debootstrap --variant=minbase bookworm (from {MIRROR}), about 30 s")
    proc = subprocess.run(
        [exe, "--variant=minbase", "bookworm", str(dest), MIRROR],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
    )  # fmt: skip
    unmount_under(dest)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        return "debootstrap failed: " + " | ".join(tail)
    return None


def _synthetic_rootfs(dest: Path) -> None:
    """About 95 MB once gzipped: 60 MB incompressible, 100 MB of text compressing ~3x."""
    rng = random.Random(42)
    words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
        for _ in range(5000)
    ]
    for sub, count in (("usr/lib/blob", 40), ("var/cache/blob", 20)):
        (dest / sub).mkdir(parents=True)
        for i in range(count):
            (dest / sub / f"b{i}.bin").write_bytes(rng.randbytes(1 << 20))
    for sub, count in (("usr/share/doc", 30), ("etc/text", 10), ("opt/text", 10)):
        (dest / sub).mkdir(parents=True)
        for i in range(count):
            text = " ".join(rng.choices(words, k=(2 << 20) // 6))
            (dest / sub / f"t{i}.txt").write_text(text[: 2 << 20])


def build_debian_layout(synthetic: bool = False) -> tuple[Path, str]:
    """The cached OCI layout (ref "bench") and what its rootfs came from."""
    for old in CACHE.parent.glob("*") if CACHE.parent.is_dir() else []:
        if old.name != CACHE_VERSION:  # an older cache version: not used any more
            remove_tree(old)
    layout = CACHE / ("synthetic-oci" if synthetic else "debian-oci")
    done = layout / "bench-source"
    if done.exists():
        return layout, done.read_text().strip()
    fallback = CACHE / "synthetic-oci" / "bench-source"
    remove_tree(layout)
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=CACHE) as tmp:
        rootfs = Path(tmp) / "rootfs"
        why = "synthetic rootfs asked for (--synthetic)" if synthetic else _debootstrap(rootfs)
        if why is None:
            source = "debootstrap minbase bookworm"
        else:
            if not synthetic and fallback.exists():
                return fallback.parent, fallback.read_text().strip()
            layout = CACHE / "synthetic-oci"
            remove_tree(layout)
            remove_tree(rootfs)
            rootfs.mkdir()
            log(f"{why}; building a synthetic rootfs instead")
            _synthetic_rootfs(rootfs)
            source = f"SYNTHETIC rootfs ({why})"
        log("writing the four gzip layers (once; cached)")
        blobs = layout / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        top = sorted(os.listdir(rootfs))
        usr = sorted(os.listdir(rootfs / "usr")) if (rootfs / "usr").is_dir() else []
        libs = [f"usr/{n}" for n in usr if n.startswith("lib")]
        (rootfs / "bench").mkdir()
        (rootfs / "bench" / "version").write_text(f"pypod bench {CACHE_VERSION}\n")
        # merged /usr: the libraries, /var (with apt's .debs) and /etc, the rest, a small top
        groups = [
            libs,
            [n for n in top if n in ("var", "etc")],
            [n for n in top if n not in ("usr", "var", "etc")]
            + [f"usr/{n}" for n in usr if f"usr/{n}" not in libs],
            ["bench"],
        ]
        layers = [_write_layer(rootfs, g, blobs) for g in groups if g]
        unmount_under(Path(tmp))
    config = json.dumps({
        "created": "2024-01-02T03:04:05Z", "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["bash"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id for diff_id, _, _ in layers]},
        "history": [{"created": "2024-01-02T03:04:05Z", "created_by": f"pypod bench layer {i}"}
                    for i in range(len(layers))],
    }).encode()  # fmt: skip
    config_digest = _put_blob(blobs, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": digest, "size": size}
                   for _, digest, size in layers],
    }).encode()  # fmt: skip
    manifest_digest = _put_blob(blobs, manifest)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({
        "schemaVersion": 2,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": manifest_digest,
                       "size": len(manifest),
                       "annotations": {"org.opencontainers.image.ref.name": "bench"}}],
    }))  # fmt: skip
    total = sum(size for _, _, size in layers)
    source = f"{source}; {len(layers)} layers, {total / 1e6:.0f} MB gzip"
    (layout / "bench-source").write_text(source + "\n")
    return layout, source


def _put_blob(blobs: Path, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (blobs / digest[7:]).write_bytes(data)
    return digest


# --------------------------------------------------------------------------- registry


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def registry(root: Path) -> Iterator[str]:
    """Debian's docker-registry serving `root` on a free loopback port: yields host:port."""
    if not os.path.exists(REGISTRY_BIN):
        raise Skip("docker-registry is not installed (apt-get install docker-registry)")
    host = f"127.0.0.1:{_free_port()}"
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: {host}\n"
    )
    with open(root / "registry.log", "w") as out:
        proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                conn = http.client.HTTPConnection(host, timeout=2)
                conn.request("GET", "/v2/")
                conn.getresponse()
                conn.close()
                break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise Skip(f"docker-registry did not start (see {root / 'registry.log'})")
            time.sleep(0.05)
        yield host
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def push(tools: Tools, layout: Path, ref: str) -> None:
    """Push the layout once, with skopeo where installed (else pypod-image)."""
    if tools.skopeo is not None:
        cmd = tools.skopeo_cmd("copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:bench", ref)
    else:
        cmd = [str(tools.bin / "pypod-image"), "copy", "-q", "--dest-tls-verify=false",
               f"oci:{layout}:bench", ref]  # fmt: skip
    run(cmd, tools.env(), "push of the bench image")


# --------------------------------------------------------------------------- measurements


def timed(cmd: list[str], env: dict[str, str], what: str) -> float:
    t = time.perf_counter()
    run(cmd, env, what)
    return time.perf_counter() - t


def bench_pull(tools: Tools, ref: str, n: int) -> Row:
    """Pull into an empty store (a fresh root each time): pypod vs podman.

    The stores are removed after the last round, not between rounds: on ext4 without a journal
    (these VMs) the kernel skips, one by one, every inode freed in the last minutes when it
    looks for a free one, so removing a ~7000-file store just before a pull makes each file
    the next pull creates cost hundreds of microseconds of kernel time, whichever tool runs,
    and the comparison would mostly measure that."""
    tools.require_podman()  # skip before anything is built or timed
    env = tools.env()
    keep = Path(tempfile.mkdtemp(prefix="pull-", dir=WORK_DIR))  # short: podman's runroot
    # must stay under 50 characters

    def pull(name: str) -> Callable[[int], float]:
        def fn(i: int) -> float:
            store = Path(tempfile.mkdtemp(prefix=name[:2], dir=keep))
            if name == "pypod":
                cmd = tools.pypod(store, "pull", "-q", "--tls-verify=false", ref)
                check = tools.pypod(store, "images", "-q")
            else:
                cmd = tools.podman_cmd(store, "pull", "-q", "--tls-verify=false", ref)
                check = tools.podman_cmd(store, "images", "-q")
            try:
                elapsed = timed(cmd, env, f"{name} pull")
                if i == 0 and (got := _count(check, env)) != 1:  # the warm-up round
                    raise RuntimeError(f"after {name} pull, images lists {got} images")
            finally:
                unmount_under(store)
            return elapsed

        return fn

    try:
        med = interleaved({"pypod": pull("pypod"), "podman": pull("podman")}, n, warmup=1)
    finally:
        remove_tree(keep)
    return ("pull ~100MB 4 layers, empty store: vs podman", med["pypod"], med["podman"])


def bench_copy(tools: Tools, ref: str, n: int) -> Row:
    """`copy docker://… oci:DIR:tag` into a fresh directory: pypod-image vs skopeo."""
    tools.skopeo_cmd()  # skip early when skopeo is missing
    env = tools.env()

    def copy(name: str) -> Callable[[int], float]:
        def fn(i: int) -> float:
            with tempfile.TemporaryDirectory(prefix=f"copy-{name}-", dir=WORK_DIR) as tmp:
                dest = f"oci:{tmp}/layout:bench"
                if name == "pypod-image":
                    cmd = [str(tools.bin / "pypod-image"), "copy", "-q",
                           "--src-tls-verify=false", ref, dest]  # fmt: skip
                else:
                    cmd = tools.skopeo_cmd("copy", "-q", "--src-tls-verify=false", ref, dest)
                elapsed = timed(cmd, env, f"{name} copy")
                if i == 0:  # the warm-up round: the layout is whole
                    run(tools.skopeo_cmd("inspect", dest), env, f"skopeo inspect after {name}")
            return elapsed

        return fn

    med = interleaved({"pypod-image": copy("pypod-image"), "skopeo": copy("skopeo")}, n, 1)
    return ("copy docker:// -> oci: vs skopeo", med["pypod-image"], med["skopeo"])


def _tiny_tars(dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(N_IMAGES):
        path = dest / f"img{i:03d}.tar"
        if not path.exists():
            with tarfile.open(path, "w") as tar:
                data = f"bench image {i}\n".encode()
                info = tarfile.TarInfo(f"etc/bench-{i:03d}")
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
        out.append(path)
    return out


def _count(cmd: list[str], env: dict[str, str]) -> int:
    proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    return len(proc.stdout.split()) if proc.returncode == 0 else -1


def image_stores(tools: Tools) -> tuple[Path, Path]:
    """Stores with N_IMAGES distinct imported images each (pypod, podman), built once."""
    env = tools.env()
    tars = _tiny_tars(CACHE / "tiny-tars")
    stores = {"pypod": CACHE / "images-pypod", "podman": CACHE / "images-podman"}
    for name, store in stores.items():

        def cmd(*args: str, name: str = name, store: Path = store) -> list[str]:
            return tools.pypod(store, *args) if name == "pypod" else tools.podman_cmd(store, *args)

        if _count(cmd("images", "-q"), env) == N_IMAGES:
            continue
        remove_tree(store)
        log(f"importing {N_IMAGES} tiny images into a {name} store (once; cached)")
        for i, tar in enumerate(tars):
            run(cmd("import", "-q", str(tar), f"localhost/bench/img{i:03d}:latest"), env,
                f"{name} import")  # fmt: skip
        if (got := _count(cmd("images", "-q"), env)) != N_IMAGES:
            raise RuntimeError(f"{name} images lists {got} images, not {N_IMAGES}")
    return stores["pypod"], stores["podman"]


def bench_images(tools: Tools, n: int) -> Row:
    tools.require_podman()  # skip before the stores are built
    pypod_store, podman_store = image_stores(tools)
    env = tools.env()
    cmds = {
        "pypod": tools.pypod(pypod_store, "images"),
        "podman": tools.podman_cmd(podman_store, "images"),
    }

    def listing(name: str) -> Callable[[int], float]:
        return lambda i: timed(cmds[name], env, f"{name} images")

    med = interleaved({name: listing(name) for name in cmds}, n, warmup=2)
    return (f"images ({N_IMAGES} images) vs podman", med["pypod"], med["podman"])


def bench_all(bin_dir: Path, slow_n: int, list_n: int, synthetic: bool = False) -> list[Row]:
    """The image measurements; what cannot run is printed with the reason."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="pypod-bench-img-", dir=WORK_DIR) as tmp:
        work = Path(tmp)
        tools = Tools.find(bin_dir, work / "conf")
        try:
            rows.append(bench_images(tools, list_n))
        except Skip as e:
            log(f"skipped images: {e}")
        try:
            if not os.path.exists(REGISTRY_BIN):  # before building anything
                raise Skip("docker-registry is not installed (apt-get install docker-registry)")
            layout, source = build_debian_layout(synthetic)
            log(f"image: {source}")
            (work / "registry").mkdir()
            with registry(work / "registry") as host:
                ref = f"docker://{host}/{REPO}:latest"
                push(tools, layout, ref)
                for bench in (bench_pull, bench_copy):
                    try:
                        rows.append(bench(tools, ref, slow_n))
                    except Skip as e:
                        log(f"skipped {bench.__name__[6:]}: {e}")
        except Skip as e:
            log(f"skipped pull and copy: {e}")
        unmount_under(work)
    return rows
