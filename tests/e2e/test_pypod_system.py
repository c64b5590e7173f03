"""`pypod top/stats/events/pause/unpause/rename/container exists/container prune/info/version/
system prune` and rm's exit codes, as podman 4.3 gives them (checked against podman 4.3.1)."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.engine_support import (  # noqa: F401  (fixtures)
    IMAGE,
    Pypod,
    busybox_tar_fixture,
    fresh_pypod_fixture,
    pypod_fixture,
    pypod_session_fixture,
    table,
)

pytestmark = [pytest.mark.root]

GO_DURATION = r"(\d+h)?(\d+m)?\d+(\.\d+)?(s|ms|µs|ns)"


def test_top(pypod: Pypod) -> None:
    cid = pypod.sleeper()
    rows = table(pypod.ok("top", cid))
    assert rows[0] == ["USER", "PID", "PPID", "%CPU", "ELAPSED", "TTY", "TIME", "COMMAND"]
    assert rows[1][:3] == ["root", "1", "0"]
    assert re.fullmatch(GO_DURATION, rows[1][4]), rows[1][4]
    assert rows[1][5] == "?" and rows[1][7] == "sleep 1000"
    pypod.ok("exec", "-d", cid, "sleep", "999")
    rows = table(pypod.ok("top", cid, "pid", "comm", "args"))
    assert rows[0] == ["PID", "COMMAND", "COMMAND"]
    assert sorted(r[2] for r in rows[1:]) == ["sleep 1000", "sleep 999"]
    # descriptors podman's top does not know: ps(1) in the container, with these options
    out = pypod.ok("top", cid, "-o", "pid,args")
    lines = out.splitlines()
    assert lines[0].split() == ["PID", "COMMAND"]
    assert any(re.fullmatch(r"\s*1 sleep 1000", line) for line in lines[1:]), out
    assert not any("-o pid,args" in line for line in lines)
    pypod.ok("stop", "-t", "0", cid)
    err = pypod.fails(125, "top", cid)
    assert "top can only be used on running containers" in err


def test_stats_no_stream(pypod: Pypod) -> None:
    cid = pypod.sleeper("--name", "stat")
    rows = table(pypod.ok("stats", "--no-stream", "stat"))
    assert rows[0] == ["ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET IO",
                       "BLOCK IO", "PIDS", "CPU TIME", "AVG CPU %"]  # fmt: skip
    assert rows[1][:2] == [cid[:12], "stat"]
    assert rows[1][7] == "1"
    assert re.fullmatch(GO_DURATION, rows[1][8]), rows[1][8]
    # --no-stream: CPU % is the average since the start, as podman's first figure
    assert rows[1][2] == rows[1][9]
    docs = json.loads(pypod.ok("stats", "--no-stream", "--format", "json", "stat"))
    assert set(docs[0]) == {"id", "name", "cpu_time", "cpu_percent", "avg_cpu", "mem_usage",
                            "mem_percent", "net_io", "block_io", "pids"}  # fmt: skip
    assert pypod.ok("stats", "--no-stream", "--format", "{{.Name}} {{.PIDS}}", cid) == "stat 1\n"
    pypod.ok("stop", "-t", "0", cid)
    pypod.fails(125, "stats", "--no-stream", cid)


def test_pause_unpause(pypod: Pypod) -> None:
    cid = pypod.sleeper("--name", "pz")
    assert pypod.ok("pause", "pz") == "pz\n"
    assert pypod.fmt("pz", "{{.State.Status}} {{.State.Paused}}") == "paused true"
    # not listed by ps without -a (podman lists running containers only)
    assert "pz" not in pypod.ok("ps", "--format", "{{.Names}}").split()
    assert pypod.ok("ps", "-a", "--filter", "name=pz", "--format", "{{.Status}}") == "Paused\n"
    with open(f"/proc/{pypod.fmt('pz', '{{.State.Pid}}')}/status") as f:
        state = f.read()
    assert re.search(r"State:\s+[DST]", state)
    err = pypod.fails(125, "pause", "pz")
    assert f'"{cid}" is already paused: container state improper' in err
    err = pypod.fails(255, "exec", "pz", "true")
    assert "can only create exec sessions on running containers" in err
    assert pypod.ok("unpause", "pz") == "pz\n"
    assert pypod.status("pz") == "running"
    err = pypod.fails(125, "unpause", "pz")
    assert f'"{cid}" is not paused, can\'t unpause: container state improper' in err
    # stop and rm -f work on a paused container
    pypod.ok("pause", "pz")
    assert pypod.ok("rm", "-f", "-t", "0", "pz") == "pz\n"


def test_rename_and_exists(pypod: Pypod) -> None:
    cid = pypod.sleeper("--name", "before")
    assert pypod.ok("rename", "before", "after") == ""
    assert pypod("container", "exists", "before").returncode == 1
    assert pypod("container", "exists", "after").returncode == 0
    assert pypod("container", "exists", cid[:12]).returncode == 0
    assert pypod.fmt(cid, "{{.Name}}") == "after"
    assert pypod.ok("exec", "after", "echo", "ok") == "ok\n"
    other = pypod.ok("create", "--name", "taken", IMAGE, "true").strip()
    err = pypod.fails(125, "rename", "after", "taken")
    assert f"renaming container {cid}: name taken already in use" in err
    pypod.fails(125, "rename", "after", "bad name")
    pypod.ok("rm", other)


def test_rename_frees_the_old_name(pypod: Pypod) -> None:
    pypod.sleeper("--name", "old-name")
    pypod.ok("rename", "old-name", "new-name")
    pypod.ok("create", "--name", "old-name", IMAGE, "true")


def test_rm_exit_codes(pypod: Pypod) -> None:
    cid = pypod.sleeper("--name", "rmrun")
    # podman rm: 2 when a container runs, 1 when one does not exist (that one wins), 0 with -i
    err = pypod.fails(2, "rm", "rmrun")
    assert "cannot remove container" in err and "as it is running" in err
    pypod.fails(1, "rm", "no-such-container")
    pypod.fails(1, "rm", "rmrun", "no-such-container")
    assert pypod.ok("rm", "-i", "no-such-container") == ""
    pypod.fails(125, "stop", "no-such-container")
    assert pypod.ok("stop", "--ignore", "no-such-container") == ""
    assert pypod.ok("rm", "-f", "-t", "0", cid) == f"{cid}\n"


def test_container_prune(fresh_pypod: Pypod) -> None:
    p = fresh_pypod
    running = p.sleeper()
    exited = [p.run_d(IMAGE, "true") for _ in range(2)]
    for cid in exited:
        p.ok("wait", cid)
    created = p.ok("create", "--label", "keep=1", IMAGE, "true").strip()
    kept = p.ok("create", IMAGE, "true").strip()
    assert sorted(p.ok("container", "prune", "-f", "--filter", "label=keep").split()) == [created]
    assert sorted(p.ok("container", "prune", "-f").split()) == sorted([*exited, kept])
    assert p.ok("ps", "-a", "-q", "--no-trunc").split() == [running]
    err = p.fails(125, "container", "prune", "-f", "--filter", "name=x")
    assert "name is an invalid filter" in err


def test_system_prune(fresh_pypod: Pypod) -> None:
    p = fresh_pypod
    running = p.sleeper()
    gone = p.run_d(IMAGE, "sh", "-c", "echo data > /file")
    p.ok("wait", gone)
    out = p.ok("system", "prune", "-f").splitlines()
    assert out[:2] == ["Deleted Containers", gone]
    assert re.fullmatch(r"Total reclaimed space: [\d.]+k?B", out[-1]), out
    assert p.ok("ps", "-a", "-q", "--no-trunc").split() == [running]
    # nothing to prune: no headings, only the total
    assert p.ok("system", "prune", "-f") == "Total reclaimed space: 0B\n"
    assert IMAGE in p.ok("images", "--format", "{{.Repository}}")


def test_events(pypod: Pypod) -> None:
    since = str(time.time() - 0.01)
    pypod.fails(3, "run", "--name", "ev", "--label", "foo=bar", IMAGE, "sh", "-c", "exit 3")
    cid = pypod.fmt("ev", "{{.Id}}")
    pypod.ok("rm", "ev")
    args = ("events", "--stream=false", "--since", since, "--filter", f"container={cid}")
    lines = pypod.ok(*args, "--format", "{{.Type}} {{.Status}} {{.Name}}").splitlines()
    actions = ("create", "init", "attach", "start", "died", "cleanup", "remove")
    assert lines == [f"container {a} ev" for a in actions]
    text = pypod.ok(*args, "--filter", "event=died")
    assert re.fullmatch(
        rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? \+0000 UTC container died {cid} "
        rf"\(image={IMAGE}:latest, name=ev, foo=bar\)\n", text,
    ), text  # fmt: skip
    died = json.loads(pypod.ok(*args, "--filter", "event=died", "--format", "json"))
    assert list(died) == ["ContainerExitCode", "ID", "Image", "Name", "Status", "Time", "Type",
                          "Attributes"]  # fmt: skip
    assert died["ContainerExitCode"] == 3 and died["Attributes"] == {"foo": "bar"}
    assert pypod.ok(*args, "--filter", "label=foo=bar", "--format", "{{.Status}}").split()[0] == (
        "create"
    )
    assert pypod.ok(*args, "--filter", "label=foo=other") == ""


def test_info_and_version(pypod: Pypod) -> None:
    info = json.loads(pypod.ok("info", "--format", "json"))
    assert {"host", "store", "registries", "version"} <= set(info)
    assert info["store"]["graphRoot"] == str(pypod.root)
    assert info["store"]["runRoot"] == str(pypod.runroot)
    assert info["host"]["cgroupManager"] == "cgroupfs"
    # Go templates use the struct field names, as podman's
    out = pypod.ok("info", "--format", "{{.Host.OCIRuntime.Name}} {{.Store.GraphRoot}}")
    assert out == f"pypod {pypod.root}\n"
    number = pypod.ok("info", "--format", "{{.Store.ContainerStore.Number}}").strip()
    assert int(number) == len(pypod.ok("ps", "-aq").split())
    assert "host:" in pypod.ok("info")
    version = pypod.ok("version", "--format", "json")
    assert version.count("\n") == 1  # one line, as podman's
    assert json.loads(version)["Client"]["Version"]
    assert pypod.ok("version").startswith("Client:")
    assert (
        pypod.ok("version", "--format", "{{.Client.Version}}").strip()
        == (json.loads(version)["Client"]["Version"])
    )
    assert re.fullmatch(r"pypod version \S+\n", pypod.ok("--version"))
