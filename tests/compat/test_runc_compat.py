"""pypod-runtime next to runc 1.1: the same bundle through both, compared where it matters.

Each test builds one bundle and runs it through `pypod-runtime` and through `runc`, each on its
own `--root`, one after the other (the container id is the same, so cgroup paths match too).
What is compared: exit codes and error messages, the `state` JSON, and what the container's
process sees (credentials, capabilities, id maps, hostname, mounts, rlimits, cgroup limits,
seccomp).  runc runs a foreground container's stdio through pipes while pypod hands its own
stdio over directly; nothing compared here depends on that.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pypod.testing import make_bundle
from tests.conftest import CLI, BundleFactory, messages

pytestmark = [pytest.mark.root, pytest.mark.compat]

Edit = Callable[[dict[str, Any]], None]
STATUS_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")
SHOW_STATUS = (
    "grep -E '^(Uid|Gid|Groups|Cap[A-Za-z]+|NoNewPrivs|Seccomp(_filters)?):' /proc/self/status"
)


def unique_id(prefix: str) -> str:
    """Ids of this test only: the cgroup path follows the id, and another test run on the
    machine using the same id would share (and kill) the container's cgroup."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def both(rt: CLI, runc: CLI, b: Path, *args: str) -> tuple[Any, Any]:
    """`run` the bundle with pypod-runtime, then with runc (same id, one after the other)."""
    cid = unique_id("cmp")
    ours = rt("run", "-b", str(b), *args, cid)
    theirs = runc("run", "-b", str(b), *args, cid)
    return ours, theirs


def same_output(rt: CLI, runc: CLI, b: Path) -> str:
    ours, theirs = both(rt, runc, b)
    assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
    assert ours.stdout == theirs.stdout
    assert ours.stderr == theirs.stderr == ""
    return str(ours.stdout)


def status_fields(text: str) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


# --------------------------------------------------------------------------- configs


def default(spec: dict[str, Any]) -> None:
    return None


def user_1000(spec: dict[str, Any]) -> None:
    spec["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5, 65534]}


def custom_caps(spec: dict[str, Any]) -> None:
    spec["process"]["noNewPrivileges"] = False
    caps = ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_NET_RAW", "CAP_KILL"]
    spec["process"]["capabilities"] = {
        "bounding": caps,
        "permitted": caps,
        "effective": caps[:2],
        "inheritable": caps[:1],
        "ambient": caps[:1],
    }


def no_caps(spec: dict[str, Any]) -> None:
    del spec["process"]["capabilities"]


def user_1000_with_ambient(spec: dict[str, Any]) -> None:
    user_1000(spec)
    caps = ["CAP_NET_BIND_SERVICE", "CAP_KILL"]
    spec["process"]["capabilities"] = {
        k: caps for k in ("bounding", "permitted", "effective", "inheritable", "ambient")
    }


def errno_rule(spec: dict[str, Any]) -> None:
    spec["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    }


# An allow list in the style of Docker's and podman's default profiles (which list both execve
# and execveat), large enough for busybox: everything else fails with EPERM.
ALLOWED = """
access arch_prctl brk capget capset chdir chmod chown clock_gettime clock_nanosleep clone clone3
close close_range dup dup2 dup3 execve execveat exit exit_group faccessat faccessat2 fchdir
fchmod fchmodat fchown fchownat fcntl fork fstat fstatfs futex getcwd getdents getdents64
getegid geteuid getgid getgroups getpgid getpgrp getpid getppid getpriority getrandom getresgid
getresuid getrlimit getsid gettid gettimeofday getuid ioctl kill lchown lseek lstat madvise
mmap mprotect mremap munmap nanosleep newfstatat open openat openat2 pipe pipe2 poll ppoll prctl
pread64 prlimit64 pselect6 pwrite64 read readlink readlinkat readv rename renameat renameat2
restart_syscall rmdir rt_sigaction rt_sigprocmask rt_sigreturn rt_sigsuspend sched_getaffinity
sched_yield select set_robust_list set_tid_address setpgid setsid sigaltstack stat statfs statx
sysinfo tgkill time times tkill umask uname unlink unlinkat utimensat vfork wait4 waitid write
writev
""".split()


def allow_list(spec: dict[str, Any]) -> None:
    spec["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ALLOWED, "action": "SCMP_ACT_ALLOW"}],
    }


def user_namespace(spec: dict[str, Any]) -> None:
    spec["linux"]["namespaces"].append({"type": "user"})
    spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    spec["linux"]["gidMappings"] = [
        {"containerID": 0, "hostID": 200000, "size": 1000},
        {"containerID": 1000, "hostID": 300000, "size": 10},
    ]


@pytest.fixture
def public_bundle(busybox: str) -> Iterator[Callable[..., Path]]:
    """Bundles in a directory every uid may traverse: in a user namespace the container's root
    is an unprivileged host uid that must reach the rootfs (pytest's tmp_path is 0700)."""
    top = Path(tempfile.mkdtemp(prefix="pypod-compat-"))
    os.chmod(top, 0o755)
    counter = iter(range(1000))

    def make(args: list[str], **kw: Any) -> Path:
        path = top / f"bundle{next(counter)}"
        make_bundle(str(path), args, **kw)
        return path

    yield make
    shutil.rmtree(top, ignore_errors=True)


# --------------------------------------------------------------------------- exit codes, state


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["true"], 0),
        (["sh", "-c", "exit 3"], 3),
        (["nosuchcmd"], 1),
        (["/etc/passwd"], 1),  # not executable
        (["/bin"], 1),  # a directory
    ],
)
def test_exit_codes_and_exec_errors(
    rt: CLI, runc: CLI, bundle: BundleFactory, args: list[str], code: int
) -> None:
    b = bundle(args)
    ours, theirs = both(rt, runc, b)
    assert ours.returncode == theirs.returncode == code
    if code == 1:
        assert messages(ours.stderr).replace("pypod-runtime", "runc") == messages(theirs.stderr)
    assert rt.ok("list", "-q") == runc.ok("list", "-q") == ""


def _state(cli: CLI, cid: str) -> dict[str, Any]:
    st: dict[str, Any] = json.loads(cli.ok("state", cid))
    return st


def test_state_json_created_and_running(rt: CLI, runc: CLI, bundle: BundleFactory) -> None:
    def edit(spec: dict[str, Any]) -> None:
        spec["ociVersion"] = "1.0.0"  # state reports the runtime's spec version, not this
        spec["annotations"] = {"org.example.key": "value"}

    # alive at the same time: distinct bundles, so distinct cgroups
    b, b2 = bundle(["sleep", "1000"], edit=edit), bundle(["sleep", "1000"], edit=edit)
    p1, r1 = unique_id("p1"), unique_id("r1")
    rt.ok("create", "-b", str(b), p1)
    runc.ok("create", "-b", str(b2), r1)
    for status in ("created", "running"):
        ours, theirs = _state(rt, p1), _state(runc, r1)
        assert list(ours) == list(theirs)
        assert {k: type(v) for k, v in ours.items()} == {k: type(v) for k, v in theirs.items()}
        for key in ("ociVersion", "status", "annotations", "owner"):
            assert ours[key] == theirs[key], key
        assert (ours["bundle"], ours["rootfs"]) == (str(b), str(b / "rootfs"))
        assert (theirs["bundle"], theirs["rootfs"]) == (str(b2), str(b2 / "rootfs"))
        assert ours["status"] == status
        assert (ours["id"], theirs["id"]) == (p1, r1)
        assert ours["pid"] > 0 and theirs["pid"] > 0
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", ours["created"])
        if status == "created":
            rt.ok("start", p1)
            runc.ok("start", r1)
    ours_list = json.loads(rt.ok("list", "--format", "json"))
    theirs_list = json.loads(runc.ok("list", "--format", "json"))
    assert [list(i) for i in ours_list] == [list(i) for i in theirs_list]
    assert ours_list[0]["owner"] == theirs_list[0]["owner"] == "root"


def test_start_twice_unknown_id_and_duplicate_id_messages(
    rt: CLI, runc: CLI, bundle: BundleFactory
) -> None:
    b, b2 = bundle(["sleep", "1000"]), bundle(["sleep", "1000"])
    p1, r1 = unique_id("p1"), unique_id("r1")
    rt.ok("run", "-d", "-b", str(b), p1)
    runc.ok("run", "-d", "-b", str(b2), r1)
    for verb_args in (("start",), ("create", "-b", str(b))):
        ours, theirs = rt(*verb_args, p1), runc(*verb_args, r1)
        assert ours.returncode == theirs.returncode == 1
        # runc 1.1: "container with given ID already exists"; pypod adds the id
        assert messages(theirs.stderr).replace("runc", "pypod-runtime") in messages(ours.stderr)
    for verb in ("state", "start", "kill", "delete", "pause", "resume", "ps"):
        ours, theirs = rt(verb, "nope"), runc(verb, "nope")
        assert ours.returncode == theirs.returncode == 1, verb
        assert messages(ours.stderr) == messages(theirs.stderr) == "container does not exist"


# --------------------------------------------------------------------------- what the process sees


@pytest.mark.parametrize(
    "edit",
    [default, user_1000, custom_caps, no_caps, user_1000_with_ambient, errno_rule, allow_list],
)
def test_credentials_capabilities_and_seccomp(
    rt: CLI, runc: CLI, bundle: BundleFactory, edit: Edit
) -> None:
    b = bundle(["sh", "-c", f"id; {SHOW_STATUS}"], edit=edit)
    out = same_output(rt, runc, b)
    assert set(STATUS_FIELDS) <= set(status_fields(out))


def test_seccomp_errno_rule(rt: CLI, runc: CLI, bundle: BundleFactory) -> None:
    b = bundle(["sh", "-c", "mkdir /tmp/x; echo rc=$?; ls -d /tmp/x"], edit=errno_rule)
    ours, theirs = both(rt, runc, b)
    assert ours.returncode == theirs.returncode == 1
    assert ours.stdout == theirs.stdout == "rc=1\n"
    assert ours.stderr == theirs.stderr
    assert "can't create directory '/tmp/x': Operation not permitted" in ours.stderr


def test_seccomp_allow_list_with_execveat(rt: CLI, runc: CLI, bundle: BundleFactory) -> None:
    script = "mkdir /tmp/x; echo rc=$?; echo hi > /tmp/f && cat /tmp/f"

    def edit(spec: dict[str, Any]) -> None:
        allow_list(spec)
        spec["root"]["readonly"] = False

    b = bundle(["sh", "-c", script], edit=edit)
    ours, theirs = both(rt, runc, b)
    assert ours.returncode == theirs.returncode == 0
    assert ours.stdout == theirs.stdout == "rc=1\nhi\n"  # mkdir is not in the list: EPERM
    assert ours.stderr == theirs.stderr


def test_seccomp_allow_list_without_execveat(rt: CLI, runc: CLI, bundle: BundleFactory) -> None:
    # A difference on purpose: pypod-runtime starts the container's program through its sealed
    # exec helper with execveat(2) (see pypod.linux.exec_helper), where runc re-executes a
    # sealed copy of itself with execve.  A profile that allows execve but not execveat
    # (Docker's and podman's allow both) therefore works with runc and fails with pypod; pypod
    # says why on the container's stderr, where runc writes its own exec errors.
    def edit(spec: dict[str, Any]) -> None:
        allow_list(spec)
        spec["linux"]["seccomp"]["syscalls"][0]["names"].remove("execveat")

    b = bundle(["echo", "hi"], edit=edit)
    ours, theirs = both(rt, runc, b)
    assert (theirs.returncode, theirs.stdout) == (0, "hi\n")
    assert (ours.returncode, ours.stdout) == (1, "")
    assert "exec /bin/echo: operation not permitted" in ours.stderr
    assert "must allow execveat as well as execve" in ours.stderr
    assert rt.ok("list", "-q") == ""


@pytest.mark.parametrize("edit", [default, user_namespace], ids=["no-userns", "userns"])
def test_id_maps(rt: CLI, runc: CLI, public_bundle: Callable[..., Path], edit: Edit) -> None:
    b = public_bundle(
        ["sh", "-c", f"cat /proc/self/uid_map /proc/self/gid_map; id; {SHOW_STATUS}"], edit=edit
    )
    out = same_output(rt, runc, b)
    if edit is user_namespace:
        assert out.split()[:9] == "0 100000 65536 0 200000 1000 1000 300000 10".split()
    else:
        assert out.split()[:6] == "0 0 4294967295 0 0 4294967295".split()


def test_hostname_and_domainname(rt: CLI, runc: CLI, bundle: BundleFactory) -> None:
    def edit(spec: dict[str, Any]) -> None:
        spec["hostname"] = "compat-host"
        spec["domainname"] = "example.test"

    b = bundle(["sh", "-c", "hostname; cat /proc/sys/kernel/domainname"], edit=edit)
    ours, theirs = both(rt, runc, b)
    assert ours.returncode == theirs.returncode == 0
    # A difference on purpose: runc 1.1 ignores the spec's "domainname" (runc 1.2 sets it);
    # pypod sets it, as the runtime spec asks.
    assert ours.stdout == "compat-host\nexample.test\n"
    assert theirs.stdout == "compat-host\n(none)\n"


# --------------------------------------------------------------------------- mounts


def mount_table(text: str) -> list[tuple[str, str, str, str]]:
    """(mount point, fs type, per-mount options, root within the fs) of each mountinfo line,
    without the ids, which differ from run to run; in order, except that the device nodes a
    user namespace binds are sorted (runc makes them in Go's random map order)."""
    rows = []
    for line in text.splitlines():
        left, right = line.split(" - ", 1)
        fields = left.split()
        rows.append((fields[4], right.split()[0], fields[5], fields[3]))
    devices = sorted(r for r in rows if r[0].startswith("/dev/") and r[1] == "devtmpfs")
    it = iter(devices)
    return [next(it) if r in devices else r for r in rows]


def _cgroup_tmpfs_differs(ours: list[Any], theirs: list[Any]) -> tuple[list[Any], list[Any]]:
    # A difference on purpose: with "ro" in the options of the /sys/fs/cgroup mount, pypod makes
    # the tmpfs holding the hierarchies read-only too; runc 1.1 leaves that tmpfs writable
    # (only the cgroup binds inside are read-only), so a container could create files and
    # directories there.  Everything else about the mount is the same.
    o = next(i for i, r in enumerate(ours) if r[0] == "/sys/fs/cgroup")
    t = next(i for i, r in enumerate(theirs) if r[0] == "/sys/fs/cgroup")
    assert ours[o][1] == theirs[t][1] == "tmpfs"
    assert ours[o][2].split(",")[0] == "ro" and theirs[t][2].split(",")[0] == "rw"
    assert ours[o][2].split(",")[1:] == theirs[t][2].split(",")[1:]
    return ours[:o] + ours[o + 1 :], theirs[:t] + theirs[t + 1 :]


def extra_mounts(spec: dict[str, Any]) -> None:
    spec["mounts"] += [
        {"destination": "/data", "type": "bind", "source": "/etc", "options": ["rbind", "ro"]},
        {"destination": "/hosts", "type": "bind", "source": "/etc/hosts", "options": ["bind"]},
        {
            "destination": "/scratch",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "noexec", "size=1m", "mode=700"],
        },
    ]
    spec["root"]["readonly"] = False


@pytest.mark.parametrize(
    "edit", [default, extra_mounts, user_namespace], ids=["default", "binds-tmpfs", "userns"]
)
def test_mount_table(rt: CLI, runc: CLI, public_bundle: Callable[..., Path], edit: Edit) -> None:
    b = public_bundle(["cat", "/proc/self/mountinfo"], edit=edit)
    ours, theirs = both(rt, runc, b)
    assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
    mine, reference = _cgroup_tmpfs_differs(mount_table(ours.stdout), mount_table(theirs.stdout))
    assert mine == reference
    assert mine[0][0] == "/" and ("/proc", "proc") in {r[:2] for r in mine}


# --------------------------------------------------------------------------- limits


def test_rlimits(rt: CLI, runc: CLI, bundle: BundleFactory) -> None:
    def edit(spec: dict[str, Any]) -> None:
        spec["process"]["rlimits"] = [
            {"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 512},
            {"type": "RLIMIT_CORE", "hard": 1048576, "soft": 4096},
            {"type": "RLIMIT_NPROC", "hard": 300, "soft": 200},
            {"type": "RLIMIT_STACK", "hard": 16777216, "soft": 8388608},
        ]

    b = bundle(["sh", "-c", "cat /proc/self/limits; ulimit -a"], edit=edit)
    out = same_output(rt, runc, b)
    assert re.search(r"Max open files\s+512\s+4096\s", out)
    assert re.search(r"Max processes\s+200\s+300\s", out)


def test_rlimit_defaults_without_rlimits(rt: CLI, runc: CLI, bundle: BundleFactory) -> None:
    def edit(spec: dict[str, Any]) -> None:
        del spec["process"]["rlimits"]

    b = bundle(["cat", "/proc/self/limits"], edit=edit)
    same_output(rt, runc, b)  # both inherit the caller's limits


def test_cgroup_limits_seen_inside(rt: CLI, runc: CLI, bundle: BundleFactory) -> None:
    def edit(spec: dict[str, Any]) -> None:
        spec["linux"]["resources"].update(
            memory={"limit": 64 * 1024 * 1024, "reservation": 32 * 1024 * 1024},
            pids={"limit": 42},
            cpu={"shares": 512, "quota": 50000, "period": 100000},
        )

    files = [
        "memory/memory.limit_in_bytes",
        "memory/memory.soft_limit_in_bytes",
        "pids/pids.max",
        "cpu/cpu.shares",
        "cpu/cpu.cfs_quota_us",
        "cpu/cpu.cfs_period_us",
        "devices/devices.list",
    ]
    script = "; ".join(f"echo {f}: $(cat /sys/fs/cgroup/{f})" for f in files)
    b = bundle(["sh", "-c", script + "; cat /proc/self/cgroup"], edit=edit)
    out = same_output(rt, runc, b)
    assert "memory/memory.limit_in_bytes: 67108864\n" in out
    assert "pids/pids.max: 42\n" in out and "cpu/cpu.shares: 512\n" in out
