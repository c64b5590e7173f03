"""The pure parts of a Containerfile build: stage planning, ARG scoping, config edits and the
history texts buildah 1.28 writes (checked against `buildah bud` output by hand: see
tests/compat/test_build_buildah.py for the side-by-side run)."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from pypod.build.containerfile import Instruction, parse
from pypod.build.instructions import (
    apply_config,
    created_by,
    env_map,
    healthcheck,
    run_argv,
    set_env,
    workdir_path,
)
from pypod.build.stages import ArgScope, check_platform, heading_args, host_platform, plan_stages
from pypod.errors import InvalidArgument, NotSupported


def cf(text: str) -> Any:
    return parse(textwrap.dedent(text).lstrip("\n"), "Containerfile")


def ins(line: str) -> Instruction:
    return cf(f"FROM scratch\n{line}\n").stages[0].instructions[0]


# --- stages -----------------------------------------------------------------------------------


def test_unused_stages_are_skipped_and_dependencies_kept() -> None:
    f = cf("""
        FROM busybox AS unused
        RUN echo unused
        FROM busybox AS one
        RUN echo one
        FROM alpine AS two
        RUN --mount=type=bind,from=mounted,target=/m true
        FROM busybox AS mounted
        FROM one
        COPY --from=two /x /x
        """)
    plans = plan_stages(f, {})
    assert [p.stage.name for p in plans] == ["one", "two", None]
    assert [p.position for p in plans] == [2, 3, 5]
    last = plans[-1]
    assert last.base == "one" and last.base_stage == 1


def test_mount_from_a_later_stage_is_an_image() -> None:
    # `mounted` comes after `two`: for `two` it names an image, not a stage
    f = cf("""
        FROM busybox AS two
        RUN --mount=type=bind,from=mounted,target=/m true
        FROM busybox AS mounted
        FROM scratch
        COPY --from=two /x /x
        """)
    assert [p.position for p in plan_stages(f, {})] == [1, 3]


def test_target_drops_later_stages() -> None:
    f = cf("""
        FROM busybox AS a
        FROM busybox AS b
        COPY --from=a / /
        FROM busybox AS c
        """)
    assert [p.stage.name for p in plan_stages(f, {}, "b")] == ["a", "b"]
    assert [p.stage.name for p in plan_stages(f, {}, "A")] == ["a"]
    with pytest.raises(InvalidArgument, match="no stage named"):
        plan_stages(f, {}, "nope")


def test_copy_from_by_number_and_by_expanded_arg() -> None:
    f = cf("""
        FROM busybox
        FROM busybox AS src
        FROM scratch
        ARG FROM_STAGE=src
        COPY --from=0 /a /a
        COPY --from=$FROM_STAGE /b /b
        """)
    assert [p.position for p in plan_stages(f, {})] == [1, 2, 3]


def test_heading_args_expand_from_and_build_args_override() -> None:
    f = cf("""
        ARG REG=docker.io
        ARG IMG=$REG/busybox
        FROM ${IMG}:1
        """)
    assert plan_stages(f, {})[0].base == "docker.io/busybox:1"
    assert plan_stages(f, {"REG": "quay.io"})[0].base == "quay.io/busybox:1"
    assert plan_stages(f, {"IMG": "x"})[0].base == "x:1"
    assert heading_args(f, {"OTHER": "1"}) == {"REG": "docker.io", "IMG": "docker.io/busybox"}


def test_empty_base_after_expansion_names_the_line() -> None:
    f = cf("""
        ARG BASE
        FROM $BASE
        """)
    with pytest.raises(InvalidArgument, match="Containerfile:2"):
        plan_stages(f, {})


def test_platform_of_this_host_only() -> None:
    os_, arch, _ = host_platform()
    f = cf(f"FROM --platform={os_}/{arch} busybox\n")
    assert len(plan_stages(f, {})) == 1
    f = cf("FROM --platform=$BUILDPLATFORM busybox\n")
    assert len(plan_stages(f, {})) == 1
    other = "arm64" if arch != "arm64" else "amd64"
    with pytest.raises(NotSupported, match="not supported yet"):
        plan_stages(cf(f"FROM --platform=linux/{other} busybox\n"), {})
    with pytest.raises(NotSupported):
        check_platform("windows", ins("RUN true"))


# --- ARG scoping ------------------------------------------------------------------------------


def test_arg_scope_values() -> None:
    scope = ArgScope({"U": "user", "UNDECLARED": "x"}, {"H": "heading", "U": "heading-u"})
    assert scope.visible() == {}
    scope.declare("U", "default")  # the build arg wins over the default
    scope.declare("H", None)  # a bare ARG takes the heading arg's value
    scope.declare("D", "d")
    scope.declare("NONE", None)  # declared, no value
    assert scope.visible() == {"U": "user", "H": "heading", "D": "d"}
    assert scope.keys_text() == "D H U"
    assert scope.history_text({"D": "from-env"}) == "D=from-env H=heading U=user"
    assert scope.run_env({"D": "from-env"}) == ["U=user", "H=heading"]


def test_proxy_build_args_reach_run_only() -> None:
    scope = ArgScope({"http_proxy": "http://p:3128"}, {})
    assert scope.run_env({}) == ["http_proxy=http://p:3128"]
    assert scope.history_text({}) == ""


# --- history texts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "kw", "expected"),
    [
        ("RUN echo hi $X", {"run_args": "X=2"}, "|1 X=2 /bin/sh -c echo hi $X"),
        ("RUN echo hi", {}, "/bin/sh -c echo hi"),
        ('RUN ["echo", "hi"]', {}, '/bin/sh -c ["echo", "hi"]'),
        ("RUN a", {"run_args": "A=1 B=x y"}, "|3 A=1 B=x y /bin/sh -c a"),
        ("COPY f.txt /f", {"content": "file:abc"}, "/bin/sh -c #(nop) COPY file:abc in /f "),
        ("ADD a b $D/", {"content": "multi:0"}, "/bin/sh -c #(nop) ADD multi:0 in $D/ "),
        ("ARG X=1", {"arg_keys": "X"}, "/bin/sh -c #(nop) ARG X"),
        ('ENV A=b C="d e"', {}, '/bin/sh -c #(nop) ENV A=b C="d e"'),
        ("HEALTHCHECK --interval=5s CMD true", {},
         "/bin/sh -c #(nop) HEALTHCHECK --interval=5s CMD true"),
        ("ONBUILD RUN echo trig", {}, "/bin/sh -c #(nop) ONBUILD RUN echo trig"),
    ],
)  # fmt: skip
def test_created_by(line: str, kw: dict[str, str], expected: str) -> None:
    assert created_by(ins(line), **kw) == expected


# --- config edits -----------------------------------------------------------------------------


def apply(lines: list[str], config: dict[str, Any] | None = None) -> dict[str, Any]:
    cfg: dict[str, Any] = config if config is not None else {}
    cmd_set = False
    for line in lines:
        i = ins(line)
        cmd_set = apply_config(i, cfg, list(i.args), cmd_set=cmd_set)
    return cfg


def test_env_replaces_in_place() -> None:
    cfg = {"Env": ["PATH=/bin", "A=1"]}
    set_env(cfg, "PATH", "/usr/bin")
    set_env(cfg, "B", "2")
    assert cfg["Env"] == ["PATH=/usr/bin", "A=1", "B=2"]
    assert env_map({"Env": ["A=1", "B", "A=2"]}) == {"A": "2", "B": ""}


def test_config_instructions() -> None:
    cfg = apply([
        "LABEL a=1 b=2", "EXPOSE 80 90/udp 1000-1001", "VOLUME /v /w", "WORKDIR /a",
        "WORKDIR b/../c", "USER 1:1", "STOPSIGNAL SIGKILL", 'SHELL ["/bin/bash", "-c"]',
        "CMD echo hi", "ONBUILD RUN x", "ONBUILD COPY a b",
    ])  # fmt: skip
    assert cfg == {
        "Labels": {"a": "1", "b": "2"},
        "ExposedPorts": {"80/tcp": {}, "90/udp": {}, "1000-1001/tcp": {}},
        "Volumes": {"/v": {}, "/w": {}},
        "WorkingDir": "/a/c",
        "User": "1:1",
        "StopSignal": "SIGKILL",
        "Shell": ["/bin/bash", "-c"],
        "Cmd": ["/bin/bash", "-c", "echo hi"],
        "OnBuild": ["RUN x", "COPY a b"],
    }


def test_entrypoint_clears_an_inherited_cmd_but_not_one_of_the_stage() -> None:
    assert apply(['ENTRYPOINT ["/e"]'], {"Cmd": ["sh"]}) == {"Cmd": None, "Entrypoint": ["/e"]}
    cfg = apply(['CMD ["c"]', "ENTRYPOINT /e"], {"Cmd": ["sh"]})
    assert cfg == {"Cmd": ["c"], "Entrypoint": ["/bin/sh", "-c", "/e"]}


def test_bad_values_name_the_line() -> None:
    with pytest.raises(InvalidArgument, match="Containerfile:2: invalid containerPort"):
        apply(["EXPOSE 80/bogus"])
    with pytest.raises(InvalidArgument, match="Containerfile:2: invalid signal"):
        apply(["STOPSIGNAL SIGNOPE"])
    cfg: dict[str, Any] = {}
    apply_config(ins("EXPOSE 53/UDP"), cfg, ["53/UDP", "80"], cmd_set=False)
    assert cfg == {"ExposedPorts": {"53/udp": {}, "80/tcp": {}}}


def test_healthcheck() -> None:
    assert healthcheck(ins("HEALTHCHECK NONE")) == {"Test": ["NONE"]}
    assert healthcheck(ins("HEALTHCHECK --interval=5s --retries=2 CMD true")) == {
        "Test": ["CMD-SHELL", "true"],
        "Interval": 5_000_000_000,
        "Retries": 2,
    }
    assert healthcheck(ins('HEALTHCHECK --timeout=1m CMD ["a", "b"]')) == {
        "Test": ["CMD", "a", "b"],
        "Timeout": 60_000_000_000,
    }


def test_workdir_path() -> None:
    assert workdir_path("", "a") == "/a"
    assert workdir_path("/x", "../..//y/") == "/y"
    assert workdir_path("/x", "/") == "/"


# --- RUN's command ----------------------------------------------------------------------------


def test_run_argv_forms() -> None:
    assert run_argv(ins("RUN echo hi"), {}) == ["/bin/sh", "-c", "echo hi"]
    assert run_argv(ins('RUN ["echo", "hi"]'), {"Shell": ["/x"]}) == ["echo", "hi"]
    assert run_argv(ins("RUN echo hi"), {"Shell": ["/bin/bash", "-xc"]}) == [
        "/bin/bash",
        "-xc",
        "echo hi",
    ]


def test_run_argv_heredocs() -> None:
    f = cf("""
        FROM scratch
        RUN <<EOF
        echo one
        echo two
        EOF
        RUN cat <<A > /a && cat <<"B" > /b
        $HOME
        A
        $HOME
        B
        """)
    script, both = f.stages[0].instructions
    assert run_argv(script, {}) == ["/bin/sh", "-c", "echo one\necho two\n"]
    assert run_argv(both, {}) == [
        "/bin/sh",
        "-c",
        'cat <<A > /a && cat <<"B" > /b\n$HOME\nA\n$HOME\nB\n',
    ]
