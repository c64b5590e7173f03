"""`pypod` containers as users type them: the seed workflows, exit codes, the lifecycle.

Everything goes through the real CLI (a subprocess, or a real pty driven by pexpect) on one
store shared by the session (`tests/engine_support.py`), with the busybox image imported as
`localhost/busybox`.  Where podman 4.3's behaviour is what is asserted, the comment says so.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.engine_support import (  # noqa: F401  (fixtures)
    IMAGE,
    Pypod,
    alive,
    busybox_tar_fixture,
    pypod_fixture,
    pypod_session_fixture,
    spawn,
    table,
    wait_for,
)

pytestmark = [pytest.mark.root]

PROMPT = r"/ # "

RUNTIMES = [
    "pypod",
    pytest.param("runc", marks=pytest.mark.skipif(
        shutil.which("runc") is None, reason="runc is not installed (apt-get install runc)")),
]  # fmt: skip


# --- seed 000: run -d with a bind mount and env, list, logs, exec -it -------------------------
def test_seed_000_database_container(pypod: Pypod, tmp_path: Path) -> None:
    data = tmp_path / "mysql-data"
    data.mkdir()
    cid = pypod.run_d(
        "--name", "db", "-v", f"{data}:/data:Z", "-e", "A=1", "-e", "B=2", IMAGE,
        "sh", "-c", "echo initializing; echo $B > /data/x; echo ready; sleep 1000",
    )  # fmt: skip
    rows = table(pypod.ok("container", "list"))
    assert rows[0] == ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    mine = [r for r in rows[1:] if r[-1] == "db"]
    assert len(mine) == 1
    assert mine[0][0] == cid[:12]
    assert mine[0][1] == "localhost/busybox:latest"
    assert mine[0][4].startswith("Up ")
    wait_for(lambda: "ready" in pypod.ok("logs", cid[:12]), what="the log")
    assert pypod.ok("logs", "db").splitlines() == ["initializing", "ready"]
    assert (data / "x").read_text() == "2\n"

    child = spawn(pypod, "exec", "-it", "db", "/bin/sh")
    child.expect(PROMPT)
    child.sendline("echo $A > /data/y; echo wrote-$B")
    child.expect("wrote-2")
    child.expect(PROMPT)
    child.sendline("exit")
    child.expect(pexpect_eof())
    child.close()
    assert child.exitstatus == 0
    assert (data / "y").read_text() == "1\n"
    assert pypod.status("db") == "running"  # exec's end is not the container's


def pexpect_eof() -> object:
    import pexpect

    return pexpect.EOF


# --- seed 003: run -it, ps -a, images, rm, rmi, detach/attach, logs -f, start/stop/kill -------
def test_seed_003_run_it_exit_code(pypod: Pypod) -> None:
    child = spawn(pypod, "run", "-it", "--name", "it-exit", IMAGE, "sh")
    child.expect(PROMPT)
    child.sendline("cat /etc/os-release 2>/dev/null || echo no-os-release; echo $((6*7))")
    child.expect("no-os-release")
    child.expect("42")
    child.expect(PROMPT)
    child.sendline("exit 3")
    child.expect(pexpect_eof())
    child.close()
    assert child.exitstatus == 3
    assert pypod.fmt("it-exit", "{{.State.ExitCode}} {{.State.Status}}") == "3 exited"


def test_seed_003_ps_a_images_rm_rmi(pypod: Pypod) -> None:
    # an image of its own (committed), so that rmi deletes it rather than untagging a name
    base = pypod.ok("create", IMAGE, "true").strip()
    image_id = pypod.ok("commit", "-q", base, "localhost/hello:1").strip()
    pypod.ok("rm", base)
    assert pypod.ok("run", "--name", "hello", "localhost/hello:1", "echo", "Hello") == "Hello\n"
    rows = table(pypod.ok("ps", "-a"))
    assert rows[0] == ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    row = next(r for r in rows if r[-1] == "hello")
    assert row[1] == "localhost/hello:1"
    assert row[2] == "echo Hello"
    assert re.fullmatch(r"Exited \(0\) .* ago", row[4]), row
    images = table(pypod.ok("images"))
    assert images[0] == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    assert ["localhost/hello", "1", image_id[:12]] in [r[:3] for r in images]
    # the image is used by a container: rmi refuses (podman: exit 2, "image is in use")
    err = pypod.fails(2, "rmi", image_id[:12])
    assert "image is in use by a container" in err, err
    assert pypod.ok("rm", row[0]) == f"{row[0]}\n"
    assert pypod("container", "exists", "hello").returncode == 1
    out = pypod.ok("rmi", image_id[:12])
    assert out == f"Untagged: localhost/hello:1\nDeleted: {image_id}\n", out
    assert "localhost/hello" not in pypod.ok("images")
    # a second name of an image is only untagged, even while a container uses the image
    pypod.ok("tag", IMAGE, "localhost/alias:2")
    cid = pypod.ok("create", "localhost/alias:2", "true").strip()
    assert pypod.ok("rmi", "localhost/alias:2") == "Untagged: localhost/alias:2\n"
    pypod.ok("rm", cid)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_seed_003_detach_then_attach(pypod: Pypod, runtime: str) -> None:
    child = spawn(pypod, "run", "-it", "--runtime", runtime, "--name", "detach-me", IMAGE, "sh")
    child.expect(PROMPT)
    child.sendline("X=kept")
    child.expect(PROMPT)
    child.send("\x10\x11")  # ctrl-p ctrl-q
    child.expect(pexpect_eof())
    child.close()
    assert child.exitstatus == 0
    assert pypod.status("detach-me") == "running"

    child = spawn(pypod, "attach", "detach-me")
    child.sendline("echo value=$X")
    child.expect("value=kept")
    child.expect(PROMPT)
    child.sendline("exit 5")
    child.expect(pexpect_eof())
    child.close()
    assert child.exitstatus == 5
    assert pypod.fmt("detach-me", "{{.State.ExitCode}} {{.State.Status}}") == "5 exited"


def test_seed_003_logs_follow_until_exit(pypod: Pypod) -> None:
    cid = pypod.run_d(IMAGE, "sh", "-c",
                      "for i in 1 2 3; do echo line$i; sleep 0.2; done; echo bye >&2")  # fmt: skip
    started = time.monotonic()
    proc = pypod("logs", "-f", cid, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "line1\nline2\nline3\n"
    assert proc.stderr == "bye\n"
    assert time.monotonic() - started < 10
    assert pypod.status(cid) == "exited"


def test_seed_003_start_stop_kill(pypod: Pypod) -> None:
    cid = pypod.sleeper("--name", "life")
    pid = int(pypod.fmt("life", "{{.State.Pid}}"))
    assert alive(pid)
    assert pypod.ok("stop", "-t", "0", "life") == "life\n"
    assert not alive(pid)
    # sleep ignores nothing: killed by SIGKILL after -t 0 (podman: 137)
    assert pypod.fmt("life", "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"
    assert pypod.ok("start", "life") == "life\n"
    assert pypod.status(cid) == "running"
    pid2 = int(pypod.fmt("life", "{{.State.Pid}}"))
    assert pid2 != pid and alive(pid2)
    assert pypod.ok("kill", "life") == "life\n"
    pypod.wait_status("life", "exited")
    assert pypod.fmt("life", "{{.State.ExitCode}}") == "137"
    pypod.ok("start", "life")
    # sleep is the container's PID 1, which gets no signal it has no handler for but SIGKILL
    # (as with podman): kill -s TERM leaves it running
    assert pypod.ok("kill", "-s", "TERM", cid[:12]) == f"{cid[:12]}\n"
    time.sleep(0.2)
    assert pypod.status("life") == "running"
    pypod.ok("kill", "-s", "9", "life")
    pypod.wait_status("life", "exited")
    assert pypod.fmt("life", "{{.State.ExitCode}}") == "137"
    # kill of a stopped container: podman's 125 and message
    err = pypod.fails(125, "kill", "life")
    assert "can only kill running containers" in err


def test_kill_signal_reaches_the_process(pypod: Pypod) -> None:
    cid = pypod.run_d(IMAGE, "sh", "-c",
                      "trap 'echo got-hup' HUP; trap 'echo got-usr1; exit 9' USR1; "
                      "echo ready; while :; do sleep 0.05; done")  # fmt: skip
    wait_for(lambda: "ready" in pypod.ok("logs", cid), what="ready")
    pypod.ok("kill", "-s", "HUP", cid)
    wait_for(lambda: "got-hup" in pypod.ok("logs", cid), what="the HUP trap")
    assert pypod.status(cid) == "running"
    pypod.ok("kill", "--signal", "SIGUSR1", cid)
    assert pypod.ok("wait", cid) == "9\n"
    assert "got-usr1" in pypod.ok("logs", cid)


def test_restart(pypod: Pypod) -> None:
    cid = pypod.sleeper("--name", "again")
    pid = int(pypod.fmt(cid, "{{.State.Pid}}"))
    assert pypod.ok("restart", "-t", "0", "again") == f"{cid}\n"
    pid2 = int(pypod.fmt(cid, "{{.State.Pid}}"))
    assert pid2 != pid and alive(pid2) and not alive(pid)
    assert pypod.status(cid) == "running"
    # an exited container restarts too
    pypod.ok("stop", "-t", "0", cid)
    pypod.ok("restart", cid)
    assert pypod.status(cid) == "running"


# --- exit codes (podman's) ------------------------------------------------------------------
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_exit_codes(pypod: Pypod, runtime: str) -> None:
    rt = ("--runtime", runtime)
    assert pypod("run", "--rm", *rt, IMAGE, "sh", "-c", "exit 7").returncode == 7
    assert pypod("run", "--rm", *rt, IMAGE, "true").returncode == 0
    err = pypod.fails(126, "run", "--rm", *rt, IMAGE, "/etc/passwd")
    assert "permission denied" in err, err
    err = pypod.fails(127, "run", "--rm", *rt, IMAGE, "nosuchcmd")
    assert "executable file not found in $PATH" in err, err
    err = pypod.fails(127, "run", "--rm", *rt, IMAGE, "/no/such/file")
    assert "no such file or directory" in err, err
    err = pypod.fails(125, "run", "--rm", *rt, "--bogus", IMAGE, "true")
    assert "unknown flag: --bogus" in err
    pypod.fails(125, "run", "--rm", *rt, "--pull", "never", "localhost/nosuch", "true")
    pypod.fails(125, "run", "--rm", *rt, "nosuch-short-name", "true")
    name = f"taken-{runtime}"
    pypod.ok("create", "--name", name, IMAGE, "true")
    err = pypod.fails(125, "run", *rt, "--name", name, IMAGE, "true")
    assert f'the container name "{name}" is already in use' in err
    # the failed runs left nothing behind (--rm)
    names = pypod.ok("ps", "-a", "--format", "{{.Names}}").split()
    assert names.count(name) == 1
    # without --rm, a container whose command was not found stays "created" (podman 4.3)
    assert pypod("run", *rt, "--name", f"nf-{runtime}", IMAGE, "nosuchcmd").returncode == 127
    assert pypod.fmt(f"nf-{runtime}", "{{.State.Status}} {{.State.ExitCode}}") == "created 0"
    assert pypod.ok("ps", "-a", "--filter", f"name=nf-{runtime}", "--format", "{{.Status}}") == (
        "Created\n"
    )
    # start says which container, and exits 125 (podman's start; run gives 127)
    err = pypod.fails(125, "start", f"nf-{runtime}")
    assert err.startswith('Error: unable to start container "'), err
    assert "executable file not found in $PATH" in err
    pypod.fails(125, "start", "-a", f"nf-{runtime}")


def test_exec_exit_codes(pypod: Pypod) -> None:
    cid = pypod.sleeper()
    assert pypod("exec", cid, "sh", "-c", "exit 4").returncode == 4
    pypod.fails(126, "exec", cid, "/etc/passwd")
    pypod.fails(127, "exec", cid, "nosuchcmd")
    pypod.fails(125, "exec", "no-such-container", "true")
    out = pypod.ok("exec", "-e", "X=1", "-w", "/tmp", "-u", "1000", cid, "sh", "-c",
                   "echo $X $(pwd) $(id -u)")  # fmt: skip
    assert out == "1 /tmp 1000\n"
    pypod.ok("stop", "-t", "0", cid)
    # podman 4.3: a session that cannot be made has exit code -1 (255)
    err = pypod.fails(255, "exec", cid, "true")
    assert "can only create exec sessions on running containers" in err


# --- stdin and terminals --------------------------------------------------------------------
def test_stdin_through_run_i(pypod: Pypod) -> None:
    assert pypod.ok("run", "--rm", "-i", IMAGE, "cat", input="hi\n") == "hi\n"
    # without -i the container's stdin is empty
    assert pypod.ok("run", "--rm", IMAGE, "cat", input="hi\n") == ""
    big = "".join(f"line {i}\n" for i in range(20000))
    assert pypod.ok("run", "--rm", "-i", IMAGE, "wc", "-l", input=big).strip() == "20000"


def test_run_t_without_a_terminal(pypod: Pypod) -> None:
    proc = pypod("run", "--rm", "-t", IMAGE, "sh", "-c", "tty; echo $TERM")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.replace("\r\n", "\n").splitlines()
    assert lines[0].startswith("/dev/pts/")
    assert lines[1] == "xterm"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_terminal_size_is_set_before_the_process_runs(pypod: Pypod, runtime: str) -> None:
    # podman's "podman detects correct tty size" (450-interactive.bats): no race with stty
    child = spawn(pypod, "run", "--rm", "-it", "--runtime", runtime, IMAGE, "stty", "size",
                  dimensions=(33, 99))  # fmt: skip
    child.expect(r"33 99")
    child.expect(pexpect_eof())
    child.close()
    assert child.exitstatus == 0
    cid = pypod.sleeper("--runtime", runtime)
    child = spawn(pypod, "exec", "-it", cid, "stty", "size", dimensions=(41, 117))
    child.expect(r"41 117")
    child.expect(pexpect_eof())
    child.close()
    assert child.exitstatus == 0


# --- --rm, restart policy, wait, cidfile, replace -------------------------------------------
def test_rm_foreground_and_detached(pypod: Pypod) -> None:
    assert pypod.ok("run", "--rm", "--name", "gone-fg", IMAGE, "echo", "x") == "x\n"
    assert pypod("container", "exists", "gone-fg").returncode == 1
    cid = pypod.run_d("--rm", "--name", "gone-bg", IMAGE, "sh", "-c", "exit 3")
    wait_for(lambda: pypod("container", "exists", cid).returncode == 1, 15,
             "the --rm container to be removed")  # fmt: skip
    assert "gone-bg" not in pypod.ok("ps", "-a", "--format", "{{.Names}}")
    # stopping a detached --rm container removes it too
    cid = pypod.sleeper("--rm")
    pypod.ok("stop", "-t", "0", cid)
    wait_for(lambda: pypod("container", "exists", cid).returncode == 1, 15,
             "the stopped --rm container to be removed")  # fmt: skip


def test_restart_on_failure(pypod: Pypod) -> None:
    cid = pypod.run_d("--restart", "on-failure:2", IMAGE, "sh", "-c", "echo run; exit 3")
    wait_for(lambda: pypod.fmt(cid, "{{.RestartCount}} {{.State.Status}}") == "2 exited", 30,
             "two restarts")  # fmt: skip
    time.sleep(0.3)  # no third run comes
    assert pypod.fmt(cid, "{{.RestartCount}} {{.State.ExitCode}}") == "2 3"
    assert pypod.ok("logs", cid) == "run\nrun\nrun\n"
    # success ends the policy
    cid = pypod.run_d("--restart", "on-failure", IMAGE, "true")
    assert pypod.ok("wait", cid) == "0\n"
    time.sleep(0.3)
    assert pypod.fmt(cid, "{{.RestartCount}} {{.State.Status}}") == "0 exited"


def test_restart_always_stops_on_stop(pypod: Pypod) -> None:
    cid = pypod.run_d("--restart", "always", IMAGE, "sh", "-c", "sleep 0.2")
    wait_for(lambda: int(pypod.fmt(cid, "{{.RestartCount}}")) >= 1, 30, "a restart")
    pypod.ok("stop", "-t", "0", cid)
    count = pypod.fmt(cid, "{{.RestartCount}}")
    time.sleep(0.5)
    assert pypod.fmt(cid, "{{.State.Status}} {{.RestartCount}}") == f"exited {count}"


def test_wait(pypod: Pypod) -> None:
    cid = pypod.run_d(IMAGE, "sh", "-c", "sleep 0.3; exit 42")
    assert pypod.ok("wait", cid) == "42\n"
    assert pypod.ok("wait", cid) == "42\n"  # already exited
    a = pypod.run_d(IMAGE, "sh", "-c", "exit 1")
    b = pypod.run_d(IMAGE, "sh", "-c", "exit 2")
    assert pypod.ok("wait", a, b) == "1\n2\n"
    c = pypod.ok("create", IMAGE, "true").strip()
    assert pypod.ok("wait", "--condition", "created", c) == "-1\n"
    pypod.fails(125, "wait", "no-such-container")


def test_cidfile(pypod: Pypod, tmp_path: Path) -> None:
    cidfile = tmp_path / "cid"
    cid = pypod.run_d("--cidfile", str(cidfile), IMAGE, "true")
    assert cidfile.read_text() == cid
    err = pypod.fails(125, "run", "-d", "--cidfile", str(cidfile), IMAGE, "true")
    assert str(cidfile) in err
    created = pypod.ok("create", "--cidfile", str(tmp_path / "c2"), IMAGE, "true").strip()
    assert (tmp_path / "c2").read_text() == created


def test_replace(pypod: Pypod) -> None:
    old = pypod.sleeper("--name", "repl")
    new = pypod.sleeper("--replace", "--name", "repl")
    assert new != old
    assert pypod("container", "exists", old).returncode == 1
    assert pypod.status("repl") == "running"
    assert pypod.fmt("repl", "{{.Id}}") == new
    # --replace without a container of that name just creates it
    cid = pypod.run_d("--replace", "--name", "repl-new", IMAGE, "true")
    assert pypod.fmt("repl-new", "{{.Id}}") == cid


# --- signals sent to a foreground pypod ------------------------------------------------------
@pytest.mark.parametrize("proxy", [True, False])
def test_sig_proxy(pypod: Pypod, proxy: bool, tmp_path: Path) -> None:
    script = "trap 'echo got-term; exit 8' TERM; echo ready; while :; do sleep 0.05; done"
    name = f"proxy-{proxy}"
    out = tmp_path / "out"
    with out.open("w") as f:
        proc = subprocess.Popen(
            [*pypod.argv, "run", f"--sig-proxy={str(proxy).lower()}", "--name", name, IMAGE,
             "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for(lambda: "ready" in out.read_text(), what="the container to be ready")
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if proxy:
        # podman's --sig-proxy (the default): the container gets it, its code is ours
        assert code == 8
        assert out.read_text() == "ready\ngot-term\n"
        assert pypod.fmt(name, "{{.State.Status}} {{.State.ExitCode}}") == "exited 8"
    else:
        assert code == -signal.SIGTERM
        assert pypod.status(name) == "running"
    # attach proxies too
    if not proxy:
        with out.open("w") as f:
            since = str(time.time() - 0.01)
            proc = subprocess.Popen([*pypod.argv, "attach", name], stdin=subprocess.DEVNULL,
                                    stdout=f, stderr=subprocess.STDOUT)  # fmt: skip
            wait_for(lambda: pypod.ok("events", "--stream=false", "--since", since, "--filter",
                                      "event=attach", "--filter", f"container={name}"),
                     what="attach to be proxying")  # fmt: skip
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 8
        assert pypod.fmt(name, "{{.State.ExitCode}}") == "8"


def test_rm_container_root_is_volatile(pypod: Pypod) -> None:
    """As podman: a `--rm` container's root is an overlay mounted "volatile" (its writes are
    thrown away with it, never synced); a container that is kept is not."""
    line = pypod.ok("run", "--rm", IMAGE, "grep", " / ", "/proc/mounts")
    assert "volatile" in line, line
    line = pypod.ok("run", "--name", "kept-root", IMAGE, "grep", " / ", "/proc/mounts")
    assert line.startswith("overlay / overlay ") and "volatile" not in line, line
    pypod.ok("rm", "kept-root")
