"""Network configurations: one JSON file per network, podman 4.3's (netavark's) rules.

`Networks` creates, finds, lists and removes networks under `<graphroot>/networks/`.  The
default network `pypod` (10.88.0.0/16, bridge `pypod0`) is built in and never written, as
podman's `podman` network; a `pypod.json` written by hand replaces it.  Creating validates
what podman validates (name, driver, options, subnets, gateways, lease ranges), picks a free
10.89.N.0/24 subnet (and a random fd00::/8 /64 one with `ipv6`) when none is given, skipping
subnets used by other configs and by the host's addresses and routes, and names the bridge
`pypod1`, `pypod2`, ... .  Writers hold `<graphroot>/networks/.lock`, so concurrent creates
never pick the same subnet, name or bridge.
"""

from __future__ import annotations

import fcntl
import os
import time

from pypod import jsoncodec
from pypod.atomic import write_atomic
from pypod.errors import AlreadyExists, InvalidArgument, NotFound, NotSupported
from pypod.log import get_logger
from pypod.network.types import DEFAULT_NETWORK, LeaseRange, Network, Subnet
from pypod.stdlite import contextmanager, suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ipaddress
    from collections.abc import Iterator, Mapping, Sequence
    from typing import Any

    IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
    IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
    _Request = tuple[IPNetwork, IPAddress | None, tuple[IPAddress, IPAddress] | None]

log = get_logger(__name__)


def _sha256_hex(data: bytes) -> str:
    import hashlib  # here: OpenSSL's start-up (~4 ms) is not on every bridged `run`'s path

    return hashlib.sha256(data).hexdigest()


DEFAULT_SUBNET = "10.88.0.0/16"
#: sha256 of DEFAULT_NETWORK ("pypod"), as podman names its default network (a test checks it)
DEFAULT_NETWORK_ID = "a9959b637c556a6cef36153efe1f7a7b9b07748f9b2140c390cda7734ce73ba9"
DEFAULT_INTERFACE = "pypod0"
#: bridges of new networks are this prefix and a number (podman: "podman1", "podman2", ...)
INTERFACE_PREFIX = "pypod"
#: podman's define.NameRegex, for network and bridge names
NAME_PATTERN = "[a-zA-Z0-9][a-zA-Z0-9_.-]*"
#: Linux's IFNAMSIZ less the terminating NUL
_MAX_IFNAME = 15
#: bridge options this backend understands (podman 4.3 also knows "vlan")
_BRIDGE_OPTIONS = ("mtu", "isolate")
_UNSUPPORTED_DRIVERS = ("macvlan", "ipvlan")


class NetworkNotFound(NotFound):
    """No network has this name or ID."""


class Networks:
    """The network configurations of one store (graphroot) and its run-time directory."""

    def __init__(self, graphroot: str, runroot: str) -> None:
        self.graphroot = graphroot
        self.runroot = runroot
        self.config_dir = os.path.join(graphroot, "networks")

    # --- reading ----------------------------------------------------------------------
    def _load(self) -> dict[str, Network]:
        """Every network by name: the built-in default and the config files."""
        found: dict[str, Network] = {}
        try:
            names = sorted(os.listdir(self.config_dir))
        except FileNotFoundError:
            names = []
        for fname in names:
            if fname.startswith(".") or not fname.endswith(".json"):
                continue
            path = os.path.join(self.config_dir, fname)
            try:
                with open(path, "rb") as f:
                    net = from_json(jsoncodec.loads(f.read()))
            except FileNotFoundError:  # removed meanwhile
                continue
            except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
                log.warning("ignoring network config %s: %s", path, e)
                continue
            if net.name != fname[: -len(".json")]:
                log.warning("ignoring network config %s: the name inside is %r", path, net.name)
                continue
            found[net.name] = net
        if DEFAULT_NETWORK not in found:
            found[DEFAULT_NETWORK] = default_network()
        return found

    def get(self, name_or_id: str) -> Network:
        """The network of this name, or the one whose ID starts with `name_or_id`."""
        return _find(self._load(), name_or_id)

    def list(self) -> list[Network]:
        """Every network: the default first, then by name."""
        nets = self._load()
        default = nets.pop(DEFAULT_NETWORK)
        return [default, *sorted(nets.values(), key=lambda n: n.name)]

    def exists(self, name_or_id: str) -> bool:
        try:
            self.get(name_or_id)
        except NotFound:
            return False
        return True

    # --- writing ----------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        os.makedirs(self.config_dir, mode=0o700, exist_ok=True)
        fd = os.open(
            os.path.join(self.config_dir, ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def create(
        self,
        name: str | None,
        *,
        driver: str = "bridge",
        subnets: Sequence[str] = (),
        gateways: Sequence[str] = (),
        ip_ranges: Sequence[str] = (),
        internal: bool = False,
        labels: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
        dns: bool = True,
        ipv6: bool = False,
        interface_name: str | None = None,
        ignore_existing: bool = False,
    ) -> Network:
        """Validate and store a new network (podman's `network create`); the stored network.

        `subnets`, `gateways` and `ip_ranges` pair up by position (a gateway or a range for
        the first subnets only).  With `ignore_existing`, a network of that name is returned
        as it is.
        """
        driver = driver or "bridge"
        if driver in _UNSUPPORTED_DRIVERS:
            raise NotSupported(f"'{driver}' is not supported yet: use the bridge driver")
        if driver != "bridge":
            raise InvalidArgument(f"unsupported driver {driver}: invalid argument")
        wanted = _subnet_requests(subnets, gateways, ip_ranges)
        with self._locked():
            nets = self._load()
            if name:
                if not _name_ok(name):
                    raise InvalidArgument(
                        f"network name {name} invalid: names must match {NAME_PATTERN}: "
                        "invalid argument"
                    )
                if name in nets:
                    if ignore_existing:
                        return nets[name]
                    raise AlreadyExists(f"network name {name} already used: network already exists")
            else:
                name = _free_device_name(nets)
                if not interface_name:
                    interface_name = name
            bridge = _bridge_name(nets, interface_name)
            opts = _validate_options(options or {})
            used = _used_subnets(nets)
            if not wanted:
                wanted.append((_free_ipv4_subnet(used), None, None))
            if ipv6:
                versions = {s.version for s, _, _ in wanted}
                if 4 not in versions:
                    wanted.append((_free_ipv4_subnet(used), None, None))
                if 6 not in versions:
                    wanted.append((_free_ipv6_subnet(used), None, None))
            add_gateway = not internal or dns
            net_subnets = tuple(
                _validate_subnet(s, gw, lr, add_gateway, used) for s, gw, lr in wanted
            )
            net = Network(
                name=name,
                id=_new_id(nets),
                driver=driver,
                network_interface=bridge,
                created=rfc3339_nano(time.time_ns()),
                subnets=net_subnets,
                ipv6_enabled=ipv6 or any(":" in s.subnet for s in net_subnets),
                internal=internal,
                dns_enabled=dns,
                labels=dict(labels or {}),
                options=opts,
                ipam_options={"driver": "host-local"},
            )
            import json  # here: `network create` only (an indent needs the json package)

            data = json.dumps(to_json(net), indent=5).encode() + b"\n"
            write_atomic(os.path.join(self.config_dir, f"{name}.json"), data, mode=0o644)
            return net

    def remove(self, name_or_id: str) -> Network:
        """Delete a network's config (whether containers use it is the caller's check)."""
        with self._locked():
            net = _find(self._load(), name_or_id)
            if net.name == DEFAULT_NETWORK:
                raise InvalidArgument(f"default network {DEFAULT_NETWORK} cannot be removed")
            with suppress(FileNotFoundError):
                os.unlink(os.path.join(self.config_dir, f"{net.name}.json"))
            return net


# --- the records as podman's JSON ---------------------------------------------------------
def to_json(net: Network) -> dict[str, Any]:
    """A network as podman's JSON (`network inspect`, the config file): empty fields left
    out as Go's `omitempty` does."""
    out: dict[str, Any] = {"name": net.name, "id": net.id, "driver": net.driver}
    if net.network_interface:
        out["network_interface"] = net.network_interface
    out["created"] = net.created
    if net.subnets:
        subnets = []
        for s in net.subnets:
            sub: dict[str, Any] = {"subnet": s.subnet}
            if s.gateway:
                sub["gateway"] = s.gateway
            if s.lease_range is not None:
                sub["lease_range"] = {
                    "start_ip": s.lease_range.start_ip,
                    "end_ip": s.lease_range.end_ip,
                }
            subnets.append(sub)
        out["subnets"] = subnets
    out["ipv6_enabled"] = net.ipv6_enabled
    out["internal"] = net.internal
    out["dns_enabled"] = net.dns_enabled
    if net.labels:
        out["labels"] = dict(net.labels)
    if net.options:
        out["options"] = dict(sorted(net.options.items()))
    if net.ipam_options:
        out["ipam_options"] = dict(net.ipam_options)
    return out


def from_json(data: Mapping[str, Any]) -> Network:
    """A network from its JSON (the inverse of `to_json`; unknown keys are ignored)."""
    subnets = []
    for s in data.get("subnets") or ():
        lr = s.get("lease_range")
        subnets.append(
            Subnet(
                subnet=str(s["subnet"]),
                gateway=str(s.get("gateway") or ""),
                lease_range=LeaseRange(
                    start_ip=str(lr.get("start_ip") or ""), end_ip=str(lr.get("end_ip") or "")
                )
                if lr
                else None,
            )
        )
    return Network(
        name=str(data["name"]),
        id=str(data["id"]),
        driver=str(data.get("driver") or "bridge"),
        network_interface=str(data.get("network_interface") or ""),
        created=str(data.get("created") or ""),
        subnets=tuple(subnets),
        ipv6_enabled=bool(data.get("ipv6_enabled")),
        internal=bool(data.get("internal")),
        dns_enabled=bool(data.get("dns_enabled")),
        labels={str(k): str(v) for k, v in (data.get("labels") or {}).items()},
        options={str(k): str(v) for k, v in (data.get("options") or {}).items()},
        ipam_options={str(k): str(v) for k, v in (data.get("ipam_options") or {}).items()},
    )


def default_network() -> Network:
    """The built-in `pypod` network; its ID is the sha256 of its name, as podman's."""
    return Network(
        name=DEFAULT_NETWORK,
        id=DEFAULT_NETWORK_ID,
        driver="bridge",
        network_interface=DEFAULT_INTERFACE,
        created=rfc3339_nano(time.time_ns()),
        subnets=(Subnet(subnet=DEFAULT_SUBNET, gateway="10.88.0.1"),),
        ipv6_enabled=False,
        internal=False,
        dns_enabled=False,
        ipam_options={"driver": "host-local"},
    )


def rfc3339_nano(ns: int) -> str:
    """Go's time.RFC3339Nano in local time: "2026-11-26T00:49:58.9782073Z"."""
    secs, frac = divmod(ns, 1_000_000_000)
    lt = time.localtime(secs)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", lt)
    digits = f"{frac:09d}".rstrip("0")
    if digits:
        text += "." + digits
    off = lt.tm_gmtoff or 0
    if off == 0:
        return text + "Z"
    sign = "+" if off > 0 else "-"
    off = abs(off) // 60
    return f"{text}{sign}{off // 60:02d}:{off % 60:02d}"


def _find(nets: Mapping[str, Network], name_or_id: str) -> Network:
    """podman's getNetwork: the exact name, else the one network whose ID has this prefix."""
    if name_or_id in nets:
        return nets[name_or_id]
    found = [n for n in nets.values() if name_or_id and n.id.startswith(name_or_id)]
    if len(found) > 1:
        raise InvalidArgument(
            f"more than one result for network ID {name_or_id}: give more of the ID or the name"
        )
    if not found:
        raise NetworkNotFound(
            f"unable to find network with name or ID {name_or_id}: network not found"
        )
    return found[0]


def _new_id(nets: Mapping[str, Network]) -> str:
    """64 random hex digits whose first 12 (the short ID) no other network shares."""
    while True:
        new = _sha256_hex(os.urandom(32))
        if not any(n.id.startswith(new[:12]) for n in nets.values()):
            return new


# --- names --------------------------------------------------------------------------------
def _live_interfaces() -> list[str]:
    try:
        return os.listdir("/sys/class/net")
    except OSError:
        return []


def _free_device_name(nets: Mapping[str, Network]) -> str:
    """podman's GetFreeDeviceName: the first pypodN (N >= 1) no network, bridge or host
    interface uses (used both as the network's and as its bridge's name)."""
    taken = {*nets, *(n.network_interface for n in nets.values()), *_live_interfaces()}
    for i in range(1, 1_000_000):
        candidate = f"{INTERFACE_PREFIX}{i}"
        if candidate not in taken:
            return candidate
    raise InvalidArgument("could not find a free device name: remove unused networks")


def _bridge_name(nets: Mapping[str, Network], wanted: str | None) -> str:
    if not wanted:
        return _free_device_name(nets)
    if any(n.network_interface == wanted for n in nets.values()):
        raise AlreadyExists(f"bridge name {wanted} already in use: choose another --interface-name")
    if not _name_ok(wanted):
        raise InvalidArgument(f"bridge name {wanted} invalid: names must match {NAME_PATTERN}")
    if len(wanted) > _MAX_IFNAME:
        raise InvalidArgument(
            f"bridge name {wanted} invalid: at most {_MAX_IFNAME} characters are allowed"
        )
    return wanted


# --- options ------------------------------------------------------------------------------
def parse_mtu(value: str) -> int:
    """podman's ParseMTU: "" is 0 (the default), otherwise a number >= 0."""
    if value == "":
        return 0
    try:
        mtu = int(value, 10)
    except ValueError:
        raise InvalidArgument(f'strconv.Atoi: parsing "{value}": invalid syntax') from None
    if mtu < 0:
        raise InvalidArgument(f"mtu {mtu} is less than zero")
    return mtu


def parse_bool(value: str) -> bool:
    """Go's strconv.ParseBool."""
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise InvalidArgument(f'strconv.ParseBool: parsing "{value}": invalid syntax')


def _validate_options(options: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in options.items():
        if key == "mtu":
            parse_mtu(value)
            out[key] = value
        elif key == "isolate":
            out[key] = "true" if parse_bool(value) else "false"
        elif key == "vlan":
            raise NotSupported("'vlan' bridge option is not supported yet")
        else:
            raise InvalidArgument(
                f"unsupported bridge network option {key}: use {' or '.join(_BRIDGE_OPTIONS)}"
            )
    return out


# --- subnets ------------------------------------------------------------------------------


def _name_ok(name: str) -> bool:
    """podman's define.NameRegex matches `name` (`re` here: `network create` only)."""
    import re

    return re.match(f"^{NAME_PATTERN}$", name) is not None


def _parse_cidr(text: str) -> IPNetwork:
    import ipaddress

    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid CIDR address: {text}") from None


def _parse_ip(text: str, what: str) -> IPAddress:
    import ipaddress

    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise InvalidArgument(
            f'invalid argument "{text}" for "--{what}" flag: '
            f"invalid string being converted to IP address: {text}"
        ) from None


def first_ip(net: IPNetwork) -> IPAddress:
    """podman's FirstIPInSubnet: the network address plus one (itself for a /32 or /128)."""
    return net.network_address if net.num_addresses == 1 else net.network_address + 1


def parse_range(text: str) -> tuple[IPAddress, IPAddress]:
    """`--ip-range`: a CIDR (its first address plus one to its last) or START-END."""
    import ipaddress

    start_text, dash, end_text = text.partition("-")
    if dash:
        try:
            start = ipaddress.ip_address(start_text.strip())
        except ValueError:
            raise InvalidArgument(f'range start ip "{start_text}" is not a ip address') from None
        try:
            end = ipaddress.ip_address(end_text.strip())
        except ValueError:
            raise InvalidArgument(f'range end ip "{end_text}" is not a ip address') from None
        if start.version != end.version:
            raise InvalidArgument(f"invalid ip range {text}: one end is IPv4, the other IPv6")
        if int(end) < int(start):
            raise InvalidArgument(f"invalid ip range {text}: the end comes before the start")
        return start, end
    net = _parse_cidr(text)
    return first_ip(net), net.broadcast_address


def _subnet_requests(
    subnets: Sequence[str], gateways: Sequence[str], ranges: Sequence[str]
) -> list[_Request]:
    """The --subnet/--gateway/--ip-range flags paired up (podman's CLI checks)."""
    if not subnets:
        if gateways or ranges:
            raise InvalidArgument("cannot set gateway or range without subnet")
        return []
    if len(gateways) > len(subnets):
        raise InvalidArgument("cannot set more gateways than subnets")
    if len(ranges) > len(subnets):
        raise InvalidArgument("cannot set more ranges than subnets")
    out: list[_Request] = []
    for i, text in enumerate(subnets):
        net = _parse_cidr(text)
        lease = parse_range(ranges[i]) if i < len(ranges) else None
        gw = _parse_ip(gateways[i], "gateway") if i < len(gateways) else None
        out.append((net, gw, lease))
    return out


def _validate_subnet(
    net: IPNetwork,
    gateway: IPAddress | None,
    lease: tuple[IPAddress, IPAddress] | None,
    add_gateway: bool,
    used: Sequence[IPNetwork],
) -> Subnet:
    """podman's ValidateSubnet: free of the used subnets, gateway and range inside."""
    if any(_overlaps(net, u) for u in used):
        raise InvalidArgument(f"subnet {net} is already used on the host or by another config")
    if gateway is not None:
        if gateway not in net:
            raise InvalidArgument(f"gateway {gateway} not in subnet {net}")
    elif add_gateway:
        gateway = first_ip(net)
    lease_range = None
    if lease is not None:
        start, end = lease
        if start not in net:
            raise InvalidArgument(f"lease range start ip {start} not in subnet {net}")
        if end not in net:
            raise InvalidArgument(f"lease range end ip {end} not in subnet {net}")
        lease_range = LeaseRange(start_ip=str(start), end_ip=str(end))
    return Subnet(
        subnet=str(net), gateway="" if gateway is None else str(gateway), lease_range=lease_range
    )


def _overlaps(a: IPNetwork, b: IPNetwork) -> bool:
    return a.version == b.version and a.overlaps(b)


def _used_subnets(nets: Mapping[str, Network]) -> list[IPNetwork]:
    """Subnets of every config and of the host (addresses and routes)."""
    import ipaddress

    used: list[IPNetwork] = []
    for n in nets.values():
        for s in n.subnets:
            with suppress(ValueError):
                used.append(ipaddress.ip_network(s.subnet, strict=False))
    return used + host_subnets()


def _free_ipv4_subnet(used: list[IPNetwork]) -> IPNetwork:
    """The first 10.89.N.0/24 (then on through 10.x) no used subnet overlaps."""
    import ipaddress

    net: IPNetwork = ipaddress.ip_network("10.89.0.0/24")
    while True:
        if not any(_overlaps(net, u) for u in used):
            return net
        nxt = int(net.network_address) + net.num_addresses
        if nxt >= int(ipaddress.IPv4Address("11.0.0.0")):
            raise InvalidArgument(
                "could not find a free IPv4 subnet in 10.89.0.0-10.255.255.0: give one "
                "with --subnet or remove unused networks"
            )
        net = ipaddress.ip_network((nxt, 24))


def _free_ipv6_subnet(used: list[IPNetwork]) -> IPNetwork:
    """A random unique local fdXX:XXXX:XXXX:XXXX::/64 (RFC 4193: random, not sequential)."""
    import ipaddress

    for _ in range(10000):
        raw = b"\xfd" + os.urandom(7) + bytes(8)
        net = ipaddress.IPv6Network((raw, 64))
        if not any(_overlaps(net, u) for u in used):
            return net
    raise InvalidArgument("could not find a free IPv6 subnet: give one with --subnet")


# --- the host's subnets -------------------------------------------------------------------
def host_subnets() -> list[IPNetwork]:
    """Subnets in use on the host: each interface address's network (IPv4 and IPv6) and each
    IPv4 route but the default one (read from the kernel, no `ip` command)."""
    out: list[IPNetwork] = []
    out += _ipv4_addresses()
    out += _ipv6_addresses()
    out += _ipv4_routes()
    return out


def _ipv4_routes(path: str = "/proc/net/route") -> list[IPNetwork]:
    """/proc/net/route: little-endian hex destination and mask per line."""
    import ipaddress

    out: list[IPNetwork] = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        cols = line.split()
        if len(cols) < 8:
            continue
        try:
            dest = int(cols[1], 16).to_bytes(4, "little")
            mask = int(cols[7], 16).to_bytes(4, "little")
            prefix = bin(int.from_bytes(mask, "big")).count("1")
            if prefix == 0:
                continue  # the default route
            out.append(ipaddress.IPv4Network((dest, prefix), strict=False))
        except ValueError:
            continue
    return out


def _ipv6_addresses(path: str = "/proc/net/if_inet6") -> list[IPNetwork]:
    """/proc/net/if_inet6: address (32 hex digits), ifindex, prefix length (hex), ..."""
    import ipaddress

    out: list[IPNetwork] = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        cols = line.split()
        if len(cols) < 3:
            continue
        try:
            out.append(
                ipaddress.IPv6Network((bytes.fromhex(cols[0]), int(cols[2], 16)), strict=False)
            )
        except ValueError:
            continue
    return out


def _ipv4_addresses() -> list[IPNetwork]:
    """Every interface's IPv4 address and netmask (SIOCGIFCONF, then SIOCGIFNETMASK)."""
    import array
    import ipaddress
    import socket
    import struct

    siocgifconf, siocgifnetmask = 0x8912, 0x891B
    ifreq = 40  # struct ifreq on 64-bit Linux
    out: list[IPNetwork] = []
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    except OSError:
        return out
    with sock:
        size = 64 * ifreq
        while True:
            buf = array.array("B", bytes(size))
            addr, _ = buf.buffer_info()
            try:
                got = struct.unpack(
                    "iL",
                    fcntl.ioctl(sock.fileno(), siocgifconf, struct.pack("iL", size, addr)),
                )[0]
            except OSError:
                return out
            if got < size:
                break
            size *= 2
        data = buf.tobytes()[:got]
        for off in range(0, got, ifreq):
            name = data[off : off + 16]
            ip = data[off + 20 : off + 24]
            try:
                res = fcntl.ioctl(sock.fileno(), siocgifnetmask, name + bytes(ifreq - 16))
            except OSError:
                continue
            prefix = bin(int.from_bytes(res[20:24], "big")).count("1")
            with suppress(ValueError):
                out.append(ipaddress.IPv4Network((ip, prefix), strict=False))
    return out
