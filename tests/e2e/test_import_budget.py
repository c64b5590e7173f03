"""What `run -d`, `run --rm`, the pod and lifecycle commands and `pypod-runtime run` import is
part of their time.

The standard modules listed in FORBIDDEN cost ~8 ms of CPU at each start together (see
`pypod/stdlite.py`); the console scripts, the CLI, and the monitor up to the container's start
must do without them.  Each test runs the real installed `pypod` script with an audit hook
(a `sitecustomize` put first on PYTHONPATH) that logs every module loaded, with its process
and the pypod module that imported it.  The monitor's lines count until it imports its loop
(`pypod.monitor.loop`, after STARTED: off the caller's path); the CLI's until it exits.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BIN, BundleFactory
from tests.engine_support import (  # noqa: F401  (fixtures)
    IMAGE,
    PYPOD,
    Pypod,
    busybox_tar_fixture,
    pods_fixture,
    pypod_fixture,
    pypod_session_fixture,
)

FORBIDDEN = {
    "re", "typing", "enum", "functools", "collections", "contextlib", "json", "signal",
    "dataclasses", "warnings", "datetime", "hashlib", "subprocess", "threading", "logging",
    "shutil", "tempfile", "socket", "inspect", "ipaddress", "sqlite3", "argparse", "selectors",
}  # fmt: skip

_HOOK = """\
import os as _os, sys as _sys

def _pypod_import_hook(event, args, _log=_os.environ["PYPOD_TEST_IMPORT_LOG"]):
    if event != "import":
        return
    frame, by = _sys._getframe(1), "?"
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name.startswith("pypod") or name == "__main__":
            by = name
            break
        frame = frame.f_back
    try:
        fd = _os.open(_log, _os.O_WRONLY | _os.O_APPEND | _os.O_CREAT, 0o600)
        _os.write(fd, f"{_os.getpid()} {args[0]} {by}\\n".encode())
        _os.close(fd)
    except OSError:
        pass  # the container's init, after pivot_root: the log is not in its root

_sys.addaudithook(_pypod_import_hook)
"""


@pytest.fixture(name="import_log")
def import_log_fixture(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(_HOOK)
    log = tmp_path / "imports.log"
    env = {**os.environ, "PYTHONPATH": str(hook_dir), "PYPOD_TEST_IMPORT_LOG": str(log)}
    yield log, env


def _offenders(log: Path, cli_pid: int) -> list[str]:
    found: list[str] = []
    looping: set[int] = set()
    for line in log.read_text().splitlines():
        pid_text, module, by = line.split(" ", 2)
        pid = int(pid_text)
        if module == "pypod.monitor.loop":
            looping.add(pid)
        if pid in looping:
            continue
        top = module.split(".")[0]
        if top in FORBIDDEN:
            who = "CLI" if pid == cli_pid else f"process {pid}"
            found.append(f"{module} (in the {who}, imported from {by})")
    return found


def _run(p: Pypod, env: dict[str, str], *args: str) -> int:
    import subprocess

    proc = subprocess.Popen(
        [*p.argv, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, f"{args}: rc={proc.returncode}\n{err}{out}"
    return proc.pid


def test_hook_sees_what_the_script_imports(
    pypod: Pypod, import_log: tuple[Path, dict[str, str]]
) -> None:
    """The control: the hook logs the script's own imports (`version` imports the CLI)."""
    log, env = import_log
    pid = _run(pypod, env, "version")
    modules = {
        line.split()[1] for line in log.read_text().splitlines() if int(line.split()[0]) == pid
    }
    assert "pypod.cli.engine.main" in modules
    assert PYPOD.endswith("pypod")


@pytest.mark.parametrize(
    "args",
    [
        ("run", "-d", "--network", "none", IMAGE, "sleep", "1000"),
        ("run", "--rm", "--network", "none", IMAGE, "true"),
    ],
    ids=["run-d", "run-rm"],
)
def test_run_path_imports_none_of_the_expensive_standard_modules(
    pypod: Pypod, import_log: tuple[Path, dict[str, str]], args: tuple[str, ...]
) -> None:
    log, env = import_log
    pypod.ok("run", "--rm", "--network", "none", IMAGE, "true")  # the first run's setup
    log.unlink(missing_ok=True)
    cli_pid = _run(pypod, env, *args)
    offenders = _offenders(log, cli_pid)
    assert not offenders, "imported on the run path:\n" + "\n".join(offenders)


def test_runtime_run_imports_none_of_the_expensive_standard_modules(
    bundle: BundleFactory, tmp_path: Path, import_log: tuple[Path, dict[str, str]]
) -> None:
    """`pypod-runtime run` (its target is runc's time) imports none of them either."""
    import subprocess

    log, env = import_log
    path = bundle(["true"])
    proc = subprocess.Popen(
        [str(BIN / "pypod-runtime"), "--root", str(tmp_path / "state"), "run", "--bundle",
         str(path), "budget"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "pypod.cli.runtime.main" in log.read_text()  # the hook saw the program
    offenders = _offenders(log, proc.pid)
    assert not offenders, "imported by pypod-runtime run:\n" + "\n".join(offenders)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def _wait_exited(p: Pypod, name: str) -> None:
    import time

    deadline = time.monotonic() + 10
    while p.status(name) != "exited":
        assert time.monotonic() < deadline, f"{name} did not exit"
        time.sleep(0.02)


def _setup(p: Pypod, case: str, name: str) -> tuple[str, ...]:
    """Make what `case`'s command needs (unlogged); the command line to measure."""
    sleep = (IMAGE, "sleep", "1000")
    if case == "pod-create-none":
        return ("pod", "create", "--name", name, "--network", "none")
    if case == "pod-create-bridge-port":
        return ("pod", "create", "--name", name, "-p", f"{_free_port()}:80")
    if case in ("run-d-pod-none", "pod-rm-none"):
        p.ok("pod", "create", "--name", name, "--network", "none")
    elif case in ("run-d-pod-bridge-port", "pod-rm-bridge-port"):
        p.ok("pod", "create", "--name", name, "-p", f"{_free_port()}:80")
    if case.startswith("run-d-pod"):
        return ("run", "-d", "--pod", name, *sleep)
    if case.startswith("pod-rm"):
        p.run_d("--pod", name, *sleep)
        return ("pod", "rm", "-f", "-t", "0", name)
    if case == "start":
        p.ok("create", "--name", name, "--network", "none", *sleep)
        return ("start", name)
    if case == "run-rm-bridge":
        return ("run", "--rm", IMAGE, "true")
    if case == "logs":
        p.run_d("--name", name, "--network", "none", IMAGE, "echo", "hello")
        _wait_exited(p, name)
        return ("logs", name)
    p.run_d("--name", name, "--network", "none", *sleep)
    return {
        "stop": ("stop", "-t", "0", name),
        "rm": ("rm", "-f", "-t", "0", name),
        "ps-a": ("ps", "-a"),
        "inspect": ("inspect", name),
    }[case]


#: modules a command truly needs, by case, and why (nothing so far)
ALLOWED: dict[str, dict[str, str]] = {}


@pytest.mark.parametrize(
    "case",
    [
        "pod-create-none",
        "pod-create-bridge-port",
        "run-d-pod-none",
        "run-d-pod-bridge-port",
        "pod-rm-none",
        "pod-rm-bridge-port",
        "start",
        "stop",
        "rm",
        "ps-a",
        "logs",
        "inspect",
        "run-rm-bridge",
    ],
)
def test_pod_and_lifecycle_commands_import_none_of_the_expensive_standard_modules(
    pods: Pypod, import_log: tuple[Path, dict[str, str]], case: str
) -> None:
    """The pods benchmark's commands (`pod create` on `--network none` and on the default
    bridge with a published port, `run -d --pod`, `pod rm -f`) and the common lifecycle ones."""
    log, env = import_log
    pods.ok("run", "--rm", "--network", "none", IMAGE, "true")  # the first run's setup
    pods.ok("pod", "create", "--name", f"ib-first-{case}")  # the first pod's: the infra image
    pods.ok("pod", "rm", f"ib-first-{case}")
    name = f"ib-{case}-{os.urandom(3).hex()}"
    args = _setup(pods, case, name)
    log.unlink(missing_ok=True)
    cli_pid = _run(pods, env, *args)
    allowed = ALLOWED.get(case, {})
    offenders = [
        line
        for line in _offenders(log, cli_pid)
        if line.split(" ", 1)[0].split(".")[0] not in allowed
    ]
    assert not offenders, f"imported by {' '.join(args)}:\n" + "\n".join(offenders)
