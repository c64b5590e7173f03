"""Bridge networks on the real kernel: veths, addresses, routes, NAT, published ports, teardown.

Each test builds its own networks (bridge `pypodt<random>`, a free 10.2xx.N.0/24) and network
namespaces standing for containers, sets them up with `pypod.network.setup`, looks at them
from inside (`nsenter --net=...`) and from the host, and checks that teardown leaves nothing.
"""

from __future__ import annotations

import ipaddress
import json
import multiprocessing
import os
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pypod.errors import InUse, InvalidArgument, PypodError
from pypod.linux import netns
from pypod.network import firewall, ipam
from pypod.network.types import PerNetworkOptions, PortMapping
from pypod.record import replace
from tests.network_support import (
    FETCH_IN_NETNS,
    Lab,
    fetch_tcp,
    fetch_udp,
    free_port,
    lab,
    links,
    our_rules,
    veths_on,
)

pytestmark = [pytest.mark.root]

BUSYBOX = shutil.which("busybox")


@pytest.fixture
def net_lab(tmp_path: Path) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, bridges, nftables)")
    if shutil.which("nft") is None:
        pytest.skip("nft (Debian package nftables) is not installed")
    if shutil.which("nsenter") is None or BUSYBOX is None:
        pytest.skip("nsenter (util-linux) and busybox are needed to look inside namespaces")
    with lab(tmp_path) as lb:
        yield lb


def ping(lb: Lab, netns: str, address: str) -> bool:
    assert BUSYBOX is not None
    return lb.run_in(netns, BUSYBOX, "ping", "-c", "1", "-W", "2", address).returncode == 0


def addresses(lb: Lab, netns: str, iface: str) -> list[str]:
    p = lb.run_in(netns, "ip", "-j", "addr", "show", "dev", iface)
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)[0]
    return [f"{a['local']}/{a['prefixlen']}" for a in data["addr_info"] if a["scope"] == "global"]


def link_info(lb: Lab, netns: str, iface: str) -> dict[str, object]:
    p = lb.run_in(netns, "ip", "-j", "link", "show", "dev", iface)
    assert p.returncode == 0, p.stderr
    return dict(json.loads(p.stdout)[0])


def routes(lb: Lab, netns: str) -> list[dict[str, str]]:
    p = lb.run_in(netns, "ip", "-j", "route")
    return list(json.loads(p.stdout))


def test_container_gets_address_route_and_reaches_gateway(net_lab: Lab) -> None:
    net = net_lab.network(mtu=1400)
    opts, results = net_lab.container(net, mac="02:42:ac:11:00:05")
    subnet = ipaddress.ip_network(net.subnets[0].subnet)
    res = results[net.name]
    assert res.interface == "eth0"
    assert res.mac_address == "02:42:ac:11:00:05"
    assert res.subnets[0].ipnet == f"{subnet.network_address + 2}/24"
    assert res.subnets[0].gateway == net.subnets[0].gateway
    assert addresses(net_lab, opts.netns, "eth0") == [res.subnets[0].ipnet]
    info = link_info(net_lab, opts.netns, "eth0")
    assert info["address"] == "02:42:ac:11:00:05"
    assert info["mtu"] == 1400
    assert "UP" in info["flags"]  # type: ignore[operator]
    assert "UP" in link_info(net_lab, opts.netns, "lo")["flags"]  # type: ignore[operator]
    default = [r for r in routes(net_lab, opts.netns) if r["dst"] == "default"]
    assert default == [{**default[0], "gateway": net.subnets[0].gateway, "dev": "eth0"}]
    # The host side: the bridge with the gateway address and MTU, one veth attached.
    bridge = [link for link in links() if link["ifname"] == net.network_interface]
    assert bridge and bridge[0]["mtu"] == 1400
    p = subprocess.run(
        ["ip", "-j", "addr", "show", "dev", net.network_interface], capture_output=True, text=True
    )
    assert f"{net.subnets[0].gateway}" in p.stdout
    assert len(veths_on(net.network_interface)) == 1
    assert veths_on(net.network_interface)[0].startswith("veth")
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        assert f.read().strip() == "1"
    assert ping(net_lab, opts.netns, net.subnets[0].gateway)


def test_two_containers_reach_each_other(net_lab: Lab) -> None:
    net = net_lab.network()
    a, ra = net_lab.container(net)
    b, rb = net_lab.container(net)
    ip_a = ra[net.name].subnets[0].ipnet.split("/")[0]
    ip_b = rb[net.name].subnets[0].ipnet.split("/")[0]
    assert ip_a != ip_b
    assert ping(net_lab, a.netns, ip_b)
    assert ping(net_lab, b.netns, ip_a)
    assert len(veths_on(net.network_interface)) == 2


def test_teardown_leaves_no_veth_rule_lease_or_bridge(net_lab: Lab) -> None:
    net = net_lab.network()
    port = free_port()
    a, _ = net_lab.container(
        net, ports=[PortMapping(host_ip="", host_port=port, container_port=80)]
    )
    b, _ = net_lab.container(net)
    assert our_rules([firewall.container_comment(a.container_id)])
    assert our_rules([firewall.network_comment(net)])
    net_lab.teardown(a)
    # a's rules and veth are gone, the network stays for b
    assert our_rules([firewall.container_comment(a.container_id)]) == []
    assert our_rules([firewall.network_comment(net)])
    assert len(veths_on(net.network_interface)) == 1
    assert list(ipam.read_leases(ipam.lease_path(net_lab.runroot, net))) == [b.container_id]
    net_lab.teardown(b)
    assert (
        our_rules([firewall.network_comment(net), firewall.container_comment(b.container_id)]) == []
    )
    assert not any(link["ifname"] == net.network_interface for link in links())
    assert not os.path.exists(ipam.lease_path(net_lab.runroot, net))
    p = net_lab.run_in(a.netns, "ip", "-j", "link")
    assert [link["ifname"] for link in json.loads(p.stdout)] == ["lo"]
    # idempotent: tearing down again, or after the namespace is gone, is fine
    net_lab.teardown(b)
    netns.remove(a.netns)
    net_lab.teardown(a)


def test_published_tcp_port_from_host_loopback_bridge_and_hairpin(net_lab: Lab) -> None:
    net = net_lab.network()
    port = free_port()
    a, ra = net_lab.container(
        net, ports=[PortMapping(host_ip="", host_port=port, container_port=80)]
    )
    b, _ = net_lab.container(net)
    net_lab.serve(a.netns, 80, "hello from a")
    assert fetch_tcp("127.0.0.1", port) == "hello from a"
    gateway = net.subnets[0].gateway
    assert fetch_tcp(gateway, port) == "hello from a"
    with open(f"/proc/sys/net/ipv4/conf/{net.network_interface}/route_localnet") as f:
        assert f.read().strip() == "1"
    # hairpin: another container, and the container itself, through the host's address
    for ns in (b.netns, a.netns):
        p = net_lab.run_in(ns, sys.executable, "-c", FETCH_IN_NETNS, gateway, str(port))
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip() == "hello from a"
    # container port 80 is not published under 80 on the host
    assert ra[net.name].subnets


def test_published_port_range_udp_and_host_ip(net_lab: Lab) -> None:
    net = net_lab.network()
    udp = free_port(kind=2)  # SOCK_DGRAM
    tcp1, tcp2 = free_port(), free_port()
    ports = [
        PortMapping(host_ip="", host_port=udp, container_port=5353, protocol="udp"),
        PortMapping(host_ip="127.0.0.1", host_port=tcp1, container_port=81),
        PortMapping(host_ip="", host_port=tcp2, container_port=tcp2, range=2),
    ]
    a, _ = net_lab.container(net, ports=ports)
    net_lab.serve(a.netns, 5353, "udp answer", udp=True)
    net_lab.serve(a.netns, 81, "only on loopback")
    net_lab.serve(a.netns, tcp2, "range first")
    net_lab.serve(a.netns, tcp2 + 1, "range second")
    assert fetch_udp("127.0.0.1", udp) == "udp answer"
    assert fetch_udp(net.subnets[0].gateway, udp) == "udp answer"
    assert fetch_tcp("127.0.0.1", tcp1) == "only on loopback"
    with pytest.raises(OSError):
        fetch_tcp(net.subnets[0].gateway, tcp1, timeout=1)
    assert fetch_tcp("127.0.0.1", tcp2) == "range first"
    assert fetch_tcp("127.0.0.1", tcp2 + 1) == "range second"
    net_lab.teardown(a)
    with pytest.raises(OSError):
        fetch_tcp("127.0.0.1", tcp1, timeout=1)
    assert our_rules([firewall.container_comment(a.container_id)]) == []


def test_internal_network_cannot_reach_outside(net_lab: Lab) -> None:
    internal = net_lab.network(internal=True)
    outer = net_lab.network()
    public = net_lab.network()
    outside, ro = net_lab.container(outer)
    outside_ip = ro[outer.name].subnets[0].ipnet.split("/")[0]
    inner, ri = net_lab.container(internal)
    other, _ = net_lab.container(public)
    # a container on a normal network is routed (and masqueraded) to the "outside" one
    assert ping(net_lab, other.netns, outside_ip)
    # the internal one has no default route and its packets are dropped when forwarded
    assert not [r for r in routes(net_lab, inner.netns) if r["dst"] == "default"]
    assert not ping(net_lab, inner.netns, outside_ip)
    p = net_lab.run_in(
        inner.netns, "ip", "route", "add", "default", "via", internal.subnets[0].gateway
    )
    assert p.returncode == 0, p.stderr
    assert not ping(net_lab, inner.netns, outside_ip)
    # ... but it still reaches its gateway and its own network
    assert ping(net_lab, inner.netns, internal.subnets[0].gateway)
    assert ri[internal.name].subnets


def test_two_networks_eth0_eth1_first_gives_default_route(net_lab: Lab) -> None:
    n1, n2 = net_lab.network(), net_lab.network()
    opts, results = net_lab.container(n1, n2)
    assert results[n1.name].interface == "eth0"
    assert results[n2.name].interface == "eth1"
    assert addresses(net_lab, opts.netns, "eth1") == [results[n2.name].subnets[0].ipnet]
    default = [r for r in routes(net_lab, opts.netns) if r["dst"] == "default"]
    assert len(default) == 1 and default[0]["dev"] == "eth0"
    assert ping(net_lab, opts.netns, n2.subnets[0].gateway)
    net_lab.teardown(opts)
    assert not any(
        link["ifname"] in (n1.network_interface, n2.network_interface) for link in links()
    )


def test_static_ip_and_conflict(net_lab: Lab) -> None:
    net = net_lab.network()
    subnet = ipaddress.ip_network(net.subnets[0].subnet)
    wanted = str(subnet.network_address + 77)
    a, ra = net_lab.container(net, static_ips=[wanted])
    assert ra[net.name].subnets[0].ipnet == f"{wanted}/24"
    assert addresses(net_lab, a.netns, "eth0") == [f"{wanted}/24"]
    b = net_lab.options(net, static_ips=[wanted])
    with pytest.raises(InUse, match=f"IP address {wanted} is already allocated"):
        net_lab.setup(b)
    # the failed setup left nothing: no interface in b, no lease, a still works
    p = net_lab.run_in(b.netns, "ip", "-j", "link")
    assert [link["ifname"] for link in json.loads(p.stdout)] == ["lo"]
    assert list(ipam.read_leases(ipam.lease_path(net_lab.runroot, net))) == [a.container_id]
    assert ping(net_lab, a.netns, net.subnets[0].gateway)


def test_failure_half_way_undoes_everything(net_lab: Lab) -> None:
    good = net_lab.network()
    bad = net_lab.network()
    netns = net_lab.netns()
    # eth1 already exists in the namespace: the second network cannot be attached
    p = net_lab.run_in(netns, "ip", "link", "add", "eth1", "type", "veth", "peer", "name", "xeth1")
    assert p.returncode == 0, p.stderr
    port = free_port()
    opts = net_lab.options(
        good, bad, netns=netns, ports=[PortMapping(host_ip="", host_port=port, container_port=80)]
    )
    with pytest.raises(PypodError, match="eth1 already exists"):
        net_lab.setup(opts)
    p = net_lab.run_in(netns, "ip", "-j", "link")
    assert sorted(link["ifname"] for link in json.loads(p.stdout)) == ["eth1", "lo", "xeth1"]
    for net in (good, bad):
        assert not os.path.exists(ipam.lease_path(net_lab.runroot, net))
        assert not any(link["ifname"] == net.network_interface for link in links())
        assert our_rules([firewall.network_comment(net)]) == []
    assert our_rules([firewall.container_comment(opts.container_id)]) == []


def test_reload_recreates_rules(net_lab: Lab) -> None:
    net = net_lab.network()
    port = free_port()
    a, ra = net_lab.container(
        net, ports=[PortMapping(host_ip="", host_port=port, container_port=80)]
    )
    net_lab.serve(a.netns, 80, "still here")
    assert fetch_tcp("127.0.0.1", port) == "still here"
    comments = [firewall.container_comment(a.container_id), firewall.network_comment(net)]
    before = sorted(our_rules(comments))
    # what `nft flush ruleset` does to this container's rules (without disturbing the host's)
    objects = firewall.list_table() or []
    firewall.run_nft(
        [
            {
                "delete": {
                    "rule": {
                        "family": "inet",
                        "table": "pypod",
                        "chain": o["rule"]["chain"],
                        "handle": o["rule"]["handle"],
                    }
                }
            }
            for o in objects
            if "rule" in o and str(o["rule"].get("comment", "")).startswith(tuple(comments))
        ]
    )
    assert our_rules(comments) == []
    with pytest.raises(OSError):
        fetch_tcp("127.0.0.1", port, timeout=1)
    from pypod.network import setup as netsetup

    netsetup.reload(net_lab.runroot, [(a, net_lab.networks, ra)])
    assert sorted(our_rules(comments)) == before
    assert fetch_tcp("127.0.0.1", port) == "still here"
    # reloading rules that are there does not duplicate them
    netsetup.reload(net_lab.runroot, [(a, net_lab.networks, ra)])
    assert sorted(our_rules(comments)) == before


def test_setup_twice_is_idempotent_for_leases(net_lab: Lab) -> None:
    net = net_lab.network()
    opts, results = net_lab.container(net)
    with ipam.locked(net_lab.runroot, net) as leases:
        again = leases.allocate(opts.container_id, opts.container_name, "eth0")
    assert again == results[net.name].subnets


def test_dns_names_served_on_the_gateway(net_lab: Lab) -> None:
    net = net_lab.network(dns=True)
    a, ra = net_lab.container(net)
    b, rb = net_lab.container(net)
    gateway = net.subnets[0].gateway
    assert ra[net.name].dns_server_ips == (gateway,)
    assert ra[net.name].dns_search_domains == ("dns.podman",)
    ip_b = rb[net.name].subnets[0].ipnet.split("/")[0]
    assert BUSYBOX is not None
    for name in (b.container_name, b.container_id[:12]):
        p = net_lab.run_in(a.netns, BUSYBOX, "nslookup", name, gateway)
        assert p.returncode == 0, p.stdout + p.stderr
        assert ip_b in p.stdout
    net_lab.teardown(b)
    p = net_lab.run_in(a.netns, BUSYBOX, "nslookup", b.container_name, gateway)
    assert ip_b not in p.stdout


def _setup_worker(lb: Lab, index: int, queue: multiprocessing.Queue[object]) -> None:
    try:
        opts = lb.containers[index]
        netns.create(opts.netns)
        results = lb.setup(opts)
        queue.put((index, [s.ipnet for r in results.values() for s in r.subnets]))
    except BaseException as e:
        queue.put((index, repr(e)))


def _teardown_worker(lb: Lab, index: int, queue: multiprocessing.Queue[object]) -> None:
    try:
        lb.teardown(lb.containers[index])
        queue.put((index, "ok"))
    except BaseException as e:
        queue.put((index, repr(e)))


def _in_parallel(lb: Lab, target: object, count: int) -> dict[int, object]:
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[object] = ctx.Queue()
    procs = [ctx.Process(target=target, args=(lb, i, queue)) for i in range(count)]  # type: ignore[arg-type]
    for p in procs:
        p.start()
    out = dict(queue.get(timeout=60) for _ in procs)  # type: ignore[misc]
    for p in procs:
        p.join(timeout=60)
    return out


def test_concurrent_setups_and_teardowns_on_one_network(net_lab: Lab) -> None:
    net = net_lab.network()
    count = 6
    for _ in range(count):
        opts = net_lab.options(net, netns=str(net_lab.tmp / f"pns-{len(net_lab.containers)}"))
        net_lab.namespaces.append(opts.netns)
    got = _in_parallel(net_lab, _setup_worker, count)
    ips = [ip for v in got.values() for ip in v]  # type: ignore[attr-defined]
    assert all(isinstance(v, list) for v in got.values()), got
    assert len(ips) == count and len(set(ips)) == count
    assert len(veths_on(net.network_interface)) == count
    assert len(our_rules([firewall.network_comment(net)])) == 5  # one set, not one per container
    done = _in_parallel(net_lab, _teardown_worker, count)
    assert set(done.values()) == {"ok"}, done
    assert not any(link["ifname"] == net.network_interface for link in links())
    assert our_rules([firewall.network_comment(net)]) == []
    assert not os.path.exists(ipam.lease_path(net_lab.runroot, net))


def test_dual_stack_addresses_routes_and_ping(net_lab: Lab) -> None:
    v6 = f"fd{secrets.token_hex(1)}:{secrets.token_hex(2)}:{secrets.token_hex(2)}::/64"
    net = net_lab.network(ipv6=v6)
    a, ra = net_lab.container(net)
    b, rb = net_lab.container(net)
    ipnets = [s.ipnet for s in ra[net.name].subnets]
    assert len(ipnets) == 2 and ipaddress.ip_interface(ipnets[1]).version == 6
    assert addresses(net_lab, a.netns, "eth0") == ipnets
    p = net_lab.run_in(a.netns, "ip", "-6", "-j", "route")
    default6 = [r for r in json.loads(p.stdout) if r["dst"] == "default"]
    assert default6 and default6[0]["gateway"] == net.subnets[1].gateway
    assert BUSYBOX is not None
    other6 = rb[net.name].subnets[1].ipnet.split("/")[0]
    p = net_lab.run_in(a.netns, BUSYBOX, "ping", "-6", "-c", "1", "-W", "2", other6)
    assert p.returncode == 0, p.stdout + p.stderr
    p = net_lab.run_in(a.netns, BUSYBOX, "ping", "-6", "-c", "1", "-W", "2", net.subnets[1].gateway)
    assert p.returncode == 0, p.stdout + p.stderr
    listing = subprocess.run(
        ["nft", "list", "table", "inet", "pypod"], capture_output=True, text=True
    ).stdout
    v6net = ipaddress.ip_network(v6)
    assert f"ip6 saddr {v6net} ip6 daddr != {v6net} ip6 daddr != ff00::/8 masquerade" in listing


def test_isolated_networks_do_not_reach_each_other(net_lab: Lab) -> None:
    iso1, iso2 = net_lab.network(isolate=True), net_lab.network(isolate=True)
    plain = net_lab.network()
    a, _ = net_lab.container(iso1)
    b, rb = net_lab.container(iso2)
    c, rc = net_lab.container(plain)
    ip_b = rb[iso2.name].subnets[0].ipnet.split("/")[0]
    ip_c = rc[plain.name].subnets[0].ipnet.split("/")[0]
    assert not ping(net_lab, a.netns, ip_b)
    ip_a = net_lab.run_in(a.netns, "ip", "-4", "-o", "addr", "show", "dev", "eth0").stdout
    assert not ping(net_lab, b.netns, ip_a.split()[3].split("/")[0])
    assert ping(net_lab, a.netns, ip_c)
    # only traffic between isolated networks is blocked (podman's isolate=true)
    assert ping(net_lab, c.netns, ip_b)
    net_lab.teardown(a)
    listing = subprocess.run(
        ["nft", "-j", "list", "set", "inet", "pypod", "isolated"], capture_output=True, text=True
    ).stdout
    assert iso1.network_interface not in listing
    assert iso2.network_interface in listing


def test_bad_mac_and_empty_request(net_lab: Lab) -> None:
    net = net_lab.network()
    for mac, message in (
        ("02:42:zz:00:00:01", "invalid MAC address"),
        ("03:00:00:00:00:01", "multicast"),
    ):
        opts = net_lab.options(net, mac=mac)
        with pytest.raises(InvalidArgument, match=message):
            net_lab.setup(opts)
        assert not os.path.exists(ipam.lease_path(net_lab.runroot, net))
    opts = net_lab.options()
    assert net_lab.setup(opts) == {}
    assert not any(link["ifname"] == net.network_interface for link in links())


def test_host_ip_any_address_publishes_on_every_ipv4_address(net_lab: Lab) -> None:
    net = net_lab.network()
    port = free_port()
    a, _ = net_lab.container(
        net, ports=[PortMapping(host_ip="0.0.0.0", host_port=port, container_port=8080)]
    )
    net_lab.serve(a.netns, 8080, "any")
    assert fetch_tcp("127.0.0.1", port) == "any"
    assert fetch_tcp(net.subnets[0].gateway, port) == "any"


def test_connect_and_disconnect_keep_published_ports(net_lab: Lab) -> None:
    first, second = net_lab.network(), net_lab.network()
    port = free_port()
    a = net_lab.options(first, ports=[PortMapping(host_ip="", host_port=port, container_port=80)])
    net_lab.setup(a)
    net_lab.serve(a.netns, 80, "connected")
    # `network connect`: the same namespace joins a second network as eth1, without ports
    joined = replace(
        a, networks={second.name: PerNetworkOptions(interface_name="eth1")}, port_mappings=()
    )
    results = net_lab.setup(joined)
    assert results[second.name].interface == "eth1"
    default = [r for r in routes(net_lab, a.netns) if r["dst"] == "default"]
    assert len(default) == 1 and default[0]["dev"] == "eth0"
    assert ping(net_lab, a.netns, second.subnets[0].gateway)
    assert fetch_tcp("127.0.0.1", port) == "connected"
    # `network disconnect`: the second network goes (and, being empty, its bridge and rules)
    net_lab.teardown(joined)
    assert fetch_tcp("127.0.0.1", port) == "connected"
    assert our_rules([firewall.network_comment(second)]) == []
    assert our_rules([firewall.container_comment(a.container_id, first)])
    assert not any(link["ifname"] == second.network_interface for link in links())
    p = net_lab.run_in(a.netns, "ip", "-j", "link")
    assert sorted(link["ifname"] for link in json.loads(p.stdout)) == ["eth0", "lo"]


def test_republished_udp_port_reaches_the_new_container(net_lab: Lab) -> None:
    net = net_lab.network()
    port = free_port(kind=socket.SOCK_DGRAM)
    mapping = [PortMapping(host_ip="", host_port=port, container_port=53, protocol="udp")]
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))  # the same source port throughout: one conntrack entry
    client.settimeout(1)

    def ask() -> str:
        for _ in range(3):
            client.sendto(b"ping", ("127.0.0.1", port))
            try:
                return client.recv(100).decode()
            except TimeoutError:
                continue
        return "no answer"

    with client:
        a, _ = net_lab.container(net, ports=mapping)
        net_lab.serve(a.netns, 53, "first", udp=True)
        assert ask() == "first"
        b, _ = net_lab.container(net)  # keeps the network (and its bridge) alive
        net_lab.teardown(a)
        other_ip = str(ipaddress.ip_network(net.subnets[0].subnet).network_address + 50)
        c, _ = net_lab.container(net, ports=mapping, static_ips=[other_ip])
        net_lab.serve(c.netns, 53, "second", udp=True)
        assert ask() == "second"
        assert b.netns
