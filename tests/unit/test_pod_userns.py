"""Pods' user namespaces and the `pod` namespace modes without a kernel: the values
`--userns/--uidmap/--gidmap` take (podman 4.3's words), the encoding of a member's joined
namespace, the flags of `pod create` and `run`, and `pod inspect` templates."""

from __future__ import annotations

import os

import pytest

from pypod.cli.engine.pods import COMMANDS, _parse_create, _struct
from pypod.cli.engine.run_flags import parse_run
from pypod.cli.flags import parse
from pypod.cli.gotemplate import render
from pypod.engine import rootless
from pypod.engine.pods import PodConfig, shares_user
from pypod.engine.rootless import (
    NOT_IN_POD,
    USERNS_AND_MAPS,
    config_plan,
    joined_userns,
    member_userns,
    nomap_maps,
    userns_plan,
)
from pypod.errors import InvalidArgument, InvalidState, NotSupported
from pypod.linux.userns import IDMap
from pypod.oci.runtime_spec import LinuxNamespace

ROOTFUL = not rootless.is_rootless()


# --- userns_plan --------------------------------------------------------------------------
def test_host_values_have_no_namespace_of_their_own() -> None:
    assert userns_plan("") is None
    assert userns_plan("host") is None


def test_maps_make_one_and_either_stands_for_both() -> None:
    plan = userns_plan("", ("0:100000:1000", "1000:300000:10"))
    assert plan is not None and plan.join == "" and plan.user is None
    assert (
        plan.uid_maps
        == plan.gid_maps
        == (
            IDMap(container_id=0, host_id=100000, size=1000),
            IDMap(container_id=1000, host_id=300000, size=10),
        )
    )
    plan = userns_plan("", (), ("0:5:10",))
    assert plan is not None and plan.uid_maps == plan.gid_maps


@pytest.mark.parametrize("mode", ["host", "private", "keep-id", "bogus"])
def test_a_mode_and_maps_are_mutually_exclusive(mode: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        userns_plan(mode, ("0:1:2",))
    assert str(e.value) == USERNS_AND_MAPS


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("private", "must provide at least one UID or GID mapping to configure a user namespace"),
        ("bogus", "unrecognized namespace mode bogus passed"),
        ("pod", NOT_IN_POD),
    ],
)
def test_refused_in_podmans_words(mode: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        userns_plan(mode)
    assert str(e.value) == message


@pytest.mark.skipif(not ROOTFUL, reason="keep-id and nomap are refused as the host's root only")
@pytest.mark.parametrize("mode", ["keep-id", "keep-id:uid=5", "nomap"])
def test_keep_id_and_nomap_are_rootless_only(mode: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        userns_plan(mode)
    assert str(e.value) == f"{mode.partition(':')[0]} is only supported in rootless mode"


@pytest.mark.parametrize("mode", ["auto", "auto:size=10", "ns:/proc/1/ns/user", "container:x"])
def test_not_supported_yet(mode: str) -> None:
    with pytest.raises(NotSupported, match=f"'--userns={mode}' is not supported yet"):
        userns_plan(mode)


def test_malformed_map_in_podmans_words() -> None:
    with pytest.raises(InvalidArgument) as e:
        userns_plan("", ("bad",))
    assert str(e.value).startswith(
        'initializing ID mappings: UID setting is malformed expected ["uint32:uint32:uint32"]: '
        '["bad"]'
    )
    with pytest.raises(InvalidArgument, match="GID setting is malformed"):
        userns_plan("", (), ("1:2",))


def test_nomap_maps_leave_the_user_out() -> None:
    assert nomap_maps(65537) == (IDMap(container_id=0, host_id=1, size=65536),)
    with pytest.raises(InvalidArgument, match="needs subordinate ids"):
        nomap_maps(1)


# --- a member's joined namespace ------------------------------------------------------------
def test_member_userns_encodes_the_infra_and_its_maps() -> None:
    out = member_userns("abc", "", ("0:100000:65536",), ())
    assert out == {"userns": "container:abc", "uidmap": ("0:100000:65536",), "gidmap": ()}
    plan = config_plan(out["userns"], out["uidmap"], out["gidmap"])
    assert plan is not None and plan.join == "abc"
    assert plan.uid_maps == plan.gid_maps == (IDMap(container_id=0, host_id=100000, size=65536),)
    assert member_userns("abc", "keep-id", (), ())["userns"] == "container:abc:keep-id"
    assert member_userns("abc", "nomap", (), ())["userns"] == "container:abc:nomap"


def test_config_plan_without_maps_to_join_with_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="only with the maps it was made with"):
        config_plan("container:abc")
    assert config_plan("") is None


@pytest.mark.skipif(not ROOTFUL, reason="keep-id is refused as the host's root only")
def test_config_plan_of_a_keep_id_member_is_keep_ids() -> None:
    with pytest.raises(InvalidArgument, match="keep-id is only supported in rootless mode"):
        config_plan("container:abc:keep-id")


def test_joined_userns_is_that_of_the_process_whose_namespaces_are_joined() -> None:
    def ns(kind: str, pid: int | str) -> LinuxNamespace:
        return LinuxNamespace(type=kind, path=f"/proc/{pid}/ns/{kind}")

    own = os.getpid()
    with pytest.raises(InvalidState, match="has no user namespace of its own"):
        joined_userns("f" * 64, (ns("network", own), ns("ipc", own), LinuxNamespace(type="mount")))
    with pytest.raises(NotSupported, match="without joining its net, ipc, uts or pid namespace"):
        joined_userns("f" * 64, (LinuxNamespace(type="network"), LinuxNamespace(type="mount")))
    with pytest.raises(InvalidArgument, match="only, not another container's"):
        joined_userns("f" * 64, (ns("network", own), ns("ipc", 1)))
    with pytest.raises(InvalidState, match="is it running"):
        joined_userns("f" * 64, (ns("network", 2**22 + 1),))


def test_shares_user() -> None:
    maps = ("0:100000:65536",)
    assert shares_user(PodConfig(name="p", uidmap=maps))
    assert shares_user(PodConfig(name="p", gidmap=maps, share=("net",)))
    assert shares_user(PodConfig(name="p", userns="keep-id"))
    assert not shares_user(PodConfig(name="p"))
    assert not shares_user(PodConfig(name="p", userns="host"))
    assert not shares_user(PodConfig(name="p", uidmap=maps, infra=False))
    assert not shares_user(PodConfig(name="p", uidmap=maps, share=()))


# --- pod create flags -----------------------------------------------------------------------
def create(*args: str) -> PodConfig:
    cfg = _parse_create(parse(list(args), COMMANDS["pod create"].flags))
    assert isinstance(cfg, PodConfig)
    return cfg


def test_pod_create_userns_flags() -> None:
    cfg = create("--uidmap", "0:100000:1000", "--uidmap", "1000:300000:10", "--gidmap",
                 "0:200000:65536", "p")  # fmt: skip
    assert (cfg.userns, cfg.uidmap, cfg.gidmap) == (
        "", ("0:100000:1000", "1000:300000:10"), ("0:200000:65536",)
    )  # fmt: skip
    assert create("--userns", "host").userns == "host"
    assert create("--userns=").userns == ""
    for args in (["--userns=", "--uidmap", "0:1:2"], ["--userns", "host", "--gidmap", "0:1:2"]):
        with pytest.raises(InvalidArgument) as e:
            create(*args)
        assert str(e.value) == USERNS_AND_MAPS
    with pytest.raises(InvalidArgument, match="unrecognized namespace mode x passed"):
        create("--userns", "x")
    for flag in ("--subuidname", "--subgidname"):
        with pytest.raises(NotSupported, match=f"'{flag}' is not supported yet"):
            create(flag, "root")


# --- run/create flags -----------------------------------------------------------------------
def error(*args: str) -> str:
    with pytest.raises(InvalidArgument) as e:
        parse_run(list(args))
    return str(e.value)


def test_pod_namespace_modes_need_a_pod() -> None:
    for kind in ("ipc", "pid", "uts", "userns"):
        assert error(f"--{kind}", "pod", "busybox") == NOT_IN_POD
    cfg = parse_run(["--pod", "p", "--ipc", "pod", "--pid", "pod", "--uts", "pod", "busybox"])[0]
    assert (cfg.ipc, cfg.pid, cfg.uts, cfg.pod) == ("pod", "pod", "pod", "p")


def test_userns_with_pod() -> None:
    for args in (["--userns", "host"], ["--userns="], ["--userns", "pod"]):
        assert error("--pod", "p", *args, "busybox") == "--userns and --pod cannot be set together"
    cfg = parse_run(["--pod", "new:p", "--uidmap", "0:100000:65536", "busybox"])[0]
    assert (cfg.pod, cfg.uidmap) == ("new:p", ("0:100000:65536",))
    assert error("--userns=", "--uidmap", "0:1:2", "busybox") == USERNS_AND_MAPS


# --- pod inspect templates ------------------------------------------------------------------
def test_inspect_template_go_field_names() -> None:
    doc = {"Id": "x", "InfraConfig": {"pid_ns": "private", "userns": "keep-id", "uts_ns": "host"}}
    row = _struct(doc)
    out = render("{{.InfraConfig.UserNS}} {{.InfraConfig.PidNS}} {{.InfraConfig.UtsNS}}", row)
    assert out == "keep-id private host"
    assert render("[{{.InfraContainerID}}]", row) == "[]"  # omitted from JSON when empty
    assert render("{{json .InfraConfig}}", row) == (
        '{"pid_ns":"private","userns":"keep-id","uts_ns":"host"}'
    )
