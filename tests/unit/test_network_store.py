"""Network configurations (pypod.network.store): podman 4.3's validation, subnets, names, files."""

from __future__ import annotations

import ipaddress
import json
import multiprocessing
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pypod.errors import AlreadyExists, InvalidArgument, NotFound, NotSupported
from pypod.network import store as store_mod
from pypod.network.store import (
    DEFAULT_NETWORK,
    Networks,
    from_json,
    host_subnets,
    parse_range,
    rfc3339_nano,
    to_json,
)


@pytest.fixture
def nets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Networks:
    """A store; the host's own subnets and interfaces (other tests' bridges come and go) are
    left out, except where a test puts some in the way, and 127.0.0.0/8 and lo."""
    monkeypatch.setattr(store_mod, "host_subnets", lambda: [ipaddress.ip_network("127.0.0.0/8")])
    monkeypatch.setattr(store_mod, "_live_interfaces", lambda: ["lo"])
    return Networks(str(tmp_path / "root"), str(tmp_path / "run"))


def _subnets(net: object) -> list[tuple[str, str]]:
    return [(s.subnet, s.gateway) for s in net.subnets]  # type: ignore[attr-defined]


def test_default_network_is_built_in_and_never_written(nets: Networks) -> None:
    default = nets.get(DEFAULT_NETWORK)
    assert default.name == "pypod"
    assert default.network_interface == "pypod0"
    assert _subnets(default) == [("10.88.0.0/16", "10.88.0.1")]
    assert default.dns_enabled is False
    # podman's default network ID: the sha256 of its name
    assert default.id == "a9959b637c556a6cef36153efe1f7a7b9b07748f9b2140c390cda7734ce73ba9"
    assert [n.name for n in nets.list()] == ["pypod"]
    assert not os.path.exists(os.path.join(nets.config_dir, "pypod.json"))
    with pytest.raises(InvalidArgument, match="default network pypod cannot be removed"):
        nets.remove("pypod")


def test_create_defaults_like_podman(nets: Networks) -> None:
    net = nets.create("web")
    assert re.fullmatch(r"[0-9a-f]{64}", net.id)
    assert net.driver == "bridge"
    assert net.network_interface == "pypod1"
    assert _subnets(net) == [("10.89.0.0/24", "10.89.0.1")]
    assert net.dns_enabled is True and net.internal is False and net.ipv6_enabled is False
    assert net.ipam_options == {"driver": "host-local"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)", net.created)
    data = json.loads(Path(nets.config_dir, "web.json").read_text())
    assert data == to_json(net)
    # omitempty, as podman's JSON: no labels/options keys when there are none
    assert list(data) == ["name", "id", "driver", "network_interface", "created", "subnets",
                          "ipv6_enabled", "internal", "dns_enabled", "ipam_options"]  # fmt: skip
    assert from_json(data) == net
    assert nets.get("web") == net and nets.get(net.id[:12]) == net and nets.exists("web")


def test_next_networks_take_next_subnet_and_bridge(nets: Networks) -> None:
    a = nets.create("aa")
    b = nets.create(None)
    assert b.name == "pypod2" and b.network_interface == "pypod2"
    assert _subnets(b) == [("10.89.1.0/24", "10.89.1.1")]
    nets.remove("aa")
    c = nets.create("cc")  # the freed subnet and bridge name are used again
    assert _subnets(c) == _subnets(a) and c.network_interface == "pypod1"
    assert [n.name for n in nets.list()] == ["pypod", "cc", "pypod2"]


def test_auto_subnet_skips_host_subnets(nets: Networks, monkeypatch: pytest.MonkeyPatch) -> None:
    # the host's own addresses and routes come from the kernel; here two are put in the way
    taken = [ipaddress.ip_network("10.89.0.0/16"), ipaddress.ip_network("10.90.0.0/24")]
    monkeypatch.setattr(store_mod, "host_subnets", lambda: taken)
    assert _subnets(nets.create("x")) == [("10.90.1.0/24", "10.90.1.1")]
    with pytest.raises(InvalidArgument, match=r"^subnet 10\.89\.7\.0/24 is already used on "
                       r"the host or by another config$"):  # fmt: skip
        nets.create("y", subnets=["10.89.7.0/24"])


def test_host_subnets_read_from_the_kernel() -> None:
    found = host_subnets()
    assert ipaddress.ip_network("127.0.0.0/8") in found  # lo's address, from SIOCGIFCONF


def test_subnet_used_by_host_or_config_is_refused(nets: Networks) -> None:
    with pytest.raises(InvalidArgument, match="subnet 127.0.0.0/8 is already used"):
        nets.create("lo", subnets=["127.0.0.0/8"])
    with pytest.raises(InvalidArgument, match=r"subnet 10\.88\.5\.0/24 is already used"):
        nets.create("d", subnets=["10.88.5.0/24"])  # inside the default network's
    nets.create("a", subnets=["10.99.0.0/24"])
    with pytest.raises(InvalidArgument, match=r"subnet 10\.99\.0\.128/25 is already used"):
        nets.create("b", subnets=["10.99.0.130/25"])


def test_ipv4_routes_parse(tmp_path: Path) -> None:
    route = tmp_path / "route"
    route.write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "br0\t0000580A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
        "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
    )
    assert store_mod._ipv4_routes(str(route)) == [
        ipaddress.ip_network("10.88.0.0/16"), ipaddress.ip_network("192.0.2.0/24")]  # fmt: skip


def test_full_create_options(nets: Networks) -> None:
    net = nets.create(
        "full", subnets=["10.99.0.7/24"], gateways=["10.99.0.5"], ip_ranges=["10.99.0.128/25"],
        internal=True, labels={"a": "b", "c": ""}, options={"mtu": "1400", "isolate": "1"},
        dns=False, interface_name="br-full",
    )  # fmt: skip
    assert net.network_interface == "br-full"
    [s] = net.subnets
    assert (s.subnet, s.gateway) == ("10.99.0.0/24", "10.99.0.5")
    assert s.lease_range is not None
    assert (s.lease_range.start_ip, s.lease_range.end_ip) == ("10.99.0.129", "10.99.0.255")
    assert net.internal and not net.dns_enabled
    assert net.labels == {"a": "b", "c": ""}
    assert net.options == {"isolate": "true", "mtu": "1400"}  # podman writes "true"
    with pytest.raises(AlreadyExists, match="bridge name br-full already in use"):
        nets.create("other", interface_name="br-full")


def test_internal_without_dns_has_no_gateway(nets: Networks) -> None:
    net = nets.create("iso", internal=True, dns=False)
    assert [s.gateway for s in net.subnets] == [""]
    assert "gateway" not in to_json(net)["subnets"][0]
    assert nets.create("iso2", internal=True).subnets[0].gateway == "10.89.1.1"


def test_ipv6_dual_stack(nets: Networks) -> None:
    net = nets.create("v6", ipv6=True)
    v4, v6 = (ipaddress.ip_network(s.subnet) for s in net.subnets)
    assert str(v4) == "10.89.0.0/24"
    assert v6.prefixlen == 64 and v6.subnet_of(ipaddress.ip_network("fd00::/8"))
    assert net.subnets[1].gateway == str(v6.network_address + 1)
    assert net.ipv6_enabled
    only6 = nets.create("only6", subnets=["fd00:aa::/64"])
    assert _subnets(only6) == [("fd00:aa::/64", "fd00:aa::1")] and only6.ipv6_enabled
    both = nets.create("both", ipv6=True, subnets=["fd00:bb::/64"])
    assert _subnets(both) == [("fd00:bb::/64", "fd00:bb::1"), ("10.89.1.0/24", "10.89.1.1")]
    several = nets.create("several", subnets=["10.90.0.0/24", "10.90.1.0/24"],
                          gateways=["10.90.0.9"])  # fmt: skip
    assert _subnets(several) == [("10.90.0.0/24", "10.90.0.9"), ("10.90.1.0/24", "10.90.1.1")]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"name": "bad/name"}, InvalidArgument,
         "network name bad/name invalid: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*: "
         "invalid argument"),
        ({"name": "_x"}, InvalidArgument, "network name _x invalid"),
        ({"driver": "macvlan"}, NotSupported, "'macvlan' is not supported yet"),
        ({"driver": "ipvlan"}, NotSupported, "'ipvlan' is not supported yet"),
        ({"driver": "foo"}, InvalidArgument, "unsupported driver foo: invalid argument"),
        ({"options": {"mtu": "abc"}}, InvalidArgument,
         'strconv.Atoi: parsing "abc": invalid syntax'),
        ({"options": {"mtu": "-5"}}, InvalidArgument, "mtu -5 is less than zero"),
        ({"options": {"isolate": "maybe"}}, InvalidArgument,
         'strconv.ParseBool: parsing "maybe": invalid syntax'),
        ({"options": {"foo": "bar"}}, InvalidArgument, "unsupported bridge network option foo"),
        ({"gateways": ["10.0.0.1"]}, InvalidArgument,
         "cannot set gateway or range without subnet"),
        ({"subnets": ["10.97.0.0/24"], "gateways": ["10.97.0.1", "10.97.0.2"]},
         InvalidArgument, "cannot set more gateways than subnets"),
        ({"subnets": ["10.97.0.0/24"], "ip_ranges": ["10.97.0.0/25", "10.97.0.0/26"]},
         InvalidArgument, "cannot set more ranges than subnets"),
        ({"subnets": ["bogus"]}, InvalidArgument, "invalid CIDR address: bogus"),
        ({"subnets": ["10.96.0.0/24"], "gateways": ["bogus"]}, InvalidArgument,
         'invalid argument "bogus" for "--gateway" flag: invalid string being converted to '
         "IP address: bogus"),
        ({"subnets": ["10.99.1.0/24"], "gateways": ["10.98.0.1"]}, InvalidArgument,
         "gateway 10.98.0.1 not in subnet 10.99.1.0/24"),
        ({"subnets": ["10.95.0.0/24"], "ip_ranges": ["10.94.0.0/26"]}, InvalidArgument,
         "lease range start ip 10.94.0.1 not in subnet 10.95.0.0/24"),
        ({"subnets": ["10.95.0.0/24"], "ip_ranges": ["10.95.0.10-10.95.1.5"]}, InvalidArgument,
         "lease range end ip 10.95.1.5 not in subnet 10.95.0.0/24"),
        ({"subnets": ["10.92.0.0/24"], "ip_ranges": ["bogus"]}, InvalidArgument,
         "invalid CIDR address: bogus"),
        ({"interface_name": "bad/br"}, InvalidArgument, "bridge name bad/br invalid"),
        ({"interface_name": "a" * 16}, InvalidArgument, "at most 15 characters"),
    ],
)  # fmt: skip
def test_create_errors(
    nets: Networks, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    name = kwargs.pop("name", "n1")
    with pytest.raises(error) as info:
        nets.create(name, **kwargs)  # type: ignore[arg-type]
    assert message in str(info.value)
    assert [n.name for n in nets.list()] == ["pypod"]


def test_existing_name(nets: Networks) -> None:
    first = nets.create("dup")
    with pytest.raises(
        AlreadyExists, match="^network name dup already used: network already exists$"
    ):
        nets.create("dup")
    assert nets.create("dup", ignore_existing=True) == first


def test_ip_range_forms() -> None:
    assert [str(x) for x in parse_range("10.1.0.0/30")] == ["10.1.0.1", "10.1.0.3"]
    assert [str(x) for x in parse_range("10.1.0.10-10.1.0.20")] == ["10.1.0.10", "10.1.0.20"]
    with pytest.raises(InvalidArgument, match='range start ip "x" is not a ip address'):
        parse_range("x-10.1.0.2")
    with pytest.raises(InvalidArgument, match="the end comes before the start"):
        parse_range("10.1.0.9-10.1.0.2")


def test_lookup_by_id_prefix_and_not_found(nets: Networks) -> None:
    net = nets.create("q")
    assert nets.get(net.id[:5]).name == "q"
    with pytest.raises(
        NotFound, match="^unable to find network with name or ID zz: network not found$"
    ):
        nets.get("zz")
    with pytest.raises(NotFound):
        nets.remove("zz")
    assert nets.remove(net.id).name == "q"
    assert not nets.exists("q")


def test_broken_and_temporary_files_are_ignored(nets: Networks) -> None:
    nets.create("good")
    Path(nets.config_dir, "broken.json").write_text("{not json")
    Path(nets.config_dir, ".tmp-1-2-half.json").write_text("{}")
    Path(nets.config_dir, "renamed.json").write_text(Path(nets.config_dir, "good.json").read_text())
    assert [n.name for n in nets.list()] == ["pypod", "good"]


def test_rfc3339_nano(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    try:
        monkeypatch.setenv("TZ", "UTC")
        time.tzset()
        assert rfc3339_nano(1_764_118_198_978_207_300) == "2025-11-26T00:49:58.9782073Z"
        assert rfc3339_nano(1_764_118_198_000_000_000) == "2025-11-26T00:49:58Z"
        monkeypatch.setenv("TZ", "CET-1")
        time.tzset()
        assert rfc3339_nano(1_764_118_198_000_000_001) == "2025-11-26T01:49:58.000000001+01:00"
    finally:
        monkeypatch.undo()
        time.tzset()


def _create_many(root: str, count: int, out: multiprocessing.Queue[str]) -> None:
    nets = Networks(root, root + "/run")
    for _ in range(count):
        net = nets.create(None)
        out.put(f"{net.name} {net.network_interface} {net.subnets[0].subnet}")


def test_concurrent_creates_never_share_names_or_subnets(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[str] = ctx.Queue()
    procs = [ctx.Process(target=_create_many, args=(str(tmp_path), 5, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in range(20)]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    names, bridges, subnets = zip(*(r.split() for r in results), strict=True)
    assert len(set(names)) == len(set(bridges)) == len(set(subnets)) == 20
    assert len(Networks(str(tmp_path), "").list()) == 21


@given(
    net=st.ip_addresses(v=4).map(int),
    prefix=st.integers(16, 30),
    offset=st.integers(-5, 300),
    internal=st.booleans(),
    dns=st.booleans(),
)
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_subnet_and_gateway_validation(
    nets: Networks, net: int, prefix: int, offset: int, internal: bool, dns: bool
) -> None:
    """Any subnet with a gateway at any offset: stored exactly when the gateway is inside (as
    the network address podman keeps), and what is stored reads back the same."""
    subnet = ipaddress.ip_network((net, prefix), strict=False)
    if subnet.overlaps(ipaddress.ip_network("127.0.0.0/8")) or subnet.overlaps(
        ipaddress.ip_network("10.88.0.0/16")
    ):
        return
    gw = ipaddress.ip_address(max(0, min(int(subnet.network_address) + offset, 2**32 - 1)))
    name = f"n{net}-{prefix}-{offset}"
    try:
        created = nets.create(name, subnets=[f"{subnet.network_address + 3}/{prefix}"],
                              gateways=[str(gw)], internal=internal, dns=dns)  # fmt: skip
    except InvalidArgument as e:
        assert gw not in subnet
        assert str(e) == f"gateway {gw} not in subnet {subnet}"
        return
    try:
        assert gw in subnet
        assert _subnets(created) == [(str(subnet), str(gw))]
        assert nets.get(name) == created
    finally:
        nets.remove(name)


def test_bridge_names_in_use_on_the_host_are_skipped(
    nets: Networks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As netavark: a bridge name a host interface has is not given to a new network."""
    monkeypatch.setattr(store_mod, "_live_interfaces", lambda: ["lo", "pypod1", "pypod2"])
    assert nets.create("web").network_interface == "pypod3"


def test_the_default_networks_id_is_the_sha256_of_its_name() -> None:
    import hashlib

    from pypod.network.store import DEFAULT_NETWORK_ID, default_network
    from pypod.network.types import DEFAULT_NETWORK

    assert hashlib.sha256(DEFAULT_NETWORK.encode()).hexdigest() == DEFAULT_NETWORK_ID
    assert default_network().id == DEFAULT_NETWORK_ID
