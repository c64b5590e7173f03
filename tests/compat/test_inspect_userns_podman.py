"""`inspect`'s HostConfig.UsernsMode and IDMappings of containers with maps of their own,
side by side with podman 4.3."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.podman_support import IMAGE, Tool, both, ok, podman_sandbox

pytestmark = [pytest.mark.compat, pytest.mark.root]


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Tool]]:
    with podman_sandbox("pux", tmp_path_factory.mktemp("bb")) as tools:
        yield tools


@pytest.mark.parametrize(
    "maps",
    [
        [],
        ["--uidmap", "0:100000:5000"],
        ["--uidmap", "0:100000:5000", "--gidmap", "0:200000:5000"],
        ["--gidmap", "0:200000:5000"],
        ["--uidmap", "0:100000:5000", "--uidmap", "5000:300000:10"],
    ],
    ids=["none", "uid", "uid-gid", "gid", "two-uid"],
)
def test_userns_mode_and_id_mappings(tools: dict[str, Tool], maps: list[str]) -> None:
    name = "uxm-" + "-".join(m.replace(":", "") for m in maps if not m.startswith("-"))[:40]
    for proc in both(
        tools, "create", "--name", name, "--network", "none", *maps, IMAGE, "true"
    ).values():
        ok(proc)
    try:
        got = {}
        for tool, proc in both(tools, "inspect", name).items():
            host = json.loads(ok(proc))[0]["HostConfig"]
            keys = list(host)
            at = keys.index("UsernsMode")
            got[tool] = (host["UsernsMode"], host.get("IDMappings"), keys[at : at + 2])
        assert got["pypod"] == got["podman"]
    finally:
        both(tools, "rm", "-f", name)
