"""Pods as users type them: the seed walkthrough's pod part (a pod with a published port, two
containers talking over localhost, one stopped and started while the pod stays up, the port
answering), the infra container, shared namespaces, the pod commands and their statuses.

Real namespaces, bridges and nftables rules (root); traffic only between the host and the
namespaces the tests make.
"""

from __future__ import annotations

import json
import os
import re
import socket
import urllib.request
from pathlib import Path

import pytest

from tests.engine_support import (  # noqa: F401  (fixtures)
    IMAGE,
    Pypod,
    busybox_tar_fixture,
    pods_fixture,
    pypod_fixture,
    pypod_session_fixture,
    table,
    wait_for,
)

pytestmark = pytest.mark.root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def fetch(url: str, timeout: float = 3) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return str(r.read().decode())
    except OSError:
        return None


@pytest.fixture(name="www")
def www_fixture(tmp_path: Path) -> Path:
    d = tmp_path / "www"
    d.mkdir()
    (d / "index.html").write_text("hello from the pod\n")
    d.chmod(0o755)
    return d


def pod_status(p: Pypod, pod: str) -> str:
    return p.ok("pod", "inspect", "--format", "{{.State}}", pod).strip()


def test_seed_walkthrough_pod_with_published_port(pods: Pypod, www: Path) -> None:
    port = free_port()
    name = f"web{os.urandom(3).hex()}"
    pod_id = pods.ok("pod", "create", "--name", name, "-p", f"{port}:80").strip()
    assert re.fullmatch(r"[0-9a-f]{64}", pod_id)
    assert pod_status(pods, name) == "Created"
    # the web server, and a client that reaches it over the pod's localhost
    web = pods.run_d("--pod", name, "--name", f"{name}-httpd", "-v", f"{www}:/www:ro", IMAGE,
                     "httpd", "-f", "-p", "80", "-h", "/www")  # fmt: skip
    client = pods.run_d("--pod", name, "--name", f"{name}-client", IMAGE, "sh", "-c",
                        "while sleep 0.2; do wget -q -O - http://localhost:80/index.html && "
                        "break; done; sleep 1000")  # fmt: skip
    assert wait_for(lambda: fetch(f"http://127.0.0.1:{port}/index.html"), 10, "the port") == (
        "hello from the pod\n"
    )
    wait_for(lambda: "hello from the pod" in pods.ok("logs", client), 10, "the client's fetch")
    assert pod_status(pods, name) == "Running"
    # stop the web server: the pod stays up (degraded), its port has nobody behind it
    pods.ok("stop", "-t", "0", web)
    assert pod_status(pods, name) == "Degraded"
    assert pods.status(client) == "running"
    assert fetch(f"http://127.0.0.1:{port}/index.html", timeout=1) is None
    pods.ok("start", web)
    assert wait_for(lambda: fetch(f"http://127.0.0.1:{port}/index.html"), 10, "the port") == (
        "hello from the pod\n"
    )
    assert pod_status(pods, name) == "Running"
    # the same through the pod's own commands
    pods.ok("pod", "stop", "-t", "0", name)
    assert pod_status(pods, name) == "Exited"
    assert pods.ok("pod", "start", name).strip() == pod_id
    assert wait_for(lambda: fetch(f"http://127.0.0.1:{port}/index.html"), 10, "the port") == (
        "hello from the pod\n"
    )
    # pod rm -f: members first, then the infra container; nothing of it left
    infra = pods.ok("pod", "inspect", "--format", "{{.InfraContainerID}}", name).strip()
    assert pods.ok("pod", "rm", "-f", "-t", "0", name).strip() == pod_id
    ids = pods.ok("ps", "-a", "-q", "--no-trunc").split()
    assert not {web, client, infra} & set(ids)
    assert pods("pod", "exists", name).returncode == 1
    assert fetch(f"http://127.0.0.1:{port}/index.html", timeout=1) is None
    for hierarchy in ("memory", "pids", "cpu", "unified"):  # the pod's cgroup went with it
        assert not os.path.exists(f"/sys/fs/cgroup/{hierarchy}/pypod_parent/{pod_id}")


def test_ps_pod_columns_and_filter(pods: Pypod) -> None:
    name = f"ps{os.urandom(3).hex()}"
    pod_id = pods.ok("pod", "create", "--name", name).strip()
    member = pods.sleeper("--pod", name, "--name", f"{name}-m")
    rows = table(pods.ok("ps", "-a", "--pod", "--filter", f"pod={name}"))
    assert rows[0][-2:] == ["POD ID", "PODNAME"]
    by_name = {r[-3]: r for r in rows[1:]}
    assert set(by_name) == {f"{pod_id[:12]}-infra", f"{name}-m"}
    assert all(r[-2:] == [pod_id[:12], name] for r in rows[1:])
    assert by_name[f"{pod_id[:12]}-infra"][1].startswith("localhost/pypod-pause:")
    # infra: ps --format shows its flag
    infra_flag = pods.ok("ps", "-a", "--pod", "--filter", f"pod={pod_id[:12]}", "--format",
                         "{{.Names}} {{.IsInfra}} {{.PodName}}")  # fmt: skip
    assert sorted(infra_flag.splitlines()) == sorted(
        [f"{pod_id[:12]}-infra true {name}", f"{name}-m false {name}"]
    )
    assert member in pods.ok("ps", "-q", "--no-trunc", "--filter", f"pod={pod_id}")


def test_pod_ps_columns_and_options(pods: Pypod) -> None:
    name = f"pp{os.urandom(3).hex()}"
    pod_id = pods.ok("pod", "create", "--name", name, "--label", "tier=web").strip()
    rows = table(pods.ok("pod", "ps", "--filter", f"name={name}"))
    assert rows[0] == ["POD ID", "NAME", "STATUS", "CREATED", "INFRA ID", "# OF CONTAINERS"]
    assert rows[1][:3] == [pod_id[:12], name, "Created"]
    assert rows[1][-1] == "1"
    member = pods.sleeper("--pod", name, "--name", f"{name}-m")
    rows = table(pods.ok("pod", "ps", "--ctr-names", "--ctr-status", "--filter", f"id={pod_id}"))
    assert rows[0][-2:] == ["NAMES", "STATUS"]
    assert sorted(rows[1][-2].split(",")) == sorted([f"{pod_id[:12]}-infra", f"{name}-m"])
    assert rows[1][-1] == "running,running"
    assert pods.ok("pod", "ps", "-q", "--filter", "label=tier=web").split() == [pod_id[:12]]
    assert pods.ok("pod", "ps", "-q", "--no-trunc", "--filter", "ctr-names=" + f"{name}-m",
                   ).split() == [pod_id]  # fmt: skip
    out = json.loads(pods.ok("pod", "ps", "--format", "json", "--filter", f"name={name}"))
    assert out[0]["Id"] == pod_id and out[0]["Status"] == "Running"
    assert {c["Id"] for c in out[0]["Containers"]} >= {member}
    assert pods.ok("pod", "ps", "--format", "{{.Name}}:{{.NumberOfContainers}}",
                   "--filter", f"name={name}") == f"{name}:2\n"  # fmt: skip
    assert pods.ok("pod", "ps", "-q", "--filter", "status=running").count(pod_id[:12]) == 1


def test_members_share_the_infra_namespaces(pods: Pypod) -> None:
    name = f"ns{os.urandom(3).hex()}"
    pod_id = pods.ok("pod", "create", "--name", name, "--add-host", "db.local:10.9.8.7",
                     "--dns", "192.0.2.53").strip()  # fmt: skip
    a = pods.sleeper("--pod", name)
    b = pods.sleeper("--pod", name)

    def ns(cid: str, kind: str) -> str:
        pid = pods.fmt(cid, "{{.State.Pid}}")
        return os.readlink(f"/proc/{pid}/ns/{kind}")

    infra = pods.ok("pod", "inspect", "--format", "{{.InfraContainerID}}", name).strip()
    for kind in ("net", "ipc", "uts"):
        assert ns(a, kind) == ns(b, kind) == ns(infra, kind)
    assert ns(a, "pid") != ns(b, "pid")  # pid is not shared by default
    assert pods.ok("exec", a, "hostname").strip() == name
    hosts = pods.ok("exec", a, "cat", "/etc/hosts")
    assert "10.9.8.7\tdb.local" in hosts
    assert re.search(rf"^\S+\t{name} {pod_id[:12]}-infra$", hosts, re.M), hosts
    assert "nameserver 192.0.2.53" in pods.ok("exec", b, "cat", "/etc/resolv.conf")
    # inspect names the pod (its full ID) and tells the infra container apart, as podman
    assert pods.fmt(a, "{{.Pod}} {{.IsInfra}}") == f"{pod_id} false"
    assert pods.fmt(infra, "{{.Pod}} {{.IsInfra}}") == f"{pod_id} true"


def test_share_pid_and_infra_command(pods: Pypod) -> None:
    name = f"pid{os.urandom(3).hex()}"
    pods.ok("pod", "create", "--name", name, "--share", "+pid", "--hostname", "hh")
    member = pods.sleeper("--pod", name)
    ps = pods.ok("exec", member, "ps", "-o", "pid,args")
    assert re.search(r"^\s*1\s+/catatonit -P", ps, re.M), ps  # the infra's process is PID 1
    assert pods.ok("exec", member, "hostname").strip() == "hh"
    doc = json.loads(pods.ok("pod", "inspect", name))
    assert sorted(doc["SharedNamespaces"]) == ["ipc", "net", "pid", "uts"]
    assert doc["Hostname"] == "hh"


def test_pod_new_moves_ports_to_the_pod(pods: Pypod, www: Path) -> None:
    port = free_port()
    name = f"new{os.urandom(3).hex()}"
    cid = pods.run_d("--pod", f"new:{name}", "-p", f"{port}:80", "-v", f"{www}:/www:ro", IMAGE,
                     "httpd", "-f", "-p", "80", "-h", "/www")  # fmt: skip
    doc = json.loads(pods.ok("pod", "inspect", name))
    assert doc["InfraConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": str(port)}]}
    assert {c["Id"] for c in doc["Containers"]} == {cid, doc["InfraContainerID"]}
    assert wait_for(lambda: fetch(f"http://127.0.0.1:{port}/index.html"), 10, "the port") == (
        "hello from the pod\n"
    )
    assert f"0.0.0.0:{port}->80/tcp" in pods.ok("ps", "--filter", f"id={cid}", "--format",
                                                 "{{.Ports}}")  # fmt: skip
    # the network is the pod's: a member cannot bring its own
    err = pods.fails(125, "create", "--pod", name, "-p", "8080:80", IMAGE, "true")
    assert "published or exposed ports must be defined when the pod is created" in err


def test_infra_removal_refused_and_pod_rm(pods: Pypod) -> None:
    name = f"rm{os.urandom(3).hex()}"
    pod_id = pods.ok("pod", "create", "--name", name).strip()
    member = pods.sleeper("--pod", name)
    infra = pods.ok("pod", "inspect", "--format", "{{.InfraContainerID}}", name).strip()
    err = pods.fails(125, "rm", "-f", infra)
    assert f"container {infra} is the infra container of pod {pod_id} and cannot be removed " \
        "without removing the pod" in err  # fmt: skip
    err = pods.fails(125, "pod", "rm", name)
    assert "running or paused containers cannot be removed without force" in err
    # a member may go on its own; the pod stays
    pods.ok("rm", "-f", "-t", "0", member)
    assert pods.ok("pod", "inspect", "--format", "{{.NumContainers}}", name).strip() == "1"
    pods.ok("pod", "rm", "-f", name)
    assert pods("pod", "exists", name).returncode == 1
    assert infra not in pods.ok("ps", "-a", "-q", "--no-trunc")
    err = pods.fails(1, "pod", "rm", name)
    assert f"no pod with name or ID {name} found: no such pod" in err
    pods.ok("pod", "rm", "--ignore", name)


def test_pod_lifecycle_commands(pods: Pypod) -> None:
    name = f"lc{os.urandom(3).hex()}"
    pod_id = pods.ok("pod", "create", "--name", name).strip()
    a = pods.sleeper("--pod", name)
    assert pods.ok("pod", "pause", name).strip() == pod_id
    assert pod_status(pods, name) == "Paused"
    assert pods.status(a) == "paused"
    assert pods.ok("pod", "unpause", name).strip() == pod_id
    assert pod_status(pods, name) == "Running"
    assert pods.ok("pod", "kill", name).strip() == pod_id
    wait_for(lambda: pod_status(pods, name) == "Exited", 10, "the pod to end")
    assert pods.ok("pod", "restart", name).strip() == pod_id
    assert pod_status(pods, name) == "Running"
    top = pods.ok("pod", "top", name)
    assert "/catatonit -P" in top and "sleep 1000" in top
    stats = table(pods.ok("pod", "stats", "--no-stream", name))
    assert stats[0][:3] == ["POD", "CID", "NAME"]
    assert {r[1] for r in stats[1:]} == {
        a[:12],
        pods.ok("pod", "inspect", "--format", "{{.InfraContainerID}}", name)[:12],
    }
    assert pods("pod", "exists", name).returncode == 0
    pods.ok("pod", "stop", "-t", "0", name)
    assert pods.ok("pod", "prune", "-f").split() == [pod_id] or pod_id in pods.ok(
        "pod", "prune", "-f"
    )
    assert pods("pod", "exists", name).returncode == 1


def test_pod_logs_prefixed(pods: Pypod) -> None:
    name = f"lg{os.urandom(3).hex()}"
    pods.ok("pod", "create", "--name", name)
    a = pods.run_d("--pod", name, "--name", f"{name}-a", IMAGE, "sh", "-c", "echo one; sleep 1000")
    b = pods.run_d("--pod", name, "--name", f"{name}-b", IMAGE, "sh", "-c", "echo two; sleep 1000")
    wait_for(lambda: len(pods.ok("pod", "logs", name).splitlines()) == 2, 10, "both lines")
    assert sorted(pods.ok("pod", "logs", name).splitlines()) == sorted(
        [f"{a[:12]} one", f"{b[:12]} two"]
    )
    assert pods.ok("pod", "logs", "-c", f"{name}-b", name) == "two\n"
    assert f"{name}-a one" in pods.ok("pod", "logs", "--names", name)


def test_infra_false_and_limits(pods: Pypod) -> None:
    name = f"ni{os.urandom(3).hex()}"
    pods.ok("pod", "create", "--name", name, "--infra=false")
    doc = json.loads(pods.ok("pod", "inspect", name))
    assert doc["CreateInfra"] is False and "InfraContainerID" not in doc
    a = pods.sleeper("--pod", name)
    b = pods.sleeper("--pod", name)
    net = [os.readlink(f"/proc/{pods.fmt(c, '{{.State.Pid}}')}/ns/net") for c in (a, b)]
    assert net[0] != net[1]
    assert pods.fails(125, "pod", "create", "--infra=false", "-p", "8080:80")
    # pod-wide limits live on the pod's cgroup, the members' below it
    limited = f"lim{os.urandom(3).hex()}"
    pod_id = pods.ok("pod", "create", "--name", limited, "--memory", "64m").strip()
    member = pods.sleeper("--pod", limited)
    pid = pods.fmt(member, "{{.State.Pid}}")
    with open(f"/proc/{pid}/cgroup") as f:
        memory = next(line for line in f if ":memory:" in line).strip().split(":", 2)[2]
    assert memory.startswith(f"/pypod_parent/{pod_id}/"), memory
    path = f"/sys/fs/cgroup/memory/pypod_parent/{pod_id}/memory.limit_in_bytes"
    if os.path.exists(path):  # cgroup v1 (these machines)
        assert Path(path).read_text().strip() == str(64 * 1024 * 1024)
    pods.ok("pod", "rm", "-f", "-t", "0", limited)
    assert not os.path.exists(os.path.dirname(path))


def test_pod_errors(pods: Pypod) -> None:
    name = f"er{os.urandom(3).hex()}"
    pods.ok("pod", "create", "--name", name)
    err = pods.fails(125, "pod", "create", "--name", name)
    assert f'name "{name}" is in use: pod already exists' in err
    err = pods.fails(125, "run", "--pod", "nosuchpod", IMAGE, "true")
    assert "no pod with name or ID nosuchpod found: no such pod" in err
    proc = pods("pod", "inspect", "nosuchpod")
    assert proc.returncode == 125 and "no such pod nosuchpod" in proc.stderr
    assert pods.fails(125, "pod", "create", "--share", "bogus").count("bogus") >= 1
    err = pods.fails(125, "pod", "create", "--userns", "keep-id")
    assert "keep-id is only supported in rootless mode" in err  # as podman, rootful


def test_infra_name_command_and_pod_id_file(pods: Pypod, tmp_path: Path) -> None:
    name = f"in{os.urandom(3).hex()}"
    id_file = tmp_path / "pod.id"
    pod_id = pods.ok("pod", "create", "--name", name, "--infra-name", f"{name}-holder",
                     "--infra-command", "/catatonit -P -g", "--pod-id-file", str(id_file),
                     ).strip()  # fmt: skip
    assert id_file.read_text() == pod_id
    member = pods.sleeper("--pod-id-file", str(id_file))
    assert pods.fmt(f"{name}-holder", "{{.State.Status}}") == "running"
    top = pods.ok("pod", "top", name)
    assert "/catatonit -P -g" in top
    assert pods.ok("ps", "-q", "--no-trunc", "--filter", f"pod={name}").split().count(member) == 1
    # a container that cannot be made takes its new pod along
    err = pods.fails(125, "run", "--pod", f"new:{name}x", "--name", f"{name}-holder", IMAGE)
    assert "already in use" in err
    assert pods("pod", "exists", f"{name}x").returncode == 1
