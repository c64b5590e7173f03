"""A small netlink client: rtnetlink (NETLINK_ROUTE) messages packed with `struct`.

What pypod needs from the kernel's routing netlink, and nothing more: create a bridge or a
veth pair (whose peer is created straight in another network namespace), bring a link up,
delete a link, look a link up by name, list links, add an address, add a route.  The
conntrack messages (NETLINK_NETFILTER) are in `ctnetlink`, over the same `NetlinkSocket`.

The format (include/uapi/linux/netlink.h, rtnetlink.h, if_link.h, if_addr.h, veth.h), in
host byte order, every part aligned to 4 bytes:

    nlmsghdr  u32 length (header included), u16 type, u16 flags, u32 sequence, u32 port id
    body      a fixed header (ifinfomsg, ifaddrmsg, rtmsg, nfgenmsg), then attributes
    rtattr    u16 length (header included, padding not), u16 type, payload, padding to 4

A nested attribute's payload is attributes; VETH_INFO_PEER's is an ifinfomsg followed by the
peer's attributes.  A request with NLM_F_ACK is answered by NLMSG_ERROR with error 0, a
failed one by NLMSG_ERROR with -errno (then the request's header); a dump (NLM_F_DUMP) by
messages flagged NLM_F_MULTI, possibly over several datagrams, ended by NLMSG_DONE.

Import cost matters (every bridge `run` forks a child that imports this): the standard
library's `os`, `struct`, `errno` and `_socket` only (`socket` itself costs ~2 ms of imports).
"""

from __future__ import annotations

import _socket
import errno
import os
import struct

AF_NETLINK = 16
NETLINK_ROUTE = 0
NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10

NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4

NLM_F_REQUEST = 0x01
NLM_F_MULTI = 0x02
NLM_F_ACK = 0x04
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400

NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF

RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_NEWROUTE = 24

AF_UNSPEC = 0
AF_INET = 2
AF_INET6 = 10

IFF_UP = 0x1

IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_MASTER = 10
IFLA_LINKINFO = 18
IFLA_NET_NS_FD = 28
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
VETH_INFO_PEER = 1

IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_BROADCAST = 4
IFA_FLAGS = 8
IFA_F_NODAD = 0x02

RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3
RT_SCOPE_UNIVERSE = 0
RTN_UNICAST = 1

_SOCK_RAW = 3
_SOCK_CLOEXEC = 0o2000000
_MSG_TRUNC = 0x20
#: a dump's datagram is at most 32 KiB (the kernel's netlink_dump); twice that, for safety
_RECV_SIZE = 1 << 16
#: times a dump the kernel flags as inconsistent (NLM_F_DUMP_INTR) is started again
_DUMP_TRIES = 5

_NLMSGHDR = struct.Struct("=IHHII")
_RTATTR = struct.Struct("=HH")
_IFINFOMSG = struct.Struct("=BxHiII")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_U32 = struct.Struct("=I")
_I32 = struct.Struct("=i")


class NetlinkError(OSError):
    """The kernel refused a request: NLMSG_ERROR with a negative errno (kept as `errno`)."""


class Message:
    """One netlink message of a reply: its header fields and its body (after the header)."""

    __slots__ = ("body", "flags", "seq", "type")

    def __init__(self, type: int, flags: int, seq: int, body: bytes) -> None:
        self.type = type
        self.flags = flags
        self.seq = seq
        self.body = body

    def __repr__(self) -> str:
        return f"Message(type={self.type}, flags={self.flags:#x}, seq={self.seq}, {self.body!r})"


class Link:
    """An interface as RTM_NEWLINK describes it (the parts pypod reads)."""

    __slots__ = ("flags", "index", "master", "mtu", "name")

    def __init__(self, index: int, name: str | None, master: int, mtu: int, flags: int) -> None:
        self.index = index
        self.name = name
        self.master = master
        self.mtu = mtu
        self.flags = flags

    def __repr__(self) -> str:
        return f"Link(index={self.index}, name={self.name!r}, master={self.master})"


# -- packing ----------------------------------------------------------------------------------


def _pad(n: int) -> int:
    return (n + 3) & ~3


def attr(type: int, payload: bytes) -> bytes:
    """An rtattr: header, payload, zero padding to 4 bytes."""
    n = 4 + len(payload)
    return _RTATTR.pack(n, type) + payload + b"\0" * (_pad(n) - n)


def attr_u32(type: int, value: int) -> bytes:
    return attr(type, _U32.pack(value))


def attr_str(type: int, value: str) -> bytes:
    """A NUL-terminated string attribute (IFLA_IFNAME, IFLA_INFO_KIND...)."""
    return attr(type, value.encode() + b"\0")


def nest(type: int, *attrs: bytes) -> bytes:
    """A nested attribute holding `attrs` (flagged NLA_F_NESTED, as iproute2 does)."""
    return attr(type | NLA_F_NESTED, b"".join(attrs))


def nlmsg(type: int, flags: int, seq: int, body: bytes) -> bytes:
    """A whole message: nlmsghdr (port id 0: the kernel's) and `body`."""
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), type, flags, seq, 0) + body


def ifinfomsg(index: int = 0, flags: int = 0, change: int = 0, family: int = AF_UNSPEC) -> bytes:
    """struct ifinfomsg: family, pad, type (ARPHRD, 0), index, flags, change mask."""
    return _IFINFOMSG.pack(family, 0, index, flags, change)


def ifaddrmsg(family: int, prefixlen: int, flags: int, scope: int, index: int) -> bytes:
    return _IFADDRMSG.pack(family, prefixlen, flags, scope, index)


def rtmsg(
    family: int,
    dst_len: int,
    *,
    table: int = RT_TABLE_MAIN,
    protocol: int = RTPROT_BOOT,
    scope: int = RT_SCOPE_UNIVERSE,
    type: int = RTN_UNICAST,
) -> bytes:
    """struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags."""
    return _RTMSG.pack(family, dst_len, 0, 0, table, protocol, scope, type, 0)


def mac_bytes(mac: str) -> bytes:
    """ "02:42:ac:11:00:02" -> its 6 bytes."""
    raw = bytes.fromhex(mac.replace(":", ""))
    if len(raw) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    return raw


# -- the requests pypod makes (bodies; the socket adds the header) -----------------------------


def link_by_name(name: str) -> bytes:
    """RTM_GETLINK / RTM_DELLINK body naming interface `name`."""
    return ifinfomsg() + attr_str(IFLA_IFNAME, name)


def new_bridge(name: str, mtu: int = 0) -> bytes:
    """RTM_NEWLINK body: bridge `name`, up, with `mtu` when not 0."""
    attrs = [attr_str(IFLA_IFNAME, name)]
    if mtu:
        attrs.append(attr_u32(IFLA_MTU, mtu))
    attrs.append(nest(IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, "bridge")))
    return ifinfomsg(flags=IFF_UP, change=IFF_UP) + b"".join(attrs)


def set_link_up(index: int, mtu: int = 0) -> bytes:
    """RTM_NEWLINK body: interface `index` up (and `mtu` when not 0)."""
    body = ifinfomsg(index=index, flags=IFF_UP, change=IFF_UP)
    return body + attr_u32(IFLA_MTU, mtu) if mtu else body


def new_veth(
    name: str, peer_name: str, peer_netns_fd: int, master: int, mtu: int = 0, peer_mac: str = ""
) -> bytes:
    """RTM_NEWLINK body: veth `name` (up, enslaved to `master` when not 0) whose peer
    `peer_name` is created in the network namespace open as `peer_netns_fd`."""
    peer = [attr_str(IFLA_IFNAME, peer_name), attr_u32(IFLA_NET_NS_FD, peer_netns_fd)]
    if peer_mac:
        peer.append(attr(IFLA_ADDRESS, mac_bytes(peer_mac)))
    if mtu:
        peer.append(attr_u32(IFLA_MTU, mtu))
    attrs = [attr_str(IFLA_IFNAME, name)]
    if master:
        attrs.append(attr_u32(IFLA_MASTER, master))
    if mtu:
        attrs.append(attr_u32(IFLA_MTU, mtu))
    info = nest(
        IFLA_LINKINFO,
        attr_str(IFLA_INFO_KIND, "veth"),
        nest(IFLA_INFO_DATA, nest(VETH_INFO_PEER, ifinfomsg(), *peer)),
    )
    return ifinfomsg(flags=IFF_UP, change=IFF_UP) + b"".join(attrs) + info


def new_address(
    family: int, local: bytes, prefixlen: int, index: int, broadcast: bytes | None = None
) -> bytes:
    """RTM_NEWADDR body: address `local`/`prefixlen` (packed, 4 or 16 bytes) on `index`.

    With `broadcast` (IPv4), IFA_BROADCAST; without, IFA_F_NODAD (no duplicate address
    detection: the address is usable at once, as netavark sets for IPv6)."""
    flags = 0 if broadcast is not None else IFA_F_NODAD
    body = ifaddrmsg(family, prefixlen, flags, RT_SCOPE_UNIVERSE, index)
    body += attr(IFA_LOCAL, local) + attr(IFA_ADDRESS, local)
    if broadcast is not None:
        return body + attr(IFA_BROADCAST, broadcast)
    return body + attr_u32(IFA_FLAGS, IFA_F_NODAD)


def new_route(
    family: int, gateway: bytes, oif: int, dst: bytes | None = None, dst_len: int = 0
) -> bytes:
    """RTM_NEWROUTE body: a unicast route in the main table to `dst`/`dst_len` (the default
    route without `dst`) via `gateway` (packed) out of interface `oif`."""
    body = rtmsg(family, dst_len)
    if dst is not None:
        body += attr(RTA_DST, dst)
    return body + attr(RTA_GATEWAY, gateway) + attr_u32(RTA_OIF, oif)


# -- parsing ----------------------------------------------------------------------------------


def parse_messages(data: bytes) -> list[Message]:
    """The messages of one datagram; a truncated or malformed one raises ValueError."""
    out = []
    offset, end = 0, len(data)
    while offset + _NLMSGHDR.size <= end:
        length, type, flags, seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > end:
            raise ValueError(f"malformed netlink message: length {length} at offset {offset}")
        out.append(Message(type, flags, seq, data[offset + _NLMSGHDR.size : offset + length]))
        offset += _pad(length)
    return out


def parse_attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """Attributes from `offset` on, by type (flags masked off); the last of a type wins."""
    out = {}
    end = len(data)
    while offset + 4 <= end:
        length, type = _RTATTR.unpack_from(data, offset)
        if length < 4 or offset + length > end:
            break
        out[type & NLA_TYPE_MASK] = data[offset + 4 : offset + length]
        offset += _pad(length)
    return out


def attr_int(attrs: dict[int, bytes], type: int, default: int = 0) -> int:
    value = attrs.get(type)
    if value is None or len(value) < 4:
        return default
    return int(_U32.unpack_from(value)[0])


def attr_text(attrs: dict[int, bytes], type: int) -> str | None:
    value = attrs.get(type)
    return None if value is None else value.split(b"\0", 1)[0].decode(errors="replace")


def parse_link(body: bytes) -> Link:
    """An RTM_NEWLINK message's body."""
    _family, _type, index, flags, _change = _IFINFOMSG.unpack_from(body)
    attrs = parse_attrs(body, _IFINFOMSG.size)
    return Link(
        index,
        attr_text(attrs, IFLA_IFNAME),
        attr_int(attrs, IFLA_MASTER),
        attr_int(attrs, IFLA_MTU),
        flags,
    )


def error_code(body: bytes) -> int:
    """An NLMSG_ERROR's errno: 0 for an acknowledgement, else positive."""
    if len(body) < 4:
        raise ValueError("malformed netlink error message: shorter than its error code")
    return -int(_I32.unpack_from(body)[0])


def netlink_error(code: int) -> NetlinkError:
    return NetlinkError(code, os.strerror(code))


# -- the socket -------------------------------------------------------------------------------


class NetlinkSocket:
    """A netlink socket of `protocol` in the calling thread's network namespace (as it was when
    the socket was made), bound to a port id of the kernel's choosing, no multicast groups."""

    def __init__(self, protocol: int = NETLINK_ROUTE) -> None:
        self._sock = _socket.socket(AF_NETLINK, _SOCK_RAW | _SOCK_CLOEXEC, protocol)
        try:
            self._sock.bind((0, 0))
            try:  # errors without a copy of the request (the kernel's default echoes it)
                self._sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
            except OSError:
                pass
        except BaseException:
            self._sock.close()
            raise
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> NetlinkSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fileno(self) -> int:
        return int(self._sock.fileno())

    def _send(self, type: int, flags: int, body: bytes) -> int:
        self._seq = seq = self._seq % 0x7FFFFFFF + 1
        self._sock.sendto(nlmsg(type, flags, seq, body), (0, 0))
        return seq

    def _receive(self) -> list[Message]:
        data, _anc, msg_flags, _addr = self._sock.recvmsg(_RECV_SIZE)
        if msg_flags & _MSG_TRUNC:
            raise ValueError(f"netlink reply larger than {_RECV_SIZE} bytes was truncated")
        return parse_messages(data)

    def request(self, type: int, flags: int, body: bytes) -> list[Message]:
        """Send a request (NLM_F_REQUEST is added) and return the replies before its end.

        The end: the acknowledgement with NLM_F_ACK, NLMSG_DONE with NLM_F_DUMP, otherwise
        the first reply not flagged NLM_F_MULTI.  NLMSG_ERROR with an errno raises
        `NetlinkError`; so does a dump that ends with one (in NLMSG_DONE)."""
        flags |= NLM_F_REQUEST
        seq = self._send(type, flags, body)
        replies: list[Message] = []
        while True:
            for m in self._receive():
                if m.seq != seq:
                    continue  # the late answer of an earlier request
                if m.type == NLMSG_ERROR:
                    code = error_code(m.body)
                    if code:
                        raise netlink_error(code)
                    return replies
                if m.type == NLMSG_DONE:
                    code = error_code(m.body) if len(m.body) >= 4 else 0
                    if code > 0:
                        raise netlink_error(code)
                    return replies
                if m.type in (NLMSG_NOOP, NLMSG_OVERRUN):
                    continue
                replies.append(m)
                if not (flags & NLM_F_ACK or m.flags & NLM_F_MULTI):
                    return replies

    def dump(self, type: int, body: bytes) -> list[Message]:
        """A whole dump (NLM_F_DUMP), started again when the kernel flags it inconsistent."""
        for _ in range(_DUMP_TRIES - 1):
            replies = self.request(type, NLM_F_DUMP, body)
            if not any(m.flags & NLM_F_DUMP_INTR for m in replies):
                return replies
        return self.request(type, NLM_F_DUMP, body)


# -- the requests, over a socket ----------------------------------------------------------------


def get_link(sock: NetlinkSocket, name: str) -> Link | None:
    """Interface `name`, None when there is none (ENODEV)."""
    try:
        replies = sock.request(RTM_GETLINK, 0, link_by_name(name))
    except NetlinkError as e:
        if e.errno == errno.ENODEV:
            return None
        raise
    for m in replies:
        if m.type == RTM_NEWLINK:
            return parse_link(m.body)
    return None


def dump_links(sock: NetlinkSocket) -> list[Link]:
    """Every interface of the socket's network namespace."""
    return [
        parse_link(m.body) for m in sock.dump(RTM_GETLINK, ifinfomsg()) if m.type == RTM_NEWLINK
    ]
