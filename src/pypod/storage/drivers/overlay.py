"""The overlay driver (default): each layer a directory, a chain of them one overlayfs mount.

On disk, under `<graphroot>/overlay/` (the containers/storage layout):

    <id>/diff     the layer's own files: the upper dir when the layer is mounted
    <id>/work     overlayfs' work dir
    <id>/merged   the mount point
    <id>/link     the layer's short name, 26 characters: `l/<short>` -> `../<id>/diff`
    <id>/lower    the parent chain as short links, topmost first: `l/AAA:l/BBB`
    l/<short>     symlinks, so that the mount data of a deep chain stays under a page
    empty/        the lower dir of a layer that has no parent

Mount data must fit in one page (4096 bytes with the final NUL).  Lower dirs are named
`<home>/l/<short>` when that fits; otherwise the mount runs in a short-lived child process that
changes to `<home>` and names them `l/<short>` (29 bytes a layer: ~130 layers), as
containers/storage's `mountFrom` does.  More than that is refused with a clear error.

Options, chosen as containers/storage does for a driver whose diffs are read natively:
- `index=off`: with the inode index on, overlayfs ties an upper dir to its lowers by file
  handle and refuses to mount a lower layer elsewhere (EBUSY/ESTALE); image layers are shared
  between many mounts, so the index must be off;
- `metacopy=off` and `redirect_dir=off`: both would let the upper dir hold entries whose data
  (metacopy) or content (a renamed directory, redirect) stay in the lower layers; the layer tar
  of a container is written from the upper dir alone (`storage.archive`), so each upper entry
  must be complete.  With them off, a chown copies the file up whole and renaming a lower
  directory fails with EXDEV, which mv and the like handle by copying.
A kernel that does not know an option (EINVAL) is retried without the optional ones.

With a mount program (`--storage-opt overlay.mount_program=PATH` or `STORAGE_OPTS`), and in a
user namespace whose kernel refuses overlay mounts (EPERM, EINVAL) when fuse-overlayfs is
installed, layers are mounted by fuse-overlayfs instead (`fuse_overlay`); the upper directory
of such a layer is brought back to the kernel's format (`fuse_overlay.normalize_upper`) before
its changes are read and after it is unmounted.
"""

from __future__ import annotations

import errno
import os

from pypod.atomic import write_atomic
from pypod.errors import NotFound, OSLevelError, StorageError
from pypod.linux import syscalls, userns
from pypod.log import get_logger
from pypod.storage.drivers import fuse_overlay
from pypod.storage.drivers.mountstate import MountCounts, mount_points

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

    from pypod.storage.archive.apply import ApplyResult
    from pypod.storage.archive.changes import Change
    from pypod.storage.archive.stream import LayoutRecorder

log = get_logger(__name__)

#: mount data must fit in a page, the final NUL included
_PAGE = os.sysconf("SC_PAGESIZE") if hasattr(os, "sysconf") else 4096
_OPTIONAL = ("index=off", "metacopy=off", "redirect_dir=off")
#: what a "volatile" overlay mount leaves in its work dir (kernel: ovl_create_volatile_dirty);
#: a mount of the layer is refused while it is there
_VOLATILE_MARK = "work/work/incompat/volatile"
#: overlayfs' limit on lower layers (OVL_MAX_STACK)
MAX_DEPTH = 500


_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def _short_name() -> str:
    # 26 characters of base32's alphabet, [A-Z2-7] (130 random bits), as containers/storage's
    return "".join(_BASE32[b & 31] for b in os.urandom(26))


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


class OverlayDriver:
    name = "overlay"
    independent_layers = True

    def __init__(self, home: str, run_home: str) -> None:
        self.home = home
        self.counts = MountCounts(os.path.join(run_home, "overlay"))
        self.options = fuse_overlay.options_from_env()
        #: the mount program chosen after the kernel refused a mount in this user namespace
        self._fallback: str | None = None
        os.makedirs(os.path.join(home, "l"), mode=0o700, exist_ok=True)
        os.makedirs(os.path.join(home, "empty"), mode=0o755, exist_ok=True)

    # --- paths ------------------------------------------------------------------------------
    def _dir(self, layer_id: str) -> str:
        if not layer_id or "/" in layer_id or layer_id.startswith("."):
            raise StorageError(f"invalid layer id {layer_id!r}")
        return os.path.join(self.home, layer_id)

    def diff_path(self, layer_id: str) -> str:
        return os.path.join(self._dir(layer_id), "diff")

    def exists(self, layer_id: str) -> bool:
        return os.path.isdir(self.diff_path(layer_id))

    def layer_ids(self) -> list[str]:
        return [n for n in os.listdir(self.home) if n not in ("l", "empty") and len(n) == 64]

    def _lowers(self, layer_id: str) -> list[str]:
        """The short links of the parent chain, topmost first ("l/ABC")."""
        try:
            text = _read(os.path.join(self._dir(layer_id), "lower"))
        except FileNotFoundError:
            return []
        return [p for p in text.split(":") if p]

    # --- create, rename, remove -----------------------------------------------------------
    def create(self, layer_id: str, parent_id: str | None) -> None:
        d = self._dir(layer_id)
        lower = self._lower_of(parent_id) if parent_id is not None else ""
        os.mkdir(d, 0o700)
        os.mkdir(os.path.join(d, "diff"), 0o755)
        os.mkdir(os.path.join(d, "work"), 0o700)
        os.mkdir(os.path.join(d, "merged"), 0o700)
        short = _short_name()
        os.symlink(f"../{layer_id}/diff", os.path.join(self.home, "l", short))
        # not fsynced, as containers/storage's overlay driver: a crash of pypod leaves them
        # whole (rename) or the layer still marked incomplete (then removed); only a power
        # failure in the seconds before the kernel writes them back could lose them
        write_atomic(os.path.join(d, "link"), short.encode(), sync=False)
        if lower:
            write_atomic(os.path.join(d, "lower"), lower.encode(), sync=False)

    def _lower_of(self, parent_id: str) -> str:
        """The `lower` of a layer on top of `parent_id`: its chain as short links."""
        if not self.exists(parent_id):
            raise NotFound(f"parent layer {parent_id} has no directory in {self.home}")
        parent_link = _read(os.path.join(self._dir(parent_id), "link"))
        lowers = [f"l/{parent_link}", *self._lowers(parent_id)]
        if len(lowers) >= MAX_DEPTH:
            raise StorageError(
                f"cannot add a layer on top of {parent_id}: overlayfs stacks at most "
                f"{MAX_DEPTH} layers; squash the image"
            )
        return ":".join(lowers)

    def set_parent(self, layer_id: str, parent_id: str) -> None:
        write_atomic(os.path.join(self._dir(layer_id), "lower"), self._lower_of(parent_id).encode())

    def rename(self, old_id: str, new_id: str) -> None:
        old, new = self._dir(old_id), self._dir(new_id)
        os.rename(old, new)
        short = _read(os.path.join(new, "link"))
        link = os.path.join(self.home, "l", short)
        tmp = link + ".tmp"
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.symlink(f"../{new_id}/diff", tmp)
        os.rename(tmp, link)

    def remove(self, layer_id: str) -> None:
        d = self._dir(layer_id)
        try:  # going: no point in normalizing its upper directory on the way
            os.unlink(os.path.join(d, fuse_overlay.MARK))
        except (FileNotFoundError, NotADirectoryError):
            pass
        if self.mount_count(layer_id) or _mounted(os.path.join(d, "merged")):
            self.unmount(layer_id, force=True)
        try:
            short = _read(os.path.join(d, "link"))
        except (FileNotFoundError, NotADirectoryError):
            short = ""
        if short:
            try:
                os.unlink(os.path.join(self.home, "l", short))
            except FileNotFoundError:
                pass
        if os.path.lexists(d):
            from pypod.fstree import remove_tree

            remove_tree(d)

    # --- content ----------------------------------------------------------------------------
    def apply_diff(
        self, layer_id: str, stream: BinaryIO, *, layout: LayoutRecorder | None = None
    ) -> ApplyResult:
        from pypod.storage.archive import OVERLAY
        from pypod.storage.archive.apply import apply_layer

        return apply_layer(stream, self.diff_path(layer_id), whiteouts=OVERLAY, layout=layout)

    def changes(self, layer_id: str, parent_id: str | None) -> list[Change]:
        from pypod.storage.archive.changes import changes

        self._normalize(layer_id)
        lowers = [os.path.join(self.home, p) for p in self._lowers(layer_id)]
        return changes(lowers, self.diff_path(layer_id))

    # --- mounts -------------------------------------------------------------------------------
    def mount_count(self, layer_id: str) -> int:
        return self.counts.get(layer_id)

    def mount(
        self, layer_id: str, *, mount_label: str | None = None, volatile: bool = False
    ) -> str:
        d = self._dir(layer_id)
        if not self.exists(layer_id):
            raise NotFound(f"layer {layer_id} has no directory in {self.home}")
        merged = os.path.join(d, "merged")
        with self.counts.lock:
            count = self.counts.get(layer_id)
            if count and os.path.ismount(merged):
                self.counts.set(layer_id, count + 1)
                return merged
            if _mounted(merged):  # a FUSE mount whose daemon is gone (ENOTCONN)
                _umount(merged)
            self._mount(layer_id, merged, mount_label, volatile)
            self.counts.set(layer_id, 1)
        return merged

    def _mount(self, layer_id: str, merged: str, mount_label: str | None, volatile: bool) -> None:
        lowers = self._lowers(layer_id) or ["empty"]
        label = f',context="{mount_label}"' if mount_label else ""

        def data(prefix: str, optional: tuple[str, ...]) -> str:
            lower = ":".join(prefix + p for p in lowers)
            up = f"{prefix}{layer_id}/diff"
            work = f"{prefix}{layer_id}/work"
            extra = "".join("," + o for o in optional)
            return f"lowerdir={lower},upperdir={up},workdir={work}{extra}{label}"

        program = self.options.mount_program or self._fallback
        if program is not None:
            self._mount_with(program, layer_id, merged, lowers, label)
            return
        optional: tuple[str, ...] = _OPTIONAL
        in_userns = userns.in_user_namespace()
        if in_userns:  # rootless: no trusted.* xattrs, so no redirect_dir
            optional = ("index=off", "metacopy=off", "userxattr")
        mark = os.path.join(self._dir(layer_id), _VOLATILE_MARK)
        if os.path.lexists(mark):
            # a volatile mount, cleanly unmounted (we hold the counts lock, nothing mounts the
            # layer): its writes are in the page cache, the kernel refuses to mount the layer
            # again while its work dir has the mark.  containers/storage removes it too
            from pypod.fstree import remove_tree

            remove_tree(mark)
        if volatile:
            optional += ("volatile",)
        while True:
            absolute = data(self.home + "/", optional)
            try:
                if len(absolute) < _PAGE:
                    syscalls.mount("overlay", merged, "overlay", 0, absolute)
                else:
                    relative = data("", optional)
                    if len(relative) >= _PAGE:
                        raise StorageError(
                            f"cannot mount layer {layer_id}: its chain of {len(lowers)} layers "
                            f"does not fit in one page of mount options; squash the image"
                        )
                    self._mount_from_home(merged, relative)
                return
            except OSLevelError as e:
                if e.errno == errno.EINVAL and optional:
                    log.debug("overlay mount options %s refused, retrying without", optional)
                    optional = ()
                    continue
                if in_userns and e.errno in (errno.EPERM, errno.EINVAL):
                    # a kernel that cannot mount overlay here (before 5.11; some filesystems)
                    self._fallback = fuse_overlay.fallback_program(layer_id, e)
                    self._mount_with(self._fallback, layer_id, merged, lowers, label)
                    return
                raise StorageError(f"mount layer {layer_id}: {e}") from e

    def _mount_with(
        self, program: str, layer_id: str, merged: str, lowers: list[str], label: str
    ) -> None:
        """Mount with a mount program (fuse-overlayfs), as containers/storage runs it."""
        d = self._dir(layer_id)
        lower = ":".join(os.path.join(self.home, p) for p in lowers)
        data = f"lowerdir={lower},upperdir={d}/diff,workdir={d}/work{label}"
        # marked first: whatever happens next, its upper directory gets normalized
        write_atomic(os.path.join(d, fuse_overlay.MARK), program.encode())
        fuse_overlay.mount(program, data, merged, layer_id=layer_id)

    def _normalize(self, layer_id: str) -> None:
        """Bring the upper directory of a layer a mount program wrote to back to the kernel's
        format (with the mount lock held: not while another process unmounts it)."""
        d = self._dir(layer_id)
        mark = os.path.join(d, fuse_overlay.MARK)
        if not os.path.exists(mark):
            return
        with self.counts.lock:
            if not os.path.exists(mark):
                return
            mounted = _mounted(os.path.join(d, "merged"))
            fuse_overlay.normalize_upper(os.path.join(d, "diff"), mounted=mounted)
            if not mounted:
                os.unlink(mark)

    def _mount_from_home(self, merged: str, data: str) -> None:
        """mount(2) with relative lower dirs, from a child whose cwd is the driver home (the
        cwd is per process: changing it here would race with other threads)."""
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 0
            try:
                os.chdir(self.home)
                syscalls.mount("overlay", merged, "overlay", 0, data)
            except OSLevelError as e:
                code = e.errno if 0 < e.errno < 256 else errno.EIO
            except BaseException:
                code = errno.EIO
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code:
            if code < 0:
                code = errno.EINTR
            raise OSLevelError(f"mount overlay on {merged} (from {self.home})", errno=code)

    def unmount(self, layer_id: str, *, force: bool = False) -> bool:
        merged = os.path.join(self._dir(layer_id), "merged")
        with self.counts.lock:
            count = self.counts.get(layer_id)
            if count > 1 and not force:
                self.counts.set(layer_id, count - 1)
                return False
            if _mounted(merged):
                _umount(merged)
            self.counts.set(layer_id, 0)
            try:
                self._normalize(layer_id)
            except (OSError, StorageError) as e:  # unmounted all the same; changes() retries
                log.warning("layer %s: fuse-overlayfs markers not converted: %s", layer_id, e)
        return True

    def recover(self, known: set[str], *, sweep: bool) -> None:
        with self.counts.lock:
            mounted = mount_points(self.home)
            counted = self.counts.counted()
            for layer_id, _count in counted.items():
                merged = os.path.join(self.home, layer_id, "merged")
                if layer_id not in known or merged not in mounted:
                    log.info("dropping stale mount count of layer %s", layer_id)
                    if merged in mounted:
                        _umount(merged)
                    self.counts.set(layer_id, 0)
                    if layer_id in known:
                        self._normalize(layer_id)
            for point in mounted:
                rel = os.path.relpath(point, self.home)
                layer_id, _, rest = rel.partition("/")
                if rest == "merged" and layer_id not in counted:
                    log.info("unmounting layer %s: mounted but not counted", layer_id)
                    _umount(point)
        if not sweep:
            return
        for layer_id in set(self.layer_ids()) - known:
            log.info("removing orphan layer directory %s", layer_id)
            self.remove(layer_id)
        links = os.path.join(self.home, "l")
        for short in os.listdir(links):
            path = os.path.join(links, short)
            if short.endswith(".tmp") or not os.path.exists(path):
                os.unlink(path)


def _mounted(path: str) -> bool:
    """Whether `path` is a mount point; a FUSE mount whose daemon died (ENOTCONN) is one."""
    try:
        os.lstat(path)
    except OSError as e:
        return e.errno == errno.ENOTCONN
    return os.path.ismount(path)


def _umount(path: str) -> None:
    try:
        syscalls.umount2(path, syscalls.UMOUNT_NOFOLLOW)
    except OSLevelError as e:
        if e.errno == errno.EBUSY:
            log.debug("%s busy; detaching it", path)
            syscalls.umount2(path, syscalls.MNT_DETACH | syscalls.UMOUNT_NOFOLLOW)
        elif e.errno == errno.EPERM and fuse_overlay.fusermount_unmount(path):
            return  # a FUSE mount of this user's, from outside its namespace
        elif e.errno != errno.EINVAL:  # EINVAL: not a mount point (any more)
            raise StorageError(f"unmount {path}: {e}") from e
