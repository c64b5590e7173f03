"""The container's user: `-u`/image `User` resolved against the rootfs' /etc/passwd and /etc/group.

The rules are runc's `user.GetExecUser`, which podman uses: "name|uid[:group|gid]"; a numeric
user or group with no entry is taken as is; a name must exist ("unable to find user foo: no
matching entries in passwd file"); without an explicit group the user's primary group applies,
plus the groups whose member list names the user (`sgids`).

The files are read from inside the container's root with the kernel resolving the path
(openat2 RESOLVE_IN_ROOT): a symlink in the image cannot make pypod read a host file, and
anything but a regular file (a FIFO that would block, a device) is refused.
"""

from __future__ import annotations

import errno
import os
import stat

from pypod.errors import InvalidArgument, OSLevelError
from pypod.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["ExecUser", "lookup_groups", "lookup_user", "read_etc_file"]

_MAX_ID = 2**31 - 1
#: /etc/passwd or /etc/group larger than this is refused (an image cannot make pypod eat memory)
_MAX_SIZE = 16 * 1024 * 1024


@record
class ExecUser:
    uid: int
    gid: int
    #: the home directory from passwd ("/" when the user has no entry)
    home: str = "/"
    #: groups that list the user as a member (only looked up when no group was given)
    sgids: tuple[int, ...] = ()


def read_etc_file(rootfs: str, path: str) -> str | None:
    """The text of `path` inside `rootfs`, resolved in the root; None when it does not exist."""
    from pypod.linux.mounts import open_in_root

    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = open_in_root(root_fd, path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        except OSLevelError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise InvalidArgument(f"reading {path} in the container's root: {e}") from e
    finally:
        os.close(root_fd)
    return _read_regular(fd, path)


def read_host_file(path: str) -> str | None:
    """A host file given by the user (the source of a bind mount on /etc/passwd)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise InvalidArgument(f"reading {path}: {e.strerror}") from e
    return _read_regular(fd, path)


def _read_regular(fd: int, path: str) -> str:
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidArgument(f"{path} in the container is not a regular file: fix the image")
        if st.st_size > _MAX_SIZE:
            raise InvalidArgument(f"{path} in the container is too large ({st.st_size} bytes)")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(_MAX_SIZE + 1)
    finally:
        os.close(fd)
    return data.decode("utf-8", errors="replace")


def _lines(text: str | None) -> list[list[str]]:
    if text is None:
        return []
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            out.append(line.split(":"))
    return out


def _field(parts: list[str], i: int) -> str:
    return parts[i] if i < len(parts) else ""


def _atoi(text: str) -> int | None:
    """Go's strconv.Atoi: an optional sign and decimal digits, else None."""
    body = text[1:] if text[:1] in "+-" else text
    if not body.isdigit() or not body.isascii():
        return None
    return int(text)


def _lenient_int(text: str) -> int:
    """A number field of passwd/group: runc reads a malformed one as 0."""
    value = _atoi(text)
    return 0 if value is None else value


def _check_range(value: int) -> int:
    if not 0 <= value <= _MAX_ID:
        raise InvalidArgument(f"uids and gids must be in range 0-{_MAX_ID}")
    return value


def lookup_user(spec: str, *, passwd: str | None, group: str | None) -> ExecUser:
    """Resolve "user[:group]" (names or numbers; "" is root) with the texts of passwd and group.

    `passwd`/`group` are None when the file does not exist in the container.
    """
    user_arg, _, group_arg = spec.partition(":")
    uid_arg = _atoi(user_arg)
    gid_arg = _atoi(group_arg)
    uid, gid, home = 0, 0, "/"
    matched_name = ""
    for parts in _lines(passwd):
        name, entry_uid = parts[0], _lenient_int(_field(parts, 2))
        if user_arg == "":
            hit = entry_uid == 0
        elif uid_arg is not None:
            hit = entry_uid == uid_arg
        else:
            hit = name == user_arg
        if hit:
            matched_name = name
            uid, gid = entry_uid, _lenient_int(_field(parts, 3))
            home = _field(parts, 5) or "/"
            break
    else:
        if user_arg != "":
            if uid_arg is None:
                raise InvalidArgument(
                    f"unable to find user {user_arg}: no matching entries in passwd file"
                )
            uid = _check_range(uid_arg)
    sgids: tuple[int, ...] = ()
    if group_arg:
        for parts in _lines(group):
            entry_gid = _lenient_int(_field(parts, 2))
            if (entry_gid == gid_arg) if gid_arg is not None else (parts[0] == group_arg):
                gid = entry_gid
                break
        else:
            if gid_arg is None:
                raise InvalidArgument(
                    f"unable to find group {group_arg}: no matching entries in group file"
                )
            gid = _check_range(gid_arg)
    elif matched_name:
        sgids = tuple(
            _lenient_int(_field(parts, 2))
            for parts in _lines(group)
            if matched_name in _field(parts, 3).split(",")
        )
    return ExecUser(uid=uid, gid=gid, home=home, sgids=sgids)


def lookup_groups(names: Sequence[str], *, group: str | None) -> tuple[int, ...]:
    """`--group-add` values (group names or gids) -> gids, with the container's group file."""
    out = []
    entries = _lines(group)
    for name in names:
        number = _atoi(name)
        if number is not None:
            out.append(_check_range(number))
            continue
        for parts in entries:
            if parts[0] == name:
                out.append(_lenient_int(_field(parts, 2)))
                break
        else:
            raise InvalidArgument(f"unable to find group {name}: no matching entries in group file")
    return tuple(out)
