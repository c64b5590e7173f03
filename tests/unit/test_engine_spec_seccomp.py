"""The seccomp side of a container's spec: podman's default profile and its conversion.

The golden lists are what podman 4.3.1 (containers/common 0.50.1) writes into config.json on
this machine for the same bounding set.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from pypod.config.seccomp_default import profile
from pypod.config.seccomp_profile import load_file, to_oci
from pypod.engine.spec_security import DEFAULT_CAPABILITIES
from pypod.errors import InvalidArgument
from pypod.oci.runtime_spec import LinuxSeccomp, spec_to_dict

INSTALLED = Path("/usr/share/containers/seccomp.json")
#: (first name, number of names, action, errnoRet, number of args) per rule, as podman writes
#: them for its default capabilities on amd64
PODMAN_DEFAULT = [
    ("bdflush", 28, "ERRNO", 1, 0), ("_llseek", 374, "ALLOW", None, 0),
    *[("personality", 1, "ALLOW", None, 1)] * 5,
    ("arch_prctl", 1, "ALLOW", None, 0), ("modify_ldt", 1, "ALLOW", None, 0),
    ("open_by_handle_at", 1, "ERRNO", 1, 0), ("bpf", 8, "ERRNO", 1, 0),
    ("chroot", 1, "ALLOW", None, 0), ("delete_module", 4, "ERRNO", 1, 0),
    ("acct", 1, "ERRNO", 1, 0), ("kcmp", 2, "ERRNO", 1, 0), ("ioperm", 2, "ERRNO", 1, 0),
    ("clock_settime", 4, "ERRNO", 1, 0), ("vhangup", 1, "ERRNO", 1, 0),
    ("socket", 1, "ERRNO", 22, 2), *[("socket", 1, "ALLOW", None, 1)] * 3,
]  # fmt: skip
ALL_CAPS = [
    "CAP_AUDIT_WRITE", "CAP_DAC_READ_SEARCH", "CAP_SYS_ADMIN", "CAP_SYS_CHROOT", "CAP_SYS_MODULE",
    "CAP_SYS_PACCT", "CAP_SYS_PTRACE", "CAP_SYS_RAWIO", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG",
]  # fmt: skip


def summary(sc: LinuxSeccomp | None) -> list[tuple[str, int, str, int | None, int]]:
    assert sc is not None
    return [
        (r.names[0], len(r.names), r.action.removeprefix("SCMP_ACT_"), r.errno_ret, len(r.args))
        for r in sc.syscalls
    ]


def _normalized(rule: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in rule.items() if v not in ("", {}, [], None)}
    if "args" in out:
        out["args"] = [
            {k: v for k, v in a.items() if not (k == "valueTwo" and v == 0)} for a in out["args"]
        ]
    return out


@pytest.mark.skipif(
    not INSTALLED.exists(), reason=f"{INSTALLED} (golang-github-containers-common) is not installed"
)
def test_default_profile_is_podmans_installed_one() -> None:
    installed = json.loads(INSTALLED.read_text())
    ours = profile()
    for key in ("defaultAction", "defaultErrnoRet", "defaultErrno", "archMap"):
        assert ours[key] == installed[key], key
    assert [_normalized(r) for r in ours["syscalls"]] == [
        _normalized(r) for r in installed["syscalls"]
    ]


def test_default_profile_for_podmans_default_caps() -> None:
    sc = to_oci(profile(), bounding=DEFAULT_CAPABILITIES, arch="amd64")
    assert sc is not None
    assert (sc.default_action, sc.default_errno_ret) == ("SCMP_ACT_ERRNO", 38)  # ENOSYS
    assert sc.architectures == ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")
    assert summary(sc) == PODMAN_DEFAULT
    allowed = set(sc.syscalls[1].names)
    # the runtime execs through execveat; mount/unshare are left to the capability checks
    assert {"execve", "execveat", "mount", "unshare", "clone3"} <= allowed
    assert not {"add_key", "request_key", "io_uring_setup", "sethostname"} & allowed
    socket_deny = sc.syscalls[18]
    assert [(a.index, a.value, a.op) for a in socket_deny.args] == [
        (0, 16, "SCMP_CMP_EQ"), (2, 9, "SCMP_CMP_EQ"),
    ]  # fmt: skip
    personalities = [r.args[0].value for r in sc.syscalls[2:7]]
    assert personalities == [0, 8, 131072, 131080, 4294967295]


def test_capabilities_switch_rules() -> None:
    with_admin = summary(
        to_oci(profile(), bounding=(*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"), arch="amd64")
    )
    assert with_admin[10] == ("bpf", 8, "ALLOW", None, 0)
    everything = summary(to_oci(profile(), bounding=ALL_CAPS, arch="amd64"))
    assert [r[2] for r in everything[9:]] == ["ALLOW"] * 10
    assert everything[-1] == ("socket", 1, "ALLOW", None, 0)  # CAP_AUDIT_WRITE: any socket


def test_architecture_filters() -> None:
    arm = to_oci(profile(), bounding=DEFAULT_CAPABILITIES, arch="arm64")
    assert arm is not None
    assert arm.architectures == ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM")
    names = [r.names[0] for r in arm.syscalls]
    assert "arm_fadvise64_64" in names and "arch_prctl" not in names and "modify_ldt" not in names
    other = to_oci(profile(), bounding=(), arch="riscv64")
    assert other is not None and other.architectures == ()  # libseccomp's native only


def test_spec_json_of_a_rule() -> None:
    sc = to_oci(profile(), bounding=DEFAULT_CAPABILITIES, arch="amd64")
    assert sc is not None
    d = spec_to_dict(LinuxSeccomp(default_action="SCMP_ACT_ERRNO", syscalls=sc.syscalls[18:19]))
    assert d["syscalls"] == [{
        "names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
        "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"},
                 {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}],
    }]  # fmt: skip


def test_file_profile_rules() -> None:
    docker_style = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "syscalls": [
            {"name": "mkdir", "action": "SCMP_ACT_ERRNO", "errno": "EXDEV"},
            {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5},
            {"names": ["new"], "action": "SCMP_ACT_ERRNO", "includes": {"minKernel": "99.0"}},
            {"names": ["old"], "action": "SCMP_ACT_ERRNO", "includes": {"minKernel": "2.6"}},
            {"names": ["ex"], "action": "SCMP_ACT_LOG", "excludes": {"arches": ["amd64"]}},
            {"names": ["num"], "action": "SCMP_ACT_ERRNO", "errno": "17"},
        ],
    }
    sc = to_oci(docker_style, bounding=(), arch="amd64", kernel=(6, 1))
    assert sc is not None
    assert sc.architectures == ("SCMP_ARCH_X86_64",)
    assert sc.flags == ("SECCOMP_FILTER_FLAG_LOG",)
    assert [(r.names, r.errno_ret) for r in sc.syscalls] == [
        (("mkdir",), 18), (("rmdir",), 5), (("old",), None), (("num",), 17),
    ]  # fmt: skip


def test_no_default_action_nor_rules_means_no_seccomp() -> None:
    assert to_oci({}, bounding=()) is None


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
          "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]},
         "'architectures' and 'archMap' were specified"),
        ({"defaultAction": "SCMP_ACT_ALLOW",
          "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]},
         "'name' and 'names' were specified"),
        ({"defaultAction": "SCMP_ACT_ALLOW",
          "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ERRNO", "errno": "ENOPE"}]},
         "unknown errno ENOPE"),
        ({"defaultAction": "SCMP_ACT_BOGUS"}, "defaultAction: unknown action"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "NOPE"}]},
         r"syscalls\[0\]: action: unknown action 'NOPE'"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["a"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]},
         "value: must be a non-negative number"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["a"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "op": "LIKE"}]}]},
         "op: unknown operator 'LIKE'"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": "all"}, "syscalls: must be a list"),
    ],
)  # fmt: skip
def test_profile_errors(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        to_oci(doc, bounding=(), arch="amd64")


def test_load_file(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"defaultAction": "SCMP_ACT_ALLOW"}')
    assert load_file(str(path)) == {"defaultAction": "SCMP_ACT_ALLOW"}
    with pytest.raises(
        InvalidArgument, match="^opening seccomp profile failed: open .*/nosuch: no such file"
    ):
        load_file(str(tmp_path / "nosuch"))
    path.write_text("{not json")
    with pytest.raises(
        InvalidArgument,
        match=r"^loading seccomp profile \(.*\) failed: decoding seccomp profile failed",
    ):
        load_file(str(path))
    path.write_text("[]")
    with pytest.raises(InvalidArgument, match="must be a JSON object"):
        load_file(str(path))


def test_spec_seccomp_choices(tmp_path: Path) -> None:
    """unconfined: none; --privileged: none unless a file is given; a file replaces the default."""
    from pypod.engine.config import ContainerConfig
    from pypod.engine.spec_security import seccomp

    base = ContainerConfig(image="i", image_id="x")
    assert seccomp(base, DEFAULT_CAPABILITIES) is not None
    unconfined = ContainerConfig(image="i", image_id="x", seccomp_profile="unconfined")
    assert seccomp(unconfined, DEFAULT_CAPABILITIES) is None
    assert seccomp(ContainerConfig(image="i", image_id="x", privileged=True), ()) is None
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_LOG"}))
    for privileged in (False, True):
        cfg = ContainerConfig(
            image="i", image_id="x", seccomp_profile=str(path), privileged=privileged
        )
        got = seccomp(cfg, ())
        assert got is not None and got.default_action == "SCMP_ACT_LOG" and got.syscalls == ()


def test_native_arch_names() -> None:
    from pypod.config.seccomp_profile import native_arch

    expected = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine)
    if expected is not None:
        assert native_arch() == expected
