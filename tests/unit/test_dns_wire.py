"""The DNS responder's wire codec, record files and answering rules (no sockets)."""

from __future__ import annotations

import _socket
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pypod.errors import InvalidArgument
from pypod.network import dns, dns_server
from pypod.network import dns_records as rec
from pypod.network import dns_wire as w
from pypod.network.types import Network, Subnet

CID_A = "a" * 64
CID_B = "b" * 64
CID_C = "c" * 64


def ip(text: str) -> bytes:
    return w.pack_ip(text)


def backend(*files: tuple[str, str]) -> rec.Backend:
    return rec.Backend(rec.parse_network_file(name, text) for name, text in files)


NET1 = (
    "net1",
    f"10.90.0.1,fd90::1\n{CID_A} 10.90.0.2 fd90::2 web,aaaaaaaaaaaa,Alias.One\n"
    f"{CID_B} 10.90.0.3  db,bbbbbbbbbbbb 192.0.2.53\n",
)
NET2 = ("net2", f"10.91.0.1\n{CID_C} 10.91.0.2  other,cccccccccccc\n")
INTERNAL = ("inner%internal", f"10.92.0.1\n{CID_C} 10.92.0.2  hidden\n")


def answer(
    be: rec.Backend, name: str, qtype: int, src: str, *, tcp: bool = False
) -> tuple[int, list[tuple[int, bytes]], w.Message]:
    action, value = rec.resolve(be, w.encode_query(7, name, qtype), ip(src), tcp=tcp)
    assert action == rec.ANSWER, (action, value)
    assert isinstance(value, bytes)
    msg = w.parse_message(value)
    return msg.rcode, [(r.rtype, r.rdata) for r in msg.answers], msg


# --- the codec ------------------------------------------------------------------------------------


def test_query_round_trip() -> None:
    data = w.encode_query(0xBEEF, "Web.Dns.Podman.", w.TYPE_AAAA)
    msg = w.parse_message(data)
    assert msg.id == 0xBEEF
    assert msg.flags & w.FLAG_RD
    assert not msg.flags & w.FLAG_QR
    [q] = msg.questions
    assert q.labels == (b"Web", b"Dns", b"Podman")
    assert q.lower() == (b"web", b"dns", b"podman")
    assert (q.qtype, q.qclass) == (w.TYPE_AAAA, w.CLASS_IN)


def test_compressed_names_are_followed() -> None:
    # header, question "a.example" at 12, an answer whose name is "b" + pointer to "example"
    q = w.encode_name((b"a", b"example")) + b"\x00\x01\x00\x01"
    rr = (
        b"\x01b\xc0\x0e"
        + b"\x00\x01\x00\x01"
        + b"\x00\x00\x00\x3c"
        + b"\x00\x04"
        + b"\x01\x02\x03\x04"
    )
    data = b"\x00\x01\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + q + rr
    msg = w.parse_message(data)
    assert msg.answers[0].labels == (b"b", b"example")
    assert msg.answers[0].rdata == b"\x01\x02\x03\x04"
    assert msg.answers[0].ttl == 60


@pytest.mark.parametrize(
    "tail",
    [
        b"\xc0\x0c",  # a pointer to itself
        b"\x01a\xc0\x0e",  # a pointer forward (to its own second label)
        b"\x40abc",  # label type 01
        b"\x05ab",  # label past the end
        b"\x01a" * 130 + b"\x00",  # longer than 255 bytes
    ],
)
def test_bad_names_are_wire_errors(tail: bytes) -> None:
    data = b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + tail + b"\x00\x01\x00\x01"
    with pytest.raises(w.WireError):
        w.parse_message(data)


def test_encode_name_limits() -> None:
    with pytest.raises(w.WireError):
        w.encode_name((b"x" * 64,))
    with pytest.raises(w.WireError):
        w.encode_name((b"",))
    assert w.encode_name(()) == b"\x00"


def test_response_echoes_question_and_truncates_over_512() -> None:
    query = w.parse_message(w.encode_query(9, "MiXed.example", w.TYPE_A))
    many = [(w.TYPE_A, bytes([10, 0, i // 256, i % 256])) for i in range(40)]
    full = w.parse_message(w.build_response(query, w.RCODE_NOERROR, many))
    assert len(full.answers) == 40
    assert full.questions[0].labels == (b"MiXed", b"example")  # case preserved
    assert full.flags & w.FLAG_QR and full.flags & w.FLAG_RA and full.flags & w.FLAG_RD
    cut = w.build_response(query, w.RCODE_NOERROR, many, limit=w.UDP_MAX)
    assert len(cut) <= w.UDP_MAX
    msg = w.parse_message(cut)
    assert msg.flags & w.FLAG_TC and not msg.answers


def test_error_response_needs_a_query_header() -> None:
    assert w.error_response(b"\x01\x02\x03", w.RCODE_FORMERR) is None
    response_header = b"\x00\x01\x80\x00" + b"\x00" * 8
    assert w.error_response(response_header, w.RCODE_FORMERR) is None
    reply = w.error_response(b"\x12\x34\x01\x00" + b"\x00" * 8 + b"junk", w.RCODE_FORMERR)
    assert reply is not None
    msg = w.parse_message(reply)
    assert (msg.id, msg.rcode) == (0x1234, w.RCODE_FORMERR)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("2.0.90.10.in-addr.arpa", "10.90.0.2"),
        ("2.0.90.10.IN-ADDR.ARPA", None),  # the caller lowers the name first
        ("256.0.90.10.in-addr.arpa", None),
        ("02.0.90.10.in-addr.arpa", None),
        ("0.90.10.in-addr.arpa", None),
        (
            ".".join(reversed("fd900000000000000000000000000002")) + ".ip6.arpa",
            "fd90::2",
        ),
        ("g" + ".0" * 31 + ".ip6.arpa", None),
    ],
)
def test_reverse_names(name: str, expected: str | None) -> None:
    got = w.reverse_name_ip(w.split_name(name))
    assert got == (ip(expected) if expected else None)


# --- never crash on what arrives ------------------------------------------------------------------


@given(st.binary(max_size=600))
def test_parser_never_crashes(data: bytes) -> None:
    try:
        w.parse_message(data)
    except w.WireError:
        pass


@given(
    st.binary(min_size=12, max_size=12),
    st.lists(st.sampled_from([b"\xc0", b"\x0c", b"\x00", b"\x01", b"\x03abc", b"\x3f", b"\xff"])),
    st.binary(max_size=40),
)
def test_parser_never_crashes_on_name_like_bytes(
    header: bytes, parts: list[bytes], tail: bytes
) -> None:
    try:
        w.parse_message(header + b"".join(parts) + tail)
    except w.WireError:
        pass


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.booleans())
def test_resolve_never_crashes(data: bytes, tcp: bool) -> None:
    be = backend(NET1, NET2, INTERNAL)
    action, value = rec.resolve(be, data, ip("10.90.0.2"), tcp=tcp)
    if action == rec.ANSWER:
        assert isinstance(value, bytes)
        reply = w.parse_message(value)  # whatever we send parses
        assert reply.flags & w.FLAG_QR
        assert reply.id == int.from_bytes(data[:2], "big")
        if not tcp:
            assert len(value) <= w.UDP_MAX
    elif action == rec.DROP:
        assert len(data) < 12 or data[2] & 0x80


@given(st.text(alphabet="abcXYZ019-._", min_size=1, max_size=60), st.sampled_from([1, 12, 28]))
def test_resolve_answers_any_valid_question(name: str, qtype: int) -> None:
    try:
        data = w.encode_query(1, name, qtype)
    except w.WireError:
        return
    action, _ = rec.resolve(backend(NET1), data, ip("10.90.0.2"))
    assert action in (rec.ANSWER, rec.FORWARD)


# --- the record files -----------------------------------------------------------------------------


def test_parse_network_file() -> None:
    net = rec.parse_network_file(*NET1)
    assert (net.name, net.internal) == ("net1", False)
    assert net.gateways == ["10.90.0.1", "fd90::1"]
    assert [e.id for e in net.entries] == [CID_A, CID_B]
    assert net.entries[0].names == ["web", "aaaaaaaaaaaa", "alias.one"]
    assert net.entries[0].ips == [ip("10.90.0.2"), ip("fd90::2")]
    assert net.entries[1].dns_servers == ["192.0.2.53"]
    inner = rec.parse_network_file(*INTERNAL)
    assert (inner.name, inner.internal) == ("inner", True)


@pytest.mark.parametrize(
    "text",
    ["", "not-an-ip\n", f"10.0.0.1\n{CID_A} 10.0.0.2\n", f"10.0.0.1\n{CID_A} 10.0.0.x  web\n"],
)
def test_bad_network_files(text: str) -> None:
    with pytest.raises(ValueError):
        rec.parse_network_file("n", text)


def test_load_config_skips_dot_files_and_reports_bad_ones(tmp_path: Path) -> None:
    (tmp_path / "net1").write_text(NET1[1])
    (tmp_path / "broken").write_text("garbage\n")
    (tmp_path / ".server.pid").write_text("1\n")
    (tmp_path / ".tmp-1-net2").write_text("junk")
    be, errors = rec.load_config(str(tmp_path))
    assert list(be.networks) == ["net1"]
    assert [net for net, _ in errors] == ["broken"]
    assert be.listen_addresses() == {"10.90.0.1": "net1", "fd90::1": "net1"}


def test_read_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# comment\nsearch example\nnameserver 127.0.0.53\nnameserver bogus\n"
        "nameserver fe80::1%lo\noptions ndots:1\n"
    )
    assert rec.read_resolv_conf(str(conf)) == ["127.0.0.53", "fe80::1%lo"]
    conf.write_text("search only\n")
    assert rec.read_resolv_conf(str(conf)) == ["127.0.0.1"]
    assert rec.read_resolv_conf(str(tmp_path / "missing")) == ["127.0.0.1"]
    fam, addr = rec.upstream_address("fe80::1%lo")
    assert fam == _socket.AF_INET6
    assert addr == ("fe80::1", 53, 0, _socket.if_nametoindex("lo"))


# --- the answering rules --------------------------------------------------------------------------


def test_names_with_and_without_the_search_domain() -> None:
    be = backend(NET1, NET2)
    for name in ("web", "WEB", "web.dns.podman", "Web.DNS.Podman.", "aaaaaaaaaaaa", "alias.one"):
        rcode, answers, _ = answer(be, name, w.TYPE_A, "10.90.0.3")
        assert rcode == w.RCODE_NOERROR
        assert answers == [(w.TYPE_A, ip("10.90.0.2"))], name
    rcode, answers, _ = answer(be, "web", w.TYPE_AAAA, "10.90.0.3")
    assert answers == [(w.TYPE_AAAA, ip("fd90::2"))]
    # a v4-only container: no AAAA, but the name exists (NOERROR, no data)
    rcode, answers, _ = answer(be, "db", w.TYPE_AAAA, "10.90.0.2")
    assert (rcode, answers) == (w.RCODE_NOERROR, [])
    rcode, answers, _ = answer(be, "db", w.TYPE_MX, "10.90.0.2")
    assert (rcode, answers) == (w.RCODE_NOERROR, [])


def test_unknown_names_in_the_domain_and_single_labels_are_nxdomain() -> None:
    be = backend(NET1)
    for name in ("nothere", "nothere.dns.podman", "dns.podman", "x.y.dns.podman"):
        rcode, answers, msg = answer(be, name, w.TYPE_A, "10.90.0.2")
        assert (rcode, answers) == (w.RCODE_NXDOMAIN, []), name
        assert msg.questions[0].labels == w.split_name(name)


def test_other_names_are_forwarded_to_the_right_servers() -> None:
    be = backend(NET1, NET2)
    query = w.encode_query(5, "example.org", w.TYPE_A)
    assert rec.resolve(be, query, ip("10.90.0.2")) == (rec.FORWARD, None)  # the host's resolvers
    # the container's own --dns servers
    assert rec.resolve(be, query, ip("10.90.0.3")) == (rec.FORWARD, ["192.0.2.53"])
    # the network's servers (second field of the first line)
    be2 = backend(("net3", f"10.93.0.1 192.0.2.1,192.0.2.2\n{CID_A} 10.93.0.2  x\n"))
    assert rec.resolve(be2, query, ip("10.93.0.2")) == (rec.FORWARD, ["192.0.2.1", "192.0.2.2"])
    # no container: still forwarded (as aardvark-dns), but it sees no names
    assert rec.resolve(be, query, ip("10.99.0.9")) == (rec.FORWARD, None)
    rcode, answers, _ = answer(be, "web", w.TYPE_A, "10.99.0.9")
    assert (rcode, answers) == (w.RCODE_NXDOMAIN, [])


def test_networks_are_isolated() -> None:
    be = backend(NET1, NET2)
    rcode, _, _ = answer(be, "other", w.TYPE_A, "10.90.0.2")
    assert rcode == w.RCODE_NXDOMAIN
    rcode, _, _ = answer(be, "web", w.TYPE_A, "10.91.0.2")
    assert rcode == w.RCODE_NXDOMAIN
    rcode, answers, _ = answer(be, "other", w.TYPE_A, "10.91.0.2")
    assert answers == [(w.TYPE_A, ip("10.91.0.2"))]
    # a PTR of another network's container is not answered from the records
    action, _ = rec.resolve(
        be, w.encode_query(1, "2.0.91.10.in-addr.arpa", w.TYPE_PTR), ip("10.90.0.2")
    )
    assert action == rec.FORWARD


def test_a_container_on_two_networks_sees_both() -> None:
    both = ("net2", f"10.91.0.1\n{CID_C} 10.91.0.2  other\n{CID_A} 10.91.0.7  web\n")
    be = backend(NET1, both)
    for src in ("10.90.0.2", "10.91.0.7"):  # either of its addresses
        rcode, answers, _ = answer(be, "other", w.TYPE_A, src)
        assert answers == [(w.TYPE_A, ip("10.91.0.2"))]
        rcode, answers, _ = answer(be, "web", w.TYPE_A, src)
        assert sorted(answers) == sorted([(w.TYPE_A, ip("10.90.0.2")), (w.TYPE_A, ip("10.91.0.7"))])


def test_ptr_answers_the_container_names() -> None:
    be = backend(NET1)
    rcode, answers, msg = answer(be, "2.0.90.10.in-addr.arpa", w.TYPE_PTR, "10.90.0.3")
    assert rcode == w.RCODE_NOERROR
    names = [w.read_name(rdata, 0)[0] for _, rdata in answers]
    assert names == [(b"web",), (b"aaaaaaaaaaaa",), (b"alias", b"one")]
    assert msg.answers[0].labels == w.split_name("2.0.90.10.in-addr.arpa")
    v6 = ".".join(reversed("fd900000000000000000000000000002")) + ".ip6.arpa"
    rcode, answers, _ = answer(be, v6, w.TYPE_PTR, "10.90.0.3")
    assert len(answers) == 3


def test_internal_networks_do_not_forward() -> None:
    be = backend(NET1, INTERNAL)
    rcode, answers, _ = answer(be, "hidden", w.TYPE_A, "10.92.0.2")
    assert answers == [(w.TYPE_A, ip("10.92.0.2"))]
    rcode, _, _ = answer(be, "example.org", w.TYPE_A, "10.92.0.2")
    assert rcode == w.RCODE_NXDOMAIN


def test_malformed_and_unsupported_queries() -> None:
    be = backend(NET1)
    src = ip("10.90.0.2")
    assert rec.resolve(be, b"\x00\x01", src) == (rec.DROP, None)
    action, value = rec.resolve(be, b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05ab", src)
    assert action == rec.ANSWER and isinstance(value, bytes)
    assert w.parse_message(value).rcode == w.RCODE_FORMERR
    response = bytearray(w.encode_query(3, "web", w.TYPE_A))
    response[2] |= 0x80
    assert rec.resolve(be, bytes(response), src) == (rec.DROP, None)
    notify = bytearray(w.encode_query(3, "web", w.TYPE_A))
    notify[2] |= 4 << 3  # opcode NOTIFY
    action, value = rec.resolve(be, bytes(notify), src)
    assert isinstance(value, bytes) and w.parse_message(value).rcode == w.RCODE_NOTIMP
    two = bytearray(w.encode_query(3, "web", w.TYPE_A))
    two[5] = 0  # no question
    action, value = rec.resolve(be, bytes(two)[:12], src)
    assert isinstance(value, bytes) and w.parse_message(value).rcode == w.RCODE_FORMERR


# --- dns.py's checks (no responder needed) --------------------------------------------------------


def _net(**kw: object) -> Network:
    base: dict[str, object] = {
        "name": "n1",
        "id": "f" * 64,
        "subnets": (Subnet(subnet="10.95.0.0/24", gateway="10.95.0.1"),),
        "dns_enabled": True,
    }
    base.update(kw)
    return Network(**base)  # type: ignore[arg-type]


def test_no_dns_no_responder(tmp_path: Path) -> None:
    assert (
        dns.add_records(str(tmp_path), _net(dns_enabled=False), CID_A, ["x"], ["10.95.0.2"]) == []
    )
    assert dns.add_records(str(tmp_path), _net(subnets=()), CID_A, ["x"], ["10.95.0.2"]) == []
    assert not (tmp_path / "networks").exists()
    dns.remove_records(str(tmp_path), _net(), CID_A)  # nothing there: fine
    dns.stop_all(str(tmp_path))


@pytest.mark.parametrize(
    ("cid", "names", "ips", "match"),
    [
        ("", ["x"], ["10.95.0.2"], "container ID"),
        ("a b", ["x"], ["10.95.0.2"], "container ID"),
        (CID_A, ["we b"], ["10.95.0.2"], "cannot be a host name"),
        (CID_A, ["a,b"], ["10.95.0.2"], "cannot be a host name"),
        (CID_A, [], ["10.95.0.2"], "no name"),
        (CID_A, ["x"], [], "no address"),
        (CID_A, ["x"], ["10.95.0.300"], "not an IP address"),
    ],
)
def test_bad_records_are_refused(
    tmp_path: Path, cid: str, names: list[str], ips: list[str], match: str
) -> None:
    with pytest.raises(InvalidArgument, match=match):
        dns.add_records(str(tmp_path), _net(), cid, names, ips)
    assert not (tmp_path / "networks").exists()


def test_the_responder_imports_only_c_modules_and_its_helpers() -> None:
    """It starts on a container's start path: no pure-Python standard library beyond `os`
    (no re, enum, typing...), nothing of pypod but its two helpers."""
    src = str(Path(dns_server.__file__).resolve().parents[2])
    code = (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        f"sys.path.append({src!r})\n"
        "import pypod.network.dns_server\n"
        "print(json.dumps({m: getattr(sys.modules[m], '__file__', None)\n"
        "                  for m in set(sys.modules) - before - {'json'}\n"
        "                  if not m.startswith('json')}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded: dict[str, str | None] = json.loads(out)
    ours = {"pypod", "pypod.network", "pypod.network.dns_server"}
    ours |= {"pypod.network.dns_records", "pypod.network.dns_wire"}
    python = {m: f for m, f in loaded.items() if m not in ours and f and not f.endswith(".so")}
    # os and what it needs (what `site` loads in any interpreter), and __future__
    allowed = {"__future__", "os", "os.path", "posixpath", "genericpath", "stat"}
    assert set(python) <= allowed, python
    assert ours <= set(loaded)
