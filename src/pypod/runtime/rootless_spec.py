"""A spec for a runtime running rootless: inside a user namespace that is not the host's.

A rootless `pypod` (or `pypod build`) enters the user's namespace first (the pause process,
:mod:`pypod.engine.rootless`); there it is uid 0, but the kernel still refuses what only the
host's root may do.  The runtime copes with most of it by itself, as runc does: device nodes
are bound instead of made, sysfs and mqueue are bound from the host where they cannot be
mounted, a cgroup that cannot be made is skipped when the spec names none.  :func:`adapt`
does the rest on a spec (a dict, as written to config.json), as podman and buildah do:

* no `cgroupsPath` and no resources: the runtime makes a cgroup only where the user may (a
  delegated cgroup v2 subtree) and runs the container without one otherwise (cgroup v1);
* /proc bound from the host when the container shares the host's pid namespace (chroot
  isolation, `--pid host`): only the owner of a pid namespace may mount its proc;
* no /dev/mqueue when the container shares the host's ipc namespace and the host has none
  mounted (the runtime would bind the host's, as runc);
* /dev/pts without `gid=5` when group 5 (tty) is not mapped (a single-id mapping).
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["adapt", "is_rootless"]

_PROC_BIND = ["rbind", "nosuid", "noexec", "nodev"]


def is_rootless() -> bool:
    """Whether this process runs without the host's root (as a user, or in a user namespace)."""
    from pypod.linux import userns

    return userns.rootless()


def adapt(spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` (changed in place and returned) for a rootless runtime; see the module's text."""
    from pypod.linux import userns

    linux = spec.setdefault("linux", {})
    linux.pop("cgroupsPath", None)
    linux.pop("resources", None)
    own = {ns["type"] for ns in linux.get("namespaces", ()) if not ns.get("path")}
    mounts = list(spec.get("mounts", ()))
    if "ipc" not in own and not os.path.ismount("/dev/mqueue"):
        mounts = [m for m in mounts if m["destination"] != "/dev/mqueue"]
    if "pid" not in own:
        mounts = [
            {"destination": "/proc", "type": "bind", "source": "/proc", "options": _PROC_BIND}
            if m["destination"] == "/proc"
            else m
            for m in mounts
        ]
    spec["mounts"] = mounts
    if not userns.is_mapped(5):
        for mount in spec.get("mounts", ()):
            if mount.get("type") == "devpts":
                mount["options"] = [o for o in mount.get("options", ()) if o != "gid=5"]
    return spec
