"""Host-local IPAM: which container holds which address of a network (netavark's host-local).

The leases of one network are a JSON file `<runroot>/networks/ipam/<network>.json`, mapping a
container id to its lease (`{"name", "interface", "ips"}`), replaced atomically and only
changed under an exclusive `flock` on `<network>.lock` next to it, so two `pypod run` racing
for the same network never get the same address.  The same lock serialises the setting up and
tearing down of the network's bridge (see `setup.py`): a bridge is deleted when its last lease
goes, never while another container is being attached to it.

Addresses are handed out lowest-first after the gateway (or from the `--ip-range` start),
skipping the network and broadcast addresses and the gateway; a static `--ip` must lie in one
of the network's subnets and be free.
"""

from __future__ import annotations

import fcntl
import os

from pypod import jsoncodec
from pypod.atomic import write_atomic
from pypod.errors import InUse, InvalidArgument, NotSupported, from_oserror
from pypod.network import addr
from pypod.network.types import IfaceSubnet, Network, Subnet
from pypod.record import record
from pypod.stdlite import contextmanager, suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ipaddress
    from collections.abc import Iterator, Sequence
    from typing import Any

    IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
    IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@record
class Lease:
    """The addresses one container holds on one network."""

    name: str  #: the container's name (for `network inspect` and for humans)
    interface: str  #: "eth0"
    ips: tuple[str, ...]  #: plain addresses, one per subnet: ("10.89.0.2", "fd00::2")


def ipam_dir(runroot: str) -> str:
    return os.path.join(runroot, "networks", "ipam")


def _key(network: Network) -> str:
    """A network's file name: its name and ID (the state is host-wide, the configs per store:
    two stores may each have a network of one name)."""
    return f"{network.name}-{network.id[:12]}"


def lease_path(runroot: str, network: Network) -> str:
    return os.path.join(ipam_dir(runroot), f"{_key(network)}.json")


class Leases:
    """The leases of one network, read under its lock (see `locked`); changes are saved on exit."""

    def __init__(self, path: str, network: Network, leases: dict[str, Lease]) -> None:
        self.path = path
        self.network = network
        self.leases = leases
        self.changed = False

    def get(self, container_id: str) -> Lease | None:
        return self.leases.get(container_id)

    def allocate(
        self, container_id: str, name: str, interface: str, static_ips: Sequence[str] = ()
    ) -> tuple[IfaceSubnet, ...]:
        """An address in each subnet of the network for `container_id` (its lease if it has one)."""
        existing = self.leases.get(container_id)
        if existing is not None:
            return iface_subnets(self.network, existing.ips)
        subnets = [(s, _parse_subnet(self.network, s)) for s in self.network.subnets]
        if not subnets:
            raise NotSupported(
                f"network {self.network.name} has no subnet: networks without IPAM are not "
                "supported yet"
            )
        used = {addr.ip_address(ip) for lease in self.leases.values() for ip in lease.ips}
        chosen: dict[int, IPAddress] = {}
        for raw in static_ips:
            try:
                ip = addr.ip_address(raw)
            except ValueError as e:
                raise InvalidArgument(f"{raw!r} is not an IP address: {e}") from None
            for index, (subnet, net) in enumerate(subnets):
                if ip.version == net.version and ip in net:
                    if index in chosen:
                        raise InvalidArgument(
                            f"more than one static IP address given for subnet {subnet.subnet} "
                            f"of network {self.network.name}"
                        )
                    _check_static(self.network, subnet, net, ip)
                    if ip in used:
                        owner = next(cid for cid, lease in self.leases.items() if raw in lease.ips)
                        raise InUse(
                            f"IP address {ip} is already allocated (to container {owner[:12]}) "
                            f"on network {self.network.name}: choose another address with --ip"
                        )
                    chosen[index] = ip
                    break
            else:
                raise InvalidArgument(
                    f"requested static IP address {ip} is not in any subnet of network "
                    f"{self.network.name} "
                    f"({', '.join(s.subnet for s in self.network.subnets)})"
                )
        for index, (subnet, net) in enumerate(subnets):
            if index not in chosen:
                chosen[index] = _next_free(self.network, subnet, net, used)
                used.add(chosen[index])
        ips = tuple(str(chosen[i]) for i in range(len(subnets)))
        self.leases[container_id] = Lease(name=name, interface=interface, ips=ips)
        self.changed = True
        return iface_subnets(self.network, ips)

    def release(self, container_id: str) -> bool:
        """Drop the lease of `container_id`; False when it had none."""
        if self.leases.pop(container_id, None) is None:
            return False
        self.changed = True
        return True


@contextmanager
def locked(runroot: str, network: Network) -> Iterator[Leases]:
    """The leases of `network`, under its exclusive lock; saved (atomically) when changed."""
    directory = ipam_dir(runroot)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    lock = os.path.join(directory, f"{_key(network)}.lock")
    fd = _lock(lock)
    try:
        path = lease_path(runroot, network)
        leases = Leases(path, network, read_leases(path))
        yield leases
        if leases.changed:
            _save(leases)
        if not leases.leases:  # the network's last lease went: its lock file goes too
            with suppress(FileNotFoundError):
                os.unlink(lock)
    finally:
        os.close(fd)


def _lock(path: str) -> int:
    """`path` opened (made if need be) and locked exclusively.  The lock file of a network
    with no lease left is removed by its last holder, so a locker that got the file just
    before checks, once it holds the lock, that the name still leads to its file."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise from_oserror(f"open IPAM lock {path}", e) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            try:
                named = os.stat(path)
            except FileNotFoundError:
                named = None
        except BaseException:
            os.close(fd)
            raise
        if named is not None and (named.st_ino, named.st_dev) == (held.st_ino, held.st_dev):
            return fd
        os.close(fd)  # removed (or replaced) meanwhile: lock the file the name leads to now


def read_leases(path: str) -> dict[str, Lease]:
    """The leases saved at `path` (none when there is no file)."""
    try:
        with open(path, "rb") as f:
            data: Any = jsoncodec.loads(f.read())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise InvalidArgument(
            f"IPAM lease file {path} cannot be read: {e}; remove it after stopping the "
            "network's containers"
        ) from None
    out = {}
    for cid, lease in data.get("leases", {}).items():
        out[cid] = Lease(
            name=str(lease.get("name", "")),
            interface=str(lease.get("interface", "")),
            ips=tuple(str(ip) for ip in lease.get("ips", ())),
        )
    return out


def _save(leases: Leases) -> None:
    if not leases.leases:
        with suppress(FileNotFoundError):
            os.unlink(leases.path)
        return
    data = {
        "network": leases.network.name,
        "leases": {
            cid: {"name": lease.name, "interface": lease.interface, "ips": list(lease.ips)}
            for cid, lease in leases.leases.items()
        },
    }
    # No fsync: leases live on the run-time root (a tmpfs on a real host) and do not outlive
    # a reboot; atomic replacement is what matters.
    write_atomic(leases.path, jsoncodec.dumps(data, indent=1).encode(), mode=0o600, sync=False)


def iface_subnets(network: Network, ips: Sequence[str]) -> tuple[IfaceSubnet, ...]:
    """The `IfaceSubnet` records of addresses `ips` (one per subnet, in the network's order)."""
    out = []
    for ip_s in ips:
        ip = addr.ip_address(ip_s)
        for subnet in network.subnets:
            net = _parse_subnet(network, subnet)
            if ip.version == net.version and ip in net:
                out.append(IfaceSubnet(ipnet=f"{ip}/{net.prefixlen}", gateway=subnet.gateway))
                break
    return tuple(out)


def _parse_subnet(network: Network, subnet: Subnet) -> IPNetwork:
    try:
        return addr.ip_network(subnet.subnet, strict=False)
    except ValueError as e:
        raise InvalidArgument(
            f"network {network.name} has an invalid subnet {subnet.subnet!r}: {e}"
        ) from None


def _ipv6(n: int) -> IPAddress:
    import ipaddress

    return ipaddress.IPv6Address(n)


def _reserved(subnet: Subnet, net: IPNetwork) -> set[IPAddress]:
    out: set[IPAddress] = {net.network_address}
    if net.version == 4 and net.prefixlen < 31:
        out.add(net.broadcast_address)
    if subnet.gateway:
        out.add(addr.ip_address(subnet.gateway))
    return out


def _bounds(network: Network, subnet: Subnet, net: IPNetwork) -> tuple[int, int]:
    """First and last address (as integers) leases are taken from."""
    first = int(net.network_address) + 1
    last = int(net.broadcast_address) - (1 if net.version == 4 and net.prefixlen < 31 else 0)
    if subnet.lease_range is not None:
        lr = subnet.lease_range
        if lr.start_ip:
            first = max(first, int(addr.ip_address(lr.start_ip)))
        if lr.end_ip:
            last = min(last, int(addr.ip_address(lr.end_ip)))
    return first, last


def _check_static(network: Network, subnet: Subnet, net: IPNetwork, ip: IPAddress) -> None:
    if ip in _reserved(subnet, net):
        raise InvalidArgument(
            f"requested static IP address {ip} is the network, broadcast or gateway address "
            f"of subnet {subnet.subnet} of network {network.name}: choose another address"
        )


def _next_free(network: Network, subnet: Subnet, net: IPNetwork, used: set[IPAddress]) -> IPAddress:
    first, last = _bounds(network, subnet, net)
    reserved = _reserved(subnet, net)
    gateway = int(addr.ip_address(subnet.gateway)) if subnet.gateway else first - 1
    start = gateway + 1 if first <= gateway < last else first
    # From just after the gateway to the end, then from the start to the gateway.
    for lo, hi in ((start, last), (first, start - 1)):
        n = lo
        while n <= hi:
            ip = addr.ip_address(n) if net.version == 4 else _ipv6(n)
            if ip not in used and ip not in reserved:
                return ip
            n += 1
    raise InUse(
        f"no free IP address left in subnet {subnet.subnet} of network {network.name}: "
        "remove containers from it or use a larger subnet"
    )
