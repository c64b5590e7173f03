"""The records the network package and the engine pass each other (netavark's types).

A `Network` is what `pypod network create` stores and `pypod network inspect` prints (the
field names are podman's JSON keys).  Setting a container up takes `SetupOptions` (which
networks, with which per-container options, and the published ports) and gives back one
`NetResult` per network; tearing it down takes the same options and those results.
"""

from __future__ import annotations

from pypod.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: the built-in network (podman's is "podman"): bridge pypod0 on 10.88.0.0/16
DEFAULT_NETWORK = "pypod"


@record
class LeaseRange:
    """Part of a subnet addresses are handed out from (`--ip-range`)."""

    start_ip: str
    end_ip: str


@record
class Subnet:
    subnet: str  #: "10.89.0.0/24"
    gateway: str  #: "10.89.0.1"
    lease_range: LeaseRange | None = None


@record
class Network:
    """One network, as stored (a JSON file per network) and as `network inspect` shows it."""

    name: str
    id: str  #: 64 hex digits
    driver: str = "bridge"
    network_interface: str = ""  #: the bridge's name: "pypod0", "pypod1", ...
    created: str = ""  #: RFC 3339 with nanoseconds, as podman prints it
    subnets: tuple[Subnet, ...] = ()
    ipv6_enabled: bool = False
    internal: bool = False
    dns_enabled: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)  #: "mtu", "isolate", ...
    ipam_options: dict[str, str] = field(default_factory=lambda: {"driver": "host-local"})


@record
class PortMapping:
    """`-p [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]`, a range being `range` ports long."""

    host_ip: str  #: "" for every address
    host_port: int
    container_port: int
    protocol: str = "tcp"  #: "tcp" or "udp"
    range: int = 1


@record
class PerNetworkOptions:
    """What one container asks of one network (`--ip`, `--mac-address`, `--network-alias`)."""

    interface_name: str  #: "eth0", "eth1", ... inside the container
    static_ips: tuple[str, ...] = ()
    static_mac: str = ""
    aliases: tuple[str, ...] = ()


@record
class SetupOptions:
    """A container's whole network request: setup and teardown both take it."""

    container_id: str
    container_name: str
    netns: str  #: path of the container's network namespace (a bind-mounted nsfs file)
    networks: dict[str, PerNetworkOptions]  #: by network name
    port_mappings: tuple[PortMapping, ...] = ()


@record
class IfaceSubnet:
    ipnet: str  #: "10.89.0.5/24"
    gateway: str


@record
class NetResult:
    """What setting a container up on one network gave it."""

    interface: str  #: "eth0"
    mac_address: str
    subnets: tuple[IfaceSubnet, ...]
    dns_server_ips: tuple[str, ...] = ()  #: the network's DNS responder, when dns_enabled
    dns_search_domains: tuple[str, ...] = ()


def to_json(value: Any) -> Any:
    """A record (or a tuple/dict of them) as plain JSON data, field names as keys."""
    from pypod.record import fields, is_record

    if is_record(value):
        return {f.name: to_json(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value
