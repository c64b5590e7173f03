"""build_spec against podman 4.3.1: the same flags give the same config.json.

podman runs on a private store (its own --root/--runroot/--tmpdir and containers.conf: Debian's
default capabilities and sysctls, ulimits equal to the defaults pypod clamps to, runc); for each
case `podman create` + `podman init` writes the container's config.json, which is compared
with what build_spec makes from the equivalent ContainerConfig for the same container id.

Differences that are on purpose are normalized away: container=pypod, io.container.manager,
/pypod_parent/pypod-ID, /run/pypod-init, TERM (podman always sets it), /dev/shm (podman binds a
tmpfs it mounted itself; pypod asks the runtime for the tmpfs), the sources of the files each
writes into its own userdata directory, and /run/.containerenv (podman leaves it out when /run
is a tmpfs).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pypod.engine.config import ContainerConfig, MountSpec, Resources
from pypod.engine.spec import build_spec
from pypod.testing import find_busybox, make_busybox_rootfs
from tests.podman_support import private_store_cleanup, private_store_env, write_private_store

pytestmark = [pytest.mark.compat, pytest.mark.root]

IMAGE_CONFIG = {
    "Env": ["FOO=bar", "PATH=/bin:/custom"],
    "Entrypoint": ["/bin/echo", "ep"],
    "Cmd": ["c1", "c2"],
    "WorkingDir": "/tmp",
    "User": "user",
    "StopSignal": "SIGINT",
}
IMAGE_CHANGES = [
    "ENV FOO=bar", "ENV PATH=/bin:/custom", 'ENTRYPOINT ["/bin/echo","ep"]', 'CMD ["c1","c2"]',
    "WORKDIR /tmp", "USER user", "STOPSIGNAL SIGINT",
]  # fmt: skip
#: more of podman's containers.conf for this comparison: its default capabilities and sysctls
DEFAULTS = """\
default_capabilities = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE",
  "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"]
default_sysctls = ["net.ipv4.ping_group_range=0 0"]
"""


def _default_limit(name: str) -> int:
    hard = resource.getrlimit(getattr(resource, name))[1]
    return 1048576 if hard == resource.RLIM_INFINITY else min(1048576, hard)


class Podman:
    def __init__(self, exe: str, store: Path) -> None:
        self.exe = exe
        self.store = store

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        store = self.store
        cmd = [self.exe, "--root", str(store / "root"), "--runroot", str(store / "run"),
               "--tmpdir", str(store / "tmp"), "--storage-driver", "overlay", *args]  # fmt: skip
        return subprocess.run(cmd, env=private_store_env(store), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    def ok(self, *args: str) -> str:
        proc = self(*args)
        assert proc.returncode == 0, f"podman {' '.join(args)}: {proc.stderr}"
        return proc.stdout

    def spec(self, flags: list[str], image: str, command: list[str]) -> tuple[str, dict[str, Any]]:
        """(container id, the config.json podman generates) for `podman create FLAGS IMAGE CMD`."""
        cid = self.ok("create", *flags, image, *command).strip()
        try:
            self.ok("init", cid)
            path = self.store / "root/overlay-containers" / cid / "userdata/config.json"
            return cid, json.loads(path.read_text())
        finally:
            self("rm", "--force", "--time", "0", cid)


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    exe = shutil.which("podman")
    if exe is None:
        pytest.skip("podman is not installed (apt-get install podman): nothing to compare with")
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed: podman here runs containers with runc")
    busybox = find_busybox()
    if busybox is None:
        pytest.skip("busybox-static is not installed (apt-get install busybox-static)")
    store = tmp_path_factory.mktemp("podman-spec")
    write_private_store(
        store,
        containers=DEFAULTS,
        nofile=_default_limit("RLIMIT_NOFILE"),
        nproc=30000,  # podman lowers its own to pid_max: see _normalize
    )
    pod = Podman(exe, store)
    with private_store_cleanup(store, pod):
        rootfs = make_busybox_rootfs(str(store / "rootfs"), busybox)
        with tarfile.open(store / "busybox.tar", "w") as tar:
            tar.add(rootfs, arcname=".")
        pod.ok("import", str(store / "busybox.tar"), "localhost/busybox")
        changes = [x for c in IMAGE_CHANGES for x in ("--change", c)]
        pod.ok("import", *changes, str(store / "busybox.tar"), "localhost/configured")
        yield pod


@pytest.fixture(scope="module")
def volume(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("volume"))


def _normalize(doc: dict[str, Any]) -> dict[str, Any]:
    """The parts of a config.json that must agree, with the on-purpose differences removed."""
    proc = doc["process"]
    env = sorted(e for e in proc["env"] if not e.startswith(("container=", "TERM=")))
    mounts = []
    for m in doc["mounts"]:
        dest = m["destination"]
        if dest in ("/dev/shm", "/run/.containerenv"):
            continue
        source = m["source"]
        if dest in ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/etc/localtime"):
            source = "<userdata>"
        if dest in ("/run/podman-init", "/run/pypod-init"):
            dest, source = "<init>", "<catatonit>"
        mounts.append((dest, m["type"], source, tuple(m.get("options", ()))))
    linux = dict(doc["linux"])
    linux["cgroupsPath"] = linux["cgroupsPath"].replace(
        "libpod_parent/libpod-", "pypod_parent/pypod-"
    )
    annotations = {
        k: v for k, v in doc.get("annotations", {}).items()
        if k not in ("io.container.manager", "io.kubernetes.cri-o.Created")
    }  # fmt: skip
    args = ["<init>" if a in ("/run/podman-init", "/run/pypod-init") else a for a in proc["args"]]
    # podman runs with its RLIMIT_NPROC lowered to pid_max, so its containers.conf cannot ask
    # for the default pypod clamps to (the caller's hard limit): that value is not compared
    rlimits = [
        {**r, "soft": "<nproc>", "hard": "<nproc>"}
        if r["type"] == "RLIMIT_NPROC" and r["soft"] in (30000, _default_limit("RLIMIT_NPROC"))
        else r
        for r in proc.get("rlimits", ())
    ]
    return {
        "args": args,
        "env": env,
        "cwd": proc["cwd"],
        "user": proc["user"],
        "terminal": proc.get("terminal", False),
        "capabilities": proc.get("capabilities"),
        "rlimits": rlimits,
        "noNewPrivileges": proc.get("noNewPrivileges", False),
        "oomScoreAdj": proc.get("oomScoreAdj"),
        "root": doc["root"].get("readonly", False),
        "hostname": doc.get("hostname"),
        "mounts": sorted(mounts),
        "linux": linux,
        "annotations": annotations,
    }


CASES: list[tuple[str, list[str], str, list[str], dict[str, Any]]] = [
    ("default", [], "localhost/busybox", ["true"], {}),
    ("image config", [], "localhost/configured", [], {"image_config": IMAGE_CONFIG}),
    ("image config, command and env", ["-e", "FOO=over", "-e", "NEW=1", "-w", "/root", "-u", "0:5",
     "--group-add", "1000"], "localhost/configured", ["x", "y"],
     {"image_config": IMAGE_CONFIG, "env": {"FOO": "over", "NEW": "1"}, "workdir": "/root",
      "user": "0:5", "group_add": ("1000",)}),
    ("entrypoint", ["--entrypoint", "/bin/env"], "localhost/configured", [],
     {"image_config": IMAGE_CONFIG, "entrypoint": ("/bin/env",)}),
    ("user", ["-u", "user", "--group-add", "tty"], "localhost/busybox", ["true"],
     {"user": "user", "group_add": ("tty",)}),
    ("caps", ["--cap-add", "sys_admin", "--cap-add", "CAP_NET_RAW", "--cap-drop", "chown"],
     "localhost/busybox", ["true"],
     {"cap_add": ("sys_admin", "CAP_NET_RAW"), "cap_drop": ("chown",)}),
    ("drop all", ["--cap-drop", "ALL", "--cap-add", "kill"], "localhost/busybox", ["true"],
     {"cap_drop": ("ALL",), "cap_add": ("kill",)}),
    ("add all", ["--cap-add", "ALL", "--cap-drop", "kill"], "localhost/busybox", ["true"],
     {"cap_add": ("ALL",), "cap_drop": ("kill",)}),
    ("user with caps", ["-u", "user", "--cap-add", "net_raw"], "localhost/busybox", ["true"],
     {"user": "user", "cap_add": ("net_raw",)}),
    ("privileged", ["--privileged"], "localhost/busybox", ["true"], {"privileged": True}),
    ("read-only", ["--read-only"], "localhost/busybox", ["true"], {"read_only": True}),
    ("read-only without tmpfs", ["--read-only", "--read-only-tmpfs=false"], "localhost/busybox",
     ["true"], {"read_only": True, "read_only_tmpfs": False}),
    ("ulimits", ["--ulimit", "nofile=100:200", "--ulimit", "core=-1", "--ulimit",
     "nproc=30000:30000"], "localhost/busybox", ["true"],
     {"ulimits": ("nofile=100:200", "core=-1", "nproc=30000:30000")}),
    ("resources", ["-m", "512m", "--memory-reservation", "256m", "--memory-swap", "1g",
     "--cpus", "1.5", "--cpu-shares", "512", "--cpuset-cpus", "0", "--pids-limit", "100"],
     "localhost/busybox", ["true"],
     {"resources": Resources(memory=512 << 20, memory_reservation=256 << 20, memory_swap=1 << 30,
                             cpus=1.5, cpu_shares=512, cpuset_cpus="0", pids_limit=100)}),
    ("memory only", ["-m", "64m", "--pids-limit", "-1"], "localhost/busybox", ["true"],
     {"resources": Resources(memory=64 << 20, pids_limit=-1)}),
    ("devices", ["--device", "/dev/fuse", "--device", "/dev/null:/dev/mynull:rw"],
     "localhost/busybox", ["true"], {"devices": ("/dev/fuse", "/dev/null:/dev/mynull:rw")}),
    ("security and misc", ["--security-opt", "mask=/proc/cpuinfo", "--security-opt",
     "unmask=/proc/kcore", "--security-opt", "no-new-privileges", "--oom-score-adj", "100",
     "--sysctl", "kernel.msgmax=65536", "--hostname", "myhost", "--annotation", "foo=bar",
     "--stop-signal", "9"], "localhost/busybox", ["true"],
     {"mask": ("/proc/cpuinfo",), "unmask": ("/proc/kcore",), "no_new_privileges": True,
      "oom_score_adj": 100, "sysctls": {"kernel.msgmax": "65536"}, "hostname": "myhost",
      "annotations": {"foo": "bar"}, "stop_signal": 9}),
    ("unmask all", ["--security-opt", "unmask=ALL"], "localhost/busybox", ["true"],
     {"unmask": ("ALL",)}),
    ("host namespaces", ["--network", "host", "--ipc", "host", "--uts", "host", "--pid", "host"],
     "localhost/busybox", ["true"],
     {"network": "host", "ipc": "host", "uts": "host", "pid": "host"}),
    ("host network", ["--network", "host"], "localhost/busybox", ["true"], {"network": "host"}),
    ("unconfined", ["--security-opt", "seccomp=unconfined"], "localhost/busybox", ["true"],
     {"seccomp_profile": "unconfined"}),
    ("tty", ["-t"], "localhost/busybox", ["true"], {"tty": True}),
    ("tz", ["--tz", "Europe/Paris"], "localhost/busybox", ["true"], {"tz": "Europe/Paris"}),
    ("init", ["--init"], "localhost/busybox", ["ps"], {"init": True, "command": ("ps",)}),
]  # fmt: skip


def _mount_case(volume: str) -> tuple[list[str], dict[str, Any]]:
    flags = [
        "-v", f"{volume}:/data:ro,rshared", "-v", f"{volume}:/data2",
        "--tmpfs", "/scratch:size=10m,mode=700",
        "--mount", "type=tmpfs,dst=/t2,tmpfs-size=1m,tmpfs-mode=0755",
        "--mount", f"type=bind,src={volume},dst=/b3,bind-propagation=rslave",
        "--shm-size", "10m",
    ]  # fmt: skip
    mounts = (
        MountSpec(type="bind", source=volume, destination="/data", options=("ro", "rshared")),
        MountSpec(type="bind", source=volume, destination="/data2"),
        MountSpec(type="tmpfs", source="tmpfs", destination="/scratch",
                  options=("size=10m", "mode=700")),
        MountSpec(type="tmpfs", source="tmpfs", destination="/t2",
                  options=("size=1m", "mode=0755")),
        MountSpec(type="bind", source=volume, destination="/b3", options=("rslave",)),
    )  # fmt: skip
    return flags, {"mounts": mounts, "shm_size": 10 << 20}


def _compare(podman: Podman, tmp_path: Path, flags: list[str], image: str, command: list[str],
             kw: dict[str, Any]) -> None:  # fmt: skip
    if "--tz" in flags and not os.path.isfile("/usr/share/zoneinfo/Europe/Paris"):
        pytest.skip("no tzdata (Europe/Paris)")
    if "--init" in flags and not os.path.exists("/usr/libexec/podman/catatonit"):
        pytest.skip("catatonit is not installed")
    cid, theirs = podman.spec(["--name", "spec-compat", *flags], image, command)
    kw = dict(kw)
    image_config = kw.pop("image_config", {})
    kw.setdefault("command", tuple(command))
    cfg = ContainerConfig(image=image, image_id="x" * 64, name="spec-compat", **kw)
    userdata = tmp_path / "userdata"
    userdata.mkdir()
    # podman's root is unmounted once the container is removed: the image's content is the
    # busybox root filesystem it was imported from
    rootfs = str(podman.store / "rootfs")
    ours = build_spec(cfg, image_config, container_id=cid, rootfs=rootfs, userdata=str(userdata))
    mine, podmans = _normalize(ours), _normalize(theirs)
    for key in podmans:
        assert mine[key] == podmans[key], key
    depths = [m["destination"].rstrip("/").count("/") for m in ours["mounts"]]
    assert depths == sorted(depths)


@pytest.mark.parametrize(
    ("name", "flags", "image", "command", "kw"), CASES, ids=[c[0] for c in CASES]
)
def test_same_spec_as_podman(
    podman: Podman, tmp_path: Path, name: str, flags: list[str], image: str, command: list[str],
    kw: dict[str, Any],
) -> None:  # fmt: skip
    _compare(podman, tmp_path, flags, image, command, kw)


def test_same_mounts_as_podman(podman: Podman, tmp_path: Path, volume: str) -> None:
    flags, kw = _mount_case(volume)
    _compare(podman, tmp_path, flags, "localhost/busybox", ["true"], kw)


def test_same_hosts_file_as_podman(podman: Podman, tmp_path: Path) -> None:
    cid = podman.ok(
        "create", "--name", "hosts-compat", "localhost/busybox", "cat", "/etc/hosts"
    ).strip()
    try:
        theirs = podman.ok("start", "--attach", cid)
    finally:
        podman("rm", "--force", "--time", "0", cid)
    cfg = ContainerConfig(
        image="localhost/busybox", image_id="x" * 64, name="hosts-compat", command=("true",)
    )
    build_spec(cfg, {}, container_id=cid, rootfs=str(tmp_path), userdata=str(tmp_path))
    assert (tmp_path / "hosts").read_text() == theirs


def test_same_seccomp_file_as_podman(podman: Podman, tmp_path: Path) -> None:
    deny = "SCMP_ACT_ERRNO"
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
        "syscalls": [
            {"names": ["mkdir"], "action": deny, "errno": "EXDEV"},
            {"names": ["rmdir"], "action": deny, "errnoRet": 5},
            {"names": ["chroot"], "action": deny, "excludes": {"caps": ["CAP_SYS_CHROOT"]}},
            {"names": ["bpf"], "action": deny, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["ptrace"], "action": deny, "includes": {"caps": ["CAP_KILL"]}},
            {"names": ["kcmp"], "action": deny, "includes": {"arches": ["arm64"]}},
            {"names": ["socket"], "action": deny,
             "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_EQ"}]},
        ],
    }  # fmt: skip
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    flags = ["--security-opt", f"seccomp={path}"]
    _compare(podman, tmp_path, flags, "localhost/busybox", ["true"], {"seccomp_profile": str(path)})
