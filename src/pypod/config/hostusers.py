"""The host's user and group names by id, as a tar header's Uname and Gname carry them.

Go's archive/tar (FileInfoHeader, so buildah's copier and podman's archives) names a file's
owner from the host's user database; an id without an entry gets "".  One `HostNames` looks
each id up once; the tar writers (the build's history digest, `cp`/`export`) each keep one.
"""

from __future__ import annotations

import grp
import pwd
from collections.abc import Callable

__all__ = ["HostNames"]


class HostNames:
    """Names of host uids and gids ("" when the database has none), cached per instance."""

    def __init__(self) -> None:
        self._users: dict[int, str] = {}
        self._groups: dict[int, str] = {}

    def user(self, uid: int) -> str:
        return _cached(self._users, uid, lambda: pwd.getpwuid(uid).pw_name)

    def group(self, gid: int) -> str:
        return _cached(self._groups, gid, lambda: grp.getgrgid(gid).gr_name)


def _cached(cache: dict[int, str], key: int, lookup: Callable[[], str]) -> str:
    name = cache.get(key)
    if name is None:
        try:
            name = lookup()
        except KeyError:
            name = ""
        cache[key] = name
    return name
