"""Bridges and veth pairs through rtnetlink (`linux/rtnetlink.py`, no `ip` subprocess).

What netavark's bridge driver does: the network's bridge is created when missing, with the
gateway address of each subnet, up, with the network's MTU; each container gets a veth pair
whose host end (`veth<random>`) is attached to the bridge and whose peer is created directly in
the container's network namespace under its final name (`eth0`, `eth1`, ...), with its MAC
address and MTU; inside, the peer gets its addresses and, on the first network, the default
route through the gateway.

Import cost: the netlink client is pypod's own (`pypod.linux.rtnetlink`, standard library
only, well under 1 ms to import); pyroute2 cost ~40 ms in each of setup and teardown.

A socket belongs to the network namespace it was created in: `Netlink(netns=PATH)` creates
its socket after joining PATH on the calling thread only (`setns`), then returns.
"""

from __future__ import annotations

import errno
import os

from pypod.errors import InvalidArgument, PypodError, from_oserror
from pypod.linux import rtnetlink as rt
from pypod.linux.netns import call_in
from pypod.network.addr import ip_address, ip_interface
from pypod.stdlite import suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

CLONE_NEWNET = 0x40000000
IFF_UP = rt.IFF_UP
IFA_F_NODAD = rt.IFA_F_NODAD
RT_TABLE_MAIN = rt.RT_TABLE_MAIN
RTPROT_BOOT = rt.RTPROT_BOOT
RTN_UNICAST = rt.RTN_UNICAST
RT_SCOPE_UNIVERSE = rt.RT_SCOPE_UNIVERSE
_AF_INET, _AF_INET6, _IPPROTO_UDP = 2, 10, 17


class Netlink:
    """An rtnetlink socket in the current network namespace or in the one at `netns`."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        try:
            if netns is None:
                self.sock = rt.NetlinkSocket()
            else:
                self.sock = call_in(netns, rt.NetlinkSocket)
        except OSError as e:
            raise from_oserror(f"open a netlink socket{self._where()}", e) from e

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _where(self) -> str:
        return f" in network namespace {self.netns}" if self.netns else ""

    # -- requests ---------------------------------------------------------------------------

    def _request(self, msg_type: int, flags: int, body: bytes, what: str) -> list[rt.Message]:
        try:
            return self.sock.request(msg_type, rt.NLM_F_ACK | flags, body)
        except OSError as e:
            raise from_oserror(f"{what}{self._where()}", e) from None

    # -- links ------------------------------------------------------------------------------

    def link_index(self, name: str) -> int | None:
        """The index of interface `name`, None when there is none."""

        try:
            link = rt.get_link(self.sock, name)
        except OSError as e:
            raise from_oserror(f"look up interface {name}", e) from None
        return None if link is None else link.index

    def links(self) -> list[tuple[int, str, int]]:
        """Every interface as (index, name, master index or 0)."""

        try:
            found = rt.dump_links(self.sock)
        except OSError as e:
            raise from_oserror("list interfaces", e) from None
        return [(link.index, link.name, link.master) for link in found if link.name is not None]

    def create_bridge(self, name: str, mtu: int = 0) -> int:
        """Create bridge `name` (up, `mtu` when not 0); its index (also when it existed)."""

        try:
            self._request(
                rt.RTM_NEWLINK,
                rt.NLM_F_CREATE | rt.NLM_F_EXCL,
                rt.new_bridge(name, mtu),
                f"create bridge {name}",
            )
        except PypodError as e:
            if e.errno != errno.EEXIST:
                raise
        index = self.link_index(name)
        if index is None:
            raise PypodError(f"bridge {name} vanished just after it was created; try again")
        return index

    def set_up(self, index: int, mtu: int = 0) -> None:
        self._request(rt.RTM_NEWLINK, 0, rt.set_link_up(index, mtu), f"bring interface {index} up")

    def create_veth(
        self, host_name: str, peer_name: str, peer_netns: str, master: int, mtu: int, mac: str
    ) -> None:
        """veth `host_name` (up, in `master`) with peer `peer_name` created in `peer_netns`."""

        try:
            fd = os.open(peer_netns, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise from_oserror(f"open network namespace {peer_netns}", e) from e
        try:
            try:
                body = rt.new_veth(host_name, peer_name, fd, master, mtu, mac)
            except ValueError as e:
                raise InvalidArgument(
                    f"create veth pair {host_name} / {peer_name}: {e}; "
                    "give a MAC address as six hex pairs separated by colons"
                ) from None
            self._request(
                rt.RTM_NEWLINK,
                rt.NLM_F_CREATE | rt.NLM_F_EXCL,
                body,
                f"create veth pair {host_name} / {peer_name} (in {peer_netns})",
            )
        finally:
            os.close(fd)

    def delete_link(self, name: str) -> bool:
        """Delete interface `name`; False when there is none."""

        try:
            self._request(rt.RTM_DELLINK, 0, rt.link_by_name(name), f"delete interface {name}")
        except PypodError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                return False
            raise
        return True

    # -- addresses and routes ---------------------------------------------------------------

    def add_address(self, index: int, ipnet: str) -> None:
        """Add `ipnet` ("10.89.0.2/24") to interface `index`; no error when it is there."""

        iface = ip_interface(ipnet)
        prefix = iface.network.prefixlen
        broadcast = None
        if iface.version == 4 and prefix < 31:
            broadcast = iface.network.broadcast_address.packed
        body = rt.new_address(
            _AF_INET if iface.version == 4 else _AF_INET6, iface.ip.packed, prefix, index, broadcast
        )
        try:
            self._request(
                rt.RTM_NEWADDR,
                rt.NLM_F_CREATE | rt.NLM_F_EXCL,
                body,
                f"add address {ipnet} to {index}",
            )
        except PypodError as e:
            if e.errno != errno.EEXIST:
                raise

    def add_default_route(self, gateway: str, index: int) -> None:
        """A default route via `gateway` on `index`, unless there is a default route already."""
        gw = ip_address(gateway)
        body = rt.new_route(_AF_INET if gw.version == 4 else _AF_INET6, gw.packed, index)
        try:
            self._request(
                rt.RTM_NEWROUTE,
                rt.NLM_F_CREATE | rt.NLM_F_EXCL,
                body,
                f"add default route via {gateway}",
            )
        except PypodError as e:
            if e.errno != errno.EEXIST:  # one already (`network connect`): it stays
                raise


def random_veth_name() -> str:
    return "veth" + os.urandom(4).hex()


def random_mac() -> str:
    """A random unicast, locally administered MAC address (as the kernel picks for veths)."""
    b = bytearray(os.urandom(6))
    b[0] = (b[0] & 0xFE) | 0x02
    return ":".join(f"{x:02x}" for x in b)


def write_sysctl(key: str, value: str) -> None:
    """Set /proc/sys/`key` ("net/ipv4/ip_forward") to `value` unless it already is."""
    path = "/proc/sys/" + key
    try:
        with open(path) as f:
            if f.read().strip() == value:
                return
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise from_oserror(f"set sysctl {key.replace('/', '.')}={value}", e) from e


def set_hairpin(port: str) -> None:
    """Let the bridge send frames back out of `port` (netavark does): a container reaching its
    own published port through the host is DNATed back to itself on the same bridge port."""
    path = f"/sys/class/net/{port}/brport/hairpin_mode"
    try:
        with open(path, "w") as f:
            f.write("1")
    except OSError as e:
        raise from_oserror(f"enable hairpin mode on bridge port {port}", e) from e


def in_use_by_others(nl: Netlink, bridge: str) -> bool | None:
    """Whether any interface is attached to `bridge`; None when there is no such bridge."""
    index = nl.link_index(bridge)
    if index is None:
        return None
    return any(master == index for _, _, master in nl.links())


def delete_bridge_if_unused(bridge: str) -> bool:
    """Delete `bridge` when no interface is attached to it (netavark does); True if deleted."""
    with Netlink() as nl:
        if in_use_by_others(nl, bridge) is not False:
            return False
        with suppress(PypodError):
            return nl.delete_link(bridge)
    return False


def delete_udp_conntrack(ips: Sequence[str], host_ports: Sequence[int]) -> int:
    """Forget the UDP flows that were DNATed to `ips` through `host_ports` (netavark does).

    A UDP client keeps its conntrack entry (and so its NAT binding) while it keeps sending:
    after a container publishing a UDP port goes, the flows would still lead to its old
    address instead of the next container publishing that port.  The number of entries
    deleted.
    """
    if not ips or not host_ports:
        return 0
    from pypod.linux import ctnetlink as ct

    wanted = {ip_address(ip.split("/", 1)[0]) for ip in ips}
    deleted = 0
    for family, version in ((_AF_INET, 4), (_AF_INET6, 6)):
        targets = {ip.packed for ip in wanted if ip.version == version}
        if not targets:
            continue
        try:
            sock = ct.open_socket()
        except OSError as e:
            raise from_oserror("open a conntrack netlink socket", e) from None
        with sock:
            ports: list[int | None] = list(host_ports) if len(host_ports) <= 16 else [None]
            for port in ports:
                try:
                    flows = ct.flows(sock, family, _IPPROTO_UDP, port)
                except OSError as e:
                    raise from_oserror("list conntrack entries", e) from None
                for flow in flows:
                    orig, reply = flow.orig, flow.reply
                    if orig.proto != _IPPROTO_UDP or reply.saddr not in targets:
                        continue
                    if port is not None and orig.dport != port:
                        continue
                    try:
                        ct.delete(sock, family, orig)
                        deleted += 1
                    except OSError as e:
                        if e.errno != errno.ENOENT:
                            raise from_oserror("delete a conntrack entry", e) from None
    return deleted
