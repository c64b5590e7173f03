"""Start the wait of the first cgroup migration early, in the background.

Moving a process into a cgroup (writing cgroup.procs) takes the kernel's global
cgroup_threadgroup_rwsem for writing; when no migration happened recently that first waits for
an RCU grace period (13 ms measured on the test VMs), and migrations right after it are fast.
`start()` forks a process that moves itself into the cgroup it is already in (a no-op that still
takes the lock), so the grace period elapses while the runtime imports, parses config.json and
sets up namespaces; the real moves later find the lock warm.  Imports nothing beyond `os`.

Only where the runtime still moves processes: without root.  As root the container's processes
are born in their cgroup2 directory and move themselves into the v1 ones (see
pypod.linux.cgroups.SelfJoin), which takes no global lock: a primer would only cost its fork and
a grace period's slow path for every fork on the host (measured: `pypod-runtime run` 50 -> 44
ms, `exec` 48 -> 41 ms without it).
"""

from __future__ import annotations

import os


def _own_procs_file() -> str | None:
    with open("/proc/self/cgroup") as f:
        lines = f.read().splitlines()
    with open("/proc/self/mountinfo") as f:
        mountinfo = f.read().splitlines()
    for line in mountinfo:
        left, _, right = line.partition(" - ")
        fields = right.split()
        if len(fields) < 3 or fields[0] not in ("cgroup", "cgroup2"):
            continue
        point, root = left.split()[4], left.split()[3]
        opts = set(fields[2].split(","))
        for entry in lines:
            _, controllers, path = entry.split(":", 2)
            same = (fields[0] == "cgroup2" and controllers == "") or (
                controllers and set(controllers.split(",")) <= opts
            )
            if same and path.startswith(root):
                return os.path.join(point, path[len(root) :].lstrip("/"), "cgroup.procs")
    return None


def start() -> int:
    """Fork the primer; returns its pid (reap it with `reap`), or 0 if it could not start or
    is not needed (root: see above)."""
    if os.geteuid() == 0:
        return 0
    try:
        pid = os.fork()
    except OSError:
        return 0
    if pid == 0:
        try:
            path = _own_procs_file()
            if path is not None:
                fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
                os.write(fd, b"0")  # "0" moves the writing process itself
        except BaseException:  # a primer that fails only costs the speed-up
            pass
        os._exit(0)
    return pid


def reap(pid: int) -> None:
    if pid:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass  # already reaped (a foreground `run` waits for any child)
