"""A container's root filesystem from the outside: `pypod mount`/`umount`, and the view `cp` uses.

Mounts are counted by the store (N mounts need N unmounts, from any process).  A container
that runs holds one mount of its own (taken at start, dropped at cleanup); `umount` never drops
that one, even with `--force`, so a running container stays mounted.

`ContainerRoot` is where `cp` reads and writes, as podman does:

- a running (or paused) container is seen as it sees itself, through `/proc/PID/root`: its
  volumes, bind mounts and tmpfs mounts are where the container has them (podman joins the
  container's mount namespace for the same effect);
- any other container has its storage mounted for the time of the copy, and a path under the
  destination of one of its bind mounts or volumes goes to that mount's host directory, the
  deepest destination first (podman's `resolvePath`).

Either way the result is a directory fd standing for `/` and a path relative to it, to be
resolved by the kernel inside that root (`openat2(RESOLVE_IN_ROOT)`).
"""

from __future__ import annotations

import errno
import os
import posixpath
from typing import TYPE_CHECKING, Any

from pypod.engine.state import LIVE, process_alive
from pypod.errors import InvalidState, NotFound, PypodError
from pypod.log import get_logger
from pypod.record import record

if TYPE_CHECKING:
    from pypod.engine.containers import Engine
    from pypod.engine.state import Container

log = get_logger(__name__)

_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC


# --- pypod mount / umount -----------------------------------------------------------------------
def mount(eng: Engine, id_or_name: str) -> str:
    """Mount the container's root (one more mount reference); its path."""
    c = eng.lookup(id_or_name)
    path = eng.store.mount_container(c.id)
    with eng.db.transaction():
        eng.event("container", "mount", c.id, c.name, {"image": c.config.image})
    return path


def unmount(eng: Engine, id_or_name: str, *, force: bool = False) -> Container:
    """Drop one mount reference (every one with `force`) of the container's root.

    The reference a live container holds itself is kept: its root stays mounted."""
    c = eng.lookup(id_or_name)
    store = eng.store
    count = store.container_mount_count(c.id)
    if c.status in LIVE:
        extra = max(count - 1, 0)
        for _ in range(extra if force else min(extra, 1)):
            store.unmount_container(c.id)
    elif count:
        store.unmount_container(c.id, force=force)
    with eng.db.transaction():
        eng.event("container", "unmount", c.id, c.name, {"image": c.config.image})
    return c


def mount_count(eng: Engine, c: Container) -> int:
    return eng.store.container_mount_count(c.id)


def mounted(eng: Engine) -> list[tuple[Container, str]]:
    """The containers whose root is mounted, and where."""
    out: list[tuple[Container, str]] = []
    for c in eng.containers():
        if eng.store.container_mount_count(c.id) > 0:
            out.append((c, mountpoint(eng, c)))
    return out


def mountpoint(eng: Engine, c: Container) -> str:
    """Where the (mounted) root of `c` is.  The store has no call that only tells: a mount
    reference taken and dropped at once tells it without changing anything."""
    known = c.state.get("mountpoint")
    if isinstance(known, str) and known:
        return known
    path = eng.store.mount_container(c.id)
    eng.store.unmount_container(c.id)
    return path


# --- the root cp works in -------------------------------------------------------------------------
@record
class Location:
    """A container path resolved to a root fd and a path inside it."""

    #: the directory that stands for `/` while `rel` is resolved (container root or volume)
    root_fd: int
    #: the path inside that root, relative, not yet resolved ("" is the root itself)
    rel: str
    #: where that root is in the container ("/" or a mount destination)...
    mounted_at: str
    #: ... for the path `source_rel` inside it ("" but for a bind-mounted file)
    source_rel: str = ""

    def container_path(self, rel: str) -> str:
        """The container path of `rel` (a path inside this root, resolved)."""
        if self.source_rel and (rel == self.source_rel or rel.startswith(self.source_rel + "/")):
            rel = rel[len(self.source_rel) :]
        return posixpath.join(self.mounted_at, rel.lstrip("/")).rstrip("/") or "/"


class ContainerRoot:
    """The files of one container, for `cp` (see the module's text).  A context manager: it
    mounts the container's root when it has to, and unmounts what it mounted."""

    def __init__(self, eng: Engine, c: Container) -> None:
        self.eng = eng
        self.c = c
        self._fds: list[int] = []
        self._mounted = False
        self._image_config: dict[str, Any] | None = None
        self.main_fd = self._open_running()
        self.running = self.main_fd is not None
        if self.main_fd is None:
            path = eng.store.mount_container(c.id)
            self._mounted = True
            try:
                self.main_fd = self._keep(os.open(path, _PATH_DIR))
            except BaseException:
                self.close()
                raise
        self.root_fd: int = self.main_fd

    def _keep(self, fd: int) -> int:
        self._fds.append(fd)
        return fd

    def _open_running(self) -> int | None:
        if self.c.status not in ("running", "paused"):
            return None
        pid = int(self.c.state.get("pid") or 0)
        start = int(self.c.state.get("pid_start") or 0)
        if not process_alive(pid, start):
            return None
        try:
            fd = os.open(f"/proc/{pid}/root", _PATH_DIR)
        except OSError as e:
            log.debug("cannot open the root of %s through /proc/%d: %s", self.c.id, pid, e)
            return None
        if not process_alive(pid, start):  # the pid was reused meanwhile: not our container
            os.close(fd)
            return None
        return self._keep(fd)

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
        if self._mounted:
            self._mounted = False
            try:
                self.eng.store.unmount_container(self.c.id)
            except PypodError as e:
                log.warning("cannot unmount container %s after copying: %s", self.c.id, e)

    def __enter__(self) -> ContainerRoot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the container's settings -----------------------------------------------------------
    def image_config(self) -> dict[str, Any]:
        if self._image_config is None:
            from pypod.image.local import image_config

            try:
                image = self.eng.store.image(self.c.config.image_id)
                doc = image_config(self.eng.store, image).get("config")
            except PypodError:
                doc = None
            self._image_config = doc if isinstance(doc, dict) else {}
        return self._image_config

    def workdir(self) -> str:
        return self.c.config.workdir or str(self.image_config().get("WorkingDir") or "") or "/"

    def user_ids(self) -> tuple[int, int]:
        """The ids of the container's user (its `--user`, else the image's User), from the
        container's /etc/passwd and /etc/group (`pypod.runtime.users`)."""
        from pypod.runtime.users import lookup_user, read_etc_file

        spec = self.c.config.user or str(self.image_config().get("User") or "")
        root = f"/proc/self/fd/{self.root_fd}"
        user = lookup_user(spec, passwd=read_etc_file(root, "/etc/passwd"),
                           group=read_etc_file(root, "/etc/group"))  # fmt: skip
        return user.uid, user.gid

    def absolute(self, path: str) -> str:
        """`path` made absolute (a relative path is taken from the working directory) and
        cleaned, keeping nothing of a trailing "/" or "/." (callers keep those themselves)."""
        if not path.startswith("/"):
            path = posixpath.join("/", self.workdir(), path)
        return posixpath.normpath("/" + path.lstrip("/"))

    def locate(self, path: str) -> Location:
        """Where the absolute container path `path` is to be resolved."""
        path = self.absolute(path)
        if self.running:
            return Location(root_fd=self.root_fd, rel=path.lstrip("/"), mounted_at="/")
        search = path
        while True:
            for m in self.c.config.mounts:
                if m.type == "bind" and posixpath.normpath(m.destination) == search:
                    if m.volume:
                        self._check_volume(m.volume)
                    return self._mount_location(m.source, search, path)
            if search == "/":
                break
            search = posixpath.dirname(search)
        return Location(root_fd=self.root_fd, rel=path.lstrip("/"), mounted_at="/")

    def _check_volume(self, name: str) -> None:
        """A volume with a filesystem of its own (`-o type=`) holds its files only while it is
        mounted, which a stopped container's are not (podman refuses the same way)."""
        from pypod.engine.volumes import Volumes

        vol = Volumes(self.eng.db, self.eng.paths.graphroot).get(name)
        if vol.needs_mount and vol.mount_count == 0:
            raise InvalidState(
                f"volume {name} is not mounted, cannot copy into it: start the container "
                "to copy into its volume"
            )

    def _mount_location(self, source: str, destination: str, path: str) -> Location:
        rest = path[len(destination) :].lstrip("/") if destination != "/" else path.lstrip("/")
        try:
            fd = os.open(source, _PATH_DIR)
        except NotADirectoryError:  # a file bind-mounted: its directory stands for the root
            fd = os.open(posixpath.dirname(source) or "/", _PATH_DIR)
            name = posixpath.basename(source)
            rel = f"{name}/{rest}" if rest else name
            return Location(root_fd=self._keep(fd), rel=rel, mounted_at=destination,
                            source_rel=name)  # fmt: skip
        except OSError as e:
            if e.errno == errno.ENOENT:
                raise NotFound(
                    f"the host directory {source} mounted on {destination} in container "
                    f"{self.c.name} does not exist: create it or recreate the container"
                ) from None
            raise
        return Location(root_fd=self._keep(fd), rel=rest, mounted_at=destination)
