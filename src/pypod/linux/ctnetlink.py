"""Conntrack entries through ctnetlink (NETLINK_NETFILTER), over `rtnetlink.NetlinkSocket`.

What pypod needs: list the UDP flows of one address family going to a port (the kernel
filters, CTA_FILTER, Linux 5.8 and newer; the caller checks each entry too), and delete one.
The format (include/uapi/linux/netfilter/nfnetlink.h, nfnetlink_conntrack.h): the message
type is the subsystem (NFNL_SUBSYS_CTNETLINK) << 8 | the command; the body is a nfgenmsg
(u8 family, u8 version, be16 resource id), then attributes.  A tuple (CTA_TUPLE_ORIG,
CTA_TUPLE_REPLY) nests CTA_TUPLE_IP (source and destination addresses, packed) and
CTA_TUPLE_PROTO (u8 protocol, be16 ports).
"""

from __future__ import annotations

import struct

from pypod.linux.rtnetlink import (
    AF_INET,
    NETLINK_NETFILTER,
    NLM_F_ACK,
    NetlinkSocket,
    attr,
    attr_u32,
    nest,
    parse_attrs,
)

NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_GET = 1
IPCTNL_MSG_CT_DELETE = 2
NFNETLINK_V0 = 0

CTA_TUPLE_ORIG = 1
CTA_TUPLE_REPLY = 2
CTA_FILTER = 25
CTA_TUPLE_IP = 1
CTA_TUPLE_PROTO = 2
CTA_IP_V4_SRC = 1
CTA_IP_V4_DST = 2
CTA_IP_V6_SRC = 3
CTA_IP_V6_DST = 4
CTA_PROTO_NUM = 1
CTA_PROTO_SRC_PORT = 2
CTA_PROTO_DST_PORT = 3
CTA_FILTER_ORIG_FLAGS = 1
FILTER_FLAG_CTA_PROTO_NUM = 1 << 3
FILTER_FLAG_CTA_PROTO_DST_PORT = 1 << 5

IPPROTO_UDP = 17

_NFGENMSG = struct.Struct("=BBH")
_BE16 = struct.Struct(">H")


class Tuple:
    """One direction of a flow: addresses (packed), protocol number and ports."""

    __slots__ = ("daddr", "dport", "proto", "saddr", "sport")

    def __init__(self, saddr: bytes, daddr: bytes, proto: int, sport: int, dport: int) -> None:
        self.saddr = saddr
        self.daddr = daddr
        self.proto = proto
        self.sport = sport
        self.dport = dport

    def __repr__(self) -> str:
        return (
            f"Tuple(saddr={self.saddr.hex()}, daddr={self.daddr.hex()}, proto={self.proto}, "
            f"sport={self.sport}, dport={self.dport})"
        )


class Flow:
    """A conntrack entry: its original and reply directions."""

    __slots__ = ("orig", "reply")

    def __init__(self, orig: Tuple, reply: Tuple) -> None:
        self.orig = orig
        self.reply = reply


def _type(command: int) -> int:
    return NFNL_SUBSYS_CTNETLINK << 8 | command


def _nfgenmsg(family: int) -> bytes:
    return _NFGENMSG.pack(family, NFNETLINK_V0, 0)


def _ip_attrs(family: int) -> tuple[int, int]:
    return (CTA_IP_V4_SRC, CTA_IP_V4_DST) if family == AF_INET else (CTA_IP_V6_SRC, CTA_IP_V6_DST)


def tuple_attr(type: int, family: int, t: Tuple) -> bytes:
    """CTA_TUPLE_ORIG or CTA_TUPLE_REPLY holding the whole of `t`."""
    src, dst = _ip_attrs(family)
    return nest(
        type,
        nest(CTA_TUPLE_IP, attr(src, t.saddr), attr(dst, t.daddr)),
        nest(
            CTA_TUPLE_PROTO,
            attr(CTA_PROTO_NUM, bytes([t.proto])),
            attr(CTA_PROTO_SRC_PORT, _BE16.pack(t.sport)),
            attr(CTA_PROTO_DST_PORT, _BE16.pack(t.dport)),
        ),
    )


def dump_request(family: int, proto: int, dport: int | None) -> bytes:
    """IPCTNL_MSG_CT_GET (dump) body: the flows of `proto` (to `dport` when given)."""
    protocol = [attr(CTA_PROTO_NUM, bytes([proto]))]
    flags = FILTER_FLAG_CTA_PROTO_NUM
    if dport is not None:
        protocol.append(attr(CTA_PROTO_DST_PORT, _BE16.pack(dport)))
        flags |= FILTER_FLAG_CTA_PROTO_DST_PORT
    return (
        _nfgenmsg(family)
        + nest(CTA_TUPLE_ORIG, nest(CTA_TUPLE_PROTO, *protocol))
        + nest(CTA_FILTER, attr_u32(CTA_FILTER_ORIG_FLAGS, flags))
    )


def delete_request(family: int, orig: Tuple) -> bytes:
    """IPCTNL_MSG_CT_DELETE body: the entry whose original direction is `orig`."""
    return _nfgenmsg(family) + tuple_attr(CTA_TUPLE_ORIG, family, orig)


def parse_tuple(family: int, data: bytes) -> Tuple | None:
    """A CTA_TUPLE_* payload; None when it lacks addresses or a protocol."""
    attrs = parse_attrs(data)
    ip, proto = attrs.get(CTA_TUPLE_IP), attrs.get(CTA_TUPLE_PROTO)
    if ip is None or proto is None:
        return None
    src, dst = _ip_attrs(family)
    ips, protos = parse_attrs(ip), parse_attrs(proto)
    saddr, daddr, num = ips.get(src), ips.get(dst), protos.get(CTA_PROTO_NUM)
    if saddr is None or daddr is None or not num:
        return None
    sport, dport = protos.get(CTA_PROTO_SRC_PORT), protos.get(CTA_PROTO_DST_PORT)
    return Tuple(
        saddr,
        daddr,
        num[0],
        _BE16.unpack_from(sport)[0] if sport and len(sport) >= 2 else 0,
        _BE16.unpack_from(dport)[0] if dport and len(dport) >= 2 else 0,
    )


def parse_flow(family: int, body: bytes) -> Flow | None:
    """An IPCTNL_MSG_CT_NEW message's body (what a dump returns); None when incomplete."""
    attrs = parse_attrs(body, _NFGENMSG.size)
    orig, reply = attrs.get(CTA_TUPLE_ORIG), attrs.get(CTA_TUPLE_REPLY)
    if orig is None or reply is None:
        return None
    o, r = parse_tuple(family, orig), parse_tuple(family, reply)
    return None if o is None or r is None else Flow(o, r)


def open_socket() -> NetlinkSocket:
    return NetlinkSocket(NETLINK_NETFILTER)


def flows(sock: NetlinkSocket, family: int, proto: int, dport: int | None) -> list[Flow]:
    """The conntrack entries of `family` and `proto` (to `dport` when given)."""
    out = []
    for m in sock.dump(_type(IPCTNL_MSG_CT_GET), dump_request(family, proto, dport)):
        flow = parse_flow(family, m.body)
        if flow is not None:
            out.append(flow)
    return out


def delete(sock: NetlinkSocket, family: int, orig: Tuple) -> None:
    """Delete the entry whose original direction is `orig` (NetlinkError ENOENT: none)."""
    sock.request(_type(IPCTNL_MSG_CT_DELETE), NLM_F_ACK, delete_request(family, orig))
