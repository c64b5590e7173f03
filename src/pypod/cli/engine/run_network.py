"""The network flags of `run`/`create`, read as podman 4.3 reads them.

`--network` (several, each `MODE` or `NAME[:ip=,mac=,alias=,interface_name=]`), `--ip`,
`--mac-address`, `--network-alias`, `-p`, `-P`, `--expose`, `--add-host`, `--dns`,
`--dns-search`, `--dns-option`, `--no-hosts` -> the network fields of ContainerConfig.
"""

from __future__ import annotations

import sys

from pypod.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

#: modes that are not network names
_MODES = ("bridge", "none", "host", "private", "slirp4netns", "pasta")
_HEX = "0123456789abcdefABCDEF"


def network_fields(
    texts: Callable[[str], list[str]],
    text: Callable[[str], str | None],
    flag: Callable[[str], bool],
) -> dict[str, Any]:
    """The ContainerConfig fields of the network flags (`texts`/`text`/`flag` read a flag)."""
    mode, networks, options = _networks(texts("network"))
    ip, mac, aliases = text("ip"), text("mac-address"), texts("network-alias")
    if ip is not None or mac is not None or aliases:
        _per_network(mode, networks, ip, mac, aliases)
    ports = _publish(texts("publish"))
    if ports and mode in ("host", "none") or ports and mode.startswith("container:"):
        print(
            "Port mappings have been discarded as one of the Host, Container, Pod, and None "
            "network modes are in use",
            file=sys.stderr,
        )
        ports = ()
    return {
        "network": mode,
        "networks": networks,
        "network_options": options,
        "ports": ports,
        "publish_all": flag("publish-all"),
        "expose": _expose(texts("expose")),
        "add_hosts": tuple(_add_host(t) for t in texts("add-host")),
        "dns_servers": tuple(_dns_server(t) for t in texts("dns")),
        "dns_search": tuple(texts("dns-search")),
        "dns_options": tuple(texts("dns-option")),
        "no_hosts": flag("no-hosts"),
    }


def _networks(given: list[str]) -> tuple[str, dict[str, dict[str, Any]], tuple[str, ...]]:
    """(mode, {network name: options}, slirp4netns/pasta options) of the `--network` flags."""
    mode = ""
    networks: dict[str, dict[str, Any]] = {}
    options: tuple[str, ...] = ()
    for text in given:
        if text in ("", "container:", "ns:"):
            raise InvalidArgument(f'invalid --network "{text}"')
        name, _, opts = text.partition(":")
        if name in ("container", "ns"):
            this = text
        elif name in ("slirp4netns", "pasta"):
            this, options = name, tuple(o for o in opts.split(",") if o)
        elif name in _MODES:
            if opts and name != "bridge":
                raise InvalidArgument(f"network mode {name} does not take options")
            this = name
            if name == "bridge" and opts:
                networks["bridge"] = _bridge_options(name, opts)
        else:
            this = "bridge"
            networks[name] = _bridge_options(name, opts)
        if mode and (this != "bridge" or mode != "bridge"):
            raise InvalidArgument(
                f"can only set extra network names, selected mode {this} conflicts with {mode}: "
                "invalid argument"
            )
        mode = this
    if "bridge" in networks:  # `bridge:ip=...`: the options are the default network's
        from pypod.network.types import DEFAULT_NETWORK

        networks[DEFAULT_NETWORK] = networks.pop("bridge")
    return mode, networks, options


def _bridge_options(name: str, text: str) -> dict[str, Any]:
    out: dict[str, Any] = {"static_ips": [], "aliases": []}
    for item in (o for o in text.split(",") if o):
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidArgument(
                f"invalid option for network {name}: must be in the form key=value"
            )
        if key == "ip" or key == "ip6":
            out["static_ips"].append(_ip(value, f"{value} is not an ip address"))
        elif key == "mac":
            out["static_mac"] = _mac(value)
        elif key == "alias":
            out["aliases"].append(value)
        elif key == "interface_name":
            out["interface_name"] = value
        else:
            raise InvalidArgument(
                f"invalid option for network {name}: unknown bridge network option: {key}"
            )
    return out


def _per_network(
    mode: str, networks: dict[str, dict[str, Any]], ip: str | None, mac: str | None,
    aliases: list[str],
) -> None:  # fmt: skip
    """`--ip`, `--mac-address`, `--network-alias`: options of the one network."""
    for flag, given in (("--ip", ip), ("--mac-address", mac), ("--network-alias", aliases)):
        if not given:
            continue
        if mode not in ("", "bridge"):
            raise InvalidArgument(
                f"{flag} can only be set when the network mode is bridge: invalid argument"
            )
        if len(networks) > 1:
            raise InvalidArgument(f"{flag} can only be set for a single network: invalid argument")
    if not networks:
        from pypod.network.types import DEFAULT_NETWORK

        networks[DEFAULT_NETWORK] = {"static_ips": [], "aliases": []}
    only = next(iter(networks.values()))
    if ip is not None:
        only.setdefault("static_ips", []).append(_ip(ip, f"{ip} is not an ip address"))
    if mac is not None:
        only["static_mac"] = _mac(mac)
    only.setdefault("aliases", []).extend(aliases)


def _ip(text: str, message: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise InvalidArgument(message) from None


def _mac(text: str) -> str:
    if not _is_mac(text):
        raise InvalidArgument(f"address {text}: invalid MAC address")
    return text.lower().replace("-", ":")


def _is_mac(text: str) -> bool:
    """`[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}`: six hex pairs joined by colons or dashes."""
    return len(text) == 17 and all(
        c in ":-" if i % 3 == 2 else c in _HEX for i, c in enumerate(text)
    )


def _port_range(text: str) -> tuple[int, int, str] | None:
    r"""(first, last, protocol) of `(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?` (Unicode decimal
    digits, as `\d`; "tcp" when no protocol is given), None when `text` is not one."""
    ports, slash, proto = text.partition("/")
    if slash and proto not in ("tcp", "udp", "sctp"):
        return None
    first, dash, last = ports.partition("-")
    if not first.isdecimal() or dash and not last.isdecimal():
        return None
    return int(first), int(last) if dash else int(first), proto or "tcp"


def _publish(texts: list[str]) -> tuple[dict[str, Any], ...]:
    if not texts:
        return ()
    from pypod.network.ports import parse_publish
    from pypod.network.types import to_json

    out: list[dict[str, Any]] = []
    for text in texts:
        out.extend(to_json(p) for p in parse_publish(text))
    return tuple(out)


def _expose(texts: list[str]) -> tuple[str, ...]:
    """`--expose 80`, `8000-8010/udp` -> ("80/tcp", "8000/udp", ...) checked."""
    out: list[str] = []
    for text in texts:
        found = _port_range(text)
        if found is None:
            raise InvalidArgument(f'invalid port format "{text}"')
        first, last, proto = found
        if not 0 < first <= last <= 65535:
            raise InvalidArgument(f'invalid port range "{text}"')
        out.extend(f"{port}/{proto}" for port in range(first, last + 1))
    return tuple(dict.fromkeys(out))


def _add_host(text: str) -> tuple[str, str]:
    host, sep, ip = text.partition(":")
    if not sep or not host:
        raise InvalidArgument(f'bad format for add-host: "{text}"')
    if ip != "host-gateway":
        _ip(ip, f'invalid IP address in add-host: "{ip}"')
    return host, ip


def _dns_server(text: str) -> str:
    return _ip(text, f"{text} is not an ip address")
