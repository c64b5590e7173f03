"""Setting a container up on its bridge networks and tearing it down (what netavark does).

`setup` takes, for each network the container asks for, in order: an address from IPAM, the
network's bridge (created when missing), a veth pair into the container's network namespace,
the addresses and (first network only) the default route inside; then the firewall rules of
the networks and of the published ports (one nftables transaction), then the DNS records.
A failure half way undoes everything done so far: no half set-up container is left.

`teardown` undoes it and never fails for what is already gone: the interfaces inside the
namespace (deleting the peer deletes the veth pair), the leases, the firewall rules, the DNS
records, and a network's bridge and rules when its last container leaves.  It runs with the
leases of every network of the container locked (in name order), so a container being set up
at the same time on a network never loses the bridge or rules it relies on.

`reload` re-creates the firewall rules of running containers (`pypod network reload`).
"""

from __future__ import annotations

import time

from pypod.errors import InvalidArgument, NotSupported, PypodError
from pypod.log import get_logger
from pypod.network import addr, firewall, ipam
from pypod.network.netlink import (
    Netlink,
    delete_bridge_if_unused,
    delete_udp_conntrack,
    random_mac,
    random_veth_name,
    set_hairpin,
    write_sysctl,
)
from pypod.network.types import DEFAULT_NETWORK, NetResult, Network, PerNetworkOptions, SetupOptions
from pypod.stdlite import suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

log = get_logger(__name__)

#: how long teardown waits for the veths of a destroyed namespace to go before it gives up
#: deleting a bridge (the kernel cleans a namespace up asynchronously)
_BRIDGE_DRAIN_SECONDS = 0.5
_MAC = r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}"


def setup(
    opts: SetupOptions, networks: Mapping[str, Network], runroot: str
) -> dict[str, NetResult]:
    """Connect the container to each of `opts.networks`; its `NetResult` per network."""
    nets = _networks(opts, networks)
    if not nets:
        return {}
    results: dict[str, NetResult] = {}
    leased: list[Network] = []  # networks holding a lease of the container
    created: list[str] = []  # interfaces made inside the container
    dns_added: list[Network] = []
    try:
        _enable_forwarding(nets)
        with Netlink() as host, Netlink(opts.netns) as inside:
            lo = inside.link_index("lo")
            if lo is not None:
                inside.set_up(lo)
            default_route = True
            for net, per in nets:
                result = _attach(
                    opts, net, per, runroot, host, inside, default_route, leased, created
                )
                results[net.name] = result
                if not net.internal:
                    default_route = False
        ips = [s.ipnet for s in results[nets[0][0].name].subnets] if nets else []
        firewall.add_container(
            opts.container_id, [n for n, _ in nets], opts.port_mappings, ips, state_dir=runroot
        )
        for net, per in nets:
            if not net.dns_enabled:
                continue
            servers = _dns_add(opts, net, per, results[net.name], runroot, dns_added)
            if servers:
                from pypod.network.dns import SEARCH_DOMAIN

                old = results[net.name]
                results[net.name] = NetResult(
                    interface=old.interface,
                    mac_address=old.mac_address,
                    subnets=old.subnets,
                    dns_server_ips=tuple(servers),
                    dns_search_domains=(SEARCH_DOMAIN,),
                )
    except BaseException:
        _undo(opts, runroot, leased, created, dns_added)
        raise
    return results


def teardown(
    opts: SetupOptions,
    networks: Mapping[str, Network],
    runroot: str,
    *,
    namespace_going: bool = False,
) -> None:
    """Disconnect the container from `opts.networks`; nothing left behind, nothing raised for
    what is already gone.

    `namespace_going`: the caller removes the container's network namespace right after
    (the container ended), and the kernel deletes its interfaces with it (their veth peers
    go within a millisecond or two), so they are not deleted one by one: deleting a veth
    waits for an RCU grace period (~25 ms here) and needs netlink (~27 ms of imports).
    """
    nets = [(networks[name], per) for name, per in opts.networks.items() if name in networks]
    missing = [name for name in opts.networks if name not in networks]
    for name in missing:
        log.warning("teardown of %s: network %s is not known any more", opts.container_id, name)
    failure: PypodError | None = None
    try:
        if not namespace_going:
            _delete_interfaces(opts.netns, [per.interface_name for per in opts.networks.values()])
    except PypodError as e:  # still release what can be released
        failure = e
    udp = [
        pm.host_port + i
        for pm in opts.port_mappings
        if pm.protocol == "udp"
        for i in range(max(pm.range, 1))
    ]
    _release(
        opts.container_id,
        runroot,
        [n for n, _ in nets],
        [n for n, _ in nets if n.dns_enabled],
        udp,
    )
    if failure is not None:
        raise failure


def reload(
    runroot: str,
    entries: Iterable[tuple[SetupOptions, Mapping[str, Network], dict[str, NetResult]]],
) -> None:
    """Re-create the firewall rules of running containers (after `nft flush ruleset`)."""
    rules = []
    for opts, networks, results in entries:
        nets = [networks[name] for name in opts.networks if name in networks]
        if not nets:
            continue
        first = results.get(nets[0].name)
        ips = [s.ipnet for s in first.subnets] if first is not None else []
        rules.append((opts.container_id, nets, opts.port_mappings, ips))
    if not rules:
        return
    firewall.reload(rules, state_dir=runroot)
    for _, nets, _, _ in rules:
        for net in nets:
            _bridge_sysctls(net)


# -- setup steps ------------------------------------------------------------------------------


def _networks(
    opts: SetupOptions, networks: Mapping[str, Network]
) -> list[tuple[Network, PerNetworkOptions]]:
    out = []
    names = set()
    for name, per in opts.networks.items():
        net = networks.get(name)
        if net is None:
            raise InvalidArgument(f"network {name} is not among the networks given to setup")
        if net.driver != "bridge":
            raise NotSupported(f"'{net.driver}' network driver is not supported yet")
        if not net.network_interface:
            raise InvalidArgument(f"network {net.name} has no bridge interface name")
        if per.static_mac and not _mac_syntax(per.static_mac):
            raise InvalidArgument(
                f"invalid MAC address {per.static_mac!r}: use six hexadecimal pairs separated "
                "by colons (02:42:ac:11:00:02)"
            )
        if per.static_mac and int(per.static_mac[:2], 16) & 1:
            raise InvalidArgument(
                f"MAC address {per.static_mac} is a multicast address: a container's "
                "interface needs a unicast one (an even first byte)"
            )
        if per.interface_name in names:
            raise InvalidArgument(
                f"interface name {per.interface_name} is used twice in the container's networks"
            )
        names.add(per.interface_name)
        out.append((net, per))
    return out


def _mac_syntax(mac: str) -> bool:
    import re  # here: only for a static MAC address (it costs ~4 ms a start)

    return re.fullmatch(_MAC, mac) is not None


def _mtu(net: Network) -> int:
    raw = net.options.get("mtu", "")
    try:
        return int(raw) if raw else 0
    except ValueError:
        raise InvalidArgument(f"network {net.name} has an invalid mtu option {raw!r}") from None


def _enable_forwarding(nets: Sequence[tuple[Network, PerNetworkOptions]]) -> None:
    versions = {addr.ip_network(s.subnet, strict=False).version for n, _ in nets for s in n.subnets}
    if 4 in versions:
        write_sysctl("net/ipv4/ip_forward", "1")
    if 6 in versions:
        write_sysctl("net/ipv6/conf/all/forwarding", "1")


def _bridge_sysctls(net: Network) -> None:
    """Let packets from 127.0.0.1 (published ports reached from the host) go out the bridge."""
    if any(addr.ip_network(s.subnet, strict=False).version == 4 for s in net.subnets):
        with suppress(PypodError):  # the bridge may be gone (reload)
            write_sysctl(f"net/ipv4/conf/{net.network_interface}/route_localnet", "1")


def _attach(
    opts: SetupOptions,
    net: Network,
    per: PerNetworkOptions,
    runroot: str,
    host: Netlink,
    inside: Netlink,
    default_route: bool,
    leased: list[Network],
    created: list[str],
) -> NetResult:
    mtu = _mtu(net)
    mac = per.static_mac.lower() or random_mac()
    with ipam.locked(runroot, net) as leases:
        subnets = leases.allocate(
            opts.container_id, opts.container_name, per.interface_name, per.static_ips
        )
        leased.append(net)
        bridge = _ensure_bridge(host, net, mtu)
        for attempt in range(3):
            veth = random_veth_name()
            try:
                host.create_veth(veth, per.interface_name, opts.netns, bridge, mtu, mac)
                break
            except PypodError as e:
                if e.errno != 17 or attempt == 2:  # EEXIST
                    raise _veth_error(e, per, inside) from None
        created.append(per.interface_name)
        set_hairpin(veth)
    index = inside.link_index(per.interface_name)
    if index is None:
        raise PypodError(
            f"interface {per.interface_name} vanished from {opts.netns} right after it was made"
        )
    inside.set_up(index)
    for s in subnets:
        inside.add_address(index, s.ipnet)
    if default_route and not net.internal:
        done = set()
        for s in subnets:
            version = addr.ip_address(s.gateway).version if s.gateway else 0
            if s.gateway and version not in done:
                inside.add_default_route(s.gateway, index)
                done.add(version)
    return NetResult(interface=per.interface_name, mac_address=mac, subnets=subnets)


def _veth_error(e: PypodError, per: PerNetworkOptions, inside: Netlink) -> PypodError:
    if e.errno == 17 and inside.link_index(per.interface_name) is not None:
        err = PypodError(
            f"interface {per.interface_name} already exists in the container's network "
            "namespace: choose another interface name"
        )
        err.errno = 17
        return err
    return e


def _ensure_bridge(host: Netlink, net: Network, mtu: int) -> int:
    """The index of the network's bridge, created (with its gateway addresses) when missing."""
    index = host.link_index(net.network_interface)
    if index is None:
        index = host.create_bridge(net.network_interface, mtu)
    else:
        host.set_up(index)
    for s in net.subnets:
        if s.gateway:
            prefix = addr.ip_network(s.subnet, strict=False).prefixlen
            host.add_address(index, f"{s.gateway}/{prefix}")
    _bridge_sysctls(net)
    return index


def _dns_add(
    opts: SetupOptions,
    net: Network,
    per: PerNetworkOptions,
    result: NetResult,
    runroot: str,
    dns_added: list[Network],
) -> list[str]:
    try:
        from pypod.network import dns
    except ImportError:  # the DNS responder is not part of this build
        log.warning("network %s: DNS is enabled but pypod has no DNS responder", net.name)
        return []
    names = [opts.container_name, opts.container_id[:12], *per.aliases]
    ips = [addr.ip_interface(s.ipnet).ip.compressed for s in result.subnets]
    dns_added.append(net)
    return dns.add_records(runroot, net, opts.container_id, [n for n in names if n], ips)


# -- undoing ----------------------------------------------------------------------------------


def _undo(
    opts: SetupOptions,
    runroot: str,
    leased: list[Network],
    created: list[str],
    dns_added: list[Network],
) -> None:
    """Undo a setup that failed half way; errors are logged (the first error is what counts)."""
    try:
        _delete_interfaces(opts.netns, created)
    except PypodError as e:
        log.warning("undo network setup of %s: %s", opts.container_id, e)
    try:
        _release(opts.container_id, runroot, leased, dns_added)
    except PypodError as e:
        log.warning("undo network setup of %s: %s", opts.container_id, e)


def _delete_interfaces(netns: str, names: Sequence[str]) -> None:
    """Delete `names` inside `netns` (each takes its veth peer along); gone is fine."""
    if not names:
        return
    try:
        nl = Netlink(netns)
    except PypodError as e:
        # No namespace any more: its interfaces went with it.
        log.debug("teardown: network namespace %s: %s", netns, e)
        return
    with nl:
        for name in names:
            nl.delete_link(name)


def _release(
    container_id: str,
    runroot: str,
    nets: Sequence[Network],
    dns_nets: Sequence[Network],
    udp_ports: Sequence[int] = (),
) -> None:
    """Drop leases, DNS records, firewall rules; a network's bridge and rules with its last
    container.  All of the container's networks stay locked throughout (in name order)."""
    unique = {n.name: n for n in nets}
    errors: list[PypodError] = []
    ips: list[str] = []

    def locked_body(locked: list[ipam.Leases]) -> None:
        last: list[Network] = []
        for leases in locked:
            net = leases.network
            lease = leases.get(container_id)
            if lease is not None:
                ips.extend(lease.ips)
            leases.release(container_id)
            if not leases.leases:
                last.append(net)
        for net in dns_nets:
            try:
                from pypod.network import dns
            except ImportError:
                break
            try:
                dns.remove_records(runroot, net, container_id)
            except PypodError as e:
                errors.append(e)
        try:
            firewall.remove_container(container_id, list(unique.values()), last, state_dir=runroot)
        except PypodError as e:
            errors.append(e)
        if udp_ports:
            try:
                delete_udp_conntrack(ips, udp_ports)
            except PypodError as e:
                errors.append(e)
        for net in last:
            if net.name == DEFAULT_NETWORK:
                continue  # kept, as podman keeps its default bridge: the next run needs it
            try:
                _delete_bridge(net.network_interface)
            except PypodError as e:
                errors.append(e)

    _with_locks(runroot, [unique[name] for name in sorted(unique)], [], locked_body)
    if errors:
        raise errors[0]


def _with_locks(
    runroot: str, nets: Sequence[Network], held: list[ipam.Leases],
    body: Callable[[list[ipam.Leases]], None],
) -> None:  # fmt: skip
    """`body` with the leases of each of `nets`, locked in this order (nested `with`s, as an
    ExitStack would hold them: contextlib's is not on this path)."""
    if not nets:
        body(held)
        return
    with ipam.locked(runroot, nets[0]) as leases:
        _with_locks(runroot, nets[1:], [*held, leases], body)


def _delete_bridge(bridge: str) -> None:
    deadline = time.monotonic() + _BRIDGE_DRAIN_SECONDS
    while not delete_bridge_if_unused(bridge):
        with Netlink() as nl:
            if nl.link_index(bridge) is None or time.monotonic() > deadline:
                return
        time.sleep(0.02)
