"""Rootless networking: pasta and slirp4netns, with `-p` publishing, as the test user.

pasta and slirp4netns open /dev/net/tun inside the container's namespace as the user; Debian
makes it 0666, some VMs 0600: the module fixture opens it for the session and restores it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.rootless_support import (
    IMAGE,
    UserPypod,
    rootless_pypod,  # noqa: F401 - fixtures
    rootless_user,  # noqa: F401
)

pytestmark = [pytest.mark.root, pytest.mark.rootless]

TUN = "/dev/net/tun"
#: the process names each helper runs under
_COMMS = {"pasta": ("pasta", "passt"), "slirp4netns": ("slirp4netns",)}
HTTPD = "mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 80 -h /www"


@pytest.fixture(scope="module")
def tun() -> Iterator[None]:
    from tests.rootless_support import device_opened

    with device_opened(TUN):
        yield


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(url: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return str(r.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def helper_pids(container_id: str, name: str) -> list[int]:
    """Live `name` processes (pasta, slirp4netns) serving the container (named in their
    command line by its network namespace)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                st = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        comm = st[st.index("(") + 1 : st.rindex(")")].split(".")[0]  # passt.avx2 runs pasta
        alive = st[st.rindex(")") + 2] not in "ZX"
        if comm in _COMMS[name] and alive and container_id.encode() in cmdline:
            out.append(int(entry))
    return out


@pytest.mark.parametrize("mode", ["pasta", "slirp4netns"])
def test_published_httpd(rootless_pypod: UserPypod, tun: None, mode: str) -> None:  # noqa: F811
    if shutil.which(mode) is None:
        package = "passt" if mode == "pasta" else mode
        pytest.skip(f"{mode} is not installed (apt-get install {package})")
    p = rootless_pypod
    port = free_port()
    cid = p.ok(
        "run", "-d", "--network", mode, "-p", f"{port}:80", IMAGE, "sh", "-c",
        HTTPD.format(text=f"hello-{mode}"),
    ).strip()  # fmt: skip
    try:
        assert fetch(f"http://127.0.0.1:{port}/") == f"hello-{mode}\n"
        curl = shutil.which("curl")
        if curl:  # the must-show: curl on the host
            out = subprocess.run(
                [curl, "-sf", f"http://127.0.0.1:{port}/index.html"], capture_output=True, text=True
            )
            assert out.stdout == f"hello-{mode}\n"
        addrs = p.ok("exec", cid, "ip", "-o", "-4", "addr", "show", "scope", "global")
        if mode == "slirp4netns":
            assert "10.0.2.100/24" in addrs
        else:  # pasta copies the host's address
            assert addrs.strip(), addrs
        assert len(helper_pids(cid, mode)) == 1
    finally:
        p("rm", "-f", "-t", "0", cid)
    deadline = time.monotonic() + 5
    while helper_pids(cid, mode) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert helper_pids(cid, mode) == []
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)


def test_slirp4netns_options(rootless_pypod: UserPypod, tun: None) -> None:  # noqa: F811
    if shutil.which("slirp4netns") is None:
        pytest.skip("slirp4netns is not installed (apt-get install slirp4netns)")
    out = rootless_pypod.ok(
        "run", "--rm", "--network", "slirp4netns:cidr=10.41.0.0/24,mtu=1500", IMAGE, "sh", "-c",
        "ip -o -4 addr show dev tap0; cat /sys/class/net/tap0/mtu; ip route | grep default",
    )  # fmt: skip
    lines = out.splitlines()
    assert "10.41.0.100/24" in lines[0]
    assert lines[1] == "1500"
    assert lines[2].startswith("default via 10.41.0.2")
    err = rootless_pypod.fails(
        125, "run", "--rm", "--network", "slirp4netns:bogus=1", IMAGE, "true"
    )
    assert "unknown option for slirp4netns" in err


def test_rootless_default_network_is_pasta(rootless_pypod: UserPypod, tun: None) -> None:  # noqa: F811
    if shutil.which("pasta") is None:
        pytest.skip("pasta is not installed (apt-get install passt)")
    out = rootless_pypod.ok(
        "run", "--rm", IMAGE, "sh", "-c", "ip -o -4 addr show scope global | wc -l"
    )
    assert out.strip() == "1"
