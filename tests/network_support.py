"""Helpers for the bridge network tests: unique bridges and subnets, namespaces, cleanup.

Everything a test creates is named uniquely (bridge `pypodt<random>`, a free 10.2xx.N.0/24
subnet, container ids) so tests can run next to each other and next to a real pypod on the
same host; `Lab` undoes all of it, even when the test fails.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from pypod.linux import netns as netns_mod
from pypod.network import firewall
from pypod.network import setup as netsetup
from pypod.network.types import (
    LeaseRange,
    NetResult,
    Network,
    PerNetworkOptions,
    PortMapping,
    SetupOptions,
    Subnet,
)


def host_networks() -> list[ipaddress.IPv4Network]:
    """IPv4 networks the host routes or has addresses in."""
    out = []
    p = subprocess.run(
        ["ip", "-4", "-j", "route", "show", "table", "all"], capture_output=True, text=True
    )
    for route in json.loads(p.stdout or "[]"):
        dst = route.get("dst", "")
        if dst and dst != "default":
            with contextlib.suppress(ValueError):
                out.append(ipaddress.ip_network(dst, strict=False))
    p = subprocess.run(["ip", "-4", "-j", "addr"], capture_output=True, text=True)
    for link in json.loads(p.stdout or "[]"):
        for a in link.get("addr_info", ()):
            out.append(ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False))
    return [n for n in out if isinstance(n, ipaddress.IPv4Network)]


def free_subnet(taken: Sequence[ipaddress.IPv4Network] = ()) -> ipaddress.IPv4Network:
    """A random 10.2xx.N.0/24 that overlaps nothing on the host (nor `taken`)."""
    used = host_networks() + list(taken)
    for _ in range(200):
        net = ipaddress.ip_network(
            f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(256)}.0/24"
        )
        if not any(net.overlaps(u) for u in used):
            return net
    raise AssertionError("no free 10.2xx.N.0/24 subnet on this host")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


class Lab:
    """Test networks, namespaces and containers; `close()` removes all of them."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.runroot = str(tmp / "run")
        self.networks: dict[str, Network] = {}
        self.namespaces: list[str] = []
        self.containers: list[SetupOptions] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        self.subnets: list[ipaddress.IPv4Network] = []

    def network(
        self,
        *,
        internal: bool = False,
        mtu: int = 0,
        lease_range: tuple[str, str] | None = None,
        ipv6: str = "",
        dns: bool = False,
        isolate: bool = False,
    ) -> Network:
        net = free_subnet(self.subnets)
        self.subnets.append(net)
        suffix = secrets.token_hex(4)
        gateway = str(net.network_address + 1)
        subnets = [
            Subnet(
                subnet=str(net),
                gateway=gateway,
                lease_range=LeaseRange(start_ip=lease_range[0], end_ip=lease_range[1])
                if lease_range
                else None,
            )
        ]
        if ipv6:
            v6 = ipaddress.ip_network(ipv6)
            subnets.append(Subnet(subnet=str(v6), gateway=str(v6.network_address + 1)))
        network = Network(
            name=f"t{suffix}",
            id=secrets.token_hex(32),
            network_interface=f"pypodt{suffix}",
            subnets=tuple(subnets),
            internal=internal,
            ipv6_enabled=bool(ipv6),
            dns_enabled=dns,
            options={
                **({"mtu": str(mtu)} if mtu else {}),
                **({"isolate": "true"} if isolate else {}),
            },
        )
        self.networks[network.name] = network
        return network

    def netns(self) -> str:
        path = str(self.tmp / f"ns-{secrets.token_hex(4)}")
        netns_mod.create(path)
        self.namespaces.append(path)
        return path

    def options(
        self,
        *networks: Network,
        ports: Sequence[PortMapping] = (),
        static_ips: Sequence[str] = (),
        mac: str = "",
        netns: str | None = None,
    ) -> SetupOptions:
        cid = secrets.token_hex(32)
        opts = SetupOptions(
            container_id=cid,
            container_name=f"c{cid[:6]}",
            netns=netns or self.netns(),
            networks={
                n.name: PerNetworkOptions(
                    interface_name=f"eth{i}",
                    static_ips=tuple(static_ips) if i == 0 else (),
                    static_mac=mac if i == 0 else "",
                )
                for i, n in enumerate(networks)
            },
            port_mappings=tuple(ports),
        )
        self.containers.append(opts)
        return opts

    def setup(self, opts: SetupOptions) -> dict[str, NetResult]:
        return netsetup.setup(opts, self.networks, self.runroot)

    def teardown(self, opts: SetupOptions) -> None:
        netsetup.teardown(opts, self.networks, self.runroot)

    def container(
        self, *networks: Network, **kw: object
    ) -> tuple[SetupOptions, dict[str, NetResult]]:
        opts = self.options(*networks, **kw)  # type: ignore[arg-type]
        return opts, self.setup(opts)

    def run_in(
        self, netns: str, *argv: str, timeout: float = 10
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["nsenter", f"--net={netns}", *argv], capture_output=True, text=True, timeout=timeout
        )

    def serve(self, netns: str, port: int, reply: str, udp: bool = False) -> None:
        """A server in `netns` answering `reply` on `port` (tcp, or udp with `udp`)."""
        code = SERVER_UDP if udp else SERVER_TCP
        p = subprocess.Popen(
            ["nsenter", f"--net={netns}", sys.executable, "-c", code, str(port), reply],
            stdout=subprocess.PIPE,
        )
        self.processes.append(p)
        assert p.stdout is not None
        assert p.stdout.readline().strip() == b"ready"

    def close(self) -> None:
        for p in self.processes:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.wait()
        for opts in self.containers:
            with contextlib.suppress(Exception):
                self.teardown(opts)
        with contextlib.suppress(Exception):
            from pypod.network import dns

            dns.stop_all(self.runroot)
        for ns in self.namespaces:
            with contextlib.suppress(Exception):
                netns_mod.remove(ns)
        for net in self.networks.values():
            with contextlib.suppress(Exception):
                firewall.remove_network(net)
            subprocess.run(["ip", "link", "del", net.network_interface], capture_output=True)


SERVER_TCP = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(sys.argv[2].encode())
    c.close()
"""

SERVER_UDP = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
while True:
    data, addr = s.recvfrom(1024)
    s.sendto(sys.argv[2].encode(), addr)
"""


def fetch_tcp(host: str, port: int, timeout: float = 3) -> str:
    with socket.create_connection((host, port), timeout=timeout) as s:
        return s.recv(1024).decode()


def fetch_udp(host: str, port: int, timeout: float = 1, tries: int = 3) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        for _ in range(tries):
            s.sendto(b"ping", (host, port))
            with contextlib.suppress(TimeoutError):
                return s.recv(1024).decode()
    raise TimeoutError(f"no UDP answer from {host}:{port}")


FETCH_IN_NETNS = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3) as s:
    print(s.recv(1024).decode())
"""


def our_rules(comment_prefixes: Sequence[str]) -> list[str]:
    """Comments of the rules in table inet pypod that start with one of the prefixes."""
    objects = firewall.list_table() or []
    return [
        o["rule"]["comment"]
        for o in objects
        if "rule" in o
        and any(str(o["rule"].get("comment", "")).startswith(p) for p in comment_prefixes)
    ]


def links() -> list[dict[str, object]]:
    p = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True)
    return list(json.loads(p.stdout))


def veths_on(bridge: str) -> list[str]:
    return [str(link["ifname"]) for link in links() if link.get("master") == bridge]


def wait_for(predicate: object, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def lab(tmp: Path) -> Iterator[Lab]:
    lb = Lab(tmp)
    try:
        yield lb
    finally:
        lb.close()
