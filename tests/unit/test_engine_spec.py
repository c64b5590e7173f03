"""engine/spec.build_spec: the config.json of a `pypod run` container, rule by rule.

Expected values are podman 4.3.1's, read from the config.json it generates on this machine for
the same flags (Debian's containers.conf: the 11 default capabilities and
net.ipv4.ping_group_range).  Every document must parse with pypod's runtime-spec parser.
"""

from __future__ import annotations

import os
import resource
import signal
from pathlib import Path
from typing import Any

import pytest

from pypod.engine import spec as spec_mod
from pypod.engine.config import ContainerConfig, MountSpec, Resources
from pypod.engine.spec import build_spec, parse_signal
from pypod.errors import InvalidArgument, NotSupported
from pypod.linux.capabilities import last_cap, read_status, to_names
from pypod.oci.runtime_spec import parse_spec

CID = "de840067dfb3afb346f84cdcf6daad009bac6a9e8994ebfe2f2f46f1e4323abe"
DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID",
    "CAP_SYS_CHROOT",
]  # fmt: skip
MASKED = [
    "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/fs/selinux",
    "/sys/dev/block",
]  # fmt: skip
READONLY = [
    "/proc/asound",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
]
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "user:x:1000:1000:user:/home/user:/bin/sh\n"
    "other:x:1001:1001::/home/other:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\ntty:x:5:\nuser:x:1000:\nwheel:x:10:user,other\naudio:x:29:other,user\n"


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    for d in ("etc", "tmp", "root", "home/user", "work"):
        (root / d).mkdir(parents=True)
    (root / "etc/passwd").write_text(PASSWD)
    (root / "etc/group").write_text(GROUP)
    return root


@pytest.fixture
def userdata(tmp_path: Path) -> Path:
    path = tmp_path / "userdata"
    path.mkdir()
    return path


class Builder:
    def __init__(self, rootfs: Path, userdata: Path) -> None:
        self.rootfs = rootfs
        self.userdata = userdata

    def __call__(self, image: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        kw.setdefault("command", ("true",))
        cfg = ContainerConfig(image="localhost/bb", image_id="fe1051ea", name="t1", **kw)
        doc = build_spec(
            cfg, image or {}, container_id=CID, rootfs=str(self.rootfs), userdata=str(self.userdata)
        )
        parse_spec(doc)  # what the runtime will read
        return doc


@pytest.fixture
def build(rootfs: Path, userdata: Path) -> Builder:
    return Builder(rootfs, userdata)


def mounts_by_dest(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["destination"]: m for m in doc["mounts"]}


def caller_bounding() -> list[str]:
    top = last_cap()
    from pypod.linux.capabilities import CAP_NAMES

    return sorted(n for n in to_names(read_status()["CapBnd"]) if CAP_NAMES[n] <= top)


def hard_limit(name: str) -> int:
    hard = resource.getrlimit(getattr(resource, name))[1]
    return 2**64 - 1 if hard == resource.RLIM_INFINITY else hard


# --------------------------------------------------------------------------- the whole document


def test_default_spec_is_podmans(build: Builder, rootfs: Path, userdata: Path) -> None:
    doc = build()
    assert doc["root"] == {"path": str(rootfs)}
    assert doc["hostname"] == CID[:12]
    proc = doc["process"]
    assert proc["user"] == {"uid": 0, "gid": 0, "umask": 0o022}
    assert proc["args"] == ["true"]
    assert proc["cwd"] == "/"
    assert "terminal" not in proc and "noNewPrivileges" not in proc
    assert proc["capabilities"] == {
        "bounding": DEFAULT_CAPS, "effective": DEFAULT_CAPS, "permitted": DEFAULT_CAPS,
    }  # fmt: skip
    assert [m["destination"] for m in doc["mounts"]] == [
        "/proc", "/dev", "/sys", "/dev/pts", "/dev/mqueue", "/dev/shm", "/run/.containerenv",
        "/etc/hostname", "/etc/hosts", "/sys/fs/cgroup",
    ]  # fmt: skip
    by = mounts_by_dest(doc)
    assert by["/proc"] == {
        "destination": "/proc", "type": "proc", "source": "proc",
        "options": ["nosuid", "noexec", "nodev"],
    }  # fmt: skip
    assert by["/dev"]["options"] == ["nosuid", "noexec", "strictatime", "mode=755", "size=65536k"]
    assert by["/sys"]["options"] == ["nosuid", "noexec", "nodev", "ro"]
    assert by["/dev/pts"]["options"] == [
        "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5",
    ]  # fmt: skip
    assert by["/dev/mqueue"]["options"] == ["nosuid", "noexec", "nodev"]
    assert by["/dev/shm"] == {
        "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
        "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
    }  # fmt: skip
    assert by["/sys/fs/cgroup"]["options"] == [
        "rprivate", "nosuid", "noexec", "nodev", "relatime", "ro",
    ]  # fmt: skip
    for dest, name in (("/etc/hosts", "hosts"), ("/etc/hostname", "hostname"),
                       ("/run/.containerenv", ".containerenv")):  # fmt: skip
        assert by[dest] == {
            "destination": dest, "type": "bind", "source": str(userdata / name),
            "options": ["bind", "rprivate"],
        }  # fmt: skip
    linux = doc["linux"]
    assert linux["namespaces"] == [
        {"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
    ]  # fmt: skip
    assert linux["sysctl"] == {"net.ipv4.ping_group_range": "0 0"}
    assert linux["resources"] == {
        "devices": [{"allow": False, "access": "rwm"}], "pids": {"limit": 2048},
    }  # fmt: skip
    assert linux["cgroupsPath"] == f"/pypod_parent/pypod-{CID}"
    assert linux["maskedPaths"] == MASKED
    assert linux["readonlyPaths"] == READONLY
    assert linux["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert "devices" not in linux and "rootfsPropagation" not in linux


def test_etc_files_content(build: Builder, userdata: Path) -> None:
    build(hostname="myhost")
    assert (userdata / "hostname").read_text() == "myhost\n"
    assert (userdata / ".containerenv").read_text() == ""
    hosts = (userdata / "hosts").read_text().splitlines()
    assert hosts[-1] == "127.0.0.1\tmyhost t1"
    names = {n for line in hosts for n in line.split("\t", 1)[1].split()}
    assert "localhost" in names
    assert not (userdata / "resolv.conf").exists()  # --network none: the image's own file


def test_containerenv_privileged(build: Builder, userdata: Path) -> None:
    build(privileged=True)
    text = (userdata / ".containerenv").read_text()
    assert text.startswith('engine="pypod-')
    rootless = 0 if os.geteuid() == 0 else 1
    assert text.endswith(
        f'\nname="t1"\nid="{CID}"\nimage="localhost/bb"\nimageid="fe1051ea"\nrootless={rootless}\n'
    )


def test_host_network(build: Builder, userdata: Path) -> None:
    doc = build(network="host")
    assert {"type": "network"} not in doc["linux"]["namespaces"]
    assert "sysctl" not in doc["linux"]  # no net.* default without a netns of its own
    assert doc["hostname"] == os.uname().nodename  # the host's name, in a private UTS ns
    assert f"HOSTNAME={os.uname().nodename}" in doc["process"]["env"]
    by = mounts_by_dest(doc)
    assert by["/etc/resolv.conf"]["source"] == str(userdata / "resolv.conf")
    if os.path.exists("/etc/resolv.conf"):
        assert (userdata / "resolv.conf").read_text() == Path("/etc/resolv.conf").read_text()
    hosts = (userdata / "hosts").read_text()
    assert "t1" not in hosts.split()  # no container entry with the host's network


def test_unsupported_network(build: Builder) -> None:
    with pytest.raises(NotSupported, match="network mode 'macvlan:x' is not supported yet"):
        build(network="macvlan:x")


def test_joined_network_namespace(build: Builder) -> None:
    doc = build(network="path:/proc/1/ns/net")
    assert {"type": "network", "path": "/proc/1/ns/net"} in doc["linux"]["namespaces"]


# --------------------------------------------------------------------------- args, env, cwd


IMAGE = {"Entrypoint": ["/bin/echo", "ep"], "Cmd": ["c1", "c2"], "WorkingDir": "/tmp"}


def test_args_image_entrypoint_and_cmd(build: Builder) -> None:
    assert build(IMAGE, command=())["process"]["args"] == ["/bin/echo", "ep", "c1", "c2"]


def test_args_command_replaces_image_cmd(build: Builder) -> None:
    assert build(IMAGE, command=("x", "y"))["process"]["args"] == ["/bin/echo", "ep", "x", "y"]


def test_entrypoint_flag_replaces_and_drops_image_cmd(build: Builder) -> None:
    assert build(IMAGE, command=(), entrypoint=("/bin/env",))["process"]["args"] == ["/bin/env"]
    doc = build(IMAGE, command=("-i",), entrypoint=("/bin/env",))
    assert doc["process"]["args"] == ["/bin/env", "-i"]


def test_empty_entrypoint_clears(build: Builder) -> None:
    assert build(IMAGE, command=("/bin/env",), entrypoint=())["process"]["args"] == ["/bin/env"]
    with pytest.raises(InvalidArgument, match="no command or entrypoint provided"):
        build(IMAGE, command=(), entrypoint=())
    # an image ENTRYPOINT [""] counts as none
    doc = build({"Entrypoint": [""], "Cmd": ["sh"]}, command=())
    assert doc["process"]["args"] == ["sh"]


def test_no_command_at_all(build: Builder) -> None:
    with pytest.raises(
        InvalidArgument, match="^no command or entrypoint provided, and no CMD or ENTRYPOINT"
    ):
        build({}, command=())


def test_env_defaults(build: Builder) -> None:
    assert build()["process"]["env"] == [
        f"PATH={PATH}", "container=pypod", "HOME=/root", f"HOSTNAME={CID[:12]}",
    ]  # fmt: skip


def test_env_image_then_user_then_home_hostname(build: Builder) -> None:
    image = {"Env": ["PATH=/bin:/custom", "FOO=bar", "EMPTY="]}
    env = build(image, env={"FOO": "over", "NEW": "1"}, tty=True)["process"]["env"]
    assert env == [
        "PATH=/bin:/custom", "TERM=xterm", "container=pypod", "FOO=over", "EMPTY=", "NEW=1",
        "HOME=/root", f"HOSTNAME={CID[:12]}",
    ]  # fmt: skip


def test_env_user_home_and_hostname_win(build: Builder) -> None:
    env = build(env={"HOME": "/h", "HOSTNAME": "x", "container": "mine"})["process"]["env"]
    assert "HOME=/h" in env and "HOSTNAME=x" in env and "container=mine" in env
    assert not any(e.startswith("HOME=/root") for e in env)


def test_tty(build: Builder) -> None:
    doc = build(tty=True)
    assert doc["process"]["terminal"] is True
    assert "TERM=xterm" in doc["process"]["env"]
    assert doc["annotations"]["io.kubernetes.cri-o.TTY"] == "true"
    assert not any(e.startswith("TERM=") for e in build()["process"]["env"])


def test_cwd(build: Builder, rootfs: Path) -> None:
    assert build(IMAGE)["process"]["cwd"] == "/tmp"
    assert build({"WorkingDir": "/not/yet"})["process"]["cwd"] == "/not/yet"  # runtime creates it
    assert build(IMAGE, workdir="/work")["process"]["cwd"] == "/work"
    with pytest.raises(
        InvalidArgument, match=f'^workdir "/nonexist" does not exist on container {CID}$'
    ):
        build(workdir="/nonexist")
    (rootfs / "file").write_text("")
    with pytest.raises(InvalidArgument, match="exists on container .* but is not a directory"):
        build(workdir="/file")


def test_cwd_on_a_mount(build: Builder, tmp_path: Path) -> None:
    mount = MountSpec(type="bind", source=str(tmp_path), destination="/data")
    assert build(mounts=(mount,), workdir="/data/sub")["process"]["cwd"] == "/data/sub"


# --------------------------------------------------------------------------- user


def test_named_user(build: Builder) -> None:
    doc = build({"User": "user"})
    # primary gid first, then the groups listing the user (wheel, audio), as podman
    assert doc["process"]["user"] == {
        "uid": 1000, "gid": 1000, "umask": 18, "additionalGids": [1000, 10, 29],
    }  # fmt: skip
    assert "HOME=/home/user" in doc["process"]["env"]


def test_user_flag_wins_over_image_user(build: Builder) -> None:
    doc = build({"User": "user"}, user="other")
    assert doc["process"]["user"]["uid"] == 1001


def test_numeric_user_without_entry(build: Builder) -> None:
    doc = build(user="1234:4321")
    assert doc["process"]["user"] == {
        "uid": 1234, "gid": 4321, "umask": 18, "additionalGids": [4321],
    }  # fmt: skip
    assert "HOME=/" in doc["process"]["env"]
    doc = build(user="1234")
    assert doc["process"]["user"]["gid"] == 0


def test_user_with_explicit_group(build: Builder) -> None:
    # an explicit group: no supplementary groups from the group file, as podman
    doc = build(user="user:wheel", group_add=("audio", "77"))
    assert doc["process"]["user"] == {
        "uid": 1000, "gid": 10, "umask": 18, "additionalGids": [10, 29, 77],
    }  # fmt: skip
    doc = build(user="0:5", group_add=("1000",))
    assert doc["process"]["user"]["additionalGids"] == [5, 1000]


def test_root_user_gets_group_add_only(build: Builder) -> None:
    assert "additionalGids" not in build()["process"]["user"]
    assert build(group_add=("wheel",))["process"]["user"]["additionalGids"] == [10]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"user": "nosuch"}, "unable to find user nosuch: no matching entries in passwd file"),
        ({"user": "user:nosuch"}, "unable to find group nosuch: no matching entries in group file"),
        (
            {"group_add": ("nosuch",)},
            "unable to find group nosuch: no matching entries in group file",
        ),
        ({"user": "-1"}, "uids and gids must be in range 0-2147483647"),
        ({"user": "0:4294967296"}, "uids and gids must be in range 0-2147483647"),
    ],
)
def test_user_errors(build: Builder, kw: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=f"^{message}$"):
        build(**kw)


def test_passwd_symlink_stays_in_the_root(build: Builder, rootfs: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside-passwd"
    outside.write_text("evil:x:4242:4242::/:/bin/sh\n")
    (rootfs / "etc/passwd").unlink()
    (rootfs / "etc/passwd").symlink_to(f"../../../../../../../..{outside}")
    with pytest.raises(InvalidArgument, match="unable to find user evil"):
        build(user="evil")
    # the same absolute target inside the root is what is read
    inside = rootfs / str(outside).lstrip("/")
    inside.parent.mkdir(parents=True)
    inside.write_text("evil:x:4343:4343::/:/bin/sh\n")
    assert build(user="evil")["process"]["user"]["uid"] == 4343


def test_passwd_that_is_not_a_file_is_refused(build: Builder, rootfs: Path) -> None:
    (rootfs / "etc/passwd").unlink()
    os.mkfifo(rootfs / "etc/passwd")  # opening it for reading would block
    with pytest.raises(InvalidArgument, match="not a regular file"):
        build(user="user")


def test_no_passwd_file(build: Builder, rootfs: Path) -> None:
    (rootfs / "etc/passwd").unlink()
    assert build(user="55")["process"]["user"]["uid"] == 55
    with pytest.raises(InvalidArgument, match="unable to find user user"):
        build(user="user")


def test_passwd_from_a_bind_mount(build: Builder, tmp_path: Path) -> None:
    host = tmp_path / "passwd"
    host.write_text("bound:x:777:778::/b:/bin/sh\n")
    mount = MountSpec(type="bind", source=str(host), destination="/etc/passwd")
    doc = build(mounts=(mount,), user="bound")
    assert doc["process"]["user"]["uid"] == 777
    assert "HOME=/b" in doc["process"]["env"]


# --------------------------------------------------------------------------- capabilities


def caps(doc: dict[str, Any]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = doc["process"]["capabilities"]
    return result


def test_cap_add_and_drop(build: Builder) -> None:
    doc = build(cap_add=("sys_admin", "CAP_NET_RAW"), cap_drop=("chown",))
    want = sorted([*DEFAULT_CAPS, "CAP_SYS_ADMIN", "CAP_NET_RAW"])
    want.remove("CAP_CHOWN")
    assert caps(doc) == {"bounding": want, "effective": want, "permitted": want}


def test_cap_drop_all(build: Builder) -> None:
    doc = build(cap_drop=("ALL",), cap_add=("kill",))
    assert caps(doc) == {
        "bounding": ["CAP_KILL"],
        "effective": ["CAP_KILL"],
        "permitted": ["CAP_KILL"],
    }
    assert caps(build(cap_drop=("all",))) == {}  # every set empty (omitted, as Go does)


def test_cap_add_all(build: Builder) -> None:
    want = [c for c in caller_bounding() if c != "CAP_KILL"]
    assert caps(build(cap_add=("ALL",), cap_drop=("kill",)))["bounding"] == want


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"cap_add": ("foo",)}, '"CAP_FOO": unknown capability'),
        ({"cap_drop": ("bar",)}, '"CAP_BAR": unknown capability'),
        (
            {"cap_add": ("all",), "cap_drop": ("ALL",)},
            "adding all caps and removing all caps not allowed",
        ),
        (
            {"cap_add": ("chown",), "cap_drop": ("CHOWN",)},
            'capability "CAP_CHOWN" cannot be dropped and added',
        ),
    ],
)
def test_cap_errors(build: Builder, kw: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=f"^{message}$"):
        build(**kw)


def test_non_root_user_keeps_only_the_bounding_set(build: Builder) -> None:
    assert caps(build(user="user")) == {"bounding": DEFAULT_CAPS}
    doc = build(user="user", cap_add=("net_raw",))
    want = sorted([*DEFAULT_CAPS, "CAP_NET_RAW"])
    assert caps(doc) == {
        "bounding": want, "effective": ["CAP_NET_RAW"], "inheritable": ["CAP_NET_RAW"],
        "permitted": ["CAP_NET_RAW"], "ambient": ["CAP_NET_RAW"],
    }  # fmt: skip


def test_privileged(build: Builder) -> None:
    doc = build(privileged=True, cap_drop=("chown",))  # podman 4.3 ignores --cap-drop here
    everything = caller_bounding()
    assert caps(doc) == {"bounding": everything, "effective": everything, "permitted": everything}
    assert "seccomp" not in doc["linux"]
    assert "maskedPaths" not in doc["linux"] and "readonlyPaths" not in doc["linux"]
    assert doc["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    by = mounts_by_dest(doc)
    assert by["/sys"]["options"] == ["rprivate", "nosuid", "noexec", "nodev", "rw"]
    assert by["/sys/fs/cgroup"]["options"][-1] == "rw"
    paths = [d["path"] for d in doc["linux"]["devices"]]
    assert "/dev/null" in paths and "/dev/console" not in paths
    assert not any(p.startswith(("/dev/pts/", "/dev/shm/", "/dev/fd")) for p in paths)
    null = next(d for d in doc["linux"]["devices"] if d["path"] == "/dev/null")
    assert null == {"path": "/dev/null", "type": "c", "major": 1, "minor": 3,
                    "fileMode": os.stat("/dev/null").st_mode, "uid": 0, "gid": 0}  # fmt: skip
    assert doc["annotations"]["io.podman.annotations.privileged"] == "TRUE"
    assert caps(build(privileged=True, user="user")) == {"bounding": everything}


# --------------------------------------------------------------------------- rlimits


def test_default_rlimits_are_clamped(build: Builder) -> None:
    nofile = min(1048576, hard_limit("RLIMIT_NOFILE"))
    nproc = min(1048576, hard_limit("RLIMIT_NPROC"))
    assert build()["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile},
        {"type": "RLIMIT_NPROC", "hard": nproc, "soft": nproc},
    ]


def test_ulimits(build: Builder) -> None:
    rl = build(ulimits=("nofile=100:200", "core=-1", "stack=8192"))["process"]["rlimits"]
    assert rl[:3] == [
        {"type": "RLIMIT_NOFILE", "hard": 200, "soft": 100},
        {"type": "RLIMIT_CORE", "hard": 2**64 - 1, "soft": 2**64 - 1},
        {"type": "RLIMIT_STACK", "hard": 8192, "soft": 8192},
    ]
    assert [r["type"] for r in rl] == [
        "RLIMIT_NOFILE",
        "RLIMIT_CORE",
        "RLIMIT_STACK",
        "RLIMIT_NPROC",
    ]


def test_ulimit_host(build: Builder) -> None:
    rl = {r["type"]: r for r in build(ulimits=("host",))["process"]["rlimits"]}
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    inf = 2**64 - 1
    assert rl["RLIMIT_STACK"]["soft"] == (inf if soft == resource.RLIM_INFINITY else soft)
    assert rl["RLIMIT_STACK"]["hard"] == (inf if hard == resource.RLIM_INFINITY else hard)


@pytest.mark.skipif(
    bool(read_status()["CapEff"] >> 24 & 1), reason="this process may raise hard limits"
)
def test_ulimit_above_the_hard_limit(build: Builder) -> None:
    hard = hard_limit("RLIMIT_NOFILE")
    with pytest.raises(
        InvalidArgument, match=f"above this process's hard limit for RLIMIT_NOFILE \\({hard}\\)"
    ):
        build(ulimits=(f"nofile={hard + 1}:{hard + 1}",))
    build(ulimits=(f"nofile={hard}:{hard}",))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nofile", "requires name=SOFT:HARD"),
        ("bogus=1:2", "invalid ulimit type: bogus"),
        ("nofile=20:10", "soft limit must be less than or equal to hard limit: 20 > 10"),
        ("stack=lots", "failed to be parsed"),
    ],
)
def test_ulimit_errors(build: Builder, text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        build(ulimits=(text,))


# --------------------------------------------------------------------------- mounts


def test_bind_and_tmpfs_options(build: Builder, tmp_path: Path) -> None:
    vol = str(tmp_path)
    doc = build(
        mounts=(
            MountSpec(type="bind", source=vol, destination="/data", options=("ro", "rshared")),
            MountSpec(
                type="tmpfs",
                source="tmpfs",
                destination="/scratch",
                options=("size=10m", "mode=700"),
            ),  # fmt: skip
            MountSpec(type="bind", source=vol, destination="/b3", options=("rslave",)),
            MountSpec(type="bind", source=vol, destination="/data2", options=("Z",)),
            MountSpec(
                type="tmpfs", source="tmpfs", destination="/t2", options=("notmpcopyup", "noexec")
            ),  # fmt: skip
        )
    )
    by = mounts_by_dest(doc)
    assert by["/data"] == {"destination": "/data", "type": "bind", "source": vol,
                           "options": ["ro", "rshared", "rbind"]}  # fmt: skip
    assert by["/b3"]["options"] == ["rslave", "rw", "rbind"]
    assert by["/data2"]["options"] == ["rw", "rprivate", "rbind"]
    assert by["/scratch"] == {
        "destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
        "options": ["size=10m", "mode=700", "rw", "rprivate", "nosuid", "nodev", "tmpcopyup"],
    }  # fmt: skip
    assert by["/t2"]["options"] == ["noexec", "rw", "rprivate", "nosuid", "nodev"]
    assert doc["linux"]["rootfsPropagation"] == "shared"
    slave = build(mounts=(MountSpec(type="bind", source=vol, destination="/x",
                                    options=("slave",)),))  # fmt: skip
    assert slave["linux"]["rootfsPropagation"] == "rslave"


def test_mounts_are_sorted_by_depth(build: Builder, tmp_path: Path) -> None:
    vol = str(tmp_path)
    doc = build(
        mounts=(
            MountSpec(type="bind", source=vol, destination="/a/b/c"),
            MountSpec(type="bind", source=vol, destination="/a"),
            MountSpec(type="bind", source=vol, destination="/a/b"),
        )
    )
    depths = [m["destination"].rstrip("/").count("/") for m in doc["mounts"]]
    assert depths == sorted(depths)
    dests = [m["destination"] for m in doc["mounts"]]
    assert dests.index("/a") < dests.index("/a/b") < dests.index("/a/b/c")


def test_user_mount_replaces_a_default_one(build: Builder, tmp_path: Path, userdata: Path) -> None:
    hosts = tmp_path / "myhosts"
    hosts.write_text("1.2.3.4 x\n")
    doc = build(
        mounts=(
            MountSpec(type="tmpfs", source="tmpfs", destination="/dev/shm", options=("size=1m",)),
            MountSpec(type="bind", source=str(hosts), destination="/etc/hosts"),
        )
    )
    dests = [m["destination"] for m in doc["mounts"]]
    assert dests.count("/dev/shm") == 1 and dests.count("/etc/hosts") == 1
    by = mounts_by_dest(doc)
    assert by["/dev/shm"]["options"][0] == "size=1m"
    assert by["/etc/hosts"]["source"] == str(hosts)
    assert not (userdata / "hosts").exists()


@pytest.mark.parametrize(
    ("mounts", "error", "message"),
    [
        (
            (MountSpec(type="bind", source="/", destination="x"),),
            InvalidArgument,
            "must be an absolute path",
        ),
        (
            (
                MountSpec(type="bind", source="/", destination="/x"),
                MountSpec(type="tmpfs", source="tmpfs", destination="/x/"),
            ),
            InvalidArgument,
            "'/x': duplicate mount destination",
        ),  # fmt: skip
        (
            (MountSpec(type="bind", source="/no/such/dir", destination="/x"),),
            InvalidArgument,
            "^statfs /no/such/dir: no such file or directory$",
        ),  # fmt: skip
        (
            (MountSpec(type="bind", source="", destination="/x", volume="v"),),
            InvalidArgument,
            "volume v: no host path",
        ),  # fmt: skip
        (
            (MountSpec(type="image", source="/", destination="/x"),),
            NotSupported,
            "mount type 'image'",
        ),
        (
            (MountSpec(type="bind", source="/", destination="/x", options=("O",)),),
            NotSupported,
            "volume option 'O' is not supported yet",
        ),  # fmt: skip
    ],
)
def test_mount_errors(
    build: Builder, mounts: tuple[MountSpec, ...], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        build(mounts=mounts)


def test_read_only(build: Builder) -> None:
    doc = build(read_only=True)
    assert doc["root"]["readonly"] is True
    by = mounts_by_dest(doc)
    for dest in ("/tmp", "/var/tmp", "/run"):
        assert by[dest] == {
            "destination": dest,
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["rw", "rprivate", "nosuid", "nodev", "tmpcopyup"],
        }
    for dest in ("/etc/hosts", "/etc/hostname", "/run/.containerenv"):
        assert by[dest]["options"] == ["bind", "rprivate", "ro", "nosuid", "noexec", "nodev"]
    assert "ro" not in by["/dev/shm"]["options"]
    plain = build(read_only=True, read_only_tmpfs=False)
    assert not {"/tmp", "/var/tmp", "/run"} & set(mounts_by_dest(plain))


def test_shm_size(build: Builder) -> None:
    assert (
        mounts_by_dest(build(shm_size=10 * 1024 * 1024))["/dev/shm"]["options"][-1]
        == "size=10485760"
    )


def test_ipc_host_binds_the_hosts_shm(build: Builder) -> None:
    doc = build(ipc="host")
    assert mounts_by_dest(doc)["/dev/shm"] == {
        "destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
        "options": ["bind", "rprivate", "nosuid", "noexec", "nodev"],
    }  # fmt: skip
    assert {"type": "ipc"} not in doc["linux"]["namespaces"]


def test_ipc_none_has_no_shm(build: Builder) -> None:
    doc = build(ipc="none")
    assert "/dev/shm" not in mounts_by_dest(doc)
    assert {"type": "ipc"} in doc["linux"]["namespaces"]


@pytest.mark.skipif(
    not os.path.isfile("/usr/share/zoneinfo/Europe/Paris"), reason="no tzdata (Europe/Paris)"
)
def test_tz(build: Builder, userdata: Path) -> None:
    doc = build(tz="Europe/Paris")
    assert mounts_by_dest(doc)["/etc/localtime"] == {
        "destination": "/etc/localtime", "type": "bind", "source": str(userdata / "localtime"),
        "options": ["bind", "rprivate"],
    }  # fmt: skip
    assert (userdata / "localtime").read_bytes() == Path(
        "/usr/share/zoneinfo/Europe/Paris"
    ).read_bytes()
    with pytest.raises(InvalidArgument, match="stat /usr/share/zoneinfo/Foo/Bar: no such file"):
        build(tz="Foo/Bar")
    with pytest.raises(InvalidArgument, match="not a time zone name"):
        build(tz="../../../etc/passwd")


def test_init(build: Builder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    init = tmp_path / "catatonit"
    init.write_text("#!/bin/sh\n")
    init.chmod(0o755)
    monkeypatch.setattr(spec_mod, "INIT_BINARIES", ("/no/such/init", str(init)))
    doc = build(init=True, command=("ps",))
    assert doc["process"]["args"] == ["/run/pypod-init", "--", "ps"]
    assert mounts_by_dest(doc)["/run/pypod-init"] == {
        "destination": "/run/pypod-init", "type": "bind", "source": str(init),
        "options": ["bind", "ro", "rprivate"],
    }  # fmt: skip
    assert doc["annotations"]["io.podman.annotations.init"] == "TRUE"
    monkeypatch.setattr(spec_mod, "INIT_BINARIES", ("/no/such/init",))
    with pytest.raises(NotSupported, match="--init is not supported yet on this host.*catatonit"):
        build(init=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_bind_mount_chown(build: Builder, tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    (vol / "sub").mkdir(parents=True)
    (vol / "sub/f").write_text("x")
    (vol / "link").symlink_to("/etc/passwd")
    before = os.lstat("/etc/passwd")
    doc = build(user="user", mounts=(MountSpec(type="bind", source=str(vol), destination="/v",
                                                chown=True),))  # fmt: skip
    for p in (vol, vol / "sub", vol / "sub/f", vol / "link"):
        st = os.lstat(p)
        assert (st.st_uid, st.st_gid) == (1000, 1000), p
    after = os.lstat("/etc/passwd")
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)  # link not followed
    assert mounts_by_dest(doc)["/v"]["options"] == ["rw", "rprivate", "rbind"]
    tmpfs = build(user="user", mounts=(MountSpec(type="tmpfs", source="tmpfs", destination="/t",
                                                  options=("U",)),))  # fmt: skip
    assert mounts_by_dest(tmpfs)["/t"]["options"][:2] == ["uid=1000", "gid=1000"]


def test_nothing_is_chowned_when_the_spec_is_refused(build: Builder, tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    before = os.stat(vol)
    with pytest.raises(InvalidArgument):
        mount = MountSpec(type="bind", source=str(vol), destination="/v", chown=True)
        build(user="user", cap_add=("nosuch",), mounts=(mount,))
    after = os.stat(vol)
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)


# --------------------------------------------------------------------------- namespaces, hostname


def test_host_namespaces(build: Builder) -> None:
    doc = build(network="host", uts="host", ipc="host", pid="host")
    assert doc["linux"]["namespaces"] == [{"type": "mount"}]
    assert "hostname" not in doc
    assert f"HOSTNAME={os.uname().nodename}" in doc["process"]["env"]


def test_joined_namespaces(build: Builder) -> None:
    doc = build(uts="path:/proc/1/ns/uts", ipc="ns:/proc/1/ns/ipc", pid="path:/proc/1/ns/pid")
    assert doc["linux"]["namespaces"] == [
        {"type": "pid", "path": "/proc/1/ns/pid"}, {"type": "network"},
        {"type": "ipc", "path": "/proc/1/ns/ipc"}, {"type": "uts", "path": "/proc/1/ns/uts"},
        {"type": "mount"},
    ]  # fmt: skip
    assert "hostname" not in doc  # cannot be set in another container's UTS namespace


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"pid": "container:abc"}, "must be resolved to its namespace"),
        ({"ipc": "bogus"}, "invalid namespace mode"),
        ({"uts": "path:relative"}, "must be absolute"),
        (
            {"uts": "host", "hostname": "x"},
            "cannot set hostname when running in the host UTS namespace",
        ),
    ],
)
def test_namespace_errors(build: Builder, kw: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        build(**kw)


def test_hostname_flag(build: Builder) -> None:
    doc = build(hostname="myhost")
    assert doc["hostname"] == "myhost"
    assert "HOSTNAME=myhost" in doc["process"]["env"]


# --------------------------------------------------------------------------- resources, devices


def test_resources(build: Builder) -> None:
    res = Resources(memory=512 << 20, memory_swap=1 << 30, memory_reservation=256 << 20,
                    cpus=1.5, cpu_shares=512, cpuset_cpus="0", pids_limit=100)  # fmt: skip
    assert build(resources=res)["linux"]["resources"] == {
        "devices": [{"allow": False, "access": "rwm"}],
        "memory": {"limit": 536870912, "reservation": 268435456, "swap": 1073741824},
        "cpu": {"shares": 512, "quota": 150000, "period": 100000, "cpus": "0"},
        "pids": {"limit": 100},
    }


@pytest.mark.skipif(
    not os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
    and not os.path.exists("/sys/fs/cgroup/cgroup.controllers"),
    reason="no swap accounting here",
)
def test_memory_swap_defaults_to_twice_the_memory(build: Builder) -> None:
    res = build(resources=Resources(memory=512 << 20, pids_limit=-1))["linux"]["resources"]
    assert res["memory"] == {"limit": 536870912, "swap": 1073741824}
    assert res["pids"] == {"limit": 0}
    unlimited = build(resources=Resources(memory=512 << 20, memory_swap=-1))["linux"]["resources"]
    assert unlimited["memory"] == {"limit": 536870912, "swap": -1}


def test_cpus_truncate_like_go(build: Builder) -> None:
    cpu = build(resources=Resources(cpus=0.29))["linux"]["resources"]["cpu"]
    assert cpu == {"quota": 28999, "period": 100000}  # int64(0.29 * 100000) in Go


@pytest.mark.parametrize(
    ("res", "message"),
    [
        (
            Resources(memory_swap=1 << 30),
            "you should always set a memory limit when using a memoryswap limit",
        ),
        (
            Resources(memory=1 << 30, memory_swap=1 << 20),
            "minimum memoryswap limit should be larger than memory limit",
        ),
        (
            Resources(memory=1 << 20, memory_reservation=1 << 30),
            "minimum memory limit can not be less than memory reservation limit",
        ),
    ],
)
def test_resource_errors(build: Builder, res: Resources, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        build(resources=res)


def test_cgroups_path(build: Builder) -> None:
    assert build(cgroup_parent="/mine/")["linux"]["cgroupsPath"] == f"/mine/pypod-{CID}"
    with pytest.raises(InvalidArgument, match="systemd slice received as cgroup parent"):
        build(cgroup_parent="machine.slice")


def test_devices(build: Builder) -> None:
    doc = build(devices=("/dev/null:/dev/mynull:rw", "/dev/zero", "/dev/full:r"))
    null, zero = os.stat("/dev/null"), os.stat("/dev/zero")
    assert doc["linux"]["devices"][:2] == [
        {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": null.st_mode,
         "uid": null.st_uid, "gid": null.st_gid},
        {"path": "/dev/zero", "type": "c", "major": 1, "minor": 5, "fileMode": zero.st_mode,
         "uid": zero.st_uid, "gid": zero.st_gid},
    ]  # fmt: skip
    assert doc["linux"]["devices"][2]["path"] == "/dev/full"
    assert doc["linux"]["resources"]["devices"] == [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
        {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "r"},
    ]


def test_device_directory(build: Builder, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mknod needs root")
    d = tmp_path / "devs"
    (d / "sub").mkdir(parents=True)
    os.mknod(d / "sub/n", 0o600 | 0o020000, os.makedev(1, 3))
    (d / "plain").write_text("")
    doc = build(devices=(f"{d}:/dev/mine",))
    assert [x["path"] for x in doc["linux"]["devices"]] == ["/dev/mine/sub/n"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/dev/null:/dev/n:rwx", "^invalid device mode: rwx$"),
        ("/dev/null:relative", "^invalid device mode: relative$"),
        ("/dev/nosuch", "^stat /dev/nosuch: no such file or directory$"),
        ("/etc/hostname", "^/etc/hostname is not a valid device: not a device node$"),
        ("a:b:c:d", "invalid device specification"),
    ],
)
def test_device_errors(build: Builder, text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        build(devices=(text,))


# --------------------------------------------------------------------------- masks, sysctls, misc


def test_mask_and_unmask(build: Builder) -> None:
    linux = build(mask=("/proc/cpuinfo", "/sys/kernel"), unmask=("/proc/kcore", "/proc/sys"))[
        "linux"
    ]
    assert linux["maskedPaths"] == [p for p in MASKED if p != "/proc/kcore"] + [
        "/proc/cpuinfo",
        "/sys/kernel",
    ]
    assert linux["readonlyPaths"] == [p for p in READONLY if p != "/proc/sys"]
    everything = build(unmask=("ALL",))["linux"]
    assert "maskedPaths" not in everything and "readonlyPaths" not in everything
    globbed = build(unmask=("/proc/*",))["linux"]
    assert globbed["maskedPaths"] == ["/sys/firmware", "/sys/fs/selinux", "/sys/dev/block"]
    assert "readonlyPaths" not in globbed
    assert build(unmask=("/sys/*",))["linux"]["maskedPaths"] == [
        p for p in MASKED if p not in ("/sys/firmware",)
    ]  # `*` does not cross "/": /sys/fs/selinux and /sys/dev/block stay


def test_sysctls(build: Builder) -> None:
    sysctl = build(sysctls={"net.ipv4.ip_forward": "1", "kernel.msgmax": "65536"})["linux"][
        "sysctl"
    ]
    assert sysctl == {"kernel.msgmax": "65536", "net.ipv4.ip_forward": "1",
                      "net.ipv4.ping_group_range": "0 0"}  # fmt: skip
    assert build(sysctls={"net.ipv4.ping_group_range": "1 1"})["linux"]["sysctl"] == {
        "net.ipv4.ping_group_range": "1 1"
    }


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"network": "host", "sysctls": {"net.ipv4.ip_forward": "1"}},
         "sysctl net.ipv4.ip_forward=1 can't be set since Network Namespace set to host"),
        ({"ipc": "host", "sysctls": {"fs.mqueue.msg_max": "10"}},
         "sysctl fs.mqueue.msg_max=10 can't be set since IPC Namespace set to host"),
        ({"uts": "host", "sysctls": {"kernel.hostname": "x"}},
         "sysctl kernel.hostname=x can't be set since UTS Namespace set to host"),
    ],
)  # fmt: skip
def test_sysctl_errors(build: Builder, kw: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        build(**kw)


def test_oom_score_and_no_new_privileges(build: Builder) -> None:
    proc = build(oom_score_adj=100, no_new_privileges=True)["process"]
    assert proc["oomScoreAdj"] == 100
    assert proc["noNewPrivileges"] is True


def test_annotations(build: Builder) -> None:
    ann = build(annotations={"foo": "bar"}, remove=True)["annotations"]
    created = ann.pop("io.kubernetes.cri-o.Created")
    assert created.endswith("Z") and len(created) == len("2026-11-25T18:59:09.500011341Z")
    assert ann == {
        "foo": "bar",
        "io.container.manager": "pypod",
        "io.kubernetes.cri-o.TTY": "false",
        "io.podman.annotations.autoremove": "TRUE",
        "io.podman.annotations.init": "FALSE",
        "io.podman.annotations.privileged": "FALSE",
        "io.podman.annotations.publish-all": "FALSE",
        "org.opencontainers.image.stopSignal": "15",
    }


def test_stop_signal_annotation(build: Builder) -> None:
    def stop(image: dict[str, Any], **kw: Any) -> str:
        return str(build(image, **kw)["annotations"]["org.opencontainers.image.stopSignal"])

    assert stop({"StopSignal": "SIGINT"}) == "2"
    assert stop({"StopSignal": "SIGINT"}, stop_signal=9) == "9"
    assert stop({"StopSignal": "RTMIN+3"}) == str(signal.SIGRTMIN + 3)
    with pytest.raises(InvalidArgument, match="StopSignal 'SIGNOPE' is not a valid signal"):
        stop({"StopSignal": "SIGNOPE"})


@pytest.mark.parametrize(
    ("text", "number"),
    [("15", 15), ("TERM", 15), ("sigkill", 9), ("SIGRTMAX-1", int(signal.SIGRTMAX) - 1),
     ("0", None), ("99", None), ("SIGRTMIN+99", None), ("FOO", None), ("", None)],
)  # fmt: skip
def test_parse_signal(text: str, number: int | None) -> None:
    assert parse_signal(text) == number


def _parse_signal_reference(text: str) -> int | None:
    """parse_signal as it was written with `signal.Signals` (before pypod.stdlite)."""
    if text.isdigit():
        number = int(text)
        return number if 0 < number < signal.NSIG else None
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    for base in ("SIGRTMIN", "SIGRTMAX"):
        if name.startswith(base) and name != base:
            offset = name[len(base) :]
            if offset[:1] in "+-" and offset[1:].isdigit():
                number = int(getattr(signal, base)) + int(offset)
                return number if int(signal.SIGRTMIN) <= number <= int(signal.SIGRTMAX) else None
            return None
    sig = getattr(signal.Signals, name, None) if name in signal.Signals.__members__ else None
    return int(sig) if sig is not None else None


def _signal_texts() -> list[str]:
    names = sorted(n for n in dir(signal) if n.startswith(("SIG", "CTRL_")))
    texts = [*names, *(n.lower() for n in names), *(n.removeprefix("SIG") for n in names)]
    texts += [f"{base}{sign}{k}" for base in ("SIGRTMIN", "RTMAX", "rtmin") for sign in "+-"
              for k in (0, 1, 3, 15, 30, 31, 99)]  # fmt: skip
    texts += [str(n) for n in range(-1, 70)] + ["", "SIG", "SIGRTMIN+", "SIGRTMIN+x", "+3"]
    return texts


def test_parse_signal_agrees_with_signal_signals() -> None:
    """The names are looked up in pypod.stdlite's table: the same answers as signal.Signals
    (aliases such as SIGIOT, SIGCLD and SIGPOLL included; SIG_DFL, SIG_BLOCK... refused)."""
    for text in _signal_texts():
        assert parse_signal(text) == _parse_signal_reference(text), text
