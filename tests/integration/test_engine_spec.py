"""The spec build_spec writes, run for real: what the process of a `pypod run` container sees.

Each test builds the spec for a busybox root filesystem, runs it with pypod-runtime (the CLI
over pypod.runtime.container.Runtime, on a private state root) and checks what the container
reports: capabilities, ids, environment, mounts, hostname, /etc/hosts, limits, seccomp, a
read-only root.  The values are what podman 4.3.1 gives for the same flags on this machine.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pypod.engine.config import ContainerConfig, MountSpec, Resources
from pypod.engine.spec import build_spec
from pypod.engine.spec_security import DEFAULT_CAPABILITIES
from pypod.errors import InvalidArgument
from pypod.linux.capabilities import CAP_NAMES, last_cap, read_status, to_mask
from pypod.testing import make_busybox_rootfs
from tests.conftest import CLI, _remove_cgroup_tree

pytestmark = pytest.mark.root

DEFAULT_CAPS_MASK = f"{to_mask(DEFAULT_CAPABILITIES):016x}"  # 00000000800405fb
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Run:
    """run(args, image=..., **ContainerConfig fields) -> (rc, stdout, stderr) of the container."""

    def __init__(self, tmp_path: Path, rt: CLI, rootfs: Path, parent: str) -> None:
        self.tmp_path = tmp_path
        self.rt = rt
        self.rootfs = rootfs
        self.parent = parent
        self.count = 0
        self.last_userdata = tmp_path

    def __call__(
        self, args: list[str], *, image: dict[str, Any] | None = None, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        self.count += 1
        cid = uuid.uuid4().hex + uuid.uuid4().hex
        bundle = self.tmp_path / f"userdata{self.count}"
        bundle.mkdir()
        cfg = ContainerConfig(
            image="localhost/busybox",
            image_id="f" * 64,
            name=f"ctr{self.count}",
            command=tuple(args),
            cgroup_parent=f"/{self.parent}",
            **kw,
        )
        doc = build_spec(
            cfg, image or {}, container_id=cid, rootfs=str(self.rootfs), userdata=str(bundle)
        )
        (bundle / "config.json").write_text(json.dumps(doc))
        self.last_userdata = bundle
        return self.rt("run", "-b", str(bundle), cid)

    def ok(self, args: list[str], **kw: Any) -> str:
        proc = self(args, **kw)
        assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stderr}\n{proc.stdout}"
        return proc.stdout


@pytest.fixture
def run(tmp_path: Path, rt: CLI, busybox: str) -> Iterator[Run]:
    parent = f"pypod-tests-{uuid.uuid4().hex[:12]}"
    rootfs = Path(make_busybox_rootfs(str(tmp_path / "rootfs"), busybox))
    yield Run(tmp_path, rt, rootfs, parent)
    _remove_cgroup_tree(parent)


def status(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key] = value.strip()
    return out


STATUS = ["cat", "/proc/self/status"]


# --------------------------------------------------------------------------- defaults


def test_default_container(run: Run) -> None:
    out = run.ok(["sh", "-c", "cat /proc/self/status; echo; id; hostname; ulimit -n; ulimit -Hn"])
    st, _, rest = out.partition("\n\n")
    s = status(st)
    assert (s["CapEff"], s["CapPrm"], s["CapBnd"]) == (DEFAULT_CAPS_MASK,) * 3
    assert (s["CapInh"], s["CapAmb"]) == ("0" * 16,) * 2
    assert (s["Seccomp"], s["NoNewPrivs"]) == ("2", "0")
    ident, hostname, soft, hard = rest.split("\n")[:4]
    assert ident == "uid=0(root) gid=0(root)"  # as with podman: no supplementary groups
    assert len(hostname) == 12
    nofile = min(1048576, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    assert (int(soft), int(hard)) == (nofile, nofile)


def test_environment_and_workdir(run: Run) -> None:
    image = {
        "Env": ["FOO=bar", "PATH=/bin:/usr/bin"],
        "WorkingDir": "/srv/app",
        "Entrypoint": ["/bin/sh", "-c"],
        "Cmd": ["env; echo PWD=$(pwd)"],
    }
    out = run.ok([], image=image, env={"FOO": "over"})
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert env["FOO"] == "over"
    assert env["PATH"] == "/bin:/usr/bin"
    assert env["container"] == "pypod"
    assert env["HOME"] == "/root"
    assert env["PWD"] == "/srv/app"  # created by the runtime, as podman does for an image's
    assert "TERM" not in env
    assert len(env["HOSTNAME"]) == 12


def test_etc_files_and_mounts(run: Run) -> None:
    script = "cat /etc/hosts; echo ==; cat /etc/hostname; echo ==; cat /proc/mounts"
    out = run.ok(["sh", "-c", script], hostname="web", shm_size=8 << 20)
    hosts, hostname, mounts = out.split("==\n")
    assert hosts == (run.last_userdata / "hosts").read_text()
    assert hosts.endswith("127.0.0.1\tweb ctr1\n")
    assert hostname == "web\n"
    table = {line.split()[1]: line.split() for line in mounts.splitlines()}
    assert table["/dev/shm"][2] == "tmpfs" and "size=8192k" in table["/dev/shm"][3]
    for point in ("/etc/hosts", "/etc/hostname", "/run/.containerenv"):
        assert point in table
    assert table["/sys"][3].startswith("ro,")
    assert "/etc/resolv.conf" not in table  # --network none: the image's own


def test_non_root_user(run: Run) -> None:
    out = run.ok(["sh", "-c", "id; cat /proc/self/status; echo HOME=$HOME"], user="user")
    lines = out.splitlines()
    assert lines[0] == "uid=1000(user) gid=1000(user) groups=1000(user)"
    s = status(out)
    assert s["CapBnd"] == DEFAULT_CAPS_MASK
    assert (s["CapEff"], s["CapPrm"]) == ("0" * 16,) * 2
    assert lines[-1] == "HOME=/home/user"
    raw = run.ok(STATUS, user="user", cap_add=("NET_RAW",))
    net_raw = f"{1 << CAP_NAMES['CAP_NET_RAW']:016x}"
    assert (status(raw)["CapEff"], status(raw)["CapAmb"]) == (net_raw, net_raw)


def test_user_and_groups(run: Run) -> None:
    assert (
        run.ok(["id"], user="1234:4321", group_add=("tty",))
        == "uid=1234 gid=4321 groups=5(tty),4321\n"
    )
    with pytest.raises(InvalidArgument, match="unable to find user nosuch"):
        run(["id"], user="nosuch")


def test_cap_add_and_drop(run: Run) -> None:
    s = status(run.ok(STATUS, cap_add=("sys_admin",), cap_drop=("CHOWN",)))
    want = {*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"} - {"CAP_CHOWN"}
    assert s["CapEff"] == f"{to_mask(want):016x}"
    # with CAP_SYS_ADMIN the profile lets sethostname through; the kernel allows it in the UTS ns
    assert (
        run.ok(["sh", "-c", "hostname renamed && hostname"], cap_add=("SYS_ADMIN",)) == "renamed\n"
    )


def test_privileged(run: Run) -> None:
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse on this host to see in the container")
    script = "cat /proc/self/status; echo ==; ls -l /dev/fuse; echo ==; cat /proc/mounts"
    status_text, fuse, mounts = run.ok(["sh", "-c", script], privileged=True).split("==\n")
    s = status(status_text)
    top = last_cap()
    caller = read_status()["CapBnd"] & ((1 << (top + 1)) - 1)
    assert int(s["CapEff"], 16) == caller
    assert s["Seccomp"] == "0"
    host = os.stat("/dev/fuse")
    assert fuse.startswith("c") and f"{os.major(host.st_rdev)}, {os.minor(host.st_rdev)}" in fuse
    points = [line.split()[1] for line in mounts.splitlines()]
    assert "/proc/acpi" not in points and "/proc/sys" not in points  # nothing masked
    assert any(line.split()[1] == "/sys" and line.split()[3].startswith("rw,")
               for line in mounts.splitlines())  # fmt: skip


def test_read_only_root(run: Run) -> None:
    script = (
        "touch /x 2>&1; echo rc=$?; "
        "touch /tmp/a /run/a /var/tmp/a && echo tmpfs-ok; "
        "echo x >> /etc/hosts 2>&1; echo hosts=$?"
    )
    out = run.ok(["sh", "-c", script], read_only=True)
    lines = out.splitlines()
    assert "Read-only file system" in lines[0] and lines[1] == "rc=1"
    assert "tmpfs-ok" in lines
    assert lines[-1] == "hosts=1"


# --------------------------------------------------------------------------- seccomp


def test_seccomp_default_profile(run: Run) -> None:
    script = (
        "ls / > /dev/null && echo ls-ok; "
        "mkdir -p /mnt; mount -t tmpfs none /mnt 2>/dev/null; echo mount=$?; "
        "unshare -m true 2>&1; echo unshare=$?; "
        "hostname other 2>&1; echo hostname=$?"
    )
    out = run.ok(["sh", "-c", script])
    lines = out.splitlines()
    assert lines[0] == "ls-ok"
    assert "mount=0" not in lines
    assert "unshare: unshare(0x20000): Operation not permitted" in lines
    assert "unshare=1" in lines
    assert "hostname: sethostname: Operation not permitted" in lines


PROBE_C = r"""
#include <errno.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    long r = syscall(SYS_add_key, "user", "pypod", "x", 1, -2);
    printf("add_key=%d\n", r < 0 ? errno : 0);
    r = syscall(SYS_personality, 0x0040000UL);
    printf("personality=%d\n", r < 0 ? errno : 0);
    r = syscall(SYS_io_uring_setup, 1, NULL);
    printf("io_uring_setup=%d\n", r < 0 ? errno : 0);
    return 0;
}
"""


@pytest.fixture
def probe(run: Run, tmp_path: Path) -> str:
    """A static binary in the rootfs that reports the errno of syscalls the profile denies."""
    gcc = shutil.which("gcc")
    if gcc is None or not Path("/usr/lib/x86_64-linux-gnu/libc.a").exists():
        pytest.skip("gcc and a static libc (libc6-dev) are needed to build the syscall probe")
    src = tmp_path / "probe.c"
    src.write_text(PROBE_C)
    subprocess.run([gcc, "-static", "-O0", "-o", str(run.rootfs / "probe"), str(src)], check=True)
    return "/probe"


def test_seccomp_denies_what_podmans_profile_denies(run: Run, probe: str) -> None:
    confined = dict(line.split("=") for line in run.ok([probe]).split())
    # not in the profile: the default action, ENOSYS (38), so that programs fall back
    assert confined == {"add_key": "38", "personality": "38", "io_uring_setup": "38"}
    free = dict(line.split("=") for line in run.ok([probe], seccomp_profile="unconfined").split())
    assert free["add_key"] != "38" and free["personality"] == "0"


def test_seccomp_profile_file(run: Run, tmp_path: Path) -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errno": "EXDEV"}],
    }
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    out = run.ok(["sh", "-c", "mkdir /made 2>&1; grep Seccomp: /proc/self/status"],
                 seccomp_profile=str(path))  # fmt: skip
    assert "Invalid cross-device link" in out
    assert "Seccomp:\t2" in out


# --------------------------------------------------------------------------- limits, mounts, misc


def test_ulimits_and_resources(run: Run) -> None:
    script = (
        "ulimit -n; ulimit -Hn; cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
        "/sys/fs/cgroup/pids/pids.max"
    )
    if not os.path.isdir("/sys/fs/cgroup/memory"):
        pytest.skip("cgroup v1 memory controller not mounted at /sys/fs/cgroup/memory")
    out = run.ok(["sh", "-c", script], ulimits=("nofile=1024:2048",),
                 resources=Resources(memory=64 << 20, pids_limit=100))  # fmt: skip
    assert out.split() == ["1024", "2048", str(64 << 20), "100"]


def test_bind_and_tmpfs(run: Run, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    mounts = (
        MountSpec(type="bind", source=str(data), destination="/data"),
        MountSpec(type="bind", source=str(data), destination="/ro", options=("ro",)),
        MountSpec(type="tmpfs", source="tmpfs", destination="/scratch", options=("size=1m",)),
    )
    script = (
        "echo hello > /data/f; cat /ro/f; echo x > /ro/g 2>/dev/null || echo ro-refused; "
        "grep ' /scratch ' /proc/mounts"
    )
    out = run.ok(["sh", "-c", script], mounts=mounts)
    assert (data / "f").read_text() == "hello\n"
    lines = out.splitlines()
    assert lines[:2] == ["hello", "ro-refused"]
    assert "size=1024k" in lines[2] and "nosuid" in lines[2] and "nodev" in lines[2]


@pytest.mark.skipif(
    not os.path.isfile("/usr/share/zoneinfo/Europe/Paris"), reason="no tzdata (Europe/Paris)"
)
def test_tz(run: Run) -> None:
    zone = run.ok(["date", "+%Z"], tz="Europe/Paris").strip()
    assert zone in ("CET", "CEST")


@pytest.mark.skipif(
    not any(os.path.exists(p) for p in ("/usr/libexec/podman/catatonit", "/usr/bin/catatonit")),
    reason="catatonit is not installed (apt-get install catatonit)",
)
def test_init(run: Run) -> None:
    out = run.ok(["ps", "-o", "pid,args"], init=True)
    assert "1 /run/pypod-init -- ps -o pid,args" in out


def test_device(run: Run) -> None:
    out = run.ok(["sh", "-c", "ls -l /dev/mynull; echo x > /dev/mynull && echo written"],
                 devices=("/dev/null:/dev/mynull:rw",))  # fmt: skip
    assert out.startswith("crw")
    assert "1,   3" in out and out.endswith("written\n")


def test_hostname_sysctl_and_misc(run: Run) -> None:
    script = (
        "hostname; cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/ping_group_range "
        "/proc/self/oom_score_adj; grep NoNewPrivs /proc/self/status"
    )
    out = run.ok(["sh", "-c", script], hostname="myhost", sysctls={"net.ipv4.ip_forward": "1"},
                 oom_score_adj=100, no_new_privileges=True)  # fmt: skip
    assert out.split() == ["myhost", "1", "0", "0", "100", "NoNewPrivs:", "1"]


def test_masks(run: Run) -> None:
    out = run.ok(["sh", "-c", "wc -c < /proc/cpuinfo; cat /proc/mounts"],
                 mask=("/proc/cpuinfo",), unmask=("/proc/acpi",))  # fmt: skip
    lines = out.splitlines()
    assert lines[0].strip() == "0"
    points = [line.split()[1] for line in lines[1:]]
    assert "/proc/acpi" not in points and "/proc/keys" in points


def test_host_network(run: Run) -> None:
    if not os.path.exists("/etc/resolv.conf"):
        pytest.skip("no /etc/resolv.conf on this host")
    out = run.ok(["sh", "-c", "cat /etc/resolv.conf; hostname"], network="host")
    assert out == Path("/etc/resolv.conf").read_text() + os.uname().nodename + "\n"
