"""The rootless user namespace: subordinate id ranges, the pause process, joining it.

As podman does, an unprivileged user's pypod runs in a user namespace (and a mount namespace
owned by it) that outlives each command: the first command forks a "pause process" that
unshares both namespaces and stays (it execs `catatonit -P` when installed, or sleeps in
Python); its uid and gid maps are written by newuidmap/newgidmap — container root is the user,
1..N the user's /etc/subuid (/etc/subgid) ranges — or, without ranges, map the user alone.
Later commands join it with setns(user) then setns(mnt).  Inside, the process is uid 0 with
every capability in that namespace; mounts made there (overlay, the containers' root
filesystems) are seen by every later command and vanish with the pause process.
"""

from __future__ import annotations

import os
import pwd

from pypod.errors import InvalidState, OSLevelError, PermissionDenied
from pypod.linux import syscalls as sc
from pypod.record import record
from pypod.stdlite import signal, suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"
#: the identity map of the initial user namespace
_INITIAL_MAP = ("0", "0", "4294967295")
CATATONIT = ("/usr/libexec/podman/catatonit", "/usr/bin/catatonit")


@record
class IDMap:
    """One line of a uid_map/gid_map: ids container_id.. map to host_id.. (size of them)."""

    container_id: int
    host_id: int
    size: int


def in_user_namespace() -> bool:
    """Whether this process runs in a user namespace other than the initial one."""
    try:
        with open("/proc/self/uid_map") as f:
            lines = f.read().split("\n")
    except OSError:
        return False
    return not (len(lines) <= 2 and tuple(lines[0].split()) == _INITIAL_MAP)


def rootless() -> bool:
    """Whether pypod runs without the host's root: as a user, or inside a user namespace."""
    return os.geteuid() != 0 or in_user_namespace()


def subordinate_ranges(path: str, name: str, id_: int) -> list[tuple[int, int]]:
    """The (start, count) ranges /etc/subuid-style `path` gives the user `name` (or `id_`)."""
    found: list[tuple[int, int]] = []
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return found
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) != 3 or line.lstrip().startswith("#"):
            continue
        who, start, count = parts
        if who not in (name, str(id_)):
            continue
        with suppress(ValueError):
            if int(count) > 0:
                found.append((int(start), int(count)))
    return found


def rootless_maps(uid: int, gid: int) -> tuple[tuple[IDMap, ...], tuple[IDMap, ...]]:
    """The pause namespace's maps: 0 -> the user, then the subordinate ranges from 1 on."""
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    maps: list[tuple[IDMap, ...]] = []
    for path, own in ((SUBUID, uid), (SUBGID, gid)):
        lines = [IDMap(container_id=0, host_id=own, size=1)]
        next_id = 1
        for start, count in subordinate_ranges(path, name, uid if path == SUBUID else gid):
            lines.append(IDMap(container_id=next_id, host_id=start, size=count))
            next_id += count
        maps.append(tuple(lines))
    return maps[0], maps[1]


def mapped_size(map_path: str = "/proc/self/uid_map") -> int:
    """How many ids the user namespace of this process maps (1 for a single-id mapping)."""
    with open(map_path) as f:
        return sum(int(line.split()[2]) for line in f if line.strip())


def is_mapped(id_: int, map_path: str = "/proc/self/gid_map") -> bool:
    """Whether id `id_` of this process's user namespace is mapped (`map_path`: its map)."""
    with open(map_path) as f:
        for line in f:
            fields = line.split()
            if len(fields) == 3 and int(fields[0]) <= id_ < int(fields[0]) + int(fields[2]):
                return True
    return False


def create_pause(uid_maps: Sequence[IDMap], gid_maps: Sequence[IDMap]) -> int:
    """Fork the pause process in a new user and mount namespace, map its ids; its pid.

    The child unshares, waits until the parent has written its maps, leaves the caller's
    session, drops every file descriptor and pauses until killed.
    """
    from pypod.linux.idmap import write_maps

    unshared_r, unshared_w = os.pipe()
    mapped_r, mapped_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(unshared_r)
            os.close(mapped_w)
            os.setsid()
            sc.unshare(sc.CLONE_NEWUSER | sc.CLONE_NEWNS)
            os.write(unshared_w, b"u")
            if os.read(mapped_r, 1) != b"m":
                os._exit(1)
            _become_pause()
        finally:
            os._exit(1)
    os.close(unshared_w)
    os.close(mapped_r)
    try:
        if os.read(unshared_r, 1) != b"u":
            os.waitpid(pid, 0)
            raise PermissionDenied(
                "cannot create the rootless user namespace: unshare(CLONE_NEWUSER) failed; "
                "check that user namespaces are enabled (/proc/sys/user/max_user_namespaces)"
            )
        write_maps(pid, uid_maps, gid_maps)
        os.write(mapped_w, b"m")
    except BaseException:
        with suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        raise
    finally:
        os.close(unshared_r)
        os.close(mapped_w)
    return pid


def fork_pause() -> int:
    """A new pause process in this process's namespaces (re-creating a lost one); its pid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.setsid()
            _become_pause()
        finally:
            os._exit(1)
    return pid


def joinable(pid: int) -> bool:
    """Whether `pid` is this user's process in a user namespace other than this process's
    (a container monitor left in the rootless namespace after its pause process died)."""
    try:
        if os.stat(f"/proc/{pid}").st_uid != os.geteuid():
            return False
        return os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user")
    except OSError:
        return False


def _become_pause() -> None:  # pragma: no cover - runs in the child
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.closerange(3, 65536)
    os.chdir("/")
    for exe in CATATONIT:
        if os.access(exe, os.X_OK):
            with suppress(OSError):
                os.execv(exe, [exe, "-P"])
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    while True:
        signal.pause()


def join(pid: int) -> None:
    """Enter the user then the mount namespace of `pid` (the pause process), keeping the cwd.

    setns into a user namespace needs a single-threaded caller; the kernel refuses otherwise
    (EINVAL), so that is checked first for a clear error.
    """
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:
        raise InvalidState(
            f"cannot join the rootless user namespace: {threads} threads run (setns needs one)"
        )
    try:
        cwd: str | None = os.getcwd()
    except OSError:
        cwd = None
    user_fd = _open_ns(pid, "user")
    try:
        mnt_fd = _open_ns(pid, "mnt")
    except BaseException:
        os.close(user_fd)
        raise
    try:
        for fd, kind, flag in (
            (user_fd, "user", sc.CLONE_NEWUSER),
            (mnt_fd, "mnt", sc.CLONE_NEWNS),
        ):
            try:
                sc.setns(fd, flag)
            except OSError as e:
                raise OSLevelError(
                    f"join the rootless {kind} namespace of the pause process {pid}",
                    errno=e.errno or 0,
                ) from e
    finally:
        os.close(user_fd)
        os.close(mnt_fd)
    if cwd is not None:
        with suppress(OSError):
            os.chdir(cwd)


def _open_ns(pid: int, kind: str) -> int:
    try:
        return os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise OSLevelError(f"open the {kind} namespace of process {pid}", errno=e.errno or 0) from e


def process_start(pid: int) -> int | None:
    """The start time (clock ticks after boot) of `pid`, None when gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in "ZX":
        return None
    return int(fields[19])


def check_can_map(uid_maps: Sequence[IDMap]) -> None:
    """Fail early, with what to do, when a multi-id map needs newuidmap and it is missing."""
    import shutil

    if len(uid_maps) > 1 and shutil.which("newuidmap") is None:
        raise PermissionDenied(
            "newuidmap not found: install Debian's 'uidmap' package to use the subordinate "
            "ids of /etc/subuid, or remove the user's ranges to run with a single id"
        )


def create_netns_in_child(path: str) -> None:
    """Bind a new network namespace with `lo` up on the existing file `path`, from a child.

    In a user namespace the caller could not return to its original network namespace (it
    belongs to the host's user namespace), so a forked child unshares, mounts and exits.
    """
    from pypod.linux import netns

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            os.close(r)
            sc.unshare(sc.CLONE_NEWNET)
            netns.set_link_up("lo")
            sc.mount("/proc/thread-self/ns/net", path, None, sc.MS_BIND, None)
            code = 0
        except OSError as e:
            os.write(w, str(e.errno or 0).encode())
        finally:
            os._exit(code)
    os.close(w)
    try:
        err = os.read(r, 16)
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise OSLevelError(
            f"create network namespace {path}", errno=int(err) if err.isdigit() else 0
        )
