"""`run/create --cgroups=split`, as podman 4.3 does it with the cgroupfs manager.

The cgroup the starting `pypod` process is in (systemd's: the unit's own cgroup) is split in
two: the monitor goes to `<own>/runtime` (pypod moves itself there before it forks the
monitor, which inherits it: where podman 4.3 moves itself, and conmon with it) and the
container's cgroup is made below `<own>` (its cgroup parent).  Unlike podman, which moves
every process of the own cgroup (in each hierarchy where it is not the root) to `runtime`,
pypod moves only itself, and only in the hierarchy the own cgroup was read from.  The own
cgroup is read as libpod reads it: the cgroup2 line ("0::/x") of /proc/self/cgroup if there
is one, otherwise the longest path; the root cgroup ("/") cannot be
split — podman's error then is `could not find cgroup mount in "/proc/self/cgroup"` (a process
started outside any service, as on a host without systemd).
"""

from __future__ import annotations

import os

from pypod.errors import CannotInvoke, NotSupported

__all__ = ["RUNTIME", "own_cgroup", "split_cgroup"]

#: the sub-cgroup of the own cgroup pypod and the monitor go to (podman's name)
RUNTIME = "runtime"
_PROC_CGROUP = "/proc/self/cgroup"


def own_cgroup(text: str) -> tuple[str, str]:
    """(hierarchy, path) of the own cgroup in a /proc/<pid>/cgroup text, libpod's way:
    hierarchy "" is cgroup2's, otherwise the v1 line's controllers.  CannotInvoke for "/"."""
    found, hierarchy = "", ""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if line.startswith("0::"):
            found, hierarchy = parts[2], ""
            break
        if len(parts[2]) > len(found):
            found, hierarchy = parts[2], parts[1]
    if not found or found == "/":
        raise CannotInvoke(f'could not find cgroup mount in "{_PROC_CGROUP}"')
    return hierarchy, found


def split_cgroup() -> str:
    """Move this process to `<own>/runtime`; the cgroup parent of the container (`<own>`)."""
    from pypod.linux.cgroups import files
    from pypod.linux.cgroups.paths import parse_mountinfo

    with open(_PROC_CGROUP, encoding="utf-8") as f:
        hierarchy, own = own_cgroup(f.read())
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        mounts = parse_mountinfo(f.read())
    wanted = set(hierarchy.split(",")) if hierarchy else set()
    for m in mounts:
        if (m.version == 2 and not hierarchy) or (m.version == 1 and wanted == set(m.controllers)):
            inside = os.path.relpath(own, m.root) if m.root != "/" else own.lstrip("/")
            directory = os.path.join(m.mountpoint, inside, RUNTIME)
            os.makedirs(directory, exist_ok=True)
            files.add_proc(directory, os.getpid())
            return own
    raise NotSupported(
        f"'--cgroups=split' is not supported yet here: the hierarchy of {own} "
        "(/proc/self/cgroup) is not mounted"
    )
