"""`network create/inspect/ls/rm/exists`: pypod against podman 4.3 with netavark, side by side.

Both write only configurations here (no container, no bridge): the JSON podman's `network
inspect` prints must have the same keys, shape and values (IDs, times and the bridge's name
prefix aside), the errors the same words and exit codes.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.podman_support import Tool, podman_sandbox

pytestmark = [pytest.mark.compat, pytest.mark.root]


@pytest.fixture(scope="module")
def tools() -> Iterator[dict[str, Tool]]:
    """podman (netavark backend, its own config dir) and pypod, each on a store of its own."""
    with podman_sandbox("pnc", None) as tools:
        yield tools


def _shape(value: Any) -> Any:
    """The keys and value types of a JSON document, with the values that differ by nature
    (IDs, times, bridge-name prefixes, random IPv6 subnets) made comparable."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "id":
                assert re.fullmatch(r"[0-9a-f]{64}", v)
                v = "<id>"
            elif k == "created":
                assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", v)
                v = "<time>"
            elif k == "network_interface":  # the number skips live interfaces of the host's
                v = re.sub(r"^(podman|pypod)\d+$", "<bridge>N", v)
            elif k == "name":
                v = re.sub(r"^(podman|pypod)\d+$", "<name>N", v)
            out[k] = _shape(v)
        return out
    if isinstance(value, list):
        return [_shape(v) for v in value]
    if isinstance(value, str) and re.fullmatch(r"fd[0-9a-f]{2}:[0-9a-f:]+(/64)?", value):
        return re.sub(r"^fd[0-9a-f:]+?::", "<ula>::", value)
    return value


def _both(tools: dict[str, Tool], *args: str) -> tuple[subprocess.CompletedProcess[str], ...]:
    return tools["podman"](*args), tools["pypod"](*args)


CREATES = [
    ["plain"],
    [],
    ["--subnet", "10.99.0.0/24", "--gateway", "10.99.0.5", "--ip-range", "10.99.0.128/25",
     "--internal", "--label", "a=b", "--label", "c", "--disable-dns", "-o", "mtu=1400",
     "-o", "isolate=1", "full"],
    ["--internal", "iso"],
    ["--internal", "--disable-dns", "isonodns"],
    ["--subnet", "fd00:aa::/64", "only6"],
    ["--ipv6", "dual"],
    ["--ipv6", "--subnet", "fd00:bb::/64", "dual6"],
    ["--subnet", "10.90.0.0/24", "--subnet", "10.90.1.0/24", "--gateway", "10.90.0.9", "two"],
    ["--subnet", "10.93.0.7/24", "-o", "mtu", "hostbits"],
]  # fmt: skip


@pytest.mark.parametrize("args", CREATES, ids=lambda a: " ".join(a) or "unnamed")
def test_create_inspect_same_json(tools: dict[str, Tool], args: list[str]) -> None:
    pm, pp = _both(tools, "network", "create", *args)
    assert pm.returncode == pp.returncode == 0, (pm.stderr, pp.stderr)
    assert _shape({"name": pp.stdout.strip()}) == _shape({"name": pm.stdout.strip()})
    name_pm, name_pp = pm.stdout.strip(), pp.stdout.strip()
    try:
        got_pm = json.loads(tools["podman"]("network", "inspect", name_pm).stdout)
        got_pp = json.loads(tools["pypod"]("network", "inspect", name_pp).stdout)
        dual = "--ipv6" in args and "fd00:bb::/64" not in args
        if dual:  # random ULA /64s: compare their form, not their value
            for doc in (got_pm, got_pp):
                v6 = doc[0]["subnets"][1]
                assert re.fullmatch(r"fd[0-9a-f:]+::/64", v6["subnet"])
                assert v6["gateway"] == v6["subnet"].replace("::/64", "::1")
                v6["subnet"], v6["gateway"] = "<ula>/64", "<ula>1"
        if not any(a.startswith("10.") for a in args):
            # chosen subnets: the first free 10.89.N.0/24 at that moment, which bridges other
            # tests make on the host can change between the two creates: compare the form
            for doc in (got_pm, got_pp):
                for sub in doc[0].get("subnets") or ():
                    if re.fullmatch(r"10\.89\.\d+\.0/24", sub["subnet"]):
                        assert sub.get("gateway", "10.89.0.1").endswith(".1")
                        sub["subnet"] = "10.89.<n>.0/24"
                        if "gateway" in sub:
                            sub["gateway"] = "10.89.<n>.1"
        assert _shape(got_pp) == _shape(got_pm)
    finally:
        tools["podman"]("network", "rm", name_pm)
        tools["pypod"]("network", "rm", name_pp)


ERRORS = [
    ["bad/name"],
    ["_x"],
    ["-d", "foo", "x"],
    ["-o", "mtu=abc", "x"],
    ["-o", "mtu=-5", "x"],
    ["-o", "isolate=maybe", "x"],
    ["-o", "foo=bar", "x"],
    ["--subnet", "10.88.0.0/16", "x"],
    ["--subnet", "127.0.0.0/8", "x"],
    ["--subnet", "10.99.1.0/24", "--gateway", "10.98.0.1", "x"],
    ["--gateway", "10.0.0.1", "x"],
    ["--subnet", "10.97.0.0/24", "--gateway", "10.97.0.1", "--gateway", "10.97.0.2", "x"],
    ["--subnet", "10.97.0.0/24", "--ip-range", "10.97.0.0/25", "--ip-range", "10.97.0.0/26",
     "x"],
    ["--subnet", "bogus", "x"],
    ["--subnet", "10.96.0.0/24", "--gateway", "bogus", "x"],
    ["--subnet", "10.95.0.0/24", "--ip-range", "10.94.0.0/26", "x"],
    ["--label", "=x", "x"],
]  # fmt: skip


@pytest.mark.parametrize("args", ERRORS, ids=" ".join)
def test_create_errors_same(tools: dict[str, Tool], args: list[str]) -> None:
    pm, pp = _both(tools, "network", "create", *args)
    assert pm.returncode == pp.returncode == 125
    first = pm.stderr.splitlines()[0]
    assert pp.stderr.splitlines()[0].startswith(first)  # pypod may add what to do


def test_ls_rm_exists_inspect_errors_same(tools: dict[str, Tool]) -> None:
    for tool in tools.values():
        assert tool("network", "create", "keep").returncode == 0
    pm, pp = _both(tools, "network", "ls")
    assert (
        pm.stdout.splitlines()[0] == pp.stdout.splitlines()[0] == "NETWORK ID    NAME        DRIVER"
    )
    assert len(pm.stdout.splitlines()) == len(pp.stdout.splitlines())
    for args in (["network", "exists", "keep"], ["network", "exists", "nope"],
                 ["network", "rm", "nope"], ["network", "inspect", "nope"],
                 ["network", "rm"], ["network", "ls", "--filter", "foo=bar"]):  # fmt: skip
        pm, pp = _both(tools, *args)
        assert (pp.returncode, pp.stdout.replace("pypod", "podman"), pp.stderr) == (
            pm.returncode, pm.stdout, pm.stderr), args  # fmt: skip
    pm, pp = _both(tools, "network", "rm", "keep")
    assert pm.returncode == pp.returncode == 0 and pm.stdout == pp.stdout == "keep\n"
