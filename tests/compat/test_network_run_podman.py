"""Containers on networks: pypod against podman 4.3 with netavark and aardvark-dns, side by side.

The same commands through both tools; what a user sees must match once the addresses are
put in the same form: the container's /etc/hosts and /etc/resolv.conf, its routes, `port`,
the PORTS column, inspect's NetworkSettings keys, the errors of the network flags.  podman's
default network gets 10.87.0.0/16 (pypod's is 10.88.0.0/16): two bridges on one subnet would
break both.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator

import pytest

from tests.podman_support import IMAGE, Tool, both, ok, podman_sandbox

pytestmark = [pytest.mark.compat, pytest.mark.root]


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Tool]]:
    # podman's default network on a subnet of its own: two bridges on one would break both
    with podman_sandbox("pnr", tmp_path_factory.mktemp("bb"), default_subnet="10.87.0.0/16"
                        ) as tools:  # fmt: skip
        yield tools


def normal(text: str) -> str:
    """Addresses, IDs and names that differ by nature, in one form."""
    text = re.sub(r"\b10\.(87|88|89)\.\d+\.1\b", "10.N.x.1", text)  # gateways
    text = re.sub(r"\b10\.(87|88|89)\.\d+\.\d+", "10.N.x.y", text)
    text = re.sub(r"\b[0-9a-f]{12}\b", "<id>", text)
    return text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def test_default_network_files_and_routes(tools: dict[str, Tool]) -> None:
    script = "cat /etc/hosts; echo ==; cat /etc/resolv.conf; echo ==; ip route; ip -4 -o addr"
    out = both(tools, "run", "--rm", "--name", "files1", IMAGE, "sh", "-c", script)
    pm, pp = normal(ok(out["podman"])), normal(ok(out["pypod"]))
    # podman's routes carry "metric 100"; the kernel's own route says "proto kernel" in one
    pm = re.sub(r" +metric 100", "", pm).replace(" proto kernel", "")
    pp = pp.replace(" proto kernel", "")
    assert pp == pm


def test_dns_network_files(tools: dict[str, Tool]) -> None:
    for tool in tools.values():
        ok(tool("network", "create", "--subnet", "10.89.77.0/24", "cmpdns"))
    files = "cat /etc/hosts /etc/resolv.conf"
    out = both(tools, "run", "--rm", "--network", "cmpdns", "--network-alias", "al",
               "--name", "files2", IMAGE, "sh", "-c", files)  # fmt: skip
    assert normal(ok(out["pypod"])) == normal(ok(out["podman"]))


def test_dns_flags_files(tools: dict[str, Tool]) -> None:
    args = ("--dns", "192.0.2.53", "--dns-search", "example.com", "--dns-option", "ndots:3",
            "--add-host", "db.example:192.0.2.9", "--hostname", "h1",
            "--name", "files3")  # fmt: skip
    out = both(tools, "run", "--rm", *args, IMAGE, "sh", "-c", "cat /etc/hosts /etc/resolv.conf")
    assert normal(ok(out["pypod"])) == normal(ok(out["podman"]))


def test_published_port_views(tools: dict[str, Tool]) -> None:
    views = {}
    for name, tool in tools.items():
        port = free_port()
        cid = ok(tool("run", "-d", "-p", f"{port}:80", "-p", f"127.0.0.1:{port + 1}:81/udp",
                      IMAGE, "sleep", "100")).strip()  # fmt: skip
        settings = json.loads(ok(tool("inspect", "--format", "{{json .NetworkSettings}}", cid)))
        views[name] = (
            # (podman's order of the mappings is a Go map's: random; compare them as sets)
            sorted(
                ok(tool("port", cid))
                .replace(str(port + 1), "P1")
                .replace(str(port), "P")
                .splitlines()
            ),
            sorted(
                ok(tool("ps", "--format", "{{.Ports}}", "--filter", f"id={cid}"))
                .strip()
                .replace(str(port + 1), "P1")
                .replace(str(port), "P")
                .split(", ")
            ),
            sorted(settings),
            sorted(settings.get("Networks", {}).values().__iter__().__next__()),
        )
        tool("rm", "-f", "-t", "0", cid)
    assert views["pypod"] == views["podman"]


@pytest.mark.parametrize(
    "args",
    [
        ["--network", "n1", "--network", "host"],
        ["--ip", "10.88.0.50", "--network", "host"],
        ["--add-host", "foo"],
        ["--add-host", "foo:bar"],
        ["--dns", "1.2.3"],
        ["--mac-address", "zz"],
        ["-p", "70000:80"],
        ["-p", "80:80:80:80"],
        ["--network", "nosuch"],
    ],
    ids=lambda a: " ".join(a),
)
def test_flag_errors(tools: dict[str, Tool], args: list[str]) -> None:
    out = both(tools, "create", *args, IMAGE, "true")
    pm, pp = out["podman"], out["pypod"]
    assert (pp.returncode, pp.stderr.replace("pypod", "podman")) == (pm.returncode, pm.stderr)


def test_joined_network_files(tools: dict[str, Tool]) -> None:
    for tool in tools.values():
        ok(tool("run", "-d", "--name", "netbase", IMAGE, "sleep", "100"))
    try:
        out = both(tools, "run", "--rm", "--network", "container:netbase", "--name", "joiner",
                   IMAGE, "sh", "-c", "cat /etc/hosts /etc/resolv.conf; ip -4 -o addr")  # fmt: skip
        assert normal(ok(out["pypod"])) == normal(ok(out["podman"]))
    finally:
        for tool in tools.values():
            tool("rm", "-f", "-t", "0", "netbase")
