"""`run`/`create` flag errors and `volume` output, pypod against podman 4.3 side by side."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import BIN
from tests.image_fixtures import build_image, busybox_layer, context, write_image

pytestmark = [pytest.mark.compat, pytest.mark.root]

PYPOD = str(BIN / "pypod")
Tool = Callable[..., subprocess.CompletedProcess[str]]


def _unmount_below(path: Path) -> None:
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f]
    for m in reversed(mounts):
        if m.startswith(str(path)):
            subprocess.run(["umount", "-l", m], check=False)


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory, busybox: str) -> Iterator[dict[str, Tool]]:
    """podman and pypod, each on its own store holding the same busybox image as `bb`."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (apt-get install podman)")
    work = tmp_path_factory.mktemp("runflags")
    store = Path(tempfile.mkdtemp(prefix="ppm", dir="/tmp"))  # podman: runroot < 50 characters
    (store / "tmp").mkdir()
    conf = store / "containers.conf"
    conf.write_text(
        '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=30000:30000"]\n'
        f'[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
        f'events_logfile_path = "{store}/events.log"\n'
    )
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    base = ["podman", "--root", str(store / "root"), "--runroot", str(store / "run"),
            "--tmpdir", str(store / "tmp"), "--storage-driver", "overlay"]  # fmt: skip

    def podman(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], env=env, capture_output=True, text=True,
                              timeout=120, check=False, cwd=work)  # fmt: skip

    def pypod(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PYPOD, "--root", str(work / "root"), "--runroot",
                               str(work / "run"), *args], capture_output=True, text=True,
                              timeout=120, check=False, cwd=work)  # fmt: skip

    try:
        layer = busybox_layer(work)
        (work / "layer.tar").write_bytes(layer)
        assert podman("import", "-q", str(work / "layer.tar"), "localhost/bb").returncode == 0
        ctx = context(work / "root", work / "run", work / "tmp")
        write_image(ctx, "localhost/bb", build_image([layer]))
        (work / "exists").write_text("x")
        yield {"podman": podman, "pypod": pypod}
    finally:
        podman("rm", "-a", "-f")
        podman("volume", "rm", "-a", "-f")
        podman("rmi", "-a", "-f")
        _unmount_below(store)
        _unmount_below(work)
        shutil.rmtree(store, ignore_errors=True)


#: flags podman refuses, with the same message from pypod (create: nothing is started)
CASES = [
    "--foo", "-x", "-dx", "-m 1x", "--shm-size foo", "--cpus abc", "--memory-swap 1x",
    "--memory-swap 10m", "-m 10m --memory-swap 8m", "-m 7m --memory-reservation 10m",
    "--cpuset-cpus abc", "--pids-limit abc", "--cpu-shares abc", "--stop-timeout abc",
    "--ulimit foo=1", "--ulimit nofile=abc", "--ulimit nofile=10:5", "--ulimit nofile",
    "-e =x", "--env-file /nonexist", "--label-file /nonexist", "--label =x",
    "--annotation foo", "-v /nonexist:/x", "-v rel/path:/x", "-v /tmp:/x:foo", "-v /tmp:rel",
    "-v /tmp:/x:ro,rw", "-v /tmp:/x:rprivate,shared", "-v /tmp:/x:ro:rw", "-v :/x",
    "-v /tmp:/x -v /var:/x", "-v /tmp:/x --tmpfs /x", "--mount type=foo,dst=/x",
    "--mount type=bind,src=/tmp", "--mount dst=/x", "--mount type=bind,src=/tmp,dst=/x,ro=foo",
    "--mount type=bind,src=/tmp,dst=/x,ro,rw", "--mount type=bind,src=/tmp,dst=/x,foo=bar",
    "--mount type=bind,src=/tmp,dst=/x,tmpfs-size=1m", "--mount type=tmpfs,dst=/x,src=/tmp",
    "--mount type=bind,src=/tmp,dst=/x,bind-propagation=foo", "--mount type=bind,dst=/nodst",
    "--tmpfs rel", "--tmpfs /x:foo", "--volumes-from a:foo", "--device /nonexist",
    "--device /dev/null:rel", "--device /dev/null:/x:rw:extra", "--restart foo",
    "--restart on-failure:x", "--restart on-failure:-1", "--restart always --rm",
    "--restart always:3", "--health-cmd true --health-interval foo",
    "--health-cmd true --health-interval 30", "--health-cmd true --health-retries 0",
    "--health-cmd true --health-timeout 0s", "--health-cmd true --health-start-period -1s",
    "--stop-signal FOO", "--stop-signal 99", "--stop-signal 0", "--log-driver foo",
    "--log-opt foo", "--log-opt max-size=abc", "--pull foo", "--security-opt foo",
    "--security-opt no-new-privileges=abc", "--security-opt seccomp=/nonexist",
    "--sysctl foo", "--sysctl kernel.foo=1", "--sysctl net.a=b=c",
    "--network host --sysctl net.ipv4.ip_forward=1", "--cap-add foo", "--uts foo", "--ipc foo",
    "--pid foo", "--uts host --hostname x", "--group-add 10 --group-add keep-groups",
    "--name bad/name", "--replace", "--cidfile exists", "--tz foo/bar", "--name", "-m",
]  # fmt: skip


@pytest.mark.parametrize("flags", CASES)
def test_create_errors_as_podman(tools: dict[str, Tool], flags: str) -> None:
    args = ["create", *flags.split(), "localhost/bb", "true"]
    if flags in ("--name", "-m"):
        args = ["create", flags]
    theirs, ours = tools["podman"](*args), tools["pypod"](*args)
    assert theirs.returncode == 125, theirs.stderr
    assert ours.returncode == 125, ours.stderr
    assert ours.stderr == theirs.stderr.replace("podman", "pypod")


def test_run_detach_keys_errors_as_podman(tools: dict[str, Tool]) -> None:
    for keys in ("foo", "ctrl-1", "ctrl-a,bb"):
        args = ["run", "--rm", "--detach-keys", keys, "localhost/bb", "true"]
        theirs, ours = tools["podman"](*args), tools["pypod"](*args)
        assert ours.stderr == theirs.stderr, keys
        # podman creates the container first and fails (126) when attaching; pypod refuses
        # the flag before creating anything
        assert (ours.returncode, theirs.returncode) == (125, 126)


def test_volume_output_as_podman(tools: dict[str, Tool]) -> None:
    for tool in tools.values():
        assert tool("volume", "create", "-l", "a=b", "-o", "o=uid=1000", "cv1").stdout == "cv1\n"
        assert tool("volume", "create", "cv2").returncode == 0
    for args in (("volume", "ls"), ("volume", "ls", "-q"), ("volume", "ls", "--noheading"),
                 ("volume", "ls", "--format", "table {{.Name}} {{.Scope}} {{.MountCount}}"),
                 ("volume", "ls", "--format", "{{.Name}} {{.Labels}} {{.Options}}"),
                 ("volume", "ls", "--filter", "label=a", "-q"),
                 ("volume", "ls", "--filter", "name=cv", "--filter", "name=2", "-q"),
                 ("volume", "inspect", "cv1", "--format",
                  "{{.Name}} {{.Labels}} {{.UID}} {{.NeedsChown}}")):  # fmt: skip
        theirs, ours = tools["podman"](*args), tools["pypod"](*args)
        assert ours.stdout == theirs.stdout, args
    for args in (("volume", "inspect", "cv1"), ("volume", "ls", "--format", "json")):
        theirs = json.loads(tools["podman"](*args).stdout)
        ours = json.loads(tools["pypod"](*args).stdout)
        assert [sorted(v) for v in ours] == [sorted(v) for v in theirs], args
        for a, b in zip(ours, theirs, strict=True):
            for key in ("Name", "Driver", "Labels", "Scope", "Options", "MountCount"):
                assert a[key] == b[key], key
            assert re.sub(r"^.*/volumes/", "", a["Mountpoint"]) == re.sub(
                r"^.*/volumes/", "", b["Mountpoint"]
            )
    for args, code in ((("volume", "inspect", "cv1", "nosuch"), 125),
                       (("volume", "rm", "nosuch"), 1), (("volume", "exists", "nosuch"), 1),
                       (("volume", "create", "cv1"), 125), (("volume", "rm"), 125),
                       (("volume", "ls", "--filter", "foo=1"), 125),
                       (("volume", "ls", "--filter", "dangling=maybe"), 125),
                       (("volume", "create", "-o", "foo=bar", "x"), 125),
                       (("volume", "create", "bad name"), 125)):  # fmt: skip
        theirs, ours = tools["podman"](*args), tools["pypod"](*args)
        assert (ours.returncode, theirs.returncode) == (code, code), args
        assert ours.stderr == theirs.stderr.replace("podman", "pypod"), args
    # a volume in use: exit code 2 and the container's ID in the message
    for tool in tools.values():
        cid = tool("create", "-v", "cv1:/d", "localhost/bb", "true").stdout.strip()
        proc = tool("volume", "rm", "cv1")
        assert proc.returncode == 2
        assert proc.stderr == (
            f"Error: volume cv1 is being used by the following container(s): {cid}: volume is "
            "being used\n"
        )
        assert tool("volume", "rm", "-f", "cv1").stdout == "cv1\n"
        assert tool("volume", "prune", "-f").stdout == "cv2\n"
