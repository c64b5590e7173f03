"""Pods: pypod against podman 4.3 side by side — `pod ps` columns, `pod inspect` fields,
statuses as members start and stop, `ps --pod`, and the errors (words and exit codes).

Each tool has a store of its own; podman runs with runc and netavark, as MACHINE.md says.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.podman_support import IMAGE, Tool, both, ok, podman_sandbox

pytestmark = [pytest.mark.compat, pytest.mark.root]


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Tool]]:
    with podman_sandbox("ppd", tmp_path_factory.mktemp("bb"), catatonit=True) as tools:
        yield tools


def _shape(value: Any, key: str = "") -> Any:
    """A document with the values that differ by nature (IDs, times, the command line, the
    engine's own names) made comparable."""
    if isinstance(value, dict):
        return {k: _shape(v, k) for k, v in value.items()}
    if isinstance(value, list):
        if key == "CreateCommand":
            return ["<command>"]
        if key == "SharedNamespaces":
            return sorted(value)
        if key == "Containers":
            return sorted((_shape(v) for v in value), key=json.dumps)
        return [_shape(v) for v in value]
    if isinstance(value, str):
        value = re.sub(r"[0-9a-f]{64}", "<id>", value)
        value = re.sub(r"\b[0-9a-f]{12}\b", "<id>", value)
        value = value.replace("libpod_parent", "<parent>").replace("pypod_parent", "<parent>")
        if key == "Created":
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", value), value
            return "<time>"
        if key == "Networks" or value in ("podman", "pypod"):
            return "<default network>" if value in ("podman", "pypod") else value
    return value


def inspect_both(tools: dict[str, Tool], name: str) -> tuple[Any, Any]:
    out = both(tools, "pod", "inspect", name)
    return _shape(json.loads(ok(out["podman"]))), _shape(json.loads(ok(out["pypod"])))


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["-p", "18765:80", "--label", "a=b", "--hostname", "hh"],
        ["--share", "+pid", "--add-host", "db:10.1.2.3", "--dns", "192.0.2.1"],
        ["--infra=false", "--label", "x=y"],
        ["--share", "net"],
    ],
    ids=lambda a: " ".join(a) or "default",
)
def test_create_inspect_same_fields(tools: dict[str, Tool], args: list[str]) -> None:
    name = f"pi{os.urandom(3).hex()}"
    out = both(tools, "pod", "create", "--name", name, *args)
    for proc in out.values():
        assert re.fullmatch(r"[0-9a-f]{64}\n", ok(proc))
    try:
        pm, pp = inspect_both(tools, name)
        assert pp == pm
    finally:
        both(tools, "pod", "rm", "-f", name)


def test_pod_ps_and_statuses_as_members_come_and_go(tools: dict[str, Tool]) -> None:
    name = f"pp{os.urandom(3).hex()}"
    ok(tools["podman"]("pod", "create", "--name", name))
    ok(tools["pypod"]("pod", "create", "--name", name))
    try:
        for args in ([], ["--ctr-names", "--ctr-status", "--ctr-ids"], ["--no-trunc"]):
            out = both(tools, "pod", "ps", "--filter", f"name={name}", *args)
            heads = {k: ok(p).splitlines()[0].split() for k, p in out.items()}
            assert heads["pypod"] == heads["podman"]

        def states() -> dict[str, str]:
            out = both(tools, "pod", "ps", "--filter", f"name={name}", "--format", "{{.Status}}")
            return {k: ok(p).strip() for k, p in out.items()}

        assert states() == {"podman": "Created", "pypod": "Created"}
        for tool in tools.values():
            ok(tool("run", "-d", "--pod", name, "--name", f"{name}-a", IMAGE, "sleep", "1000"))
        assert states() == {"podman": "Running", "pypod": "Running"}
        for tool in tools.values():
            ok(tool("stop", "-t", "0", f"{name}-a"))
        assert states() == {"podman": "Degraded", "pypod": "Degraded"}
        # ps --pod: the same columns; the infra and the member, with the pod's ID and name
        out = both(tools, "ps", "-a", "--pod", "--filter", f"pod={name}")
        rows = {k: ok(p).splitlines() for k, p in out.items()}
        assert re.split(r"\s{2,}", rows["pypod"][0]) == re.split(r"\s{2,}", rows["podman"][0])
        assert len(rows["pypod"]) == len(rows["podman"]) == 3
        fmt = "{{.Names}} {{.PodName}} {{.IsInfra}}"
        out = both(tools, "ps", "-a", "--filter", f"pod={name}", "--format", fmt)
        names = {k: sorted(re.sub(r"^[0-9a-f]{12}-", "<id>-", line)
                           for line in ok(p).splitlines()) for k, p in out.items()}  # fmt: skip
        assert names["pypod"] == names["podman"]
        out = both(tools, "pod", "stop", "-t", "0", name)
        assert all(ok(p).strip() for p in out.values())
        assert states() == {"podman": "Exited", "pypod": "Exited"}
        pm, pp = inspect_both(tools, name)
        assert pp == pm
    finally:
        both(tools, "pod", "rm", "-f", "-t", "0", name)


def test_errors_same_words_and_codes(tools: dict[str, Tool]) -> None:
    name = f"pe{os.urandom(3).hex()}"
    for tool in tools.values():
        ok(tool("pod", "create", "--name", name))
        ok(tool("run", "-d", "--pod", name, IMAGE, "sleep", "1000"))
    try:
        cases = [
            (("pod", "create", "--name", name), "pod already exists"),
            (("pod", "rm", "nosuchpod"), "no pod with name or ID nosuchpod found: no such pod"),
            (("pod", "inspect", "nosuchpod"), "no such pod nosuchpod"),
            (("pod", "rm", name), "cannot be removed without force"),
            (("pod", "exists", "nosuchpod"), ""),
            (("pod", "create", "--share", "bogus"), "invalid kernel namespace to share: bogus"),
            (("run", "--pod", "nosuchpod", IMAGE, "true"), "no pod with name or ID nosuchpod"),
        ]
        for args, words in cases:
            out = both(tools, *args)
            pm, pp = out["podman"], out["pypod"]
            assert pp.returncode == pm.returncode != 0, (args, pm.stderr, pp.stderr)
            assert words in pm.stderr and words in pp.stderr, (args, pm.stderr, pp.stderr)
        infra = {
            k: ok(t("pod", "inspect", "--format", "{{.InfraContainerID}}", name)).strip()
            for k, t in tools.items()
        }
        out = {k: t("rm", "-f", infra[k]) for k, t in tools.items()}
        assert out["pypod"].returncode == out["podman"].returncode == 125
        for k, proc in out.items():
            assert "is the infra container of pod" in proc.stderr, (k, proc.stderr)
            assert "cannot be removed without removing the pod" in proc.stderr
        assert {k: t("pod", "exists", name).returncode for k, t in tools.items()} == {
            "podman": 0,
            "pypod": 0,
        }
    finally:
        both(tools, "pod", "rm", "-f", "-t", "0", name)
    assert {k: t("pod", "exists", name).returncode for k, t in tools.items()} == {
        "podman": 1,
        "pypod": 1,
    }
