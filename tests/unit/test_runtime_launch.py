"""Which container processes are cloned straight into their namespaces (no stage-1)."""

from __future__ import annotations

from typing import Any

import pytest

from pypod.linux import syscalls as sc
from pypod.oci.runtime_spec import parse_spec
from pypod.runtime.process import parent
from pypod.runtime.process.init import Plan

NEW = sc.CLONE_NEWNS | sc.CLONE_NEWPID | sc.CLONE_NEWNET | sc.CLONE_NEWIPC | sc.CLONE_NEWUTS


def plan(*, is_init: bool = True, flags: int = NEW, join: tuple[tuple[str, str], ...] = ()) -> Plan:
    spec = parse_spec(
        {
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"args": ["true"], "cwd": "/"},
        }
    )
    assert spec.process is not None
    kw: dict[str, Any] = {"fifo_path": None, "no_pivot": False, "new_keyring": True}
    return Plan(
        spec=spec, process=spec.process, rootfs="/r", bundle="/b", is_init=is_init, join=join,
        unshare_flags=flags, cgroup_dirs=(), preserve_fds=0, in_userns=False, hook_state={}, **kw,
    )  # fmt: skip


def test_a_new_containers_init_is_cloned_into_its_namespaces() -> None:
    assert parent._direct_clone_flags(plan()) == NEW
    # the cgroup namespace is the init's to unshare once it is in its cgroup
    assert parent._direct_clone_flags(plan(flags=NEW | sc.CLONE_NEWCGROUP)) == NEW
    assert parent._direct_clone_flags(plan(flags=0)) == 0


@pytest.mark.parametrize(
    "what",
    ["exec", "join", "user", "time"],
)
def test_stage1_where_a_namespace_needs_it(what: str) -> None:
    """An exec'd process and a namespace given by path are joined with setns (a pid namespace
    only for children); a user namespace is mapped, a time namespace given its offsets,
    before a process enters it."""
    p = {
        "exec": plan(is_init=False, flags=0),
        "join": plan(join=(("network", "/run/netns/x"),)),
        "user": plan(flags=NEW | sc.CLONE_NEWUSER),
        "time": plan(flags=NEW | sc.CLONE_NEWTIME),
    }[what]
    assert parent._direct_clone_flags(p) is None
