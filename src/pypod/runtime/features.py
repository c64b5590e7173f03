"""`features`: what this runtime supports, in the runtime-spec features.md schema."""

from __future__ import annotations

from typing import Any

import pypod
from pypod.linux.capabilities import CAP_NAMES
from pypod.linux.mounts import MOUNT_OPTIONS
from pypod.oci.runtime_spec import NAMESPACE_TYPES, SECCOMP_ACTIONS, SECCOMP_OPERATORS


def features() -> dict[str, Any]:
    from pypod.linux.cgroups import CgroupMode, detect_mode

    mode = detect_mode()
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": pypod.OCI_RUNTIME_SPEC_VERSION,
        "hooks": [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop",
        ],
        "mountOptions": sorted(MOUNT_OPTIONS),
        "linux": {
            "namespaces": sorted(NAMESPACE_TYPES),
            "capabilities": sorted(CAP_NAMES, key=CAP_NAMES.__getitem__),
            "cgroup": {
                "v1": mode != CgroupMode.UNIFIED,
                "v2": mode != CgroupMode.LEGACY,
                "systemd": False,
                "systemdUser": False,
            },
            "seccomp": {
                "enabled": True,
                "actions": sorted(a for a in SECCOMP_ACTIONS if a != "SCMP_ACT_NOTIFY"),
                "operators": sorted(SECCOMP_OPERATORS),
            },
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
        },
        "annotations": {"org.pypod.version": pypod.__version__},
    }
