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


class UnknownDescriptor(InvalidArgument):
    """A `top` descriptor that is not one of DESCRIPTORS (podman then runs ps(1) inside)."""


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
    if directory and c.id in directory:  # a cgroup of the container's own
        try:
            with open(os.path.join(directory, "cgroup.procs")) as f:
                pids = [int(x) for x in f.read().split()]
        except OSError:
            pids = []
    else:  # none (rootless on cgroup v1): its processes are those of its pid namespace
        pids = _in_pid_namespace(pid)
    return sorted(pids) or [pid]


def _in_pid_namespace(pid: int) -> list[int]:
    """The processes in `pid`'s pid namespace; with the host's, `pid` and its descendants."""
    try:
        ns = os.readlink(f"/proc/{pid}/ns/pid")
        host = os.readlink("/proc/self/ns/pid")
    except OSError:
        return [pid]
    parents: dict[int, int] = {}
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") != ns:
                continue
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        found.append(int(entry))
        parents[int(entry)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    if ns != host:
        return found
    tree = {pid}
    changed = True
    while changed:
        changed = False
        for child, parent in parents.items():
            if parent in tree and child not in tree:
                tree.add(child)
                changed = True
    return sorted(tree)


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
    # psgo joins the NUL-separated fields with spaces, the empty one after the last NUL too
    args = cmdline.decode(errors="replace").replace("\0", " ") if cmdline else comm
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
    """Go's time.Duration text, as podman's top prints ELAPSED (963.798314ms, 2m3.5s)."""
    return go_duration(int(round(seconds * 1e9)))


def go_duration(ns: int) -> str:
    """Go's time.Duration.String() of `ns` nanoseconds."""
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1000:
        return f"{sign}{ns}ns"

    def frac(value: int, digits: int) -> str:
        whole, rest = divmod(value, 10**digits)
        tail = f"{rest:0{digits}d}".rstrip("0")
        return f"{whole}.{tail}" if tail else str(whole)

    if ns < 1_000_000:
        return f"{sign}{frac(ns, 3)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{frac(ns, 6)}ms"
    h, rest = divmod(ns, 3600 * 10**9)
    m, rest = divmod(rest, 60 * 10**9)
    text = f"{frac(rest, 9)}s"
    if h:
        return f"{sign}{h}h{m}m{text}"
    if m:
        return f"{sign}{m}m{text}"
    return sign + text


def top(c: Container, descriptors: tuple[str, ...] = DEFAULT_DESCRIPTORS) -> list[list[str]]:
    """The header and one row per process, like podman's `top` (ps descriptors)."""
    for d in descriptors:
        if d not in DESCRIPTORS:
            raise UnknownDescriptor(
                f"unknown descriptor: {d}: supported ones are {', '.join(sorted(DESCRIPTORS))}"
            )
    hz = os.sysconf("SC_CLK_TCK")
    uptime = time.clock_gettime(time.CLOCK_BOOTTIME)  # ns resolution, as Go's time.Since
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


def ps_in_container(eng: Engine, c: Container, args: tuple[str, ...]) -> list[str]:
    """podman's fallback for descriptors psgo does not know: `ps ARGS` run in the container;
    its output lines, without the lines of that ps command itself."""
    import tempfile

    from pypod.engine.exec import ExecOptions, run_exec

    with tempfile.TemporaryFile() as out:
        result = run_exec(eng, c, ExecOptions(command=("ps", *args), output_fd=out.fileno()))
        out.seek(0)
        text = out.read().decode(errors="replace")
    if result.exit_code != 0:
        raise InvalidArgument(
            f"error executing ps(1) in the container: ps exited with {result.exit_code}: "
            f"{text.strip()}"
        )
    cmd = " ".join(args)
    return [line for line in text.splitlines() if cmd not in line]


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
