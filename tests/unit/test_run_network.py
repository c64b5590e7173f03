"""The network flags of run/create, read as podman 4.3 reads them (messages checked against it)."""

from __future__ import annotations

import pytest

from pypod.cli.engine.run_flags import parse_run
from pypod.engine.config import ContainerConfig
from pypod.engine.etcfiles import NetworkFiles, hosts_text, resolv_conf_text
from pypod.errors import InvalidArgument


def run(*args: str) -> ContainerConfig:
    return parse_run(list(args))[0]


def error(*args: str) -> str:
    with pytest.raises(InvalidArgument) as info:
        parse_run(list(args))
    return str(info.value)


def test_modes_and_names() -> None:
    assert run("busybox").network == ""  # the engine picks the default (bridge as root)
    for mode in ("none", "host", "ns:/run/netns/x", "container:db", "private"):
        assert run("--network", mode, "busybox").network == mode
    cfg = run("--net", "pasta:-T,8080", "busybox")
    assert (cfg.network, cfg.network_options) == ("pasta", ("-T", "8080"))
    cfg = run("--network", "bridge:ip=10.88.0.10,mac=44:33:22:11:00:99", "busybox")
    assert cfg.networks == {
        "pypod": {"static_ips": ["10.88.0.10"], "aliases": [], "static_mac": "44:33:22:11:00:99"}
    }


def test_per_network_flags() -> None:
    cfg = run("--network", "n1", "--ip", "10.89.0.5", "--mac-address", "92:D0:C6:0A:29:33",
              "--network-alias", "a,b", "busybox")  # fmt: skip
    assert cfg.networks["n1"] == {
        "static_ips": ["10.89.0.5"], "aliases": ["a", "b"], "static_mac": "92:d0:c6:0a:29:33"
    }  # fmt: skip
    # without --network: the options are the default network's
    assert run("--ip", "10.88.0.9", "busybox").networks["pypod"]["static_ips"] == ["10.88.0.9"]


def test_podmans_errors() -> None:
    assert error("--network", "n1", "--network", "n2", "--ip", "10.89.0.50", "busybox") == (
        "--ip can only be set for a single network: invalid argument"
    )
    assert error("--network", "host", "--ip", "10.89.0.50", "busybox") == (
        "--ip can only be set when the network mode is bridge: invalid argument"
    )
    assert error("--network", "n1", "--network", "host", "busybox") == (
        "can only set extra network names, selected mode host conflicts with bridge: "
        "invalid argument"
    )
    assert error("--network", "n1:foo=bar", "busybox") == (
        "invalid option for network n1: unknown bridge network option: foo"
    )
    assert error("--add-host", "foo", "busybox") == 'bad format for add-host: "foo"'
    assert error("--add-host", "foo:bar", "busybox") == 'invalid IP address in add-host: "bar"'
    assert error("--dns", "1.2.3", "busybox") == "1.2.3 is not an ip address"
    assert error("--mac-address", "zz", "busybox") == "address zz: invalid MAC address"
    assert error("--expose", "80-70", "busybox") == 'invalid port range "80-70"'


def test_dns_hosts_expose() -> None:
    cfg = run("--dns", "9.9.9.9,1.1.1.1", "--dns-search", "ex.com", "--dns-option", "ndots:2",
              "--add-host", "foo:1.2.3.4,v6:::1", "--no-hosts", "--expose", "80,90-91/udp",
              "-P", "busybox")  # fmt: skip
    assert cfg.dns_servers == ("9.9.9.9", "1.1.1.1")
    assert (cfg.dns_search, cfg.dns_options) == (("ex.com",), ("ndots:2",))
    assert cfg.add_hosts == (("foo", "1.2.3.4"), ("v6", "::1"))
    assert cfg.no_hosts and cfg.publish_all
    assert cfg.expose == ("80/tcp", "90/udp", "91/udp")


def test_published_ports_dropped_without_a_network(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--network", "none", "-p", "80", "busybox").ports == ()
    assert "Port mappings have been discarded" in capsys.readouterr().err


HOST_RESOLV = "# generated\nsearch corp.example\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n"


def test_resolv_conf_like_podman() -> None:
    # a DNS-enabled network: its server and dns.podman first; loopback resolvers dropped
    net = NetworkFiles(mode="bridge", nameservers=("10.89.0.1",), search=("dns.podman",))
    assert resolv_conf_text(HOST_RESOLV, net) == (
        "search dns.podman corp.example\nnameserver 10.89.0.1\nnameserver 10.0.0.2\n"
    )
    # --dns/--dns-search replace, --dns-option adds
    net = NetworkFiles(mode="bridge", nameservers=("9.9.9.9",), replace_servers=True,
                       search=("ex.com",), replace_search=True, options=("ndots:2",))  # fmt: skip
    assert resolv_conf_text(HOST_RESOLV, net) == (
        "search ex.com\nnameserver 9.9.9.9\noptions ndots:2\n"
    )
    # only loopback resolvers on the host: containers/common's public defaults
    only_local = "nameserver 127.0.0.53\n"
    assert resolv_conf_text(only_local, NetworkFiles(mode="bridge")) == (
        "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    )


def test_hosts_with_a_network_address() -> None:
    text = hosts_text("127.0.0.1 localhost\n", [("0868b834f3bd", "web1")], "10.89.0.1",
                      ip="10.89.0.2", extra=(("foo", "1.2.3.4"),))  # fmt: skip
    assert text == (
        "1.2.3.4\tfoo\n127.0.0.1\tlocalhost\n"
        "10.89.0.1\thost.containers.internal\n10.89.0.2\t0868b834f3bd web1\n"
    )
