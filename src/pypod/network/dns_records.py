"""The responder's records and rules: the record files (aardvark-dns's format, see
pypod.network.dns_server), who may see which names, and what to do with a query -- answer it,
forward it (to whom) or drop it.  No sockets here: the unit tests drive `resolve` directly.
Standard library C modules only (the responder runs with `python -I -S`)."""

from __future__ import annotations

import _socket
import os

from pypod.network.dns_wire import (
    CLASS_IN,
    FLAG_QR,
    RCODE_FORMERR,
    RCODE_NOERROR,
    RCODE_NOTIMP,
    RCODE_NXDOMAIN,
    SEARCH_DOMAIN,
    TYPE_A,
    TYPE_AAAA,
    TYPE_ANY,
    TYPE_PTR,
    UDP_MAX,
    Name,
    WireError,
    build_response,
    encode_name,
    error_response,
    pack_ip,
    parse_message,
    reverse_name_ip,
    split_name,
    unpack_ip,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

# --- the records ----------------------------------------------------------------------------------


class Entry:
    """One container on one network."""

    __slots__ = ("dns_servers", "id", "ips", "names")

    def __init__(self, id: str, ips: list[bytes], names: list[str], dns_servers: list[str]):
        self.id = id
        self.ips = ips
        self.names = names
        self.dns_servers = dns_servers


class NetworkFile:
    __slots__ = ("entries", "gateways", "internal", "name", "servers")

    def __init__(self, name: str, internal: bool) -> None:
        self.name = name
        self.internal = internal
        self.gateways: list[str] = []
        self.servers: list[str] = []
        self.entries: list[Entry] = []


def _ip_list(field: str) -> list[bytes]:
    return [pack_ip(part) for part in field.split(",") if part]


def parse_network_file(filename: str, text: str) -> NetworkFile:
    """One network's file (see the module's docstring); ValueError with the reason if bad."""
    internal = filename.endswith("%internal")
    net = NetworkFile(filename.removesuffix("%internal"), internal)
    first = True
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        parts = line.split(" ")
        if first:
            first = False
            net.gateways = [unpack_ip(ip) for ip in _ip_list(parts[0])]
            if len(parts) > 1:
                net.servers = [unpack_ip(ip) for ip in _ip_list(parts[1])]
            continue
        if len(parts) < 4:
            raise ValueError(f"line {number}: too few fields")
        names = [n.lower() for n in parts[3].split(",") if n]
        if not names:
            raise ValueError(f"line {number}: no names")
        servers = [unpack_ip(ip) for ip in _ip_list(parts[4])] if len(parts) > 4 else []
        ips = _ip_list(parts[1]) + _ip_list(parts[2])
        net.entries.append(Entry(parts[0].lower(), ips, names, servers))
    if not net.gateways:
        raise ValueError("no gateway address on the first line")
    return net


class Backend:
    """Every network's names, as lookups need them (replaced whole on a reload)."""

    def __init__(self, networks: Iterable[NetworkFile]) -> None:
        self.networks = {net.name: net for net in networks}
        #: address -> the networks the container with that address is on
        self.member: dict[bytes, list[str]] = {}
        #: network -> name -> addresses
        self.names: dict[str, dict[Name, list[bytes]]] = {}
        #: network -> address -> names
        self.reverse: dict[str, dict[bytes, list[str]]] = {}
        #: container address -> the container's own DNS servers
        self.ctr_servers: dict[bytes, list[str]] = {}
        by_container: dict[str, list[str]] = {}
        ips_of: dict[str, list[bytes]] = {}
        for net in self.networks.values():
            names = self.names.setdefault(net.name, {})
            reverse = self.reverse.setdefault(net.name, {})
            for entry in net.entries:
                nets = by_container.setdefault(entry.id, [])
                if net.name not in nets:
                    nets.append(net.name)
                ips_of.setdefault(entry.id, []).extend(entry.ips)
                for ip in entry.ips:
                    reverse.setdefault(ip, []).extend(entry.names)
                    if entry.dns_servers and not net.internal:
                        self.ctr_servers[ip] = entry.dns_servers
                for name in entry.names:
                    names.setdefault(split_name(name), []).extend(entry.ips)
        for cid, ips in ips_of.items():
            for ip in ips:
                nets = self.member.setdefault(ip, [])
                nets.extend(n for n in by_container[cid] if n not in nets)

    def has_records(self) -> bool:
        return any(net.entries for net in self.networks.values())

    def listen_addresses(self) -> dict[str, str]:
        """gateway address -> network name, for the networks that have records."""
        out: dict[str, str] = {}
        for net in self.networks.values():
            if net.entries:
                for gw in net.gateways:
                    out.setdefault(gw, net.name)
        return out

    def lookup(self, requester: bytes, name: Name) -> list[bytes] | None:
        """The addresses of `name` (lower case, search domain stripped) on the requester's
        networks; None when the requester knows no such name (or is no container)."""
        found: list[bytes] = []
        known = False
        for net in self.member.get(requester, ()):
            ips = self.names.get(net, {}).get(name)
            if ips is not None:
                known = True
                found.extend(ip for ip in ips if ip not in found)
        return found if known else None

    def reverse_lookup(self, requester: bytes, ip: bytes) -> list[str] | None:
        for net in self.member.get(requester, ()):
            names = self.reverse.get(net, {}).get(ip)
            if names:
                return names
        return None

    def only_internal(self, requester: bytes) -> bool:
        nets = self.member.get(requester)
        if not nets:
            return False
        return all(self.networks[n].internal for n in nets if n in self.networks)

    def upstreams(self, requester: bytes) -> list[str] | None:
        """The container's own servers, else its networks', else None (the host's)."""
        own = self.ctr_servers.get(requester)
        if own:
            return own
        servers: list[str] = []
        for net in self.member.get(requester, ()):
            net_file = self.networks.get(net)
            if net_file is not None and not net_file.internal:
                servers.extend(s for s in net_file.servers if s not in servers)
        return servers or None


def load_config(directory: str) -> tuple[Backend, list[tuple[str, str]]]:
    """Every network file of `directory`; the errors are (network, message) for bad files."""
    networks: list[NetworkFile] = []
    errors: list[tuple[str, str]] = []
    for filename in sorted(os.listdir(directory)):
        if filename.startswith("."):
            continue
        try:
            with open(os.path.join(directory, filename), encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:  # removed meanwhile
            continue
        except (OSError, UnicodeDecodeError) as e:
            errors.append((filename.removesuffix("%internal"), f"cannot read: {e}"))
            continue
        try:
            networks.append(parse_network_file(filename, text))
        except ValueError as e:
            errors.append((filename.removesuffix("%internal"), f"bad record file: {e}"))
    return Backend(networks), errors


# --- answering ------------------------------------------------------------------------------------

#: what `resolve` decided
ANSWER = 0  #: reply with the bytes given
FORWARD = 1  #: forward the query to the servers given (None: the host's resolvers)
DROP = 2  #: say nothing (a response, or garbage without a header)


def resolve(
    backend: Backend, data: bytes, requester: bytes, *, tcp: bool = False
) -> tuple[int, bytes | list[str] | None]:
    """What to do with the message `data` from the address `requester` (packed)."""
    try:
        query = parse_message(data)
    except WireError:
        reply = error_response(data, RCODE_FORMERR)
        return (ANSWER, reply) if reply is not None else (DROP, None)
    if query.flags & FLAG_QR:
        return DROP, None
    limit = 0 if tcp else UDP_MAX
    if query.opcode != 0:
        return ANSWER, build_response(query, RCODE_NOTIMP, limit=limit)
    if len(query.questions) != 1:
        return ANSWER, build_response(query, RCODE_FORMERR, limit=limit)
    question = query.questions[0]
    name = question.lower()
    if question.qclass not in (CLASS_IN, TYPE_ANY):
        return FORWARD, backend.upstreams(requester)

    if question.qtype == TYPE_PTR:
        ip = reverse_name_ip(name)
        names = backend.reverse_lookup(requester, ip) if ip is not None else None
        if names:
            seen: list[bytes] = []
            for n in names:
                try:
                    rdata = encode_name(split_name(n))
                except WireError:
                    continue
                if rdata not in seen:
                    seen.append(rdata)
            return ANSWER, build_response(
                query, RCODE_NOERROR, [(TYPE_PTR, r) for r in seen], limit=limit
            )

    domain = split_name(SEARCH_DOMAIN)
    in_domain = name[-len(domain) :] == domain
    short = name[: -len(domain)] if in_domain else name
    ips = backend.lookup(requester, short) if short else None
    if ips is not None:
        answers: list[tuple[int, bytes]] = []
        if question.qtype in (TYPE_A, TYPE_ANY):
            answers += [(TYPE_A, ip) for ip in ips if len(ip) == 4]
        if question.qtype in (TYPE_AAAA, TYPE_ANY):
            answers += [(TYPE_AAAA, ip) for ip in ips if len(ip) == 16]
        return ANSWER, build_response(query, RCODE_NOERROR, answers, limit=limit)
    if in_domain or len(name) <= 1 or backend.only_internal(requester):
        return ANSWER, build_response(query, RCODE_NXDOMAIN, limit=limit)
    return FORWARD, backend.upstreams(requester)


def read_resolv_conf(path: str) -> list[str]:
    """The nameservers of a resolv.conf; glibc's default (127.0.0.1) when it names none."""
    servers: list[str] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 2 and fields[0] == "nameserver":
                    try:
                        pack_ip(fields[1])
                    except ValueError:
                        continue
                    servers.append(fields[1])
    except OSError:
        pass
    return servers or ["127.0.0.1"]


def upstream_address(server: str, port: int = 53) -> tuple[int, tuple[object, ...]]:
    """(family, sockaddr) of a nameserver (IPv6 with an optional %scope)."""
    host, _, scope = server.partition("%")
    if ":" in host:
        scope_id = 0
        if scope:
            try:
                scope_id = int(scope) if scope.isdigit() else _socket.if_nametoindex(scope)
            except OSError:
                scope_id = 0
        return _socket.AF_INET6, (host, port, 0, scope_id)
    return _socket.AF_INET, (host, port)
