"""`pypod generate systemd` as systemd would use the units, without systemd: the unit's
ExecStartPre/ExecStart/ExecStop/ExecStopPost command lines are expanded as systemd expands them
(`%t`, `%n`, `%%`, `$$`, quoting) and run against a real store; the PID file, the container ID
file and the container's state are checked after each step.  `systemd-analyze verify` checks
the unit files where it runs.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.engine_support import (  # noqa: F401  (fixtures)
    IMAGE,
    PYPOD,
    Pypod,
    alive,
    busybox_tar_fixture,
    pypod_fixture,
    pypod_session_fixture,
    wait_for,
)

pytestmark = pytest.mark.root


# --- a unit as systemd reads it ----------------------------------------------------------------
def service_lines(unit: str) -> list[tuple[str, str]]:
    """The (key, value) pairs of the unit's [Service] section, continuation lines joined."""
    joined = unit.replace("\\\n", " ")
    out: list[tuple[str, str]] = []
    section = ""
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out.append((key, value))
    return out


def values(unit: str, key: str) -> list[str]:
    return [v for k, v in service_lines(unit) if k == key]


def expand(value: str, runtime_dir: str, unit_name: str) -> str:
    """systemd's specifiers in a unit setting (the ones the units use)."""
    out = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == "%" and i + 1 < len(value):
            spec = value[i + 1]
            stem = unit_name.rsplit(".", 1)[0]
            out.append({"t": runtime_dir, "n": unit_name, "N": stem, "%": "%"}[spec])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def argv(value: str, runtime_dir: str, unit_name: str) -> list[str]:
    """A command line of the unit as systemd runs it: specifiers, `$$`, then the words."""
    words = shlex.split(expand(value, runtime_dir, unit_name))
    return [w.replace("$$", "$") for w in words]


def run_exec(
    unit: str, key: str, runtime_dir: str, unit_name: str, *,
    env: dict[str, str] | None = None, store: Pypod | None = None, cgroup: str | None = None,
) -> list[subprocess.CompletedProcess[str]]:  # fmt: skip
    """Run each `key=` command line of the unit as systemd would (environment: the unit's
    `Environment=` lines); every one must succeed.  `store`: the units of existing containers
    name no store (podman's neither: they use the default one), so the test store's
    `--root`/`--runroot` go after the program.  `cgroup`: the unit's cgroup directory (systemd
    runs a service's commands in a cgroup of its own: see `unit_cgroup`)."""
    environ = {**os.environ, **(env or {})}
    for setting in values(unit, "Environment"):
        for word in argv(setting, runtime_dir, unit_name):
            k, _, v = word.partition("=")
            environ[k] = v
    done = []
    for line in values(unit, key):
        may_fail = line.startswith("-")  # systemd: a failure of this one is ignored
        cmd = argv(line.removeprefix("-"), runtime_dir, unit_name)
        if store is not None and cmd[0] == store.argv[0]:
            cmd[1:1] = store.argv[1:]
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                  env=environ, timeout=120, check=False,
                                  preexec_fn=_joiner(cgroup))  # fmt: skip
            out.seek(0)
            err.seek(0)
            done.append(subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read()))
        assert may_fail or proc.returncode == 0, f"{key}={line}\n{done[-1].stderr}{done[-1].stdout}"
    return done


def _joiner(cgroup: str | None) -> Callable[[], None] | None:
    """A preexec_fn that moves the child into `cgroup` (a directory of a cgroup2 mount)."""
    if cgroup is None:
        return None

    def join() -> None:
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
            f.write("0")

    return join


def units(pypod: Pypod, *args: str) -> dict[str, str]:
    """`generate systemd --format json ...`: unit name -> text."""
    found: dict[str, str] = json.loads(pypod.ok("generate", "systemd", "--format", "json", *args))
    return found


def status(pypod: Pypod, name: str) -> str:
    return pypod.ok("inspect", "--format", "{{.State.Status}}", name).strip()


def _cgroup_mounts() -> list[tuple[str, str]]:
    """(mount point, fs type) of the cgroup and cgroup2 mounts."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fstype in ("cgroup", "cgroup2"):
                out.append((fields[4], fstype))
    return out


@pytest.fixture(name="unit_cgroup")
def unit_cgroup_fixture() -> Iterator[str]:
    """A service's cgroup as systemd makes one (`<slice>/<unit>.service` in the cgroup2
    hierarchy: /sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host); removed after the
    test with what was made below it, and the cgroups of the same path in the v1 hierarchies
    (a container's cgroup parent there)."""
    unified = [m for m, t in _cgroup_mounts() if t == "cgroup2"]
    if not unified:
        pytest.skip("no cgroup2 hierarchy is mounted (systemd would put units there)")
    relative = f"pypod-test-{os.getpid()}.slice/sdqc.service"
    path = os.path.join(unified[0], relative)
    os.makedirs(path)
    try:
        yield path
    finally:
        for mount, _ in _cgroup_mounts():
            top = os.path.join(mount, relative.split("/")[0])
            for d in sorted((r for r, _, _ in os.walk(top)), key=len, reverse=True):
                wait_for(lambda d=d: _rmdir(d), what=f"{d} to be removed")


def _rmdir(path: str) -> bool:
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True


@pytest.fixture(name="runtime_dir")
def runtime_dir_fixture() -> Iterator[str]:
    """What systemd calls %t (its runtime directory)."""
    d = tempfile.mkdtemp(prefix="psd", dir="/tmp")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


# --- existing containers and pods --------------------------------------------------------------
def test_container_unit_starts_and_stops_the_container(pypod: Pypod, runtime_dir: str) -> None:
    cid = pypod.ok("create", "--name", "sdweb", IMAGE, "sleep", "1000").strip()
    found = units(pypod, "--name", "sdweb")
    assert list(found) == ["container-sdweb"]
    unit = found["container-sdweb"]
    assert values(unit, "Type") == ["forking"]
    run_exec(unit, "ExecStart", runtime_dir, "container-sdweb.service", store=pypod)
    assert status(pypod, "sdweb") == "running"
    (pid_file,) = values(unit, "PIDFile")
    monitor = int(wait_for(lambda: Path(pid_file).exists() and Path(pid_file).read_text()))
    assert alive(monitor)
    assert monitor == int(pypod.ok("inspect", "--format", "{{.State.ConmonPid}}", cid))
    run_exec(unit, "ExecStop", runtime_dir, "container-sdweb.service", store=pypod)
    assert status(pypod, "sdweb") == "exited"
    wait_for(lambda: not alive(monitor), what="the monitor to exit")
    run_exec(
        unit, "ExecStopPost", runtime_dir, "container-sdweb.service", store=pypod
    )  # stop again: no-op
    assert status(pypod, "sdweb") == "exited"


def test_pod_units_start_the_infra_container_and_the_members(
    pypod: Pypod, runtime_dir: str
) -> None:
    pypod.ok("pod", "create", "--name", "sdpod")
    pypod.ok("create", "--pod", "sdpod", "--name", "sdmember", IMAGE, "sleep", "1000")
    found = units(pypod, "--name", "sdpod")
    assert sorted(found) == ["container-sdmember", "pod-sdpod"]
    pod_unit, member_unit = found["pod-sdpod"], found["container-sdmember"]
    assert "Wants=container-sdmember.service\nBefore=container-sdmember.service\n" in pod_unit
    assert "BindsTo=pod-sdpod.service\nAfter=pod-sdpod.service\n" in member_unit
    infra = json.loads(pypod.ok("pod", "inspect", "sdpod"))["InfraContainerID"]
    run_exec(pod_unit, "ExecStart", runtime_dir, "pod-sdpod.service", store=pypod)
    assert status(pypod, infra) == "running"
    (pid_file,) = values(pod_unit, "PIDFile")
    monitor = int(wait_for(lambda: Path(pid_file).exists() and Path(pid_file).read_text()))
    assert monitor == int(pypod.ok("inspect", "--format", "{{.State.ConmonPid}}", infra))
    run_exec(member_unit, "ExecStart", runtime_dir, "container-sdmember.service", store=pypod)
    assert status(pypod, "sdmember") == "running"
    run_exec(member_unit, "ExecStop", runtime_dir, "container-sdmember.service", store=pypod)
    assert status(pypod, "sdmember") == "exited"
    assert status(pypod, infra) == "running"  # the pod stays up
    run_exec(pod_unit, "ExecStop", runtime_dir, "pod-sdpod.service", store=pypod)
    assert status(pypod, infra) == "exited"


# --- --new: the units create and remove ---------------------------------------------------------
def test_new_container_unit_creates_and_removes_the_container(
    pypod: Pypod, runtime_dir: str
) -> None:
    pypod.ok("create", "--name", "sdnew", "-e", "A=x y", IMAGE, "sh", "-c", "echo $A; sleep 1000")
    unit = units(pypod, "--new", "--name", "sdnew")["container-sdnew"]
    pypod.ok("rm", "sdnew")  # the unit brings its own container
    name = "container-sdnew.service"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(os.path.join(runtime_dir, "notify"))
        notify.settimeout(30)
        run_exec(unit, "ExecStartPre", runtime_dir, name,
                 env={"NOTIFY_SOCKET": os.path.join(runtime_dir, "notify")})  # fmt: skip
        run_exec(unit, "ExecStart", runtime_dir, name,
                 env={"NOTIFY_SOCKET": os.path.join(runtime_dir, "notify")})  # fmt: skip
        messages = notify.recv(4096).decode()
    cid = Path(runtime_dir, f"{name}.ctr-id").read_text().strip()
    assert "READY=1" in messages and "MAINPID=" in messages
    assert status(pypod, cid) == "running"
    assert "x y" in wait_for(lambda: pypod.ok("logs", cid))
    monitor = int(pypod.ok("inspect", "--format", "{{.State.ConmonPid}}", cid))
    assert f"MAINPID={monitor}\n" in messages  # podman's: the monitor is the unit's main process
    # (podman 4.3's stop/rm lines name no store, as run's does: the test's goes after the program)
    (stopped,) = run_exec(unit, "ExecStop", runtime_dir, name, store=pypod)
    assert stopped.stdout == f"{cid}\n"
    run_exec(unit, "ExecStopPost", runtime_dir, name, store=pypod)
    assert pypod("container", "exists", cid).returncode == 1
    run_exec(unit, "ExecStopPost", runtime_dir, name, store=pypod)  # --ignore: gone is fine


def test_new_pod_units_create_and_remove_the_pod(pypod: Pypod, runtime_dir: str) -> None:
    pypod.ok("pod", "create", "--name", "sdnewpod")
    pypod.ok("create", "--pod", "sdnewpod", "--name", "sdnewm", IMAGE, "sleep", "1000")
    found = units(pypod, "--new", "--name", "sdnewpod")
    pypod.ok("pod", "rm", "-f", "sdnewpod")
    pod_unit, member_unit = found["pod-sdnewpod"], found["container-sdnewm"]
    run_exec(pod_unit, "ExecStartPre", runtime_dir, "pod-sdnewpod.service")
    run_exec(pod_unit, "ExecStart", runtime_dir, "pod-sdnewpod.service")
    pod_id = Path(runtime_dir, "pod-sdnewpod.pod-id").read_text().strip()
    monitor = int(Path(runtime_dir, "pod-sdnewpod.pid").read_text())
    assert alive(monitor)
    run_exec(member_unit, "ExecStartPre", runtime_dir, "container-sdnewm.service")
    run_exec(member_unit, "ExecStart", runtime_dir, "container-sdnewm.service")
    cid = Path(runtime_dir, "container-sdnewm.service.ctr-id").read_text().strip()
    assert json.loads(pypod.ok("inspect", cid))[0]["Pod"] == pod_id
    infra = json.loads(pypod.ok("pod", "inspect", pod_id))["InfraContainerID"]
    assert monitor == int(pypod.ok("inspect", "--format", "{{.State.ConmonPid}}", infra))
    run_exec(member_unit, "ExecStop", runtime_dir, "container-sdnewm.service", store=pypod)
    run_exec(member_unit, "ExecStopPost", runtime_dir, "container-sdnewm.service", store=pypod)
    assert pypod("container", "exists", cid).returncode == 1
    # `pod create --exit-policy=stop` (the unit's): the last member gone, the pod stops
    pypod.wait_status(infra, "exited")
    wait_for(lambda: not alive(monitor), what="the infra container's monitor to exit")
    run_exec(pod_unit, "ExecStop", runtime_dir, "pod-sdnewpod.service")
    run_exec(pod_unit, "ExecStopPost", runtime_dir, "pod-sdnewpod.service")
    assert pypod("pod", "exists", pod_id).returncode == 1


# --- files, formats, errors --------------------------------------------------------------------
def test_files_are_written_in_the_current_directory(pypod: Pypod, tmp_path: Path) -> None:
    pypod.ok("pod", "create", "--name", "sdfiles")
    pypod.ok("create", "--pod", "sdfiles", "--name", "sdfm", IMAGE, "sleep", "1")
    proc = subprocess.run(
        [*pypod.argv, "generate", "systemd", "--files", "--no-header", "--name", "sdfiles"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    )  # fmt: skip
    paths = proc.stdout.split()
    assert paths == [
        str(tmp_path / "pod-sdfiles.service"),
        str(tmp_path / "container-sdfm.service"),
    ]
    printed = pypod.ok("generate", "systemd", "--name", "--no-header", "sdfiles")
    assert printed == "".join(Path(p).read_text() for p in paths)  # the pod's first
    assert all(os.stat(p).st_mode & 0o777 == 0o644 for p in paths)


def test_systemd_analyze_verify_accepts_the_units(pypod: Pypod, tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is missing (apt-get install systemd)")
    pypod.ok("create", "--name", "sdver", "-p", "18099:80", IMAGE, "sh", "-c", "echo '$x 5%'")
    pypod.ok("pod", "create", "--name", "sdverpod")
    pypod.ok("create", "--pod", "sdverpod", "--restart", "on-failure:3", IMAGE, "true")
    cases = (["sdver"], ["--new", "sdver"], ["--name", "sdverpod"],
             ["--new", "--name", "-t", "3", "--restart-policy", "always", "sdverpod"])  # fmt: skip
    for args in cases:
        where = tmp_path / "-".join(args)
        where.mkdir()
        subprocess.run([*pypod.argv, "generate", "systemd", "--files", *args], cwd=where,
                       check=True, capture_output=True)  # fmt: skip
        files = sorted(str(p) for p in where.iterdir())
        proc = subprocess.run(["systemd-analyze", "verify", *files], capture_output=True,
                              text=True, timeout=120, check=False)  # fmt: skip
        assert proc.returncode == 0 and not proc.stdout and not proc.stderr, (args, proc)


def test_errors_match_podman(pypod: Pypod) -> None:
    err = pypod.fails(125, "generate", "systemd", "sdnosuch")
    assert err == (
        "Error: sdnosuch does not refer to a container or pod: no pod with name or ID sdnosuch "
        'found: no such pod: no container with name or ID "sdnosuch" found: no such container\n'
    )
    pypod.ok("create", "--name", "sderr", IMAGE, "true")
    err = pypod.fails(125, "generate", "systemd", "--restart-policy", "bogus", "sderr")
    assert err == "Error: bogus is not a valid restart policy\n"
    pypod.ok("pod", "create", "--infra=false", "--name", "sdnoinfra")
    err = pypod.fails(125, "generate", "systemd", "sdnoinfra")
    assert err == 'Error: generating systemd unit files: Pod "sdnoinfra" has no infra container\n'
    pypod.ok("pod", "rm", "sdnoinfra")


# --- quadlet -----------------------------------------------------------------------------------
QUADLET = str(Path(PYPOD).parent / "pypod-quadlet")


def quadlet(src: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUADLET_UNIT_DIRS": str(src)}
    return subprocess.run([QUADLET, *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


def test_quadlet_units_create_the_volume_and_the_network(pypod: Pypod, tmp_path: Path,
                                                         runtime_dir: str) -> None:  # fmt: skip
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    store = f"GlobalArgs=--root {pypod.root} --runroot {pypod.runroot}\n"
    (src / "sdq.volume").write_text(f"[Volume]\n{store}Label=app=sdq\n")
    (src / "sdq.network").write_text(f"[Network]\n{store}Subnet=10.231.17.0/24\n")
    (src / "sdq.container").write_text(
        f"[Container]\n{store}Image={IMAGE}\nExec=sleep 1000\nVolume=sdq.volume:/data\n"
        "Network=sdq.network\n[Install]\nWantedBy=default.target\n"
    )
    proc = quadlet(src, str(out))
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["default.target.wants", "sdq-network.service", "sdq-volume.service",
                     "sdq.service"]  # fmt: skip
    if shutil.which("systemd-analyze") is not None:
        files = sorted(str(p) for p in out.glob("*.service"))
        check = subprocess.run(["systemd-analyze", "verify", *files], capture_output=True,
                               text=True, timeout=120, check=False)  # fmt: skip
        assert check.returncode == 0 and not check.stdout and not check.stderr, check
    try:
        for _ in range(2):  # `create --ignore`: starting the unit again is fine
            volume = (out / "sdq-volume.service").read_text()
            run_exec(volume, "ExecStart", runtime_dir, "sdq-volume.service")
            network = (out / "sdq-network.service").read_text()
            run_exec(network, "ExecStart", runtime_dir, "sdq-network.service")
        labels = json.loads(pypod.ok("volume", "inspect", "systemd-sdq"))[0]["Labels"]
        assert labels == {"app": "sdq"}
        subnets = json.loads(pypod.ok("network", "inspect", "systemd-sdq"))[0]["subnets"]
        assert subnets[0]["subnet"] == "10.231.17.0/24"
    finally:
        pypod("volume", "rm", "-f", "systemd-sdq")
        pypod("network", "rm", "-f", "systemd-sdq")


def test_quadlet_container_unit_runs_the_container(pypod: Pypod, tmp_path: Path, runtime_dir: str,
                                                   unit_cgroup: str) -> None:  # fmt: skip
    src = tmp_path / "src"
    src.mkdir()
    store = f"GlobalArgs=--root {pypod.root} --runroot {pypod.runroot}\n"
    (src / "sdqc.container").write_text(f"[Container]\n{store}Image={IMAGE}\nExec=sleep 1000\n")
    proc = quadlet(src, str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    unit = (tmp_path / "out" / "sdqc.service").read_text()
    assert "--cgroups=split" in unit and "--sdnotify=conmon" in unit
    run_exec(unit, "ExecStart", runtime_dir, "sdqc.service", cgroup=unit_cgroup)
    assert status(pypod, "systemd-sdqc") == "running"
    # --cgroups=split: the monitor in the unit's cgroup's `runtime`, the container below it
    own = "/" + os.path.relpath(unit_cgroup, unit_cgroup.rsplit("/pypod-test-", 1)[0])
    pids = pypod.ok("inspect", "--format", "{{.State.ConmonPid}} {{.State.Pid}}", "systemd-sdqc")
    monitor, pid = pids.split()
    assert f"0::{own}/runtime\n" in Path(f"/proc/{monitor}/cgroup").read_text()
    assert f"0::{own}/pypod-" in Path(f"/proc/{pid}/cgroup").read_text()
    run_exec(unit, "ExecStop", runtime_dir, "sdqc.service")
    assert pypod("container", "exists", "systemd-sdqc").returncode == 1
    wait_for(lambda: not alive(int(monitor)), what="the monitor to exit")


def test_split_cgroups_need_a_cgroup_of_their_own(pypod: Pypod) -> None:
    """`--cgroups=split` outside a service (the root cgroup, as here without systemd): podman
    4.3's error, 126 from `run`, 125 from `start`."""
    if not Path("/proc/self/cgroup").read_text().endswith("0::/\n"):
        pytest.skip("this test runs in a cgroup of its own (not the root one)")
    err = pypod.fails(126, "run", "--rm", "--cgroups=split", IMAGE, "true")
    assert err == 'Error: could not find cgroup mount in "/proc/self/cgroup"\n'
    cid = pypod.ok("create", "--cgroups=split", IMAGE, "true").strip()
    err = pypod.fails(125, "start", cid)
    assert err == (f'Error: unable to start container "{cid}": could not find cgroup mount in '
                   '"/proc/self/cgroup"\n')  # fmt: skip
    pypod.ok("rm", cid)


def test_quadlet_dryrun_prints_units_and_reports_bad_files(tmp_path: Path) -> None:
    (tmp_path / "good.container").write_text(f"[Container]\nImage={IMAGE}\n")
    (tmp_path / "bad.container").write_text("[Container]\nImage=x\nNoSuchKey=1\n")
    proc = quadlet(tmp_path, "-dryrun")
    assert proc.returncode == 1
    assert proc.stdout.startswith("---good.service---\n# Automatically generated by ")
    assert "bad.service" not in proc.stdout
    assert proc.stderr == (
        f"pypod-quadlet: converting '{tmp_path}/bad.container', ignoring: unsupported key "
        f"'NoSuchKey' in group 'Container' in {tmp_path}/bad.container\n"
    )
    assert quadlet(tmp_path).returncode == 1  # no output directory
    assert quadlet(tmp_path, "-bogus").returncode == 2
