"""Usage figures of a container's cgroup, and signalling every process in it.

Stats are shaped like runc's `events --stats` data (libcontainer's types.Stats as JSON):

    {"cpu": {"usage": {"total", "percpu", "kernel", "user"},
             "throttling": {"periods", "throttledPeriods", "throttledTime"}},
     "memory": {"cache", "usage": {"limit", "usage", "max", "failcnt"}, "swap": {...},
                "raw": {memory.stat}},
     "pids": {"current", "limit"}}

All times in nanoseconds, sizes in bytes; a limit of 0 means "no limit" (as in runc).
"""

from __future__ import annotations

import os

from pypod.errors import PypodError
from pypod.linux.cgroups import files
from pypod.log import get_logger
from pypod.stdlite import signal, suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    from pypod.linux.cgroups import FreezerState

    class _Signallable(Protocol):
        def freeze(self) -> None: ...
        def thaw(self) -> None: ...
        def freezer_state(self) -> FreezerState: ...
        def pids(self) -> list[int]: ...


log = get_logger(__name__)

_UNLIMITED_V1 = 0x7FFFFFFFFFFFF000  # what memory.limit_in_bytes shows for "no limit"


def signal_all(manager: _Signallable, sig: int) -> None:
    """Send `sig` to every process, frozen meanwhile so none can fork away (runc's way).

    A cgroup already frozen (a paused container) stays frozen, except for SIGKILL: frozen
    tasks cannot die, so it is thawed.  Without a usable freezer the processes are just
    signalled.
    """
    was_frozen = manager.freezer_state() == "FROZEN"
    froze = False
    if not was_frozen:
        try:
            manager.freeze()
            froze = True
        except PypodError as e:
            log.debug("cgroup: signalling without freezing: %s", e)
    try:
        for pid in manager.pids():
            with suppress(ProcessLookupError):
                os.kill(pid, sig)
    finally:
        if froze or (was_frozen and sig == signal.SIGKILL):
            manager.thaw()


def _limit(value: int | None) -> int:
    if value is None or value >= _UNLIMITED_V1:
        return 0
    return value


def _pids(directory: str | None) -> dict[str, int]:
    if directory is None:
        return {"current": 0, "limit": 0}
    return {
        "current": files.read_int(directory, "pids.current") or 0,
        "limit": files.read_int(directory, "pids.max") or 0,
    }


def v1_stats(paths: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"pids": _pids(paths.get("pids"))}
    cpuacct = paths.get("cpuacct")
    cpu: dict[str, Any] = {"usage": {"total": 0, "percpu": [], "kernel": 0, "user": 0}}
    if cpuacct is not None:
        usage = cpu["usage"]
        usage["total"] = files.read_int(cpuacct, "cpuacct.usage") or 0
        percpu = files.read_optional(cpuacct, "cpuacct.usage_percpu") or ""
        usage["percpu"] = [int(x) for x in percpu.split()]
        ticks = files.read_keyed(cpuacct, "cpuacct.stat")
        hz = os.sysconf("SC_CLK_TCK")
        usage["user"] = ticks.get("user", 0) * 1_000_000_000 // hz
        usage["kernel"] = ticks.get("system", 0) * 1_000_000_000 // hz
    cpu_dir = paths.get("cpu")
    if cpu_dir is not None:
        st = files.read_keyed(cpu_dir, "cpu.stat")
        cpu["throttling"] = {
            "periods": st.get("nr_periods", 0),
            "throttledPeriods": st.get("nr_throttled", 0),
            "throttledTime": st.get("throttled_time", 0),
        }
    out["cpu"] = cpu
    mem = paths.get("memory")
    if mem is not None:
        raw = files.read_keyed(mem, "memory.stat")

        def data(prefix: str) -> dict[str, int]:
            return {
                "limit": _limit(files.read_int(mem, f"{prefix}.limit_in_bytes")),
                "usage": files.read_int(mem, f"{prefix}.usage_in_bytes") or 0,
                "max": files.read_int(mem, f"{prefix}.max_usage_in_bytes") or 0,
                "failcnt": files.read_int(mem, f"{prefix}.failcnt") or 0,
            }

        out["memory"] = {
            "cache": raw.get("cache", 0),
            "usage": data("memory"),
            "swap": data("memory.memsw"),
            "raw": raw,
        }
    return out


def v2_stats(directory: str) -> dict[str, Any]:
    st = files.read_keyed(directory, "cpu.stat")
    out: dict[str, Any] = {
        "pids": _pids(directory),
        "cpu": {
            "usage": {
                "total": st.get("usage_usec", 0) * 1000,
                "percpu": [],
                "kernel": st.get("system_usec", 0) * 1000,
                "user": st.get("user_usec", 0) * 1000,
            },
            "throttling": {
                "periods": st.get("nr_periods", 0),
                "throttledPeriods": st.get("nr_throttled", 0),
                "throttledTime": st.get("throttled_usec", 0) * 1000,
            },
        },
    }
    if files.exists(directory, "memory.current"):
        raw = files.read_keyed(directory, "memory.stat")
        usage = files.read_int(directory, "memory.current") or 0
        limit = files.read_int(directory, "memory.max") or 0
        swap = files.read_int(directory, "memory.swap.current") or 0
        swap_limit = files.read_int(directory, "memory.swap.max")
        events = files.read_keyed(directory, "memory.events")
        out["memory"] = {
            "cache": raw.get("file", 0),
            "usage": {
                "limit": limit,
                "usage": usage,
                "max": files.read_int(directory, "memory.peak") or 0,
                "failcnt": events.get("max", 0),
            },
            # v1 compatible: swap figures include memory
            "swap": {
                "limit": 0 if swap_limit is None or not limit else swap_limit + limit,
                "usage": swap + usage,
                "max": 0,
                "failcnt": 0,
            },
            "raw": raw,
        }
    return out
