"""Host-local IPAM: lowest free address after the gateway, static addresses, ranges, release,
and no address handed out twice by processes allocating at the same time."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from pypod.errors import InUse, InvalidArgument
from pypod.network import ipam
from pypod.network.types import LeaseRange, Network, Subnet


def network(
    subnet: str = "10.201.3.0/24",
    gateway: str = "10.201.3.1",
    lease_range: tuple[str, str] | None = None,
    extra: tuple[Subnet, ...] = (),
) -> Network:
    lr = LeaseRange(start_ip=lease_range[0], end_ip=lease_range[1]) if lease_range else None
    return Network(
        name="ipamtest",
        id="0" * 64,
        network_interface="pypodtipam",
        subnets=(Subnet(subnet=subnet, gateway=gateway, lease_range=lr), *extra),
    )


def alloc(runroot: str, net: Network, cid: str, static: tuple[str, ...] = ()) -> list[str]:
    with ipam.locked(runroot, net) as leases:
        return [s.ipnet for s in leases.allocate(cid, f"name-{cid}", "eth0", static)]


def release(runroot: str, net: Network, cid: str) -> bool:
    with ipam.locked(runroot, net) as leases:
        return leases.release(cid)


def test_lowest_free_after_gateway_and_reuse(tmp_path: Path) -> None:
    run, net = str(tmp_path), network()
    assert alloc(run, net, "a") == ["10.201.3.2/24"]
    assert alloc(run, net, "b") == ["10.201.3.3/24"]
    assert alloc(run, net, "c") == ["10.201.3.4/24"]
    assert release(run, net, "b") is True
    assert release(run, net, "b") is False
    assert alloc(run, net, "d") == ["10.201.3.3/24"]
    # the same container asking again keeps its address
    assert alloc(run, net, "a") == ["10.201.3.2/24"]
    data = json.loads(Path(ipam.lease_path(run, net)).read_text())
    assert data["leases"]["d"] == {"name": "name-d", "interface": "eth0", "ips": ["10.201.3.3"]}
    assert sorted(data["leases"]) == ["a", "c", "d"]
    for cid in ("a", "c", "d"):
        release(run, net, cid)
    assert not os.path.exists(ipam.lease_path(run, net))
    assert os.listdir(ipam.ipam_dir(run)) == []  # nor its lock file: nothing is left


def test_gateway_elsewhere_network_and_broadcast_skipped(tmp_path: Path) -> None:
    run = str(tmp_path)
    net = network("10.201.4.0/30", "10.201.4.2")
    # /30: .0 network, .3 broadcast, .2 gateway -> only .1 (after wrapping around)
    assert alloc(run, net, "a") == ["10.201.4.1/30"]
    with pytest.raises(InUse, match="no free IP address left in subnet 10.201.4.0/30"):
        alloc(run, net, "b")
    net2 = network("10.201.5.0/24", "10.201.5.254")
    run2 = str(tmp_path / "2")
    assert alloc(run2, net2, "a") == ["10.201.5.1/24"]
    assert alloc(run2, net2, "b") == ["10.201.5.2/24"]


def test_lease_range(tmp_path: Path) -> None:
    run = str(tmp_path)
    net = network(lease_range=("10.201.3.100", "10.201.3.101"))
    assert alloc(run, net, "a") == ["10.201.3.100/24"]
    assert alloc(run, net, "b") == ["10.201.3.101/24"]
    with pytest.raises(InUse, match="no free IP address"):
        alloc(run, net, "c")
    # a static address outside the range but inside the subnet is allowed (as podman)
    assert alloc(run, net, "d", ("10.201.3.7",)) == ["10.201.3.7/24"]


def test_static_ip_checks(tmp_path: Path) -> None:
    run, net = str(tmp_path), network()
    assert alloc(run, net, "a", ("10.201.3.50",)) == ["10.201.3.50/24"]
    with pytest.raises(InUse, match="IP address 10.201.3.50 is already allocated"):
        alloc(run, net, "b", ("10.201.3.50",))
    with pytest.raises(InvalidArgument, match="not in any subnet of network ipamtest"):
        alloc(run, net, "b", ("10.9.9.9",))
    with pytest.raises(InvalidArgument, match="gateway"):
        alloc(run, net, "b", ("10.201.3.1",))
    with pytest.raises(InvalidArgument, match="not an IP address"):
        alloc(run, net, "b", ("10.201.3.x",))
    # failed requests took nothing; the next automatic address skips the static one's
    assert alloc(run, net, "b") == ["10.201.3.2/24"]
    with ipam.locked(run, net) as leases:
        assert sorted(leases.leases) == ["a", "b"]


def test_dual_stack(tmp_path: Path) -> None:
    run = str(tmp_path)
    net = network(extra=(Subnet(subnet="fd10:201::/64", gateway="fd10:201::1"),))
    assert alloc(run, net, "a") == ["10.201.3.2/24", "fd10:201::2/64"]
    assert alloc(run, net, "b", ("fd10:201::99",)) == ["10.201.3.3/24", "fd10:201::99/64"]
    with ipam.locked(run, net) as leases:
        subnets = leases.allocate("b", "b", "eth0")
    assert [s.gateway for s in subnets] == ["10.201.3.1", "fd10:201::1"]


def _worker(runroot: str, worker: int, count: int, queue: multiprocessing.Queue[object]) -> None:
    net = network("10.201.6.0/24", "10.201.6.1")
    got = []
    for i in range(count):
        got.extend(alloc(runroot, net, f"w{worker}-{i}"))
    queue.put(got)


def test_concurrent_processes_never_share_an_address(tmp_path: Path) -> None:
    run = str(tmp_path)
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[object] = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(run, w, 12, queue)) for w in range(8)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    ips = [ip for r in results for ip in r]  # type: ignore[attr-defined]
    assert len(ips) == 96
    assert len(set(ips)) == 96
    leases = ipam.read_leases(ipam.lease_path(run, network("10.201.6.0/24", "10.201.6.1")))
    assert len(leases) == 96
    assert sorted(f"{lease.ips[0]}/24" for lease in leases.values()) == sorted(ips)


def test_corrupt_lease_file_is_reported(tmp_path: Path) -> None:
    run, net = str(tmp_path), network()
    os.makedirs(ipam.ipam_dir(run))
    Path(ipam.lease_path(run, net)).write_text("{not json")
    with pytest.raises(InvalidArgument, match="lease file .* cannot be read"):
        alloc(run, net, "a")
