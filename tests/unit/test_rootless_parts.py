"""Rootless pieces that need no user: id ranges and maps, --uidmap, pasta and slirp4netns
command lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from pypod.engine.rootless import keep_id_maps, parse_idmap, userns_plan
from pypod.errors import InvalidArgument, NotSupported
from pypod.linux.userns import IDMap, subordinate_ranges
from pypod.network.rootless_net import pasta_args, slirp_args, slirp_settings
from pypod.network.types import PortMapping


def test_subordinate_ranges(tmp_path: Path) -> None:
    path = tmp_path / "subuid"
    path.write_text(
        "# comment\nalice:100000:65536\nbob:200000:1000\n1234:300000:10\nalice:400000:5\n"
        "broken line\ncarol:x:1\n"
    )
    assert subordinate_ranges(str(path), "alice", 1000) == [(100000, 65536), (400000, 5)]
    assert subordinate_ranges(str(path), "dave", 1234) == [(300000, 10)]
    assert subordinate_ranges(str(path), "carol", 1) == []
    assert subordinate_ranges(str(tmp_path / "missing"), "alice", 1) == []


def test_keep_id_maps() -> None:
    assert keep_id_maps(1000, 65537) == (
        IDMap(container_id=0, host_id=1, size=1000),
        IDMap(container_id=1000, host_id=0, size=1),
        IDMap(container_id=1001, host_id=1001, size=64536),
    )
    assert keep_id_maps(1000, 1) == (IDMap(container_id=1000, host_id=0, size=1),)


def test_parse_idmap() -> None:
    assert parse_idmap("0:1:5000", "--uidmap") == (IDMap(container_id=0, host_id=1, size=5000),)
    assert parse_idmap("0:1:10,10:0:1", "--uidmap") == (
        IDMap(container_id=0, host_id=1, size=10),
        IDMap(container_id=10, host_id=0, size=1),
    )
    for bad in ("0:1", "a:1:2", "0:1:0", "-1:0:1"):
        with pytest.raises(InvalidArgument, match="--uidmap"):
            parse_idmap(bad, "--uidmap")


def test_userns_plan_modes() -> None:
    assert userns_plan("") is None
    assert userns_plan("host") is None
    plan = userns_plan("", ("0:1:100",))
    assert plan is not None and plan.uid_maps == plan.gid_maps  # podman: one for both
    with pytest.raises(InvalidArgument, match="--userns and --uidmap.* are mutually exclusive"):
        userns_plan("keep-id", ("0:1:100",))
    with pytest.raises(NotSupported, match="'--userns=auto' is not supported yet"):
        userns_plan("auto")


def test_pasta_args() -> None:
    ports = (
        PortMapping(host_ip="", host_port=8080, container_port=80),
        PortMapping(host_ip="127.0.0.1", host_port=5000, container_port=6000, range=3),
        PortMapping(host_ip="", host_port=53, container_port=53, protocol="udp"),
    )
    assert pasta_args("/run/ns", ports, ()) == [
        "--config-net", "-t", "8080:80", "-t", "127.0.0.1/5000-5002:6000-6002", "-u", "53:53",
        "-T", "none", "-U", "none", "--no-map-gw", "--netns", "/run/ns",
    ]  # fmt: skip
    assert pasta_args("/run/ns", (), ("--map-gw", "-T", "auto")) == [
        "--config-net", "-t", "none", "-u", "none", "-U", "none", "-T", "auto", "--netns",
        "/run/ns",
    ]  # fmt: skip
    with pytest.raises(InvalidArgument, match="--netns"):
        pasta_args("/run/ns", (), ("--netns", "/other"))


def test_slirp_settings_and_args() -> None:
    settings = slirp_settings(("allow_host_loopback=true,mtu=1500", "cidr=10.5.0.0/24"))
    assert settings == {"allow_host_loopback": "true", "mtu": "1500", "cidr": "10.5.0.0/24"}
    assert slirp_args("/run/ns", settings, "api.sock", 7) == [
        "--configure", "--mtu=1500", "--netns-type=path", "--api-socket=api.sock",
        "--ready-fd=7", "--cidr=10.5.0.0/24", "/run/ns", "tap0",
    ]  # fmt: skip
    assert "--disable-host-loopback" in slirp_args("/run/ns", {}, "s", 3)
    assert "--mtu=65520" in slirp_args("/run/ns", {}, "s", 3)
    with pytest.raises(InvalidArgument, match="unknown option for slirp4netns"):
        slirp_settings(("nope=1",))
    with pytest.raises(InvalidArgument, match="must be one of"):
        slirp_settings(("enable_ipv6=maybe",))
    with pytest.raises(NotSupported):
        slirp_settings(("port_handler=rootlesskit",))
