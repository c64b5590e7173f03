"""NAT and port publishing in one nftables table, `inet pypod`, driven by `nft -j` (JSON).

The table (what netavark's firewall drivers set up, in nftables terms):

    chain prerouting   nat hook prerouting:  fib daddr type local jump hostports
    chain output       nat hook output:      fib daddr type local jump hostports
    chain hostports    per container, per published port:
                           [ip daddr HOST_IP] tcp dport HOST_PORT dnat ip to CTR_IP:CTR_PORT
    chain postrouting  nat hook postrouting: ip saddr 127.0.0.0/8 ct status dnat masquerade
                           per network: ip saddr SUBNET ip daddr != SUBNET masquerade (outbound)
                                        ip saddr SUBNET ip daddr SUBNET ct status dnat masquerade
                                        (hairpin: a container reaching a published port)
    chain forward      filter hook forward: per network, accept for its bridge; for an
                           internal network, drop what leaves or enters its subnet instead;
                           for an isolated one (`-o isolate=true`), drop what goes from its
                           bridge to another isolated network's (set `isolated`)

The `output` chain makes published ports reachable from the host itself, on 127.0.0.1 too:
packets from 127.0.0.1 are DNATed to the container, routed out of the bridge (which needs
`net.ipv4.conf.<bridge>.route_localnet=1`, set by `setup.py`) and masqueraded.

Every rule a container adds carries the comment `pypod ctr <container id> net <bridge>` and
every rule of a network `pypod net <bridge>`, so removing a container's rules (looked up by
comment in `nft -j list table inet pypod`) removes exactly those; the table itself goes with
the last network.
Changes are made in one `nft -j -f -` transaction, under a host-wide lock (the table is
shared by every pypod state root on the host).
"""

from __future__ import annotations

import fcntl
import os

from pypod import jsoncodec
from pypod.errors import CommandNotFound, PypodError, from_oserror
from pypod.network.addr import ip_address, ip_interface, ip_network
from pypod.network.types import Network, PortMapping
from pypod.stdlite import contextmanager

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ipaddress
    from collections.abc import Iterable, Iterator, Sequence
    from typing import Any

    Json = dict[str, Any]

FAMILY = "inet"
TABLE = "pypod"
LOCK_PATH = "/run/lock/pypod-nftables.lock"

#: the set of the bridges of networks with `-o isolate=true`
_ISOLATED: Json = {"family": FAMILY, "table": TABLE, "name": "isolated"}

#: skeleton chains: (name, type, hook, priority) — regular chains have no type
_CHAINS: tuple[tuple[str, str, str, int], ...] = (
    ("hostports", "", "", 0),
    ("prerouting", "nat", "prerouting", -100),
    ("output", "nat", "output", -100),
    ("postrouting", "nat", "postrouting", 100),
    ("forward", "filter", "forward", 0),
)


def container_comment(container_id: str, network: Network | None = None) -> str:
    """The comment of a container's rules for `network` (without: the common prefix)."""
    if network is None:
        return f"pypod ctr {container_id}"
    return f"pypod ctr {container_id} net {network.network_interface}"


def network_comment(network: Network) -> str:
    return f"pypod net {network.network_interface}"


# -- running nft ------------------------------------------------------------------------------


def run_nft(commands: list[Json]) -> None:
    """Apply `commands` (nft JSON commands) in one transaction."""
    if not commands:
        return
    _nft(["-j", "-f", "-"], jsoncodec.dumps({"nftables": commands}), "apply nftables rules")


def list_table() -> list[Json] | None:
    """The objects of table inet pypod (`nft -j list table`), None when there is no table."""
    try:
        out = _nft(["-j", "list", "table", FAMILY, TABLE], None, "list nftables table")
    except PypodError as e:
        if "No such file or directory" in str(e):
            return None
        raise
    return list(jsoncodec.loads(out).get("nftables", ()))


def _nft(args: list[str], stdin: str | None, what: str) -> str:
    """`nft ARGS` (`-j ...`; `-j -f -` reads `stdin`): through libnftables in this process,
    or by running nft when the library is missing; its output."""
    from pypod.linux import nftables

    text = (stdin or "") if args[1:] == ["-f", "-"] else " ".join(args[1:])
    done = nftables.run(text)
    if done is not None:
        rc, out, err = done
        if rc != 0:
            raise PypodError(f"{what}: nft failed: {err.strip() or out.strip()}")
        return out
    import subprocess

    try:
        p = subprocess.run(["nft", *args], input=stdin, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise CommandNotFound(
            "nft not found: install nftables (Debian package nftables) to use bridge networks"
        ) from None
    except OSError as e:
        raise from_oserror(f"{what}: run nft", e) from e
    if p.returncode != 0:
        raise PypodError(f"{what}: nft failed: {p.stderr.strip() or p.stdout.strip()}")
    return p.stdout


def lock_path(state_dir: str | None = None) -> str:
    """The lock of the table: the host's, or rootless (the table is in the user's own
    rootless-netns, see rootless_netns.py) under the engine's network state dir."""
    from pypod.linux.userns import rootless

    if state_dir and rootless():
        return os.path.join(state_dir, "networks", "nftables.lock")
    directory = os.path.dirname(LOCK_PATH)
    return LOCK_PATH if os.path.isdir(directory) else "/tmp/pypod-nftables.lock"


@contextmanager
def _locked(state_dir: str | None = None) -> Iterator[None]:
    path = lock_path(state_dir)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise from_oserror(f"open firewall lock {path}", e) from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# -- expressions ------------------------------------------------------------------------------


def _match(left: Json, right: Any, op: str = "==") -> Json:
    return {"match": {"op": op, "left": left, "right": right}}


def _payload(protocol: str, field: str) -> Json:
    return {"payload": {"protocol": protocol, "field": field}}


def _meta(key: str) -> Json:
    return {"meta": {"key": key}}


def _prefix(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Json:
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


def _ipproto(version: int) -> str:
    return "ip" if version == 4 else "ip6"


def _rule(chain: str, expr: list[Json], comment: str = "", *, insert: bool = False) -> Json:
    rule: Json = {"family": FAMILY, "table": TABLE, "chain": chain, "expr": expr}
    if comment:
        rule["comment"] = comment
    return {"insert" if insert else "add": {"rule": rule}}


def _skeleton_chain(name: str, type_: str, hook: str, prio: int) -> list[Json]:
    chain: Json = {"family": FAMILY, "table": TABLE, "name": name}
    if type_:
        chain.update(type=type_, hook=hook, prio=prio, policy="accept")
    cmds: list[Json] = [{"add": {"chain": chain}}]
    local = _match({"fib": {"result": "type", "flags": ["daddr"]}}, "local")
    if name in ("prerouting", "output"):
        cmds.append(_rule(name, [local, {"jump": {"target": "hostports"}}]))
    elif name == "postrouting":
        loopback = ip_network("127.0.0.0/8")
        cmds.append(
            _rule(
                name,
                [
                    _match(_payload("ip", "saddr"), _prefix(loopback)),
                    _match({"ct": {"key": "status"}}, "dnat", "in"),
                    {"masquerade": None},
                ],
            )
        )
    return cmds


def _network_rules(network: Network) -> list[Json]:
    comment = network_comment(network)
    bridge = network.network_interface
    cmds: list[Json] = []
    if _isolated(network):
        cmds.append({"add": {"element": {**_ISOLATED, "elem": [bridge]}}})
        iif, oif = _match(_meta("iifname"), bridge), _match(_meta("oifname"), bridge, "!=")
        to_isolated = _match(_meta("oifname"), "@" + _ISOLATED["name"])
        cmds.append(_rule("forward", [iif, oif, to_isolated, {"drop": None}], comment, insert=True))
    for s in network.subnets:
        net = ip_network(s.subnet, strict=False)
        ip = _ipproto(net.version)
        saddr = _match(_payload(ip, "saddr"), _prefix(net))
        daddr_in = _match(_payload(ip, "daddr"), _prefix(net))
        daddr_out = _match(_payload(ip, "daddr"), _prefix(net), "!=")
        if network.internal:
            saddr_out = _match(_payload(ip, "saddr"), _prefix(net), "!=")
            cmds.append(_rule("forward", [saddr, daddr_out, {"drop": None}], comment, insert=True))
            cmds.append(
                _rule("forward", [daddr_in, saddr_out, {"drop": None}], comment, insert=True)
            )
            continue
        multicast = ip_network("224.0.0.0/4" if net.version == 4 else "ff00::/8")
        not_multicast = _match(_payload(ip, "daddr"), _prefix(multicast), "!=")
        cmds.append(
            _rule("postrouting", [saddr, daddr_out, not_multicast, {"masquerade": None}], comment)
        )
        cmds.append(
            _rule(
                "postrouting",
                [
                    saddr,
                    daddr_in,
                    _match({"ct": {"key": "status"}}, "dnat", "in"),
                    {"masquerade": None},
                ],
                comment,
            )
        )
    if not network.internal:
        established = _match({"ct": {"key": "state"}}, ["established", "related"], "in")
        dnat = _match({"ct": {"key": "status"}}, "dnat", "in")
        oif = _match(_meta("oifname"), bridge)
        cmds.append(_rule("forward", [oif, established, {"accept": None}], comment))
        cmds.append(_rule("forward", [oif, dnat, {"accept": None}], comment))
        cmds.append(_rule("forward", [_match(_meta("iifname"), bridge), {"accept": None}], comment))
    return cmds


def _port_rules(
    container_id: str, network: Network, ports: Sequence[PortMapping], ips: Sequence[str]
) -> list[Json]:
    """DNAT rules publishing `ports` on the container's addresses `ips` (one per family)."""
    comment = container_comment(container_id, network)
    by_version: dict[int, ipaddress.IPv4Address | ipaddress.IPv6Address] = {}
    for raw in ips:
        addr = ip_interface(raw).ip
        by_version.setdefault(addr.version, addr)
    cmds: list[Json] = []
    for pm in ports:
        host_ip = ip_address(pm.host_ip) if pm.host_ip else None
        for version, addr in sorted(by_version.items()):
            if host_ip is not None and host_ip.version != version:
                continue
            ip = _ipproto(version)
            if host_ip is not None and not host_ip.is_unspecified:
                head = [_match(_payload(ip, "daddr"), str(host_ip))]
            else:
                head = [_match(_meta("nfproto"), "ipv4" if version == 4 else "ipv6")]
            count = max(pm.range, 1)
            spans: list[tuple[int, int, int | None]]
            if pm.host_port == pm.container_port and count > 1:
                spans = [(pm.host_port, pm.host_port + count - 1, None)]
            else:
                spans = [
                    (pm.host_port + i, pm.host_port + i, pm.container_port + i)
                    for i in range(count)
                ]
            for first, last, target in spans:
                dport = _payload(pm.protocol, "dport")
                right: Any = first if first == last else {"range": [first, last]}
                dnat: Json = {"family": ip, "addr": str(addr)}
                if target is not None:
                    dnat["port"] = target
                cmds.append(
                    _rule("hostports", [*head, _match(dport, right), {"dnat": dnat}], comment)
                )
    return cmds


# -- what setup, teardown and reload call -----------------------------------------------------


def _rules_by_comment(objects: Iterable[Json]) -> dict[str, list[Json]]:
    out: dict[str, list[Json]] = {}
    for obj in objects:
        rule = obj.get("rule")
        if rule is not None and rule.get("comment"):
            out.setdefault(rule["comment"], []).append(rule)
    return out


def _ensure_base(objects: list[Json] | None) -> list[Json]:
    cmds: list[Json] = []
    chains = set()
    if objects is None:
        cmds.append({"add": {"table": {"family": FAMILY, "name": TABLE}}})
    else:
        chains = {o["chain"]["name"] for o in objects if "chain" in o}
    for name, type_, hook, prio in _CHAINS:
        if name not in chains:
            cmds.extend(_skeleton_chain(name, type_, hook, prio))
    if objects is None or not any(
        o.get("set", {}).get("name") == _ISOLATED["name"] for o in objects
    ):
        cmds.append({"add": {"set": {**_ISOLATED, "type": "ifname"}}})
    return cmds


def _isolated(network: Network) -> bool:
    return network.options.get("isolate", "false") in ("true", "1")


def _isolated_elements(objects: Iterable[Json]) -> set[str]:
    for o in objects:
        s = o.get("set")
        if s is not None and s.get("name") == _ISOLATED["name"]:
            return {e for e in s.get("elem", ()) if isinstance(e, str)}
    return set()


def _delete(rules: Iterable[Json]) -> list[Json]:
    return [
        {
            "delete": {
                "rule": {
                    "family": FAMILY,
                    "table": TABLE,
                    "chain": r["chain"],
                    "handle": r["handle"],
                }
            }
        }
        for r in rules
    ]


def add_container(
    container_id: str,
    networks: Sequence[Network],
    ports: Sequence[PortMapping],
    ips: Sequence[str],
    *,
    state_dir: str | None = None,
) -> None:
    """Rules for `networks` (those not there yet) and the container's published `ports`.

    The ports are published on the first of `networks`, whose addresses for the container
    are `ips` ("10.89.0.2/24").  The container's earlier rules on these networks are replaced
    (setting up twice is harmless); its rules on other networks stay (`network connect`).
    `state_dir`: the engine's network state dir (where a rootless engine's lock is).
    """
    with _locked(state_dir):
        objects = list_table()
        cmds = _ensure_base(objects)
        cmds.extend(
            _container_rules(
                _rules_by_comment(objects or ()), set(), container_id, networks, ports, ips
            )
        )
        run_nft(cmds)


def _container_rules(
    by_comment: dict[str, list[Json]],
    seen: set[str],
    container_id: str,
    networks: Sequence[Network],
    ports: Sequence[PortMapping],
    ips: Sequence[str],
) -> list[Json]:
    cmds: list[Json] = []
    for network in networks:
        cmds.extend(_delete(by_comment.get(container_comment(container_id, network), ())))
        comment = network_comment(network)
        if comment not in by_comment and comment not in seen:
            cmds.extend(_network_rules(network))
        seen.add(comment)
    if networks and ports:
        cmds.extend(_port_rules(container_id, networks[0], ports, ips))
    return cmds


def remove_container(
    container_id: str,
    networks: Sequence[Network],
    last_of: Sequence[Network] = (),
    *,
    state_dir: str | None = None,
) -> None:
    """Delete the container's rules on `networks`, and the rules of the networks `last_of`
    (it was their last container).

    The table goes too when no network rule is left in it.  Never fails for rules already gone.
    """
    with _locked(state_dir):
        objects = list_table()
        if objects is None:
            return
        by_comment = _rules_by_comment(objects)
        doomed = {container_comment(container_id, n) for n in networks}
        doomed |= {network_comment(n) for n in last_of}
        rules = [r for c in doomed for r in by_comment.get(c, ())]
        left = [c for c in by_comment if c not in doomed]
        if not left:
            run_nft([{"delete": {"table": {"family": FAMILY, "name": TABLE}}}])
            return
        cmds = _delete(rules)
        members = _isolated_elements(objects)
        for network in last_of:
            if network.network_interface in members:
                elem = [network.network_interface]
                cmds.append({"delete": {"element": {**_ISOLATED, "elem": elem}}})
        run_nft(cmds)


def remove_network(network: Network) -> None:
    """Delete the rules of `network` (its last container went away)."""
    remove_container("", (), (network,))


def reload(
    entries: Iterable[tuple[str, Sequence[Network], Sequence[PortMapping], Sequence[str]]],
    *,
    state_dir: str | None = None,
) -> None:
    """Re-create the rules of running containers, given as (id, networks, ports, ips)."""
    with _locked(state_dir):
        objects = list_table()
        by_comment = _rules_by_comment(objects or ())
        cmds = _ensure_base(objects)
        seen: set[str] = set()
        for container_id, networks, ports, ips in entries:
            cmds.extend(_container_rules(by_comment, seen, container_id, networks, ports, ips))
        run_nft(cmds)
