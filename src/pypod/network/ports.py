"""Published ports: `-p` parsing, `-P` from the image's EXPOSE, merging and random host ports.

`parse_publish` reads one `-p [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]` (ranges such as
`8000-8010:80-90`, `[::1]:8080:80`, `/tcp`, `/udp`, `/tcp,udp`) with podman's grammar and
messages; `expose_all` turns the image's ExposedPorts keys ("80/tcp") into mappings with host
port 0 (`-P`); `assign_random_ports` merges everything as podman's specgen does (adjacent
mappings joined into ranges, duplicates dropped, one host port for two container ports
rejected) and gives each host port 0 a free port found by binding a socket to port 0.
"""

from __future__ import annotations

import _socket

from pypod.errors import InvalidArgument, NotSupported
from pypod.network.types import PortMapping
from pypod.stdlite import is_decimal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

PROTOCOLS = ("tcp", "udp")
_ALL_PROTOCOLS = ("tcp", "udp", "sctp")
_MAX_PORT = 65535
#: attempts at a random free host port (podman: 15)
_RANDOM_TRIES = 30


# --- -p -----------------------------------------------------------------------------------
def parse_publish(spec: str) -> tuple[PortMapping, ...]:
    """One `-p` value as podman parses it: one mapping per protocol."""
    proto: str | None = None
    parts = spec.split("/")
    if len(parts) == 2:
        proto = parts[1]
    elif len(parts) > 2:
        raise InvalidArgument("invalid port format - protocol can only be specified once")
    remainder = parts[0]
    host_ip: str | None = None
    host_port: str | None = None
    have_v6 = False
    v6 = remainder.split("]")
    if len(v6) == 2:
        have_v6 = True
        if not v6[0].startswith("["):
            raise InvalidArgument("invalid port format - IPv6 addresses must be enclosed by []")
        if not v6[1].startswith(":"):
            raise InvalidArgument(
                "invalid port format - IPv6 address must be followed by a colon (':')"
            )
        host_ip = v6[0][1:]
        remainder = v6[1][1:]
    elif len(v6) > 2:
        raise InvalidArgument(
            "invalid port format - at most one IPv6 address can be specified in a --publish"
        )
    fields = remainder.split(":")
    if len(fields) == 1:
        if have_v6:
            raise InvalidArgument(
                "invalid port format - must provide host and destination port if specifying an IP"
            )
        ctr_port = fields[0]
    elif len(fields) == 2:
        host_port, ctr_port = fields
    elif len(fields) == 3:
        if have_v6:
            raise InvalidArgument(
                "invalid port format - when v6 address specified, must be [ipv6]:hostPort:ctrPort"
            )
        host_ip, host_port, ctr_port = fields
    else:
        raise InvalidArgument("invalid port format - format is [[hostIP:]hostPort:]containerPort")
    return _split_port(host_ip, host_port, ctr_port, proto)


def _split_port(
    host_ip: str | None, host_port: str | None, ctr_port: str, proto: str | None
) -> tuple[PortMapping, ...]:
    """podman's parseSplitPort, then its checkProtocol."""
    if ctr_port == "":
        raise InvalidArgument("must provide a non-empty container port to publish")
    try:
        ctr_start, ctr_len = _parse_range(ctr_port)
    except InvalidArgument as e:
        raise InvalidArgument(f"parsing container port: {e}") from None
    if proto is not None and proto == "":
        raise InvalidArgument("must provide a non-empty protocol to publish")
    ip = ""
    if host_ip is not None:
        if host_ip == "":
            raise InvalidArgument("must provide a non-empty container host IP to publish")
        if host_ip != "0.0.0.0":
            import ipaddress  # here: only for a host IP (it imports re, functools)

            try:
                ip = str(ipaddress.ip_address(host_ip))
            except ValueError:
                raise InvalidArgument(f'cannot parse "{host_ip}" as an IP address') from None
    hport = 0
    if host_port:
        try:
            hport, host_len = _parse_range(host_port)
        except InvalidArgument as e:
            raise InvalidArgument(f"parsing host port: {e}") from None
        if host_len != ctr_len:
            raise InvalidArgument(
                "host and container port ranges have different lengths: " f"{host_len} vs {ctr_len}"
            )
    if ctr_start + ctr_len - 1 > _MAX_PORT:
        raise InvalidArgument("container port range exceeds maximum allowable port number")
    if hport + ctr_len - 1 > _MAX_PORT:
        raise InvalidArgument("host port range exceeds maximum allowable port number")
    return tuple(
        PortMapping(
            host_ip=ip, host_port=hport, container_port=ctr_start, protocol=p, range=ctr_len
        )  # fmt: skip
        for p in check_protocols(proto or "")
    )


def check_protocols(text: str) -> tuple[str, ...]:
    """podman's checkProtocol: comma-separated, case-insensitive, "" meaning tcp; deduped."""
    found: list[str] = []
    for p in text.split(","):
        p = p.lower() or "tcp"
        if p not in _ALL_PROTOCOLS:
            raise InvalidArgument(f'unrecognized protocol "{p}" in port mapping')
        if p == "sctp":
            raise NotSupported("'sctp' is not supported yet: publish tcp or udp ports")
        if p not in found:
            found.append(p)
    return tuple(sorted(found, key=PROTOCOLS.index))


def _parse_range(text: str) -> tuple[int, int]:
    """`START[-END]` -> (start, length)."""
    bounds = text.split("-")
    if len(bounds) > 2:
        raise InvalidArgument(
            "invalid port format - port ranges are formatted as startPort-stopPort"
        )
    if bounds[0] == "":
        raise InvalidArgument("port numbers cannot be negative")
    start = _parse_port(bounds[0])
    if len(bounds) == 1:
        return start, 1
    if bounds[1] == "":
        raise InvalidArgument("must provide ending number for port range")
    end = _parse_port(bounds[1])
    if end <= start:
        raise InvalidArgument(
            "the end port of a range must be higher than the start port - "
            f"{end} is not higher than {start}"
        )
    return start, end - start + 1


def _parse_port(text: str) -> int:
    """Go's strconv.Atoi, then 1..65535."""
    if not is_decimal(text):  # Go's strconv.Atoi syntax
        raise InvalidArgument(
            f'invalid port number: strconv.Atoi: parsing "{text}": invalid syntax'
        )
    num = int(text)
    if not -(2**63) <= num < 2**63:
        raise InvalidArgument(
            f'invalid port number: strconv.Atoi: parsing "{text}": value out of range'
        )
    if not 1 <= num <= _MAX_PORT:
        raise InvalidArgument(f"port numbers must be between 1 and 65535 (inclusive), got {num}")
    return num


# --- -P -----------------------------------------------------------------------------------
def expose_all(exposed: Iterable[str]) -> tuple[PortMapping, ...]:
    """The image's ExposedPorts keys ("80/tcp", "53/udp", "8080") as mappings to random host
    ports (`-P`); pass them to `assign_random_ports` as its `exposed`."""
    out: list[PortMapping] = []
    for key in exposed:
        port_text, _, proto = key.partition("/")
        try:
            start, length = _parse_range(port_text)
        except InvalidArgument as e:
            raise InvalidArgument(f"unable to convert image EXPOSE {key!r}: {e}") from None
        for p in check_protocols(proto):
            for port in range(start, start + length):
                m = PortMapping(host_ip="", host_port=0, container_port=port, protocol=p)
                if m not in out:
                    out.append(m)
    return tuple(out)


# --- merging and random host ports --------------------------------------------------------
def assign_random_ports(
    ports: Iterable[PortMapping], exposed: Iterable[PortMapping] = ()
) -> tuple[PortMapping, ...]:
    """podman's ParsePortMapping: the final mappings of a container.

    Per host IP and protocol, mappings sorted by host port are joined where they continue
    each other (`-p 8080:80 -p 8081:81` is one range of 2, a repeated mapping disappears);
    one host port mapped to two container ports is an error.  Mappings with host port 0 get
    free host ports (a range gets a free run of ports).  `exposed` (`-P`) mappings are added
    only for container ports no mapping of that protocol publishes yet.
    """
    groups: dict[tuple[str, str], list[PortMapping]] = {}
    for p in ports:
        if p.protocol not in PROTOCOLS:
            check_protocols(p.protocol)  # raises
        if p.container_port == 0:
            raise InvalidArgument("container port number must be non-0")
        rng = p.range or 1
        if rng - 1 + p.container_port > _MAX_PORT:
            raise InvalidArgument("container port range exceeds maximum allowable port number")
        if rng - 1 + p.host_port > _MAX_PORT:
            raise InvalidArgument("host port range exceeds maximum allowable port number")
        groups.setdefault((p.host_ip, p.protocol), []).append(
            PortMapping(host_ip=p.host_ip, host_port=p.host_port,
                        container_port=p.container_port, protocol=p.protocol, range=rng)
        )  # fmt: skip
    out: list[PortMapping] = []
    used_ctr: dict[str, set[int]] = {}
    for (_host_ip, proto), group in sorted(
        groups.items(), key=lambda kv: (kv[0][0], PROTOCOLS.index(kv[0][1]))
    ):
        group.sort(key=lambda m: (m.host_port == 0, m.host_port, m.container_port))
        used_hosts: set[int] = set()
        fixed = [m for m in group if m.host_port]
        joined: list[PortMapping] = []
        for m in fixed:
            prev = joined[-1] if joined else None
            if prev is not None and prev.host_port + prev.range >= m.host_port:
                diff = m.host_port - prev.host_port
                if diff == m.container_port - prev.container_port:
                    joined[-1] = _with_range(prev, max(prev.range, m.range + diff))
                    continue
                if prev.host_port + prev.range - 1 >= m.host_port:  # podman: ">", a bug
                    raise InvalidArgument(
                        f"conflicting port mappings for host port {m.host_port} "
                        f"(protocol {proto})"
                    )
            joined.append(m)
        randoms: list[PortMapping] = []
        for m in (m for m in group if not m.host_port):
            prev = randoms[-1] if randoms else None
            if prev is not None and prev.container_port + prev.range > m.container_port:
                new_range = m.container_port - prev.container_port + m.range
                randoms[-1] = _with_range(prev, max(prev.range, new_range))
                continue
            randoms.append(m)
        for m in joined:
            used_hosts.update(range(m.host_port, m.host_port + m.range))
        for m in randoms:
            m = _random_host_port(m, used_hosts)
            used_hosts.update(range(m.host_port, m.host_port + m.range))
            joined.append(m)
        for m in joined:
            used_ctr.setdefault(proto, set()).update(
                range(m.container_port, m.container_port + m.range)
            )
        out += joined
    taken = {
        (m.host_ip, m.protocol, h) for m in out for h in range(m.host_port, m.host_port + m.range)
    }
    for e in exposed:
        if e.container_port in used_ctr.get(e.protocol, set()):
            continue
        used: set[int] = {h for _, pr, h in taken if pr == e.protocol}
        m = _random_host_port(
            PortMapping(host_ip="", host_port=0, container_port=e.container_port,
                        protocol=e.protocol, range=1),
            used,
        )  # fmt: skip
        taken.add(("", e.protocol, m.host_port))
        used_ctr.setdefault(e.protocol, set()).add(e.container_port)
        out.append(m)
    return tuple(out)


def _with_range(m: PortMapping, rng: int) -> PortMapping:
    return PortMapping(host_ip=m.host_ip, host_port=m.host_port,
                       container_port=m.container_port, protocol=m.protocol, range=rng)  # fmt: skip


def _random_host_port(m: PortMapping, used: set[int]) -> PortMapping:
    """`m` with a free host port (a free run of `m.range` ports): the kernel picks one (a
    socket bound to port 0), and each port of the run must be bindable and unused here."""
    for _ in range(_RANDOM_TRIES):
        port = free_port(m.protocol, m.host_ip)
        if port + m.range - 1 > _MAX_PORT:
            continue
        run = range(port, port + m.range)
        if any(p in used for p in run):
            continue
        if m.range > 1 and not all(_bindable(m.protocol, m.host_ip, p) for p in run[1:]):
            continue
        return _with_port(m, port)
    rng = f"with range {m.range} " if m.range > 1 else ""
    raise InvalidArgument(
        f"failed to find an open port to expose container port {m.container_port} {rng}"
        "on the host"
    )


def _with_port(m: PortMapping, port: int) -> PortMapping:
    return PortMapping(host_ip=m.host_ip, host_port=port, container_port=m.container_port,
                       protocol=m.protocol, range=m.range)  # fmt: skip


def _new_socket(protocol: str, host_ip: str) -> tuple[_socket.socket, str]:
    # the C module's socket (the `socket` package imports selectors, enum...): no `with`
    family = _socket.AF_INET6 if ":" in host_ip else _socket.AF_INET
    kind = _socket.SOCK_DGRAM if protocol == "udp" else _socket.SOCK_STREAM
    return _socket.socket(family, kind), host_ip


def free_port(protocol: str = "tcp", host_ip: str = "") -> int:
    """A port the kernel says is free now for `protocol` on `host_ip` (all addresses for "")."""
    sock, addr = _new_socket(protocol, host_ip)
    try:
        sock.bind((addr, 0))
        return int(sock.getsockname()[1])
    finally:
        sock.close()


def _bindable(protocol: str, host_ip: str, port: int) -> bool:
    sock, addr = _new_socket(protocol, host_ip)
    try:
        sock.bind((addr, port))
    except OSError:
        return False
    finally:
        sock.close()
    return True
