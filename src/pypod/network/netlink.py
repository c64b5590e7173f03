"""Bridges and veth pairs through rtnetlink (pyroute2's `IPRSocket`, no `ip` subprocess).

What netavark's bridge driver does: the network's bridge is created when missing, with the
gateway address of each subnet, up, with the network's MTU; each container gets a veth pair
whose host end (`veth<random>`) is attached to the bridge and whose peer is created directly in
the container's network namespace under its final name (`eth0`, `eth1`, ...), with its MAC
address and MTU; inside, the peer gets its addresses and, on the first network, the default
route through the gateway.

Import cost: `import pyroute2` (its `__init__` loads IPRoute, NDB, the CLI...) costs ~100 ms;
the rtnetlink socket and the message classes alone cost ~27 ms.  `_rtnl()` imports just those,
without running the package's `__init__` (it registers the bare package first, which Python's
import system then uses as the parent of the submodules), and without the `file` subprocess
pyroute2.config starts.  Consequence: in a process that used this module, `import pyroute2`
gives that bare package (no `pyroute2.IPRoute`); import pyroute2's submodules instead
(`from pyroute2.iproute.linux import IPRoute`), as every pypod module must.

A socket belongs to the network namespace it was created in: `Netlink(netns=PATH)` creates
its socket after joining PATH on the calling thread only (`setns`), then returns.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import sys
from collections.abc import Sequence
from types import ModuleType, SimpleNamespace, TracebackType
from typing import Any

from pypod.errors import PypodError, from_oserror

CLONE_NEWNET = 0x40000000
IFF_UP = 0x1
IFA_F_NODAD = 0x02
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3
RTN_UNICAST = 1
RT_SCOPE_UNIVERSE = 0


def _rtnl() -> Any:
    """pyroute2's rtnetlink pieces (see the module docstring for why not `import pyroute2`)."""
    if "pyroute2" not in sys.modules:
        import importlib.util

        spec = importlib.util.find_spec("pyroute2")
        if spec is None or spec.submodule_search_locations is None:
            raise PypodError("the Python package pyroute2 is not installed: reinstall pypod")
        package = ModuleType("pyroute2")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        package.__file__ = spec.origin
        sys.modules["pyroute2"] = package
    if "pyroute2.config" not in sys.modules:
        _import_config()
    from pyroute2 import netlink  # type: ignore[import-untyped]
    from pyroute2.netlink import exceptions, rtnl  # type: ignore[import-untyped]
    from pyroute2.netlink.rtnl import (  # type: ignore[import-untyped]
        ifaddrmsg,
        ifinfmsg,
        iprsocket,
        rtmsg,
    )

    return _Rtnl(
        IPRSocket=iprsocket.IPRSocket,
        ifinfmsg=ifinfmsg.ifinfmsg,
        ifaddrmsg=ifaddrmsg.ifaddrmsg,
        rtmsg=rtmsg.rtmsg,
        NetlinkError=exceptions.NetlinkError,
        NLM_F_REQUEST=netlink.NLM_F_REQUEST,
        NLM_F_ACK=netlink.NLM_F_ACK,
        NLM_F_DUMP=netlink.NLM_F_DUMP,
        NLM_F_CREATE=netlink.NLM_F_CREATE,
        NLM_F_EXCL=netlink.NLM_F_EXCL,
        RTM_NEWLINK=rtnl.RTM_NEWLINK,
        RTM_GETLINK=rtnl.RTM_GETLINK,
        RTM_DELLINK=rtnl.RTM_DELLINK,
        RTM_NEWADDR=rtnl.RTM_NEWADDR,
        RTM_NEWROUTE=rtnl.RTM_NEWROUTE,
    )


def _import_config() -> None:
    """Import pyroute2.config without the `file` subprocess its `platform.architecture()`
    starts (~7 ms); the answer (used only by pyroute2.netns, which pypod does not use) is
    the interpreter's pointer size, as `platform` itself falls back to."""
    import platform
    import struct

    original = platform.architecture
    bits = f"{struct.calcsize('P') * 8}bit"
    platform.architecture = lambda *a, **k: (bits, "ELF")
    try:
        import pyroute2.config  # type: ignore[import-untyped]  # noqa: F401
    finally:
        platform.architecture = original


class _Rtnl(SimpleNamespace):
    """The pyroute2 classes and constants this module uses."""


class Netlink:
    """An rtnetlink socket in the current network namespace or in the one at `netns`."""

    def __init__(self, netns: str | None = None) -> None:
        self.r = r = _rtnl()
        self.netns = netns
        if netns is None:
            self.sock: Any = r.IPRSocket()
        else:
            self.sock = _in_netns(netns, r.IPRSocket)
        try:
            self.sock.bind(groups=0)
        except BaseException:
            self.sock.close()
            raise

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- requests ---------------------------------------------------------------------------

    def _request(self, msg: Any, msg_type: int, flags: int, what: str) -> list[Any]:
        try:
            return list(
                self.sock.nlm_request(
                    msg, msg_type, self.r.NLM_F_REQUEST | self.r.NLM_F_ACK | flags
                )
            )
        except self.r.NetlinkError as e:
            where = f" in network namespace {self.netns}" if self.netns else ""
            raise from_oserror(f"{what}{where}", OSError(e.code, os.strerror(e.code))) from None

    def _dump(self, msg: Any, msg_type: int, what: str) -> list[Any]:
        try:
            return list(
                self.sock.nlm_request(msg, msg_type, self.r.NLM_F_REQUEST | self.r.NLM_F_DUMP)
            )
        except self.r.NetlinkError as e:
            raise from_oserror(what, OSError(e.code, os.strerror(e.code))) from None

    # -- links ------------------------------------------------------------------------------

    def link_index(self, name: str) -> int | None:
        """The index of interface `name`, None when there is none."""

        msg = self.r.ifinfmsg()
        msg["attrs"] = [("IFLA_IFNAME", name)]
        try:
            replies = list(self.sock.nlm_request(msg, self.r.RTM_GETLINK, self.r.NLM_F_REQUEST))
        except self.r.NetlinkError as e:
            if e.code == errno.ENODEV:
                return None
            err = OSError(e.code, os.strerror(e.code))
            raise from_oserror(f"look up interface {name}", err) from None
        return int(replies[0]["index"]) if replies else None

    def links(self) -> list[tuple[int, str, int]]:
        """Every interface as (index, name, master index or 0)."""

        out = []
        for m in self._dump(self.r.ifinfmsg(), self.r.RTM_GETLINK, "list interfaces"):
            name = m.get_attr("IFLA_IFNAME")
            if name is not None:
                out.append((int(m["index"]), str(name), int(m.get_attr("IFLA_MASTER") or 0)))
        return out

    def create_bridge(self, name: str, mtu: int = 0) -> int:
        """Create bridge `name` (up, `mtu` when not 0); its index (also when it existed)."""

        msg = self.r.ifinfmsg()
        msg["flags"] = IFF_UP
        msg["change"] = IFF_UP
        attrs: list[Any] = [("IFLA_IFNAME", name)]
        if mtu:
            attrs.append(("IFLA_MTU", mtu))
        attrs.append(("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "bridge")]}))
        msg["attrs"] = attrs
        try:
            self._request(
                msg,
                self.r.RTM_NEWLINK,
                self.r.NLM_F_CREATE | self.r.NLM_F_EXCL,
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
        msg = self.r.ifinfmsg()
        msg["index"] = index
        msg["flags"] = IFF_UP
        msg["change"] = IFF_UP
        if mtu:
            msg["attrs"] = [("IFLA_MTU", mtu)]
        self._request(msg, self.r.RTM_NEWLINK, 0, f"bring interface {index} up")

    def create_veth(
        self, host_name: str, peer_name: str, peer_netns: str, master: int, mtu: int, mac: str
    ) -> None:
        """veth `host_name` (up, in `master`) with peer `peer_name` created in `peer_netns`."""

        try:
            fd = os.open(peer_netns, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise from_oserror(f"open network namespace {peer_netns}", e) from e
        try:
            peer: list[Any] = [("IFLA_IFNAME", peer_name), ("IFLA_NET_NS_FD", fd)]
            if mac:
                peer.append(("IFLA_ADDRESS", mac))
            if mtu:
                peer.append(("IFLA_MTU", mtu))
            attrs: list[Any] = [("IFLA_IFNAME", host_name), ("IFLA_MASTER", master)]
            if mtu:
                attrs.append(("IFLA_MTU", mtu))
            data = {"attrs": [("VETH_INFO_PEER", {"attrs": peer})]}
            attrs.append(
                ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "veth"), ("IFLA_INFO_DATA", data)]})
            )
            msg = self.r.ifinfmsg()
            msg["flags"] = IFF_UP
            msg["change"] = IFF_UP
            msg["attrs"] = attrs
            self._request(
                msg,
                self.r.RTM_NEWLINK,
                self.r.NLM_F_CREATE | self.r.NLM_F_EXCL,
                f"create veth pair {host_name} / {peer_name} (in {peer_netns})",
            )
        finally:
            os.close(fd)

    def delete_link(self, name: str) -> bool:
        """Delete interface `name`; False when there is none."""

        msg = self.r.ifinfmsg()
        msg["attrs"] = [("IFLA_IFNAME", name)]
        try:
            self._request(msg, self.r.RTM_DELLINK, 0, f"delete interface {name}")
        except PypodError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                return False
            raise
        return True

    # -- addresses and routes ---------------------------------------------------------------

    def add_address(self, index: int, ipnet: str) -> None:
        """Add `ipnet` ("10.89.0.2/24") to interface `index`; no error when it is there."""

        iface = ipaddress.ip_interface(ipnet)
        msg = self.r.ifaddrmsg()
        msg["family"] = 2 if iface.version == 4 else 10
        msg["prefixlen"] = iface.network.prefixlen
        msg["index"] = index
        attrs: list[Any] = [("IFA_LOCAL", str(iface.ip)), ("IFA_ADDRESS", str(iface.ip))]
        if iface.version == 4 and iface.network.prefixlen < 31:
            attrs.append(("IFA_BROADCAST", str(iface.network.broadcast_address)))
        else:
            msg["flags"] = IFA_F_NODAD
            attrs.append(("IFA_FLAGS", IFA_F_NODAD))
        msg["attrs"] = attrs
        try:
            self._request(
                msg,
                self.r.RTM_NEWADDR,
                self.r.NLM_F_CREATE | self.r.NLM_F_EXCL,
                f"add address {ipnet} to {index}",
            )
        except PypodError as e:
            if e.errno != errno.EEXIST:
                raise

    def add_default_route(self, gateway: str, index: int) -> None:
        """A default route via `gateway` on `index`, unless there is a default route already."""
        gw = ipaddress.ip_address(gateway)
        msg = self.r.rtmsg()
        msg["family"] = 2 if gw.version == 4 else 10
        msg["dst_len"] = 0
        msg["table"] = RT_TABLE_MAIN
        msg["proto"] = RTPROT_BOOT
        msg["scope"] = RT_SCOPE_UNIVERSE
        msg["type"] = RTN_UNICAST
        msg["attrs"] = [("RTA_GATEWAY", str(gw)), ("RTA_OIF", index)]
        try:
            self._request(
                msg,
                self.r.RTM_NEWROUTE,
                self.r.NLM_F_CREATE | self.r.NLM_F_EXCL,
                f"add default route via {gateway}",
            )
        except PypodError as e:
            if e.errno != errno.EEXIST:  # one already (`network connect`): it stays
                raise


def _in_netns(path: str, make: Any) -> Any:
    """`make()` called with the calling thread in the network namespace at `path`."""
    from pypod.linux import syscalls as sc

    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise from_oserror(f"open network namespace {path}", e) from e
    try:
        original = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            try:
                sc.setns(target, CLONE_NEWNET)
            except OSError as e:
                raise from_oserror(f"join network namespace {path}", e) from e
            try:
                return make()
            finally:
                sc.setns(original, CLONE_NEWNET)
        finally:
            os.close(original)
    finally:
        os.close(target)


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
        with contextlib.suppress(PypodError):
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
    _rtnl()
    from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]
    from pyroute2.netlink.nfnetlink import nfctsocket  # type: ignore[import-untyped]

    wanted = {ipaddress.ip_address(ip.split("/", 1)[0]) for ip in ips}
    deleted = 0
    for family, version in ((socket.AF_INET, 4), (socket.AF_INET6, 6)):
        targets = {str(ip) for ip in wanted if ip.version == version}
        if not targets:
            continue
        sock = nfctsocket.NFCTSocket(nfgen_family=family)
        try:
            sock.bind()
            ports: list[int | None] = list(host_ports) if len(host_ports) <= 16 else [None]
            for port in ports:
                flt = nfctsocket.NFCTAttrTuple(family=family, proto=socket.IPPROTO_UDP, dport=port)
                for entry in sock.dump(tuple_orig=flt):
                    orig = nfctsocket.NFCTAttrTuple.from_netlink(
                        family, entry.get_attr("CTA_TUPLE_ORIG")
                    )
                    reply = nfctsocket.NFCTAttrTuple.from_netlink(
                        family, entry.get_attr("CTA_TUPLE_REPLY")
                    )
                    if orig.proto != socket.IPPROTO_UDP or reply.saddr not in targets:
                        continue
                    if port is not None and orig.dport != port:
                        continue
                    try:
                        sock.entry("del", tuple_orig=orig)
                        deleted += 1
                    except NetlinkError as e:
                        if e.code != errno.ENOENT:
                            raise from_oserror(
                                "delete a conntrack entry", OSError(e.code, os.strerror(e.code))
                            ) from None
        finally:
            sock.close()
    return deleted
