"""Rootless pods with a user namespace: `pod create --userns keep-id` (the infra container
runs in a keep-id namespace, its members join it and run as the user, as podman's), and
`--userns nomap` for containers.  Run as a test user (tests/rootless_support.py)."""

from __future__ import annotations

import os

import pytest

from tests.rootless_support import (
    IMAGE,
    SUB_SIZE,
    SUB_START,
    UserPypod,
    rootless_pypod,  # noqa: F401 - fixtures
    rootless_user,  # noqa: F401
)

pytestmark = [pytest.mark.root, pytest.mark.rootless]


def _pod(p: UserPypod) -> str:
    name = f"rk{os.urandom(3).hex()}"
    p.ok("pod", "create", "--name", name, "--userns", "keep-id", "--network", "none")
    return name


def _pid(p: UserPypod, what: str) -> int:
    return int(p.ok("inspect", "--format", "{{.State.Pid}}", what).strip())


def _infra(p: UserPypod, pod: str) -> str:
    return p.ok("pod", "inspect", "--format", "{{.InfraContainerID}}", pod).strip()


def _lines(path: str) -> list[list[str]]:
    with open(path) as f:
        return [line.split() for line in f if line.strip()]


def test_keep_id_pod_infra(rootless_pypod: UserPypod) -> None:  # noqa: F811
    p, uid = rootless_pypod, rootless_pypod.user.uid
    name = _pod(p)
    try:
        fmt = "{{.InfraConfig.UserNS}} {{.SharedNamespaces}}"
        assert p.ok("pod", "inspect", "--format", fmt, name).strip() == "private [ipc net user uts]"
        infra = _infra(p, name)
        p.ok("start", infra)
        # as the host sees it: container ids below the user's are its subordinate ids, the
        # user's own id is the user, the ones above it the rest of the subordinate ids
        above = [[str(uid + 1), str(SUB_START + uid), str(SUB_SIZE - uid)]]
        assert _lines(f"/proc/{_pid(p, infra)}/uid_map") == [
            ["0", str(SUB_START), str(min(uid, SUB_SIZE))],
            [str(uid), str(uid), "1"],
            *(above if uid < SUB_SIZE else []),
        ]
    finally:
        p("pod", "rm", "-f", "-t", "0", name)


def test_keep_id_pod_members_run_as_the_user(rootless_pypod: UserPypod) -> None:  # noqa: F811
    p, user = rootless_pypod, rootless_pypod.user
    name = _pod(p)
    try:
        out = p.ok("run", "--rm", "--pod", name, IMAGE, "sh", "-c",
                   "id -u; whoami; stat -c %u /bin/busybox; cat /proc/self/uid_map")  # fmt: skip
        lines = out.splitlines()
        assert lines[:3] == [str(user.uid), user.name, "0"]
        member = p.ok("run", "-d", "--pod", name, IMAGE, "sleep", "1000").strip()
        infra = _pid(p, _infra(p, name))
        assert os.stat(f"/proc/{_pid(p, member)}/ns/user").st_ino == (
            os.stat(f"/proc/{infra}/ns/user").st_ino
        )
        err = p.fails(125, "run", "--rm", "--pod", name, "--userns", "keep-id", IMAGE, "true")
        assert "--userns and --pod cannot be set together" in err
    finally:
        p("pod", "rm", "-f", "-t", "0", name)


def test_nomap_container(rootless_pypod: UserPypod) -> None:  # noqa: F811
    out = rootless_pypod.ok("run", "--rm", "--network", "none", "--userns", "nomap", IMAGE,
                            "cat", "/proc/self/uid_map")  # fmt: skip
    assert out.split() == ["0", "1", str(SUB_SIZE)]
