"""pypod's rtnetlink client against the kernel, through `pypod.network.netlink.Netlink`.

Two network namespaces made by the test stand for the host and a container: a bridge with
addresses in the first, a veth pair from it into the second, addresses and default routes
there; everything is read back with iproute2 (`ip -j`) and a ping crosses the pair.
"""

from __future__ import annotations

import errno
import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pypod.errors import NotFound, PypodError
from pypod.linux import netns
from pypod.linux.netns import call_in
from pypod.network import netlink
from pypod.network.netlink import Netlink
from pypod.testing import find_busybox

pytestmark = pytest.mark.root

MAC = "02:42:0a:e7:00:02"


@pytest.fixture
def spaces(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(host, container): two fresh network namespaces, removed afterwards."""
    made = []
    try:
        for name in ("host", "ctr"):
            path = str(tmp_path / name)
            netns.create(path)
            made.append(path)
        yield made[0], made[1]
    finally:
        for path in made:
            netns.remove(path)


def ip_json(ns: str, *args: str) -> Any:
    out = subprocess.run(["nsenter", f"--net={ns}", "ip", "-j", *args],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return json.loads(out or "[]")


def addresses(ns: str, dev: str) -> set[tuple[str, int, str | None]]:
    [link] = ip_json(ns, "addr", "show", "dev", dev)
    return {
        (a["local"], a["prefixlen"], a.get("broadcast"))
        for a in link["addr_info"]
        if a.get("scope") == "global"
    }


def test_bridge_veth_addresses_and_routes(spaces: tuple[str, str]) -> None:
    host_ns, ctr_ns = spaces
    with Netlink(host_ns) as host, Netlink(ctr_ns) as ctr:
        bridge = host.create_bridge("pypodbr0", 1400)
        assert host.create_bridge("pypodbr0", 1400) == bridge  # already there: same index
        assert host.link_index("pypodbr0") == bridge
        for _ in range(2):  # a second time is no error
            host.add_address(bridge, "10.231.0.1/24")
            host.add_address(bridge, "fd31::1/64")
        host.create_veth("vethpypod0", "eth0", ctr_ns, bridge, 1400, MAC)
        eth0 = ctr.link_index("eth0")
        assert eth0 is not None
        ctr.set_up(eth0)
        ctr.add_address(eth0, "10.231.0.2/24")
        ctr.add_address(eth0, "fd31::2/64")
        ctr.add_default_route("10.231.0.1", eth0)
        ctr.add_default_route("10.231.0.9", eth0)  # one already: it stays, no error
        ctr.add_default_route("fd31::1", eth0)

        [br] = ip_json(host_ns, "-d", "link", "show", "pypodbr0")
        assert br["linkinfo"]["info_kind"] == "bridge"
        assert br["mtu"] == 1400 and "UP" in br["flags"]
        assert addresses(host_ns, "pypodbr0") == {
            ("10.231.0.1", 24, "10.231.0.255"),
            ("fd31::1", 64, None),
        }
        [veth] = ip_json(host_ns, "-d", "link", "show", "vethpypod0")
        assert veth["master"] == "pypodbr0" and veth["linkinfo"]["info_kind"] == "veth"
        assert veth["mtu"] == 1400 and "UP" in veth["flags"]

        [peer] = ip_json(ctr_ns, "-d", "link", "show", "eth0")
        assert peer["address"] == MAC and peer["mtu"] == 1400 and "UP" in peer["flags"]
        assert peer["linkinfo"]["info_kind"] == "veth"
        assert addresses(ctr_ns, "eth0") == {
            ("10.231.0.2", 24, "10.231.0.255"),
            ("fd31::2", 64, None),
        }
        v6 = [a for a in ip_json(ctr_ns, "-6", "addr", "show", "dev", "eth0")[0]["addr_info"]
              if a["local"] == "fd31::2"]  # fmt: skip
        assert v6[0].get("nodad") is True and not v6[0].get("tentative")
        [route] = ip_json(ctr_ns, "-d", "route", "show", "default")
        assert (route["gateway"], route["dev"], route["protocol"]) == ("10.231.0.1", "eth0", "boot")
        [route6] = ip_json(ctr_ns, "-6", "route", "show", "default")
        assert (route6["gateway"], route6["dev"]) == ("fd31::1", "eth0")

        busybox = find_busybox()
        if busybox is not None:  # the pair carries traffic
            ping = subprocess.run(
                ["nsenter", f"--net={ctr_ns}", busybox, "ping", "-c", "1", "-W", "3",
                 "10.231.0.1"], capture_output=True, text=True)  # fmt: skip
            assert ping.returncode == 0, ping.stdout + ping.stderr

        by_name = {name: (index, master) for index, name, master in host.links()}
        assert by_name["vethpypod0"] == (host.link_index("vethpypod0"), bridge)
        assert by_name["pypodbr0"] == (bridge, 0) and by_name["lo"][1] == 0
        assert netlink.in_use_by_others(host, "pypodbr0") is True

        assert ctr.delete_link("eth0") is True  # the pair goes with it
        assert ctr.delete_link("eth0") is False
        assert host.link_index("vethpypod0") is None
        assert netlink.in_use_by_others(host, "pypodbr0") is False
        assert netlink.in_use_by_others(host, "nosuchbr") is None
        assert host.delete_link("pypodbr0") is True
        assert host.link_index("pypodbr0") is None


def test_kernel_errors_name_the_request_and_keep_errno(spaces: tuple[str, str]) -> None:
    host_ns, ctr_ns = spaces
    with Netlink(host_ns) as host:
        with pytest.raises(PypodError) as info:
            host.set_up(987654)
        assert info.value.errno == errno.ENODEV
        assert str(info.value) == (
            f"bring interface 987654 up in network namespace {host_ns}: No such device"
        )
        with pytest.raises(NotFound, match="open network namespace /nonexistent/ns"):
            host.create_veth("vethx", "eth0", "/nonexistent/ns", 0, 0, MAC)
        bridge = host.create_bridge("pypodbr1")
        host.create_veth("vethpypod1", "eth0", ctr_ns, bridge, 0, "")
        with pytest.raises(PypodError) as info:  # the peer's name is taken in there
            host.create_veth("vethpypod2", "eth0", ctr_ns, bridge, 0, "")
        assert info.value.errno == errno.EEXIST
        assert str(info.value).startswith(
            f"create veth pair vethpypod2 / eth0 (in {ctr_ns}) in network namespace {host_ns}:"
        )
        with pytest.raises(PypodError) as info:
            host.add_address(987654, "10.9.0.1/24")
        assert info.value.errno == errno.ENODEV
    with pytest.raises(NotFound, match="open network namespace /nonexistent/ns"):
        Netlink("/nonexistent/ns")


def test_links_dump_spans_several_datagrams(spaces: tuple[str, str]) -> None:
    host_ns, _ = spaces
    with Netlink(host_ns) as host:
        made = {f"pypodb{i}": host.create_bridge(f"pypodb{i}") for i in range(48)}
        sock = host.sock
        datagrams = []
        receive = sock._receive

        def counted() -> Any:
            msgs = receive()
            datagrams.append(len(msgs))
            return msgs

        sock._receive = counted  # type: ignore[method-assign]
        found = {name: index for index, name, _ in host.links()}
    assert len(datagrams) > 1  # a multipart dump, not one datagram
    assert {name: found[name] for name in made} == made
    assert len(found) == len(made) + 1  # and lo


def udp_socket_in(ns: str) -> socket.socket:
    """A UDP socket of the network namespace at `ns` (a socket stays in the one it was made in)."""
    return call_in(ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))


def test_conntrack_flows_listed_and_deleted(spaces: tuple[str, str]) -> None:
    from pypod.linux import ctnetlink as ct

    ns, _ = spaces
    rules = (
        "table ip t {\n chain c {\n type filter hook output priority 0\n ct state new accept\n }\n}"
    )
    subprocess.run(["nsenter", f"--net={ns}", "nft", "-f", "-"], input=rules, text=True,
                   check=True)  # fmt: skip
    with Netlink(ns) as nl:
        lo = nl.link_index("lo")
        assert lo is not None
        nl.set_up(lo)
    client, server = udp_socket_in(ns), udp_socket_in(ns)
    with client, server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        client.bind(("127.0.0.1", 0))
        client.sendto(b"ping", ("127.0.0.1", port))
        assert server.recv(10) == b"ping"
        sport = client.getsockname()[1]
        sock = call_in(ns, ct.open_socket)
        with sock:
            flows = ct.flows(sock, 2, 17, port)
            assert [(f.orig.saddr, f.orig.sport, f.orig.dport, f.reply.sport) for f in flows] == [
                (bytes([127, 0, 0, 1]), sport, port, port)
            ]
            assert ct.flows(sock, 2, 17, port + 1 if port < 65535 else 1) == []
            ct.delete(sock, 2, flows[0].orig)
            assert ct.flows(sock, 2, 17, port) == []
            with pytest.raises(OSError) as info:
                ct.delete(sock, 2, flows[0].orig)
            assert info.value.errno == errno.ENOENT
