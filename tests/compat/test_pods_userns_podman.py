"""Pods with a user namespace and the `--ipc/--pid/--uts pod` modes: pypod against podman 4.3
side by side (rootful) — the values `pod create --userns/--uidmap/--gidmap` takes, what is
refused with which words and exit code, `pod inspect` of such pods, the rules for members
(`--userns`, `--uidmap` with `--pod`) and the namespaces `--ipc pod` & co. name.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator

import pytest

from tests.compat.test_pods_podman import inspect_both
from tests.podman_support import IMAGE, Tool, both, ok, podman_sandbox

pytestmark = [pytest.mark.compat, pytest.mark.root]


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Tool]]:
    with podman_sandbox("ppu", tmp_path_factory.mktemp("bb"), catatonit=True) as tools:
        yield tools


def _name(prefix: str) -> str:
    return f"{prefix}{os.urandom(3).hex()}"


@pytest.mark.parametrize(
    "args",
    [
        ["--userns", "host"],
        ["--userns="],
        ["--uidmap", "0:100000:65536"],
        ["--gidmap", "0:100000:65536"],
        ["--uidmap", "0:100000:65536", "--gidmap", "0:200000:65536"],
        ["--uidmap", "0:100000:1000,1000:300000:10"],
        ["--uidmap", "0:100000:1000", "--uidmap", "1000:300000:10"],
        ["--uidmap", "0:100000:65536", "--share", "net"],
        ["--uidmap", "0:100000:65536", "--share", "+pid"],
        ["--uidmap", "0:100000:65536", "--infra=false"],
        ["--uidmap", "0:100000:65536", "--share", "none"],
        ["--share", "none"],
    ],
    ids=lambda a: " ".join(a),
)
def test_accepted_values_inspect_alike(tools: dict[str, Tool], args: list[str]) -> None:
    name = _name("pu")
    out = both(tools, "pod", "create", "--name", name, *args)
    for proc in out.values():
        assert re.fullmatch(r"[0-9a-f]{64}\n", ok(proc))
    try:
        pm, pp = inspect_both(tools, name)
        assert pp == pm
        fmt = "{{.InfraConfig.UserNS}}"
        if pm.get("InfraConfig"):
            out = both(tools, "pod", "inspect", "--format", fmt, name)
            assert ok(out["pypod"]) == ok(out["podman"])
    finally:
        both(tools, "pod", "rm", "-f", name)


@pytest.mark.parametrize(
    "args",
    [
        ["--userns", "keep-id"],
        ["--userns", "keep-id:uid=5"],
        ["--userns", "nomap"],
        ["--userns", "private"],
        ["--userns", "bogus"],
        ["--userns", "keep-id", "--uidmap", "0:100000:65536"],
        ["--userns", "host", "--gidmap", "0:100000:65536"],
        ["--userns=", "--uidmap", "0:100000:65536"],
    ],
    ids=lambda a: " ".join(a),
)
def test_refused_alike(tools: dict[str, Tool], args: list[str]) -> None:
    name = _name("pr")
    out = both(tools, "pod", "create", "--name", name, *args)
    try:
        assert out["pypod"].returncode == out["podman"].returncode == 125
        assert out["pypod"].stderr == out["podman"].stderr
        assert both(tools, "pod", "exists", name)["pypod"].returncode == 1
    finally:
        both(tools, "pod", "rm", "-f", name)


@pytest.mark.parametrize(
    "args", [["--userns", "auto"], ["--subuidname", "root"], ["--userns", "container:nosuch"]]
)
def test_refused_not_supported_yet(tools: dict[str, Tool], args: list[str]) -> None:
    """Refused by both here (podman: no subordinate ids for root or `containers`, or no such
    container); pypod says it does not support them yet."""
    out = both(tools, "pod", "create", *args)
    assert out["pypod"].returncode == out["podman"].returncode == 125
    assert "is not supported yet" in out["pypod"].stderr


@pytest.fixture(scope="module")
def pods(tools: dict[str, Tool]) -> Iterator[dict[str, str]]:
    """Pods of the same names in both tools: a default one, one sharing only net, one with a
    user namespace, one without an infra container."""
    names = {"default": _name("pd"), "net": _name("pn"), "userns": _name("pu"),
             "bare": _name("pb")}  # fmt: skip
    extra = {"default": [], "net": ["--share", "net"],
             "userns": ["--uidmap", "0:100000:65536"], "bare": ["--infra=false"]}  # fmt: skip
    for key, name in names.items():
        for proc in both(tools, "pod", "create", "--name", name, *extra[key]).values():
            ok(proc)
    yield names
    for name in names.values():
        both(tools, "pod", "rm", "-f", "-t", "0", name)


@pytest.mark.parametrize(
    ("pod", "args"),
    [
        ("default", ["--userns", "host"]),
        ("default", ["--userns="]),
        ("userns", ["--userns", "keep-id"]),
        ("userns", ["--userns", "pod"]),
        ("default", ["--uidmap", "0:200000:1000"]),
        ("userns", ["--gidmap", "0:200000:1000"]),
        ("net", ["--uidmap", "0:200000:1000"]),
        ("bare", ["--ipc", "pod"]),
        ("bare", ["--pid", "pod"]),
        (None, ["--ipc", "pod"]),
        (None, ["--pid", "pod"]),
        (None, ["--uts", "pod"]),
        (None, ["--userns", "pod"]),
    ],
    ids=lambda v: v if isinstance(v, str) or v is None else " ".join(v),
)
def test_member_refused_alike(
    tools: dict[str, Tool], pods: dict[str, str], pod: str | None, args: list[str]
) -> None:
    where = ["--pod", pods[pod]] if pod else []
    out = both(tools, "create", *where, *args, IMAGE, "true")
    assert out["pypod"].returncode == out["podman"].returncode == 125
    assert out["pypod"].stderr == out["podman"].stderr


@pytest.mark.parametrize(
    ("pod", "args"),
    [
        ("default", ["--ipc", "pod"]),
        ("default", ["--pid", "pod"]),
        ("default", ["--uts", "pod"]),
        ("net", ["--ipc", "pod"]),
        ("net", ["--pid", "pod"]),
        ("net", ["--uts", "pod"]),
        ("net", []),
        ("bare", ["--uidmap", "0:200000:1000"]),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_member_namespaces_alike(
    tools: dict[str, Tool], pods: dict[str, str], pod: str, args: list[str]
) -> None:
    """What the member's namespaces are (`container:<infra ID>` for `pod`), as inspect says."""
    name = _name("pm")
    out = both(tools, "create", "--pod", pods[pod], "--name", name, *args, IMAGE, "true")
    try:
        for proc in out.values():
            ok(proc)
        fmt = "{{.HostConfig.IpcMode}} {{.HostConfig.PidMode}} {{.HostConfig.UTSMode}}"
        shown = {}
        for tool, proc in both(tools, "inspect", "--format", fmt, name).items():
            infra = ok(tools[tool]("pod", "inspect", "--format", "{{.InfraContainerID}}",
                                   pods[pod])).strip()  # fmt: skip
            shown[tool] = ok(proc).replace(infra, "<infra>") if infra else ok(proc)
        assert shown["pypod"] == shown["podman"]
    finally:
        both(tools, "rm", "-f", name)


def test_member_of_uidmap_pod_sees_the_pods_map(tools: dict[str, Tool], pods: dict[str, str]
                                                ) -> None:  # fmt: skip
    """The infra container holds the pod's user namespace: as podman, pypod starts it with
    the pod's maps (its members join it: tests/e2e/test_pypod_pods_userns.py)."""
    name = pods["userns"]
    for tool in tools.values():
        infra = ok(tool("pod", "inspect", "--format", "{{.InfraContainerID}}", name)).strip()
        ok(tool("start", infra))
        pid = ok(tool("inspect", "--format", "{{.State.Pid}}", infra)).strip()
        with open(f"/proc/{pid}/uid_map") as f:
            assert f.read().split() == ["0", "100000", "65536"]
    pm, pp = (json.loads(ok(p)) for p in both(tools, "pod", "inspect", name).values())
    assert sorted(pm["SharedNamespaces"]) == pp["SharedNamespaces"] == ["ipc", "net", "user", "uts"]
