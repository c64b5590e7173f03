"""What runs in a container and what it uses: `pypod top` rows and `pypod stats` figures.

Both start from the container's init pid: its cgroups (from /proc/PID/cgroup and the cgroup
mounts) give the pid list and the resource counters, so they work whatever OCI runtime
created the container.
"""

from __future__ import annotations

import os
import time
from typing import Any

from pypod.engine.containers import Engine
from pypod.engine.state import Container
from pypod.errors import InvalidArgument, InvalidState
from pypod.record import record

#: `ps` descriptors podman's top knows, and their column titles
DESCRIPTORS = {
    "user": "USER", "pid": "PID", "ppid": "PPID", "pcpu": "%CPU", "etime": "ELAPSED",
    "tty": "TTY", "time": "TIME", "args": "COMMAND", "comm": "COMMAND", "group": "GROUP",
    "nice": "NI", "rgroup": "RGROUP", "ruser": "RUSER", "vsz": "VSZ", "rss": "RSS",
    "stime": "STIME", "state": "STATE", "uid": "UID", "gid": "GID",
}  # fmt: skip
DEFAULT_DESCRIPTORS = ("user", "pid", "ppid", "pcpu", "etime", "tty", "time", "args")


def cgroup_paths(pid: int) -> dict[str, str]:
    """controller -> directory of `pid`'s cgroups (v1 controllers, or "" for a v2 unified one)."""
    from pypod.linux.cgroups.paths import parse_mountinfo, parse_proc_cgroup

    try:
        with open(f"/proc/{pid}/cgroup") as f:
            own = parse_proc_cgroup(f.read())
        with open("/proc/self/mountinfo") as f:
            mounts = parse_mountinfo(f.read())
    except OSError:
        return {}
    out: dict[str, str] = {}
    for m in mounts:
        for controller in m.controllers or ("",):
            path = own.get(controller)
            if path is None or controller in out:
                continue
            rel = os.path.relpath(path, m.root) if m.root != "/" else path.lstrip("/")
            out[controller] = os.path.join(m.mountpoint, rel)
    return out


def container_pids(c: Container) -> list[int]:
    pid = int(c.state.get("pid", 0))
    if c.status not in ("running", "paused") or pid <= 0:
        raise InvalidState("top can only be used on running containers: container state improper")
    paths = cgroup_paths(pid)
    directory = paths.get("pids") or paths.get("memory") or paths.get("")
    pids: list[int] = []
    if directory:
        try:
            with open(os.path.join(directory, "cgroup.procs")) as f:
                pids = [int(x) for x in f.read().split()]
        except OSError:
            pids = []
    return sorted(pids) or [pid]


@record
class _Proc:
    pid: int
    ppid: int
    state: str
    uid: int
    gid: int
    ruid: int
    rgid: int
    tty: int
    utime: int
    stime: int
    start: int
    nice: int
    vsz: int
    rss: int
    comm: str
    args: str
    #: the pid inside the container's pid namespace
    nspid: int


def _read(pid: int) -> _Proc | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode()
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except OSError:
        return None
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    rest = stat[stat.rindex(")") + 2 :].split()
    uids = status.get("Uid", "0 0").split()
    gids = status.get("Gid", "0 0").split()
    args = " ".join(a.decode(errors="replace") for a in cmdline.split(b"\0") if a) or comm
    nspid = int(status.get("NSpid", str(pid)).split()[-1])
    return _Proc(
        pid=pid, ppid=int(rest[1]), state=rest[0], ruid=int(uids[0]), uid=int(uids[1]),
        rgid=int(gids[0]), gid=int(gids[1]), tty=int(rest[4]), utime=int(rest[11]),
        stime=int(rest[12]), start=int(rest[19]), nice=int(rest[16]), vsz=int(rest[20]) // 1024,
        rss=int(rest[21]) * os.sysconf("SC_PAGE_SIZE") // 1024, comm=comm, args=args,
        nspid=nspid,
    )  # fmt: skip


def _names(root: str, name: str) -> dict[int, str]:
    """id -> name from the container's /etc/passwd or /etc/group (top shows its names)."""
    out: dict[int, str] = {}
    try:
        with open(os.path.join(root, "etc", name), encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split(":")
                if len(parts) > 2 and parts[2].isdigit():
                    out.setdefault(int(parts[2]), parts[0])
    except OSError:
        pass
    return out


def _clock(seconds: float) -> str:
    s = int(seconds)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h:02d}:{m:02d}:{s:02d}" if h else f"{m}m{s}s" if m else f"{s}s"


def _elapsed(seconds: float) -> str:
    """Go's time.Duration text, as podman's top prints ELAPSED (e.g. 2m3.5s)."""
    whole = int(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    frac = f"{seconds - whole:.9f}"[1:].rstrip("0").rstrip(".")
    text = f"{s}{frac}s"
    if m or h:
        text = f"{m}m" + text
    if h:
        text = f"{h}h" + text
    return text


def top(c: Container, descriptors: tuple[str, ...] = DEFAULT_DESCRIPTORS) -> list[list[str]]:
    """The header and one row per process, like podman's `top` (ps descriptors)."""
    for d in descriptors:
        if d not in DESCRIPTORS:
            raise InvalidArgument(
                f"unknown descriptor: {d}: supported ones are {', '.join(sorted(DESCRIPTORS))}"
            )
    hz = os.sysconf("SC_CLK_TCK")
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    rows = [[DESCRIPTORS[d] for d in descriptors]]
    root = str(c.state.get("mountpoint") or "/nonexistent")
    users, groups = _names(root, "passwd"), _names(root, "group")
    procs = [p for p in map(_read, container_pids(c)) if p is not None]
    inside = {p.pid: p.nspid for p in procs}
    for p in procs:
        age = max(uptime - p.start / hz, 0.001)
        cpu = (p.utime + p.stime) / hz
        values = {
            "user": users.get(p.uid, str(p.uid)), "pid": str(p.nspid),
            "ppid": str(inside.get(p.ppid, 0)),
            "pcpu": f"{100 * cpu / age:.3f}", "etime": _elapsed(age),
            "tty": "?" if p.tty == 0 else f"pts/{p.tty & 0xFF}", "time": _clock(cpu),
            "args": p.args, "comm": p.comm, "group": groups.get(p.gid, str(p.gid)),
            "nice": str(p.nice), "rgroup": groups.get(p.rgid, str(p.rgid)),
            "ruser": users.get(p.ruid, str(p.ruid)), "vsz": str(p.vsz),
            "rss": str(p.rss), "stime": time.strftime("%H:%M", time.localtime(
                time.time() - age)), "state": p.state, "uid": str(p.uid), "gid": str(p.gid),
        }  # fmt: skip
        rows.append([values[d] for d in descriptors])
    return rows


def stats(eng: Engine, c: Container) -> dict[str, Any]:
    """podman's stats figures for a running container (from its cgroups)."""
    from pypod.linux.cgroups.stats import v1_stats, v2_stats

    pid = int(c.state.get("pid", 0))
    paths = cgroup_paths(pid) if c.status in ("running", "paused") else {}
    if "" in paths and len(paths) == 1:
        raw = v2_stats(paths[""])
    else:
        raw = v1_stats({k: v for k, v in paths.items() if k})
    mem = (raw.get("memory") or {}).get("usage") or {}
    limit = int(mem.get("limit") or 0)
    if not limit:
        with open("/proc/meminfo") as f:
            limit = int(f.readline().split()[1]) * 1024
    usage = int(mem.get("usage") or 0) - int((raw.get("memory") or {}).get("cache", 0))
    cpu_ns = int(raw["cpu"]["usage"]["total"])
    started = float(c.state.get("started_at") or time.time())
    return {
        "ContainerID": c.id,
        "Name": c.name,
        "PIDs": int(raw["pids"]["current"]),
        "MemUsage": max(usage, 0),
        "MemLimit": limit,
        "MemPerc": 100.0 * max(usage, 0) / limit if limit else 0.0,
        "CPUNano": cpu_ns,
        "AvgCPU": 100.0 * cpu_ns / 1e9 / max(time.time() - started, 1e-3),
        "CPUSystemNano": time.monotonic_ns(),
        "BlockInput": 0,
        "BlockOutput": 0,
        "NetInput": 0,
        "NetOutput": 0,
        "UpTime": time.time() - started,
    }
