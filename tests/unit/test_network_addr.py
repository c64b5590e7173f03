"""network.addr: ipaddress's ip_address / ip_network(strict=False) / ip_interface without
importing ipaddress for IPv4: the same values for what it reads, ipaddress's own answers (and
errors) for the rest."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pypod.network import addr

_octet = st.one_of(
    st.integers(0, 300).map(str),
    st.sampled_from(["", "00", "01", "007", "0x1", " 1", "1 ", "+1", "-1", "٣", "1234"]),
)
_v4ish = st.builds(lambda parts: ".".join(parts), st.lists(_octet, min_size=3, max_size=5))
_prefix = st.one_of(
    st.integers(0, 40).map(str), st.sampled_from(["", "08", "255.255.0.0", "0.0.255.255", "x"])
)
_text = st.one_of(
    _v4ish,
    st.builds(lambda a, p: f"{a}/{p}", _v4ish, _prefix),
    st.builds(lambda a, p, q: f"{a}/{p}/{q}", _v4ish, _prefix, _prefix),
    st.sampled_from(["::1", "fd00::1/64", "10.88.0.0/16", "1.2.3.4%eth0", "::ffff:1.2.3.4"]),
    st.text(max_size=8),
)


def _outcome(fn, value):  # type: ignore[no-untyped-def]
    try:
        return ("ok", fn(value))
    except ValueError as e:
        return ("error", type(e), str(e))


def _view(obj: object) -> object:
    """What the network code reads of an address, a network or an interface."""
    if isinstance(obj, tuple) and obj[0] == "error":
        return obj
    o = obj[1]  # type: ignore[index]
    out: dict[str, object] = {"str": str(o), "version": o.version}
    if hasattr(o, "prefixlen"):  # a network
        out |= {"prefixlen": o.prefixlen, "net": str(o.network_address),
                "bcast": str(o.broadcast_address)}  # fmt: skip
    elif hasattr(o, "network"):  # an interface
        out |= {"ip": str(o.ip), "packed": o.ip.packed, "compressed": o.ip.compressed,
                "net": str(o.network.network_address), "prefixlen": o.network.prefixlen,
                "bcast": o.network.broadcast_address.packed}  # fmt: skip
    else:
        out |= {"int": int(o), "packed": o.packed, "compressed": o.compressed,
                "unspecified": o.is_unspecified, "fmt": f"{o}"}  # fmt: skip
    return out


@given(_text)
def test_ip_address_is_ipaddress(text: str) -> None:
    assert _view(_outcome(addr.ip_address, text)) == _view(_outcome(ipaddress.ip_address, text))


@given(st.integers(-2, 2**33))
def test_ip_address_of_an_integer(n: int) -> None:
    assert _view(_outcome(addr.ip_address, n)) == _view(_outcome(ipaddress.ip_address, n))


@given(_text, st.booleans())
def test_ip_network_is_ipaddress(text: str, strict: bool) -> None:
    mine = _outcome(lambda t: addr.ip_network(t, strict=strict), text)
    theirs = _outcome(lambda t: ipaddress.ip_network(t, strict=strict), text)
    assert _view(mine) == _view(theirs)


@given(_text)
def test_ip_interface_is_ipaddress(text: str) -> None:
    assert _view(_outcome(addr.ip_interface, text)) == _view(_outcome(ipaddress.ip_interface, text))


_SUBNETS = ["10.88.0.0/16", "10.89.3.0/24", "0.0.0.0/0", "1.2.3.4/32", "10.0.0.0/31"]


@given(st.integers(0, 2**32 - 1), st.sampled_from(_SUBNETS))
def test_membership_equality_and_hashing(n: int, subnet: str) -> None:
    ip, net = addr.ip_address(n), addr.ip_network(subnet, strict=False)
    real_ip, real_net = ipaddress.ip_address(n), ipaddress.ip_network(subnet, strict=False)
    assert (ip in net) == (real_ip in real_net)
    assert ip == addr.ip_address(str(real_ip)) and len({ip, addr.ip_address(str(ip))}) == 1
    assert ip != addr.ip_address((n + 1) % 2**32)
    assert ip in {addr.ip_address(str(real_ip))}
    assert addr.ip_address("::1") not in net


def test_ipv6_is_ipaddress_itself() -> None:
    assert isinstance(addr.ip_address("fd00::1"), ipaddress.IPv6Address)
    assert isinstance(addr.ip_network("fd00::/64", strict=False), ipaddress.IPv6Network)
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        addr.ip_address("010.1.1.1")


def test_what_is_not_written_here_is_ipaddress_own_answer() -> None:
    import ipaddress

    from pypod.network import addr

    net = addr.ip_network("10.88.0.0/16")
    assert net.netmask == ipaddress.ip_network("10.88.0.0/16").netmask
    assert net.num_addresses == 65536 and net.is_private
    assert next(iter(net.hosts())) == ipaddress.ip_address("10.88.0.1")
    ip = addr.ip_address("10.88.0.7")
    assert ip.is_private and ip.exploded == "10.88.0.7" and not ip.is_loopback
    assert sorted([addr.ip_address("10.0.0.2"), addr.ip_address("10.0.0.1")]) == [
        addr.ip_address("10.0.0.1"), addr.ip_address("10.0.0.2")
    ]  # fmt: skip
    iface = addr.ip_interface("10.88.0.7/16")
    assert iface.with_netmask == "10.88.0.7/255.255.0.0"
    assert type(net).__name__ == "IPv4Network"  # the stand-in (not ipaddress's), as tested
