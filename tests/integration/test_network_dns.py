"""The DNS responder of user networks (pypod's aardvark-dns), on real interfaces.

Each test makes its own bridges ("pypoddns<random>", 10.2xx.N.0/24, the gateway .1) with the
`ip` tool; a "container" is an extra address on the bridge that the test's client binds to
(its queries come from that address, as a container's do), or a network namespace attached
through a veth pair for busybox's nslookup.  Forwarding goes to a fake upstream resolver on a
random 127.x.y.z:53 through a resolv.conf of the test (PYPOD_DNS_RESOLV_CONF).  Every test
checks that no responder is left, and the fixtures remove interfaces, namespaces and
processes even when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pypod.errors import InUse, InvalidState
from pypod.network import dns, dns_server
from pypod.network import dns_wire as w
from pypod.network.types import Network, Subnet

pytestmark = pytest.mark.root

CID_WEB = "1" * 64
CID_DB = "2" * 64
CID_CLIENT = "3" * 64
CID_OTHER = "4" * 64


def ip_cmd(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


def used_prefixes() -> set[str]:
    out = json.loads(ip_cmd("-j", "-4", "addr"))
    used = set()
    for link in out:
        for a in link.get("addr_info", []):
            used.add(".".join(a["local"].split(".")[:3]))
    for line in ip_cmd("-4", "route").splitlines():
        used.add(".".join(line.split("/")[0].split(".")[:3]))
    return used


class Bridge:
    """A bridge with a /24 (and optionally a /64) and the Network record pypod would have."""

    def __init__(self, ipv6: bool = False, internal: bool = False, dns_enabled: bool = True):
        tag = f"{random.randrange(16**6):06x}"
        self.name = f"pypoddns{tag}"
        used = used_prefixes()
        while True:
            prefix = f"10.{random.randrange(200, 255)}.{random.randrange(256)}"
            if prefix not in used:
                break
        self.prefix = prefix
        self.gateway = f"{prefix}.1"
        self.v6prefix = f"fd{tag[:2]}:{tag[2:]}::" if ipv6 else ""
        ip_cmd("link", "add", self.name, "type", "bridge")
        ip_cmd("addr", "add", f"{self.gateway}/24", "dev", self.name)
        subnets = [Subnet(subnet=f"{prefix}.0/24", gateway=self.gateway)]
        if ipv6:
            ip_cmd("addr", "add", f"{self.v6prefix}1/64", "dev", self.name, "nodad")
            subnets.append(Subnet(subnet=f"{self.v6prefix}/64", gateway=f"{self.v6prefix}1"))
        ip_cmd("link", "set", self.name, "up")
        self.network = Network(
            name=f"net{tag}",
            id=tag * 10 + "abcd",
            network_interface=self.name,
            subnets=tuple(subnets),
            internal=internal,
            dns_enabled=dns_enabled,
            ipv6_enabled=ipv6,
        )

    def address(self, host: int, v6: bool = False) -> str:
        """Add `.host` (or `::host`) to the bridge: a container's address the test binds to."""
        if v6:
            addr = w.unpack_ip(w.pack_ip(f"{self.v6prefix}{host:x}"))
            ip_cmd("addr", "add", f"{addr}/64", "dev", self.name, "nodad")
        else:
            addr = f"{self.prefix}.{host}"
            ip_cmd("addr", "add", f"{addr}/24", "dev", self.name)
        return addr

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            ip_cmd("link", "del", self.name)


@pytest.fixture
def bridges() -> Iterator[Callable[..., Bridge]]:
    made: list[Bridge] = []

    def make(**kw: Any) -> Bridge:
        b = Bridge(**kw)
        made.append(b)
        return b

    yield make
    for b in made:
        b.remove()


def query(
    server: str,
    name: str,
    qtype: int = w.TYPE_A,
    *,
    src: str,
    tcp: bool = False,
    timeout: float = 6.0,
) -> w.Message:
    """One query from `src` (a container's address) to `server`:53."""
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    qid = random.randrange(65536)
    data = w.encode_query(qid, name, qtype)
    kind = socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
    with socket.socket(family, kind) as s:
        s.settimeout(timeout)
        s.bind((src, 0))
        if tcp:
            s.connect((server, 53))
            s.sendall(len(data).to_bytes(2, "big") + data)
            size = int.from_bytes(recv_exact(s, 2), "big")
            reply = recv_exact(s, size)
        else:
            s.sendto(data, (server, 53))
            reply = s.recv(65535)
    msg = w.parse_message(reply)
    assert msg.id == qid
    assert msg.flags & w.FLAG_QR
    return msg


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        assert chunk, "connection closed early"
        buf += chunk
    return buf


def addrs(msg: w.Message) -> list[str]:
    return [w.unpack_ip(r.rdata) for r in msg.answers if r.rtype in (w.TYPE_A, w.TYPE_AAAA)]


class Upstream:
    """A fake resolver on 127.x.y.z:53 (UDP and TCP): example.test -> 192.0.2.7, `silent.test`
    gets no answer, anything else NXDOMAIN.  `queries` lists the names it was asked."""

    def __init__(self, answer: str = "192.0.2.7") -> None:
        self.addr = (
            f"127.{random.randrange(1, 255)}.{random.randrange(256)}.{random.randrange(1, 255)}"
        )
        self.answer = answer
        self.queries: list[str] = []
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((self.addr, 53))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((self.addr, 53))
        self.tcp.listen(8)
        self.stopping = False
        self.threads = [
            threading.Thread(target=self._serve_udp, daemon=True),
            threading.Thread(target=self._serve_tcp, daemon=True),
        ]
        for t in self.threads:
            t.start()

    def _reply(self, data: bytes) -> bytes | None:
        msg = w.parse_message(data)
        name = w.name_text(msg.questions[0].lower())
        self.queries.append(name)
        if name == "silent.test":
            return None
        if name == "example.test":
            return w.build_response(msg, 0, [(w.TYPE_A, w.pack_ip(self.answer))])
        return w.build_response(msg, w.RCODE_NXDOMAIN)

    def _serve_udp(self) -> None:
        while not self.stopping:
            try:
                data, src = self.udp.recvfrom(4096)
            except OSError:
                return
            if self.stopping:
                return
            try:
                reply = self._reply(data)
            except w.WireError:
                continue
            if reply is not None:
                self.udp.sendto(reply, src)

    def _serve_tcp(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    size = int.from_bytes(recv_exact(conn, 2), "big")
                    reply = self._reply(recv_exact(conn, size))
                    if reply is not None:
                        conn.sendall(len(reply).to_bytes(2, "big") + reply)
                except (OSError, AssertionError, w.WireError):
                    pass

    def close(self) -> None:
        self.stopping = True
        for s in (self.udp, self.tcp):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


def servers_of(directory: str) -> list[int]:
    """Every live responder process serving `directory`."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        ours = any(a.endswith(b"dns_server.py") for a in argv) and os.fsencode(directory) in argv
        if ours and state != b"Z":
            out.append(int(entry))
    return out


def wait_for(cond: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Env:
    def __init__(self, tmp_path: Path, upstream: Upstream) -> None:
        self.runroot = str(tmp_path / "run")
        self.dir = dns.config_dir(self.runroot)
        self.upstream = upstream
        self.resolv = tmp_path / "resolv.conf"
        self.resolv.write_text(f"search example\nnameserver {upstream.addr}\n")

    def add(
        self, bridge: Bridge, cid: str, names: list[str], ips: list[str], **kw: Any
    ) -> list[str]:
        return dns.add_records(self.runroot, bridge.network, cid, names, ips, **kw)

    def remove(self, bridge: Bridge, cid: str) -> None:
        dns.remove_records(self.runroot, bridge.network, cid)

    def records(self, name: str) -> list[str]:
        return (Path(self.dir) / name).read_text().splitlines()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    upstream = Upstream()
    e = Env(tmp_path, upstream)
    monkeypatch.setenv(dns.RESOLV_CONF_ENV, str(e.resolv))
    try:
        yield e
    finally:
        upstream.close()
        dns.stop_all(e.runroot)
        left = servers_of(e.dir)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f"stop_all left a responder behind: {left}"


# --- names ----------------------------------------------------------------------------------------


def test_names_aliases_and_short_id_resolve(env: Env, bridges: Callable[..., Bridge]) -> None:
    br = bridges()
    web, client = br.address(5), br.address(6)
    servers = env.add(br, CID_WEB, ["web", CID_WEB[:12], "frontend"], [f"{web}/24"])
    assert servers == [br.gateway]
    env.add(br, CID_CLIENT, ["client"], [client])
    assert env.records(br.network.name) == [
        br.gateway,
        f"{CID_WEB} {web}  web,{CID_WEB[:12]},frontend",
        f"{CID_CLIENT} {client}  client",
    ]
    for name in ("web", "WEB", "web.dns.podman", "Web.Dns.Podman.", CID_WEB[:12], "frontend"):
        msg = query(br.gateway, name, src=client)
        assert (msg.rcode, addrs(msg)) == (w.RCODE_NOERROR, [web]), name
        assert msg.answers[0].ttl == 60
    # a v4-only container: the name exists, no AAAA
    msg = query(br.gateway, "web", w.TYPE_AAAA, src=client)
    assert (msg.rcode, msg.answers) == (w.RCODE_NOERROR, [])
    # it resolves itself too
    assert addrs(query(br.gateway, "client", src=client)) == [client]
    pid = dns.server_pid(env.runroot)
    assert pid is not None and servers_of(env.dir) == [pid]


def test_unknown_names_are_nxdomain(env: Env, bridges: Callable[..., Bridge]) -> None:
    br = bridges()
    client = br.address(6)
    env.add(br, CID_CLIENT, ["client"], [client])
    for name in ("nothere", "nothere.dns.podman", "a.b.dns.podman"):
        msg = query(br.gateway, name, src=client)
        assert (msg.rcode, msg.answers) == (w.RCODE_NXDOMAIN, []), name
    assert env.upstream.queries == []  # never asked upstream


def test_ptr_of_container_addresses(env: Env, bridges: Callable[..., Bridge]) -> None:
    br = bridges()
    web, client = br.address(5), br.address(6)
    env.add(br, CID_WEB, ["web", "frontend"], [web])
    env.add(br, CID_CLIENT, ["client"], [client])
    rev = ".".join(reversed(web.split("."))) + ".in-addr.arpa"
    msg = query(br.gateway, rev, w.TYPE_PTR, src=client)
    assert msg.rcode == w.RCODE_NOERROR
    assert [w.read_name(r.rdata, 0)[0] for r in msg.answers] == [(b"web",), (b"frontend",)]


def test_ipv6_gateway_and_aaaa(env: Env, bridges: Callable[..., Bridge]) -> None:
    br = bridges(ipv6=True)
    web4, web6 = br.address(5), br.address(5, v6=True)
    client6 = br.address(6, v6=True)
    client4 = br.address(6)
    v6gw = w.unpack_ip(w.pack_ip(f"{br.v6prefix}1"))
    servers = env.add(br, CID_WEB, ["web"], [web4, f"{web6}/64"])
    assert servers == [br.gateway, v6gw]
    env.add(br, CID_CLIENT, ["client"], [client4, client6])
    assert addrs(query(v6gw, "web", w.TYPE_AAAA, src=client6)) == [web6]
    assert addrs(query(v6gw, "web", w.TYPE_A, src=client6)) == [web4]
    assert addrs(query(br.gateway, "web", w.TYPE_AAAA, src=client4)) == [web6]
    rev = ".".join(reversed(w.pack_ip(web6).hex())) + ".ip6.arpa"
    msg = query(v6gw, rev, w.TYPE_PTR, src=client6)
    assert [w.read_name(r.rdata, 0)[0] for r in msg.answers] == [(b"web",)]


def test_tcp_queries(env: Env, bridges: Callable[..., Bridge]) -> None:
    br = bridges()
    web, client = br.address(5), br.address(6)
    env.add(br, CID_WEB, ["web"], [web])
    env.add(br, CID_CLIENT, ["client"], [client])
    assert addrs(query(br.gateway, "web", src=client, tcp=True)) == [web]
    msg = query(br.gateway, "example.test", src=client, tcp=True)
    assert addrs(msg) == ["192.0.2.7"]


# --- isolation ------------------------------------------------------------------------------------


def test_networks_do_not_see_each_other(env: Env, bridges: Callable[..., Bridge]) -> None:
    a, b = bridges(), bridges()
    web_a, client_a = a.address(5), a.address(6)
    other_b = b.address(5)
    env.add(a, CID_WEB, ["web"], [web_a])
    env.add(a, CID_CLIENT, ["client"], [client_a])
    assert env.add(b, CID_OTHER, ["other"], [other_b]) == [b.gateway]
    assert servers_of(env.dir) == [dns.server_pid(env.runroot)]  # one responder for both
    # a's container asks its gateway, or b's: b's names are not a's business
    for server in (a.gateway, b.gateway):
        msg = query(server, "other", src=client_a)
        assert (msg.rcode, msg.answers) == (w.RCODE_NXDOMAIN, []), server
        assert addrs(query(server, "web", src=client_a)) == [web_a]
    assert addrs(query(b.gateway, "other", src=other_b)) == [other_b]
    msg = query(b.gateway, "web", src=other_b)
    assert msg.rcode == w.RCODE_NXDOMAIN
    # an address that is no container's (the host) sees no names at all
    stranger = a.address(99)
    msg = query(a.gateway, "web", src=stranger)
    assert (msg.rcode, msg.answers) == (w.RCODE_NXDOMAIN, [])


def test_container_on_two_networks(env: Env, bridges: Callable[..., Bridge]) -> None:
    a, b = bridges(), bridges()
    web_a, other_b = a.address(5), b.address(5)
    client_a, client_b = a.address(6), b.address(6)
    env.add(a, CID_WEB, ["web"], [web_a])
    env.add(b, CID_OTHER, ["other"], [other_b])
    env.add(a, CID_CLIENT, ["client"], [client_a])
    env.add(b, CID_CLIENT, ["client"], [client_b])
    assert addrs(query(a.gateway, "other", src=client_a)) == [other_b]
    assert addrs(query(b.gateway, "web", src=client_b)) == [web_a]
    assert sorted(addrs(query(a.gateway, "client", src=client_a))) == sorted([client_a, client_b])
    # leaving b: b's names are gone for it, a's stay
    env.remove(b, CID_CLIENT)
    assert query(a.gateway, "other", src=client_a).rcode == w.RCODE_NXDOMAIN
    assert addrs(query(a.gateway, "web", src=client_a)) == [web_a]


# --- forwarding -----------------------------------------------------------------------------------


def test_forwarding_to_the_hosts_resolvers(env: Env, bridges: Callable[..., Bridge]) -> None:
    br = bridges()
    client = br.address(6)
    env.add(br, CID_CLIENT, ["client"], [client])
    msg = query(br.gateway, "example.test", src=client)
    assert (msg.rcode, addrs(msg)) == (w.RCODE_NOERROR, ["192.0.2.7"])
    msg = query(br.gateway, "missing.test", src=client)
    assert msg.rcode == w.RCODE_NXDOMAIN
    assert env.upstream.queries == ["example.test", "missing.test"]
    # resolv.conf changes are picked up (a second resolver, the first one gone)
    other = Upstream(answer="192.0.2.99")
    try:
        env.resolv.write_text(f"nameserver {other.addr}\n")
        time.sleep(1.1)  # the responder looks at resolv.conf at most once a second
        assert addrs(query(br.gateway, "example.test", src=client)) == ["192.0.2.99"]
    finally:
        other.close()


def test_servfail_when_upstream_fails(env: Env, bridges: Callable[..., Bridge]) -> None:
    br = bridges()
    client = br.address(6)
    dead = "127.254.254.253"  # nothing listens there: refused at once
    env.resolv.write_text(f"nameserver {dead}\n")
    env.add(br, CID_CLIENT, ["client"], [client])
    msg = query(br.gateway, "example.test", src=client)
    assert (msg.rcode, msg.answers) == (w.RCODE_SERVFAIL, [])
    # a silent resolver first: after its timeout the next one answers
    env.resolv.write_text(f"nameserver {env.upstream.addr}\nnameserver {dead}\n")
    time.sleep(1.1)
    start = time.monotonic()
    msg = query(br.gateway, "silent.test", src=client)
    assert msg.rcode == w.RCODE_SERVFAIL
    assert time.monotonic() - start >= dns_server.UPSTREAM_TIMEOUT - 0.1
    # local names are answered while a forward waits
    env.add(br, CID_WEB, ["web"], [br.address(5)])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as slow:
        slow.bind((client, 0))
        slow.sendto(w.encode_query(1, "silent.test", w.TYPE_A), (br.gateway, 53))
        t0 = time.monotonic()
        assert addrs(query(br.gateway, "web", src=client)) == [f"{br.prefix}.5"]
        assert time.monotonic() - t0 < 1.0


def test_container_dns_servers_are_used(env: Env, bridges: Callable[..., Bridge]) -> None:
    br = bridges()
    client, plain = br.address(6), br.address(7)
    own = Upstream(answer="192.0.2.55")
    try:
        env.add(br, CID_CLIENT, ["client"], [client], dns_servers=[own.addr])
        env.add(br, CID_OTHER, ["plain"], [plain])
        assert addrs(query(br.gateway, "example.test", src=client)) == ["192.0.2.55"]
        assert addrs(query(br.gateway, "example.test", src=plain)) == ["192.0.2.7"]
    finally:
        own.close()


def test_internal_network_does_not_forward(env: Env, bridges: Callable[..., Bridge]) -> None:
    br = bridges(internal=True)
    web, client = br.address(5), br.address(6)
    env.add(br, CID_WEB, ["web"], [web])
    env.add(br, CID_CLIENT, ["client"], [client])
    assert (Path(env.dir) / f"{br.network.name}%internal").exists()
    assert addrs(query(br.gateway, "web", src=client)) == [web]
    assert query(br.gateway, "example.test", src=client).rcode == w.RCODE_NXDOMAIN
    assert env.upstream.queries == []
    env.remove(br, CID_WEB)
    env.remove(br, CID_CLIENT)
    assert not (Path(env.dir) / f"{br.network.name}%internal").exists()
    wait_for(lambda: not servers_of(env.dir), what="the responder to exit")


# --- the responder's life -------------------------------------------------------------------------


def port_free(address: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((address, 53))
        except OSError:
            return False
    return True


def test_removal_and_exit_after_the_last_record(env: Env, bridges: Callable[..., Bridge]) -> None:
    a, b = bridges(), bridges()
    web, client, other = a.address(5), a.address(6), b.address(5)
    env.add(a, CID_WEB, ["web"], [web])
    env.add(a, CID_CLIENT, ["client"], [client])
    env.add(b, CID_OTHER, ["other"], [other])
    pid = dns.server_pid(env.runroot)
    assert pid is not None
    env.remove(a, CID_WEB)
    assert query(a.gateway, "web", src=client).rcode == w.RCODE_NXDOMAIN
    env.remove(a, CID_WEB)  # again: nothing to do, no error
    env.remove(a, CID_CLIENT)
    assert not (Path(env.dir) / a.network.name).exists()
    assert port_free(a.gateway)  # a's gateway is not served any more
    assert dns.server_pid(env.runroot) == pid  # b still is
    assert addrs(query(b.gateway, "other", src=other)) == [other]
    env.remove(b, CID_OTHER)
    assert dns.server_pid(env.runroot) is None
    assert not servers_of(env.dir)  # gone when remove_records returns
    assert port_free(b.gateway)
    assert sorted(os.listdir(env.dir)) == [".lock", ".server.log"]
    # and it starts again when needed
    env.add(b, CID_OTHER, ["other"], [other])
    new = dns.server_pid(env.runroot)
    assert new is not None and new != pid
    assert addrs(query(b.gateway, "other", src=other)) == [other]


def test_sighup_reloads_the_files(env: Env, bridges: Callable[..., Bridge]) -> None:
    br = bridges()
    client = br.address(6)
    env.add(br, CID_CLIENT, ["client"], [client])
    path = Path(env.dir) / br.network.name
    path.write_text(path.read_text() + f"{CID_WEB} {br.prefix}.77  manual\n")
    pid = dns.server_pid(env.runroot)
    assert pid is not None
    os.kill(pid, signal.SIGHUP)
    wait_for(
        lambda: addrs(query(br.gateway, "manual", src=client)) == [f"{br.prefix}.77"],
        what="the reload",
    )
    assert dns.server_pid(env.runroot) == pid


def test_a_killed_responder_is_replaced(env: Env, bridges: Callable[..., Bridge]) -> None:
    br = bridges()
    web, client = br.address(5), br.address(6)
    env.add(br, CID_WEB, ["web"], [web])
    pid = dns.server_pid(env.runroot)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not servers_of(env.dir), what="the responder to die")
    env.add(br, CID_CLIENT, ["client"], [client])  # a stale control socket: a new responder
    new = dns.server_pid(env.runroot)
    assert new is not None and new != pid
    assert addrs(query(br.gateway, "web", src=client)) == [web]
    # `network reload` does the same without a change
    os.kill(new, signal.SIGKILL)
    wait_for(lambda: not servers_of(env.dir), what="the responder to die")
    dns.ensure_running(env.runroot)
    assert dns.server_pid(env.runroot) not in (None, new)
    assert addrs(query(br.gateway, "web", src=client)) == [web]
    dns.ensure_running(env.runroot)  # running: a reload, the same responder
    assert len(servers_of(env.dir)) == 1


def test_a_responder_whose_control_socket_is_gone_exits(
    env: Env, bridges: Callable[..., Bridge]
) -> None:
    """(its run root was removed under it): it checks every HOUSEKEEPING s and on SIGHUP."""
    br = bridges()
    client = br.address(6)
    env.add(br, CID_CLIENT, ["client"], [client])
    pid = dns.server_pid(env.runroot)
    assert pid is not None
    os.unlink(os.path.join(env.dir, ".ctl"))
    os.kill(pid, signal.SIGHUP)
    wait_for(lambda: not servers_of(env.dir), what="the exit")
    assert (Path(env.dir) / ".server.pid").exists()  # not its files any more: left alone


def test_stop_all(env: Env, bridges: Callable[..., Bridge]) -> None:
    a, b = bridges(), bridges()
    env.add(a, CID_WEB, ["web"], [a.address(5)])
    env.add(b, CID_OTHER, ["other"], [b.address(5)])
    assert servers_of(env.dir)
    dns.stop_all(env.runroot)
    assert not servers_of(env.dir)
    assert os.listdir(env.dir) == [".lock"]
    assert port_free(a.gateway) and port_free(b.gateway)


def test_port_in_use_is_an_error_and_leaves_nothing(
    env: Env, bridges: Callable[..., Bridge]
) -> None:
    a, b = bridges(), bridges()
    env.add(b, CID_OTHER, ["other"], [b.address(5)])  # a responder already runs, for b
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind((a.gateway, 53))
    try:
        with pytest.raises(InUse, match=f"network {a.network.name}.*{a.gateway}.*--disable-dns"):
            env.add(a, CID_WEB, ["web"], [a.address(5)])
        assert not (Path(env.dir) / a.network.name).exists()
        assert addrs(query(b.gateway, "other", src=f"{b.prefix}.5")) == [f"{b.prefix}.5"]
    finally:
        squatter.close()
    env.remove(b, CID_OTHER)
    # and when it is the first network (the responder's start fails)
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind((a.gateway, 53))
    try:
        with pytest.raises(InUse):
            env.add(a, CID_WEB, ["web"], [f"{a.prefix}.5"])
        assert not (Path(env.dir) / a.network.name).exists()
        wait_for(lambda: not servers_of(env.dir), what="the responder to exit")
    finally:
        squatter.close()


def test_concurrent_adds_keep_every_record(env: Env, bridges: Callable[..., Bridge]) -> None:
    br = bridges()
    client = br.address(6)
    env.add(br, CID_CLIENT, ["client"], [client])
    script = (
        "import sys, json\n"
        "from pypod.network import dns\n"
        "from pypod.network.types import Network, Subnet\n"
        "d = json.loads(sys.argv[1])\n"
        "net = Network(name=d['name'], id=d['id'], dns_enabled=True,\n"
        "              subnets=(Subnet(subnet=d['subnet'], gateway=d['gw']),))\n"
        "for i in range(d['start'], d['start'] + 5):\n"
        "    dns.add_records(d['runroot'], net, f'{i:064x}', [f'c{i}'], [d['prefix'] + f'.{i}'])\n"
    )
    procs = []
    for start in (10, 20, 30, 40):
        arg = json.dumps(
            {
                "name": br.network.name,
                "id": br.network.id,
                "subnet": f"{br.prefix}.0/24",
                "gw": br.gateway,
                "runroot": env.runroot,
                "prefix": br.prefix,
                "start": start,
            }
        )
        procs.append(subprocess.Popen([sys.executable, "-c", script, arg]))
    for p in procs:
        assert p.wait(60) == 0
    assert len(env.records(br.network.name)) == 1 + 1 + 20
    for i in (10, 24, 33, 44):
        assert addrs(query(br.gateway, f"c{i}", src=client)) == [f"{br.prefix}.{i}"]
    assert len(servers_of(env.dir)) == 1


# --- a real resolver: busybox nslookup in a network namespace -------------------------------------


@pytest.fixture
def netns(bridges: Callable[..., Bridge]) -> Iterator[Callable[[Bridge, int], tuple[str, str]]]:
    made: list[tuple[str, str]] = []

    def attach(br: Bridge, host: int) -> tuple[str, str]:
        tag = f"{random.randrange(16**6):06x}"
        ns, veth = f"pypoddns-{tag}", f"pdv{tag}"
        made.append((ns, veth))
        ip_cmd("netns", "add", ns)
        ip_cmd("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        ip_cmd("link", "set", veth, "master", br.name, "up")
        addr = f"{br.prefix}.{host}"
        ip_cmd("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
        ip_cmd("-n", ns, "link", "set", "eth0", "up")
        ip_cmd("-n", ns, "link", "set", "lo", "up")
        return ns, addr

    yield attach
    for ns, veth in made:
        with contextlib.suppress(subprocess.CalledProcessError):
            ip_cmd("link", "del", veth)
        with contextlib.suppress(subprocess.CalledProcessError):
            ip_cmd("netns", "del", ns)


def test_busybox_nslookup_from_a_namespace(
    env: Env, bridges: Callable[..., Bridge], netns: Callable[[Bridge, int], tuple[str, str]]
) -> None:
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox is not installed (Debian busybox-static)")
    br = bridges()
    web = br.address(5)
    ns, addr = netns(br, 7)
    env.add(br, CID_WEB, ["web", "frontend"], [web])
    env.add(br, CID_CLIENT, ["client"], [addr])

    def nslookup(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", ns, busybox, "nslookup", *args, br.gateway],
            capture_output=True,
            text=True,
            timeout=30,
        )

    out = nslookup("frontend")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"Address: {web}" in out.stdout
    out = nslookup("web.dns.podman")
    assert out.returncode == 0 and f"Address: {web}" in out.stdout
    out = nslookup("nobody.dns.podman")
    assert out.returncode != 0 and "NXDOMAIN" in out.stdout + out.stderr
    out = nslookup("example.test")
    assert out.returncode == 0 and "Address: 192.0.2.7" in out.stdout
    out = nslookup(web)
    assert out.returncode == 0 and "name = web" in out.stdout


def test_server_starts_fast(env: Env, bridges: Callable[..., Bridge]) -> None:
    """The responder is started on a container's start path: a few tens of milliseconds."""
    br = bridges()
    best = 10.0
    for i in range(3):
        start = time.monotonic()
        env.add(br, CID_CLIENT, ["client"], [f"{br.prefix}.6"])
        best = min(best, time.monotonic() - start)
        env.remove(br, CID_CLIENT)
        assert not servers_of(env.dir), i
    assert best < 0.25, best


def test_helpers_are_real() -> None:
    """The fake upstream and the query helper themselves (so a test cannot pass vacuously)."""
    up = Upstream()
    try:
        msg = query(up.addr, "example.test", src="127.0.0.1")
        assert addrs(msg) == ["192.0.2.7"]
        assert query(up.addr, "nope.test", src="127.0.0.1").rcode == w.RCODE_NXDOMAIN
        with pytest.raises(TimeoutError):
            query(up.addr, "silent.test", src="127.0.0.1", timeout=0.3)
    finally:
        up.close()


def test_a_responder_that_cannot_start_leaves_no_record(
    env: Env, bridges: Callable[..., Bridge], monkeypatch: pytest.MonkeyPatch
) -> None:
    br = bridges()
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    with pytest.raises(InvalidState, match="exited at start; see .*server.log"):
        env.add(br, CID_WEB, ["web"], [f"{br.prefix}.5"])
    assert not (Path(env.dir) / br.network.name).exists()
    monkeypatch.undo()
    monkeypatch.setenv(dns.RESOLV_CONF_ENV, str(env.resolv))
    assert env.add(br, CID_WEB, ["web"], [f"{br.prefix}.5"]) == [br.gateway]
