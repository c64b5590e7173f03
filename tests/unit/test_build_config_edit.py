"""build/config_edit.py: config edits with buildah 1.28's rules (results noted from
`buildah config` runs on this machine)."""

from __future__ import annotations

from typing import Any

import pytest

from pypod.build.config_edit import (
    add_onbuild,
    add_port,
    add_volume,
    clear,
    docker_healthcheck,
    entrypoint_value,
    env_map,
    go_duration_ns,
    healthcheck_config,
    normalize_port,
    parse_json_or_shell,
    remove_label,
    remove_port,
    remove_volume,
    set_env,
    set_label,
    unset_env,
)
from pypod.errors import InvalidArgument


def test_env_replaced_in_place_or_appended() -> None:
    cfg: dict[str, Any] = {"Env": ["PATH=/bin", "A=1", "B=2"]}
    set_env(cfg, "A", "3")
    set_env(cfg, "C", "x=y")
    assert cfg["Env"] == ["PATH=/bin", "A=3", "B=2", "C=x=y"]
    unset_env(cfg, "B")
    assert cfg["Env"] == ["PATH=/bin", "A=3", "C=x=y"]
    assert env_map(cfg) == {"PATH": "/bin", "A": "3", "C": "x=y"}
    empty: dict[str, Any] = {"Env": None}
    set_env(empty, "K", "")
    assert empty["Env"] == ["K="]
    with pytest.raises(InvalidArgument):
        set_env(cfg, "", "v")


def test_maps() -> None:
    cfg: dict[str, Any] = {}
    set_label(cfg, "a", "b")
    add_port(cfg, "80")
    add_port(cfg, "53/UDP")
    add_port(cfg, "8080", as_given=True)  # `buildah config --port 8080` keeps it bare
    add_port(cfg, "53/SCTP", as_given=True)  # ... and the protocol as typed
    add_volume(cfg, "/data")
    assert cfg == {
        "Labels": {"a": "b"},
        "ExposedPorts": {"80/tcp": {}, "53/udp": {}, "8080": {}, "53/SCTP": {}},
        "Volumes": {"/data": {}},
    }
    remove_label(cfg, "a")
    remove_port(cfg, "80")  # the key as given: "80/tcp" stays (buildah's `--port 80-`)
    remove_port(cfg, "8080")
    remove_port(cfg, "53/SCTP")
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    remove_port(cfg, "80/tcp")
    remove_volume(cfg, "/data")
    # emptied maps stay as {} (buildah shows "Labels": {} after `--label a-`)
    assert cfg == {"Labels": {}, "ExposedPorts": {"53/udp": {}}, "Volumes": {}}
    assert normalize_port("443") == "443/tcp"
    assert normalize_port("1000-1002/UDP") == "1000-1002/udp"
    assert normalize_port("bogus", as_given=True) == "bogus"
    for bad in ("/tcp", "80/bogus", "x", "1-y"):
        with pytest.raises(InvalidArgument, match="invalid containerPort"):
            normalize_port(bad)
    with pytest.raises(InvalidArgument):
        set_label(cfg, "", "x")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('echo "a b" c', ["echo", "a b", "c"]),  # buildah config --cmd 'echo "a b" c'
        ('["a","b"]', ["a", "b"]),
        ("", []),
        ('["a", 1]', ["[a,", "1]"]),  # not an array of strings: words
    ],
)
def test_parse_json_or_shell(value: str, expected: list[str]) -> None:
    assert parse_json_or_shell(value) == expected


def test_parse_json_or_shell_bad_quotes() -> None:
    with pytest.raises(InvalidArgument, match="quotes"):
        parse_json_or_shell('echo "a')


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("x y", ["/bin/sh", "-c", "x y"]),  # buildah config --entrypoint 'x y'
        ('["/bin/app", "-v"]', ["/bin/app", "-v"]),
        ("", []),
        ("  ", []),
    ],
)
def test_entrypoint_value(value: str, expected: list[str]) -> None:
    assert entrypoint_value(value) == expected


def test_healthcheck_as_buildah_stores_it() -> None:
    # buildah config --healthcheck 'CMD-SHELL curl x' --healthcheck-interval 10s
    #   --healthcheck-retries 5 --healthcheck-start-period 2s --healthcheck-timeout 3s
    assert docker_healthcheck(
        "CMD-SHELL curl x", interval="10s", timeout="3s", start_period="2s", retries=5
    ) == {
        "Test": ["CMD-SHELL", "curl", "x"],
        "Interval": 10_000_000_000,
        "Timeout": 3_000_000_000,
        "StartPeriod": 2_000_000_000,
        "Retries": 5,
    }
    # defaults; `CMD ["a","b"]` is split as words by buildah 1.28: ["CMD", "[a,b]"]
    assert docker_healthcheck('CMD ["a","b"]') == {
        "Test": ["CMD", "[a,b]"],
        "Interval": 30_000_000_000,
        "Timeout": 30_000_000_000,
        "Retries": 3,
    }
    assert docker_healthcheck("NONE")["Test"] == ["NONE"]
    with pytest.raises(InvalidArgument):
        docker_healthcheck("")
    with pytest.raises(InvalidArgument, match="invalid duration"):
        docker_healthcheck("CMD true", interval="10")


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("30s", 30_000_000_000),
        ("1m30s", 90_000_000_000),
        ("500ms", 500_000_000),
        ("1.5h", 5_400_000_000_000),
        ("-2s", -2_000_000_000),
        ("3us", 3000),
    ],  # fmt: skip
)
def test_go_duration(text: str, ns: int) -> None:
    assert go_duration_ns(text) == ns


@pytest.mark.parametrize("text", ["", "10", "s", "1x", "1s2"])
def test_go_duration_invalid(text: str) -> None:
    with pytest.raises(InvalidArgument):
        go_duration_ns(text)


def test_clear_and_onbuild() -> None:
    cfg: dict[str, Any] = {"Env": ["A=1"], "Labels": {"a": "b"}, "OnBuild": None}
    clear(cfg, "Env")
    clear(cfg, "Labels")
    clear(cfg, "ExposedPorts")
    add_onbuild(cfg, "RUN a")
    add_onbuild(cfg, "RUN b")
    assert cfg == {"Env": [], "Labels": {}, "ExposedPorts": {}, "OnBuild": ["RUN a", "RUN b"]}


def test_healthcheck_config_keeps_only_what_is_given() -> None:
    # HEALTHCHECK --interval=5s CMD true: no defaults filled in (buildah bud)
    assert healthcheck_config(["CMD-SHELL", "true"], interval=5_000_000_000) == {
        "Test": ["CMD-SHELL", "true"],
        "Interval": 5_000_000_000,
    }
    assert healthcheck_config(["NONE"], start_period=0, retries=0) == {
        "Test": ["NONE"],
        "Retries": 0,
    }
