"""The CLI building blocks: flag parsing, tabwriter layout, runc log lines, placeholders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pypod.cli.flags import Flag, parse
from pypod.cli.output import logrus_line, tabwrite
from pypod.errors import InvalidArgument

BIN = Path(sys.executable).parent
FLAGS = (
    Flag(("bundle", "b"), True),
    Flag(("detach", "d")),
    Flag(("tty", "t")),
    Flag(("env", "e"), True, True),
)


def test_flags_runc_style() -> None:
    p = parse(["-b", "/x", "--detach", "-e", "A=1", "--env=B=2", "id", "-t"], FLAGS)
    assert p.text("bundle") == "/x" and p.flag("detach") and not p.flag("tty")
    assert p.texts("env") == ["A=1", "B=2"]
    assert p.args == ["id", "-t"]  # flags stop at the first argument, as in urfave/cli


def test_flags_grouped_booleans_single_dash_long_and_interspersed() -> None:
    assert parse(["-dt", "x"], FLAGS).flag("tty")
    assert parse(["-bundle", "/y"], FLAGS).text("bundle") == "/y"
    p = parse(["a", "-d", "b"], FLAGS, interspersed=True)
    assert p.args == ["a", "b"] and p.flag("detach")
    assert parse(["--", "-d"], FLAGS).args == ["-d"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nope"], "flag provided but not defined: --nope"),
        (["--bundle"], "flag needs an argument: --bundle"),
        (["--detach=maybe"], 'invalid boolean value "maybe" for --detach=maybe'),
    ],
)
def test_flag_errors(args: list[str], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse(args, FLAGS)


def test_tabwrite_matches_go_tabwriter() -> None:
    # each cell but the last is padded to (widest cell + 3), at least 12: as `runc list` shows
    rows = [["ID", "PID", "STATUS"], ["a-long-container-id", "1", "running"]]
    assert tabwrite(rows) == (
        "ID                    PID         STATUS\n" "a-long-container-id   1           running\n"
    )


def test_logrus_lines() -> None:
    line = logrus_line("error", 'exec: "x": not found')
    assert line.startswith('time="') and line.endswith(
        ' level=error msg="exec: \\"x\\": not found"\n'
    )
    assert json.loads(logrus_line("error", "boom", fmt="json"))["msg"] == "boom"


def test_pypod_version_help_and_unknown_command() -> None:
    exe = str(BIN / "pypod")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("pypod version ")
    helped = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "images" in helped.stdout
    proc = subprocess.run([exe, "nosuchcommand"], capture_output=True, text=True)
    assert proc.returncode == 125
    assert proc.stderr.startswith("Error: unrecognized command `pypod nosuchcommand`")


def test_build_version_help_and_unknown_command() -> None:
    exe = str(BIN / "pypod-build")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("pypod-build version ")
    helped = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "commit" in helped.stdout
    proc = subprocess.run([exe, "nosuchcommand"], capture_output=True, text=True)
    assert proc.returncode == 125 and proc.stderr.strip()  # buildah 1.28: 125 and a message


def test_runtime_version_and_help() -> None:
    exe = str(BIN / "pypod-runtime")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    assert out.splitlines()[0].startswith("pypod-runtime version ")
    assert "spec: 1.0.2-dev" in out
    helped = subprocess.run([exe, "--help"], capture_output=True, text=True).stdout
    for command in ("create", "start", "run", "exec", "state", "list", "kill", "delete"):
        assert f"   {command}" in helped
    proc = subprocess.run([exe, "checkpoint", "x"], capture_output=True, text=True)
    assert proc.returncode == 1 and "'checkpoint' is not supported yet" in proc.stderr
