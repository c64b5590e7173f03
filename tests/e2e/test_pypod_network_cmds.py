"""`pypod network ...` as users type it: create, ls, inspect, exists, rm, prune, connect,
disconnect, reload — output, files and exit codes as podman 4.3 (netavark) gives them.

Everything goes through the real CLI on a store of this module's own (with the busybox image,
for the commands that need containers).  No bridge or firewall rule is made here: these
commands only write configurations (containers are created, never started).
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine_support import (  # noqa: F401  (fixtures)
    IMAGE,
    Pypod,
    busybox_tar_fixture,
    destroy_store,
    new_store,
    table,
)

pytestmark = [pytest.mark.root]


@pytest.fixture(scope="module")
def store(busybox_tar: Path) -> Iterator[Pypod]:
    where = Path(tempfile.mkdtemp(prefix="pnet", dir="/tmp"))
    p = new_store(where, busybox_tar)
    try:
        yield p
    finally:
        destroy_store(p)


@pytest.fixture
def pypod(store: Pypod) -> Iterator[Pypod]:
    """The module's store; containers and networks a test leaves are removed after it."""
    yield store
    store.remove_all()
    for name in store("network", "ls", "-q").stdout.split():
        if name != "pypod":
            store("network", "rm", "-f", name)


def _names(p: Pypod, *args: str) -> list[str]:
    return p.ok("network", "ls", "-q", *args).split()


def test_create_ls_inspect_exists_rm(pypod: Pypod) -> None:
    assert _names(pypod) == ["pypod"]
    assert pypod.ok("network", "create", "web") == "web\n"
    auto = pypod.ok("network", "create").strip()
    assert re.fullmatch(r"pypod[1-9][0-9]*", auto)  # podman: "podmanN", the bridge's name too
    everything = sorted(["db", "pypod", auto, "web"])
    assert pypod.ok("network", "create", "--label", "tier=db", "--label", "keep", "-o",
                    "mtu=1400", "--internal", "db") == "db\n"  # fmt: skip
    assert _names(pypod) == everything  # by name, as podman

    rows = table(pypod.ok("network", "ls"))
    assert rows[0] == ["NETWORK ID", "NAME", "DRIVER"]
    assert [r[1:] for r in rows[1:]] == [[n, "bridge"] for n in everything]
    assert all(re.fullmatch(r"[0-9a-f]{12}", r[0]) for r in rows[1:])
    full = table(pypod.ok("network", "ls", "--no-trunc"))
    assert all(re.fullmatch(r"[0-9a-f]{64}", r[0]) for r in full[1:])
    names = pypod.ok("network", "ls", "--noheading", "--format", "{{.Name}}")
    assert names == "".join(n + "\n" for n in everything)
    assert pypod.ok("network", "ls", "--format", "{{.Name}}|{{.Labels}}", "--filter",
                    "label=tier") == "db|tier=db,keep=\n"  # fmt: skip

    listed = json.loads(pypod.ok("network", "ls", "--format", "json"))
    assert [n["name"] for n in listed] == everything

    [web] = json.loads(pypod.ok("network", "inspect", "web"))
    assert list(web) == ["name", "id", "driver", "network_interface", "created", "subnets",
                         "ipv6_enabled", "internal", "dns_enabled", "ipam_options"]  # fmt: skip
    [auto_net] = json.loads(pypod.ok("network", "inspect", auto))
    assert auto_net["network_interface"] == auto
    bridge = web["network_interface"]
    assert re.fullmatch(r"pypod[1-9][0-9]*", bridge) and bridge != auto
    # the first free 10.89.N.0/24 (N = 0 unless the host uses it), its first address the gateway
    [subnet] = web["subnets"]
    net = ipaddress.ip_network(subnet["subnet"])
    assert net.prefixlen == 24 and net.subnet_of(ipaddress.ip_network("10.0.0.0/8"))
    assert subnet["gateway"] == str(net.network_address + 1)
    assert web["dns_enabled"] is True and web["internal"] is False
    [db] = json.loads(pypod.ok("network", "inspect", "db"))
    assert db["labels"] == {"tier": "db", "keep": ""} and db["options"] == {"mtu": "1400"}
    assert db["internal"] is True
    # the config file is the inspect JSON
    assert json.loads((pypod.root / "networks" / "web.json").read_text()) == web
    assert not (pypod.root / "networks" / "pypod.json").exists()
    [default] = json.loads(pypod.ok("network", "inspect", "pypod"))
    assert default["subnets"] == [{"subnet": "10.88.0.0/16", "gateway": "10.88.0.1"}]
    assert default["network_interface"] == "pypod0" and default["dns_enabled"] is False

    assert pypod.ok("network", "inspect", "--format", "{{.Name}} {{.NetworkInterface}} "
                    "{{range .Subnets}}{{.Subnet}}{{end}} {{.DNSEnabled}}", "web", web["id"][:8]
                    ) == f"web {bridge} {net} true\n" * 2  # fmt: skip
    proc = pypod("network", "inspect", "web", "nope", "nada")
    assert proc.returncode == 125
    assert [n["name"] for n in json.loads(proc.stdout)] == ["web"]
    assert proc.stderr == (
        "error inspecting object: network nada: unable to find network with name or ID nada: "
        "network not found\n"
        "Error: inspecting object: network nope: unable to find network with name or ID nope: "
        "network not found\n"
    )

    assert pypod("network", "exists", "web").returncode == 0
    assert pypod("network", "exists", "nope").returncode == 1

    assert "default network pypod cannot be removed" in pypod.fails(125, "network", "rm", "pypod")
    proc = pypod("network", "rm", "nope", "web")
    assert proc.returncode == 1 and proc.stdout == "web\n"
    assert proc.stderr == (
        "Error: unable to find network with name or ID nope: network not found\n"
    )
    assert not (pypod.root / "networks" / "web.json").exists()
    assert pypod.ok("network", "remove", "db", auto) == f"db\n{auto}\n"
    assert _names(pypod) == ["pypod"]


def test_ls_filters(pypod: Pypod) -> None:
    pypod.ok("network", "create", "--label", "app=x", "alpha")
    pypod.ok("network", "create", "beta")
    alpha_id = json.loads(pypod.ok("network", "inspect", "alpha"))[0]["id"]
    assert _names(pypod, "--filter", "name=^al") == ["alpha"]
    assert _names(pypod, "--filter", "name=a$") == ["alpha", "beta"]
    assert _names(pypod, "--filter", f"id={alpha_id[:10]}") == ["alpha"]
    assert _names(pypod, "--filter", "driver=bridge") == ["alpha", "beta", "pypod"]
    assert _names(pypod, "--filter", "label=app=x") == ["alpha"]
    assert _names(pypod, "--filter", "label!=app") == ["beta", "pypod"]
    assert _names(pypod, "--filter", "until=1h") == []
    assert "alpha" in _names(pypod, "--filter", "until=2100-01-01T00:00:00Z")
    # dangling: no container uses it (never the default network)
    assert _names(pypod, "--filter", "dangling=true") == ["alpha", "beta"]
    assert 'invalid filter "foo"' in pypod.fails(125, "network", "ls", "--filter", "foo=bar")
    # an empty table keeps its header
    assert table(pypod.ok("network", "ls", "--filter", "name=nothing")) == [
        ["NETWORK ID", "NAME", "DRIVER"]]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bad/name"], "Error: network name bad/name invalid: names must match "
                       "[a-zA-Z0-9][a-zA-Z0-9_.-]*: invalid argument"),
        (["-d", "macvlan", "m"], "Error: 'macvlan' is not supported yet"),
        (["--subnet", "10.88.0.0/16", "s"],
         "Error: subnet 10.88.0.0/16 is already used on the host or by another config"),
        (["--subnet", "127.0.0.0/8", "s"],
         "Error: subnet 127.0.0.0/8 is already used on the host or by another config"),
        (["--subnet", "10.99.1.0/24", "--gateway", "10.98.0.1", "g"],
         "Error: gateway 10.98.0.1 not in subnet 10.99.1.0/24"),
        (["--gateway", "10.0.0.1", "g"], "Error: cannot set gateway or range without subnet"),
        (["-o", "mtu=abc", "o"], 'Error: strconv.Atoi: parsing "abc": invalid syntax'),
        (["-o", "foo=bar", "o"], "Error: unsupported bridge network option foo"),
        (["--label", "=x", "l"], 'Error: failed to parse labels: invalid label format: "=x"'),
        (["a", "b"], "Error: accepts at most 1 arg(s), received 2"),
    ],
)  # fmt: skip
def test_create_errors(pypod: Pypod, args: list[str], message: str) -> None:
    err = pypod.fails(125, "network", "create", *args)
    assert err.startswith(message), err
    assert _names(pypod) == ["pypod"]


def test_create_subnets_and_existing_name(pypod: Pypod) -> None:
    pypod.ok("network", "create", "--subnet", "10.99.0.0/24", "--gateway", "10.99.0.5",
             "--ip-range", "10.99.0.128/25", "--ipv6", "--disable-dns", "dual")  # fmt: skip
    [net] = json.loads(pypod.ok("network", "inspect", "dual"))
    v4, v6 = net["subnets"]
    assert v4 == {"subnet": "10.99.0.0/24", "gateway": "10.99.0.5",
                  "lease_range": {"start_ip": "10.99.0.129", "end_ip": "10.99.0.255"}}  # fmt: skip
    assert ipaddress.ip_network(v6["subnet"]).subnet_of(ipaddress.ip_network("fd00::/8"))
    assert net["ipv6_enabled"] is True and net["dns_enabled"] is False
    assert "Error: network name dual already used: network already exists" in pypod.fails(
        125, "network", "create", "dual"
    )
    assert pypod.ok("network", "create", "--ignore", "dual") == "dual\n"
    assert pypod.ok("network", "create", "--interface-name", "brx0", "named") == "named\n"
    [named] = json.loads(pypod.ok("network", "inspect", "--format", "{{json .}}", "named"))
    assert named["network_interface"] == "brx0"
    assert "bridge name brx0 already in use" in pypod.fails(
        125, "network", "create", "--interface-name", "brx0", "again"
    )
    assert "subnet 10.99.0.0/24 is already used" in pypod.fails(
        125, "network", "create", "--subnet", "10.99.0.0/24", "other"
    )


def test_concurrent_creates_get_distinct_subnets(pypod: Pypod) -> None:
    procs = [
        subprocess.Popen(
            [*pypod.argv, "network", "create"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(6)
    ]
    names = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        names.append(out.strip())
    assert len(set(names)) == 6
    nets = json.loads(pypod.ok("network", "inspect", *names))
    assert len({n["subnets"][0]["subnet"] for n in nets}) == 6
    assert len({n["network_interface"] for n in nets}) == 6


def test_rm_in_use_and_force(pypod: Pypod) -> None:
    pypod.ok("network", "create", "busy")
    cid = pypod.ok("create", "--network", "busy", IMAGE, "true").strip()
    err = pypod.fails(2, "network", "rm", "busy")
    assert err == (
        'Error: "busy" has associated containers with it. Use -f to forcibly delete '
        "containers and pods: network is being used\n"
    )
    assert _names(pypod, "--filter", "dangling=false") == ["busy", "pypod"]
    assert pypod.ok("network", "rm", "-f", "busy") == "busy\n"
    assert pypod("container", "exists", cid).returncode == 1
    assert _names(pypod) == ["pypod"]


def test_prune(pypod: Pypod) -> None:
    pypod.ok("network", "create", "used")
    pypod.ok("network", "create", "--label", "keep=1", "idle1")
    pypod.ok("network", "create", "idle2")
    pypod.ok("create", "--network", "used", IMAGE, "true")
    out = pypod.ok("network", "prune", input="n\n")
    assert out == (
        "WARNING! This will remove all networks not used by at least one container.\n"
        "Are you sure you want to continue? [y/N] "
    )
    assert _names(pypod) == ["idle1", "idle2", "pypod", "used"]
    assert pypod.ok("network", "prune", "-f", "--filter", "label!=keep") == "idle2\n"
    assert pypod.ok("network", "prune", input="y\n").endswith("[y/N] idle1\n")
    assert _names(pypod) == ["pypod", "used"]
    assert 'invalid filter "name"' in pypod.fails(125, "network", "prune", "-f", "--filter",
                                                  "name=x")  # fmt: skip


def test_connect_disconnect_reload(pypod: Pypod) -> None:
    pypod.ok("network", "create", "extra")
    pypod.ok("create", "--name", "netc", IMAGE, "true")
    assert pypod.ok("network", "connect", "--alias", "web", "extra", "netc") == ""
    assert pypod.ok("network", "connect", "extra", "netc") == ""  # again: no error, as podman
    nets = json.loads(pypod.ok("inspect", "--format", "{{json .NetworkSettings.Networks}}",
                               "netc"))  # fmt: skip
    assert "extra" in nets
    assert _names(pypod, "--filter", "dangling=true") == []
    assert pypod.ok("network", "disconnect", "extra", "netc") == ""
    assert "is not connected to network extra" in pypod.fails(
        125, "network", "disconnect", "extra", "netc"
    )
    assert "unable to find network with name or ID nope" in pypod.fails(
        125, "network", "connect", "nope", "netc"
    )
    assert 'no container with name or ID "nope" found' in pypod.fails(
        125, "network", "connect", "extra", "nope"
    )
    assert pypod.ok("network", "reload", "--all") == ""  # nothing runs
    pypod.fails(125, "network", "reload")
