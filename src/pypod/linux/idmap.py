"""User-namespace id maps: written directly by root, through newuidmap/newgidmap otherwise."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol

from pypod.errors import OSLevelError, PermissionDenied


class IDMapping(Protocol):
    @property
    def container_id(self) -> int: ...
    @property
    def host_id(self) -> int: ...
    @property
    def size(self) -> int: ...


def format_map(mappings: Sequence[IDMapping]) -> str:
    return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in mappings)


def _is_own_single_id(mappings: Sequence[IDMapping], own: int) -> bool:
    return len(mappings) == 1 and mappings[0].size == 1 and mappings[0].host_id == own


def write_maps(pid: int, uid_maps: Sequence[IDMapping], gid_maps: Sequence[IDMapping]) -> None:
    """Write the uid and gid maps of the user namespace `pid` lives in.

    Root writes the files itself.  An unprivileged caller can map only its own ids, one each
    (then setgroups must be denied first); larger maps go through the setuid helpers
    newuidmap/newgidmap, which check /etc/subuid and /etc/subgid.
    """
    privileged = os.geteuid() == 0
    for kind, maps, own in (("gid", gid_maps, os.getegid()), ("uid", uid_maps, os.geteuid())):
        if not maps:
            continue
        if privileged or _is_own_single_id(maps, own):
            if kind == "gid" and not privileged:
                _write(f"/proc/{pid}/setgroups", "deny")
            _write(f"/proc/{pid}/{kind}_map", format_map(maps))
        else:
            _run_helper(f"new{kind}map", pid, maps)


def _write(path: str, text: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise OSLevelError(f"write {text.strip()!r} to {path}", errno=e.errno or 0) from e


def _run_helper(helper: str, pid: int, maps: Sequence[IDMapping]) -> None:
    import shutil
    import subprocess

    exe = shutil.which(helper)
    if exe is None:
        raise PermissionDenied(
            f"{helper} not found: an unprivileged user can map only its own id; install "
            "Debian's 'uidmap' package for larger maps"
        )
    args = [exe, str(pid)]
    for m in maps:
        args += [str(m.container_id), str(m.host_id), str(m.size)]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PermissionDenied(
            f"{helper} {' '.join(args[1:])} failed: {proc.stderr.strip()}; check /etc/sub"
            f"{helper[3:6]} for the ranges this user may use"
        )
