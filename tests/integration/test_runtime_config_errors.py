"""Invalid config.json and lifecycle misuse: exit 1, a message naming the field, no leftovers.

"No leftovers" means: `list -q` is empty, nothing is left under the state root, none of the
container's cgroup directories exists (the paths the cgroup manager would use), and no process
of the failed container is still alive.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pypod.linux.cgroups import new_manager
from tests.conftest import CLI, BundleFactory, messages

pytestmark = pytest.mark.root

Edit = Callable[[dict[str, Any]], None]


def _drop_uts(spec: dict[str, Any]) -> None:
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "uts"]


def _append(key: str, item: dict[str, Any]) -> Edit:
    def edit(spec: dict[str, Any]) -> None:
        parent = spec["linux"] if key == "namespaces" else spec
        if key == "rlimits":
            parent = spec["process"]
        parent[key].append(item)

    return edit


#: (id, edit of the config or raw text to write, texts the message must hold)
CASES: list[tuple[str, Edit | str, tuple[str, ...]]] = [
    ("bad-json", '{"ociVersion": "1.0.2", "process": ', ("config.json", "invalid JSON", "line 1")),
    ("not-an-object", "[1, 2]", ("config.json",)),
    (
        "unknown-namespace",
        _append("namespaces", {"type": "bogus"}),
        ("linux.namespaces[5].type", 'unknown namespace type "bogus"'),
    ),
    (
        "missing-rootfs",
        lambda s: s["root"].update(path="no-such-rootfs"),
        ("root.path", "no-such-rootfs", "does not exist"),
    ),
    (
        "mount-without-destination",
        _append("mounts", {"type": "tmpfs", "source": "tmpfs"}),
        ("mounts[7].destination", "required"),
    ),
    (
        "bind-source-missing",
        _append(
            "mounts",
            {"destination": "/mnt", "type": "bind", "source": "/no/such/src", "options": ["rbind"]},
        ),
        ("mounts[7]", "/no/such/src", "No such file or directory"),
    ),
    (
        "bad-rlimit-name",
        _append("rlimits", {"type": "RLIMIT_BOGUS", "hard": 1, "soft": 1}),
        ("process.rlimits[1].type", 'unknown rlimit type "RLIMIT_BOGUS"'),
    ),
    ("empty-args", lambda s: s["process"].update(args=[]), ("process.args", "must not be empty")),
    (
        "hostname-without-uts",
        _drop_uts,
        ("hostname", "unable to set hostname without a private UTS namespace"),
    ),
    (
        "rlimit-above-hard-limit",
        lambda s: s["process"].update(
            rlimits=[{"type": "RLIMIT_NOFILE", "hard": 1048576, "soft": 1048576}]
        ),
        ("process.rlimits", "RLIMIT_NOFILE", "1048576", "hard limit"),
    ),
    (
        "negative-uid",
        lambda s: s["process"]["user"].update(uid=-1),
        ("process.user.uid",),
    ),
    (
        "relative-cwd",
        lambda s: s["process"].update(cwd="tmp"),
        ("process.cwd", "not an absolute path"),
    ),
    (
        "mappings-without-userns",
        lambda s: s["linux"].update(uidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}]),
        ("linux.uidMappings", "no user namespace"),
    ),
]


def _hard_nofile() -> int:
    import resource

    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(int(name))
        except OSError:
            continue
    return found


def cgroups_path(b: Path) -> str:
    """linux.cgroupsPath of the bundle's config ("" when unreadable)."""
    try:
        return str(json.loads((b / "config.json").read_text())["linux"].get("cgroupsPath", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""


def cgroup_dirs(cid: str, path: str) -> list[str]:
    """The directories the cgroup manager would use for the container (and for its id alone)."""
    dirs = list(new_manager("", cid).paths.values())
    if path:
        dirs += new_manager(path, cid).paths.values()
    return dirs


def assert_no_leftovers(rt: CLI, cid: str, cgroup_path: str = "") -> None:
    assert rt.ok("list", "-q") == ""
    assert not rt.root.exists() or os.listdir(rt.root) == []
    for path in cgroup_dirs(cid, cgroup_path):
        assert not os.path.exists(path), f"cgroup left behind: {path}"
    assert _processes_mentioning(cid) == []


@pytest.fixture
def cid() -> str:
    """A container id no other test (or process on this machine) uses."""
    return f"cfgerr-{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize("verb", ["create", "run"])
@pytest.mark.parametrize(("case", "change", "expected"), CASES, ids=[c[0] for c in CASES])
def test_invalid_config(
    rt: CLI,
    bundle: BundleFactory,
    cid: str,
    verb: str,
    case: str,
    change: Edit | str,
    expected: tuple[str, ...],
) -> None:
    if case == "rlimit-above-hard-limit" and _hard_nofile() >= 1048576:
        pytest.skip("the open-files hard limit here is not below 1048576")
    if isinstance(change, str):
        b = bundle(["true"])
        cgroup_path = cgroups_path(b)
        (b / "config.json").write_text(change)
    else:
        b = bundle(["true"], edit=change)
        cgroup_path = cgroups_path(b)
    proc = rt(verb, "-b", str(b), cid)
    assert proc.returncode == 1, proc.stdout
    text = messages(proc.stderr)
    assert text.startswith(f"pypod-runtime {verb} failed: "), text
    for part in expected:
        assert part in text, (part, text)
    assert "Traceback" not in proc.stderr
    assert_no_leftovers(rt, cid, cgroup_path)


def test_rlimit_above_hard_limit_names_the_limit(rt: CLI, bundle: BundleFactory, cid: str) -> None:
    hard = _hard_nofile()
    if hard >= 1048576:
        pytest.skip("the open-files hard limit here is not below 1048576")

    def edit(spec: dict[str, Any]) -> None:
        spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1048576, "soft": 1024}]

    b = bundle(["true"], edit=edit)
    proc = rt("run", "-b", str(b), cid)
    assert proc.returncode == 1
    text = messages(proc.stderr)
    assert f"RLIMIT_NOFILE hard limit 1048576 is above the caller's hard limit {hard}" in text
    assert f"lower it to at most {hard}" in text
    assert_no_leftovers(rt, cid, cgroups_path(b))


def test_rlimit_at_the_hard_limit_is_fine(rt: CLI, bundle: BundleFactory, cid: str) -> None:
    hard = _hard_nofile()

    def edit(spec: dict[str, Any]) -> None:
        spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": hard, "soft": hard}]

    out = rt.ok("run", "-b", str(bundle(["sh", "-c", "ulimit -Hn"], edit=edit)), cid)
    assert out == f"{hard}\n"


def test_missing_config_json(rt: CLI, tmp_path: Path, cid: str) -> None:
    proc = rt("run", "-b", str(tmp_path), cid)
    assert proc.returncode == 1
    assert "config.json" in messages(proc.stderr)
    assert_no_leftovers(rt, cid)


# --------------------------------------------------------------------------- lifecycle misuse
# runc 1.1's messages, word for word


def test_start_on_a_running_container(rt: CLI, bundle: BundleFactory, cid: str) -> None:
    rt.ok("run", "-d", "-b", str(bundle(["sleep", "1000"])), cid)
    proc = rt("start", cid)
    assert proc.returncode == 1
    assert messages(proc.stderr) == "cannot start an already running container"


def test_start_on_a_stopped_container(rt: CLI, bundle: BundleFactory, cid: str) -> None:
    rt.ok("run", "-d", "-b", str(bundle(["true"])), cid)
    deadline = time.monotonic() + 10
    while json.loads(rt.ok("state", cid))["status"] != "stopped":
        assert time.monotonic() < deadline, "the container did not stop"
        time.sleep(0.01)
    proc = rt("start", cid)
    assert proc.returncode == 1
    assert messages(proc.stderr) == "cannot start a container that has stopped"


def test_duplicate_id_keeps_the_first_container(rt: CLI, bundle: BundleFactory, cid: str) -> None:
    b = bundle(["sleep", "1000"])
    rt.ok("create", "-b", str(b), cid)
    first = rt.ok("state", cid)
    paths = new_manager(cgroups_path(b), cid).paths
    for verb in ("create", "run"):
        proc = rt(verb, "-b", str(b), cid)
        assert proc.returncode == 1
        assert "container with given ID already exists" in messages(proc.stderr)
    assert rt.ok("state", cid) == first  # same pid, still created
    assert all(os.path.isdir(p) for p in paths.values())  # its cgroup was not removed
    rt.ok("start", cid)


@pytest.mark.parametrize("verb", ["state", "start", "kill", "delete", "pause", "resume", "ps"])
def test_unknown_id(rt: CLI, verb: str) -> None:
    proc = rt(verb, "no-such-container")
    assert proc.returncode == 1
    assert messages(proc.stderr) == "container does not exist"


@pytest.mark.parametrize("bad_id", ["../escape", "a/b", "..", "with space"])
def test_invalid_id_touches_nothing(rt: CLI, bundle: BundleFactory, bad_id: str) -> None:
    proc = rt("create", "-b", str(bundle(["true"])), bad_id)
    assert proc.returncode == 1
    assert f"invalid id format: {bad_id}" in messages(proc.stderr)
    assert not (rt.root.parent / "escape").exists()
    assert rt.ok("list", "-q") == ""
