"""Published ports (pypod.network.ports): podman's `-p` grammar and errors, `-P`, merging."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pypod.errors import InvalidArgument, NotSupported, PypodError
from pypod.network.ports import (
    assign_random_ports,
    expose_all,
    free_port,
    parse_publish,
)
from pypod.network.types import PortMapping


def pm(host_port: int, ctr: int, proto: str = "tcp", rng: int = 1, ip: str = "") -> PortMapping:
    return PortMapping(host_ip=ip, host_port=host_port, container_port=ctr, protocol=proto,
                       range=rng)  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("80", (pm(0, 80),)),
        ("8080:80", (pm(8080, 80),)),
        ("8080:80/udp", (pm(8080, 80, "udp"),)),
        ("8080:80/UDP", (pm(8080, 80, "udp"),)),
        ("8080:80/tcp,udp", (pm(8080, 80), pm(8080, 80, "udp"))),
        (":80", (pm(0, 80),)),
        ("127.0.0.1:8080:80", (pm(8080, 80, ip="127.0.0.1"),)),
        ("127.0.0.1::80", (pm(0, 80, ip="127.0.0.1"),)),
        ("0.0.0.0:8080:80", (pm(8080, 80),)),  # 0.0.0.0 is every address: left empty
        ("[::1]:8080:80", (pm(8080, 80, ip="::1"),)),
        ("[0:0::1]:8080:80", (pm(8080, 80, ip="::1"),)),
        ("8000-8010:80-90", (pm(8000, 80, rng=11),)),
        ("80-90", (pm(0, 80, rng=11),)),
        ("+80", (pm(0, 80),)),  # Go's Atoi takes a sign
    ],
)  # fmt: skip
def test_parse_publish(spec: str, expected: tuple[PortMapping, ...]) -> None:
    assert parse_publish(spec) == expected


#: podman 4.3's messages (checked with `podman create -p SPEC`)
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("8080:80/tcp/udp", "invalid port format - protocol can only be specified once"),
        ("[::1]8080:80", "invalid port format - IPv6 address must be followed by a colon (':')"),
        ("::1]:8080:80", "invalid port format - IPv6 addresses must be enclosed by []"),
        ("[::1]:80",
         "invalid port format - must provide host and destination port if specifying an IP"),
        ("[::1]:1:8080:80",
         "invalid port format - when v6 address specified, must be [ipv6]:hostPort:ctrPort"),
        ("[a]:1]:2", "invalid port format - at most one IPv6 address can be specified in a "
                     "--publish"),
        ("1:2:3:4", "invalid port format - format is [[hostIP:]hostPort:]containerPort"),
        ("1:2:3", 'cannot parse "1" as an IP address'),
        ("bogus:8080:80", 'cannot parse "bogus" as an IP address'),
        ("abc", 'parsing container port: invalid port number: strconv.Atoi: parsing "abc": '
                "invalid syntax"),
        ("0", "parsing container port: port numbers must be between 1 and 65535 (inclusive), "
              "got 0"),
        ("65536", "parsing container port: port numbers must be between 1 and 65535 "
                  "(inclusive), got 65536"),
        ("-5", "parsing container port: port numbers cannot be negative"),
        ("8080-8090:80-85", "host and container port ranges have different lengths: 11 vs 6"),
        ("8080-8070:80", "parsing host port: the end port of a range must be higher than the "
                         "start port - 8070 is not higher than 8080"),
        ("8080:80/xyz", 'unrecognized protocol "xyz" in port mapping'),
        ("8080:80/", "must provide a non-empty protocol to publish"),
        ("8080:", "must provide a non-empty container port to publish"),
        (":8080:80", "must provide a non-empty container host IP to publish"),
        ("80-", "parsing container port: must provide ending number for port range"),
        ("1-2-3", "parsing container port: invalid port format - port ranges are formatted as "
                  "startPort-stopPort"),
        ("65530-65535:1-6", ""),  # fine: both ends inside 1..65535
        ("65535:65530-65535", "host and container port ranges have different lengths: 1 vs 6"),
        ("65530-65535", ""),
    ],
)  # fmt: skip
def test_parse_publish_errors(spec: str, message: str) -> None:
    if not message:
        parse_publish(spec)
        return
    with pytest.raises(InvalidArgument) as info:
        parse_publish(spec)
    assert str(info.value) == message


def test_sctp_is_not_supported() -> None:
    with pytest.raises(NotSupported, match="'sctp' is not supported yet"):
        parse_publish("8080:80/sctp")


_ips = st.sampled_from(["", "127.0.0.1", "10.1.2.3", "::1", "fd00::5"])
_protos = st.sampled_from(["", "tcp", "udp", "tcp,udp", "TCP"])


@given(ip=_ips, host=st.integers(0, 65535), ctr=st.integers(1, 65535),
       length=st.integers(1, 50), proto=_protos)  # fmt: skip
@settings(max_examples=300, deadline=None)
def test_parse_publish_round_trip(ip: str, host: int, ctr: int, length: int, proto: str) -> None:
    """A spec built from parts parses back to those parts (or fails with podman's words)."""

    def ports(start: int) -> str:
        return str(start) if length == 1 else f"{start}-{start + length - 1}"

    spec = ports(ctr)
    if host or ip:
        spec = f"{ports(host) if host else ''}:{spec}"
    if ip:
        spec = f"[{ip}]:{spec}" if ":" in ip else f"{ip}:{spec}"
    if proto:
        spec += "/" + proto
    too_far = ctr + length - 1 > 65535 or (host and host + length - 1 > 65535)
    if too_far:
        with pytest.raises(InvalidArgument):
            parse_publish(spec)
        return
    got = parse_publish(spec)
    protos = {"": ["tcp"], "tcp": ["tcp"], "TCP": ["tcp"], "udp": ["udp"],
              "tcp,udp": ["tcp", "udp"]}[proto]  # fmt: skip
    assert got == tuple(pm(host, ctr, p, length, ip) for p in protos)


@given(st.text(alphabet="0123456789:-/[].,abcdptu ", max_size=30))
@settings(max_examples=500, deadline=None)
def test_parse_publish_never_crashes(spec: str) -> None:
    """Any text either parses to valid mappings or fails with a pypod error (exit 125)."""
    try:
        got = parse_publish(spec)
    except PypodError:
        return
    for m in got:
        assert m.container_port >= 1 and m.container_port + m.range - 1 <= 65535
        assert m.host_port >= 0 and m.host_port + m.range - 1 <= 65535
        assert m.protocol in ("tcp", "udp")


def test_expose_all() -> None:
    assert expose_all(["80/tcp", "53/udp", "8080", "80/tcp"]) == (
        pm(0, 80), pm(0, 53, "udp"), pm(0, 8080))  # fmt: skip
    assert expose_all(["7000-7001/tcp"]) == (pm(0, 7000), pm(0, 7001))
    with pytest.raises(InvalidArgument, match="unable to convert image EXPOSE"):
        expose_all(["x/tcp"])


def test_merge_joins_ranges_and_drops_duplicates() -> None:
    got = assign_random_ports([pm(8080, 80), pm(8081, 81), pm(8080, 80), pm(9000, 100, "udp"),
                               pm(8080, 80, "udp")])  # fmt: skip
    assert got == (pm(8080, 80, rng=2), pm(8080, 80, "udp"), pm(9000, 100, "udp"))
    # a range and a single port inside it mapped the same way: one range
    assert assign_random_ports([pm(8000, 80, rng=3), pm(8001, 81)]) == (pm(8000, 80, rng=3),)
    # different host addresses do not conflict
    assert len(assign_random_ports([pm(8080, 80, ip="127.0.0.1"), pm(8080, 81)])) == 2


@pytest.mark.parametrize(
    "ports",
    [
        [pm(8080, 80, rng=3), pm(8081, 90)],
        [pm(8080, 80), pm(8080, 81)],  # podman 4.3 lets this through; it cannot work
    ],
)
def test_merge_rejects_one_host_port_for_two_container_ports(ports: list[PortMapping]) -> None:
    with pytest.raises(InvalidArgument, match=r"conflicting port mappings for host port 808\d "
                       r"\(protocol tcp\)"):  # fmt: skip
        assign_random_ports(ports)


def test_random_host_ports_are_free_and_distinct() -> None:
    got = assign_random_ports([pm(0, 80), pm(0, 81), pm(0, 53, "udp"), pm(0, 90, rng=5),
                               pm(8080, 70)])  # fmt: skip
    assert [(m.container_port, m.protocol, m.range) for m in got] == [
        (70, "tcp", 1), (80, "tcp", 1), (81, "tcp", 1), (90, "tcp", 5), (53, "udp", 1)]  # fmt: skip
    tcp = [h for m in got if m.protocol == "tcp" for h in range(m.host_port, m.host_port + m.range)]
    assert len(tcp) == len(set(tcp)) == 8
    for m in got:
        if m.container_port == 70:
            continue
        kind = socket.SOCK_DGRAM if m.protocol == "udp" else socket.SOCK_STREAM
        for port in range(m.host_port, m.host_port + m.range):
            with socket.socket(socket.AF_INET, kind) as s:
                s.bind(("", port))  # free indeed


def test_random_port_avoids_a_bound_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        for _ in range(20):
            assert free_port("tcp", "127.0.0.1") != busy


def test_exposed_ports_only_where_not_published() -> None:
    exposed = expose_all(["80/tcp", "443/tcp", "53/udp"])
    got = assign_random_ports([pm(8080, 80)], exposed)
    assert got[0] == pm(8080, 80)
    assert sorted((m.container_port, m.protocol) for m in got[1:]) == [(53, "udp"), (443, "tcp")]
    assert all(m.host_port > 0 for m in got)


def test_merge_validates() -> None:
    with pytest.raises(InvalidArgument, match="container port number must be non-0"):
        assign_random_ports([pm(1, 0)])
    with pytest.raises(InvalidArgument, match="container port range exceeds maximum"):
        assign_random_ports([pm(1, 65535, rng=2)])
    with pytest.raises(InvalidArgument, match="host port range exceeds maximum"):
        assign_random_ports([pm(65535, 1, rng=2)])
    with pytest.raises(NotSupported):
        assign_random_ports([pm(1, 1, "sctp")])


_fixed = st.builds(
    pm,
    host_port=st.integers(1000, 1040),
    ctr=st.integers(1, 40),
    proto=st.sampled_from(["tcp", "udp"]),
    rng=st.integers(1, 4),
    ip=st.sampled_from(["", "127.0.0.1"]),
)


@given(st.lists(_fixed, max_size=8))
@settings(max_examples=300, deadline=None)
def test_merge_properties(ports: list[PortMapping]) -> None:
    """Merged mappings publish exactly the (host port -> container port) pairs asked for, and
    no host port twice; or the request maps one host port to two container ports."""

    def pairs(ms: list[PortMapping] | tuple[PortMapping, ...]) -> set[tuple[str, str, int, int]]:
        return {(m.host_ip, m.protocol, m.host_port + i, m.container_port + i)
                for m in ms for i in range(m.range)}  # fmt: skip

    wanted = pairs(ports)
    hosts = [(ip, proto, h) for ip, proto, h, _ in wanted]
    try:
        got = assign_random_ports(ports)
    except InvalidArgument as e:
        assert "conflicting port mappings" in str(e)
        assert len(hosts) != len(set(hosts))
        return
    assert pairs(got) == wanted
    seen = [(m.host_ip, m.protocol, m.host_port + i) for m in got for i in range(m.range)]
    assert len(seen) == len(set(seen))


@given(st.text(alphabet="+-0123456789 \n٣x", max_size=6))
def test_atoi_syntax_is_the_regex(text: str) -> None:
    """The port syntax check, stdlite.is_decimal (no `re` on the `-p` path), accepts what
    `[+-]?[0-9]+` does."""
    import re

    from pypod.stdlite import is_decimal

    assert is_decimal(text) == bool(re.fullmatch(r"[+-]?[0-9]+", text))
