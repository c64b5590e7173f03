"""Pods: pypod against podman 4.3 side by side — `pod ps` columns, `pod inspect` fields,
statuses as members start and stop, `ps --pod`, and the errors (words and exit codes).

Each tool has a store of its own; podman runs with runc and netavark, as MACHINE.md says.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN
from tests.engine_support import make_busybox_tar

pytestmark = [pytest.mark.compat, pytest.mark.root]

IMAGE = "localhost/busybox"
Tool = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Tool]]:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (apt-get install podman)")
    if not any(os.path.exists(f"{d}/netavark") for d in ("/usr/lib/podman", "/usr/libexec/podman")):
        pytest.skip("netavark is not installed (apt-get install netavark aardvark-dns)")
    if shutil.which("catatonit") is None:
        pytest.skip("catatonit is not installed (apt-get install catatonit)")
    busybox = make_busybox_tar(tmp_path_factory.mktemp("bb"))
    store = Path(tempfile.mkdtemp(prefix="ppd", dir="/tmp"))  # podman: runroot < 50 characters
    (store / "tmp").mkdir()
    conf = store / "containers.conf"
    conf.write_text(
        '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=30000:30000"]\n'
        f'[network]\nnetwork_backend = "netavark"\nnetwork_config_dir = "{store}/networks"\n'
        f'[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
        f'events_logfile_path = "{store}/events.log"\n'
    )
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    base = ["podman", "--root", str(store / "root"), "--runroot", str(store / "run"),
            "--tmpdir", str(store / "tmp")]  # fmt: skip

    def podman(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], env=env, capture_output=True, text=True,
                              timeout=120, check=False)  # fmt: skip

    def pypod(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "pypod"), "--root", str(store / "pypod"), "--runroot",
                               str(store / "pypod-run"), *args], capture_output=True,
                              text=True, timeout=120, check=False)  # fmt: skip

    tools = {"podman": podman, "pypod": pypod}
    cgroups_before = _pod_cgroups()
    try:
        for tool in tools.values():
            proc = tool("import", "-q", str(busybox), IMAGE)
            if proc.returncode != 0:
                pytest.skip(f"cannot import busybox: {proc.stderr}")
        yield tools
    finally:
        for tool in tools.values():
            tool("pod", "rm", "-a", "-f", "-t", "0")
            tool("rm", "-a", "-f", "-t", "0")
        podman("system", "reset", "-f")
        subprocess.run(["umount", "-R", str(store / "root" / "overlay")], capture_output=True,
                       check=False)  # fmt: skip
        shutil.rmtree(store, ignore_errors=True)
        for path in sorted(_pod_cgroups() - cgroups_before):  # podman leaves some behind
            with contextlib.suppress(OSError):
                os.rmdir(path)


def _pod_cgroups() -> set[str]:
    """The pods' cgroup directories (podman's and pypod's) in every cgroup hierarchy."""
    import glob

    found = glob.glob("/sys/fs/cgroup/*/libpod_parent/*") + glob.glob(
        "/sys/fs/cgroup/*/pypod_parent/*"
    )
    return {p for p in found if re.fullmatch(r"[0-9a-f]{64}", os.path.basename(p))}


def both(tools: dict[str, Tool], *args: str) -> dict[str, subprocess.CompletedProcess[str]]:
    return {name: tool(*args) for name, tool in tools.items()}


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


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
