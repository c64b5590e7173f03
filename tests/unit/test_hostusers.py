"""config/hostusers.py: the host's user and group names a tar header carries."""

from __future__ import annotations

import grp
import pwd

from pypod.config.hostusers import HostNames


def _unused(ids: list[int]) -> int:
    return next(i for i in range(54321, 60000) if i not in ids)


def test_names_from_the_host_database() -> None:
    names = HostNames()
    assert names.user(0) == pwd.getpwuid(0).pw_name
    assert names.group(0) == grp.getgrgid(0).gr_name


def test_unknown_ids_have_no_name() -> None:
    names = HostNames()
    uid = _unused([u.pw_uid for u in pwd.getpwall()])
    gid = _unused([g.gr_gid for g in grp.getgrall()])
    assert names.user(uid) == ""
    assert names.group(gid) == ""
