"""Pods with a user namespace (`pod create --uidmap/--gidmap`, rootful) and the members'
`--ipc/--pid/--uts pod` modes, as users type them.

The infra container is made with the pod's maps (its root filesystem remapped: its files
belong to the mapped ids on the host); members join its user namespace (the same namespace,
the same maps, their root filesystems remapped with them).  Real namespaces (root).
"""

from __future__ import annotations

import os

import pytest

from tests.engine_support import (  # noqa: F401  (fixtures)
    IMAGE,
    Pypod,
    busybox_tar_fixture,
    pods_fixture,
    pypod_fixture,
    pypod_session_fixture,
)

pytestmark = pytest.mark.root

UIDS, GIDS = (100000, 65536), (200000, 65536)
NOT_IN_POD = (
    "cannot use pod namespace as container is not joining a pod or pod has no infra container: "
    "invalid argument"
)


def _pid(p: Pypod, what: str) -> int:
    return int(p.fmt(what, "{{.State.Pid}}"))


def _infra(p: Pypod, pod: str) -> str:
    return p.ok("pod", "inspect", "--format", "{{.InfraContainerID}}", pod).strip()


def _map(pid: int, which: str) -> list[str]:
    with open(f"/proc/{pid}/{which}") as f:
        return f.read().split()


def _ns(pid: int, kind: str) -> int:
    return os.stat(f"/proc/{pid}/ns/{kind}").st_ino


def _uidmap_pod(p: Pypod) -> str:
    name = f"un{os.urandom(3).hex()}"
    p.ok("pod", "create", "--name", name, "--uidmap", f"0:{UIDS[0]}:{UIDS[1]}",
         "--gidmap", f"0:{GIDS[0]}:{GIDS[1]}")  # fmt: skip
    return name


def test_uidmap_pod_infra_has_the_user_namespace(pods: Pypod) -> None:
    name = _uidmap_pod(pods)
    shared = pods.ok("pod", "inspect", "--format", "{{.SharedNamespaces}}", name).strip()
    assert shared == "[ipc net user uts]"
    userns = pods.ok("pod", "inspect", "--format", "{{.InfraConfig.UserNS}}", name).strip()
    assert userns == "private"
    pods.ok("pod", "start", name)
    infra = _pid(pods, _infra(pods, name))
    assert _map(infra, "uid_map") == ["0", str(UIDS[0]), str(UIDS[1])]
    assert _map(infra, "gid_map") == ["0", str(GIDS[0]), str(GIDS[1])]
    assert _ns(infra, "user") != _ns(os.getpid(), "user")
    # its root filesystem was remapped: the image's root-owned files are the mapped root's
    st = os.stat(f"/proc/{infra}/root/catatonit")
    assert (st.st_uid, st.st_gid) == (UIDS[0], GIDS[0])


def test_uidmap_pod_members_join_the_infra_user_namespace(pods: Pypod) -> None:
    name = _uidmap_pod(pods)
    member = pods.sleeper("--pod", name)
    infra, pid = _pid(pods, _infra(pods, name)), _pid(pods, member)
    assert _ns(pid, "user") == _ns(infra, "user")
    for kind in ("net", "ipc", "uts"):
        assert _ns(pid, kind) == _ns(infra, kind)
    assert _map(pid, "uid_map") == _map(infra, "uid_map")
    assert _map(pid, "gid_map") == _map(infra, "gid_map")
    # the member's root filesystem is remapped with the pod's maps too
    st = os.stat(f"/proc/{pid}/root/bin/busybox")
    assert (st.st_uid, st.st_gid) == (UIDS[0], GIDS[0])
    out = pods.ok("exec", member, "sh", "-c", "id -u; touch /tmp/made; stat -c %u:%g /bin/sh")
    assert out.split() == ["0", "0:0"]
    st = os.stat(f"/proc/{pid}/root/tmp/made")
    assert (st.st_uid, st.st_gid) == (UIDS[0], GIDS[0])
    out = pods.ok("run", "--rm", "--pod", name, IMAGE, "cat", "/proc/self/uid_map")
    assert out.split() == ["0", str(UIDS[0]), str(UIDS[1])]


def test_userns_of_a_pod_and_of_its_members_errors(pods: Pypod) -> None:
    name = _uidmap_pod(pods)
    err = pods.fails(125, "create", "--pod", name, "--userns", "host", IMAGE)
    assert err == "Error: --userns and --pod cannot be set together\n"
    err = pods.fails(125, "create", "--pod", name, "--uidmap", "0:300000:10", IMAGE)
    assert err == (
        "Error: cannot specify a new uid/gid map when entering a pod with an infra container: "
        "invalid argument\n"
    )
    assert "keep-id is only supported in rootless mode" in pods.fails(
        125, "pod", "create", "--userns", "keep-id"
    )
    assert "are mutually exclusive" in pods.fails(
        125, "pod", "create", "--userns", "host", "--uidmap", "0:1:2"
    )
    assert "must provide at least one UID or GID mapping" in pods.fails(
        125, "pod", "create", "--userns", "private"
    )
    # a pod without an infra container has no user namespace: its members may have theirs
    bare = f"nb{os.urandom(3).hex()}"
    pods.ok("pod", "create", "--name", bare, "--infra=false", "--uidmap", "0:100000:65536")
    out = pods.ok("run", "--rm", "--pod", bare, "--uidmap", "0:300000:100", IMAGE, "cat",
                  "/proc/self/uid_map")  # fmt: skip
    assert out.split() == ["0", "300000", "100"]
    out = pods.ok("run", "--rm", "--pod", bare, IMAGE, "cat", "/proc/self/uid_map")
    assert out.split() == ["0", "0", "4294967295"]


def test_run_pod_new_with_uidmap_makes_the_pods_user_namespace(pods: Pypod) -> None:
    name = f"nw{os.urandom(3).hex()}"
    pods.ok("create", "--pod", f"new:{name}", "--uidmap", "0:100000:65536", IMAGE, "true")
    shared = pods.ok("pod", "inspect", "--format", "{{.SharedNamespaces}}", name).strip()
    assert shared == "[ipc net user uts]"
    pods.ok("start", _infra(pods, name))
    infra = _pid(pods, _infra(pods, name))
    assert _map(infra, "uid_map") == ["0", "100000", "65536"]


def test_share_none_makes_no_infra_container(pods: Pypod) -> None:
    name = f"sn{os.urandom(3).hex()}"
    pods.ok("pod", "create", "--name", name, "--share", "none")
    fmt = "{{.CreateInfra}} {{.NumContainers}}"
    assert pods.ok("pod", "inspect", "--format", fmt, name).strip() == "false 0"


def test_ipc_pid_uts_pod_join_the_infra_namespaces(pods: Pypod) -> None:
    name = f"nm{os.urandom(3).hex()}"
    pods.ok("pod", "create", "--name", name, "--share", "net")
    # the infra's namespace of that kind, even though the pod does not share it (podman's)
    out = pods.ok("run", "--rm", "--pod", name, "--pid", "pod", IMAGE, "ps", "-o", "pid,args")
    assert out.splitlines()[1].split() == ["1", "/catatonit", "-P"]
    out = pods.ok("run", "--rm", "--pod", name, "--uts", "pod", IMAGE, "hostname")
    assert out.strip() == name
    assert pods.ok("run", "--rm", "--pod", name, IMAGE, "hostname").strip() != name
    member = pods.sleeper("--pod", name, "--ipc", "pod")
    infra = _pid(pods, _infra(pods, name))
    assert _ns(_pid(pods, member), "ipc") == _ns(infra, "ipc")
    other = pods.sleeper("--pod", name)
    assert _ns(_pid(pods, other), "ipc") != _ns(infra, "ipc")
    fmt = "{{.HostConfig.IpcMode}}"
    assert pods.fmt(member, fmt) == f"container:{_infra(pods, name)}"


def test_pod_modes_need_a_pod_with_an_infra_container(pods: Pypod) -> None:
    for kind in ("ipc", "pid", "uts", "userns"):
        assert pods.fails(125, "create", f"--{kind}", "pod", IMAGE) == f"Error: {NOT_IN_POD}\n"
    bare = f"nb{os.urandom(3).hex()}"
    pods.ok("pod", "create", "--name", bare, "--infra=false")
    err = pods.fails(125, "create", "--pod", bare, "--ipc", "pod", IMAGE)
    assert err == f"Error: {NOT_IN_POD}\n"
