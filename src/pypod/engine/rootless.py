"""Rootless pypod: enter the user's namespace (the pause process), and what rootless forbids.

`enter(runroot)` is the first thing a `pypod` command does as a regular user: it joins the
user and mount namespace of the pause process recorded in `<runroot>/pause.pid`, creating it
first when it is missing or dead (under a lock, so concurrent first commands create one).  From
then on the command is uid 0 in that namespace and the rest of pypod runs as for root, with
these differences (each guarded where it matters): no cgroups unless delegated (cgroup v2 with
a writable subtree), so resource limits fail; device nodes are bound from the host instead of
created; networking goes through pasta or slirp4netns (`pypod.network.rootless_net`).
"""

from __future__ import annotations

import fcntl
import os

from pypod.engine.config import asks_for_userns
from pypod.errors import (
    InvalidArgument,
    InvalidState,
    NotSupported,
    PermissionDenied,
    PypodError,
)
from pypod.linux import userns
from pypod.record import record
from pypod.stdlite import suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from pypod.oci.runtime_spec import LinuxNamespace, Mount, Spec

PAUSE_PID = "pause.pid"
PAUSE_LOCK = "pause.lock"
#: set in the environment of commands in the rootless namespace: the user's own ids
ROOTLESS_UID = "_PYPOD_ROOTLESS_UID"
ROOTLESS_GID = "_PYPOD_ROOTLESS_GID"

#: podman's words for resource limits on a cgroup v1 host, rootless
RESOURCE_LIMITS_V1 = "Resource limits are not supported and ignored on cgroups V1 rootless systems"


def is_rootless() -> bool:
    """Whether pypod runs rootless (a user, or uid 0 of the rootless user namespace)."""
    return userns.rootless()


def enter(runroot: str) -> int:
    """Join (creating it if needed) the pause process's user and mount namespace; its pid.

    When the pause process is gone but containers still run (their monitors are in the old
    namespace, with the overlay mounts), that namespace is joined and a new pause process
    made in it, as podman does; otherwise a new namespace is made.
    """
    uid, gid = os.geteuid(), os.getegid()
    os.makedirs(runroot, mode=0o700, exist_ok=True)
    parent = os.path.dirname(os.path.abspath(runroot))
    checked = [runroot, parent] if os.path.basename(parent).startswith("pypod-run-") else [runroot]
    if any(
        os.lstat(path).st_uid != uid or not os.path.isdir(path) or os.path.islink(path)
        for path in checked
    ):
        raise PermissionDenied(
            f"run directory {runroot} is not a directory of this user's (uid {uid}); set "
            "XDG_RUNTIME_DIR or --runroot to one"
        )
    pid = _recorded(runroot)
    joined = False
    if pid is None:
        lock_fd = os.open(
            os.path.join(runroot, PAUSE_LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            pid = _recorded(runroot)  # another command may have made it while we waited
            if pid is None:
                pid = _rejoin(runroot)
                joined = pid is not None
            if pid is None:
                pid = _create(runroot)
        finally:
            os.close(lock_fd)
    if not joined:
        userns.join(pid)
    # what a command (`pypod unshare`, the monitor, hooks) needs to know it is rootless
    os.environ[ROOTLESS_UID] = str(uid)
    os.environ[ROOTLESS_GID] = str(gid)
    return pid


def pause_pid(runroot: str) -> int | None:
    """The live pause process recorded under `runroot`, or None."""
    return _recorded(runroot)


def _recorded(runroot: str) -> int | None:
    try:
        with open(os.path.join(runroot, PAUSE_PID)) as f:
            fields = f.read().split()
        pid, start = int(fields[0]), int(fields[1])
    except (OSError, ValueError, IndexError):
        return None
    if userns.process_start(pid) != start:
        return None  # gone, or the pid now names another process
    return pid


def _rejoin(runroot: str) -> int | None:
    """Join the namespace a live container monitor is in and make a pause process there."""
    import glob

    for pid_file in glob.glob(os.path.join(runroot, "containers", "*", "monitor.pid")):
        try:
            with open(pid_file) as f:
                monitor = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if not userns.joinable(monitor):
            continue
        own = os.readlink("/proc/self/ns/user")
        try:
            userns.join(monitor)
        except PypodError:
            if os.readlink("/proc/self/ns/user") != own:
                raise  # half-joined (user, not mount): no way back
            continue
        return _record(runroot, userns.fork_pause())
    return None


def _record(runroot: str, pid: int) -> int:
    from pypod.atomic import write_atomic

    start = userns.process_start(pid)
    write_atomic(os.path.join(runroot, PAUSE_PID), f"{pid} {start}\n".encode(), mode=0o600)
    return pid


def _create(runroot: str) -> int:
    uid_maps, gid_maps = userns.rootless_maps(os.geteuid(), os.getegid())
    userns.check_can_map(uid_maps)
    return _record(runroot, userns.create_pause(uid_maps, gid_maps))


def cgroups_delegated() -> bool:
    """Whether a rootless container can have cgroups: only on a cgroup v2 host whose
    cgroup of this process is writable (delegated, as systemd does for user sessions)."""
    if not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return False  # cgroup v1 or hybrid: nothing is delegated to a user
    try:
        with open("/proc/self/cgroup") as f:
            line = next((x for x in f if x.startswith("0::")), "")
    except OSError:
        return False
    path = "/sys/fs/cgroup" + line.strip()[3:]
    return os.access(path, os.W_OK)


def check_resources(asked: list[str]) -> None:
    """Fail when resource limits (`asked`: the flags that set them) cannot be applied."""
    if asked and userns.rootless() and not cgroups_delegated():
        raise NotSupported(
            f"{RESOURCE_LIMITS_V1}: {', '.join(asked)} cannot be applied without a "
            "delegated cgroup (cgroup v2 with systemd); run without them or as root"
        )


#: Resources fields -> the flag that sets them (for the error)
_RESOURCE_FLAGS = (
    ("memory", "--memory"),
    ("memory_swap", "--memory-swap"),
    ("memory_reservation", "--memory-reservation"),
    ("cpus", "--cpus"),
    ("cpu_shares", "--cpu-shares"),
    ("cpuset_cpus", "--cpuset-cpus"),
    ("pids_limit", "--pids-limit"),
)


def without_cgroups() -> bool:
    """Whether containers get no cgroup: rootless where none is delegated (cgroup v1)."""
    return userns.rootless() and not cgroups_delegated()


def check_no_resources(resources: object) -> None:
    """Fail when a rootless container without cgroups asks for resource limits."""
    asked = [flag for name, flag in _RESOURCE_FLAGS if getattr(resources, name, None)]
    check_resources(asked)


# --- a user namespace of the container's own: --userns=keep-id, --uidmap, --gidmap -------------
#: podman's words for `--userns pod` outside a pod (and `--ipc/--pid/--uts pod`)
NOT_IN_POD = (
    "cannot use pod namespace as container is not joining a pod or pod has no infra container: "
    "invalid argument"
)
#: `--userns MODE` together with `--uidmap`, `--gidmap` (podman's words)
USERNS_AND_MAPS = "--userns and --uidmap/--gidmap/--subuidname/--subgidname are mutually exclusive"
#: the `userns` a member of a pod with a user namespace has: the infra container's joined
#: (`container:<infra id>`, the maps in uidmap/gidmap; `container:<infra id>:keep-id`)
JOIN_PREFIX = "container:"


@record
class UsernsPlan:
    """The container's id maps (container id -> id of the namespace pypod runs in) and, for
    keep-id, the user the process runs as; `join`: the ID of the container (a pod's infra)
    whose user namespace, made with these maps, the container joins instead of making one."""

    uid_maps: tuple[userns.IDMap, ...]
    gid_maps: tuple[userns.IDMap, ...]
    user: tuple[int, int] | None = None
    join: str = ""


def parse_idmap(text: str, flag: str) -> tuple[userns.IDMap, ...]:
    """`--uidmap CONTAINER_ID:HOST_ID:AMOUNT` (several, comma or repeated flags); HOST_ID is
    an id of the rootless namespace (0 the user, 1.. the subordinate ones), as podman."""
    out = []
    which = "GID" if "gid" in flag else "UID"
    for item in text.split(","):
        parts = item.split(":")
        try:
            ctr, host, size = (int(x) for x in parts)
        except ValueError:
            raise InvalidArgument(
                f"initializing ID mappings: {which} setting is malformed expected "
                f'["uint32:uint32:uint32"]: ["{item}"] ({flag}: use CONTAINER_ID:HOST_ID:AMOUNT)'
            ) from None
        if ctr < 0 or host < 0 or size <= 0:
            raise InvalidArgument(f"invalid {flag} {item!r}: ids >= 0 and an amount > 0")
        out.append(userns.IDMap(container_id=ctr, host_id=host, size=size))
    return tuple(out)


def userns_plan(
    mode: str, uidmap: Sequence[str] = (), gidmap: Sequence[str] = ()
) -> UsernsPlan | None:
    """What `--userns MODE`, `--uidmap` and `--gidmap` ask for; None: the engine's namespace.

    podman 4.3's values: "" and host (none of its own), keep-id and nomap (rootless only),
    private (only with maps, which `--uidmap`/`--gidmap` give without --userns); auto, ns:PATH
    and container:ID are not supported yet; `pod` only in a pod (see pods.Pods.join)."""
    if uidmap or gidmap:
        if mode not in ("",):
            raise InvalidArgument(USERNS_AND_MAPS)
        uids = tuple(m for text in uidmap for m in parse_idmap(text, "--uidmap"))
        gids = tuple(m for text in gidmap for m in parse_idmap(text, "--gidmap"))
        return UsernsPlan(uid_maps=uids or gids, gid_maps=gids or uids)  # podman: one for both
    if not asks_for_userns(mode, uidmap, gidmap):
        return None
    if mode == "private":
        raise InvalidArgument(
            "must provide at least one UID or GID mapping to configure a user namespace"
        )
    if mode == "pod":
        raise InvalidArgument(NOT_IN_POD)
    kind = mode.partition(":")[0]
    if kind in ("keep-id", "nomap"):
        if not userns.rootless():
            raise InvalidArgument(f"{kind} is only supported in rootless mode")
        if mode not in ("keep-id", "nomap"):
            raise NotSupported(f"'--userns={mode}' is not supported yet: use --userns={kind}")
        uid = int(os.environ.get(ROOTLESS_UID, os.geteuid()))
        gid = int(os.environ.get(ROOTLESS_GID, os.getegid()))
        uid_size = userns.mapped_size("/proc/self/uid_map")
        gid_size = userns.mapped_size("/proc/self/gid_map")
        if mode == "nomap":
            return UsernsPlan(uid_maps=nomap_maps(uid_size), gid_maps=nomap_maps(gid_size))
        return UsernsPlan(
            uid_maps=keep_id_maps(uid, uid_size),
            gid_maps=keep_id_maps(gid, gid_size),
            user=(uid, gid),
        )
    if kind in ("auto", "ns", "container"):
        raise NotSupported(f"'--userns={mode}' is not supported yet: use keep-id, host or --uidmap")
    raise InvalidArgument(f"unrecognized namespace mode {mode} passed")


def member_userns(infra_id: str, mode: str, uidmap: Sequence[str], gidmap: Sequence[str]
                  ) -> dict[str, Any]:  # fmt: skip
    """The `userns`, `uidmap`, `gidmap` of a member of a pod whose infra container `infra_id`
    was made with (`mode`, `uidmap`, `gidmap`): it joins that namespace, made with those maps
    (its root filesystem remapped with them too); keep-id runs it as the user, as podman does
    (a member inherits the infra container's user)."""
    keep = ":keep-id" if mode == "keep-id" else ":nomap" if mode == "nomap" else ""
    return {"userns": f"{JOIN_PREFIX}{infra_id}{keep}", "uidmap": tuple(uidmap),
            "gidmap": tuple(gidmap)}  # fmt: skip


def config_plan(mode: str, uidmap: Sequence[str] = (), gidmap: Sequence[str] = ()
                ) -> UsernsPlan | None:  # fmt: skip
    """The plan of a stored container config: `userns_plan`, or for a pod's member (see
    `member_userns`) the infra container's plan with `join` set."""
    if not mode.startswith(JOIN_PREFIX):
        return userns_plan(mode, uidmap, gidmap)
    infra, _, inherited = mode[len(JOIN_PREFIX) :].partition(":")
    plan = userns_plan(inherited, (), ()) if inherited else userns_plan("", uidmap, gidmap)
    if plan is None:
        raise InvalidArgument(
            f"--userns={mode}: the user namespace of container {infra} is joined only with "
            "the maps it was made with; this is pypod's own value for a pod's members"
        )
    from pypod.record import replace

    return replace(plan, join=infra)


def keep_id_maps(own: int, size: int) -> tuple[userns.IDMap, ...]:
    """keep-id (podman's): the user's id `own` is itself in the container (namespace id 0),
    container ids below it are the subordinate ids 1..own, the rest above it as they are;
    `size`: how many ids the rootless namespace has."""
    extra = size - 1  # the subordinate ids: namespace ids 1..size-1
    maps = []
    if extra > 0:
        maps.append(userns.IDMap(container_id=0, host_id=1, size=min(own, extra)))
    maps.append(userns.IDMap(container_id=own, host_id=0, size=1))
    if extra > own:
        maps.append(userns.IDMap(container_id=own + 1, host_id=own + 1, size=extra - own))
    return tuple(maps)


def nomap_maps(size: int) -> tuple[userns.IDMap, ...]:
    """nomap (podman's): the container's ids are the subordinate ids 1..size-1 of the rootless
    namespace, from 0 on; the user's own id (namespace id 0) is not in the container."""
    if size <= 1:
        raise InvalidArgument(
            "--userns=nomap needs subordinate ids: add a range for the user to /etc/subuid "
            "and /etc/subgid"
        )
    return (userns.IDMap(container_id=0, host_id=1, size=size - 1),)


def _to_parent(maps: Sequence[userns.IDMap], id_: int) -> int | None:
    for m in maps:
        if m.container_id <= id_ < m.container_id + m.size:
            return m.host_id + id_ - m.container_id
    return None


def _to_parent_inverse(maps: Sequence[userns.IDMap], parent_id: int) -> int | None:
    """The container id that namespace id `parent_id` is in the container, if any."""
    for m in maps:
        if m.host_id <= parent_id < m.host_id + m.size:
            return m.container_id + parent_id - m.host_id
    return None


def _traversable(path: str) -> None:
    """Add search permission (group, others) to `path` and the parents this process owns,
    up to (not including) $HOME or the first directory of another owner."""
    import stat as stat_mod

    home = os.path.realpath(os.environ.get("HOME") or "/")
    current = os.path.realpath(path)
    while current not in ("/", home):
        st = os.stat(current)
        if st.st_uid != os.geteuid():
            break
        search = stat_mod.S_IXGRP | stat_mod.S_IXOTH  # 0711 (the group: the user's own
        if st.st_mode & search != search:  # supplementary group stays until setgroups)
            os.chmod(current, stat_mod.S_IMODE(st.st_mode) | search)
        current = os.path.dirname(current)


def remap_rootfs(rootfs: str, plan: UsernsPlan, marker: str) -> None:
    """Chown the container's root filesystem so that its files keep their owners as the
    container's user namespace sees them (podman stores such a copy of the image: here the
    container's own upper layer holds it).  Done once per container: `marker` records it."""
    import stat as stat_mod

    from pypod.atomic import write_atomic

    key = repr((plan.uid_maps, plan.gid_maps)).encode()
    with suppress(OSError), open(marker, "rb") as f:
        if f.read() == key:
            return
    root_dev = os.lstat(rootfs).st_dev
    for dirpath, dirnames, filenames, dir_fd in os.fwalk(rootfs):
        st_dir = os.fstat(dir_fd)
        if st_dir.st_dev != root_dev:  # a mount below the rootfs: not the container's files
            dirnames[:] = []
            continue
        for name in (*dirnames, *filenames):
            try:
                st = os.lstat(name, dir_fd=dir_fd)
            except FileNotFoundError:
                continue
            uid = _to_parent(plan.uid_maps, st.st_uid)
            gid = _to_parent(plan.gid_maps, st.st_gid)
            new_uid = st.st_uid if uid is None else uid
            new_gid = st.st_gid if gid is None else gid
            if (new_uid, new_gid) == (st.st_uid, st.st_gid):
                continue
            os.chown(name, new_uid, new_gid, dir_fd=dir_fd, follow_symlinks=False)
            special = st.st_mode & (stat_mod.S_ISUID | stat_mod.S_ISGID)
            if special and not stat_mod.S_ISLNK(st.st_mode):  # chown drops them
                os.chmod(name, stat_mod.S_IMODE(st.st_mode), dir_fd=dir_fd)
        st_root = os.fstat(dir_fd)
        uid = _to_parent(plan.uid_maps, st_root.st_uid)
        gid = _to_parent(plan.gid_maps, st_root.st_gid)
        if dirpath == rootfs and (uid, gid) != (None, None):
            os.chown(dir_fd, st_root.st_uid if uid is None else uid,
                     st_root.st_gid if gid is None else gid)  # fmt: skip
    write_atomic(marker, key, mode=0o600)


def with_userns(cfg: object, spec: Spec, userdata: str) -> Spec:
    """`spec` with the user namespace `--userns`/`--uidmap`/`--gidmap` ask for (the rootfs
    chowned to match, once); unchanged without them.  keep-id runs the process as the user
    (unless `--user`), with no effective capabilities, as podman does for a non-root user."""
    from pypod.oci.runtime_spec import LinuxIDMapping, LinuxNamespace
    from pypod.record import replace

    plan = config_plan(
        str(getattr(cfg, "userns", "") or ""),
        tuple(getattr(cfg, "uidmap", ()) or ()),
        tuple(getattr(cfg, "gidmap", ()) or ()),
    )
    if plan is None or spec.linux is None or spec.root is None or spec.process is None:
        return spec
    user_ns = LinuxNamespace(type="user")
    if plan.join:
        user_ns = LinuxNamespace(type="user", path=joined_userns(plan.join, spec.linux.namespaces))
    remap_rootfs(spec.root.path, plan, os.path.join(userdata, "idmapped"))
    sysctl = dict(spec.linux.sysctl)
    if sysctl.get("net.ipv4.ping_group_range") == "0 0":
        # podman's default: the network namespace belongs to the rootless namespace, which the
        # container's cannot write to; without it the default stays (nobody may ping)
        del sysctl["net.ipv4.ping_group_range"]
    if _to_parent_inverse(plan.uid_maps, os.geteuid()) is None:
        # the store's owner is not in the container: let its root reach the rootfs and the
        # files bound from userdata (podman makes its store 0711 for the same reason)
        for path in (os.path.dirname(os.path.realpath(spec.root.path)), userdata):
            _traversable(path)

    def oci(maps: tuple[userns.IDMap, ...]) -> tuple[LinuxIDMapping, ...]:
        return tuple(
            LinuxIDMapping(container_id=m.container_id, host_id=m.host_id, size=m.size)
            for m in maps
        )

    namespaces = tuple(n for n in spec.linux.namespaces if n.type != "user")
    linux = replace(
        spec.linux,
        namespaces=(user_ns, *namespaces),
        sysctl=sysctl,
        uid_mappings=oci(plan.uid_maps),
        gid_mappings=oci(plan.gid_maps),
    )
    process = spec.process
    mounts = spec.mounts
    if plan.user is not None and not getattr(cfg, "user", None):
        caps = process.capabilities
        if caps is not None:
            caps = replace(caps, effective=(), permitted=(), inheritable=(), ambient=())
        home, extra = _keep_id_files(spec.root.path, userdata, plan.user)
        env = (*(e for e in process.env if not e.startswith("HOME=")), f"HOME={home}")
        process = replace(
            process,
            user=replace(process.user, uid=plan.user[0], gid=plan.user[1], additional_gids=()),
            capabilities=caps,
            env=env,
        )
        taken = {m.destination for m in mounts}
        mounts = (*mounts, *(m for m in extra if m.destination not in taken))
    return replace(spec, linux=linux, process=process, mounts=mounts)


def joined_userns(infra: str, namespaces: Sequence[LinuxNamespace]) -> str:
    """The user namespace of the pod's infra container `infra` that a member joins: that of
    the process whose namespaces (`/proc/PID/ns/...`, what the engine resolved the member's
    `container:INFRA` namespaces to) it joins; the pod's namespaces belong to it."""
    import re

    pids = {
        m.group(1)
        for ns in namespaces
        if ns.path and (m := re.fullmatch(r"/proc/(\d+)/ns/[a-z]+", ns.path)) is not None
    }
    if not pids:
        raise NotSupported(
            f"joining the user namespace of the pod's infra container {infra[:12]} is not "
            "supported yet without joining its net, ipc, uts or pid namespace: create the pod "
            "with --share net (the default shares ipc, net, uts)"
        )
    if len(pids) > 1:
        raise InvalidArgument(
            f"a member of a pod with a user namespace joins the namespaces of the pod's infra "
            f"container {infra[:12]} only, not another container's: drop --ipc/--pid/--uts/"
            "--network container:..."
        )
    path = f"/proc/{pids.pop()}/ns/user"
    try:
        own = os.stat("/proc/self/ns/user").st_ino == os.stat(path).st_ino
    except OSError as e:
        raise InvalidState(
            f"cannot join the user namespace of the pod's infra container {infra[:12]}: "
            f"{e.strerror}: is it running?"
        ) from None
    if own:
        raise InvalidState(
            f"the pod's infra container {infra[:12]} has no user namespace of its own (it "
            "was started without one): recreate the pod"
        )
    return path


def _keep_id_files(rootfs: str, userdata: str, user: tuple[int, int]) -> tuple[str, list[Mount]]:
    """keep-id: the user in the container's /etc/passwd and /etc/group (podman adds them when
    the image has no entry for that uid/gid); (its home, the bind mounts of the new files)."""
    import pwd

    from pypod.atomic import write_atomic
    from pypod.oci.runtime_spec import Mount

    uid, gid = user
    try:
        entry = pwd.getpwuid(uid)
        name, home = entry.pw_name, entry.pw_dir
    except KeyError:
        name, home = f"user{uid}", "/"
    out: list[Mount] = []
    for filename, wanted, line in (
        ("passwd", uid, f"{name}:*:{uid}:{gid}:{name}:{home}:/bin/sh\n"),
        ("group", gid, f"{name}:x:{gid}:{name}\n"),
    ):
        try:
            with open(os.path.join(rootfs, "etc", filename), encoding="utf-8") as f:
                text = f.read()
        except OSError:
            continue  # no such file in the image (or a symlink out of it): left alone
        ids = {
            fields[2] for fields in (ln.split(":") for ln in text.splitlines()) if len(fields) > 2
        }
        if str(wanted) in ids:
            continue
        path = os.path.join(userdata, f"keep-id-{filename}")
        write_atomic(path, (text if text.endswith("\n") or not text else text + "\n").encode()
                     + line.encode(), mode=0o644)  # fmt: skip
        out.append(Mount(destination=f"/etc/{filename}", type="bind", source=path,
                         options=("rbind", "ro", "nosuid", "nodev")))  # fmt: skip
    return home, out
