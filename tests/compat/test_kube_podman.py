"""Kubernetes YAML between pypod and podman 4.3: `generate kube` writes the same document for
the same pod (IDs, times and random node ports aside), YAML podman writes plays in pypod, and
YAML pypod writes plays in podman — the published port answers in each.

Each tool has a store of its own; podman runs with runc and netavark, as MACHINE.md says.
"""

from __future__ import annotations

import re
import socket
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.compat.test_pods_podman import Tool, ok, tools  # noqa: F401  (fixture)
from tests.engine_support import wait_for

pytestmark = [pytest.mark.compat, pytest.mark.root]

IMAGE = "localhost/busybox"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def _fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return str(r.read().decode())
    except OSError:
        return None


@pytest.fixture(name="www")
def www_fixture(tmp_path: Path) -> Path:
    d = tmp_path / "www"
    d.mkdir()
    (d / "index.html").write_text("kube compat\n")
    d.chmod(0o755)
    tmp_path.chmod(0o755)
    return d


def _make_pod(tool: Tool, name: str, port: int, www: Path) -> None:
    ok(tool("pod", "create", "--name", name, "-p", f"{port}:80"))
    ok(tool("run", "-d", "--pod", name, "--name", f"{name}-web", "-v", f"{www}:/www:ro",
            "-v", f"{name}-data:/data", "-e", "GREETING=hi 1", "-w", "/www", "--cap-add",
            "NET_ADMIN", "--cap-drop", "CHOWN", "--memory", "64m", "--cpus", "0.5",
            "--restart", "always", IMAGE, "/bin/httpd", "-f", "-p", "80", "-h",
            "/www"))  # fmt: skip
    ok(tool("create", "--pod", name, "--name", f"{name}-side", "--privileged", "--read-only",
            "--entrypoint", "/bin/sh", IMAGE, "-c", "sleep 1000"))  # fmt: skip


def _normal(text: str) -> list[Any]:
    docs = [d for d in yaml.safe_load_all(text) if d]
    out = []
    for d in docs:
        d["metadata"].pop("creationTimestamp", None)
        ann = d["metadata"].get("annotations", {})
        for k in list(ann):
            if "SandboxID" in k:
                ann[k] = "<id>"
        for p in d.get("spec", {}).get("ports", ()):
            p["nodePort"] = "<random>"
        # podman 4.3 writes a --read-only container's /tmp, /var/tmp and /run tmpfs as
        # hostPath "tmpfs" (a folder of the current directory when played); pypod leaves them
        # out: the container's readOnlyRootFilesystem brings them back
        tmpfs = {v["name"] for v in d.get("spec", {}).get("volumes", ())
                 if v.get("hostPath", {}).get("path") == "tmpfs"}  # fmt: skip
        if tmpfs:
            d["spec"]["volumes"] = [v for v in d["spec"]["volumes"] if v["name"] not in tmpfs]
        for c in d.get("spec", {}).get("containers", ()):
            if "volumeMounts" in c:
                c["volumeMounts"] = [m for m in c["volumeMounts"] if m["name"] not in tmpfs]
                if not c["volumeMounts"]:
                    del c["volumeMounts"]
            for m in c.get("volumeMounts", ()):
                m["name"] = re.sub(r"^.*-host-", "<host>-", m["name"])
        volumes = d.get("spec", {}).get("volumes")
        if volumes:
            for v in volumes:
                v["name"] = re.sub(r"^.*-host-", "<host>-", v["name"])
            volumes.sort(key=lambda v: v["name"])  # podman's order follows a Go map
        out.append(d)
    return out


def test_generate_kube_same_document(tools: dict[str, Tool], www: Path) -> None:  # noqa: F811
    texts = {}
    for tool_name, tool in tools.items():
        _make_pod(tool, "kg", _free_port(), www)
        texts[tool_name] = ok(tool("generate", "kube", "-s", "kg"))
        ok(tool("pod", "rm", "-f", "-t", "0", "kg"))
        tool("volume", "rm", "-f", "kg-data")
    assert texts["pypod"].splitlines()[:4] == texts["podman"].splitlines()[:4]
    podman, pypod = _normal(texts["podman"]), _normal(texts["pypod"])
    for doc in (podman, pypod):  # host ports differ: each tool got its own free one
        for c in doc[1]["spec"]["containers"]:
            for p in c.get("ports", ()):
                p["hostPort"] = "<port>"
    assert pypod == podman


@pytest.mark.parametrize(("writer", "player"), [("podman", "pypod"), ("pypod", "podman")])
def test_yaml_plays_in_the_other_tool(tools: dict[str, Tool], www: Path, tmp_path: Path,  # noqa: F811
                                      writer: str, player: str) -> None:  # fmt: skip
    port = _free_port()
    name = f"kp{writer}"
    _make_pod(tools[writer], name, port, www)
    yaml_file = tmp_path / "pod.yaml"
    yaml_file.write_text(ok(tools[writer]("generate", "kube", name)))
    ok(tools[writer]("pod", "rm", "-f", "-t", "0", name))
    tools[writer]("volume", "rm", "-f", f"{name}-data")
    play = tools[player]("play", "kube", str(yaml_file))
    try:
        lines = play.stdout.splitlines()
        assert play.returncode == 0 or "side" in play.stderr, play.stderr
        assert lines[0] == "Pod:" and lines[2] == "Containers:", play.stdout
        assert len([x for x in lines[3:] if x]) == 2
        got = wait_for(lambda: _fetch(f"http://127.0.0.1:{port}/index.html"), 15, "the port")
        assert got == "kube compat\n"
        names = ok(tools[player]("ps", "-a", "--filter", f"pod={name}", "--format",
                                 "{{.Names}}")).split()  # fmt: skip
        assert {f"{name}-{name}-web", f"{name}-{name}-side"} <= set(names)
        env = ok(
            tools[player]("exec", f"{name}-{name}-web", "/bin/sh", "-c", "echo $GREETING; pwd")
        )
        assert env.splitlines() == ["hi 1", "/www"]
    finally:
        down = tools[player]("kube", "down", str(yaml_file))
        assert down.returncode == 0, down.stderr
        tools[player]("volume", "rm", "-f", f"{name}-data")
