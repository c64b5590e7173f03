"""Host devices for the container: `--device HOST[:CONTAINER][:PERMISSIONS]` and `--privileged`.

As podman: the host node is stat'ed for its type, numbers, mode and owner; a directory adds
every device below it; each `--device` also gets a device-cgroup rule allowing its
permissions ("rwm" by default).  `--privileged` adds every device of the host's /dev (runc's
`HostDevices` walk: not pts, shm, fd, mqueue, console or symlinks).
"""

from __future__ import annotations

import os
import stat

from pypod.errors import InvalidArgument
from pypod.oci.runtime_spec import LinuxDevice, LinuxDeviceCgroup

__all__ = ["host_devices", "parse_device", "user_devices"]

#: directories of /dev that runc's HostDevices does not descend into
_SKIP_DIRS = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"})


def _valid_mode(mode: str) -> bool:
    """podman's IsValidDeviceMode: non-empty, only r, w and m, each at most once."""
    return bool(mode) and len(set(mode)) == len(mode) and set(mode) <= set("rwm")


def parse_device(text: str) -> tuple[str, str, str]:
    """`--device` -> (host path, container path, permissions), as podman's ParseDevice."""
    parts = text.split(":")
    if len(parts) > 3:
        raise InvalidArgument(f"invalid device specification: {text}")
    src, dst, perms = parts[0], "", "rwm"
    if len(parts) == 3:
        if not _valid_mode(parts[2]):
            raise InvalidArgument(f"invalid device mode: {parts[2]}")
        perms = parts[2]
    if len(parts) >= 2:
        if _valid_mode(parts[1]):
            perms = parts[1]
        else:
            if parts[1] and not parts[1].startswith("/"):
                raise InvalidArgument(f"invalid device mode: {parts[1]}")
            dst = parts[1]
    return src, dst or src, perms


def _device(host_path: str, container_path: str, st: os.stat_result) -> LinuxDevice | None:
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        return None
    return LinuxDevice(
        path=container_path,
        type=kind,
        major=os.major(st.st_rdev),
        minor=os.minor(st.st_rdev),
        file_mode=st.st_mode,
        uid=st.st_uid,
        gid=st.st_gid,
    )


def user_devices(
    specs: tuple[str, ...],
) -> tuple[tuple[LinuxDevice, ...], tuple[LinuxDeviceCgroup, ...]]:
    """The devices of the `--device` options and the cgroup rules that allow them."""
    devices: list[LinuxDevice] = []
    rules: list[LinuxDeviceCgroup] = []
    for text in specs:
        src, dst, perms = parse_device(text)
        try:
            st = os.stat(src)
        except OSError as e:
            raise InvalidArgument(f"stat {src}: {(e.strerror or str(e)).lower()}") from e
        if stat.S_ISDIR(st.st_mode):
            found = [d for d in _walk(src, dst) if not any(d.path == old.path for old in devices)]
        else:
            one = _device(src, dst, st)
            if one is None:
                raise InvalidArgument(f"{src} is not a valid device: not a device node")
            found = [one]
        for d in found:
            devices.append(d)
            rules.append(
                LinuxDeviceCgroup(
                    allow=True, type=d.type, major=d.major, minor=d.minor, access=perms
                )
            )
    return tuple(devices), tuple(rules)


def _walk(host_dir: str, container_dir: str) -> list[LinuxDevice]:
    """Every device node below `host_dir` (sorted, symlinks not followed), re-rooted."""
    out: list[LinuxDevice] = []
    try:
        names = sorted(os.listdir(host_dir))
    except OSError as e:
        raise InvalidArgument(f"reading {host_dir}: {e.strerror}") from e
    for name in names:
        path = os.path.join(host_dir, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        target = os.path.join(container_dir, name)
        if stat.S_ISDIR(st.st_mode):
            out.extend(_walk(path, target))
            continue
        d = _device(path, target, st)
        if d is not None:
            out.append(d)
    return out


def host_devices(root: str = "/dev") -> tuple[LinuxDevice, ...]:
    """Every device of the host's /dev, for `--privileged` (runc's HostDevices)."""
    return tuple(_host_walk(root))


def _host_walk(directory: str) -> list[LinuxDevice]:
    out: list[LinuxDevice] = []
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return out
    for name in names:
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            if name not in _SKIP_DIRS:
                out.extend(_host_walk(path))
            continue
        if name == "console":
            continue
        d = _device(path, path, st)
        if d is not None:
            out.append(d)
    return out
