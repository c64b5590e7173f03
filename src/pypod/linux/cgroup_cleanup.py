"""Removing a stopped container's cgroup directories without the cgroup manager.

`delete` of a container that has stopped (`run --rm`, `rm`) normally finds its cgroups empty:
the directories listed in the manager's saved state (pypod.linux.cgroups, `to_state()`) only
need an rmdir each.  Importing the manager's modules and freezing, listing and signalling an
empty cgroup first costs ~1.5 ms of the caller's time; this module needs nothing but `os`.

rmdir(2) of a cgroup directory fails (EBUSY) while the cgroup holds a process or a child
cgroup, so a directory is never removed from under a process.  When one cannot be removed,
`remove_empty` stops and says so; the caller then does what it always did (the manager's
kill_all and destroy, with retries), and the directory the manager lists processes from
(devices, else freezer: see V1Manager.pids) is still there for it, because it comes last.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

#: the saved-state version this module understands (pypod.linux.cgroups.STATE_VERSION)
_STATE_VERSION = 1
#: removed last, in this order: where the v1 manager looks for processes
_LAST = ("freezer", "devices")


def remove_empty(state: Mapping[str, Any]) -> bool:
    """rmdir each directory of the saved cgroup state; True when none is left.

    False as soon as one cannot be removed (it holds processes or child cgroups, is still busy
    with an exiting process, or permission is denied) or when the state is not one this module
    reads: the caller then removes the rest with the cgroup manager.
    """
    paths = state.get("paths") if isinstance(state, dict) else None
    if state.get("version") != _STATE_VERSION or not isinstance(paths, dict):
        return False
    ordered = [str(p) for c, p in paths.items() if c not in _LAST]
    ordered += [str(paths[c]) for c in _LAST if c in paths]
    for path in dict.fromkeys(ordered):  # co-mounted controllers share a directory
        if not os.path.isabs(path):
            return False
        try:
            os.rmdir(path)
        except FileNotFoundError:
            continue
        except OSError:
            return False
    return True
