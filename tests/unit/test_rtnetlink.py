"""pypod's netlink client (pypod.linux.rtnetlink, ctnetlink): message bytes as the kernel's
uapi headers lay them out, reply parsing, and the request / dump logic over scripted replies
(errors and interrupted dumps cannot be had from the kernel on demand)."""

from __future__ import annotations

import errno
import json
import struct
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pypod.linux import ctnetlink as ct
from pypod.linux import rtnetlink as rt


def le32(n: int) -> bytes:
    return struct.pack("=I", n)


def hdr(length: int, type: int) -> bytes:
    """An rtattr header, spelled out."""
    return struct.pack("=HH", length, type)


def nlhdr(length: int, type: int, flags: int, seq: int, pid: int = 0) -> bytes:
    return struct.pack("=IHHII", length, type, flags, seq, pid)


# an ifinfomsg: family, pad, type (u16), index (i32), flags, change
IFINFO_UP = bytes([0, 0]) + b"\0\0" + le32(0) + le32(1) + le32(1)
IFINFO_ZERO = bytes(16)


# -- packing -----------------------------------------------------------------------------------


def test_attribute_length_excludes_padding_and_payload_is_padded_to_four() -> None:
    assert rt.attr(3, b"ab") == b"\x06\x00\x03\x00ab\x00\x00"
    assert rt.attr(3, b"abcd") == b"\x08\x00\x03\x00abcd"
    assert rt.attr(7, b"") == b"\x04\x00\x07\x00"
    assert rt.attr_str(3, "eth0") == b"\x09\x00\x03\x00eth0\x00\x00\x00\x00"
    assert rt.attr_u32(4, 1500) == b"\x08\x00\x04\x00" + le32(1500)


def test_nested_attribute_is_flagged_and_holds_its_attributes() -> None:
    inner = rt.attr_str(1, "veth")  # 4 + 5 = 9, padded to 12
    assert rt.nest(18, inner) == hdr(16, 18 | 0x8000) + inner


def test_message_header() -> None:
    body = b"\x01\x02\x03\x04"
    msg = rt.nlmsg(rt.RTM_NEWLINK, rt.NLM_F_REQUEST | rt.NLM_F_ACK, 7, body)
    assert msg == struct.pack("=IHHII", 20, 16, 5, 7, 0) + body
    assert len(rt.ifinfomsg()) == 16 and len(rt.ifaddrmsg(2, 24, 0, 0, 1)) == 8
    assert len(rt.rtmsg(2, 0)) == 12


def test_bridge_request_bytes() -> None:
    expected = (
        IFINFO_UP
        + hdr(8, 3) + b"br0\0"  # IFLA_IFNAME
        + hdr(8, 4) + le32(1500)  # IFLA_MTU
        + hdr(16, 18 | 0x8000)  # IFLA_LINKINFO
        + hdr(11, 1) + b"bridge\0" + b"\0"  # IFLA_INFO_KIND, padded
    )  # fmt: skip
    assert rt.new_bridge("br0", 1500) == expected
    assert rt.new_bridge("br0") == IFINFO_UP + hdr(8, 3) + b"br0\0" + expected[32:]


def test_veth_request_bytes_peer_in_another_namespace() -> None:
    peer = (
        IFINFO_ZERO  # the peer's own ifinfomsg
        + hdr(9, 3) + b"eth0\0" + b"\0\0\0"  # IFLA_IFNAME
        + hdr(8, 28) + le32(42)  # IFLA_NET_NS_FD
        + hdr(10, 1) + bytes.fromhex("02420a580002") + b"\0\0"  # IFLA_ADDRESS
        + hdr(8, 4) + le32(1400)  # IFLA_MTU
    )  # fmt: skip
    peer_attr = hdr(4 + len(peer), 1 | 0x8000) + peer  # VETH_INFO_PEER
    data = hdr(4 + len(peer_attr), 2 | 0x8000) + peer_attr  # IFLA_INFO_DATA
    kind = hdr(9, 1) + b"veth\0" + b"\0\0\0"  # IFLA_INFO_KIND
    linkinfo = hdr(4 + len(kind) + len(data), 18 | 0x8000) + kind + data
    expected = (
        IFINFO_UP
        + hdr(17, 3) + b"veth1234abcd\0" + b"\0\0\0"
        + hdr(8, 10) + le32(5)  # IFLA_MASTER
        + hdr(8, 4) + le32(1400)
        + linkinfo
    )  # fmt: skip
    got = rt.new_veth("veth1234abcd", "eth0", 42, 5, 1400, "02:42:0a:58:00:02")
    assert got == expected
    # without MAC and MTU: neither attribute, on either side
    bare = rt.new_veth("v0", "eth1", 3, 5)
    attrs = rt.parse_attrs(bare, 16)
    assert set(attrs) == {3, 10, 18}
    info = rt.parse_attrs(attrs[18])
    peer_attrs = rt.parse_attrs(rt.parse_attrs(info[2])[1], 16)
    assert set(peer_attrs) == {3, 28}


def test_mac_must_have_six_bytes() -> None:
    assert rt.mac_bytes("02:42:AC:11:00:02") == bytes.fromhex("0242ac110002")
    with pytest.raises(ValueError, match="not a MAC address"):
        rt.mac_bytes("02:42:ac")


def test_address_request_ipv4_with_broadcast() -> None:
    got = rt.new_address(2, bytes([10, 88, 0, 2]), 16, 7, bytes([10, 88, 255, 255]))
    expected = (
        bytes([2, 16, 0, 0]) + le32(7)  # family, prefixlen, flags, scope, index
        + hdr(8, 2) + bytes([10, 88, 0, 2])  # IFA_LOCAL
        + hdr(8, 1) + bytes([10, 88, 0, 2])  # IFA_ADDRESS
        + hdr(8, 4) + bytes([10, 88, 255, 255])  # IFA_BROADCAST
    )  # fmt: skip
    assert got == expected


def test_address_request_ipv6_without_duplicate_address_detection() -> None:
    ip = bytes.fromhex("fd000000000000000000000000000002")
    got = rt.new_address(10, ip, 64, 3)
    expected = (
        bytes([10, 64, 0x02, 0]) + le32(3)  # IFA_F_NODAD in the header
        + hdr(20, 2) + ip + hdr(20, 1) + ip
        + hdr(8, 8) + le32(0x02)  # IFA_FLAGS
    )  # fmt: skip
    assert got == expected


def test_default_route_request_bytes() -> None:
    got = rt.new_route(2, bytes([10, 88, 0, 1]), 9)
    # family, dst_len, src_len, tos, table main, proto boot, scope universe, unicast, flags
    expected = (
        bytes([2, 0, 0, 0, 254, 3, 0, 1]) + le32(0)
        + hdr(8, 5) + bytes([10, 88, 0, 1])  # RTA_GATEWAY
        + hdr(8, 4) + le32(9)  # RTA_OIF
    )  # fmt: skip
    assert got == expected
    with_dst = rt.new_route(2, bytes([10, 88, 0, 1]), 9, bytes([10, 1, 0, 0]), 16)
    assert with_dst[1] == 16 and rt.parse_attrs(with_dst, 12)[1] == bytes([10, 1, 0, 0])


def test_link_by_name() -> None:
    assert rt.link_by_name("lo") == IFINFO_ZERO + hdr(7, 3) + b"lo\0\0"


# -- parsing -----------------------------------------------------------------------------------


@given(st.lists(st.tuples(st.integers(1, 0x3FFF), st.binary(max_size=40)), max_size=12))
def test_attributes_read_back(pairs: list[tuple[int, bytes]]) -> None:
    packed = b"".join(rt.attr(t, p) for t, p in pairs)
    assert len(packed) % 4 == 0
    assert rt.parse_attrs(packed) == dict(pairs)


def test_parse_link() -> None:
    body = (
        struct.pack("=BxHiII", 0, 1, 12, 0x1043, 0)
        + rt.attr_str(3, "veth0")
        + rt.attr_u32(4, 1500)
        + rt.attr_u32(10, 4)
        + rt.nest(18, rt.attr_str(1, "veth"))
    )
    link = rt.parse_link(body)
    assert (link.index, link.name, link.master, link.mtu, link.flags) == (
        12,
        "veth0",
        4,
        1500,
        0x1043,
    )
    bare = rt.parse_link(struct.pack("=BxHiII", 0, 1, 1, 0, 0))
    assert (bare.name, bare.master) == (None, 0)


def test_several_messages_in_one_datagram() -> None:
    one = rt.nlmsg(16, 2, 5, b"abc")  # 19 bytes, padded to 20 in a datagram
    two = rt.nlmsg(3, 2, 5, le32(0))
    msgs = rt.parse_messages(one + b"\0" + two)
    assert [(m.type, m.flags, m.seq, m.body) for m in msgs] == [
        (16, 2, 5, b"abc"),
        (3, 2, 5, le32(0)),
    ]


def test_malformed_message_is_an_error() -> None:
    with pytest.raises(ValueError, match="malformed netlink message"):
        rt.parse_messages(nlhdr(64, 16, 0, 1) + b"short")
    with pytest.raises(ValueError, match="malformed netlink message"):
        rt.parse_messages(nlhdr(8, 16, 0, 1))


def test_error_codes() -> None:
    assert rt.error_code(struct.pack("=i", 0) + nlhdr(16, 16, 5, 1)) == 0
    assert rt.error_code(struct.pack("=i", -errno.EEXIST)) == errno.EEXIST
    e = rt.netlink_error(errno.ENODEV)
    assert isinstance(e, OSError) and e.errno == errno.ENODEV
    assert e.strerror == "No such device"


# -- requests over scripted replies ------------------------------------------------------------


class Script:
    """Stands for the kernel end: records what is sent, answers with `replies(seq)`, a list of
    datagrams (each a list of (type, flags, body) messages) per request."""

    def __init__(self, *answers: list[list[tuple[int, int, bytes]]], trunc: bool = False) -> None:
        self.answers = list(answers)
        self.sent: list[bytes] = []
        self.queue: list[bytes] = []
        self.trunc = trunc

    def sendto(self, data: bytes, addr: tuple[int, int]) -> int:
        assert addr == (0, 0)
        self.sent.append(data)
        seq = struct.unpack_from("=I", data, 8)[0]
        for datagram in self.answers.pop(0):
            self.queue.append(b"".join(rt.nlmsg(t, f, seq, b) for t, f, b in datagram))
        return len(data)

    def recvmsg(self, size: int) -> tuple[bytes, list[object], int, object]:
        return self.queue.pop(0), [], 0x20 if self.trunc else 0, None

    def close(self) -> None:
        pass


def scripted(script: Script) -> rt.NetlinkSocket:
    sock = object.__new__(rt.NetlinkSocket)
    sock._sock = script  # type: ignore[assignment]
    sock._seq = 0
    return sock


def ack(code: int = 0) -> tuple[int, int, bytes]:
    return (rt.NLMSG_ERROR, 0, struct.pack("=i", -code) + nlhdr(16, 0, 0, 0))


def link_msg(index: int, name: str, master: int = 0, flags: int = rt.NLM_F_MULTI) -> tuple:
    body = rt.ifinfomsg(index=index) + rt.attr_str(3, name)
    if master:
        body += rt.attr_u32(10, master)
    return (rt.RTM_NEWLINK, flags, body)


def done(code: int = 0) -> tuple[int, int, bytes]:
    return (rt.NLMSG_DONE, rt.NLM_F_MULTI, struct.pack("=i", -code))


def test_request_ends_at_its_acknowledgement() -> None:
    script = Script([[ack()]])
    assert scripted(script).request(rt.RTM_NEWLINK, rt.NLM_F_ACK, b"body") == []
    length, type, flags, seq, _ = struct.unpack_from("=IHHII", script.sent[0])
    assert (length, type, flags, seq) == (20, 16, rt.NLM_F_REQUEST | rt.NLM_F_ACK, 1)


def test_error_reply_raises_with_its_errno() -> None:
    sock = scripted(Script([[ack(errno.EEXIST)]]))
    with pytest.raises(rt.NetlinkError) as info:
        sock.request(rt.RTM_NEWLINK, rt.NLM_F_ACK | rt.NLM_F_CREATE, b"")
    assert info.value.errno == errno.EEXIST and info.value.strerror == "File exists"


def test_answer_without_ack_is_the_first_single_reply() -> None:
    sock = scripted(Script([[link_msg(3, "eth0", flags=0)]]))
    link = rt.get_link(sock, "eth0")
    assert link is not None and (link.index, link.name) == (3, "eth0")
    assert rt.get_link(scripted(Script([[ack(errno.ENODEV)]])), "nope") is None
    with pytest.raises(rt.NetlinkError):
        rt.get_link(scripted(Script([[ack(errno.EPERM)]])), "eth0")


def test_dump_gathers_multipart_replies_over_several_datagrams() -> None:
    script = Script(
        [
            [link_msg(1, "lo"), link_msg(2, "br0")],
            [link_msg(3, "veth0", master=2)],
            [link_msg(4, "veth1", master=2), done()],
        ]
    )
    links = rt.dump_links(scripted(script))
    assert [(x.index, x.name, x.master) for x in links] == [
        (1, "lo", 0),
        (2, "br0", 0),
        (3, "veth0", 2),
        (4, "veth1", 2),
    ]
    flags = struct.unpack_from("=IHH", script.sent[0])[2]
    assert flags == rt.NLM_F_REQUEST | rt.NLM_F_DUMP


def test_dump_ending_in_an_error_raises() -> None:
    sock = scripted(Script([[link_msg(1, "lo")], [done(errno.EMSGSIZE)]]))
    with pytest.raises(rt.NetlinkError) as info:
        rt.dump_links(sock)
    assert info.value.errno == errno.EMSGSIZE


def test_interrupted_dump_is_started_again() -> None:
    intr = rt.NLM_F_MULTI | rt.NLM_F_DUMP_INTR
    script = Script(
        [[link_msg(1, "lo", flags=intr), done()]],
        [[link_msg(1, "lo"), link_msg(2, "br0"), done()]],
    )
    sock = scripted(script)
    assert [x.name for x in rt.dump_links(sock)] == ["lo", "br0"]
    assert [struct.unpack_from("=I", m, 8)[0] for m in script.sent] == [1, 2]


def test_replies_to_an_earlier_request_are_skipped() -> None:
    script = Script([[ack()]])
    sock = scripted(script)
    sock.request(rt.RTM_NEWLINK, rt.NLM_F_ACK, b"")  # sequence number 1
    # a late error for request 1 arrives first, then request 2's answer
    script.queue.append(rt.nlmsg(rt.NLMSG_ERROR, 0, 1, struct.pack("=i", -errno.EEXIST)))
    script.answers.append([[link_msg(9, "wanted", flags=0)]])
    link = rt.get_link(sock, "wanted")
    assert link is not None and link.index == 9


def test_truncated_datagram_is_an_error() -> None:
    sock = scripted(Script([[ack()]], trunc=True))
    with pytest.raises(ValueError, match="truncated"):
        sock.request(rt.RTM_NEWLINK, rt.NLM_F_ACK, b"")


# -- conntrack ---------------------------------------------------------------------------------


V4A, V4B = bytes([127, 0, 0, 1]), bytes([10, 88, 0, 5])


def test_conntrack_dump_request_filters_on_protocol_and_port() -> None:
    got = ct.dump_request(2, 17, 5353)
    proto = hdr(5, 1) + b"\x11\0\0\0" + hdr(6, 3) + b"\x14\xe9\0\0"  # NUM, DST_PORT (be16)
    tuple_orig = hdr(8 + len(proto), 1 | 0x8000) + hdr(4 + len(proto), 2 | 0x8000) + proto
    flt = hdr(12, 25 | 0x8000) + hdr(8, 1) + le32((1 << 3) | (1 << 5))  # CTA_FILTER
    assert got == bytes([2, 0, 0, 0]) + tuple_orig + flt  # nfgenmsg: family, v0, res_id
    any_port = ct.dump_request(10, 17, None)
    assert any_port[0] == 10 and any_port.endswith(le32(1 << 3))


def test_conntrack_delete_request_and_flow_parsing() -> None:
    orig = ct.Tuple(V4A, V4A, 17, 40000, 5353)
    reply = ct.Tuple(V4B, V4A, 17, 53, 40000)
    body = ct.delete_request(2, orig)
    ip = hdr(8, 1) + V4A + hdr(8, 2) + V4A
    proto = hdr(5, 1) + b"\x11\0\0\0" + hdr(6, 2) + b"\x9c\x40\0\0" + hdr(6, 3) + b"\x14\xe9\0\0"
    inner = hdr(4 + len(ip), 1 | 0x8000) + ip + hdr(4 + len(proto), 2 | 0x8000) + proto
    assert body == bytes([2, 0, 0, 0]) + hdr(4 + len(inner), 1 | 0x8000) + inner
    # what a dump returns: both directions (and more attributes, ignored)
    dumped = body + ct.tuple_attr(2, 2, reply) + rt.attr_u32(7, 30)
    flow = ct.parse_flow(2, dumped)
    assert flow is not None
    assert (flow.orig.saddr, flow.orig.sport, flow.orig.dport) == (V4A, 40000, 5353)
    assert (flow.reply.saddr, flow.reply.daddr, flow.reply.sport) == (V4B, V4A, 53)
    assert ct.parse_flow(2, body) is None  # no reply direction


# -- import cost -------------------------------------------------------------------------------


def test_client_imports_only_a_few_standard_modules() -> None:
    code = (
        "import sys, json; before = set(sys.modules); import pypod.linux.rtnetlink;"
        "import pypod.linux.ctnetlink; print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    new = set(json.loads(out)) - {"pypod", "pypod.linux", "pypod.linux.rtnetlink"}
    assert new <= {"pypod.linux.ctnetlink", "_socket", "struct", "_struct", "errno", "__future__"}


def test_network_layer_no_longer_loads_pyroute2_or_socket() -> None:
    code = (
        "import sys; import pypod.network.netlink;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyroute2', 'socket')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
