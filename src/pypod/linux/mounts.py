"""Mount options, and opening/creating paths inside a root directory that symlinks cannot escape.

Every mount destination is resolved by the kernel with openat2(RESOLVE_IN_ROOT): a symlink in
the container's rootfs, absolute or full of "..", stays inside the rootfs.  The mount is then made
on ``/proc/self/fd/N`` of the opened destination, so a path swapped after the check cannot
redirect it (the CVE-2021-30465 class).
"""

from __future__ import annotations

import errno
import os
import stat

from pypod.errors import OSLevelError
from pypod.linux import syscalls as sc
from pypod.record import record

# option -> (clear?, flag) as runc's parseMountOptions
_FLAGS: dict[str, tuple[bool, int]] = {
    "acl": (False, sc.MS_POSIXACL),
    "async": (True, sc.MS_SYNCHRONOUS),
    "atime": (True, sc.MS_NOATIME),
    "bind": (False, sc.MS_BIND),
    "defaults": (False, 0),
    "dev": (True, sc.MS_NODEV),
    "diratime": (True, sc.MS_NODIRATIME),
    "dirsync": (False, sc.MS_DIRSYNC),
    "exec": (True, sc.MS_NOEXEC),
    "iversion": (False, 1 << 23),
    "lazytime": (False, sc.MS_LAZYTIME),
    "loud": (True, sc.MS_SILENT),
    "mand": (False, sc.MS_MANDLOCK),
    "noacl": (True, sc.MS_POSIXACL),
    "noatime": (False, sc.MS_NOATIME),
    "nodev": (False, sc.MS_NODEV),
    "nodiratime": (False, sc.MS_NODIRATIME),
    "noexec": (False, sc.MS_NOEXEC),
    "noiversion": (True, 1 << 23),
    "nolazytime": (True, sc.MS_LAZYTIME),
    "nomand": (True, sc.MS_MANDLOCK),
    "norelatime": (True, sc.MS_RELATIME),
    "nostrictatime": (True, sc.MS_STRICTATIME),
    "nosuid": (False, sc.MS_NOSUID),
    "nosymfollow": (False, sc.MS_NOSYMFOLLOW),
    "rbind": (False, sc.MS_BIND | sc.MS_REC),
    "relatime": (False, sc.MS_RELATIME),
    "remount": (False, sc.MS_REMOUNT),
    "ro": (False, sc.MS_RDONLY),
    "rw": (True, sc.MS_RDONLY),
    "silent": (False, sc.MS_SILENT),
    "strictatime": (False, sc.MS_STRICTATIME),
    "suid": (True, sc.MS_NOSUID),
    "sync": (False, sc.MS_SYNCHRONOUS),
    "symfollow": (True, sc.MS_NOSYMFOLLOW),
}
PROPAGATION: dict[str, int] = {
    "private": sc.MS_PRIVATE,
    "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "shared": sc.MS_SHARED,
    "rshared": sc.MS_SHARED | sc.MS_REC,
    "slave": sc.MS_SLAVE,
    "rslave": sc.MS_SLAVE | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE,
    "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}
#: runc-only options that are not mount(2) flags
_EXTENSIONS = {"tmpcopyup"}
#: every mount option this runtime understands (for `features`)
MOUNT_OPTIONS = frozenset([*_FLAGS, *PROPAGATION, *_EXTENSIONS])


@record
class MountOptions:
    flags: int
    propagation: tuple[int, ...]
    data: str
    extensions: frozenset[str]

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & sc.MS_BIND)


def parse_options(options: tuple[str, ...] | list[str]) -> MountOptions:
    flags = 0
    propagation: list[int] = []
    data: list[str] = []
    ext: set[str] = set()
    for opt in options:
        if opt in _FLAGS:
            clear, flag = _FLAGS[opt]
            flags = flags & ~flag if clear else flags | flag
        elif opt in PROPAGATION:
            propagation.append(PROPAGATION[opt])
        elif opt in _EXTENSIONS:
            ext.add(opt)
        else:
            data.append(opt)
    return MountOptions(
        flags=flags, propagation=tuple(propagation), data=",".join(data), extensions=frozenset(ext)
    )


def unescape_mountinfo(field: str) -> str:
    """A /proc/<pid>/mountinfo field: space, tab, newline and backslash are written as \\ooo."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        code = field[i + 1 : i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def open_in_root(root_fd: int, path: str, flags: int = os.O_PATH) -> int:
    """Open `path` (absolute or relative, symlinks followed) as if `root_fd` were `/`."""
    rel = path.lstrip("/") or "."
    return sc.openat2(root_fd, rel, flags, sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS)


def ensure_in_root(root_fd: int, path: str, *, directory: bool, mode: int = 0o755) -> int:
    """Open `path` inside the root, creating what is missing on the way; an O_PATH fd.

    Missing parents are created as directories, the leaf as a directory when `directory` and as
    an empty file otherwise.  Each component is resolved by the kernel inside the root.  A
    dangling symlink on the way (``/escape -> /tmp/x``, ``up -> ../../..``) is followed inside
    the root and its target created there, as runc's securejoin does; nothing is ever created
    through a symlink by the host's rules.
    """
    parts = [p for p in path.split("/") if p and p != "."]
    try:  # the usual case: it is there already (the walk below would end in this same open)
        return open_in_root(root_fd, "/".join(parts) or ".")
    except OSLevelError as e:
        if e.errno != errno.ENOENT:
            raise
    depth = links = 0
    while depth < len(parts):
        name = parts[depth]
        try:
            os.close(open_in_root(root_fd, "/".join(parts[: depth + 1])))
            depth += 1
            continue
        except OSLevelError as e:
            if e.errno != errno.ENOENT:
                raise
        parent = open_in_root(root_fd, "/".join(parts[:depth]) or ".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            target = _readlink_at(parent, name)
            if target is not None:  # dangling: go on from its target, resolved in the root
                links += 1
                if links > 40:
                    raise OSLevelError(f"create {path} in the container", errno=errno.ELOOP)
                base = [] if target.startswith("/") else parts[:depth]
                rest = [p for p in target.split("/") if p and p != "."]
                parts = [*base, *rest, *parts[depth + 1 :]]
                depth = 0
                continue
            if depth == len(parts) - 1 and not directory:
                flags = os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
                os.close(os.open(name, flags, 0o644, dir_fd=parent))
            else:
                os.mkdir(name, mode, dir_fd=parent)
        except FileExistsError:
            pass
        except OSError as e:
            raise OSLevelError(f"create {path} in the container", errno=e.errno or 0) from e
        finally:
            os.close(parent)
        depth += 1
    return open_in_root(root_fd, "/".join(parts) or ".")


def _readlink_at(dir_fd: int, name: str) -> str | None:
    """The target of `name` in `dir_fd` if it is a symlink, else None."""
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError as e:
        if e.errno in (errno.EINVAL, errno.ENOENT):
            return None
        raise


def is_dir_fd(fd: int) -> bool:
    return stat.S_ISDIR(os.fstat(fd).st_mode)


def mount_on_fd(
    source: str | None, target_fd: int, fstype: str | None, flags: int, data: str | None = None
) -> None:
    sc.mount(source, fd_path(target_fd), fstype, flags, data or None)


def statvfs_flags(path: str) -> int:
    """The mount flags (MS_*) of the mount holding `path`, from statvfs."""
    f = os.statvfs(path).f_flag
    flags = 0
    for st_bit, ms_bit in (
        (os.ST_RDONLY, sc.MS_RDONLY),
        (os.ST_NOSUID, sc.MS_NOSUID),
        (os.ST_NODEV, sc.MS_NODEV),
        (os.ST_NOEXEC, sc.MS_NOEXEC),
        (os.ST_NOATIME, sc.MS_NOATIME),
        (os.ST_NODIRATIME, sc.MS_NODIRATIME),
        (os.ST_RELATIME, sc.MS_RELATIME),
    ):
        if f & st_bit:
            flags |= ms_bit
    return flags
