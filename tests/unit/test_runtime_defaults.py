"""pypod.oci.runtime_defaults: the same config.json as `runc spec`, byte for byte."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from pypod import OCI_RUNTIME_SPEC_VERSION
from pypod.oci.runtime_defaults import (
    default_runtime_spec,
    default_spec,
    dump_spec_json,
    to_rootless,
)
from pypod.oci.runtime_spec import Mount, Spec, parse_spec, spec_to_dict

RUNC = shutil.which("runc")
needs_runc = pytest.mark.skipif(RUNC is None, reason="runc is not on PATH: cannot run `runc spec`")


def runc_spec(bundle: Path, *args: str, user: int | None = None) -> str:
    assert RUNC is not None
    subprocess.run(
        [RUNC, "spec", "--bundle", str(bundle), *args],
        check=True,
        capture_output=True,
        user=user,
        group=user,
        extra_groups=[] if user is not None else None,
    )
    return (bundle / "config.json").read_text()


# --------------------------------------------------------------------------- without runc


def test_default_spec_shape() -> None:
    d = default_spec()
    assert list(d) == ["ociVersion", "process", "root", "hostname", "mounts", "linux"]
    assert d["ociVersion"] == OCI_RUNTIME_SPEC_VERSION
    assert d["process"]["args"] == ["sh"] and d["process"]["terminal"] is True
    assert [ns["type"] for ns in d["linux"]["namespaces"]] == [
        "pid",
        "network",
        "ipc",
        "uts",
        "mount",
    ]
    assert d["linux"]["resources"] == {"devices": [{"allow": False, "access": "rwm"}]}
    assert "uidMappings" not in d["linux"]


def test_rootless_spec_follows_runc_to_rootless() -> None:
    d = default_spec(rootless=True, uid=1000, gid=1001)
    linux = d["linux"]
    assert list(linux)[:2] == ["uidMappings", "gidMappings"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": 1000, "size": 1}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": 1001, "size": 1}]
    assert [ns["type"] for ns in linux["namespaces"]] == ["pid", "ipc", "uts", "mount", "user"]
    assert "resources" not in linux
    mounts = {m["destination"]: m for m in d["mounts"]}
    assert mounts["/sys"] == {
        "destination": "/sys",
        "type": "none",
        "source": "/sys",
        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
    }
    assert "gid=5" not in mounts["/dev/pts"]["options"]


def test_uid_and_gid_only_matter_for_rootless() -> None:
    assert default_spec(uid=1000, gid=1000) == default_spec()


def test_default_spec_is_a_valid_spec() -> None:
    for rootless in (False, True):
        d = default_spec(rootless=rootless, uid=1000, gid=1000)
        assert spec_to_dict(parse_spec(d)) == d
        assert parse_spec(d) == default_runtime_spec(rootless=rootless, uid=1000, gid=1000)


def test_to_rootless_cleans_the_sys_destination_like_go() -> None:
    spec = Spec(mounts=(Mount(destination="//sys/./", type="sysfs", source="sysfs"),))
    assert to_rootless(spec, uid=1, gid=1).mounts[0].options[0] == "rbind"
    spec = Spec(mounts=(Mount(destination="/sys/fs", type="sysfs", source="sysfs"),))
    assert to_rootless(spec, uid=1, gid=1).mounts[0].type == "sysfs"


def test_dump_spec_json_formats_like_go_marshal_indent() -> None:
    assert dump_spec_json({}) == "{}"
    assert dump_spec_json({"a": [], "b": {}, "c": None, "d": [1, True]}) == (
        '{\n\t"a": [],\n\t"b": {},\n\t"c": null,\n\t"d": [\n\t\t1,\n\t\ttrue\n\t]\n}'
    )
    assert not dump_spec_json(default_spec()).endswith("\n")
    for d in (default_spec(), default_spec(rootless=True, uid=5, gid=5)):
        assert json.loads(dump_spec_json(d)) == d


def test_dump_spec_json_escapes_strings_like_go() -> None:
    # what runc (Go 1.19) writes for this annotation into its state.json
    value = 'x=<a&b>\b\f\x01\x7f\u2028é\ud800"\\'
    assert dump_spec_json({"a": value}) == (
        '{\n\t"a": "x=\\u003ca\\u0026b\\u003e\\u0008\\u000c\\u0001\x7f\\u2028é\ufffd\\"\\\\"\n}'
    )


@pytest.mark.parametrize(
    ("number", "text"),
    [(100.0, "100"), (0.1, "0.1"), (1.5e-7, "1.5e-7"), (1e21, "1e+21"), (1e20, "1" + "0" * 20)],
)
def test_dump_spec_json_writes_floats_like_go(number: float, text: str) -> None:
    assert dump_spec_json({"n": number}) == '{\n\t"n": ' + text + "\n}"


# --------------------------------------------------------------------------- against runc


@pytest.mark.compat
@needs_runc
def test_default_spec_is_byte_for_byte_runc_spec(tmp_path: Path) -> None:
    assert dump_spec_json(default_spec()) == runc_spec(tmp_path)


@pytest.mark.compat
@needs_runc
def test_rootless_spec_is_byte_for_byte_runc_spec_rootless(tmp_path: Path) -> None:
    expected = runc_spec(tmp_path, "--rootless")
    assert dump_spec_json(default_spec(rootless=True, uid=os.geteuid(), gid=os.getegid())) == (
        expected
    )


@pytest.mark.compat
@needs_runc
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run `runc spec` as user nobody")
def test_rootless_spec_for_another_user_matches_runc() -> None:
    nobody = 65534
    # under /tmp: the test user must be able to reach it (pytest's tmp_path is 0700)
    bundle = Path(tempfile.mkdtemp(prefix="pypod-runc-spec-", dir="/tmp"))
    try:
        bundle.chmod(0o777)
        expected = runc_spec(bundle, "--rootless", user=nobody)
    finally:
        shutil.rmtree(bundle)
    assert dump_spec_json(default_spec(rootless=True, uid=nobody, gid=nobody)) == expected
