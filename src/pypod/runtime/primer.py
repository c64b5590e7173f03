"""Start the first cgroup migration's wait early: see pypod.linux.cgroups.primer.

The runtime's commands that create processes (create, run, exec) call `start` before their
heavy imports and `reap` when done; this module imports nothing else, so calling it costs only
a fork (as root, not even that).
"""

from __future__ import annotations

import os


def start() -> int:
    """pypod.linux.cgroups.primer.start: the primer's pid, 0 for none.  As root there is
    none (see there), and that module (and its package) are not even imported for it."""
    if os.geteuid() == 0:
        return 0
    from pypod.linux.cgroups import primer

    return primer.start()


def reap(pid: int) -> None:
    if pid:
        from pypod.linux.cgroups import primer

        primer.reap(pid)
