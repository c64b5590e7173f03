"""Test and demo support: busybox root filesystems and OCI bundles built from the host's busybox.

Kept in the package (not under tests/) so that `make demo` and `make bench` build the same
bundles the tests do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")


def find_busybox() -> str | None:
    """The host's statically linked busybox (Debian's busybox-static), if installed."""
    for path in BUSYBOX_CANDIDATES:
        if os.path.exists(path):
            out = subprocess.run(["file", "-L", path], capture_output=True, text=True).stdout
            if "dynamically linked" not in out:
                return path
    return None


def make_busybox_rootfs(dest: str, busybox: str | None = None) -> str:
    """A minimal root filesystem: busybox and its applets, /etc/passwd and /etc/group."""
    busybox = busybox or find_busybox()
    if busybox is None:
        raise RuntimeError("busybox-static is not installed (apt-get install busybox-static)")
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root", "home/user"):
        os.makedirs(os.path.join(dest, d), exist_ok=True)
    os.chmod(os.path.join(dest, "tmp"), 0o1777)
    target = os.path.join(dest, "bin", "busybox")
    shutil.copy2(busybox, target)
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    for name in applets.stdout.split():
        link = os.path.join(dest, "bin", name)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    with open(os.path.join(dest, "etc", "passwd"), "w") as f:
        f.write(
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
        )
    with open(os.path.join(dest, "etc", "group"), "w") as f:
        f.write("root:x:0:\ntty:x:5:\nuser:x:1000:\nnogroup:x:65534:\n")
    return dest


def make_bundle(
    bundle: str,
    args: list[str],
    *,
    rootless: bool = False,
    terminal: bool = False,
    rootfs: str | None = None,
    edit: Any = None,
) -> str:
    """An OCI bundle at `bundle`: a busybox rootfs and runc's default config running `args`."""
    from pypod.oci.runtime_defaults import default_spec, dump_spec_json

    os.makedirs(bundle, exist_ok=True)
    if rootfs is None:
        make_busybox_rootfs(os.path.join(bundle, "rootfs"))
    spec = default_spec(rootless=rootless, uid=os.geteuid(), gid=os.getegid())
    spec["process"]["args"] = args
    spec["process"]["terminal"] = terminal
    if rootfs is not None:
        spec["root"]["path"] = rootfs
    if edit is not None:
        edit(spec)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        f.write(dump_spec_json(spec))
    return bundle


def load_config(bundle: str) -> dict[str, Any]:
    with open(os.path.join(bundle, "config.json")) as f:
        data: dict[str, Any] = json.load(f)
    return data
