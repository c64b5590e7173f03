"""The build flags `pypod build` and `pypod-build bud` share (cli/build_flags.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pypod.cli.build_flags import SHARED_FLAGS, build_args, env_bool, flag_bool, secrets
from pypod.cli.flags import Parsed
from pypod.errors import InvalidArgument, NotSupported


def _names(flags: object) -> list[str]:
    return [n for f in flags for n in f.names]  # type: ignore[attr-defined]


def test_both_commands_take_the_shared_flags_once() -> None:
    from pypod.cli.build.bud import COMMANDS as BUD
    from pypod.cli.engine.build import FLAGS as BUILD

    for flags in (BUILD, BUD["bud"].flags):
        names = _names(flags)
        assert len(names) == len(set(names)), "a flag is defined twice"
        assert set(_names(SHARED_FLAGS)) <= set(names)


def test_build_args(tmp_path: Path) -> None:
    f = tmp_path / "args"
    f.write_text("# comment\nA=from-file\nB=b\n\n")
    env = {"FROM_ENV": "e"}
    got = build_args(["A=1", "C=", "FROM_ENV", "UNSET"], [str(f)], env)
    assert got == {"A": "1", "B": "b", "C": "", "FROM_ENV": "e"}  # flags win over the file
    with pytest.raises(InvalidArgument, match="the name is empty"):
        build_args(["=x"], environ=env)


def test_secrets() -> None:
    assert secrets(["id=a,src=/f", "id=b,source=/g,type=file"]) == {"a": "/f", "b": "/g"}
    with pytest.raises(InvalidArgument, match="use id=ID,src=PATH"):
        secrets(["id=a"])
    with pytest.raises(NotSupported, match="only file secrets"):
        secrets(["id=a,type=env,env=X"])


def test_flag_bool_and_env_bool(monkeypatch: pytest.MonkeyPatch) -> None:
    opts = Parsed({"a": True, "b": "false", "c": "TRUE", "d": ""})
    assert [flag_bool(opts, n, False) for n in "abcd"] == [True, False, True, True]
    assert flag_bool(opts, "missing", True) is True
    monkeypatch.setenv("X_LAYERS", "True")
    monkeypatch.delenv("Y_LAYERS", raising=False)
    assert env_bool("X_LAYERS", False) is True and env_bool("Y_LAYERS", False) is False
    monkeypatch.setenv("X_LAYERS", "0")
    assert env_bool("X_LAYERS", True) is False
