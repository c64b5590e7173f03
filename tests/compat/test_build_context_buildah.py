"""The build context next to buildah 1.28: what `COPY` takes, with and without ignore files.

Each case builds `FROM scratch` + one COPY/ADD line with `buildah bud --output type=local`
(its own --root/--runroot, vfs driver) and compares the files it wrote with what
`walk_context` / `plan_copy` plan for the same tree.  The unit tests hold the same cases
with buildah's results written down; this test checks those results are still buildah's.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pypod.build.ignore import load_ignore, walk_context
from pypod.build.sources import plan_copy
from pypod.errors import PypodError
from tests.podman_support import reference_env
from tests.unit.test_build_ignore import BUILDAH_CASES
from tests.unit.test_build_sources import _result, _tree

pytestmark = [pytest.mark.root, pytest.mark.compat]


class Buildah:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.env = reference_env(base)

    def copy(self, ctx: Path, line: str) -> tuple[int, list[str], str]:
        """Build `FROM scratch` + `line` from `ctx`: (exit code, files written, stderr)."""
        cf = self.base / "Containerfile"
        cf.write_text(f"FROM scratch\n{line}\n")
        out = self.base / "out"
        shutil.rmtree(out, ignore_errors=True)
        proc = subprocess.run(
            ["buildah", "--root", str(self.base / "root"), "--runroot", str(self.base / "run"),
             "--storage-driver", "vfs", "bud", "--layers=false", "-q",
             "--output", f"type=local,dest={out}", "-f", str(cf), str(ctx)],
            env=self.env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        files = []
        if out.is_dir():
            for path in out.rglob("*"):
                rel = str(path.relative_to(out))
                files.append(rel + ("/" if path.is_dir() and not path.is_symlink() else ""))
        return proc.returncode, sorted(files), proc.stderr


@pytest.fixture
def buildah(tmp_path: Path) -> Buildah:
    if shutil.which("buildah") is None:
        pytest.skip("buildah is not installed (apt-get install buildah)")
    base = tmp_path / "buildah"
    base.mkdir()
    return Buildah(base)


@pytest.mark.parametrize(("tree", "ignore", "expected"), BUILDAH_CASES)
def test_copy_dot_with_ignore_file(
    buildah: Buildah, tmp_path: Path, tree: list[str], ignore: str, expected: list[str]
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    _tree(ctx, tree)
    (ctx / ".dockerignore").write_text(ignore)
    code, theirs, err = buildah.copy(ctx, "COPY . /")
    assert code == 0, err
    ours = set()
    for rel in walk_context(ctx, load_ignore(ctx)):
        full = ctx / rel
        ours.add(rel + ("/" if full.is_dir() and not full.is_symlink() else ""))
        parts = rel.split("/")
        ours.update("/".join(parts[:i]) + "/" for i in range(1, len(parts)))
    assert sorted(ours) == theirs == expected


@pytest.mark.parametrize(
    ("tree", "ignore", "line"),
    [
        (["a"], None, "COPY a /x"),
        (["a"], None, "COPY a /x/"),
        (["a", "b"], None, "COPY a b /x"),
        (["a.t", "b.t"], None, "COPY *.t /x/"),
        (["d/a", "d/e/f"], None, "COPY d /x"),
        (["a", "d/b"], None, "COPY . /x"),
        (["a"], None, "COPY ../a /x"),
        (["etc/passwd", "l -> /etc/passwd"], None, "COPY l /x"),
        (["d/a", "l -> /d"], None, "COPY l/* /x/"),
        (["d/a", "d/l -> a"], None, "COPY d /x"),
        (["a1/f", "a2"], None, "COPY a* /x"),
        (["a.t", "b.t"], "a.t\n", "COPY *.t /x/"),
        (["d/a"], "d/*\n", "COPY d /x"),
        (["d/a", "d/b", "d/s/keep", "d/s/drop"], "d\n!d/a\n!d/s/keep\n", "COPY d /x"),
        (["a/b/x.md", "a/b/y"], "a\n!a/*/x.md\n", "COPY a/b/x.md /out"),
        (["a"], None, "COPY nothere /x"),
        (["a"], "a\n", "COPY a /x"),
        (["a/b/x.md", "a/b/y"], "a\n!a/*/x.md\n", "COPY a/b /out"),
        (["x/y/c/z"], "**/c\n", "COPY x/y/c/z /out"),
        (["l -> ../../../etc/passwd"], None, "COPY l /x"),
    ],
)
def test_copy_sources(
    buildah: Buildah, tmp_path: Path, tree: list[str], ignore: str | None, line: str
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    _tree(ctx, tree)
    if ignore is not None:
        (ctx / ".dockerignore").write_text(ignore)
    code, theirs, err = buildah.copy(ctx, line)
    *sources, dest = line.split()[1:]
    try:
        ours = _result(plan_copy(ctx, sources, dest, ignore=load_ignore(ctx)))
    except PypodError as e:
        assert code != 0, f"buildah copied {theirs}, pypod refused: {e}"
        return
    assert code == 0, f"pypod planned {ours}, buildah failed: {err}"
    assert ours == theirs
