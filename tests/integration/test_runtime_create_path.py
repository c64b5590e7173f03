"""What `create` does on its fast path keeps every property a container must have.

- seccomp programs compiled once per state root (the `@seccomp-cache` directory) and used again;
- the init joins its cgroups by itself (born in the cgroup2 one, moving itself into the v1
  ones), or where it cannot (a runtime with threads, a pids limit of 1) is moved and waits for
  that only where it matters: the container's program, its hooks and a cgroup namespace see it
  in its cgroups, nothing else is left there;
- state files are written without fsync: an unreadable one can still be deleted with --force.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.compat.test_runc_compat import ALLOWED as _SHARED_ALLOWED
from tests.conftest import CLI, BundleFactory, messages
from tests.integration.test_runtime_userns import open_dir, userns_bundle

__all__ = ["open_dir"]  # a fixture used here

pytestmark = pytest.mark.root

CACHE = "@seccomp-cache"
#: what the init calls after a filter installed before no_new_privs, as runc's init does
_CREDENTIALS = ["sendto", "setgroups", "setresgid", "setresuid"]
#: a copy taken at import: the compat tests edit their list in place
ALLOWED = tuple(_SHARED_ALLOWED)


def errno_rule(spec: dict[str, Any]) -> None:
    spec["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    }


def run(rt: CLI, b: Path, cid: str) -> str:
    proc = rt("run", "-b", str(b), cid)
    assert proc.returncode == 0, messages(proc.stderr) + proc.stdout
    return proc.stdout


def cgroups_path(b: Path) -> str:
    return str(json.loads((b / "config.json").read_text())["linux"]["cgroupsPath"])


def test_seccomp_programs_are_compiled_once_per_state_root(rt: CLI, bundle: BundleFactory) -> None:
    b = bundle(["sh", "-c", "mkdir /tmp/x; echo rc=$?"], edit=errno_rule)
    assert run(rt, b, "c1") == "rc=1\n"
    cache = rt.root / CACHE
    (entry,) = cache.iterdir()
    before = entry.stat()
    assert run(rt, b, "c2") == "rc=1\n"  # the same filter, from the cache
    (again,) = cache.iterdir()
    after = again.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # only read
    assert oct(cache.stat().st_mode & 0o777) == "0o700"


def test_an_exec_uses_the_program_create_compiled(rt: CLI, bundle: BundleFactory) -> None:
    """Entries are keyed by config.json's seccomp object as written (found without parsing
    it): `create` and `exec` read the same one from state, so they share one entry."""
    b = bundle(["sleep", "1000"], edit=errno_rule)
    rt.ok("run", "-d", "-b", str(b), "c1")
    (entry,) = (rt.root / CACHE).iterdir()
    before = entry.stat()
    proc = rt("exec", "c1", "sh", "-c", "mkdir /tmp/x; echo rc=$?")
    assert proc.returncode == 0 and proc.stdout == "rc=1\n", messages(proc.stderr)
    (again,) = (rt.root / CACHE).iterdir()
    assert (again.stat().st_ino, again.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_the_cache_is_no_container(rt: CLI, bundle: BundleFactory) -> None:
    rt.ok("run", "-b", str(bundle(["true"], edit=errno_rule)), "c1")
    assert (rt.root / CACHE).is_dir()
    assert rt.ok("list", "-q") == ""
    assert json.loads(rt.ok("list", "--format", "json")) == []
    for verb in ("state", "delete"):
        proc = rt(verb, CACHE)
        assert proc.returncode == 1
        assert f"invalid id format: {CACHE}" in messages(proc.stderr)
    proc = rt("create", "-b", str(bundle(["true"])), CACHE)
    assert proc.returncode == 1 and "invalid id format" in messages(proc.stderr)
    assert (rt.root / CACHE).is_dir()


def test_a_filter_without_recvmsg_before_no_new_privs(rt: CLI, bundle: BundleFactory) -> None:
    """The init installs its filter, then waits for its cgroup: with read(2) alone."""

    def edit(spec: dict[str, Any]) -> None:
        spec["process"]["noNewPrivileges"] = False  # the filter comes before READY
        spec["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": [*ALLOWED, *_CREDENTIALS], "action": "SCMP_ACT_ALLOW"}],
        }

    assert "recvmsg" not in ALLOWED and "recvfrom" not in ALLOWED
    b = bundle(["sh", "-c", "mkdir /tmp/x; echo rc=$?"], edit=edit)
    assert run(rt, b, "c1") == "rc=1\n"


def _assert_in_its_cgroups(out: str, wanted: str) -> None:
    lines = [line.split(":", 2) for line in out.splitlines()]
    by_controller = {controllers: path for _, controllers, path in lines}
    for controllers in ("memory", "pids", "freezer", "devices", "blkio", "cpuset", "name=systemd"):
        if controllers in by_controller:
            assert by_controller[controllers] == wanted, lines
    assert any(c.startswith("cpu") and p == wanted for c, p in by_controller.items()), lines
    if os.path.isdir("/sys/fs/cgroup/unified"):  # hybrid: the cgroup2 hierarchy too
        assert by_controller[""] == wanted, lines


def test_the_program_runs_in_its_cgroups(rt: CLI, bundle: BundleFactory) -> None:
    """The init is born in the cgroup2 one and moves itself into the v1 ones (no move by the
    runtime: that would wait for an RCU grace period)."""
    b = bundle(["cat", "/proc/self/cgroup"])
    _assert_in_its_cgroups(run(rt, b, "c1"), cgroups_path(b))


def test_an_exec_runs_in_the_containers_cgroups(rt: CLI, bundle: BundleFactory) -> None:
    """An exec'd process joins the cgroups as the init does, also at the pids limit."""

    def edit(spec: dict[str, Any]) -> None:
        spec["linux"]["resources"]["pids"] = {"limit": 1}  # the init alone fills it

    b = bundle(["sleep", "1000"], edit=edit)
    rt.ok("run", "-d", "-b", str(b), "c1")
    proc = rt("exec", "c1", "cat", "/proc/self/cgroup")
    assert proc.returncode == 0, messages(proc.stderr)
    _assert_in_its_cgroups(proc.stdout, cgroups_path(b))
    pids = Path("/sys/fs/cgroup/pids") / cgroups_path(b).lstrip("/") / "pids.current"
    assert pids.read_text().strip() == "1"  # the exec'd process came and went


def test_a_runtime_with_threads_moves_the_init(bundle: BundleFactory, tmp_path: Path) -> None:
    """A process with threads cannot fork into a cgroup safely: the runtime moves the init."""
    b = bundle(["cat", "/proc/self/cgroup"])
    script = (
        "import sys, threading\n"
        "from pypod.runtime.container import CreateOptions, Runtime\n"
        "done = threading.Event()\n"
        "threading.Thread(target=done.wait).start()\n"
        "try:\n"
        "    opts = CreateOptions(bundle=sys.argv[2])\n"
        "    code = Runtime(sys.argv[1]).run('c1', opts, detach=False)\n"
        "finally:\n"
        "    done.set()\n"
        "sys.exit(code)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "state"), str(b)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    _assert_in_its_cgroups(proc.stdout, cgroups_path(b))


def test_only_the_init_is_left_in_the_cgroup(rt: CLI, bundle: BundleFactory) -> None:
    b = bundle(["sleep", "1000"])
    rt.ok("create", "-b", str(b), "c1")
    pid = json.loads(rt.ok("state", "c1"))["pid"]
    procs = Path("/sys/fs/cgroup/pids") / cgroups_path(b).lstrip("/") / "cgroup.procs"
    assert procs.read_text().split() == [str(pid)]  # stage-1 came and went
    assert json.loads(rt.ok("ps", "--format", "json", "c1")) == [pid]


@pytest.mark.parametrize("userns", [False, True])
def test_a_pids_limit_of_one(rt: CLI, bundle: BundleFactory, open_dir: Path, userns: bool) -> None:
    """No room for stage-1 and the init at once: stage-1 stays out of the cgroup.

    (With a user namespace stage-1 waits for its id maps, which come after its cgroup move
    would: without that rule, its fork of the init would always fail.)
    """
    args = ["sh", "-c", "read n < /sys/fs/cgroup/pids/pids.max; echo $n"]  # no fork in there
    b = userns_bundle(bundle, open_dir, args) if userns else bundle(args)
    config = json.loads((b / "config.json").read_text())
    config["linux"]["resources"]["pids"] = {"limit": 1}
    (b / "config.json").write_text(json.dumps(config))
    assert run(rt, b, "c1") == "1\n"


def test_hooks_see_the_init_in_its_cgroup(rt: CLI, bundle: BundleFactory, tmp_path: Path) -> None:
    out = tmp_path / "hooks"
    out.mkdir()
    hook_script = tmp_path / "cgroup.sh"
    hook_script.write_text(
        "#!/bin/sh\n"
        "pid=$(sed 's/.*\"pid\": *\\([0-9]*\\).*/\\1/')\n"
        'grep ":pids:" /proc/$pid/cgroup > "$2/$1"\n'
    )
    hook_script.chmod(0o755)

    def edit(spec: dict[str, Any]) -> None:
        spec["hooks"] = {
            phase: [{"path": str(hook_script), "args": ["cgroup.sh", phase, str(out)]}]
            for phase in ("prestart", "createRuntime")
        }

    b = bundle(["true"], edit=edit)
    run(rt, b, "c1")
    for phase in ("prestart", "createRuntime"):
        assert (out / phase).read_text().split(":", 2)[2].strip() == cgroups_path(b)


def test_a_cgroup_namespace_is_rooted_at_the_containers_cgroup(
    rt: CLI, bundle: BundleFactory
) -> None:
    def edit(spec: dict[str, Any]) -> None:
        spec["linux"]["namespaces"].append({"type": "cgroup"})

    b = bundle(["cat", "/proc/self/cgroup"], edit=edit)
    lines = [line.split(":", 2) for line in run(rt, b, "c1").splitlines()]
    paths = {controllers: path for _, controllers, path in lines}
    assert paths["pids"] == paths["memory"] == "/", lines


def test_an_unreadable_state_can_be_deleted_with_force(rt: CLI, bundle: BundleFactory) -> None:
    b = bundle(["sleep", "1000"])
    rt.ok("run", "-d", "-b", str(b), "c1")
    rt.ok("kill", "c1", "KILL")
    state = rt.root / "c1" / "state.json"
    state.write_text("")  # as a crash of the machine may leave it
    proc = rt("delete", "c1")
    assert proc.returncode == 1 and "unreadable state" in messages(proc.stderr)
    rt.ok("delete", "--force", "c1")
    assert not (rt.root / "c1").exists()
    proc = rt("delete", "--force", "../c1")
    assert proc.returncode == 1 and "invalid id format" in messages(proc.stderr)
    assert os.path.isdir(rt.root)


def test_device_rules_hold_for_the_containers_program(rt: CLI, bundle: BundleFactory) -> None:
    """The v1 limits are set while the init sets itself up; it enters those cgroups only
    once they are set: the container's program is held to the device rules."""

    def edit(spec: dict[str, Any]) -> None:
        for kind in ("bounding", "effective", "permitted"):
            spec["process"]["capabilities"][kind].append("CAP_MKNOD")

    script = (  # /dev/fuse (10:229) is not allowed, /dev/full (1:7) is; neither needs a cap
        "mknod /dev/f c 10 229 && mknod /dev/u c 1 7 && echo made; "
        "(exec 3</dev/f) 2>/dev/null; echo fuse=$?; (exec 3</dev/u); echo full=$?"
    )
    b = bundle(["sh", "-c", script], edit=edit)
    assert run(rt, b, "c1") == "made\nfuse=1\nfull=0\n"


def test_a_bad_seccomp_profile_leaves_nothing_behind(rt: CLI, bundle: BundleFactory) -> None:
    """The profile is parsed (and compiled) once the init is forked; an error in it is still
    create's error, named as config.json names it, and the container's cgroup and state go."""

    def edit(spec: dict[str, Any]) -> None:
        errno_rule(spec)
        spec["linux"]["seccomp"]["syscalls"][0]["action"] = "SCMP_ACT_BOGUS"

    b = bundle(["true"], edit=edit)
    proc = rt("create", "-b", str(b), "c1")
    assert proc.returncode == 1
    assert "linux.seccomp.syscalls[0].action" in messages(proc.stderr)
    assert not (rt.root / "c1").exists()
    assert not (Path("/sys/fs/cgroup/pids") / cgroups_path(b).lstrip("/")).exists()
    assert rt.ok("list", "-q") == ""


def test_a_seccomp_listener_is_refused_before_anything_is_made(
    rt: CLI, bundle: BundleFactory
) -> None:
    def edit(spec: dict[str, Any]) -> None:
        errno_rule(spec)
        spec["linux"]["seccomp"]["listenerPath"] = "/run/agent.sock"

    b = bundle(["true"], edit=edit)
    proc = rt("create", "-b", str(b), "c1")
    assert proc.returncode == 1
    assert "seccomp notify (listenerPath) is not supported yet" in messages(proc.stderr)
    assert not (Path("/sys/fs/cgroup/pids") / cgroups_path(b).lstrip("/")).exists()


def test_an_init_cloned_into_its_namespaces_is_their_first_process(
    rt: CLI, bundle: BundleFactory
) -> None:
    """Without a user or time namespace the init is cloned straight into its new namespaces
    (no stage-1): pid 1 there, lo up, non-dumpable until its exec (see
    test_runtime_security), and alone in its cgroup."""
    script = "echo $$; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags"
    b = bundle(["sh", "-c", script])
    pid, _state, flags = run(rt, b, "c1").split()
    assert pid == "1" and int(flags, 16) & 1  # IFF_UP
