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

import pytest

from tests.integration.test_rootless_net import HTTPD, fetch, free_port, tun  # noqa: F401
from tests.rootless_support import (
    IMAGE,
    UserPypod,
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
    """Command lines of the user's pasta processes and DNS responders."""
    out = []
    for pid in p.user.processes():
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if "pasta" in cmdline or "passt" in cmdline or "dns_server" in cmdline:
                out.append(cmdline)
    return out


def leases(p: UserPypod) -> dict[str, object]:
    out: dict[str, object] = {}
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
