"""A user namespace of the container's own, inside the rootless one: keep-id, --uidmap.

The maps and the chowned root filesystem come from pypod.engine.rootless; they are checked
through the runtime inside `pypod unshare` (as the engine runs it), and through `pypod run`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from tests.rootless_support import (
    IMAGE,
    SUB_SIZE,
    TMP,
    UserPypod,
    rootless_pypod,  # noqa: F401 - fixtures
    rootless_user,  # noqa: F401
)

pytestmark = [pytest.mark.root, pytest.mark.rootless]

#: run in `pypod unshare` by the user: a bundle with keep-id maps, its rootfs remapped (twice:
#: the second time must change nothing), run by pypod's runtime; prints the plan and the output
SCRIPT = """
import json, os, subprocess, sys, tempfile
from pypod.engine import rootless
from pypod.testing import make_bundle

work = tempfile.mkdtemp(dir=os.environ["HOME"])
os.chmod(work, 0o711)
bundle = os.path.join(work, "bundle")
make_bundle(bundle, ["sh", "-c", sys.argv[1]])
rootfs = os.path.join(bundle, "rootfs")
os.chown(os.path.join(rootfs, "etc/passwd"), 4242, 4343)
os.chmod(os.path.join(rootfs, "bin/busybox"), 0o4755)
plan = rootless.userns_plan(sys.argv[2], sys.argv[3:4], ())
for _ in range(2):
    rootless.remap_rootfs(rootfs, plan, os.path.join(work, "idmapped"))
config = json.load(open(os.path.join(bundle, "config.json")))
linux = config["linux"]
linux["namespaces"].append({"type": "user"})
for key, maps in (("uidMappings", plan.uid_maps), ("gidMappings", plan.gid_maps)):
    linux[key] = [{"containerID": m.container_id, "hostID": m.host_id, "size": m.size}
                  for m in maps]
linux.pop("resources", None)
if plan.user:
    config["process"]["user"] = {"uid": plan.user[0], "gid": plan.user[1]}
config["process"]["terminal"] = False
json.dump(config, open(os.path.join(bundle, "config.json"), "w"))
main = "import sys; from pypod.cli.runtime.main import main; sys.exit(main())"
proc = subprocess.run([sys.executable, "-c", main, "--root", os.path.join(work, "state"), "run",
                       "--bundle", bundle, "t"], capture_output=True, text=True)
print(json.dumps({"uid_maps": [list(m) for m in ((x.container_id, x.host_id, x.size)
                                                  for x in plan.uid_maps)],
                  "user": plan.user, "rc": proc.returncode, "out": proc.stdout,
                  "err": proc.stderr}))
"""


def _run_script(p: UserPypod, command: str, mode: str, uidmap: str = "") -> dict[str, object]:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False, dir=TMP) as f:
        f.write(SCRIPT)
    os.chmod(f.name, 0o644)
    try:
        args = [command, mode, *([uidmap] if uidmap else [])]
        out = p.ok("unshare", "/usr/bin/python3.11", f.name, *args)
    finally:
        os.unlink(f.name)
    result: dict[str, object] = json.loads(out)
    assert result["rc"] == 0, result
    return result


def test_keep_id_maps_and_rootfs(rootless_pypod: UserPypod) -> None:  # noqa: F811
    uid = rootless_pypod.user.uid
    result = _run_script(
        rootless_pypod,
        "id -u; id -g; cat /proc/self/uid_map; stat -c '%n %u:%g %a' / /bin/busybox /etc/passwd",
        "keep-id",
    )
    assert result["user"] == [uid, rootless_pypod.user.gid]
    assert result["uid_maps"] == [[0, 1, uid], [uid, 0, 1], [uid + 1, uid + 1, SUB_SIZE - uid]]
    lines = str(result["out"]).splitlines()
    assert lines[:2] == [str(uid), str(rootless_pypod.user.gid)]
    assert [line.split() for line in lines[2:5]] == [
        ["0", "1", str(uid)],
        [str(uid), "0", "1"],
        [str(uid + 1), str(uid + 1), str(SUB_SIZE - uid)],
    ]
    # the image's owners are what they were: root's files root's, 4242's 4242's, setuid kept
    assert lines[5:] == ["/ 0:0 755", "/bin/busybox 0:0 4755", "/etc/passwd 4242:4343 644"]


def test_uidmap(rootless_pypod: UserPypod) -> None:  # noqa: F811
    result = _run_script(
        rootless_pypod, "id -u; cat /proc/self/uid_map; stat -c '%u:%g' /etc/passwd", "",
        "0:1:5000",
    )  # fmt: skip
    lines = str(result["out"]).splitlines()
    assert lines[0] == "0"
    assert lines[1].split() == ["0", "1", "5000"]
    assert lines[2] == "4242:4343"


def test_keep_id_refused_as_root() -> None:
    from pypod.engine import rootless
    from pypod.errors import InvalidArgument

    if rootless.userns.rootless():
        pytest.skip("runs as the host's root")
    with pytest.raises(InvalidArgument, match="keep-id is only supported in rootless mode"):
        rootless.userns_plan("keep-id")


def test_run_keep_id(rootless_pypod: UserPypod) -> None:  # noqa: F811
    uid = rootless_pypod.user.uid
    out = rootless_pypod.ok(
        "run", "--rm", "--network", "none", "--userns", "keep-id", IMAGE, "sh", "-c",
        "id -u; stat -c %u /bin/busybox; touch /tmp/x && stat -c %u /tmp/x",
    )  # fmt: skip
    assert out.splitlines() == [str(uid), "0", str(uid)]
    # as podman: the user has an entry in the container's /etc/passwd and /etc/group
    user = rootless_pypod.user
    out = rootless_pypod.ok(
        "run", "--rm", "--network", "none", "--userns", "keep-id", IMAGE, "sh", "-c",
        "whoami; id -gn; echo $HOME; tail -n1 /etc/passwd",
    )  # fmt: skip
    assert out.splitlines() == [
        user.name, user.name, str(user.home),
        f"{user.name}:*:{uid}:{user.gid}:{user.name}:{user.home}:/bin/sh",
    ]  # fmt: skip
    out = rootless_pypod.ok(
        "run", "--rm", "--network", "none", "--uidmap", "0:1:5000", IMAGE, "cat",
        "/proc/self/uid_map",
    )  # fmt: skip
    assert out.split() == ["0", "1", "5000"]


def test_keep_id_maps_small_namespace() -> None:
    from pypod.engine.rootless import keep_id_maps
    from pypod.linux.userns import IDMap

    assert keep_id_maps(1000, 1) == (IDMap(container_id=1000, host_id=0, size=1),)
    assert keep_id_maps(1000, 501) == (
        IDMap(container_id=0, host_id=1, size=500),
        IDMap(container_id=1000, host_id=0, size=1),
    )
    assert Path("/proc/self/uid_map").exists()
