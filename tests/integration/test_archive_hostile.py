"""Hostile layer tars, applied as root: each is refused or contained, and the host is untouched.

Every case applies to `box/parent/layer`, next to a canary file in `box/parent` and an
`outside` directory holding another canary (the place symlinks and hardlinks aim at).  After
each apply: the canaries are unchanged, nothing new appeared beside the layer or in `outside`,
and the absolute targets a case aims at (in /etc, /tmp) do not exist.  Then the privileged
round trip (owners, devices, trusted and security xattrs, hardlinks) and a real overlay mount
compared with what apply and changes make of whiteouts and opaque directories.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import stat
import subprocess
import tarfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pypod.errors import StorageError
from pypod.storage.archive import OVERLAY, VFS, IdMap, IdRange, WhiteoutFormat
from pypod.storage.archive.apply import apply_layer
from pypod.storage.archive.changes import changes, changes_between
from pypod.storage.archive.export import export_changes
from tests.podman_support import reference_env
from tests.unit.test_archive_apply import Entry, dir_, entry, link, reg, sym, tar_bytes
from tests.unit.test_archive_export import snapshot

pytestmark = pytest.mark.root

TAG = uuid.uuid4().hex[:10]
#: absolute places a broken apply would write to; each must still be missing afterwards
HOST_TARGETS = [f"/etc/pypod-hostile-{TAG}", f"/tmp/pypod-hostile-{TAG}", f"/pypod-hostile-{TAG}"]


class Box:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.parent = root / "parent"
        self.layer = self.parent / "layer"
        self.outside = root / "outside"
        self.layer.mkdir(parents=True)
        self.outside.mkdir()
        (self.parent / "canary").write_text("parent canary")
        (self.outside / "canary").write_text("outside canary")
        self.before = self._state()

    def _state(self) -> dict[str, tuple[int, int, int, bytes]]:
        state = {}
        for d in (self.root, self.parent, self.outside):
            for p in d.iterdir():
                if p == self.layer:
                    continue
                st = p.lstat()
                data = p.read_bytes() if stat.S_ISREG(st.st_mode) else b""
                state[str(p)] = (st.st_mode, st.st_nlink, st.st_mtime_ns, data)
        return state

    def check_host(self) -> None:
        assert self._state() == self.before
        for target in HOST_TARGETS:
            assert not os.path.lexists(target), f"{target} was created"


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    b = Box(tmp_path)
    yield b
    for target in HOST_TARGETS:  # if a case ever failed open, do not leave litter behind
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        elif os.path.lexists(target):
            os.unlink(target)


def _apply(box: Box, data: bytes, **kw: object) -> None:
    apply_layer(io.BytesIO(data), str(box.layer), **kw)  # type: ignore[arg-type]


Case = Callable[[Box], list[Entry]]

#: name -> (entries built from the box, regex of the error or None when contained)
CORPUS: dict[str, tuple[Case, str | None]] = {
    "dotdot name": (lambda b: [reg("../../canary", b"pwned")], "climbs out"),
    "dotdot to /etc": (lambda b: [reg(f"../../../../../../..{HOST_TARGETS[0]}")], "climbs out"),
    "dotdot in the middle": (lambda b: [dir_("a/"), reg("a/../../canary")], "climbs out"),
    "absolute name": (lambda b: [reg(HOST_TARGETS[0], b"pwned"), reg(HOST_TARGETS[1])], None),
    "symlink to a dir outside, then a file below it": (
        lambda b: [sym("l", str(b.outside)), reg("l/canary", b"pwned"), reg("l/new")],
        "l is a symlink",
    ),
    "symlink to /etc, then a file below it": (
        lambda b: [sym("etc", "/etc"), reg(f"etc/{os.path.basename(HOST_TARGETS[0])}")],
        "etc is a symlink",
    ),
    "relative symlink up, then a file below it": (
        lambda b: [sym("up", "../../outside"), reg("up/new", b"pwned")],
        "up is a symlink",
    ),
    "symlink to a file outside, then that name as a file": (
        # the second entry replaces the symlink; it must not write through it
        lambda b: [sym("f", str(b.outside / "canary")), reg("f", b"pwned")],
        None,
    ),
    "directory entry over a symlink to a dir outside": (
        lambda b: [sym("d", str(b.outside)), dir_("d/", mode=0o777), reg("d/new")],
        None,
    ),
    "whiteout of a symlink to a dir outside": (
        lambda b: [sym("l", str(b.outside)), reg(".wh.l")],
        None,
    ),
    "opaque directory holding a symlink to a dir outside": (
        lambda b: [dir_("o/"), sym("o/l", str(b.outside)), reg("o/.wh..wh..opq")],
        None,
    ),
    "hardlink to a symlink pointing outside, then a file over it": (
        lambda b: [sym("s", str(b.outside / "canary")), link("h", "s"), reg("h", b"pwned")],
        None,
    ),
    "root entry as a symlink": (lambda b: [sym("./", str(b.outside))], "root can only be"),
    "hardlink to /etc/passwd": (lambda b: [link("pw", "/etc/passwd")], "not in the layer"),
    "hardlink climbing out": (lambda b: [link("c", "../canary")], "climbs out"),
    "hardlink through a symlink": (
        lambda b: [sym("l", str(b.outside)), link("c", "l/canary")],
        "l is a symlink",
    ),
    "hardlink through a relative symlink to the parent": (
        lambda b: [sym("p", ".."), link("c", "p/canary")],
        "p is a symlink",
    ),
    "symlink replacing a directory mid-archive": (
        lambda b: [
            dir_("d/"),
            reg("d/ok", b"fine"),
            sym("d", str(b.outside)),
            reg("d/canary", b"pwned"),
        ],
        "d is a symlink",
    ),
    "symlink replacing a deep parent mid-archive": (
        lambda b: [
            dir_("a/b/c/"),
            reg("a/b/c/f"),
            sym("a/b", "../../../outside"),
            reg("a/b/c/g", b"pwned"),
        ],
        "a/b is a symlink",
    ),
    "whiteout through a symlink": (
        lambda b: [sym("l", str(b.outside)), reg("l/.wh.canary")],
        "l is a symlink",
    ),
    "opaque marker through a symlink": (
        lambda b: [sym("l", str(b.outside)), reg("l/.wh..wh..opq")],
        "l is a symlink",
    ),
    "whiteout climbing out": (lambda b: [reg("../.wh.canary")], "climbs out"),
    "whiteout of dotdot": (lambda b: [reg("a/.wh..")], "invalid whiteout"),
    "huge size header": (lambda b: [_huge()], "unexpected end|truncated"),
}


def _huge() -> Entry:
    info, _ = reg("huge")
    info.size = 1 << 62
    return info, b""


def _blob(entries: list[Entry]) -> bytes:
    data = tar_bytes(*[e for e in entries if e[0].size < 1 << 40])
    huge = [e for e in entries if e[0].size >= 1 << 40]
    if huge:  # a header that promises more than the stream holds
        data = huge[0][0].tobuf(tarfile.PAX_FORMAT) + b"x" * 4096
    return data


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "child"])
@pytest.mark.parametrize("whiteouts", [OVERLAY, VFS], ids=["overlay", "vfs"])
@pytest.mark.parametrize("case", sorted(CORPUS))
def test_hostile_corpus(box: Box, case: str, whiteouts: WhiteoutFormat, isolate: bool) -> None:
    """Each case in process and in a child process (where big layers are applied)."""
    build, error = CORPUS[case]
    data = _blob(build(box))
    if error is None:
        _apply(box, data, whiteouts=whiteouts, isolate=isolate)
    else:
        with pytest.raises(StorageError, match=error):
            _apply(box, data, whiteouts=whiteouts, isolate=isolate)
    box.check_host()
    if case == "absolute name":
        assert (box.layer / HOST_TARGETS[0].lstrip("/")).read_bytes() == b"pwned"
    if case.startswith("symlink to a file outside"):
        assert (box.layer / "f").read_bytes() == b"pwned"
        assert not (box.layer / "f").is_symlink()


def test_gzip_truncated_and_bomb(box: Box) -> None:
    data = gzip.compress(tar_bytes(reg("zeros", b"\0" * (32 << 20))), 9)
    with pytest.raises(StorageError, match="larger than the limit"):
        _apply(box, data, max_size=4 << 20)
    with pytest.raises(StorageError, match="truncated"):
        _apply(box, data[: len(data) // 2])
    box.check_host()


def test_device_nodes_only_when_privileged(box: Box) -> None:
    dev = entry("dev/null", tarfile.CHRTYPE, 0o666, devmajor=1, devminor=3)
    blk = entry("dev/loop9", tarfile.BLKTYPE, 0o660, devmajor=7, devminor=9)
    _apply(box, tar_bytes(dev, blk), rootless=True)
    assert not (box.layer / "dev/null").exists()
    _apply(box, tar_bytes(dev, blk))
    st = (box.layer / "dev/null").lstat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(st.st_mode) == 0o666
    assert stat.S_ISBLK((box.layer / "dev/loop9").lstat().st_mode)
    box.check_host()


def test_setuid_and_owners_kept_as_root_and_id_mapped(box: Box) -> None:
    entries = [
        reg("su", b"x", mode=0o4755, uid=0, gid=0),
        reg("owned", b"y", mode=0o640, uid=1000, gid=100),
        sym("link", "owned"),
        dir_("home/", uid=1000, gid=1000),
        reg("home/f"),
    ]
    entries[2][0].uid = 33
    _apply(box, tar_bytes(*entries))
    assert stat.S_IMODE((box.layer / "su").stat().st_mode) == 0o4755
    st = (box.layer / "owned").stat()
    assert (st.st_uid, st.st_gid) == (1000, 100)
    assert (box.layer / "link").lstat().st_uid == 33
    shutil.rmtree(box.layer)
    box.layer.mkdir()
    box.before = box._state()
    id_map = IdMap(
        uids=(IdRange(container_id=0, host_id=100000, size=65536),),
        gids=(IdRange(container_id=0, host_id=200000, size=65536),),
    )
    _apply(box, tar_bytes(*entries), id_map=id_map)
    st = (box.layer / "owned").stat()
    assert (st.st_uid, st.st_gid) == (101000, 200100)
    st = (box.layer / "su").stat()
    assert (st.st_uid, st.st_gid) == (100000, 200000)
    with pytest.raises(StorageError, match="uid 70000 is not in the id map"):
        _apply(box, tar_bytes(reg("x", uid=70000)), id_map=id_map)
    box.check_host()


def test_security_capability_and_trusted_opaque(box: Box) -> None:
    # cap_net_bind_service+ep, as setcap writes it (VFS_CAP_REVISION_2)
    cap = bytes.fromhex("0100000200040000000000000000000000000000")
    info, data = reg("bin/ping", b"\x7fELF", mode=0o755)
    info.pax_headers = {"SCHILY.xattr.security.capability": cap.decode("latin-1")}
    info.pax_headers = {"SCHILY.xattr.security.capability": cap.decode("utf-8", "surrogateescape")}
    _apply(box, tar_bytes((info, data), dir_("o/"), reg("o/.wh..wh..opq"), reg("d/.wh.x")))
    assert os.getxattr(box.layer / "bin/ping", "security.capability") == cap
    assert os.getxattr(box.layer / "o", "trusted.overlay.opaque") == b"y"
    st = (box.layer / "d/x").lstat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


# --- round trip as root --------------------------------------------------------------------


def _base_layer() -> bytes:
    cap = bytes.fromhex("0100000200040000000000000000000000000000")
    ping, ping_data = reg("bin/ping", b"ping", mode=0o4755)
    ping.pax_headers = {
        "SCHILY.xattr.security.capability": cap.decode("utf-8", "surrogateescape"),
        "SCHILY.xattr.user.tag": "base",
    }
    return tar_bytes(
        dir_("bin/"),
        (ping, ping_data),
        link("bin/ping6", "bin/ping"),
        sym("bin/sh", "busybox"),
        dir_("etc/"),
        reg("etc/passwd", b"root:x:0:0\n", uid=0),
        reg("etc/shadow", b"secret\n", mode=0o640, uid=0, gid=42),
        dir_("etc/apt/"),
        reg("etc/apt/sources.list", b"deb\n"),
        dir_("etc/apt/conf.d/"),
        reg("etc/apt/conf.d/a", b"a\n"),
        dir_("dev/"),
        entry("dev/null", tarfile.CHRTYPE, 0o666, devmajor=1, devminor=3),
        entry("dev/fifo", tarfile.FIFOTYPE, 0o600),
        dir_("tmp/", mode=0o1777),
        dir_("home/user/", uid=1000, gid=1000),
        reg("home/user/notes", b"n", uid=1000, gid=1000),
    )


def _modify(root: Path) -> None:
    (root / "etc/passwd").write_text("root:x:0:0\nuser:x:1000:1000\n")
    os.chown(root / "etc/passwd", 0, 0)
    os.chmod(root / "etc/shadow", 0o600)
    os.unlink(root / "bin/sh")
    os.symlink("/bin/busybox", root / "bin/sh")
    shutil.rmtree(root / "home/user")
    (root / "tmp/new").write_bytes(b"new file")
    os.chown(root / "tmp/new", 1000, 100)
    os.link(root / "tmp/new", root / "tmp/new-link")
    os.setxattr(root / "tmp/new", "user.mark", b"\x00\xff")
    os.mknod(root / "dev/zero", stat.S_IFCHR | 0o666, os.makedev(1, 5))
    os.chmod(root / "dev/zero", 0o666)
    (root / "etc/apt/sources.list").unlink()


def test_round_trip_vfs_as_root(tmp_path: Path) -> None:
    base = tmp_path / "base"
    work = tmp_path / "work"
    fresh = tmp_path / "fresh"
    for d in (base, work, fresh):
        d.mkdir()
        apply_layer(io.BytesIO(_base_layer()), str(d), whiteouts=VFS)
    assert snapshot(base) == snapshot(work)
    _modify(work)
    found = changes_between(str(base), str(work))
    shown = {str(c) for c in found}
    assert {"C /etc/passwd", "C /etc/shadow", "C /bin/sh", "D /home/user", "A /tmp/new"} <= shown
    assert "D /etc/apt/sources.list" in shown and "C /etc/apt" in shown
    out = io.BytesIO()
    result = export_changes(str(work), found, out, compression="zstd")
    out.seek(0)
    applied = apply_layer(out, str(fresh), whiteouts=VFS)
    assert applied.diff_id == result.diff_id
    assert snapshot(fresh) == snapshot(work)
    assert (fresh / "tmp/new").stat().st_ino == (fresh / "tmp/new-link").stat().st_ino


# --- compared with a real overlay mount ------------------------------------------------------


@pytest.fixture
def overlay_mounts() -> Iterator[list[str]]:
    mounted: list[str] = []
    yield mounted
    for target in reversed(mounted):
        subprocess.run(["umount", target], check=False)


def _mount_overlay(
    mounted: list[str], lowers: list[Path], upper: Path, work: Path, at: Path
) -> None:
    for d in (upper, work, at):
        d.mkdir(exist_ok=True)
    opts = f"lowerdir={':'.join(map(str, lowers))},upperdir={upper},workdir={work}"
    proc = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", opts, str(at)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount overlayfs here: {proc.stderr.strip()}")
    mounted.append(str(at))


def test_overlay_mount_agrees_with_apply_changes_and_export(
    tmp_path: Path, overlay_mounts: list[str]
) -> None:
    base = tmp_path / "base"
    base.mkdir()
    apply_layer(io.BytesIO(_base_layer()), str(base), whiteouts=OVERLAY)
    # a layer with a whiteout, a deleted directory and an opaque directory, applied for overlay
    diff = tmp_path / "diff"
    diff.mkdir()
    layer = tar_bytes(
        dir_("etc/"),
        reg("etc/.wh.shadow"),
        dir_("home/"),
        reg("home/.wh.user"),
        dir_("etc/apt/"),
        reg("etc/apt/.wh..wh..opq"),
        reg("etc/apt/only-this", b"o"),
        reg("etc/added", b"+"),
    )
    apply_layer(io.BytesIO(layer), str(diff), whiteouts=OVERLAY)
    merged = tmp_path / "merged"
    _mount_overlay(overlay_mounts, [diff, base], tmp_path / "upper0", tmp_path / "w0", merged)
    assert not (merged / "etc/shadow").exists()
    assert not (merged / "home/user").exists()
    assert os.listdir(merged / "etc/apt") == ["only-this"]
    assert (merged / "etc/added").read_bytes() == b"+"
    assert (merged / "etc/passwd").exists()
    # the same layer applied the vfs way on a copy of base gives the same tree
    copy = tmp_path / "copy"
    copy.mkdir()
    apply_layer(io.BytesIO(_base_layer()), str(copy), whiteouts=VFS)
    apply_layer(io.BytesIO(layer), str(copy), whiteouts=VFS)
    assert _names(copy) == _names(merged)

    # a container on top: changes() of its upper dir, exported, applied elsewhere
    upper = tmp_path / "upper"
    upper.mkdir()
    cmerged = tmp_path / "cmerged"
    _mount_overlay(overlay_mounts, [diff, base], upper, tmp_path / "w1", cmerged)
    (cmerged / "etc/passwd").write_text("changed\n")
    os.unlink(cmerged / "bin/ping6")
    shutil.rmtree(cmerged / "etc/apt")
    (cmerged / "etc/apt").mkdir()
    (cmerged / "etc/apt/fresh").write_text("f")
    (cmerged / "bin/new").write_text("n")
    subprocess.run(["umount", str(cmerged)], check=True)
    overlay_mounts.remove(str(cmerged))
    found = {str(c) for c in changes([str(diff), str(base)], str(upper))}
    assert {"C /etc/passwd", "D /bin/ping6", "D /etc/apt", "A /etc/apt/fresh"} <= found
    assert "A /bin/new" in found and "C /bin" in found
    out = io.BytesIO()
    export_changes(str(upper), changes([str(diff), str(base)], str(upper)), out)
    names = tarfile.open(fileobj=io.BytesIO(out.getvalue())).getnames()
    assert "etc/apt/.wh..wh..opq" in names and "bin/.wh.ping6" in names
    out.seek(0)
    apply_layer(out, str(copy), whiteouts=VFS)
    cmerged2 = tmp_path / "cmerged2"
    _mount_overlay(overlay_mounts, [upper, diff, base], tmp_path / "u2", tmp_path / "w2", cmerged2)
    assert _names(copy) == _names(cmerged2)
    assert (copy / "etc/passwd").read_text() == "changed\n"


def _names(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# --- compared with podman (containers/storage) -----------------------------------------------


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[Callable[..., str]]:
    exe, skopeo = shutil.which("podman"), shutil.which("skopeo")
    if exe is None or skopeo is None or shutil.which("runc") is None:
        pytest.skip("podman, skopeo and runc are needed (apt-get install podman skopeo runc)")
    env = reference_env(tmp_path)
    import tempfile

    root = tmp_path / "proot"
    runroot = Path(tempfile.mkdtemp(prefix="pypod-rr-"))  # podman wants it under 50 chars
    libpod_tmp = runroot / "libpod-tmp"  # not the shared /run/libpod: other podmans may run
    base = [exe, "--root", str(root), "--runroot", str(runroot), "--tmpdir", str(libpod_tmp),
            "--storage-driver", "overlay"]  # fmt: skip

    def run(*args: str) -> str:
        if args[0] == "skopeo":
            cmd = [skopeo, *args[1:]]
        else:
            cmd = [*base, *args]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{cmd}: {proc.stderr}"
        return proc.stdout.strip()

    run.store = f"containers-storage:[overlay@{root}+{runroot}]"  # type: ignore[attr-defined]
    yield run
    subprocess.run([*base, "rm", "-af"], env=env, capture_output=True)
    subprocess.run([*base, "system", "reset", "-f"], env=env, capture_output=True)
    shutil.rmtree(runroot, ignore_errors=True)


@pytest.mark.compat
def test_podman_layers_apply_alike_and_our_diff_has_its_digest(
    tmp_path: Path, podman: Callable[..., str], busybox: str
) -> None:
    import json

    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy(busybox, rootfs / "bin/busybox")
    for name in ("sh", "rm", "mkdir", "echo", "chmod", "ln"):
        os.symlink("busybox", rootfs / "bin" / name)
    (rootfs / "etc/apt/conf.d").mkdir(parents=True)
    (rootfs / "etc/apt/sources.list").write_text("deb\n")
    (rootfs / "etc/gone").write_text("g\n")
    (rootfs / "etc/keep").write_text("k\n")
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tmp_path / "rootfs.tar"), "."], check=True)
    podman("import", "-q", str(tmp_path / "rootfs.tar"), "base")
    script = (
        "rm /etc/gone; rm -rf /etc/apt; mkdir /etc/apt; echo x > /etc/apt/new; "
        "echo y > /new; chmod 600 /etc/keep; ln /new /new2; mkdir -p /var/lib/x"
    )
    podman("run", "--net", "none", "--name", "box", "base", "sh", "-c", script)
    upper = Path(podman("inspect", "box", "--format", "{{.GraphDriver.Data.UpperDir}}"))
    lower = Path(podman("inspect", "box", "--format", "{{.GraphDriver.Data.LowerDir}}"))
    # "box", not a hex word: podman diff looks a name up as an image (ID prefix) first
    shown = podman("diff", "box").splitlines()
    podman("commit", "-q", "box", "img")
    oci = tmp_path / "oci"
    podman("skopeo", "copy", "-q", podman.store + "localhost/img:latest", f"oci:{oci}:img")  # type: ignore[attr-defined]

    def blob(digest: str) -> Path:
        return oci / "blobs/sha256" / digest.split(":")[1]

    index = json.loads((oci / "index.json").read_text())
    manifest = json.loads(blob(index["manifests"][0]["digest"]).read_text())
    diff_ids = json.loads(blob(manifest["config"]["digest"]).read_text())["rootfs"]["diff_ids"]
    layers = [blob(layer["digest"]) for layer in manifest["layers"]]

    # podman's gzip layers applied here: the same diff IDs, the same layer directory
    mine = tmp_path / "mine"
    mine.mkdir()
    with open(layers[0], "rb") as f:
        assert apply_layer(f, str(mine)).diff_id == diff_ids[0]
    assert snapshot(mine) == snapshot(lower)
    # the change list is podman diff's (less the runtime's mount points, an engine concern)
    runtime = {"/dev", "/proc", "/sys", "/run", "/run/.containerenv", "/etc/hostname",
               "/etc/hosts", "/etc/mtab", "/etc/resolv.conf"}  # fmt: skip
    found = [str(c) for c in changes([str(lower)], str(upper)) if c.path not in runtime]
    assert found == [line for line in shown if line[2:] not in runtime]
    # our tar of the upper directory is byte for byte podman's commit
    out = io.BytesIO()
    assert export_changes(str(upper), changes([str(lower)], str(upper)), out).diff_id == diff_ids[1]
    # and podman's diff layer applied the vfs way over the base gives the container's view
    vfs = tmp_path / "vfs"
    vfs.mkdir()
    for layer in layers:
        with open(layer, "rb") as f:
            apply_layer(f, str(vfs), whiteouts=VFS)
    assert (vfs / "etc/apt").is_dir() and os.listdir(vfs / "etc/apt") == ["new"]
    assert not (vfs / "etc/gone").exists()
    assert (vfs / "new").stat().st_ino == (vfs / "new2").stat().st_ino
    assert stat.S_IMODE((vfs / "etc/keep").stat().st_mode) == 0o600
