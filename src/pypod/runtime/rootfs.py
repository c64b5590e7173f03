"""The container's filesystem, step by step, as runc's rootfs_linux.go orders it.

Before pivot_root (``prepare``): root propagation, rootfs bind, the config's mounts, devices and
/dev symlinks.  After it (``finalize_*``): masked and read-only paths, read-only root.
Every destination is resolved inside the rootfs by the kernel (see ``pypod.linux.mounts``).
"""

from __future__ import annotations

import errno
import os
import stat

from pypod.errors import ConfigError, OSLevelError
from pypod.linux import mounts
from pypod.linux import syscalls as sc
from pypod.linux.cgroups.paths import CgroupMount, parse_mountinfo
from pypod.log import get_logger
from pypod.oci.runtime_spec import LinuxDevice, Mount, Spec

log = get_logger(__name__)

#: created in every container that does not bind-mount its /dev (runc's defaults)
DEFAULT_DEVICES: tuple[tuple[str, str, int, int], ...] = (
    ("/dev/null", "c", 1, 3),
    ("/dev/zero", "c", 1, 5),
    ("/dev/full", "c", 1, 7),
    ("/dev/tty", "c", 5, 0),
    ("/dev/urandom", "c", 1, 9),
    ("/dev/random", "c", 1, 8),
)
_DEV_SYMLINKS = (
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
)
_LOCKED = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_RDONLY
#: root propagations after which no mount of the namespace is shared (a shared mount made a
#: slave, or private, is no longer shared): no parent mount to make private (and no need to
#: read mountinfo for it)
_NOTHING_SHARED_AFTER = (sc.MS_SLAVE | sc.MS_REC, sc.MS_PRIVATE | sc.MS_REC)


def prepare(
    spec: Spec,
    rootfs: str,
    bundle: str,
    *,
    userns: bool,
    cgroups: tuple[str, ...] = (),
    cgroup_mounts: tuple[CgroupMount, ...] = (),
) -> None:
    """Everything up to pivot_root, in the container's new mount namespace.

    `cgroup_mounts`: the host's cgroup filesystems as the parent found them just before it
    forked us (our mount namespace is a copy of its), () to read them from mountinfo here.
    """
    linux = spec.linux
    prop = mounts.PROPAGATION.get(linux.rootfs_propagation if linux else "", 0)
    prop = prop or (sc.MS_SLAVE | sc.MS_REC)
    sc.mount(None, "/", None, prop, None)
    if prop not in _NOTHING_SHARED_AFTER:
        _make_parent_mount_private(rootfs)
    sc.mount(rootfs, rootfs, "bind", sc.MS_BIND | sc.MS_REC, None)
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, m in enumerate(spec.mounts):
            _mount_one(
                root_fd,
                m,
                bundle,
                userns=userns,
                cgroups=cgroups,
                cgroup_mounts=cgroup_mounts,
                key=f"mounts[{i}]",
            )
        if not any(m.destination.rstrip("/") == "/dev" and _is_bind(m) for m in spec.mounts):
            _create_devices(root_fd, linux.devices if linux else (), userns=userns)
            _dev_symlinks(root_fd)
        if spec.process is not None and spec.process.cwd:
            os.close(mounts.ensure_in_root(root_fd, spec.process.cwd, directory=True))
    finally:
        os.close(root_fd)


def _make_parent_mount_private(rootfs: str) -> None:
    """Make the mount holding `rootfs` private if it is shared (runc's rootfsParentMountPrivate).

    pivot_root refuses a new root whose parent mount is shared (EINVAL): that happens with
    rootfsPropagation "shared" (podman sets it for an rshared bind) or on a host whose mounts
    are shared, as systemd makes them.  It also keeps the rootfs bind out of other namespaces.
    """
    target = os.path.realpath(rootfs)
    point, shared = "", False
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split(" - ", 1)[0].split()
            mount_point = mounts.unescape_mountinfo(fields[4])
            inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) >= len(point):  # the deepest, the last when stacked
                point, shared = mount_point, any(o.startswith("shared:") for o in fields[6:])
    if shared:
        sc.mount(None, point, None, sc.MS_PRIVATE, None)


def _is_bind(m: Mount) -> bool:
    return m.type == "bind" or any(o in ("bind", "rbind") for o in m.options)


def _mount_one(
    root_fd: int,
    m: Mount,
    bundle: str,
    *,
    userns: bool,
    cgroups: tuple[str, ...],
    cgroup_mounts: tuple[CgroupMount, ...] = (),
    key: str,
) -> None:
    opts = mounts.parse_options(m.options)
    if m.type == "cgroup":
        _mount_cgroup(root_fd, m, opts, cgroups, cgroup_mounts)
        return
    if _is_bind(m):
        source = m.source or ""
        if not os.path.isabs(source):
            source = os.path.join(bundle, source)
        try:
            is_dir = stat.S_ISDIR(os.stat(source).st_mode)
        except OSError as e:
            raise ConfigError(f"bind mount source {source}: {e.strerror}", key=key) from e
        dest = mounts.ensure_in_root(root_fd, m.destination, directory=is_dir)
        try:
            bind_flags = sc.MS_BIND | (opts.flags & sc.MS_REC)
            mounts.mount_on_fd(source, dest, "bind", bind_flags)
            dest = _reopen(root_fd, m.destination, dest)
            extra = opts.flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
            if extra:
                if userns:  # flags locked by the source mount cannot be cleared in a userns
                    extra |= mounts.statvfs_flags(source) & _LOCKED
                mounts.mount_on_fd(None, dest, None, sc.MS_BIND | sc.MS_REMOUNT | extra)
            _propagate(dest, opts.propagation)
        finally:
            os.close(dest)
        return
    old_mode = _existing_mode(root_fd, m.destination) if m.type == "tmpfs" else None
    dest = mounts.ensure_in_root(root_fd, m.destination, directory=True)
    try:
        if m.type == "tmpfs":
            dest = _mount_tmpfs(root_fd, dest, m, opts, old_mode)
        else:
            try:
                mounts.mount_on_fd(m.source, dest, m.type, opts.flags, opts.data)
            except OSLevelError as e:
                if not (userns and e.errno == errno.EPERM and m.type in ("sysfs", "mqueue")):
                    raise
                # without a network/ipc namespace of its own, a userns may not mount these:
                # bind the host's instead, as runc does
                host = "/sys" if m.type == "sysfs" else "/dev/mqueue"
                mounts.mount_on_fd(host, dest, "bind", sc.MS_BIND | sc.MS_REC)
                dest = _reopen(root_fd, m.destination, dest)
                ro = opts.flags & sc.MS_RDONLY
                mounts.mount_on_fd(
                    None, dest, None, sc.MS_BIND | sc.MS_REMOUNT | ro | mounts.statvfs_flags(host)
                )
        if opts.propagation:
            dest = _reopen(root_fd, m.destination, dest)
            _propagate(dest, opts.propagation)
    finally:
        os.close(dest)


def _reopen(root_fd: int, path: str, old_fd: int) -> int:
    """An fd of what is at `path` now (an fd opened before a mount names what is under it)."""
    os.close(old_fd)
    return mounts.open_in_root(root_fd, path)


def _propagate(dest_fd: int, propagation: tuple[int, ...]) -> None:
    for flag in propagation:
        mounts.mount_on_fd(None, dest_fd, None, flag)


def _existing_mode(root_fd: int, path: str) -> int | None:
    """The permission bits of what is at `path` in the root, None when nothing is there yet."""
    try:
        fd = mounts.open_in_root(root_fd, path)
    except OSLevelError as e:
        if e.errno == errno.ENOENT:
            return None
        raise
    try:
        return stat.S_IMODE(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


def _mount_tmpfs(
    root_fd: int, dest_fd: int, m: Mount, opts: mounts.MountOptions, old_mode: int | None
) -> int:
    """A tmpfs as runc's mountToRootfs makes one; returns an fd of the new mount.

    It is mounted writable, filled in (`tmpcopyup`: a copy of the directory below), given the
    mode of the directory it covers when there was one (a tmpfs over an image's /tmp stays
    1777, as with runc and Docker), and only then made read-only if asked.
    """
    copy_up = "tmpcopyup" in opts.extensions
    below = None
    if copy_up:
        below = os.open(mounts.fd_path(dest_fd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        mounts.mount_on_fd(m.source, dest_fd, m.type, opts.flags & ~sc.MS_RDONLY, opts.data)
        dest_fd = _reopen(root_fd, m.destination, dest_fd)
        if below is not None:
            on_top = os.open(mounts.fd_path(dest_fd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                _copy_tree(below, on_top)
            except OSError as e:
                raise OSLevelError(
                    f"tmpcopyup: copy {m.destination} onto its tmpfs", errno=e.errno or 0
                ) from e
            finally:
                os.close(on_top)
        if old_mode is not None:
            os.chmod(mounts.fd_path(dest_fd), old_mode)
        if opts.flags & sc.MS_RDONLY:
            mounts.mount_on_fd(None, dest_fd, None, sc.MS_REMOUNT | opts.flags)
    finally:
        if below is not None:
            os.close(below)
    return dest_fd


def _copy_tree(src_dir: int, dst_dir: int) -> None:
    """Copy a directory's entries with their owners and modes (runc's fileutils.CopyDirectory).

    Regular files, directories, symlinks, device nodes and fifos; times are not kept, and the
    modes are set explicitly so that the umask does not narrow them.
    """
    with os.scandir(src_dir) as entries:
        for entry in entries:
            name = entry.name
            st = entry.stat(follow_symlinks=False)
            kind = stat.S_IFMT(st.st_mode)
            if kind == stat.S_IFDIR:
                os.mkdir(name, 0o700, dir_fd=dst_dir)
                flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                src = os.open(name, flags, dir_fd=src_dir)
                try:
                    dst = os.open(name, flags, dir_fd=dst_dir)
                    try:
                        _copy_tree(src, dst)
                    finally:
                        os.close(dst)
                finally:
                    os.close(src)
            elif kind == stat.S_IFLNK:
                os.symlink(os.readlink(name, dir_fd=src_dir), name, dir_fd=dst_dir)
            elif kind == stat.S_IFREG:
                _copy_file(src_dir, dst_dir, name, st.st_size)
            elif kind in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO):
                os.mknod(name, kind | 0o600, st.st_rdev, dir_fd=dst_dir)
            else:  # a socket: nothing to copy
                continue
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dst_dir, follow_symlinks=False)
            if kind != stat.S_IFLNK:
                os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dst_dir)


def _copy_file(src_dir: int, dst_dir: int, name: str, size: int) -> None:
    src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_dir)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        dst = os.open(name, flags, 0o600, dir_fd=dst_dir)
        try:
            offset = 0
            while offset < size:
                sent = os.sendfile(dst, src, offset, size - offset)
                if sent == 0:  # the file shrank meanwhile
                    break
                offset += sent
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _own_cgroups() -> list[tuple[str, str]]:
    """(controllers, path) of this process, from /proc/self/cgroup."""
    out = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            out.append((controllers, path))
    return out


def _cgroup_mounts(rootfs: str, known: tuple[CgroupMount, ...] = ()) -> list[CgroupMount]:
    """The cgroup filesystems of this mount namespace (`known`, else from mountinfo), each
    hierarchy once.

    Copies already inside `rootfs` (a rootless config binds the host's /sys recursively) are
    left out: each hierarchy is listed at its host mount point.
    """
    if known:
        found = list(known)
    else:
        with open("/proc/self/mountinfo") as f:
            found = parse_mountinfo(f.read())
    inside = rootfs.rstrip("/") + "/"
    return [m for m in found if not m.mountpoint.startswith(inside)]


def _cgroup_dir(point: str, cgroups: tuple[str, ...]) -> str | None:
    """The container's directory in the hierarchy mounted at `point`, if it has one."""
    return next((d for d in cgroups if d == point or d.startswith(point + "/")), None)


def _mount_cgroup(
    root_fd: int,
    m: Mount,
    opts: mounts.MountOptions,
    cgroups: tuple[str, ...],
    known: tuple[CgroupMount, ...] = (),
) -> None:
    """/sys/fs/cgroup: the container's own cgroups bound from the host's hierarchies.

    `cgroups` are the container's directories (the init is moved into them while this runs);
    a hierarchy without one gets the cgroup this process is in, as runc does.
    """
    own: list[tuple[str, str]] | None = None  # read only for a hierarchy without one of ours
    dest = mounts.ensure_in_root(root_fd, m.destination, directory=True)
    flags = opts.flags & ~sc.MS_RDONLY
    try:
        host_mounts = _cgroup_mounts(os.readlink(mounts.fd_path(root_fd)), known)
        if len(host_mounts) == 1 and host_mounts[0].version == 2:  # unified: one hierarchy
            point = host_mounts[0].mountpoint
            source = _cgroup_dir(point, cgroups) or point + next(
                p for c, p in _own_cgroups() if c == ""
            )
            mounts.mount_on_fd(source, dest, "bind", sc.MS_BIND | sc.MS_REC)
            dest = _reopen(root_fd, m.destination, dest)
            mounts.mount_on_fd(None, dest, None, sc.MS_BIND | sc.MS_REMOUNT | opts.flags)
            return
        mounts.mount_on_fd("tmpfs", dest, "tmpfs", flags, "mode=755")
        dest = _reopen(root_fd, m.destination, dest)
        dest_dir = os.open(mounts.fd_path(dest), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for hierarchy in host_mounts:
                if hierarchy.version == 2:  # hybrid: runc leaves the unified hierarchy out
                    continue
                point, wanted = hierarchy.mountpoint, set(hierarchy.controllers)
                bound = _cgroup_dir(point, cgroups)
                if bound is None:
                    own = _own_cgroups() if own is None else own
                    own_path = next((p for c, p in own if c and set(c.split(",")) <= wanted), None)
                    if own_path is None:
                        continue
                    bound = point + own_path
                name = os.path.basename(point)
                os.mkdir(name, 0o755, dir_fd=dest_dir)
                sub = os.open(name, os.O_PATH | os.O_CLOEXEC, dir_fd=dest_dir)
                try:
                    mounts.mount_on_fd(bound, sub, "bind", sc.MS_BIND | sc.MS_REC)
                    os.close(sub)
                    sub = os.open(name, os.O_PATH | os.O_CLOEXEC, dir_fd=dest_dir)
                    mounts.mount_on_fd(None, sub, None, sc.MS_BIND | sc.MS_REMOUNT | opts.flags)
                finally:
                    os.close(sub)
        finally:
            os.close(dest_dir)
        if opts.flags & sc.MS_RDONLY:
            mounts.mount_on_fd(None, dest, None, sc.MS_REMOUNT | opts.flags)
    finally:
        os.close(dest)


def _create_devices(root_fd: int, devices: tuple[LinuxDevice, ...], *, userns: bool) -> None:
    wanted: dict[str, tuple[str, int, int, int, int, int]] = {}
    for path, kind, major, minor in DEFAULT_DEVICES:
        wanted[path] = (kind, major, minor, 0o666, 0, 0)
    for d in devices:
        mode = d.file_mode if d.file_mode is not None else 0o666
        wanted[d.path] = (d.type, d.major or 0, d.minor or 0, mode, d.uid or 0, d.gid or 0)
    parents: dict[str, int] = {}  # each directory resolved once (all of /dev, usually)
    old_umask = os.umask(0)
    try:
        for path, (kind, major, minor, mode, uid, gid) in wanted.items():
            parent_path, name = os.path.split(path)
            parent_dir = parents.get(parent_path)
            if parent_dir is None:
                parent = mounts.ensure_in_root(root_fd, parent_path, directory=True)
                try:
                    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
                    parent_dir = parents[parent_path] = os.open(mounts.fd_path(parent), flags)
                finally:
                    os.close(parent)
            _make_device(parent_dir, path, name, kind, major, minor, mode, uid, gid, userns=userns)
    finally:
        os.umask(old_umask)
        for fd in parents.values():
            os.close(fd)


def _make_device(
    parent_dir: int,
    path: str,
    name: str,
    kind: str,
    major: int,
    minor: int,
    mode: int,
    uid: int,
    gid: int,
    *,
    userns: bool,
) -> None:
    """Device `path` as `name` in `parent_dir` (its directory, opened inside the rootfs)."""
    try:
        try:
            os.unlink(name, dir_fd=parent_dir)
        except FileNotFoundError:
            pass
        if userns:  # mknod is not allowed in a user namespace: bind the host's node
            os.close(
                os.open(name, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644, dir_fd=parent_dir)
            )
            node = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_dir)
            try:
                mounts.mount_on_fd(path, node, "bind", sc.MS_BIND)
            finally:
                os.close(node)
            return
        type_bits = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
        os.mknod(
            name, type_bits[kind] | (mode & 0o7777), os.makedev(major, minor), dir_fd=parent_dir
        )
        os.chown(name, uid, gid, dir_fd=parent_dir, follow_symlinks=False)
    except OSError as e:
        raise OSLevelError(f"create device {path}", errno=e.errno or 0) from e


def _dev_symlinks(root_fd: int) -> None:
    dev = mounts.ensure_in_root(root_fd, "/dev", directory=True)
    dev_dir = os.open(mounts.fd_path(dev), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    os.close(dev)
    try:
        links = list(_DEV_SYMLINKS)
        if os.path.exists("/proc/kcore"):
            links.append(("/proc/kcore", "core"))
        for target, name in links:
            try:
                os.symlink(target, name, dir_fd=dev_dir)
            except FileExistsError:
                pass
        try:
            os.unlink("ptmx", dir_fd=dev_dir)
        except FileNotFoundError:
            pass
        os.symlink("pts/ptmx", "ptmx", dir_fd=dev_dir)
    finally:
        os.close(dev_dir)


def bind_console(slave_path: str) -> None:
    """Bind the container's pty slave onto /dev/console (after pivot_root)."""
    if not os.path.exists("/dev/console"):
        os.close(os.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
    sc.mount(slave_path, "/dev/console", "bind", sc.MS_BIND, None)


def pivot(rootfs: str, *, no_pivot: bool) -> None:
    """Make `rootfs` the root: pivot_root(".", ".") and detach the old root, as runc does."""
    os.chdir(rootfs)
    if no_pivot:
        sc.mount(rootfs, "/", None, sc.MS_MOVE, None)
        os.chroot(".")
    else:
        old_root = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            sc.pivot_root(".", ".")
            # The old root is now stacked on the new one.  Step onto it through the fd opened
            # before (as runc does; "." would name the new root): make it rslave so that its
            # unmount does not reach the host, leaving the container's mounts (rshared binds)
            # with the propagation their config gave them.
            os.fchdir(old_root)
            sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC, None)
            sc.umount2(".", sc.MNT_DETACH)
        finally:
            os.close(old_root)
    os.chdir("/")


def finalize(spec: Spec) -> None:
    """After pivot_root: masked paths, read-only paths, read-only root."""
    linux = spec.linux
    if linux is not None:
        for path in linux.readonly_paths:
            _readonly(path)
        for path in linux.masked_paths:
            _mask(path)
    if spec.root is not None and spec.root.readonly:
        flags = mounts.statvfs_flags("/") | sc.MS_RDONLY
        sc.mount(None, "/", None, sc.MS_BIND | sc.MS_REMOUNT | flags, None)


def _readonly(path: str) -> None:
    try:
        sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC, None)
    except OSLevelError as e:
        if e.errno == errno.ENOENT:
            return
        raise
    flags = mounts.statvfs_flags(path) | sc.MS_RDONLY
    sc.mount(None, path, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_REC | flags, None)


def _mask(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY, None)
    else:
        sc.mount("/dev/null", path, None, sc.MS_BIND, None)
