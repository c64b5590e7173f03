"""The mounts of a `pypod run` container, as podman 4.3 lists them in config.json.

In order: the runtime's file systems (/proc, /dev, /sys, /dev/pts, /dev/mqueue, /dev/shm,
/sys/fs/cgroup), the tmpfs of `--read-only` (/tmp, /var/tmp, /run), the user's mounts (`-v`,
`--mount`, `--tmpfs`; a user mount replaces a default one at the same place), then the files
pypod binds in (/etc/hosts...).  The list is then sorted by the depth of the destination, keeping
that order among equals (podman's `sortMounts`), so that a parent is mounted before its children.
"""

from __future__ import annotations

import os

from pypod.engine.config import ContainerConfig, MountSpec
from pypod.errors import InvalidArgument, NotSupported
from pypod.oci.runtime_spec import Mount

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "BIND_OPTIONS",
    "PROPAGATIONS",
    "bind_options",
    "clean_path",
    "default_mounts",
    "read_only_tmpfs",
    "sort_mounts",
    "tmpfs_options",
    "user_mounts",
]

PROPAGATIONS = frozenset(
    {"private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable"}
)
#: the options of the files pypod binds in (podman's bindOptions)
BIND_OPTIONS = ("bind", "rprivate")
_READ_ONLY_BIND = ("ro", "nosuid", "noexec", "nodev")
_NOSUID_NOEXEC_NODEV = ("nosuid", "noexec", "nodev")
#: SELinux relabelling: accepted and ignored (no SELinux here), as podman does without it
_IGNORED = frozenset({"z", "Z"})


def clean_path(path: str) -> str:
    """Go's filepath.Clean for an absolute path."""
    return os.path.normpath(path).replace("//", "/") if path else path


def _depth(m: Mount) -> int:
    return clean_path(m.destination).count("/")


def sort_mounts(mounts: Iterable[Mount]) -> list[Mount]:
    """Shallow destinations first, the given order kept among equals (podman's sortMounts)."""
    return sorted(mounts, key=_depth)


_DEVPTS = ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5")
#: /proc bound from the host (rootless with the host's pid namespace, as podman)
_PROC_BIND = ("rbind", "nosuid", "noexec", "nodev")


def default_mounts(cfg: ContainerConfig, *, shm_source: str | None, cgroup_rw: bool) -> list[Mount]:
    """/proc, /dev, /sys, /dev/pts, /dev/mqueue, /dev/shm and /sys/fs/cgroup.

    `shm_source`: a host directory to bind on /dev/shm (`--ipc host`), None for a tmpfs of
    `cfg.shm_size`; `cgroup_rw`: sysfs and the cgroups writable (`--privileged`).
    """
    mounts = [
        Mount(destination="/proc", type="proc", source="proc", options=_NOSUID_NOEXEC_NODEV),
        Mount(
            destination="/dev",
            type="tmpfs",
            source="tmpfs",
            options=("nosuid", "noexec", "strictatime", "mode=755", "size=65536k"),
        ),
    ]
    from pypod.linux import userns

    if cfg.pid == "host" and userns.rootless():  # a user namespace cannot mount the host's
        mounts[0] = Mount(destination="/proc", type="bind", source="/proc", options=_PROC_BIND)
    devpts: tuple[str, ...] = _DEVPTS
    if userns.rootless() and not userns.is_mapped(5):  # a single-id map: no tty group (podman)
        devpts = tuple(o for o in devpts if o != "gid=5")
    if cgroup_rw:
        sys_options: tuple[str, ...] = ("rprivate", *_NOSUID_NOEXEC_NODEV, "rw")
    else:
        sys_options = (*_NOSUID_NOEXEC_NODEV, "ro")
    mounts += [
        Mount(destination="/sys", type="sysfs", source="sysfs", options=sys_options),
        Mount(
            destination="/dev/pts",
            type="devpts",
            source="devpts",
            options=devpts,
        ),
        Mount(
            destination="/dev/mqueue", type="mqueue", source="mqueue", options=_NOSUID_NOEXEC_NODEV
        ),
    ]
    if shm_source is not None:
        mounts.append(
            Mount(
                destination="/dev/shm",
                type="bind",
                source=shm_source,
                options=(*BIND_OPTIONS, *_NOSUID_NOEXEC_NODEV),
            )
        )
    else:
        size = (f"size={cfg.shm_size}",) if cfg.shm_size > 0 else ()
        mounts.append(
            Mount(
                destination="/dev/shm",
                type="tmpfs",
                source="shm",
                options=(*_NOSUID_NOEXEC_NODEV, "mode=1777", *size),
            )
        )
    mounts.append(
        Mount(
            destination="/sys/fs/cgroup",
            type="cgroup",
            source="cgroup",
            options=(
                "rprivate",
                *_NOSUID_NOEXEC_NODEV,
                "relatime",
                "rw" if cgroup_rw else "ro",
            ),
        )  # fmt: skip
    )
    return mounts


def read_only_tmpfs() -> list[Mount]:
    """`--read-only` with `--read-only-tmpfs` (the default): writable /tmp, /var/tmp and /run."""
    options = ("rw", "rprivate", "nosuid", "nodev", "tmpcopyup")
    return [
        Mount(destination=d, type="tmpfs", source="tmpfs", options=options)
        for d in ("/tmp", "/var/tmp", "/run")
    ]


def _has_any(options: Iterable[str], wanted: Iterable[str]) -> bool:
    return any(o in wanted for o in options)


def bind_options(options: tuple[str, ...]) -> tuple[str, ...]:
    """A bind mount's options with podman's defaults: rw, rprivate and rbind unless given."""
    out = [o for o in options if o not in _IGNORED and o != "U"]  # U: chown_tree, by the caller
    for o in out:
        if o in ("O", "idmap") or o.startswith("idmap="):
            raise NotSupported(f"volume option '{o}' is not supported yet")
    if not _has_any(out, ("ro", "rw")):
        out.append("rw")
    if not _has_any(out, PROPAGATIONS):
        out.append("rprivate")
    if not _has_any(out, ("bind", "rbind")):
        out.append("rbind")
    return tuple(out)


def tmpfs_options(options: tuple[str, ...], *, uid: int, gid: int, chown: bool) -> tuple[str, ...]:
    """A tmpfs' options with podman's defaults: rw, rprivate, nosuid, nodev, tmpcopyup."""
    out = [o for o in options if o not in _IGNORED and o not in ("U", "notmpcopyup")]
    if chown or "U" in options:
        out += [f"uid={uid}", f"gid={gid}"]
    if not _has_any(out, ("ro", "rw")):
        out.append("rw")
    if not _has_any(out, PROPAGATIONS):
        out.append("rprivate")
    if not _has_any(out, ("suid", "nosuid")):
        out.append("nosuid")
    if not _has_any(out, ("dev", "nodev")):
        out.append("nodev")
    if "notmpcopyup" not in options and "tmpcopyup" not in out:
        out.append("tmpcopyup")
    return tuple(out)


def user_mounts(
    specs: tuple[MountSpec, ...], *, uid: int, gid: int
) -> tuple[list[Mount], list[str]]:
    """`cfg.mounts` as OCI mounts, and the bind sources to chown (`:U`) to the container's user
    (with :func:`chown_tree`, once every other check has passed)."""
    out: list[Mount] = []
    chowns: list[str] = []
    seen: set[str] = set()
    for m in specs:
        if not m.destination.startswith("/"):
            raise InvalidArgument(
                f"invalid container path {m.destination!r}, must be an absolute path"
            )
        destination = clean_path(m.destination)
        if destination in seen:
            raise InvalidArgument(f"{destination!r}: duplicate mount destination")
        seen.add(destination)
        if m.type == "tmpfs":
            options = tmpfs_options(m.options, uid=uid, gid=gid, chown=m.chown)
            out.append(
                Mount(destination=destination, type="tmpfs", source="tmpfs", options=options)
            )
            continue
        if m.type != "bind":
            raise NotSupported(f"mount type '{m.type}' is not supported yet: use bind or tmpfs")
        if not m.source or not os.path.isabs(m.source):
            what = f"volume {m.volume}" if m.volume else f"mount on {destination}"
            raise InvalidArgument(
                f"{what}: no host path to bind (the engine resolves volumes first)"
            )
        if not os.path.exists(m.source):
            raise InvalidArgument(f"statfs {m.source}: no such file or directory")
        if m.chown or "U" in m.options:
            chowns.append(m.source)
        options = bind_options(m.options)
        out.append(Mount(destination=destination, type="bind", source=m.source, options=options))
    return out, chowns


def chown_tree(path: str, uid: int, gid: int) -> None:
    """`:U`: give `path` and everything below it to uid:gid (symlinks themselves, not followed)."""
    try:
        os.lchown(path, uid, gid)
        if os.path.isdir(path) and not os.path.islink(path):
            for top, dirs, files in os.walk(path):
                for name in dirs + files:
                    os.lchown(os.path.join(top, name), uid, gid)
    except OSError as e:
        raise InvalidArgument(f"chown {path} for :U: {e.strerror}") from e


def file_mounts(files: dict[str, str], *, read_only: bool) -> list[Mount]:
    """Bind mounts of the generated files; read-only ones with `--read-only` (not /dev/shm)."""
    extra = _READ_ONLY_BIND if read_only else ()
    return [
        Mount(destination=dst, type="bind", source=src, options=(*BIND_OPTIONS, *extra))
        for dst, src in files.items()
    ]
