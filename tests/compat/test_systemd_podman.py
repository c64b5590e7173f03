"""`generate systemd`: pypod against podman 4.3 side by side, line for line.

The same containers and pods are made in both tools (each in a store of its own, named by the
same global flags), and the units of each flag combination are compared after the values that
differ by nature are made alike: IDs, the time stamp, the program's path, the store's paths, and
the monitor's pid file (podman: `<runroot>/overlay-containers/<id>/userdata/conmon.pid`, pypod:
`<runroot>/containers/<id>/monitor.pid`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.podman_support import IMAGE, Tool, both, ok, podman_sandbox

pytestmark = [pytest.mark.compat, pytest.mark.root]


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Tool]]:
    with podman_sandbox("psy", tmp_path_factory.mktemp("bb"), catatonit=True) as tools:
        yield tools


def normal(text: str, tool: str, argv0: str) -> str:
    """`text` with what differs by nature replaced."""
    store = os.path.dirname(argv0.split(" --root ")[1].split()[0].rstrip("/"))
    text = text.replace(argv0.split()[0], "<exe>")
    text = re.sub(
        r"PIDFile=\S+/(overlay-containers/[0-9a-f]{64}/userdata/conmon|containers/[0-9a-f]{64}/"
        r"monitor)\.pid",
        "PIDFile=<monitor pid file>",
        text,
    )
    text = text.replace(store, "<store>")
    text = re.sub(r"[0-9a-f]{64}", "<id>", text)
    text = re.sub(r"\b[0-9a-f]{12}\b", "<id>", text)
    text = re.sub(r"# \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \w+ \d{4}\n", "# <time>\n", text)
    # podman writes `--env` values in Go's map order (random); pypod in the order given
    return re.sub(
        r"(?:^Environment=.*\n){2,}",
        lambda m: "".join(sorted(m.group(0).splitlines(keepends=True))),
        text,
        flags=re.M,
    )


def compare(tools: dict[str, Tool], *args: str) -> str:
    """Run `generate systemd ARGS` in both; their outputs (normalised) must be equal
    (`unnamed`: each tool's container created without a name)."""
    out = {}
    for name, tool in tools.items():
        given = [UNNAMED[name == "pypod"] if a == "unnamed" else a for a in args]
        out[name] = tool("generate", "systemd", *given)
    shown = {}
    for name, proc in out.items():
        assert proc.returncode == 0, (name, proc.stderr)
        shown[name] = normal(proc.stdout, name, " ".join(proc.args))
    # podman prints a pod's units in Go's map order (random); pypod the pod's first
    split = {name: sorted(text.split("WantedBy=default.target\n")) for name, text in shown.items()}
    if split["pypod"] != split["podman"]:
        import difflib

        diff = difflib.unified_diff("".join(split["podman"]).splitlines(),
                                    "".join(split["pypod"]).splitlines(), "podman", "pypod",
                                    lineterm="")  # fmt: skip
        raise AssertionError(f"{args}:\n" + "\n".join(diff))
    return shown["pypod"]


def same_setup(tools: dict[str, Tool], *commands: list[str]) -> None:
    for command in commands:
        for name, proc in both(tools, *command).items():
            assert proc.returncode == 0, (name, command, proc.stderr)


@pytest.fixture(scope="module")
def made(tools: dict[str, Tool]) -> dict[str, Tool]:
    same_setup(
        tools,
        ["create", "--name", "web", "-p", "18080:80", IMAGE, "sleep", "1000"],
        ["run", "-e", "B=x y", "--rm", "-d", "--name=esc", IMAGE, "sh", "-c",
         "echo $HOME 50% --rm; sleep 1000"],
        ["pod", "create", "--name", "pp", "-p", "18081:80", "--label", "a=b"],
        ["create", "--pod", "pp", "--name", "m1", IMAGE, "sleep", "1000"],
        ["create", "--pod", "pp", "--name", "m2", "-e", "A=1", IMAGE, "sleep", "1000"],
        ["pod", "create", "--exit-policy", "continue", "pq"],
        ["create", "--pod", "pq", "--name", "q1", "--restart", "on-failure:3", IMAGE, "true"],
        ["pod", "create", "pempty"],
    )  # fmt: skip
    # a container without a name: the same command, each tool's own generated name
    for tool in tools.values():
        cid = ok(tool("create", IMAGE, "true")).strip()
        UNNAMED[tool is tools["pypod"]] = cid
    return tools


#: the unnamed container of each tool (False: podman's, True: pypod's)
UNNAMED: dict[bool, str] = {}


@pytest.mark.parametrize(
    "args",
    [
        ["web"],
        ["--name", "web"],
        ["--new", "--name", "web"],
        ["--new", "--no-header", "--restart-policy=always", "-t", "5", "--container-prefix", "c",
         "--separator", "_", "web"],
        ["--name", "--no-header", "--wants", "a.service", "--wants", "b.service", "--after",
         "c.service", "--requires", "d.service", "-e", "X=1", "-e", "Y=a b", "--start-timeout",
         "30", "--time", "3", "--restart-sec", "7", "web"],
        ["--new", "--name", "esc"],
        ["--new", "--name", "--no-header", "--container-prefix", "", "esc"],
        ["--template", "--name", "web"],
        ["--template", "--new", "--no-header", "--name", "esc"],
        ["--template", "--new", "unnamed"],
        ["--new", "unnamed"],
        ["--name", "m1"],  # a pod's member on its own
        ["--new", "--name", "m1"],
    ],
)  # fmt: skip
def test_container_units_are_podmans(made: dict[str, Tool], args: list[str]) -> None:
    compare(made, *args)


@pytest.mark.parametrize(
    "args",
    [
        ["pp"],
        ["--name", "pp"],
        ["--new", "--name", "pp"],
        ["--new", "--name", "--no-header", "--restart-policy=always", "-t", "5",
         "--container-prefix", "c", "--pod-prefix", "p", "--separator", "_", "--restart-sec", "7",
         "pp"],
        ["--name", "--wants", "a.service", "-e", "X=1", "pp"],
        ["--new", "--name", "pq"],
        ["--name", "pq"],
        ["pempty"],
    ],
)  # fmt: skip
def test_pod_units_are_podmans(made: dict[str, Tool], args: list[str]) -> None:
    units = compare(made, *args)
    assert units.count("[Unit]") >= 1


def test_files_and_json_are_podmans(made: dict[str, Tool], tmp_path: Path) -> None:
    listed: dict[str, object] = {}
    for name, tool in made.items():
        where = tmp_path / name
        where.mkdir()
        proc = tool("generate", "systemd", "--files", "--name", "--new", "pp", cwd=str(where))
        # podman lists them in Go's map order (random), pypod the pod's first
        listed[name] = sorted(ok(proc).replace(str(where), "<cwd>").splitlines())
        files = {p.name: normal(p.read_text(), name, " ".join(proc.args)) for p in where.iterdir()}
        listed[name + " files"] = json.dumps(files, sort_keys=True)
    assert listed["pypod"] == listed["podman"]
    assert listed["pypod files"] == listed["podman files"]
    out = both(made, "generate", "systemd", "--format", "json", "--name", "pp")
    keys = {name: list(json.loads(ok(proc))) for name, proc in out.items()}
    assert keys["pypod"] == keys["podman"]


@pytest.mark.parametrize(
    "args",
    [
        ["nosuchthing"],
        ["--restart-policy", "bogus", "web"],
        ["--new", "--restart-policy", "bogus", "pp"],
        ["--template", "pp"],
    ],
)
def test_errors_are_podmans(made: dict[str, Tool], args: list[str]) -> None:
    out = both(made, "generate", "systemd", *args)
    assert out["pypod"].returncode == out["podman"].returncode
    assert out["pypod"].stderr == out["podman"].stderr


def test_pod_without_infra_is_refused_as_podman_does(made: dict[str, Tool]) -> None:
    same_setup(made, ["pod", "create", "--infra=false", "--name", "pnoinfra"])
    out = both(made, "generate", "systemd", "pnoinfra")
    assert out["pypod"].returncode == out["podman"].returncode == 125
    assert out["pypod"].stderr == out["podman"].stderr


def test_infra_container_unit_is_podmans(made: dict[str, Tool]) -> None:
    """The infra container on its own gets a container unit (podman does not refuse it)."""
    shown = {}
    for name, tool in made.items():
        infra = json.loads(ok(tool("pod", "inspect", "pp")))["InfraContainerID"]
        proc = tool("generate", "systemd", "--name", infra)
        shown[name] = normal(ok(proc), name, " ".join(proc.args))
    assert shown["pypod"] == shown["podman"]
