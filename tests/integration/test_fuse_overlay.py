"""The overlay driver's mount program: fuse-overlayfs, as root and as the rootless test user.

`--storage-opt overlay.mount_program=/usr/bin/fuse-overlayfs` (or STORAGE_OPTS) makes container
roots fuse-overlayfs mounts; the kernel here can mount overlay in a user namespace, so the
automatic fallback (used when it cannot) is tested on the driver with mount(2) refusing, as an
older kernel does.  Every test checks that what the container deleted stays deleted, that diff
and commit see what it did, and that no mount, daemon or fuse-overlayfs marker is left.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pypod.errors import InvalidArgument, NotSupported, OSLevelError, StorageError
from pypod.storage.drivers import fuse_overlay, overlay
from pypod.storage.drivers.overlay import OverlayDriver
from tests.engine_support import (
    IMAGE,
    Pypod,
    busybox_tar_fixture,  # noqa: F401 - fixture
    destroy_store,
    new_store,
    wait_for,
)
from tests.rootless_support import (
    UserPypod,
    rootless_pypod,  # noqa: F401 - fixtures
    rootless_user,  # noqa: F401
)

PROGRAM = shutil.which("fuse-overlayfs")
FUSE_OPT = f"overlay.mount_program={PROGRAM}"
DEV_FUSE = "/dev/fuse"

needs_fuse = pytest.mark.skipif(
    PROGRAM is None or not os.path.exists(DEV_FUSE),
    reason="fuse-overlayfs is not installed or /dev/fuse is missing (apt-get install "
    "fuse-overlayfs)",
)

#: what the test containers do to the image `base` (a file, a directory and a nested file)
CHANGE = (
    "rm -rf /d && mkdir /d && echo n > /d/n && rm /f && echo 2 > /e/z2 && rm /e/z "
    "&& mkdir /g && echo g > /g/h"
)
#: `pypod diff` of CHANGE, as the kernel's overlay gives it
EXPECTED_DIFF = ["D /d", "A /d/n", "C /e", "D /e/z", "A /e/z2", "D /f", "A /g", "A /g/h"]


def fuse_mounts(prefix: str, mountinfo: str | None = None) -> list[str]:
    """fuse-overlayfs mount points below `prefix` in `mountinfo` (default: ours)."""
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    found = []
    for line in mountinfo.splitlines():
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        if fstype == "fuse.fuse-overlayfs" and fields[4].startswith(prefix):
            found.append(fields[4])
    return found


def daemons_on(path: str) -> list[int]:
    """fuse-overlayfs processes (not zombies) whose command line names `path`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if b"fuse-overlayfs" in cmdline and path.encode() in cmdline and state != "Z":
                pids.append(int(entry))
    return pids


def fuse_leftovers(overlay_home: Path) -> list[str]:
    """fuse-overlayfs' markers left in the upper directories of a store's unmounted layers."""
    found = []
    for layer in overlay_home.iterdir():
        diff = layer / "diff"
        if not diff.is_dir() or os.path.ismount(layer / "merged"):
            continue
        if (layer / fuse_overlay.MARK).exists():
            found.append(f"{layer.name}: {fuse_overlay.MARK}")
        for dirpath, dirnames, filenames in os.walk(diff):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                if name.startswith(".wh."):
                    found.append(path)
                for x in os.listxattr(path, follow_symlinks=False):
                    if x.startswith("user.fuseoverlayfs."):
                        found.append(f"{path}: {x}")
    return found


def fuse_marked_upper(overlay_home: Path) -> Path:
    """The upper directory of the one layer mounted with the mount program, checked to hold
    fuse-overlayfs' own opaque marker for /d (what `normalize_upper` is there for)."""
    marked = [d for d in overlay_home.iterdir() if (d / fuse_overlay.MARK).exists()]
    assert len(marked) == 1, marked
    upper = marked[0] / "diff"
    assert (upper / "d" / ".wh..wh..opq").is_file()
    return upper


def diff_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith(("C /etc", "A /etc"))]


# --- options -----------------------------------------------------------------------------------
def test_options_podman_spellings(tmp_path: Path) -> None:
    prog = tmp_path / "mounter"
    prog.write_text("#!/bin/sh\nexit 0\n")
    prog.chmod(0o755)
    for key in ("overlay.mount_program", "overlay2.mount_program", ".mount_program",
                "mount_program", "Overlay.Mount_Program"):  # fmt: skip
        assert fuse_overlay.parse_options([f"{key}={prog}"]).mount_program == str(prog)
    # other drivers' options are theirs; the deprecated kernel check is ignored
    opts = fuse_overlay.parse_options(
        ["vfs.ignore_chown_errors=true", "overlay.override_kernel_check=1"]
    )
    assert opts.mount_program is None
    env = {"STORAGE_OPTS": f" vfs.x=1 , overlay.mount_program={prog},"}
    assert fuse_overlay.options_from_env(env).mount_program == str(prog)
    assert fuse_overlay.options_from_env({}).mount_program is None


def test_options_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="unknown storage option overlay.bogus"):
        fuse_overlay.parse_options(["overlay.bogus=1"])
    with pytest.raises(NotSupported, match="'overlay.size' is not supported yet"):
        fuse_overlay.parse_options(["overlay.size=10G"])
    with pytest.raises(InvalidArgument, match="not KEY=VALUE"):
        fuse_overlay.parse_options(["overlay.mount_program"])
    with pytest.raises(InvalidArgument, match="apt-get install fuse-overlayfs"):
        fuse_overlay.parse_options([f"overlay.mount_program={tmp_path}/missing"])
    plain = tmp_path / "plain"
    plain.write_text("")
    plain.chmod(0o644)
    with pytest.raises(InvalidArgument, match="not an executable file"):
        fuse_overlay.parse_options([f"overlay.mount_program={plain}"])


# --- upper directories in fuse-overlayfs' format ------------------------------------------------
@pytest.mark.root
def test_normalize_upper_makes_the_kernel_format(tmp_path: Path) -> None:
    upper = tmp_path / "diff"
    (upper / "opq").mkdir(parents=True)
    (upper / "opq" / ".wh..wh..opq").write_bytes(b"")  # fuse-overlayfs' opaque marker file
    os.mknod(upper / "opq" / ".wh..opq", stat.S_IFCHR, 0)  # its leftover whiteout
    (upper / "useropq").mkdir()
    os.setxattr(upper / "useropq", "user.fuseoverlayfs.opaque", b"y")  # in a user namespace
    (upper / "dir").mkdir()
    (upper / "dir" / ".wh.gone").write_bytes(b"")  # a whiteout where mknod was refused
    (upper / "copied").write_text("x")
    os.setxattr(upper / "copied", "user.fuseoverlayfs.origin", b"\x01\x02")
    os.setxattr(upper / "copied", "user.mine", b"kept")
    os.symlink("/etc/passwd", upper / "link")

    # while mounted: markers turned into the kernel's, origins (fuse-overlayfs' own) kept
    fuse_overlay.normalize_upper(str(upper), mounted=True)
    assert os.getxattr(upper / "opq", "trusted.overlay.opaque") == b"y"
    assert os.getxattr(upper / "useropq", "trusted.overlay.opaque") == b"y"
    assert "user.fuseoverlayfs.opaque" not in os.listxattr(upper / "useropq")
    assert sorted(os.listdir(upper / "opq")) == []
    gone = os.lstat(upper / "dir" / "gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0
    assert os.listdir(upper / "dir") == ["gone"]
    assert "user.fuseoverlayfs.origin" in os.listxattr(upper / "copied")

    fuse_overlay.normalize_upper(str(upper), mounted=False)
    assert sorted(os.listxattr(upper / "copied")) == ["user.mine"]
    assert os.readlink(upper / "link") == "/etc/passwd"
    assert (upper / "copied").read_text() == "x"


# --- as root, through the CLI --------------------------------------------------------------------
@pytest.fixture
def store(busybox_tar: Path) -> Iterator[Pypod]:
    where = Path(tempfile.mkdtemp(prefix="pfuse", dir="/tmp"))
    p = new_store(where, busybox_tar)
    try:
        # the image the tests change: /d/x, /d/sub/y, /e/z, /f
        p.ok("run", "--name", "mkbase", IMAGE, "sh", "-c",
             "mkdir -p /d/sub /e && echo 1 > /d/x && echo 2 > /d/sub/y && echo 3 > /e/z "
             "&& echo 4 > /f")  # fmt: skip
        p.ok("commit", "-q", "mkbase", "localhost/base")
        p.ok("rm", "mkbase")
        yield p
    finally:
        destroy_store(p)
        assert not fuse_mounts(str(where)), "fuse-overlayfs mounts left"


@pytest.mark.root
@needs_fuse
def test_container_on_fuse_overlayfs(store: Pypod) -> None:
    fuse = ["--storage-opt", FUSE_OPT]
    cid = store.ok(*fuse, "run", "-d", "localhost/base", "sleep", "1000").strip()
    overlay_home = store.root / "overlay"
    mounts = fuse_mounts(str(overlay_home))
    assert len(mounts) == 1, mounts
    assert daemons_on(mounts[0])
    store.ok("exec", cid, "sh", "-c", CHANGE)
    out = store.ok("exec", cid, "sh", "-c", "ls -a /d /e /g; ls /f || true; cat /d/n /e/z2")
    assert out.split() == ["/d:", ".", "..", "n", "/e:", ".", "..", "z2", "/g:", ".", "..",
                           "h", "n", "2"]  # fmt: skip
    assert os.getxattr(fuse_marked_upper(overlay_home) / "d", "trusted.overlay.opaque") == b"y"
    # diff of the running container, then of the stopped one: the kernel's answer
    assert diff_lines(store.ok("diff", cid)) == EXPECTED_DIFF
    store.ok("stop", "-t", "0", cid)
    assert not fuse_mounts(str(overlay_home))
    assert diff_lines(store.ok("diff", cid)) == EXPECTED_DIFF
    assert fuse_leftovers(overlay_home) == []
    # the same changes on the kernel's overlay give the same diff
    store.ok("run", "--name", "kernel", "localhost/base", "sh", "-c", CHANGE)
    assert diff_lines(store.ok("diff", "kernel")) == EXPECTED_DIFF
    # commit: the deletions are whiteouts in the new layer, honoured by either mount
    store.ok("commit", "-q", cid, "localhost/changed")
    look = "ls -a /d /e; test ! -e /f && echo nof"
    want = ["/d:", ".", "..", "n", "/e:", ".", "..", "z2", "nof"]
    assert store.ok("run", "--rm", "localhost/changed", "sh", "-c", look).split() == want
    assert store.ok(*fuse, "run", "--rm", "localhost/changed", "sh", "-c", look).split() == want
    store.ok("rm", "-f", cid)
    assert not fuse_mounts(str(overlay_home))
    assert not daemons_on(str(overlay_home))


@pytest.mark.root
@needs_fuse
def test_storage_opts_variable_and_empty_flag(store: Pypod) -> None:
    env = {**os.environ, "STORAGE_OPTS": FUSE_OPT}
    overlay_home = str(store.root / "overlay")
    cid = store("run", "-d", IMAGE, "sleep", "1000", env=env).stdout.strip()
    try:
        assert len(fuse_mounts(overlay_home)) == 1
        # the monitor's cleanup (a pypod of its own) unmounts it when the container ends
        store.ok("kill", cid)
        store.wait_status(cid, "exited")
        wait_for(lambda: not fuse_mounts(overlay_home), what="the fuse mount to go")
        # `--storage-opt ""` drops the variable's options: the kernel's overlay
        proc = store("--storage-opt", "", "start", cid, env=env)
        assert proc.returncode == 0, proc.stderr
        assert not fuse_mounts(overlay_home)
        mi = Path("/proc/self/mountinfo").read_text()
        assert any(" overlay " in line and overlay_home in line for line in mi.splitlines())
    finally:
        store("rm", "-f", "-t", "0", cid)
    assert not daemons_on(overlay_home)


@pytest.mark.root
def test_bad_mount_program_and_option(store: Pypod, tmp_path: Path) -> None:
    failing = tmp_path / "failing-mounter"
    failing.write_text("#!/bin/sh\necho 'cannot mount: boom' >&2\nexit 3\n")
    failing.chmod(0o755)
    err = store.fails(125, "--storage-opt", f"overlay.mount_program={failing}", "run", "--rm",
                      IMAGE, "true")  # fmt: skip
    assert "cannot mount: boom" in err and "exit status 3" in err
    err = store.fails(125, "--storage-opt", "overlay.nonsense=1", "images")
    assert "unknown storage option overlay.nonsense" in err
    assert not fuse_mounts(str(store.root))


# --- the fallback: the kernel refusing overlay in a user namespace -------------------------------
def _tar(entries: dict[str, bytes | None]) -> io.BytesIO:
    """A layer tar: name -> content (None: a directory)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


@pytest.fixture
def refusing_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver in a user namespace whose kernel refuses overlay mounts (before 5.11)."""
    real_mount = overlay.syscalls.mount

    def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
              data: str | None = None) -> None:  # fmt: skip
        if fstype == "overlay":
            raise OSLevelError(f"mount overlay on {target}", errno=errno.EPERM)
        real_mount(source, target, fstype, flags, data)

    monkeypatch.setattr(overlay.syscalls, "mount", mount)
    monkeypatch.setattr(overlay.userns, "in_user_namespace", lambda: True)
    monkeypatch.delenv("STORAGE_OPTS", raising=False)


@pytest.mark.root
@needs_fuse
def test_fallback_to_fuse_overlayfs(
    tmp_path: Path, refusing_kernel: None, caplog: pytest.LogCaptureFixture
) -> None:
    home = tmp_path / "overlay"
    driver = OverlayDriver(str(home), str(tmp_path / "run"))
    base, top, ctr = "a" * 64, "b" * 64, "c" * 64
    driver.create(base, None)
    driver.apply_diff(base, _tar({"d": None, "d/x": b"x", "d/y": b"y", "f": b"f", "g": None,
                                  "g/old": b"old"}))  # fmt: skip
    driver.create(top, base)
    driver.apply_diff(top, _tar({"d/.wh.x": b"", "g": None, "g/.wh..wh..opq": b""}))
    driver.create(ctr, top)
    merged = ""
    try:
        with caplog.at_level("DEBUG", logger="pypod.storage.drivers.fuse_overlay"):
            merged = driver.mount(ctr)
        assert "using " + str(PROGRAM) in caplog.text
        assert fuse_mounts(merged) == [merged]
        assert sorted(os.listdir(merged)) == ["d", "f", "g"]
        assert sorted(os.listdir(Path(merged) / "d")) == ["y"]  # the lower whiteout holds
        # and the opaque directory, marked as apply marks it in a user namespace
        assert os.getxattr(home / top / "diff" / "g", "user.overlay.opaque") == b"y"
        assert os.listdir(Path(merged) / "g") == []
        shutil.rmtree(Path(merged) / "d")
        (Path(merged) / "d").mkdir()
        (Path(merged) / "d" / "new").write_text("new")
        os.unlink(Path(merged) / "f")
        changes = sorted(str(c) for c in driver.changes(ctr, top))
        assert changes == ["A /d/new", "D /d", "D /f"]
        # a second layer mounts through the program straight away
        other = "e" * 64
        driver.create(other, top)
        second = driver.mount(other)
        assert fuse_mounts(second) == [second]
        driver.unmount(other)
    finally:
        for layer in ("e" * 64, ctr):
            with contextlib.suppress(Exception):
                driver.unmount(layer, force=True)
        subprocess.run(["umount", "-l", *fuse_mounts(str(home))], capture_output=True)
    assert not fuse_mounts(str(home))
    assert sorted(str(c) for c in driver.changes(ctr, top)) == ["A /d/new", "D /d", "D /f"]
    assert fuse_leftovers(home) == []


@pytest.mark.root
def test_fallback_without_fuse_overlayfs_says_install(
    tmp_path: Path, refusing_kernel: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fuse_overlay, "find_program", lambda: None)  # not installed
    driver = OverlayDriver(str(tmp_path / "overlay"), str(tmp_path / "run"))
    driver.create("a" * 64, None)
    with pytest.raises(StorageError, match="apt-get install fuse-overlayfs"):
        driver.mount("a" * 64)
    assert driver.mount_count("a" * 64) == 0
    assert not fuse_mounts(str(tmp_path))


# --- rootless ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dev_fuse() -> Iterator[None]:
    """/dev/fuse opened to the test user (Debian makes it 0666; this VM 0600), then restored."""
    from tests.rootless_support import device_opened

    with device_opened(DEV_FUSE):
        yield


@pytest.mark.root
@pytest.mark.rootless
@needs_fuse
def test_rootless_container_on_fuse_overlayfs(
    rootless_pypod: UserPypod,  # noqa: F811
    dev_fuse: None,
) -> None:
    p = rootless_pypod
    user = p.user
    overlay_home = user.home / ".local/share/pypod/overlay"
    fuse = ("--storage-opt", FUSE_OPT)
    p.ok("run", "--name", "fbase", "--network", "none", "localhost/busybox", "sh", "-c",
         "mkdir -p /d/sub /e && echo 1 > /d/x && echo 2 > /d/sub/y && echo 3 > /e/z "
         "&& echo 4 > /f")  # fmt: skip
    p.ok("commit", "-q", "fbase", "localhost/fbase")
    cid = ""
    try:
        cid = p.ok(*fuse, "run", "-d", "--network", "none", "localhost/fbase", "sleep", "1000")
        cid = cid.strip()
        mountinfo = p.ok("unshare", "cat", "/proc/self/mountinfo")
        assert len(fuse_mounts(str(overlay_home), mountinfo)) == 1, mountinfo
        p.ok("exec", cid, "sh", "-c", CHANGE)
        out = p.ok("exec", cid, "sh", "-c", "ls -a /d /e; ls /f || true")
        assert out.split() == ["/d:", ".", "..", "n", "/e:", ".", "..", "z2"]
        upper = fuse_marked_upper(overlay_home)  # in a user namespace: no trusted.* xattr
        assert os.getxattr(upper / "d", "user.fuseoverlayfs.opaque") == b"y"
        assert diff_lines(p.ok("diff", cid)) == EXPECTED_DIFF
        # a lower directory the container emptied stays empty once its markers are converted
        assert p.ok("exec", cid, "ls", "-a", "/d").split() == [".", "..", "n"]
        p.ok("stop", "-t", "0", cid)
        mountinfo = p.ok("unshare", "cat", "/proc/self/mountinfo")
        assert fuse_mounts(str(overlay_home), mountinfo) == []
        assert diff_lines(p.ok("diff", cid)) == EXPECTED_DIFF
        assert fuse_leftovers(overlay_home) == []
        p.ok("commit", "-q", cid, "localhost/fchanged")
        look = "ls -a /d /e; test ! -e /f && echo nof"
        want = ["/d:", ".", "..", "n", "/e:", ".", "..", "z2", "nof"]
        got = p.ok("run", "--rm", "--network", "none", "localhost/fchanged", "sh", "-c", look)
        assert got.split() == want
        # the layer as unpacked in the user namespace (user.overlay.opaque), through fuse
        got = p.ok(*fuse, "run", "--rm", "--network", "none", "localhost/fchanged", "sh", "-c",
                   look)  # fmt: skip
        assert got.split() == want
    finally:
        p("rm", "-f", "-t", "0", "fbase", *([cid] if cid else []))
        p("rmi", "-f", "localhost/fchanged", "localhost/fbase")
    mountinfo = p.ok("unshare", "cat", "/proc/self/mountinfo")
    assert fuse_mounts(str(overlay_home), mountinfo) == []
    assert not daemons_on(str(overlay_home))
