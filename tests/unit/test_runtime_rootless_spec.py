"""pypod.runtime.rootless_spec.adapt: what a rootless runtime cannot do, taken out of a spec."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pypod.linux import userns
from pypod.oci.runtime_defaults import default_spec
from pypod.runtime import rootless_spec


def _spec(namespaces: list[str]) -> dict[str, Any]:
    spec = default_spec()
    spec["linux"]["namespaces"] = [{"type": t} for t in namespaces]
    spec["linux"]["cgroupsPath"] = "/pypod-build-x"
    spec["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
    return spec


def _mount(spec: dict[str, Any], destination: str) -> dict[str, Any] | None:
    return next((m for m in spec["mounts"] if m["destination"] == destination), None)


@pytest.fixture
def tty_mapped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(userns, "is_mapped", lambda id_, *a: True)


@pytest.mark.usefixtures("tty_mapped")
def test_own_namespaces_keep_the_mounts_but_lose_the_cgroup() -> None:
    spec = _spec(["pid", "ipc", "uts", "mount", "network"])
    before = copy.deepcopy(spec["mounts"])
    out = rootless_spec.adapt(spec)
    assert out is spec
    assert "cgroupsPath" not in spec["linux"] and "resources" not in spec["linux"]
    assert spec["mounts"] == before


@pytest.mark.usefixtures("tty_mapped")
def test_host_pid_namespace_binds_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rootless_spec.os.path, "ismount", lambda path: True)
    spec = rootless_spec.adapt(_spec(["uts", "mount"]))  # chroot isolation
    assert _mount(spec, "/proc") == {
        "destination": "/proc", "type": "bind", "source": "/proc",
        "options": ["rbind", "nosuid", "noexec", "nodev"],
    }  # fmt: skip
    assert _mount(spec, "/dev/mqueue") is not None  # the host has one: the runtime binds it


@pytest.mark.usefixtures("tty_mapped")
def test_host_ipc_namespace_without_mqueue_drops_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rootless_spec.os.path, "ismount", lambda path: False)
    spec = rootless_spec.adapt(_spec(["pid", "uts", "mount"]))
    assert _mount(spec, "/dev/mqueue") is None
    proc = _mount(spec, "/proc")
    assert proc is not None and proc["type"] == "proc"  # its own pid namespace: mounted


def test_devpts_without_tty_group_when_unmapped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(userns, "is_mapped", lambda id_, *a: id_ != 5)
    spec = rootless_spec.adapt(_spec(["pid", "ipc", "uts", "mount"]))
    devpts = _mount(spec, "/dev/pts")
    assert devpts is not None and "gid=5" not in devpts["options"]
    assert "newinstance" in devpts["options"]
