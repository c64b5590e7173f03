"""Where a container's cgroup lives: mount discovery and cgroupsPath resolution, as runc does.

- The OCI `linux.cgroupsPath` is cleaned first (runc's CleanPath: ".." cannot climb out).
- An empty cgroupsPath means the relative path `<container-id>` (runc sets Name = id).
- v1: an absolute path is taken below the mount point of each controller's hierarchy
  (`/sys/fs/cgroup/memory` + `/foo`); a relative one below the cgroup the current process is
  in for that controller (`/proc/self/cgroup`, made relative to the mount's root).
- v2: an absolute path is taken below the cgroup2 mount; a relative one below the *parent* of
  the current process's cgroup (the process's own cgroup usually holds processes, which would
  forbid enabling controllers for a child).
- hybrid: the v1 rules above for every v1 controller plus the same rule for the cgroup2
  hierarchy, whose directory is created too (as runc joins "" in hybrid mode).
"""

from __future__ import annotations

import posixpath

from pypod.errors import InvalidArgument, NotSupported
from pypod.linux.mounts import unescape_mountinfo
from pypod.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

#: The key of the cgroup2 directory among a hybrid manager's paths.
UNIFIED = "unified"
#: v1 hierarchies that are not resource controllers but are still joined (like runc).
NAMED_HIERARCHIES = ("name=systemd",)


@record(kw_only=False)
class CgroupMount:
    """One cgroup filesystem mount from /proc/self/mountinfo."""

    mountpoint: str
    root: str  # the cgroup the mount shows as its top ("/" unless in a cgroup namespace)
    version: int  # 1 or 2
    controllers: tuple[str, ...]  # v1: "cpu", "cpuacct", "name=systemd"...; v2: ()


def parse_mountinfo(text: str) -> list[CgroupMount]:
    """The cgroup and cgroup2 mounts listed in a mountinfo text, in order."""
    mounts: list[CgroupMount] = []
    for line in text.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 10:
            continue
        sep = fields.index("-")
        fstype = fields[sep + 1]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        root, mountpoint = unescape_mountinfo(fields[3]), unescape_mountinfo(fields[4])
        if fstype == "cgroup2":
            mounts.append(CgroupMount(mountpoint, root, 2, ()))
            continue
        opts = fields[sep + 3].split(",") if len(fields) > sep + 3 else []
        controllers = tuple(o for o in opts if o not in _MOUNT_OPTIONS and "=" not in o)
        named = tuple(o for o in opts if o.startswith("name="))
        mounts.append(CgroupMount(mountpoint, root, 1, controllers + named))
    return mounts


# super-block options of a v1 cgroup mount that are not controller names
_MOUNT_OPTIONS = frozenset(
    {"rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec", "xattr", "noprefix"}
    | {"clone_children", "cpuset_v2_mode", "favordynmods", "all", "none"}
)


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/<pid>/cgroup -> {controller: path}; the cgroup2 line ("0::/x") under "" ."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            out[""] = path
            continue
        for c in controllers.split(","):
            out[c] = path
    return out


def clean_path(path: str) -> str:
    """runc's CleanPath: normalise, and keep a relative path from climbing above its base."""
    if not path:
        return ""
    cleaned = posixpath.normpath(path)
    if not cleaned.startswith("/"):
        cleaned = posixpath.relpath(posixpath.normpath("/" + cleaned), "/")
    elif cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


def inner_path(cgroups_path: str, container_id: str) -> str:
    """The cleaned path below the hierarchy (absolute) or the own cgroup (relative)."""
    inner = clean_path(cgroups_path) or clean_path(container_id)
    if inner in ("", ".", "/"):
        raise InvalidArgument(
            f'cgroup: cgroupsPath "{cgroups_path}" would put the container in the root '
            "cgroup; give a path below it"
        )
    return inner


def _below(mountpoint: str, mount_root: str, cgroup: str) -> str:
    """The directory of `cgroup` (as in /proc/self/cgroup) below a mount showing `mount_root`."""
    rel = posixpath.relpath(cgroup, mount_root) if mount_root != "/" else cgroup.lstrip("/")
    if rel == "." or rel.startswith(".."):
        rel = ""  # our cgroup is outside what the mount shows (cgroup namespace): use its top
    return posixpath.join(mountpoint, rel) if rel else mountpoint


def v1_paths(mounts: list[CgroupMount], own: Mapping[str, str], inner: str) -> dict[str, str]:
    """{controller: directory} for every mounted v1 controller, plus the cgroup2 directory
    under UNIFIED when a cgroup2 hierarchy is mounted too (hybrid mode)."""
    paths: dict[str, str] = {}
    for m in mounts:
        if m.version != 1:
            continue
        for controller in m.controllers:
            if controller.startswith("name=") and controller not in NAMED_HIERARCHIES:
                continue
            if controller in paths:
                continue  # a hierarchy mounted twice: the first mount wins
            paths[controller] = _join(m, own.get(controller), inner)
    if "devices" not in paths:
        # runc: without the devices controller a container would see every host device
        raise NotSupported(
            "cgroup: the v1 devices controller is not mounted; refusing to create a "
            "container cgroup without device control"
        )
    unified = next((m for m in mounts if m.version == 2), None)
    if unified is not None:
        paths[UNIFIED] = _join(unified, own.get(""), inner)
    return paths


def _join(m: CgroupMount, own_cgroup: str | None, inner: str) -> str:
    if inner.startswith("/"):
        return m.mountpoint + inner
    base = _below(m.mountpoint, m.root, own_cgroup or "/")
    return posixpath.join(base, inner)


def v2_path(root: str, own_cgroup: str, inner: str) -> str:
    """The container's directory in a unified hierarchy mounted at `root`."""
    if inner.startswith("/"):
        return root.rstrip("/") + inner
    parent = posixpath.dirname(own_cgroup) if own_cgroup else "/"
    return posixpath.join(root, parent.lstrip("/"), inner)


def mountpoints(mounts: list[CgroupMount]) -> frozenset[str]:
    return frozenset(m.mountpoint for m in mounts)
