"""The overlay driver's mount program (fuse-overlayfs) and its options, as containers/storage has.

Options come as containers/storage takes them: `KEY=VALUE` strings, from podman's global
`--storage-opt` flag or, without it, the `STORAGE_OPTS` variable (comma-separated; the CLI puts
its flags there, so the monitor and the cleanup command it runs see them too).  A key may be
written `mount_program`, `.mount_program`, `overlay.mount_program` or `overlay2.mount_program`;
options of other drivers (`vfs.…`) are left to them.

With `overlay.mount_program=PATH`, or when the kernel refuses an overlay mount in a user
namespace (kernels before 5.11) and fuse-overlayfs is installed, a layer is mounted by running
`PATH -o lowerdir=…,upperdir=…,workdir=… MERGED`; the program serves the mount from a daemon
of its own, which ends when the mount is unmounted (umount2 by the namespace's root, or
`fusermount3 -u`).

fuse-overlayfs reads the kernel's layer format (0:0 character-device whiteouts, the
`trusted.overlay.opaque` / `user.overlay.opaque` xattrs), which is what `storage.archive`
writes, but marks what it changes in an upper directory in its own way: an opaque directory
gets a `.wh..wh..opq` file, and in a user namespace the `user.fuseoverlayfs.opaque` xattr
instead of the trusted one; it leaves `user.fuseoverlayfs.*` xattrs on copied-up files and,
where mknod(2) of a whiteout is refused, `.wh.NAME` files.  `normalize_upper` turns all of that
back into the kernel's format, so that diff, commit and export (which read the kernel's format)
see what the container did, and a layer can be mounted either way afterwards.
"""

from __future__ import annotations

import errno
import os
import stat

from pypod.errors import InvalidArgument, NotSupported, StorageError
from pypod.linux import userns
from pypod.log import get_logger
from pypod.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

log = get_logger(__name__)

#: containers/storage's variable for driver options
ENV = "STORAGE_OPTS"
#: the program podman users install (Debian: fuse-overlayfs)
PROGRAM = "fuse-overlayfs"
#: where it is looked for when it is not on PATH (the monitor may run with a short PATH)
_PLACES = ("/usr/bin", "/usr/local/bin", "/bin", "/usr/sbin", "/usr/local/sbin")
#: a layer directory holding this file was mounted with a mount program (its content: the
#: program); its upper directory is brought back to the kernel's format after unmounting
MARK = "mount-program"

#: fuse-overlayfs' own markers
_OPAQUE_FILE = ".wh..wh..opq"
_WH = ".wh."
_FUSE_XATTR = "user.fuseoverlayfs."
_FUSE_OPAQUE = "user.fuseoverlayfs.opaque"
#: overlayfs' opaque xattrs (pypod.storage.archive: the same names, not imported to keep this
#: module light)
_OPAQUE_TRUSTED = "trusted.overlay.opaque"
_OPAQUE_USER = "user.overlay.opaque"

#: overlay options containers/storage knows that pypod does not implement
_UNSUPPORTED = frozenset(
    ("mountopt", "size", "inodes", "imagestore", "additionalimagestore", "skip_mount_home",
     "ignore_chown_errors", "force_mask", "use_composefs")
)  # fmt: skip
#: prefixes of other drivers' options
_OTHER_DRIVERS = ("vfs.", "btrfs.", "zfs.", "dm.", "devicemapper.", "aufs.")


@record
class OverlayOptions:
    """The overlay driver's options."""

    #: run this program to mount a layer (fuse-overlayfs) instead of mount(2)
    mount_program: str | None = None


def split_env(text: str) -> list[str]:
    """The options in a `STORAGE_OPTS` value (comma-separated, as containers/storage splits)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_options(options: Iterable[str]) -> OverlayOptions:
    """The overlay options among `options` (`KEY=VALUE`); errors name the option."""
    program: str | None = None
    for option in options:
        key, eq, value = option.partition("=")
        if not eq:
            raise InvalidArgument(
                f'storage option "{option}" is not KEY=VALUE; use, for example, '
                f"overlay.mount_program=/usr/bin/{PROGRAM}"
            )
        name = key.strip().lower()
        if name.startswith(_OTHER_DRIVERS):
            continue
        name = name.removeprefix("overlay.").removeprefix("overlay2.").removeprefix(".")
        value = value.strip()
        if name == "mount_program":
            program = _checked_program(value)
        elif name == "override_kernel_check":
            log.debug("storage option %s is ignored (as containers/storage does)", key)
        elif name in _UNSUPPORTED:
            raise NotSupported(f"storage option '{key}' is not supported yet")
        else:
            raise InvalidArgument(
                f"overlay: unknown storage option {key}; the overlay driver takes "
                "overlay.mount_program=PATH"
            )
    return OverlayOptions(mount_program=program)


def options_from_env(environ: Mapping[str, str] | None = None) -> OverlayOptions:
    """The overlay options of `STORAGE_OPTS` (`--storage-opt` flags end up there)."""
    env = os.environ if environ is None else environ
    return parse_options(split_env(env.get(ENV, "")))


def _checked_program(path: str) -> str:
    if not path:
        raise InvalidArgument("overlay.mount_program is empty: give the path of a mount program")
    try:
        st = os.stat(path)
    except OSError as e:
        raise InvalidArgument(
            f"overlay: cannot stat mount program {path}: {e.strerror}; install it "
            f"(Debian: apt-get install {PROGRAM}) or fix overlay.mount_program"
        ) from None
    if not stat.S_ISREG(st.st_mode) or not os.access(path, os.X_OK):
        raise InvalidArgument(f"overlay: mount program {path} is not an executable file")
    return path


def find_program() -> str | None:
    """fuse-overlayfs' path, or None when it is not installed."""
    import shutil

    found = shutil.which(PROGRAM)
    if found is not None:
        return found
    for place in _PLACES:
        path = os.path.join(place, PROGRAM)
        if os.access(path, os.X_OK) and os.path.isfile(path):
            return path
    return None


def fallback_program(layer_id: str, cause: OSError | Exception) -> str:
    """The program to mount with when the kernel refused an overlay mount in this user
    namespace; a StorageError saying to install it when there is none."""
    program = find_program()
    if program is None:
        raise StorageError(
            f"mount layer {layer_id}: the kernel refused an overlay mount in this user namespace "
            f"({cause}); install {PROGRAM} (Debian: apt-get install {PROGRAM}) or use "
            "--storage-driver vfs"
        )
    log.debug("kernel overlay refused in the user namespace (%s); using %s", cause, program)
    return program


def mount(program: str, data: str, target: str, *, layer_id: str) -> None:
    """Run `program -o data target` (it returns once the mount is there; its daemon stays)."""
    import subprocess
    import tempfile

    # stderr to a file, not a pipe: the daemon it leaves behind must not hold our pipe open
    with tempfile.TemporaryFile("w+b") as err:
        try:
            proc = subprocess.run(
                [program, "-o", data, target],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                close_fds=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise StorageError(f"mount layer {layer_id} with {program}: {e}") from e
        if proc.returncode == 0:
            return
        err.seek(0)
        text = err.read().decode("utf-8", "replace").strip() or "<stderr empty>"
    hint = ""
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        hint = "; /dev/fuse must be readable and writable (crw-rw-rw-) for rootless mounts"
    raise StorageError(
        f"mount layer {layer_id} with {program} (exit status {proc.returncode}): {text}{hint}"
    )


def fusermount_unmount(target: str) -> bool:
    """`fusermount3 -u target` (or fusermount's): for a FUSE mount umount2 may not remove."""
    import shutil
    import subprocess

    for tool in ("fusermount3", "fusermount"):
        path = shutil.which(tool)
        if path is None:
            continue
        proc = subprocess.run(
            [path, "-u", target],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        if proc.returncode == 0:
            return True
    return False


def kernel_opaque_xattr() -> str:
    """The opaque xattr the kernel's overlay mounts of this store read: trusted.* as the real
    root, user.* (the `userxattr` option) in a user namespace."""
    return _OPAQUE_TRUSTED if os.geteuid() == 0 and not userns.in_user_namespace() else _OPAQUE_USER


def normalize_upper(upper: str, *, mounted: bool) -> None:
    """Turn fuse-overlayfs' markers in the upper directory `upper` into the kernel's (see the
    module's docstring).  While the layer is `mounted`, only what fuse-overlayfs reads either
    way is changed (opaque markers, whiteout files); its `user.fuseoverlayfs.*` bookkeeping on
    files is dropped once it is unmounted.  Walks with directory descriptors and never follows
    a symlink: the upper directory is the container's to shape."""
    opaque_name = kernel_opaque_xattr()
    for _path, _dirs, files, dirfd in os.fwalk(upper, follow_symlinks=False):
        _normalize_dir(dirfd, files, opaque_name, mounted)


def _normalize_dir(dirfd: int, files: list[str], opaque_name: str, mounted: bool) -> None:
    # the kernel's opaque mark first, then fuse-overlayfs' ones go: never a moment without
    if _is_regular(dirfd, _OPAQUE_FILE) or _has_xattr(dirfd, _FUSE_OPAQUE):
        _set_opaque(dirfd, opaque_name)
        _unlink(dirfd, _OPAQUE_FILE)
    _drop_fuse_xattrs(dirfd, None, keep_origin=mounted)
    for name in files:
        if not name.startswith(_WH):
            if not mounted:
                _drop_fuse_xattrs(dirfd, name, keep_origin=False)
            continue
        try:
            st = os.lstat(name, dir_fd=dirfd)
        except FileNotFoundError:
            continue
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            # a whiteout of a `.wh.` name: nothing can have such a name through
            # fuse-overlayfs (it hides them), so this is its own leftover
            _unlink(dirfd, name)
        elif stat.S_ISREG(st.st_mode) and st.st_size == 0 and name != _OPAQUE_FILE:
            _whiteout_from_file(dirfd, name)


def _is_regular(dirfd: int, name: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(name, dir_fd=dirfd).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _has_xattr(fd: int, name: str) -> bool:
    try:
        os.getxattr(fd, name)
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.ENOTSUP, errno.EPERM):
            return False
        raise
    return True


def _drop_fuse_xattrs(dirfd: int, name: str | None, *, keep_origin: bool) -> None:
    """Remove fuse-overlayfs' xattrs from `name` in `dirfd` (None: the directory itself);
    `keep_origin`: all but the opaque one, which is only read, while the layer is mounted."""
    # a name is reached through the directory's descriptor, never through a followed symlink
    path: int | str = dirfd if name is None else f"/proc/self/fd/{dirfd}/{name}"
    follow = name is None  # (a descriptor takes no follow_symlinks=False)
    try:
        names = os.listxattr(path, follow_symlinks=follow)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.ENOENT, errno.EPERM, errno.ENODATA):
            return
        raise
    for xattr in names:
        if not xattr.startswith(_FUSE_XATTR) or (keep_origin and xattr != _FUSE_OPAQUE):
            continue
        try:
            os.removexattr(path, xattr, follow_symlinks=follow)
        except OSError as e:
            if e.errno not in (errno.ENODATA, errno.ENOENT, errno.ENOTSUP):
                raise


def _set_opaque(dirfd: int, name: str) -> None:
    try:
        os.setxattr(dirfd, name, b"y")
    except OSError as e:
        raise StorageError(f"mark a directory opaque ({name}): {e.strerror}") from e


def _whiteout_from_file(dirfd: int, name: str) -> None:
    """`.wh.NAME` (fuse-overlayfs' whiteout where mknod was refused) -> a 0:0 device NAME;
    left as it is when mknod is refused here too."""
    target = name[len(_WH) :]
    if not target or target == "." or target == "..":
        return
    try:
        os.mknod(target, stat.S_IFCHR, os.makedev(0, 0), dir_fd=dirfd)
    except FileExistsError:
        pass  # made again since: the whiteout is void
    except OSError as e:
        if e.errno in (errno.EPERM, errno.ENOTSUP):
            return
        raise
    _unlink(dirfd, name)


def _unlink(dirfd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dirfd)
    except FileNotFoundError:
        pass
