"""`ip_address`, `ip_network` and `ip_interface` as the `ipaddress` module's, for the network
setup's path, without importing `ipaddress` for IPv4 (it imports `re` and `functools`: with
what they import, ~6 ms at each start, see `pypod/stdlite.py`).

A string (or integer) that `ipaddress` reads as an IPv4 address, network (`A.B.C.D/N`,
`strict=False`) or interface gives a small object with the attributes the network code uses
(`version`, `int()`, `str()`, `packed`, `compressed`, `is_unspecified`, `prefixlen`,
`network_address`, `broadcast_address`, `ip`, `network`, `in`, `==`, hashing), the same
values as `ipaddress`'s.  Anything else (IPv6, a netmask written as an address, a value that
is not valid) goes to `ipaddress` itself: its objects and its errors, exactly.
tests/unit/test_network_addr.py holds the two to each other.  For type checkers these *are*
`ipaddress`'s functions; an attribute not written here (`netmask`, `hosts()`, `is_private`...)
is taken from the equivalent `ipaddress` object, so code written against `ipaddress` works.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ipaddress import ip_address as ip_address
    from ipaddress import ip_interface as ip_interface
    from ipaddress import ip_network as ip_network

__all__ = ["ip_address", "ip_interface", "ip_network", "parse_ipv4"]

_ALL_ONES = (1 << 32) - 1


def parse_ipv4(text: str) -> int | None:
    """The integer of `text` when `ipaddress.IPv4Address(text)` accepts it, else None."""
    octets = text.split(".")
    if len(octets) != 4:
        return None
    value = 0
    for octet in octets:
        if not octet or len(octet) > 3 or not (octet.isascii() and octet.isdigit()):
            return None
        if octet[0] == "0" and octet != "0":  # ipaddress: leading zeros are not permitted
            return None
        n = int(octet)
        if n > 255:
            return None
        value = value << 8 | n
    return value


def _prefix(text: str) -> int | None:
    if not (text.isascii() and text.isdigit()):
        return None
    n = int(text)
    return n if n <= 32 else None


def _split(text: str) -> tuple[int, int] | None:
    """(address, prefix length) of "A.B.C.D[/N]" when ipaddress reads it so, else None."""
    addr, slash, prefix = text.partition("/")
    ip = parse_ipv4(addr)
    if ip is None:
        return None
    if not slash:
        return ip, 32
    n = _prefix(prefix)
    return None if n is None else (ip, n)


if not TYPE_CHECKING:

    class IPv4Address:
        """`ipaddress.IPv4Address`'s values, for what the network code asks of one."""

        __slots__ = ("_ip",)
        version = 4
        _version = 4
        max_prefixlen = 32

        def __init__(self, ip):
            self._ip = ip

        def __getattr__(self, name):  # what is not written here: ipaddress's own answer
            import ipaddress

            return getattr(ipaddress.IPv4Address(self._ip), name)

        def __lt__(self, other):
            if type(other) is not type(self):
                return NotImplemented
            return self._ip < other._ip

        def __int__(self):
            return self._ip

        def __str__(self):
            ip = self._ip
            return f"{ip >> 24}.{ip >> 16 & 255}.{ip >> 8 & 255}.{ip & 255}"

        def __repr__(self):
            return f"IPv4Address('{self}')"

        def __format__(self, spec):
            if not spec:
                return str(self)
            import ipaddress

            return format(ipaddress.IPv4Address(self._ip), spec)

        def __eq__(self, other):
            try:
                return self._ip == other._ip and self._version == other._version
            except AttributeError:
                return NotImplemented

        def __hash__(self):
            return hash(hex(self._ip))

        @property
        def compressed(self):
            return str(self)

        @property
        def packed(self):
            return self._ip.to_bytes(4, "big")

        @property
        def is_unspecified(self):
            return self._ip == 0

    class IPv4Network:
        """`ipaddress.IPv4Network(..., strict=False)`'s values."""

        __slots__ = ("_net", "prefixlen", "_mask")
        version = 4
        _version = 4
        max_prefixlen = 32

        def __init__(self, ip, prefixlen):
            self._mask = _ALL_ONES ^ (_ALL_ONES >> prefixlen)
            self._net = ip & self._mask
            self.prefixlen = prefixlen

        def __getattr__(self, name):  # what is not written here: ipaddress's own answer
            import ipaddress

            return getattr(ipaddress.IPv4Network((self._net, self.prefixlen)), name)

        @property
        def network_address(self):
            return IPv4Address(self._net)

        @property
        def broadcast_address(self):
            return IPv4Address(self._net | (_ALL_ONES ^ self._mask))

        def __contains__(self, other):
            if isinstance(other, IPv4Network) or getattr(other, "_version", None) != 4:
                return False
            return int(other) & self._mask == self._net

        def __str__(self):
            return f"{self.network_address}/{self.prefixlen}"

        def __repr__(self):
            return f"IPv4Network('{self}')"

        def __eq__(self, other):
            if not isinstance(other, IPv4Network):
                return NotImplemented
            return (self._net, self.prefixlen) == (other._net, other.prefixlen)

        def __hash__(self):
            return hash((self._net, self._mask))

    class IPv4Interface(IPv4Address):
        """`ipaddress.IPv4Interface`'s values: `ip`, `network`, "A.B.C.D/N"."""

        __slots__ = ("network",)

        def __init__(self, ip, prefixlen):
            super().__init__(ip)
            self.network = IPv4Network(ip, prefixlen)

        def __getattr__(self, name):  # what is not written here: ipaddress's own answer
            import ipaddress

            return getattr(ipaddress.IPv4Interface((self._ip, self.network.prefixlen)), name)

        @property
        def ip(self):
            return IPv4Address(self._ip)

        def __str__(self):
            return f"{IPv4Address.__str__(self)}/{self.network.prefixlen}"

        def __repr__(self):
            return f"IPv4Interface('{self}')"

        def __eq__(self, other):
            if not isinstance(other, IPv4Interface):
                return NotImplemented
            return self._ip == other._ip and self.network == other.network

        def __hash__(self):
            return hash((self._ip, self.network.prefixlen))

    def ip_address(address):
        """`ipaddress.ip_address(address)`."""
        if isinstance(address, str):
            ip = parse_ipv4(address)
            if ip is not None:
                return IPv4Address(ip)
        elif type(address) is int and 0 <= address <= _ALL_ONES:
            return IPv4Address(address)
        import ipaddress

        return ipaddress.ip_address(address)

    def ip_network(address, strict=True):
        """`ipaddress.ip_network(address, strict)`."""
        if isinstance(address, str):
            found = _split(address)
            if found is not None:
                net = IPv4Network(*found)
                if not strict or net._net == found[0]:  # strict: no host bits set
                    return net
        import ipaddress

        return ipaddress.ip_network(address, strict)

    def ip_interface(address):
        """`ipaddress.ip_interface(address)`."""
        if isinstance(address, str):
            found = _split(address)
            if found is not None:
                return IPv4Interface(*found)
        import ipaddress

        return ipaddress.ip_interface(address)
