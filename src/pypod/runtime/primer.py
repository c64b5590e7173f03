"""Start the first cgroup migration's wait early: see pypod.linux.cgroups.primer.

The runtime's commands that create processes (create, run, exec) call `start` before their
heavy imports and `reap` when done; this module imports nothing else, so calling it costs only
a fork.
"""

from __future__ import annotations

from pypod.linux.cgroups.primer import reap, start

__all__ = ["reap", "start"]
