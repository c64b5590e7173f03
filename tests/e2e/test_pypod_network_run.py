"""Containers on bridge networks, as users type it: addresses, /etc files, published ports,
names between containers, internal networks, and nothing left behind.

Real bridges, veths and nftables rules on this machine (root); traffic only between the host
and the namespaces the tests make.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.engine_support import (  # noqa: F401  (fixtures)
    IMAGE,
    Pypod,
    alive,
    busybox_tar_fixture,
    fresh_pypod_fixture,
    pypod_fixture,
    pypod_session_fixture,
    wait_for,
)

pytestmark = pytest.mark.root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def host_ip() -> str:
    from pypod.engine.etcfiles import host_address

    ip = host_address()
    if ip is None:
        pytest.skip("the host has no IPv4 address with a default route")
    return ip


def fetch(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def fetch_eventually(url: str) -> str:
    def attempt() -> str | None:
        try:
            return fetch(url, timeout=2)
        except OSError:
            return None

    return wait_for(attempt, 10, f"{url} to answer")


@pytest.fixture(name="www")
def www_fixture(tmp_path: Path) -> Path:
    d = tmp_path / "www"
    d.mkdir()
    (d / "index.html").write_text("hello from pypod\n")
    d.chmod(0o755)
    return d


@pytest.fixture(name="net")
def net_fixture(pypod: Pypod) -> Iterator[str]:
    """A user network of the test's own (DNS on), removed afterwards."""
    name = f"t{os.urandom(3).hex()}"
    pypod.ok("network", "create", name)
    yield name
    pypod("rm", "-af", "-t0")
    pypod("network", "rm", "-f", name)


def pypod_rules() -> str:
    proc = subprocess.run(["nft", "-j", "list", "table", "inet", "pypod"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    return proc.stdout if proc.returncode == 0 else ""


def test_default_network_address_route_and_files(pypod: Pypod) -> None:
    script = "ip -4 addr show eth0; ip route; cat /etc/hosts; echo ==; cat /etc/resolv.conf"
    out = pypod.ok("run", "--rm", "--name", "addr1", IMAGE, "sh", "-c", script)
    addr, _, rest = out.partition("default via")
    m = re.search(r"inet (10\.88\.\d+\.\d+)/16", addr)
    assert m, out
    ip = m.group(1)
    assert rest.startswith(" 10.88.0.1 dev eth0")
    hosts, _, resolv = rest.partition("==\n")
    assert "10.88.0.1\thost.containers.internal" in hosts
    assert re.search(rf"^{re.escape(ip)}\t[0-9a-f]{{12}} addr1$", hosts, re.M), hosts
    assert "nameserver" in resolv and "127.0.0.53" not in resolv


def test_published_port_reachable_from_the_host(pypod: Pypod, www: Path) -> None:
    port = free_port()
    cid = pypod.run_d("-p", f"{port}:80", "-v", f"{www}:/www:ro", IMAGE,
                      "httpd", "-f", "-p", "80", "-h", "/www")  # fmt: skip
    assert fetch_eventually(f"http://127.0.0.1:{port}/index.html") == "hello from pypod\n"
    assert fetch(f"http://{host_ip()}:{port}/index.html") == "hello from pypod\n"
    assert pypod.ok("port", cid) == f"80/tcp -> 0.0.0.0:{port}\n"
    assert pypod.ok("port", cid, "80") == f"0.0.0.0:{port}\n"
    ports = json.loads(pypod.fmt(cid, "{{json .NetworkSettings.Ports}}"))
    assert ports == {"80/tcp": [{"HostIp": "", "HostPort": str(port)}]}
    assert f"0.0.0.0:{port}->80/tcp" in pypod.ok("ps", "--format", "{{.Ports}}")
    assert cid in pypod_rules()
    pypod.ok("stop", "-t", "0", cid)
    assert cid not in pypod_rules()  # rules go when the container stops
    pypod.ok("start", cid)  # and come back when it starts again
    assert fetch_eventually(f"http://127.0.0.1:{port}/index.html") == "hello from pypod\n"


def test_publish_all_with_expose_and_udp(pypod: Pypod, www: Path) -> None:
    cid = pypod.run_d("-P", "--expose", "80", "-v", f"{www}:/www:ro", IMAGE,
                      "httpd", "-f", "-p", "80", "-h", "/www")  # fmt: skip
    line = pypod.ok("port", cid).strip()
    m = re.fullmatch(r"80/tcp -> 0\.0\.0\.0:(\d+)", line)
    assert m, line
    assert fetch_eventually(f"http://127.0.0.1:{m.group(1)}/") == "hello from pypod\n"
    uport = free_port()
    # busybox has no UDP server: a python one runs in the container's network namespace
    udp = pypod.sleeper("-p", f"127.0.0.1:{uport}:5353/udp")
    assert pypod.ok("port", udp) == f"5353/udp -> 127.0.0.1:{uport}\n"
    netns = pypod.fmt(udp, "{{.NetworkSettings.SandboxKey}}")
    server = (
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
        "s.bind(('0.0.0.0', 5353)); s.settimeout(10); data, peer = s.recvfrom(100); "
        "s.sendto(data.upper(), peer)"
    )
    listener = subprocess.Popen(["nsenter", f"--net={netns}", sys.executable, "-c", server])
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.5)
            reply = b""
            for _ in range(20):  # until the listener is up
                s.sendto(b"ping over udp", ("127.0.0.1", uport))
                try:
                    reply = s.recv(100)
                    break
                except TimeoutError:
                    continue
        assert reply == b"PING OVER UDP"
    finally:
        listener.kill()
        listener.wait()


def test_static_ip_mac_hosts_and_dns_flags(pypod: Pypod, net: str) -> None:
    subnet = pypod.ok("network", "inspect", "--format", "{{range .Subnets}}{{.Subnet}}{{end}}", net)
    base = subnet.strip().rsplit(".", 1)[0]
    out = pypod.ok("run", "--rm", "--network", net, "--ip", f"{base}.77", "--mac-address",
                   "92:d0:c6:0a:29:33", "--add-host", "db.example:192.0.2.9", "--dns",
                   "192.0.2.53", "--dns-search", "example.com", "--dns-option", "ndots:2",
                   IMAGE, "sh", "-c", "ip addr show eth0; echo ==; cat /etc/hosts; echo ==;"
                   " cat /etc/resolv.conf")  # fmt: skip
    assert f"inet {base}.77/24" in out
    assert "link/ether 92:d0:c6:0a:29:33" in out
    _, hosts, resolv = out.split("==\n")
    assert hosts.split("\n", 1)[0] == "192.0.2.9\tdb.example"
    assert resolv == "search example.com\nnameserver 192.0.2.53\noptions ndots:2\n"
    # --no-hosts: the image's own /etc/hosts (busybox's has none), as podman
    proc = pypod("run", "--rm", "--no-hosts", "--network", net, IMAGE, "cat", "/etc/hosts")
    assert proc.returncode == 1 and "No such file" in proc.stderr


def test_containers_reach_each_other_by_name(pypod: Pypod, net: str, www: Path) -> None:
    pypod.run_d("--name", f"{net}-web", "--network", net, "--network-alias", "www",
                "-v", f"{www}:/www:ro", IMAGE, "httpd", "-f", "-p", "80", "-h", "/www")  # fmt: skip
    # (not `wget -T`: busybox 1.35's wget crashes with it)
    # (httpd may not listen yet when the client starts: it tries again for a few seconds)
    script = (f"for i in $(seq 50); do timeout 5 wget -q -O - http://{net}-web/index.html "
              "&& break; sleep 0.1; done && "
              "timeout 5 wget -q -O - http://www/index.html && cat /etc/resolv.conf")  # fmt: skip
    out = pypod.ok("run", "--rm", "--network", net, IMAGE, "sh", "-c", script)
    assert out.startswith("hello from pypod\nhello from pypod\n")
    assert "search dns.podman" in out


@pytest.fixture(name="host_server")
def host_server_fixture() -> Iterator[int]:
    """An HTTP server on the host (every address), standing in for "outside"."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"outside\n")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("0.0.0.0", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_internal_network_has_no_way_out(pypod: Pypod, host_server: int) -> None:
    url = f"http://{host_ip()}:{host_server}/"
    out = pypod.ok("run", "--rm", IMAGE, "timeout", "5", "wget", "-q", "-O", "-", url)
    assert out == "outside\n"  # the way out, on a normal network
    name = f"i{os.urandom(3).hex()}"
    pypod.ok("network", "create", "--internal", name)
    try:
        proc = pypod("run", "--rm", "--network", name, IMAGE, "timeout", "3", "wget", "-q",
                     "-O", "-", url)  # fmt: skip
        assert proc.returncode != 0 and "outside" not in proc.stdout
    finally:
        pypod("network", "rm", "-f", name)


def test_nothing_left_after_rm(pypod: Pypod, net: str) -> None:
    ids = [pypod.sleeper("-p", f"{free_port()}:80"), pypod.sleeper("--network", net)]
    netns = [pypod.fmt(i, "{{.NetworkSettings.SandboxKey}}") for i in ids]
    assert all(os.path.exists(n) for n in netns)
    pypod.ok("rm", "-f", "-t0", *ids)
    rules = pypod_rules()
    assert not any(i in rules for i in ids)
    assert not any(os.path.exists(n) for n in netns)
    leases = "".join(p.read_text() for p in Path("/run/pypod/networks").rglob("*.json"))
    assert not any(i in leases for i in ids)


def test_connect_and_disconnect_a_running_container(pypod: Pypod, net: str) -> None:
    cid = pypod.sleeper()
    pypod.ok("network", "connect", "--alias", "extra", net, cid)
    out = pypod.ok("exec", cid, "ip", "-4", "-o", "addr")
    assert " eth0 " in out and " eth1 " in out
    assert set(json.loads(pypod.fmt(cid, "{{json .NetworkSettings.Networks}}"))) == {"pypod", net}
    pypod.ok("network", "disconnect", net, cid)
    assert " eth1 " not in pypod.ok("exec", cid, "ip", "-4", "-o", "addr")


def test_monitor_and_container_killed_leave_nothing(fresh_pypod: Pypod) -> None:
    """The monitor dies with its container (SIGKILL to both): nobody ran the cleanup; the next
    command that looks at the container undoes its network."""
    p = fresh_pypod
    cid = p.sleeper("-p", f"{free_port()}:80")
    netns = p.fmt(cid, "{{.NetworkSettings.SandboxKey}}")
    monitor = int(p.fmt(cid, "{{.State.ConmonPid}}"))
    pid = int(p.fmt(cid, "{{.State.Pid}}"))
    assert cid in pypod_rules()
    os.kill(monitor, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(monitor) and not alive(pid), what="both to die")
    assert p.status(cid) == "exited"
    assert cid not in pypod_rules()
    assert not os.path.exists(netns)


def test_a_start_killed_half_way_leaves_nothing(pypod: Pypod) -> None:
    """SIGKILL during `init` after the network was set up, before the state was saved: the
    namespace file is there, the state names no network.  `rm` (or the next start) finds the
    container's leases and rules by its ID and removes them.  (The crash is made by calling
    the engine's own steps in this process: killing a real `pypod start` at that exact
    moment cannot be timed from a test.)"""
    from pypod.engine import networking
    from pypod.engine.containers import Engine

    cid = pypod.ok("create", "-p", f"{free_port()}:80", IMAGE, "true").strip()
    with Engine(str(pypod.root), str(pypod.runroot)) as eng:
        c = eng.lookup(cid)
        netns = networking.make_netns(eng, cid)
        networking._setup_bridge(eng, c, netns)  # and then the process "dies"
    assert cid in pypod_rules()
    assert cid in "".join(p.read_text() for p in Path("/run/pypod/networks").rglob("*.json"))
    pypod.ok("rm", cid)
    assert cid not in pypod_rules()
    assert not os.path.exists(netns)
    leases = "".join(p.read_text() for p in Path("/run/pypod/networks").rglob("*.json"))
    assert cid not in leases


def test_reload_after_the_rules_were_flushed(pypod: Pypod, www: Path) -> None:
    """`network reload` makes the rules of running containers again (after a firewall
    reload flushed them: here only pypod's table is deleted, not the host's other rules)."""
    port = free_port()
    cid = pypod.run_d("-p", f"{port}:80", "-v", f"{www}:/www:ro", IMAGE,
                      "httpd", "-f", "-p", "80", "-h", "/www")  # fmt: skip
    assert fetch_eventually(f"http://127.0.0.1:{port}/index.html") == "hello from pypod\n"
    subprocess.run(["nft", "delete", "table", "inet", "pypod"], check=True)
    with pytest.raises(OSError):
        fetch(f"http://127.0.0.1:{port}/index.html", timeout=1)
    assert pypod.ok("network", "reload", cid) == f"{cid}\n"
    assert fetch_eventually(f"http://127.0.0.1:{port}/index.html") == "hello from pypod\n"
    pypod.ok("rm", "-f", "-t", "0", cid)
    assert cid not in pypod_rules()


@pytest.mark.parametrize("runtime", [
    "pypod",
    pytest.param("runc", marks=pytest.mark.skipif(
        shutil.which("runc") is None, reason="runc is not installed (apt-get install runc)")),
])  # fmt: skip
def test_network_none_is_the_runtimes_namespace_with_lo_up(pypod: Pypod, runtime: str) -> None:
    """`--network none`, as podman: a namespace of the container's own that the runtime makes,
    only `lo` in it and up; no namespace file kept, so inspect's SandboxKey is empty."""
    flags = [] if runtime == "pypod" else ["--runtime", runtime]
    out = pypod.ok("run", "--rm", *flags, "--network", "none", IMAGE, "ip", "-o", "link")
    links = [line.split(":")[1].strip() for line in out.splitlines()]
    assert links == ["lo"], out
    assert "UP" in out.split("<")[1].split(">")[0].split(","), out
    host = os.readlink("/proc/self/ns/net")
    cid = pypod.run_d(*flags, "--network", "none", IMAGE, "sleep", "1000")
    pid = int(pypod.fmt(cid, "{{.State.Pid}}"))
    assert os.readlink(f"/proc/{pid}/ns/net") != host
    assert pypod.fmt(cid, "{{.NetworkSettings.SandboxKey}}") == ""
    netns_dir = pypod.runroot / "netns"
    assert not netns_dir.exists() or not any(cid in p.name for p in netns_dir.iterdir())
    pypod.ok("rm", "-f", "-t", "0", cid)
