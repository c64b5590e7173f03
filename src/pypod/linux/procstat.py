"""A process's start time and state from /proc/<pid>/stat (standard library only: the engine's
commands and the runtime both ask, and neither should import the other's modules for it)."""

from __future__ import annotations


def proc_start_time(pid: int) -> tuple[int, str] | None:
    """(start time in clock ticks, state letter) of `pid` from /proc/<pid>/stat, None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode()
    except OSError:
        return None
    rest = raw[raw.rindex(")") + 2 :].split()
    return int(rest[19]), rest[0]
