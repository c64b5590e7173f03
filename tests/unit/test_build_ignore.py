"""`.containerignore` rules: Go's Clean/Match, the pattern compiler, file lookup and the walk.

Expected results of the tree cases were produced with buildah 1.28.2 (`bud` of `FROM scratch`
+ `COPY . /` with the tree as context, `--output type=local`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pypod.build.gomatch import BadPattern, clean, has_meta, match
from pypod.build.ignore import (
    Ignore,
    compile_pattern,
    find_ignore_file,
    load_ignore,
    parse_ignore,
    walk_context,
)
from pypod.errors import InvalidArgument, PypodError

# --------------------------------------------------------------------------- Go's rules


@pytest.mark.parametrize(
    ("path", "cleaned"),
    [
        ("", "."),
        ("a//b/", "a/b"),
        ("./a/./b", "a/b"),
        ("a/../../b", "../b"),
        ("/../a", "/a"),
        ("//a", "/a"),
        ("///a//", "/a"),
        ("!b/../a", "a"),
        ("!./a", "!./a"),
    ],
)
def test_clean_is_gos_filepath_clean(path: str, cleaned: str) -> None:
    assert clean(path) == cleaned


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("*", ".hidden", True),
        ("*", "a/b", False),
        ("a*", "a", True),
        ("a*z", "abcz", True),
        ("a*z", "ab/z", False),
        ("*.go", "x.go", True),
        ("a?c", "abc", True),
        ("a?c", "a/c", False),
        ("a?c", "a☺c", True),
        ("a??c", "a☺c", False),
        ("x[0-9]", "x7", True),
        ("x[0-9]", "xa", False),
        ("x[^0-9]", "xa", True),
        ("x[^0-9]", "x7", False),
        ("[\\]]", "]", True),
        ("[\\-z]", "-", True),
        ("a\\*b", "a*b", True),
        ("a\\*b", "axb", False),
        ("*x*y*", "axbyc", True),
        ("a*b*c", "abxbc", True),
        ("a*b*c", "abxb", False),
        ("a+b", "a+b", True),
        ("a+b", "aab", False),
    ],
)
def test_match_is_gos_filepath_match(pattern: str, name: str, expected: bool) -> None:
    assert match(pattern, name) is expected


@pytest.mark.parametrize(
    "pattern", ["[", "a[", "[^", "[x", "[]", "[]a]", "[-]", "[a-]", "[-a]", "[a-b-c]", "\\", "a\\"]
)
def test_malformed_patterns_are_refused_whatever_the_name(pattern: str) -> None:
    for name in ("a", "", "zzz", "."):
        with pytest.raises(BadPattern, match="syntax error in pattern"):
            match(pattern, name)


def test_bad_tail_is_found_even_after_a_mismatch() -> None:
    # Go checks the rest of the pattern before answering "no"
    with pytest.raises(BadPattern):
        match("x*[", "abc")


def test_has_meta() -> None:
    assert has_meta("a*") and has_meta("a?") and has_meta("[a]") and has_meta("a\\b")
    assert not has_meta("a/b.c") and not has_meta("a]") and not has_meta("a{b}")


# --------------------------------------------------------------------------- one pattern


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("**", "a", True),
        ("**", "a/b/c", True),
        ("**/x", "x", True),
        ("**/x", "a/b/x", True),
        ("**/x", "ax", False),
        ("**x", "a/x", True),
        ("**x", "ax", False),  # buildah 1.28: `**` is "any directories", not "any text"
        ("a/**", "a", False),
        ("a/**", "a/b/c", True),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "a/x/yb", False),
        ("a**", "a/b", True),
        ("a**/*.txt", "a/d/e/f.txt", True),
        ("**/**/*.txt", "f.txt", True),
        ("*/*", "a/b", True),
        ("*/*", "a/b/c", False),
        (".*", ".git", True),
        (".*", "x.git", False),
        ("a.b", "axb", False),
        ("a(b)c|d{2}$^", "a(b)c|d{2}$^", True),
        ("a+b", "aab", False),
        ("\\d", "1", False),
        ("\\d", "d", True),
        ("a[^x]b", "a/b", True),  # classes are not stopped by "/", as in buildah
        ("\ufeffa", "a", True),  # Go's scanner skips a byte-order mark
    ],
)
def test_compiled_pattern(pattern: str, path: str, expected: bool) -> None:
    assert (compile_pattern(pattern).fullmatch(path) is not None) is expected


@pytest.mark.parametrize("pattern", ["[", "a\\", "[z-a]", "x[]"])
def test_compile_refuses_malformed(pattern: str) -> None:
    with pytest.raises(BadPattern):
        compile_pattern(pattern)


# --------------------------------------------------------------------------- the file's lines


def _texts(ig: Ignore) -> list[str]:
    return [("!" if p.exception else "") + p.text for p in ig.patterns]


def test_lines_comments_spaces_and_slashes() -> None:
    text = (
        "# comment\n"
        "\n"
        "   \n"
        "  a  \n"
        " #b\n"  # not a comment: # only in column 1
        "/c/\n"
        "./d\n"
        "e//f/../g\n"
        " /h\n"  # the / is trimmed before the space: stays /h (matches nothing)
        "/ i\n"  # trimmed / then spaces: i
        "!/j\n"
        "! k\n"  # an exception for " k", which matches nothing
        "!./l\n"
        "!b/../m\n"  # cleaned before the ! is seen: the pattern "m"
        "n\r\n"
        "\u00a0o\v\n"
        "\x1cp\n"  # Go's TrimSpace keeps \x1c
        "q\rr\n"
    )
    assert _texts(parse_ignore(text)) == [
        "a",
        "#b",
        "c",
        "d",
        "e/g",
        "/h",
        "i",
        "!j",
        "! k",
        "!l",
        "m",
        "n",
        "o",
        "\x1cp",
        "q\rr",
    ]


def test_a_lone_bang_is_refused_with_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / ".dockerignore"
    f.write_text("a\n!\n")
    with pytest.raises(InvalidArgument, match=r'\.dockerignore:2: illegal exclusion pattern: "!"'):
        load_ignore(tmp_path)


def test_a_syntax_error_names_file_line_and_pattern(tmp_path: Path) -> None:
    f = tmp_path / ".containerignore"
    f.write_text("ok\n# x\n  [abc  \n")
    with pytest.raises(
        InvalidArgument, match=r"\.containerignore:3: syntax error in pattern '\[abc'"
    ):
        load_ignore(tmp_path)


# --------------------------------------------------------------------------- verdicts


def test_last_matching_pattern_wins() -> None:
    ig = parse_ignore("*.md\n!README*.md\nREADME-secret.md\n")
    assert ig.matches("x.md") and ig.matches("README-secret.md")
    assert not ig.matches("README.md") and not ig.matches("a/x.md")
    ig = parse_ignore("*.md\nREADME-secret.md\n!README*.md\n")
    assert not ig.matches("README-secret.md")
    # an exception before the rule it would undo does nothing
    assert parse_ignore("!a\n*\n").matches("a")


def test_a_pattern_matching_a_parent_matches_the_path() -> None:
    ig = parse_ignore("docs\n")
    assert ig.matches("docs") and ig.matches("docs/a/b.txt") and not ig.matches("docsx")
    ig = parse_ignore("docs\n!docs/README.md\n")
    assert not ig.matches("docs/README.md") and ig.matches("docs/other.md")
    ig = parse_ignore("a\n!a/b\n")
    assert not ig.matches("a/b/c/d")  # the exception matches a parent too
    assert not ig.matches(".") and not ig.matches("")
    assert ig.matches("/a/x") and ig.matches("./a/x")


def test_excluded_verdict_for_named_sources() -> None:
    ig = parse_ignore("a\n!a/*/x.md\n")
    # a named path gets the patterns' verdict, even below a directory a walk would prune
    assert not ig.excluded("a/b/x.md", is_dir=False)
    assert ig.excluded("a/b", is_dir=True)  # no exception's text starts with "a/b"
    assert not ig.excluded("a", is_dir=True)  # "a/*/x.md/" starts with "a": look inside
    assert ig.excluded("a", is_dir=False)
    assert ig.descend("a") and not ig.descend("a/b")
    assert not Ignore().excluded("anything", is_dir=True)


def test_descend_compares_text_without_a_trailing_slash() -> None:
    ig = parse_ignore("*\n!ab*/x\n")
    assert ig.descend("ab") and not ig.descend("abc")  # buildah's prefix test, as is
    assert not parse_ignore("a\n").descend("a")  # no exceptions at all


# --------------------------------------------------------------------------- which file


def test_which_ignore_file_wins(tmp_path: Path) -> None:
    (tmp_path / "Containerfile").write_text("FROM scratch\n")
    assert find_ignore_file(tmp_path) is None
    assert not load_ignore(tmp_path)
    (tmp_path / ".dockerignore").write_text("d\n")
    assert find_ignore_file(tmp_path) == str(tmp_path / ".dockerignore")
    (tmp_path / ".containerignore").write_text("c\n")
    assert find_ignore_file(tmp_path) == str(tmp_path / ".containerignore")
    # <Containerfile>.containerignore, then <Containerfile>.dockerignore, win over both
    (tmp_path / "Containerfile.containerignore").write_text("cc\n")
    assert find_ignore_file(tmp_path, "Containerfile").endswith("Containerfile.containerignore")
    (tmp_path / "Containerfile.dockerignore").write_text("cd\n")
    ig = load_ignore(tmp_path, "Containerfile")
    assert ig.path == str(tmp_path / "Containerfile.dockerignore") and _texts(ig) == ["cd"]
    # without the Containerfile's name only the context's files count
    assert _texts(load_ignore(tmp_path)) == ["c"]
    # --ignorefile beats everything
    other = tmp_path / "elsewhere"
    other.write_text("x\n")
    assert _texts(load_ignore(tmp_path, "Containerfile", ignorefile=other)) == ["x"]


def test_relative_containerfile_is_taken_in_the_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "sub").mkdir(parents=True)
    (ctx / ".containerignore").write_text("ctx\n")
    (ctx / "sub" / "Other").write_text("FROM scratch\n")
    (ctx / "sub" / "Other.dockerignore").write_text("other\n")
    monkeypatch.chdir(tmp_path)
    # buildah joins a relative -f path to the context directory, not to the cwd
    assert _texts(load_ignore(ctx, "sub/Other")) == ["other"]
    assert _texts(load_ignore(ctx, "ctx/sub/Other")) == ["ctx"]
    assert _texts(load_ignore(ctx, os.path.abspath("ctx/sub/Other"))) == ["other"]
    assert _texts(load_ignore(ctx, ["nothere", "sub/Other"])) == ["other"]


def test_missing_ignorefile_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(PypodError, match="reading ignore file"):
        load_ignore(tmp_path, ignorefile=tmp_path / "nope")


# --------------------------------------------------------------------------- the walk


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


def _copied(root: Path, ignore: str) -> list[str]:
    """What `COPY . /` puts in the image: the walk plus the parents the copier creates."""
    (root / ".dockerignore").write_text(ignore)
    out = set()
    for rel in walk_context(root, load_ignore(root)):
        full = root / rel
        out.add(rel + ("/" if full.is_dir() and not full.is_symlink() else ""))
        parts = rel.split("/")
        out.update("/".join(parts[:i]) + "/" for i in range(1, len(parts)))
    return sorted(out)


#: (tree, ignore file, what buildah 1.28.2 copied)
BUILDAH_CASES = [
    (["a/b/x.md", "a/y.md", "R.md", "z"], "**/*.md\n", [".dockerignore", "a/", "a/b/", "z"]),
    (["a/b/x.md", "a/y.md", "R.md"], "*.md\n!R.md\n", [".dockerignore", "R.md", "a/", "a/b/", "a/b/x.md", "a/y.md"]),  # noqa: E501
    (["a/b/x.md", "a/y.md", "a/c/", "a/d/e", "z"], "a\n!a/b/x.md\n", [".dockerignore", "a/", "a/b/", "a/b/x.md", "z"]),  # noqa: E501
    (["a/b/x", "a/y", "z"], "a/**\n", [".dockerignore", "a/", "z"]),
    (["foo/a/b/bar/c", "foo/bar", "foo/q/bar", "foo/x"], "foo/**/bar\n", [".dockerignore", "foo/", "foo/a/", "foo/a/b/", "foo/q/", "foo/x"]),  # noqa: E501
    (["a/x", "b/y", "c/z", "d", "e/f"], "/a\nb/\n./c\ne/../d\n", [".dockerignore", "e/", "e/f"]),
    (["a/x", "b"], " /a\n", [".dockerignore", "a/", "a/x", "b"]),
    (["a", "b"], "*\n! a\n", []),
    (["a1", "b2", "c3", "d4", "x*y", "xzy", "q?"], "[a-b]*\n[^d]3\nx\\*y\nq\\?\n", [".dockerignore", "d4", "xzy"]),  # noqa: E501
    (["a/b/x", "a/c"], "a/b/*\n", [".dockerignore", "a/", "a/b/", "a/c"]),
    (["a/b/x", "a/c", "z", "Containerfile"], "*\n!a/b\n", ["a/", "a/b/", "a/b/x"]),
    (["a/b/x.md", "a/c/x.md", "a/c/y"], "a\n!a/*/x.md\n", [".dockerignore"]),
    (["a", "b"], "a\r\nb\r\n", [".dockerignore"]),
    (["a", "b"], ".\n", [".dockerignore", "a", "b"]),
    (["foo", "x/foo", "x/y/foo/z", "xfoo"], "**/foo\n", [".dockerignore", "x/", "x/y/", "xfoo"]),
    (["a/b", "a/x/y/b", "ab", "a/b2"], "a**b\n", [".dockerignore", "a/", "a/b2", "a/x/", "a/x/y/"]),
    (["ab", "a/b", "b"], "a**\n", [".dockerignore", "b"]),
    (["a/b/c", "d"], "**\n", []),
    (["a/b/c", "a/e", "d"], "*/*\n", [".dockerignore", "a/", "d"]),
    (["a/b/c/d", "a/x"], "a\n!a/b\n", [".dockerignore", "a/", "a/b/", "a/b/c/", "a/b/c/d"]),
    (["ab/c", "a/c"], "a*\n!a/c\n", [".dockerignore", "a/", "a/c"]),
    (["a", "b"], "*\n!/a\n", ["a"]),
    (["a", "b"], "*\n ! a\n !b\n", ["b"]),
    (["a", "b"], "*\n!./a\n", ["a"]),
    (["a", "b"], "*\n!b/../a\n", []),
    (["a", " a"], "/ a\n", [" a", ".dockerignore"]),
    (["a", "!a", "b"], "*\n!!a\n", ["!a"]),
    (["a", "b"], "\ufeffa\nb\n", [".dockerignore"]),
    (["a", "b"], "*\n\ufeff!a\n", []),
    (["a/b/c/d/e", "a/k"], "a\n!a/b/c\na/*/c/d\n", [".dockerignore", "a/", "a/b/", "a/b/c/"]),
    (["a/x.md", "a/y", "b/x.md"], "*\n!*/x.md\n", []),
    (["x/y/c/z", "x/y/c/keep", "q"], "**/c\n!x/y/c/keep\n", [".dockerignore", "q", "x/", "x/y/", "x/y/c/", "x/y/c/keep"]),  # noqa: E501
    (["ab/x", "abc/x", "b/x"], "*\n!ab*/x\n", ["ab/", "ab/x"]),
    (["a/b/x", "a/c"], "a\n!/a/b\n", [".dockerignore", "a/", "a/b/", "a/b/x"]),
    (["t/f", "l -> t"], "t\n", [".dockerignore", "l"]),
    (["a"], ".dockerignore\nContainerfile\n", ["a"]),
]  # fmt: skip


@pytest.mark.parametrize(("tree", "ignore", "expected"), BUILDAH_CASES)
def test_walk_copies_what_buildah_copies(
    tmp_path: Path, tree: list[str], ignore: str, expected: list[str]
) -> None:
    _tree(tmp_path, tree)
    assert _copied(tmp_path, ignore) == expected


def test_walk_order_parents_first_names_sorted_links_not_followed(tmp_path: Path) -> None:
    _tree(tmp_path, ["b/z", "b/a", "a", "B", "l -> b"])
    assert list(walk_context(tmp_path, Ignore())) == ["B", "a", "b", "b/a", "b/z", "l"]


def test_walk_of_a_subdirectory_keeps_context_relative_rules(tmp_path: Path) -> None:
    _tree(tmp_path, ["d/keep/x", "d/skip/y", "d/z"])
    ig = parse_ignore("d\n!d/keep\n")
    assert list(walk_context(tmp_path, ig, top="d")) == ["d/keep", "d/keep/x"]
    assert list(walk_context(tmp_path, parse_ignore("**/skip\n"), top="./d/")) == [
        "d/keep",
        "d/keep/x",
        "d/z",
    ]


def test_unreadable_context_is_reported(tmp_path: Path) -> None:
    with pytest.raises(PypodError, match="reading build context directory"):
        list(walk_context(tmp_path / "missing", Ignore()))


# --------------------------------------------------------------------------- never crash

_ALPHABET = st.sampled_from(list("ab/*?[]^-\\!. #\t\r\n{}()+|$\ufeff\u00a0é"))


@settings(max_examples=400, deadline=None)
@given(st.text(_ALPHABET, max_size=30), st.text(st.sampled_from(list("ab/.c")), max_size=12))
def test_parser_and_matcher_never_crash(text: str, path: str) -> None:
    try:
        ig = parse_ignore(text)
    except InvalidArgument:
        return
    verdict = ig.matches(path)
    assert isinstance(verdict, bool)
    assert isinstance(ig.excluded(path, True), bool) and isinstance(ig.descend(path), bool)


@settings(max_examples=400, deadline=None)
@given(st.text(_ALPHABET, max_size=20), st.text(st.sampled_from(list("ab/*?[]-\\.")), max_size=8))
def test_compiled_pattern_agrees_with_go_match_on_one_name(pattern: str, name: str) -> None:
    """Without `**` and `/`, the regexp and Go's Match give the same answer (or both refuse)."""
    if "**" in pattern or "/" in pattern or "/" in name or pattern.startswith("\ufeff"):
        return
    try:
        expected = match(pattern, name)
    except BadPattern:
        with pytest.raises(BadPattern):
            compile_pattern(pattern)
        return
    try:
        regex = compile_pattern(pattern)
    except BadPattern:
        assert "[" in pattern  # only a reversed range, refused earlier than Go does
        return
    assert (regex.fullmatch(name) is not None) is expected
