"""`pypod ps`, `inspect` and `logs` as podman 4.3 shows them (values checked against podman
4.3.1 on this machine: filters, flags, `--format json` keys, Go templates, statuses)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.engine_support import (  # noqa: F401  (fixtures)
    IMAGE,
    Pypod,
    busybox_tar_fixture,
    pypod_fixture,
    pypod_session_fixture,
    table,
    wait_for,
)

pytestmark = [pytest.mark.root]

#: podman 4.3's `ps --format json` keys
PS_JSON_KEYS = {
    "AutoRemove", "Command", "Created", "CreatedAt", "ExitCode", "Exited", "ExitedAt", "Id",
    "Image", "ImageID", "IsInfra", "Labels", "Mounts", "Names", "Namespaces", "Networks", "Pid",
    "Pod", "PodName", "Ports", "Size", "StartedAt", "State", "Status",
}  # fmt: skip


@pytest.fixture
def four(pypod: Pypod) -> dict[str, str]:
    """s1 running (labels app=web tier=1), s2 exited 3 (app=db), s3 exited 0, s4 created."""
    ids = {"s1": pypod.sleeper("--name", "s1", "--label", "app=web", "--label", "tier=1")}
    pypod.fails(3, "run", "--name", "s2", "--label", "app=db", IMAGE, "sh", "-c", "exit 3")
    pypod.ok("run", "--name", "s3", IMAGE, "true")
    pypod.ok("create", "--name", "s4", IMAGE, "echo", "created")
    for name in ("s2", "s3", "s4"):
        ids[name] = pypod.fmt(name, "{{.Id}}")
    return ids


def names(p: Pypod, *args: str) -> list[str]:
    return [n for n in p.ok("ps", *args, "--format", "{{.Names}}").split() if re.match(r"s\d$", n)]


def test_ps_filters(pypod: Pypod, four: dict[str, str]) -> None:
    assert names(pypod) == ["s1"]
    assert names(pypod, "-a") == ["s1", "s2", "s3", "s4"]
    assert names(pypod, "-a", "--filter", "name=^s1$") == ["s1"]
    assert names(pypod, "-a", "--filter", "name=s1", "--filter", "name=s2") == ["s1", "s2"]
    assert names(pypod, "-a", "--filter", f"id={four['s3'][:10]}") == ["s3"]
    assert names(pypod, "-a", "--filter", "status=exited") == ["s2", "s3"]
    assert names(pypod, "-a", "--filter", "status=stopped") == ["s2", "s3"]
    assert names(pypod, "-a", "--filter", "status=created") == ["s4"]
    assert names(pypod, "-a", "--filter", "status=running") == ["s1"]
    assert names(pypod, "-a", "--filter", "status=exited", "--filter", "status=created") == [
        "s2", "s3", "s4",
    ]  # fmt: skip
    assert names(pypod, "-a", "--filter", "label=app") == ["s1", "s2"]
    assert names(pypod, "-a", "--filter", "label=app=db") == ["s2"]
    # label filters must all match
    assert names(pypod, "-a", "--filter", "label=app=web", "--filter", "label=tier=1") == ["s1"]
    assert names(pypod, "-a", "--filter", "label=app=web", "--filter", "label=app=db") == []
    assert names(pypod, "-a", "--filter", "exited=3") == ["s2"]
    assert names(pypod, "-a", "--filter", "exited=0") == ["s3"]
    # ancestor: the full image ID, the stored name, or that name without ":latest" (podman's
    # exact comparisons: a short name matches nothing)
    image_id = pypod.ok("images", "-q", "--no-trunc", IMAGE).strip().removeprefix("sha256:")
    for value in (IMAGE, f"{IMAGE}:latest", image_id):
        assert names(pypod, "-a", "--filter", f"ancestor={value}") == ["s1", "s2", "s3", "s4"]
    assert names(pypod, "-a", "--filter", "ancestor=busybox") == []
    assert names(pypod, "-a", "--filter", "before=s3") == ["s1", "s2"]
    assert names(pypod, "-a", "--filter", "since=s2") == ["s3", "s4"]
    err = pypod.fails(125, "ps", "-a", "--filter", "status=bogus")
    assert "Error: unknown container state: bogus: invalid argument" in err
    err = pypod.fails(125, "ps", "-a", "--filter", "foo=bar")
    assert "Error: foo is an invalid filter" in err


def test_ps_flags(pypod: Pypod, four: dict[str, str]) -> None:
    latest = pypod.ok("ps", "-l", "--format", "{{.Names}}")
    assert latest == "s4\n"
    assert pypod.ok("ps", "-n", "2", "--format", "{{.Names}}") == "s3\ns4\n"
    quiet = pypod.ok("ps", "-q").split()
    assert four["s1"][:12] in quiet and all(len(q) == 12 for q in quiet)
    assert four["s2"] in pypod.ok("ps", "-aq", "--no-trunc").split()
    rows = table(pypod.ok("ps", "-a", "--no-trunc", "--filter", "name=s2"))
    assert rows[1][0] == four["s2"]
    assert rows[1][2] == "sh -c exit 3"
    # the command is cut at 20 characters without --no-trunc
    rows = table(pypod.ok("ps", "-a", "--filter", "name=s4"))
    assert rows[1][2] == "echo created"
    assert rows[1][4] == "Created"
    long = pypod.ok("create", IMAGE, "echo", "a-rather-long-argument").strip()
    assert table(pypod.ok("ps", "-a", "--filter", f"id={long}"))[1][2] == "echo a-rather-lon..."
    head = pypod.ok("ps", "-a", "--format", "table {{.Names}}\t{{.Status}}").splitlines()[0]
    assert head.split() == ["NAMES", "STATUS"]
    # --sort (podman's keys; the default is the creation order)
    assert names(pypod, "-a", "--sort", "names") == ["s1", "s2", "s3", "s4"]
    assert names(pypod, "-a", "--sort", "runningfor") == ["s4", "s3", "s2", "s1"]
    by_cmd = names(pypod, "-a", "--sort", "command")
    assert by_cmd == ["s4", "s2", "s1", "s3"]  # echo..., sh..., sleep..., true
    err = pypod.fails(125, "ps", "--sort", "bogus")
    assert "invalid option for --sort" in err
    err = pypod.fails(125, "ps", "--watch", "1")
    assert "'--watch' is not supported yet" in err


def test_ps_json_and_templates(pypod: Pypod, four: dict[str, str]) -> None:
    docs = json.loads(pypod.ok("ps", "-a", "--format", "json"))
    mine = {d["Names"][0]: d for d in docs if d["Names"][0] in four}
    assert set(mine) == set(four)
    for d in mine.values():
        assert set(d) == PS_JSON_KEYS
    s1, s2, s4 = mine["s1"], mine["s2"], mine["s4"]
    assert s1["State"] == "running" and s1["Exited"] is False and s1["Pid"] > 0
    assert s1["Labels"] == {"app": "web", "tier": "1"}
    assert s1["Command"] == ["sleep", "1000"]
    assert s1["Id"] == four["s1"] and s1["Image"] == f"{IMAGE}:latest"
    assert s2["State"] == "exited" and s2["ExitCode"] == 3 and s2["Exited"] is True
    assert s2["Status"].startswith("Exited (3) ")
    assert s4["State"] == "created" and s4["Status"] == "Created"
    assert s4["StartedAt"] == -62135596800  # Go's zero time, as podman
    assert isinstance(s1["Created"], int) and s1["CreatedAt"].endswith("ago")
    # json wins over -q (podman)
    assert json.loads(pypod.ok("ps", "-aq", "--format", "json"))
    # Go templates: .State is the status text (podman's psReporter), .Labels a Go map
    template = "{{.ID}} {{.State}} {{.ExitCode}} {{.Labels}} {{.ImageID}}"
    line = pypod.ok("ps", "-a", "--filter", "name=s2", "--format", template)
    assert re.fullmatch(r"[0-9a-f]{12} Exited \(3\) .+ ago 3 map\[app:db\] [0-9a-f]{12}\n", line)
    created = pypod.ok("ps", "-a", "--filter", "name=s2", "--format", "{{.Created}}")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? \+0000 UTC\n", created), created


def test_initialized_status(pypod: Pypod) -> None:
    cid = pypod.ok("create", "--name", "ini", IMAGE, "echo", "from-init").strip()
    assert pypod.ok("init", "ini") == "ini\n"
    # libpod's "created" state shows as "initialized" (podman 4.3)
    assert pypod.status("ini") == "initialized"
    assert pypod.ok("ps", "-a", "--filter", "status=initialized", "--format", "{{.Names}}") == (
        "ini\n"
    )
    assert table(pypod.ok("ps", "-a", "--filter", "name=ini"))[1][4] == "Initialized"
    err = pypod.fails(125, "init", "ini")
    assert f"container {cid} has already been created in runtime" in err
    assert pypod.ok("start", "-a", "ini") == "from-init\n"
    assert pypod.status("ini") == "exited"


def test_inspect(pypod: Pypod, tmp_path: Path) -> None:
    cid = pypod.sleeper("--name", "insp", "-e", "A=1", "--label", "x=y", "-v",
                        f"{tmp_path}:/data:ro", "-w", "/tmp", "--hostname", "h1")  # fmt: skip
    doc = json.loads(pypod.ok("inspect", "insp"))
    assert isinstance(doc, list) and len(doc) == 1
    d = doc[0]
    assert d["Id"] == cid and d["Name"] == "insp"
    assert d["Path"] == "sleep" and d["Args"] == ["1000"]
    st = d["State"]
    assert st["Status"] == "running" and st["Running"] is True and st["Pid"] > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", st["StartedAt"])
    assert st["FinishedAt"] == "0001-01-01T00:00:00Z"
    cfg = d["Config"]
    assert "A=1" in cfg["Env"] and "container=pypod" in cfg["Env"]
    assert any(e.startswith("PATH=") for e in cfg["Env"])
    assert cfg["Labels"] == {"x": "y"}
    assert cfg["WorkingDir"] == "/tmp" and cfg["Hostname"] == "h1"
    assert cfg["Cmd"] == ["sleep", "1000"] and cfg["Image"] == f"{IMAGE}:latest"
    assert cfg["CreateCommand"][-4:] == ["--hostname", "h1", IMAGE, "sleep", "1000"][-4:]
    assert cfg["StopSignal"] == 15
    assert d["ImageName"] == f"{IMAGE}:latest"
    mount = next(m for m in d["Mounts"] if m["Destination"] == "/data")
    assert mount["Source"] == str(tmp_path) and mount["RW"] is False
    host = d["HostConfig"]
    for key in (
        "Binds",
        "RestartPolicy",
        "LogConfig",
        "CpuPeriod",
        "CpuQuota",
        "CpusetMems",
        "BlkioWeight",
        "MemorySwappiness",
        "PidsLimit",
        "Ulimits",
        "CgroupConf",
    ):
        assert key in host, key
    assert host["RestartPolicy"] == {"Name": "", "MaximumRetryCount": 0}
    # templates reach nested fields; several containers give one line each
    assert pypod.fmt("insp", "{{.State.Status}} {{.Config.Hostname}}") == "running h1"
    pypod.ok("stop", "-t", "0", "insp")
    st = json.loads(pypod.ok("inspect", "insp"))[0]["State"]
    assert st["Status"] == "exited" and st["ExitCode"] == 137 and st["Pid"] == 0
    assert st["FinishedAt"] != "0001-01-01T00:00:00Z"
    other = pypod.ok("create", IMAGE, "true").strip()
    out = pypod.ok("inspect", "--format", "{{.Name}}", "insp", other).split()
    assert out[0] == "insp" and len(out) == 2
    err = pypod.fails(125, "inspect", "no-such-thing")
    assert "no such object" in err or "no such container" in err, err


def test_inspect_graph_driver(pypod: Pypod) -> None:
    """podman's GraphDriver: the image's layers below, the container's own directories, the
    merged one while it runs; a file the container writes is in its UpperDir."""
    cid = pypod.run_d(IMAGE, "sh", "-c", "echo hi > /written; sleep 1000")
    wait_for(lambda: pypod.ok("exec", cid, "cat", "/written") == "hi\n", what="the write")
    gd = json.loads(pypod.fmt(cid, "{{json .GraphDriver}}"))
    assert gd["Name"] == "overlay"
    assert sorted(gd["Data"]) == ["LowerDir", "MergedDir", "UpperDir", "WorkDir"]
    assert (Path(gd["Data"]["UpperDir"]) / "written").read_text() == "hi\n"
    assert all(Path(p).is_dir() for p in gd["Data"]["LowerDir"].split(":"))
    pypod.ok("stop", "-t", "0", cid)
    data = json.loads(pypod.fmt(cid, "{{json .GraphDriver.Data}}"))
    assert sorted(data) == ["LowerDir", "UpperDir", "WorkDir"]


def test_logs(pypod: Pypod) -> None:
    pypod.ok("run", "--name", "l1", IMAGE, "sh", "-c", "echo a; echo b >&2; echo c")
    pypod.ok("run", "--name", "l2", IMAGE, "sh", "-c", "echo x; echo y")
    proc = pypod("logs", "l1")
    assert proc.stdout == "a\nc\n" and proc.stderr == "b\n"
    assert pypod.ok("logs", "--tail", "1", "l2") == "y\n"
    assert pypod.ok("logs", "--tail", "0", "l2") == ""
    assert pypod.ok("logs", "--tail", "-1", "l2") == "x\ny\n"
    stamped = pypod.ok("logs", "-t", "l2").splitlines()
    assert [re.sub(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z ", "", s) for s in stamped] == [
        "x", "y",
    ]  # fmt: skip
    assert pypod.ok("logs", "--since", "2099-01-01", "l2") == ""
    assert pypod.ok("logs", "--until", "2000-01-01", "l2") == ""
    assert pypod.ok("logs", "--since", "1h", "l2") == "x\ny\n"
    now = time.time()
    assert pypod.ok("logs", "--since", str(now + 60), "l2") == ""
    # several containers: each line prefixed with the short ID
    l1 = pypod.fmt("l1", "{{.Id}}")[:12]
    l2 = pypod.fmt("l2", "{{.Id}}")[:12]
    assert pypod.ok("logs", "l1", "l2") == f"{l1} a\n{l1} c\n{l2} x\n{l2} y\n"
    err = pypod.fails(125, "logs", "nosuch")
    assert 'no container with name or ID "nosuch" found' in err
    assert pypod.ok("run", "--log-driver", "none", "--name", "l3", IMAGE, "echo", "shown") == (
        "shown\n"
    )
    err = pypod.fails(125, "logs", "l3")
    assert "this container is using the 'none' log driver, cannot read logs" in err


def test_logs_follow_several(pypod: Pypod) -> None:
    a = pypod.run_d(IMAGE, "sh", "-c", "sleep 0.3; echo from-a")
    b = pypod.run_d(IMAGE, "sh", "-c", "sleep 0.6; echo from-b")
    out = pypod.ok("logs", "-f", a, b, timeout=30)
    assert sorted(out.splitlines()) == sorted([f"{a[:12]} from-a", f"{b[:12]} from-b"])


def test_logs_follow_sees_each_line_once(pypod: Pypod) -> None:
    cid = pypod.run_d(IMAGE, "sh", "-c", "i=0; while [ $i -lt 300 ]; do echo n$i; "
                      "i=$((i+1)); done")  # fmt: skip
    out = pypod.ok("logs", "-f", cid, timeout=30)
    assert out.splitlines() == [f"n{i}" for i in range(300)]
    wait_for(lambda: pypod.status(cid) == "exited")
