"""User networks for rootless containers (podman 4's rootless-netns), as the test user.

The bridges, nftables rules and DNS responder of a rootless user's networks live in one
network namespace of the user's (`<runroot>/netns/rootless-netns`) with a pasta as its way
out; published ports go through a pasta per container to the DNAT rules in there.  "Outside"
here is an address the test adds to the host's lo (traffic stays on this
machine): a container reaches it through the rootless-netns' pasta like any host address.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import socketserver
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_rootless_net import HTTPD, fetch, free_port, tun  # noqa: F401
from tests.rootless_support import (
    IMAGE,
    UserPypod,
    kill_user_processes,
    rootless_pypod,  # noqa: F401 - fixtures
    rootless_user,  # noqa: F401
)

pytestmark = [pytest.mark.root, pytest.mark.rootless]

#: the "outside" address: added to the host's lo (TEST-NET-2, never routed anywhere)
OUTSIDE_IP = "198.51.100.77"


@pytest.fixture(scope="module")
def pasta(tun: None) -> None:  # noqa: F811
    if shutil.which("pasta") is None:
        pytest.skip("pasta is not installed (apt-get install passt)")


@pytest.fixture(scope="module")
def outside() -> Iterator[str]:
    """An HTTP server on the host at OUTSIDE_IP (an extra address of lo): its URL."""
    subprocess.run(["ip", "addr", "del", f"{OUTSIDE_IP}/32", "dev", "lo"], capture_output=True)
    subprocess.run(["ip", "addr", "add", f"{OUTSIDE_IP}/32", "dev", "lo"], check=True)
    try:

        class Hello(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b"outside\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        server = socketserver.ThreadingTCPServer((OUTSIDE_IP, 0), Hello)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://{OUTSIDE_IP}:{server.server_address[1]}/"
        finally:
            server.shutdown()
            server.server_close()
    finally:
        subprocess.run(["ip", "addr", "del", f"{OUTSIDE_IP}/32", "dev", "lo"], capture_output=True)


def runroot(p: UserPypod) -> Path:
    return p.user.runtime_dir / "pypod"


def rootless_netns(p: UserPypod) -> Path:
    return runroot(p) / "netns" / "rootless-netns"


def user_helpers(p: UserPypod) -> list[str]:
    """Command lines of the user's pasta and slirp4netns processes and DNS responders."""
    out = []
    for pid in p.user.processes():
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if any(x in cmdline for x in ("pasta", "passt", "slirp4netns", "dns_server")):
                out.append(cmdline)
    return out


def leases(p: UserPypod) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ipam = runroot(p) / "networks" / "ipam"
    for f in ipam.glob("*.json") if ipam.is_dir() else ():
        out.update(json.loads(f.read_text() or "{}").get("leases") or {})
    return out


def dns_records(p: UserPypod) -> str:
    dns = runroot(p) / "networks" / "dns"
    if not dns.is_dir():
        return ""
    return "".join(
        f.read_text() for f in dns.iterdir() if f.is_file() and not f.name.startswith(".")
    )


def assert_nothing_left(p: UserPypod, ids: list[str]) -> None:
    deadline = time.monotonic() + 5
    while user_helpers(p) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert user_helpers(p) == []
    assert not rootless_netns(p).exists()
    netns_dir = runroot(p) / "netns"
    left = [f.name for f in netns_dir.iterdir()] if netns_dir.is_dir() else []
    assert [n for n in left if not n.endswith(".lock")] == []
    assert leases(p) == {}
    records = dns_records(p)
    for cid in ids:
        assert cid[:12] not in records


@pytest.fixture
def network(rootless_pypod: UserPypod, pasta: None) -> Iterator[str]:  # noqa: F811
    name = f"rn{os.getpid()}"
    rootless_pypod.ok("network", "create", name)
    try:
        yield name
    finally:
        rootless_pypod("rm", "-af", "-t", "0")
        rootless_pypod("network", "rm", "-f", name)


def test_user_network_names_ports_outside_and_cleanup(
    rootless_pypod: UserPypod,  # noqa: F811
    network: str,
    outside: str,
) -> None:
    p = rootless_pypod
    port = free_port()
    web = p.ok(
        "run", "-d", "--network", network, "--name", "web", "-p", f"{port}:80", IMAGE,
        "sh", "-c", HTTPD.format(text="hello-user-net"),
    ).strip()  # fmt: skip
    # another container reaches it by name (the DNS responder in the rootless-netns; not
    # `wget -T`: busybox 1.35's wget crashes with it)
    out = p.ok(
        "run", "--rm", "--network", network, IMAGE, "sh", "-c",
        "for i in 1 2 3 4 5 6 7 8 9 10; do timeout 3 wget -q -O - http://web/ && exit 0; "
        "sleep 0.2; done; exit 1",
    )  # fmt: skip
    assert out == "hello-user-net\n"
    # the published port, from the host at 127.0.0.1
    assert fetch(f"http://127.0.0.1:{port}/") == "hello-user-net\n"
    curl = shutil.which("curl")
    if curl:
        done = subprocess.run(
            [curl, "-sf", f"http://127.0.0.1:{port}/index.html"], capture_output=True, text=True
        )
        assert done.stdout == "hello-user-net\n"
    # the way out, through the rootless-netns' pasta
    out = p.ok("exec", web, "timeout", "5", "wget", "-q", "-O", "-", outside)
    assert out == "outside\n"
    addr = p.ok("exec", web, "ip", "-o", "-4", "addr", "show", "dev", "eth0")
    assert " 10.89." in addr, addr
    assert rootless_netns(p).exists()
    helpers = user_helpers(p)  # the namespace's pasta, the web's port forwarder, DNS
    assert len([h for h in helpers if "--config-net" in h and "rootless-netns" in h]) == 1
    assert len([h for h in helpers if f" -t {port} " in h and "--config-net" not in h]) == 1
    assert len([h for h in helpers if "dns_server" in h]) == 1
    assert web in leases(p)
    # nothing of the rootless network is in the host's network namespace
    host_links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    bridge = json.loads(p.ok("network", "inspect", network))[0]["network_interface"]
    assert f": {bridge}:" not in host_links
    p.ok("rm", "-af", "-t", "0")
    assert_nothing_left(p, [web])
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)


def test_internal_network_has_no_way_out(
    rootless_pypod: UserPypod,  # noqa: F811
    pasta: None,
    outside: str,
) -> None:
    p = rootless_pypod
    name = f"rni{os.getpid()}"
    p.ok("network", "create", "--internal", name)
    try:
        p.ok(
            "run", "-d", "--network", name, "--name", "inner", IMAGE, "sh", "-c",
            HTTPD.format(text="reached"),
        )  # fmt: skip
        out = p.ok(
            "run", "--rm", "--network", name, IMAGE, "sh", "-c",
            "for i in 1 2 3 4 5 6 7 8 9 10; do timeout 3 wget -q -O - http://inner/ && break; "
            f"sleep 0.2; done; timeout 3 wget -q -O - {outside} || echo blocked",
        )  # fmt: skip
        assert out.split() == ["reached", "blocked"]
    finally:
        p("rm", "-af", "-t", "0")
        p("network", "rm", "-f", name)
    assert_nothing_left(p, [])


def test_two_containers_share_one_rootless_netns(
    rootless_pypod: UserPypod,  # noqa: F811
    network: str,
) -> None:
    """One namespace for all; it stays while a container uses it and goes with the last."""
    p = rootless_pypod
    a = p.ok("run", "-d", "--network", network, IMAGE, "sleep", "100").strip()
    b = p.ok("run", "-d", "--network", network, IMAGE, "sleep", "100").strip()
    ns = rootless_netns(p)
    inode = ns.stat().st_ino
    pastas = [c for c in user_helpers(p) if "rootless-netns" in c and "--config-net" in c]
    assert len(pastas) == 1, pastas
    p.ok("rm", "-f", "-t", "0", a)
    assert ns.exists() and ns.stat().st_ino == inode
    out = p.ok("exec", b, "sh", "-c", "ip -o -4 addr show dev eth0")
    assert " 10.89." in out
    p.ok("rm", "-f", "-t", "0", b)
    assert_nothing_left(p, [a, b])


def test_default_bridge_network_with_published_port(
    rootless_pypod: UserPypod,  # noqa: F811
    pasta: None,
) -> None:
    """`--network bridge` (the default network `pypod`, as podman's rootless `podman`),
    publishing on 127.0.0.1 only."""
    p = rootless_pypod
    port = free_port()
    cid = p.ok(
        "run", "-d", "--network", "bridge", "-p", f"127.0.0.1:{port}:80", IMAGE,
        "sh", "-c", HTTPD.format(text="hello-bridge"),
    ).strip()  # fmt: skip
    try:
        assert fetch(f"http://127.0.0.1:{port}/") == "hello-bridge\n"
        ip = p.ok("inspect", "--format", "{{.NetworkSettings.IPAddress}}", cid).strip()
        assert ip.startswith("10.88."), ip
    finally:
        p("rm", "-af", "-t", "0")
    assert_nothing_left(p, [cid])


def test_concurrent_runs_make_one_rootless_netns(
    rootless_pypod: UserPypod,  # noqa: F811
    network: str,
) -> None:
    """Containers started at the same time (none there yet): one namespace, one pasta,
    an address each, all reachable by name."""
    from concurrent.futures import ThreadPoolExecutor

    p = rootless_pypod
    names = [f"c{i}" for i in range(3)]
    with ThreadPoolExecutor(len(names)) as pool:
        ids = list(
            pool.map(
                lambda n: p.ok(
                    "run",
                    "-d",
                    "--network",
                    network,
                    "--name",
                    n,
                    IMAGE,
                    "sh",
                    "-c",
                    HTTPD.format(text=n),
                ).strip(),  # fmt: skip
                names,
            )
        )
    pastas = [c for c in user_helpers(p) if "--config-net" in c and "rootless-netns" in c]
    assert len(pastas) == 1, pastas
    assert len({str(v["ips"]) for v in leases(p).values()}) == len(names)
    script = "; ".join(f"timeout 3 wget -q -O - http://{n}/" for n in names)
    out = p.ok("exec", ids[0], "sh", "-c", script)
    assert out.split() == names
    p.ok("rm", "-af", "-t", "0")
    assert_nothing_left(p, ids)


def test_after_the_rootless_namespace_was_killed(
    rootless_pypod: UserPypod,  # noqa: F811
    network: str,
) -> None:
    """Every process of the user killed (the pause process, so the rootless-netns, its pasta,
    the DNS responder, the container): `rm` still releases the lease and the DNS records,
    and the next container gets a new rootless-netns."""
    p = rootless_pypod
    port = free_port()
    cid = p.ok("run", "-d", "--network", network, "-p", f"{port}:80", IMAGE, "sleep", "100")
    cid = cid.strip()
    assert cid in leases(p)
    kill_user_processes(p.user.uid)
    p.ok("rm", "-af", "-t", "0")
    assert_nothing_left(p, [cid])
    out = p.ok("run", "--rm", "--network", network, IMAGE, "ip", "-o", "-4", "addr", "show", "eth0")
    assert " 10.89." in out
    assert_nothing_left(p, [])


def test_published_udp_port(rootless_pypod: UserPypod, network: str) -> None:  # noqa: F811
    import socket
    import sys

    p = rootless_pypod
    uport = free_port()
    cid = p.ok("run", "-d", "--network", network, "-p", f"127.0.0.1:{uport}:5353/udp", IMAGE,
               "sleep", "100").strip()  # fmt: skip
    pid = p.ok("inspect", "--format", "{{.State.Pid}}", cid).strip()
    # busybox has no UDP server: a python one runs in the container's network namespace
    server = (
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
        "s.bind(('0.0.0.0', 5353)); s.settimeout(10); data, peer = s.recvfrom(100); "
        "s.sendto(data.upper(), peer)"
    )
    listener = subprocess.Popen(["nsenter", "-t", pid, "-n", sys.executable, "-c", server])
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.5)
            reply = b""
            for _ in range(20):  # until the listener is up
                s.sendto(b"ping over udp", ("127.0.0.1", uport))
                try:
                    reply = s.recv(100)
                    break
                except (TimeoutError, ConnectionRefusedError):
                    continue
        assert reply == b"PING OVER UDP"
    finally:
        listener.kill()
        listener.wait()
    p.ok("rm", "-af", "-t", "0")
    assert_nothing_left(p, [cid])


def bridge_ports(p: UserPypod, bridge: str) -> list[str]:
    """The interfaces on `bridge` in the rootless-netns (seen from its DNS responder)."""
    pid = next(
        x for x in p.user.processes() if b"dns_server" in Path(f"/proc/{x}/cmdline").read_bytes()
    )
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    out = subprocess.run(
        ["nsenter", "-t", str(pid), "-n", "ip", "-o", "link", "show", "master", bridge],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


def test_a_removed_container_leaves_no_veth_while_others_run(
    rootless_pypod: UserPypod,  # noqa: F811
    network: str,
) -> None:
    """The container's namespace (and with it its veth) goes at once, though the DNS
    responder of the rootless-netns, started while it ran, runs on (in a mount namespace
    copied while the container's namespace was mounted: deleting the file unmounts it
    there too)."""
    p = rootless_pypod
    bridge = json.loads(p.ok("network", "inspect", network))[0]["network_interface"]
    a = p.ok("run", "-d", "--network", network, IMAGE, "sleep", "100").strip()
    b = p.ok("run", "-d", "--network", network, IMAGE, "sleep", "100").strip()
    assert len(bridge_ports(p, bridge)) == 2
    p.ok("rm", "-f", "-t", "0", a)
    deadline = time.monotonic() + 2
    while len(bridge_ports(p, bridge)) != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(bridge_ports(p, bridge)) == 1
    p.ok("rm", "-f", "-t", "0", b)
    assert_nothing_left(p, [a, b])


def test_a_port_taken_on_the_host_fails_the_run_cleanly(
    rootless_pypod: UserPypod,  # noqa: F811
    network: str,
) -> None:
    import socket

    p = rootless_pypod
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = p("run", "-d", "--network", network, "-p", f"127.0.0.1:{port}:80", IMAGE,
                 "sleep", "100")  # fmt: skip
    assert proc.returncode == 125, proc
    assert "cannot publish the ports of container" in proc.stderr
    assert str(port) in proc.stderr
    p.ok("rm", "-af", "-t", "0")
    assert_nothing_left(p, [])


def test_dual_stack_network(rootless_pypod: UserPypod, pasta: None) -> None:  # noqa: F811
    p = rootless_pypod
    name = f"rn6{os.getpid()}"
    p.ok("network", "create", "--ipv6", name)
    try:
        p.ok(
            "run", "-d", "--network", name, "--name", "web6", IMAGE, "sh", "-c",
            HTTPD.format(text="six"),
        )  # fmt: skip
        out = p.ok(
            "run", "--rm", "--network", name, IMAGE, "sh", "-c",
            "ip -o addr show dev eth0 scope global; "
            "ip6=$(ping -6 -c1 -W2 web6 | sed -n 's/^PING [^(]*(\\([^)]*\\)).*/\\1/p'); "
            "timeout 3 wget -q -O - \"http://[$ip6]/\"",
        )  # fmt: skip
        lines = out.splitlines()
        assert any(" inet " in line for line in lines), out
        assert any(" inet6 " in line for line in lines), out
        assert lines[-1] == "six", out
    finally:
        p("rm", "-af", "-t", "0")
        p("network", "rm", "-f", name)
    assert_nothing_left(p, [])


@pytest.fixture(scope="module")
def path_without_pasta() -> Iterator[str]:
    """A $PATH with every command of the usual one but pasta (and passt)."""
    import tempfile

    if shutil.which("slirp4netns") is None:
        pytest.skip("slirp4netns is not installed (apt-get install slirp4netns)")
    with tempfile.TemporaryDirectory(prefix="pypod-slirp-only-", dir="/tmp") as tmp:
        os.chmod(tmp, 0o755)  # the test user's commands look in it
        for name in os.listdir("/usr/bin"):
            if not name.startswith(("pasta", "passt")):
                os.symlink(os.path.join("/usr/bin", name), os.path.join(tmp, name))
        yield f"{tmp}:/usr/sbin:/sbin"


def test_slirp4netns_without_pasta(
    rootless_pypod: UserPypod,  # noqa: F811
    tun: None,  # noqa: F811
    outside: str,
    path_without_pasta: str,
) -> None:
    """Without pasta, slirp4netns connects the rootless-netns to the host and publishes the
    ports (add_hostfwd, removed with the container)."""
    import socket

    p = rootless_pypod

    def ok(*args: str) -> str:
        proc = p(*args, PATH=path_without_pasta)
        assert proc.returncode == 0, f"{args}: {proc.stderr}{proc.stdout}"
        return proc.stdout

    name = f"rns{os.getpid()}"
    ok("network", "create", name)
    port = free_port()
    try:
        web = ok(
            "run", "-d", "--network", name, "--name", "sweb", "-p", f"{port}:80", IMAGE,
            "sh", "-c", HTTPD.format(text="hello-slirp"),
        ).strip()  # fmt: skip
        helpers = user_helpers(p)
        assert [h for h in helpers if "pasta" in h or "passt" in h] == []
        assert len([h for h in helpers if "slirp4netns" in h and "rootless-netns" in h]) == 1
        assert fetch(f"http://127.0.0.1:{port}/") == "hello-slirp\n"
        out = ok(
            "run", "--rm", "--network", name, IMAGE, "sh", "-c",
            "for i in 1 2 3 4 5 6 7 8 9 10; do timeout 3 wget -q -O - http://sweb/ && break; "
            f"sleep 0.2; done; timeout 5 wget -q -O - {outside}",
        )  # fmt: skip
        assert out.split() == ["hello-slirp", "outside"]
        keeper = ok("run", "-d", "--network", name, IMAGE, "sleep", "100").strip()
        ok("rm", "-f", "-t", "0", web)  # its forward goes, the rootless-netns stays
        assert len([h for h in user_helpers(p) if "slirp4netns" in h]) == 1
        with socket.socket() as s:  # slirp4netns listens there no more (TIME_WAIT is fine)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", port))
        ok("rm", "-f", "-t", "0", keeper)
    finally:
        p("rm", "-af", "-t", "0", PATH=path_without_pasta)
        p("network", "rm", "-f", name)
    assert_nothing_left(p, [])


def test_forwarder_args() -> None:
    from pypod.network.rootless_netns import forwarder_args
    from pypod.network.types import PortMapping

    ports = (
        PortMapping(host_ip="", host_port=8080, container_port=80, protocol="tcp"),
        PortMapping(host_ip="127.0.0.1", host_port=9000, container_port=53, protocol="tcp,udp",
                    range=3),
    )  # fmt: skip
    args = forwarder_args("/run/ns", "0123456789abcdef", ports, "/run/p.pid")
    assert args[:4] == ["--netns", "/run/ns", "-I", "pf0123456789ab"]
    assert " ".join(args[4:]) == (
        "-t 8080 -t 127.0.0.1/9000-9002 -u 127.0.0.1/9000-9002 -T none -U none --no-dhcp "
        "--no-dhcpv6 --no-ndp --no-ra --pid /run/p.pid --quiet"
    )
    only_udp = (PortMapping(host_ip="", host_port=53, container_port=53, protocol="udp"),)
    args = forwarder_args("/n", "c", only_udp, "/p")
    assert args[4:8] == ["-t", "none", "-u", "53"]


def test_connect_disconnect_and_reload(rootless_pypod: UserPypod, network: str) -> None:  # noqa: F811
    """`network connect/disconnect/reload` of a running rootless container: done in the
    rootless-netns, where its bridges and rules are."""
    p = rootless_pypod
    port = free_port()
    web = p.ok(
        "run", "-d", "--network", "bridge", "--name", "cweb", "-p", f"{port}:80", IMAGE,
        "sh", "-c", HTTPD.format(text="hello-connect"),
    ).strip()  # fmt: skip
    assert fetch(f"http://127.0.0.1:{port}/") == "hello-connect\n"
    p.ok("network", "connect", "--alias", "extra", network, web)
    assert " eth1 " in p.ok("exec", web, "ip", "-o", "-4", "addr")
    out = p.ok(
        "run", "--rm", "--network", network, IMAGE, "sh", "-c",
        "for i in 1 2 3 4 5 6 7 8 9 10; do timeout 3 wget -q -O - http://extra/ && exit 0; "
        "sleep 0.2; done; exit 1",
    )  # fmt: skip
    assert out == "hello-connect\n"
    p.ok("network", "disconnect", network, web)
    assert " eth1 " not in p.ok("exec", web, "ip", "-o", "-4", "addr")
    assert p.ok("network", "reload", web).strip() == web
    assert fetch(f"http://127.0.0.1:{port}/") == "hello-connect\n"
    p.ok("rm", "-f", "-t", "0", web)
