"""User namespaces as root (0 -> 100000, 65536 ids), and joining another container's namespaces.

The container's root is host uid 100000: its rootfs and the bound directory are chowned to it,
and they live in a directory every user may traverse (pytest's tmp_path is 0700 root); only the
runtime reads config.json, which stays in the `bundle` fixture's directory (and cgroup parent).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pypod.testing import make_busybox_rootfs
from tests.conftest import CLI, BundleFactory, messages

pytestmark = pytest.mark.root

HOST_ID, SIZE = 100000, 65536


@pytest.fixture
def open_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pypod-userns-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def chown_tree(path: Path, uid: int, gid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(path):
        os.lchown(dirpath, uid, gid)
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)


def userns_bundle(
    bundle: BundleFactory, where: Path, args: list[str], shared: Path | None = None
) -> Path:
    def edit(spec: dict[str, Any]) -> None:
        spec["linux"]["namespaces"].append({"type": "user"})
        for key in ("uidMappings", "gidMappings"):
            spec["linux"][key] = [{"containerID": 0, "hostID": HOST_ID, "size": SIZE}]
        if shared is not None:
            spec["mounts"].append(
                {"destination": "/mnt", "type": "bind", "source": str(shared), "options": ["rbind"]}
            )

    rootfs = where / "rootfs"
    make_busybox_rootfs(str(rootfs))
    chown_tree(rootfs, HOST_ID, HOST_ID)
    return bundle(args, rootfs=str(rootfs), edit=edit)


def test_userns_root_is_host_100000(
    rt: CLI, runc: CLI, bundle: BundleFactory, open_dir: Path
) -> None:
    shared = open_dir / "shared"
    shared.mkdir()
    os.chown(shared, HOST_ID, HOST_ID)
    script = (
        "id; cat /proc/self/uid_map /proc/self/gid_map; touch /mnt/made-inside; "
        "echo x > /dev/null && echo null-ok; stat -c '%t:%T %F' /dev/null /dev/zero"
    )
    b = userns_bundle(bundle, open_dir, ["sh", "-c", script], shared)
    out = rt.ok("run", "-b", str(b), "u1")
    lines = out.splitlines()
    assert lines[0].startswith("uid=0(root) gid=0(root)")
    assert lines[1].split() == ["0", str(HOST_ID), str(SIZE)]
    assert lines[2].split() == ["0", str(HOST_ID), str(SIZE)]
    assert lines[3] == "null-ok"
    # no mknod in a user namespace: the host's device nodes are bound in
    assert lines[4:] == ["1:3 character special file", "1:5 character special file"]
    st = (shared / "made-inside").stat()
    assert (st.st_uid, st.st_gid) == (HOST_ID, HOST_ID)
    (shared / "made-inside").unlink()
    assert runc.ok("run", "-b", str(b), "u1") == out


def test_userns_exec_and_lifecycle(rt: CLI, bundle: BundleFactory, open_dir: Path) -> None:
    b = userns_bundle(bundle, open_dir, ["sleep", "1000"])
    rt.ok("create", "-b", str(b), "u2")
    pid = json.loads(rt.ok("state", "u2"))["pid"]
    assert Path(f"/proc/{pid}").stat().st_uid == HOST_ID
    rt.ok("start", "u2")
    assert rt.ok("exec", "u2", "id").startswith("uid=0(root) gid=0(root)")
    assert rt.ok("exec", "u2", "cat", "/proc/self/uid_map").split() == [
        "0",
        str(HOST_ID),
        str(SIZE),
    ]
    assert rt.ok("exec", "-u", "1000:1000", "u2", "id").startswith("uid=1000(user) gid=1000")
    assert os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user")
    rt.ok("delete", "--force", "u2")


def _ns(pid: int | str, name: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{name}")


def test_join_namespaces_by_path(rt: CLI, bundle: BundleFactory) -> None:
    a = bundle(["sleep", "1000"], edit=lambda s: s.update(hostname="alpha"))
    rt.ok("run", "-d", "-b", str(a), "A")
    pid_a = json.loads(rt.ok("state", "A"))["pid"]
    joined = {"network": "net", "ipc": "ipc", "uts": "uts"}

    def edit(spec: dict[str, Any]) -> None:
        del spec["hostname"]  # the UTS namespace is A's: B may not set a hostname
        spec["linux"]["namespaces"] = [
            ns for ns in spec["linux"]["namespaces"] if ns["type"] not in joined
        ] + [{"type": t, "path": f"/proc/{pid_a}/ns/{f}"} for t, f in joined.items()]

    script = "hostname; for n in net ipc uts mnt pid; do readlink /proc/self/ns/$n; done"
    b = bundle(["sh", "-c", script], edit=edit)
    out = rt.ok("run", "-b", str(b), "B").splitlines()
    assert out[0] == "alpha"
    assert out[1:4] == [_ns(pid_a, "net"), _ns(pid_a, "ipc"), _ns(pid_a, "uts")]
    # the namespaces B did not join are its own, neither A's nor the host's
    for line, name in zip(out[4:], ("mnt", "pid"), strict=True):
        assert line not in (_ns(pid_a, name), _ns("self", name))


def test_join_uts_with_hostname_is_refused(rt: CLI, bundle: BundleFactory) -> None:
    a = bundle(["sleep", "1000"])
    rt.ok("run", "-d", "-b", str(a), "A")
    pid_a = json.loads(rt.ok("state", "A"))["pid"]

    def edit(spec: dict[str, Any]) -> None:
        for ns in spec["linux"]["namespaces"]:
            if ns["type"] == "uts":
                ns["path"] = f"/proc/{pid_a}/ns/uts"

    b = bundle(["true"], edit=edit)
    proc = rt("run", "-b", str(b), "B")
    assert proc.returncode == 1
    assert "unable to set hostname without a private UTS namespace" in messages(proc.stderr)
    assert rt.ok("list", "-q") == "A\n"
