"""COPY/ADD sources and destinations: `plan_copy`, `--chown`/`--chmod`, archive detection.

The expected plans follow what buildah 1.28.2 produced for the same trees (`bud` of
`FROM scratch` + the COPY line, `--output type=local`)."""

from __future__ import annotations

import io
import os
import re
import tarfile
from pathlib import Path

import pytest
import zstandard

from pypod.build.ignore import load_ignore, parse_ignore
from pypod.build.sources import (
    ARCHIVE,
    DIR,
    FILE,
    MKDIR,
    SPECIAL,
    SYMLINK,
    URL,
    Chown,
    CopyItem,
    glob_in_root,
    is_archive,
    parse_chmod,
    parse_chown,
    plan_copy,
    resolve_in_root,
)
from pypod.errors import InvalidArgument, NotFound, NotSupported


def _tree(root: Path, entries: list[str]) -> None:
    for entry in entries:
        if " -> " in entry:
            name, target = entry.split(" -> ")
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).symlink_to(target)
        elif entry.endswith("/"):
            (root / entry).mkdir(parents=True, exist_ok=True)
        else:
            (root / entry).parent.mkdir(parents=True, exist_ok=True)
            (root / entry).write_text(entry)


def _result(plan: list[CopyItem]) -> list[str]:
    """The destinations the plan writes, as `find` would list them (dirs with a `/`)."""
    out = set()
    for item in plan:
        if item.dest == "/":
            continue
        is_dir = item.kind in (MKDIR, DIR, ARCHIVE)
        parts = item.dest.lstrip("/").split("/")
        out.update("/".join(parts[:i]) + "/" for i in range(1, len(parts)))
        out.add("/".join(parts) + ("/" if is_dir else ""))
    return sorted(out)


def _plan(ctx: Path, line: str, **kw: object) -> list[CopyItem]:
    *sources, dest = line.split()
    return plan_copy(ctx, sources, dest, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- destinations


@pytest.mark.parametrize(
    ("tree", "line", "expected"),
    [
        (["a"], "a /x", ["x"]),
        (["a"], "a /x/", ["x/", "x/a"]),
        (["a"], "a /x/.", ["x"]),
        (["a", "b"], "a b /x", ["x/", "x/a", "x/b"]),  # several sources: a directory
        (["a.t", "b.t"], "*.t /x", ["x"]),  # one glob: each match written to /x in turn
        (["a.t", "b.t"], "*.t /x/", ["x/", "x/a.t", "x/b.t"]),
        (["d/a", "d/e/f"], "d /x", ["x/", "x/a", "x/e/", "x/e/f"]),  # contents, not d itself
        (["d/a"], "d/ /x/", ["x/", "x/a"]),
        (["d/"], "d /x", ["x/"]),
        (["a", "d/b"], ". /x", ["x/", "x/a", "x/d/", "x/d/b"]),
        ([], ". /x", ["x/"]),
        (["a1/f", "a2"], "a* /x", ["x/", "x/a2", "x/f"]),  # first match a directory
        (["d1/f", "d2/f", "d2/g"], "d*/f /x/", ["x/", "x/f"]),
        ([".h", "v"], "* /x/", ["x/", "x/.h", "x/v"]),  # * matches dot files
        (["a"], "../a /x", ["x"]),  # clamped to the context, not refused
        (["a", "d/"], "d/../a /x", ["x"]),
        (["etc/h"], "/etc/h /x", ["x"]),
        (["etc/passwd", "l -> /etc/passwd"], "l /x", ["x"]),  # resolved in the context
        (["d/a", "l -> d"], "l /x", ["x/", "x/a"]),
        (["d/a", "l -> d"], "l/a /x", ["x"]),
        (["d/a", "l -> /d"], "l/* /x/", ["x/", "x/a"]),
        (["a"], "a /", ["a"]),
    ],
)
def test_destinations_as_buildah(
    tmp_path: Path, tree: list[str], line: str, expected: list[str]
) -> None:
    _tree(tmp_path, tree)
    assert _result(_plan(tmp_path, line)) == expected


def test_relative_destination_is_under_workdir(tmp_path: Path) -> None:
    _tree(tmp_path, ["a"])
    assert _result(_plan(tmp_path, "a rel", workdir="/w")) == ["w/", "w/rel"]
    assert _result(_plan(tmp_path, "a rel")) == ["rel"]
    assert _result(_plan(tmp_path, "a .", workdir="/w")) == ["w/", "w/a"]  # WORKDIR: a dir
    assert _result(_plan(tmp_path, "a /w", workdir="/w/")) == ["w/", "w/a"]
    assert _result(_plan(tmp_path, "a sub/", workdir="w")) == ["w/", "w/sub/", "w/sub/a"]


def test_destination_existing_in_the_image(tmp_path: Path) -> None:
    ctx, rootfs = tmp_path / "ctx", tmp_path / "rootfs"
    _tree(ctx, ["a", "d/b"])
    _tree(rootfs, ["e/", "f", "l -> /e"])
    # an existing directory takes the file; a link to one too (resolved in the rootfs)
    assert _plan(ctx, "a /e", rootfs=rootfs)[-1] == CopyItem(
        source=str(ctx / "a"), dest="/e/a", kind=FILE
    )
    assert _plan(ctx, "a /l", rootfs=rootfs)[-1].dest == "/l/a"
    # an existing file is replaced by a file ...
    assert _plan(ctx, "a /f", rootfs=rootfs)[-1].dest == "/f"
    # ... but cannot take a directory or several sources
    for line in ("d /f", "a a /f"):
        with pytest.raises(
            InvalidArgument, match="destination /f already exists but is not a directory"
        ):
            _plan(ctx, line, rootfs=rootfs)


def test_plan_items_and_order(tmp_path: Path) -> None:
    _tree(tmp_path, ["d/a", "d/l -> a", "d/s/"])
    os.mkfifo(tmp_path / "d" / "p")
    plan = _plan(tmp_path, "d /x")
    assert plan == [
        CopyItem(source="", dest="/x", kind=MKDIR),
        CopyItem(source=str(tmp_path / "d/a"), dest="/x/a", kind=FILE),
        CopyItem(source=str(tmp_path / "d/l"), dest="/x/l", kind=SYMLINK),  # kept a link
        CopyItem(source=str(tmp_path / "d/p"), dest="/x/p", kind=SPECIAL),
        CopyItem(source=str(tmp_path / "d/s"), dest="/x/s", kind=DIR),
    ]
    # a file source that is a link is read through the link, named after the link
    _tree(tmp_path, ["t/real", "ln -> t/real"])
    assert _plan(tmp_path, "ln /y/")[-1] == CopyItem(
        source=str(tmp_path / "t/real"), dest="/y/ln", kind=FILE
    )


def test_directory_cannot_be_renamed_onto_a_file(tmp_path: Path) -> None:
    _tree(tmp_path, ["a1", "a2/f"])
    with pytest.raises(InvalidArgument, match="end the destination with '/'"):
        _plan(tmp_path, "a* /x")


# --------------------------------------------------------------------------- errors


def test_missing_source_is_named(tmp_path: Path) -> None:
    _tree(tmp_path, ["a"])
    with pytest.raises(NotFound, match=r'copier: stat: "/nothere": no such file or directory') as e:
        _plan(tmp_path, "nothere /x")
    assert f'checking on sources under "{tmp_path}"' in str(e.value)
    assert e.value.errno == 2
    with pytest.raises(NotFound, match=r'"/\*\.none": no such file or directory'):
        _plan(tmp_path, "*.none /x/")
    with pytest.raises(InvalidArgument, match=r'"/\[": syntax error in pattern'):
        _plan(tmp_path, "[ /x/")


def test_links_leading_nowhere_in_the_context(tmp_path: Path) -> None:
    _tree(tmp_path, ["l -> /etc/passwd", "r -> ../../../../etc/passwd", "loop -> loop"])
    for name in ("l", "r"):  # both resolve to <context>/etc/passwd, which is not there
        with pytest.raises(NotFound, match=rf'copier: get: lstat "/{name}"\("/etc/passwd"\)'):
            _plan(tmp_path, f"{name} /x")
    with pytest.raises(InvalidArgument, match="resolving symlink"):
        _plan(tmp_path, "loop /x")


def test_excluded_sources(tmp_path: Path) -> None:
    _tree(tmp_path, ["a", "b.t", "a.t", "d/a", "e/b", "x/y/c/z"])
    (tmp_path / ".dockerignore").write_text("a\na.t\nd/*\ne\n!e/a\n**/c\n")
    ig = load_ignore(tmp_path)
    with pytest.raises(NotFound) as e:
        plan_copy(tmp_path, ["a"], "/x", ignore=ig)
    assert str(e.value) == (
        f'no items matching glob "{tmp_path}/a" copied '
        f"(1 filtered out using {tmp_path}/.dockerignore): no such file or directory"
    )
    assert _result(plan_copy(tmp_path, ["*.t"], "/x/", ignore=ig)) == ["x/", "x/b.t"]
    # a directory whose contents are all excluded is still copied (empty)
    assert _result(plan_copy(tmp_path, ["d"], "/x", ignore=ig)) == ["x/"]
    # an excluded directory with an exception that re-includes nothing is "filtered out"
    with pytest.raises(NotFound, match=r'"[^"]*/e" copied \(1 filtered out'):
        plan_copy(tmp_path, ["e"], "/x", ignore=ig)
    with pytest.raises(NotFound, match="filtered out"):
        plan_copy(tmp_path, ["x/y/c/z"], "/x", ignore=ig)
    # the context itself is never excluded
    assert "x/b.t" in _result(plan_copy(tmp_path, ["."], "/x", ignore=ig))


def test_excluded_directory_walked_for_an_exception(tmp_path: Path) -> None:
    _tree(tmp_path, ["d/a", "d/b", "d/s/keep", "d/s/drop"])
    ig = parse_ignore("d\n!d/a\n!d/s/keep\n")
    plan = plan_copy(tmp_path, ["d"], "/x", ignore=ig)
    assert plan == [
        CopyItem(source="", dest="/x", kind=MKDIR),
        CopyItem(source=str(tmp_path / "d/a"), dest="/x/a", kind=FILE),
        CopyItem(source="", dest="/x/s", kind=MKDIR),  # excluded parent: created plain
        CopyItem(source=str(tmp_path / "d/s/keep"), dest="/x/s/keep", kind=FILE),
    ]
    # a named path gets the rules' verdict even where a walk would not go
    ig = parse_ignore("a\n!a/*/x.md\n")
    _tree(tmp_path, ["a/b/x.md", "a/b/y"])
    assert _result(plan_copy(tmp_path, ["a/b/x.md"], "/out", ignore=ig)) == ["out"]
    with pytest.raises(NotFound, match="filtered out"):
        plan_copy(tmp_path, ["a/b"], "/out", ignore=ig)


def test_bad_sources(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="at least one source"):
        plan_copy(tmp_path, [], "/x")
    with pytest.raises(InvalidArgument, match="empty source"):
        plan_copy(tmp_path, [""], "/x")
    with pytest.raises(InvalidArgument, match="source can't be a URL for COPY"):
        plan_copy(tmp_path, ["http://example.invalid/f"], "/x")
    with pytest.raises(NotSupported, match="is not supported yet"):
        plan_copy(tmp_path, ["https://example.invalid/repo.git#main"], "/x", add=True)


# --------------------------------------------------------------------------- ADD


def _tar(path: Path, compress: str = "") -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("in/f")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"hi"))
    data = buf.getvalue()
    if compress == "gz":
        import gzip

        data = gzip.compress(data)
    elif compress == "bz2":
        import bz2

        data = bz2.compress(data)
    elif compress == "xz":
        import lzma

        data = lzma.compress(data)
    elif compress == "zst":
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)


@pytest.mark.parametrize("compress", ["", "gz", "bz2", "xz", "zst"])
def test_archives_are_recognised(tmp_path: Path, compress: str) -> None:
    _tar(tmp_path / "a", compress)
    assert is_archive(tmp_path / "a")


def test_not_archives(tmp_path: Path) -> None:
    (tmp_path / "plain.gz").write_text("notar\n")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "zeros.tar").write_bytes(b"\0" * 1024)  # a tar with no entry
    (tmp_path / "bad.zst").write_bytes(b"\x28\xb5\x2f\xfd" + b"junk" * 10)
    for name in ("plain.gz", "empty", "zeros.tar", "bad.zst", "missing"):
        assert not is_archive(tmp_path / name), name


def test_add_unpacks_local_archives_copy_does_not(tmp_path: Path) -> None:
    _tar(tmp_path / "a.tgz", "gz")
    _tar(tmp_path / "a.tar")
    arch = str(tmp_path / "a.tgz")
    assert _plan(tmp_path, "a.tgz /x", add=True)[-1] == CopyItem(
        source=arch, dest="/x", kind=ARCHIVE
    )
    assert _plan(tmp_path, "a.tgz /x/y.tgz", add=True)[-1].dest == "/x/y.tgz"  # a directory
    assert _plan(tmp_path, "a.tgz /x")[-1] == CopyItem(source=arch, dest="/x", kind=FILE)
    plan = _plan(tmp_path, "a.tar a.tgz /x", add=True)
    assert [(i.kind, i.dest) for i in plan] == [(MKDIR, "/x"), (ARCHIVE, "/x"), (ARCHIVE, "/x")]
    # archives inside a copied directory stay files
    (tmp_path / "d").mkdir()
    _tar(tmp_path / "d" / "in.tar")
    assert _plan(tmp_path, "d /x", add=True)[-1].kind == FILE


def test_add_urls_are_planned_not_fetched(tmp_path: Path) -> None:
    url = "http://127.0.0.1:1/dir/f.txt?x=1"
    assert _plan(tmp_path, f"{url} /x/", add=True)[-1] == CopyItem(
        source=url, dest="/x/f.txt", kind=URL
    )
    assert _plan(tmp_path, f"{url} /x", add=True)[-1].dest == "/x"
    _tree(tmp_path, ["a"])
    assert [i.dest for i in _plan(tmp_path, f"a {url} /x", add=True)] == ["/x", "/x/a", "/x/f.txt"]


# --------------------------------------------------------------------------- paths in a root


def test_resolve_in_root(tmp_path: Path) -> None:
    _tree(tmp_path, ["d/f", "abs -> /d", "rel -> d/../d", "up -> ../../..", "chain -> abs"])
    assert resolve_in_root(str(tmp_path), "/abs/f") == "/d/f"
    assert resolve_in_root(str(tmp_path), "rel/f") == "/d/f"
    assert resolve_in_root(str(tmp_path), "/up/d") == "/d"
    assert resolve_in_root(str(tmp_path), "/chain") == "/d"
    assert resolve_in_root(str(tmp_path), "/chain", follow_last=False) == "/chain"
    assert resolve_in_root(str(tmp_path), "/../../missing/x") == "/missing/x"


def test_glob_in_root_follows_gos_glob(tmp_path: Path) -> None:
    _tree(tmp_path, ["b/x", "a/x", "a/y", "c", "l -> /a"])
    root = str(tmp_path)
    assert glob_in_root(root, "/*/x") == ["/a/x", "/b/x", "/l/x"]
    assert glob_in_root(root, "/c") == ["/c"]
    assert glob_in_root(root, "/nothere") == []
    assert glob_in_root(root, "/c/*") == []  # not a directory
    assert glob_in_root(root, "/[ab]/[x]") == ["/a/x", "/b/x"]


# --------------------------------------------------------------------------- --chown / --chmod


@pytest.mark.parametrize(
    ("value", "expected", "numeric"),
    [
        ("1", Chown(user="1"), (1, 1)),
        ("1:2", Chown(user="1", group="2"), (1, 2)),
        ("5:", Chown(user="5"), (5, 5)),
        (":5", Chown(user="", group="5"), (0, 5)),
        ("bin", Chown(user="bin"), None),
        ("bin:5", Chown(user="bin", group="5"), None),
        ("5:wheel", Chown(user="5", group="wheel"), None),
        ("4294967296", Chown(user="4294967296"), None),  # too big for a uid: a name
    ],
)
def test_parse_chown(value: str, expected: Chown, numeric: tuple[int, int] | None) -> None:
    parsed = parse_chown(value)
    assert parsed == expected
    assert parsed is not None and parsed.numeric() == numeric


def test_parse_chown_empty_and_colon() -> None:
    assert parse_chown("") is None
    with pytest.raises(InvalidArgument, match="can't find uid for user :"):
        parse_chown(":")


@pytest.mark.parametrize(
    ("value", "mode"), [("755", 0o755), ("0644", 0o644), ("17777", 0o17777), ("0", 0)]
)
def test_parse_chmod(value: str, mode: int) -> None:
    assert parse_chmod(value) == mode


@pytest.mark.parametrize("value", ["", "999", "u+x", "-1", "0o755", "7_55", "40000000000"])
def test_parse_chmod_refuses(value: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(f"Error parsing chmod {value}")):
        parse_chmod(value)
