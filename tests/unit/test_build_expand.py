"""pypod.build.expand: Docker's word expansion (buildah 1.28 / imagebuilder's ShellLex rules)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pypod.build.expand import (
    EXPANDING_INSTRUCTIONS,
    WORD_SPLITTING_INSTRUCTIONS,
    expand_arguments,
    process_word,
    process_words,
)
from pypod.errors import InvalidArgument

ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "EMPTY": "", "SPACED": "a b  c"}


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        # plain text and the $ forms
        ("hello", "hello"),
        ("$PWD", "/home"),
        ("${PWD}", "/home"),
        ("x${PWD}y", "x/homey"),
        ("$PWD/bin", "/home/bin"),
        ("$PWDx", ""),  # the name runs on: PWDx is unset
        ("$UNSET", ""),
        ("${UNSET}", ""),
        ("$", "$"),
        ("a$", "a$"),
        ("$ x", "$ x"),
        ("$.", "$."),
        ("$1", ""),  # a digit is a one-character name
        ("$1x", "x"),
        ("${KOREAN}", "한국어"),
        ("$KOREAN", "한국어"),
        # ${name:-word} and ${name:+word}
        ("${UNSET:-default}", "default"),
        ("${EMPTY:-default}", "default"),
        ("${PWD:-default}", "/home"),
        ("${UNSET:+alt}", ""),
        ("${EMPTY:+alt}", ""),
        ("${PWD:+alt}", "alt"),
        ("${UNSET:-$PWD}", "/home"),
        ("${UNSET:-${SHELL:+x$PWD}}", "x/home"),
        ("${UNSET:-}", ""),
        ("${:-x}", "x"),
        ("${}", ""),
        ("$10", "0"),
        ('"a\\\\$PWD"', "a\\/home"),
        ("${UNSET:-a b}", "a b"),
        ("${UNSET:-'quoted }'}", "quoted }"),
        # escapes outside quotes
        ("\\$PWD", "$PWD"),
        ("\\${PWD}", "${PWD}"),
        ("a\\ b", "a b"),
        ("\\a", "a"),
        ("\\\\", "\\"),
        ("trailing\\", "trailing"),
        # single quotes keep everything
        ("'$PWD'", "$PWD"),
        ("'a\\b'", "a\\b"),
        ("'\"'", '"'),
        ("x'y'z", "xyz"),
        # double quotes expand $ and escape only " $ and the escape character
        ('"$PWD"', "/home"),
        ('"a\\"b"', 'a"b'),
        ('"\\$PWD"', "$PWD"),
        ('"\\\\"', "\\"),
        ('"\\a"', "\\a"),
        ('"it\'s"', "it's"),
        ('"${UNSET:-x y}"', "x y"),
        ('"a b"', "a b"),
        ("'a'\"b\"c", "abc"),
        ("", ""),
    ],
)
def test_process_word(word: str, expected: str) -> None:
    assert process_word(word, ENV) == expected


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("`$PWD", "$PWD"),
        ("a`b", "ab"),
        ("C:\\path\\to", "C:\\path\\to"),  # \ is an ordinary character with escape=`
        ('"`""', '"'),
        ('"``"', "`"),
        ('"\\$PWD"', "\\/home"),
    ],
)
def test_process_word_with_backtick_escape(word: str, expected: str) -> None:
    assert process_word(word, ENV, escape="`") == expected


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("a b c", ["a", "b", "c"]),
        ("  a   b  ", ["a", "b"]),
        ("$SPACED", ["a", "b", "c"]),  # text from a variable splits
        ('"$SPACED"', ["a b  c"]),  # quoted text does not
        ("'a b' c", ["a b", "c"]),
        ("a\\ b c", ["a b", "c"]),
        ("x$SPACED", ["xa", "b", "c"]),
        ("80/tcp ${PORTS:-443 8080}", ["80/tcp", "443", "8080"]),
        ("", []),
        ("''", []),  # an empty quoted word adds nothing, as in moby
    ],
)
def test_process_words(word: str, expected: list[str]) -> None:
    assert process_words(word, ENV) == expected


def test_process_word_keeps_spaces_between_words() -> None:
    assert process_word("a  $SPACED  b", ENV) == "a  a b  c  b"


@pytest.mark.parametrize(
    ("word", "message"),
    [
        # buildah 1.28's own words (checked against `buildah bud` on this machine)
        ("${PWD-x}", "Missing ':' in substitution: ${PWD-x}"),
        ("${PWD+x}", "Missing ':' in substitution: ${PWD+x}"),
        ("${PWD", "Missing ':' in substitution: ${PWD"),
        ("${", "Missing ':' in substitution: ${"),
        ("${PWD%%x}", "Missing ':' in substitution: ${PWD%%x}"),
        ("a${B:-${PWD-x}}", "Missing ':' in substitution: a${B:-${PWD-x}}"),
        ("${PWD:=x}", "Unsupported modifier (=) in substitution: ${PWD:=x}"),
        ("${PWD:?x}", "Unsupported modifier (?) in substitution: ${PWD:?x}"),
        ("'open", "unexpected end of statement while looking for matching single-quote"),
        ('"open', "unexpected end of statement while looking for matching double-quote"),
        ("${UNSET:-abc", "unexpected end of statement while looking for matching }"),
        ("${UNSET:-abc\\", "unexpected end of statement while looking for matching }"),
        ('"${PWD-x}"', "Missing ':' in substitution: \"${PWD-x}\""),
    ],
)
def test_bad_substitution_errors(word: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        process_word(word, ENV)
    assert str(err.value) == message


def test_invalid_escape_token() -> None:
    with pytest.raises(InvalidArgument, match="invalid escape token"):
        process_word("x", {}, escape="!")


def test_which_instructions_expand() -> None:
    assert {"ENV", "LABEL", "ADD", "COPY", "WORKDIR", "EXPOSE", "VOLUME", "USER"} <= (
        EXPANDING_INSTRUCTIONS
    )
    assert {"STOPSIGNAL", "ARG"} <= EXPANDING_INSTRUCTIONS
    assert not {"RUN", "CMD", "ENTRYPOINT", "SHELL", "ONBUILD", "MAINTAINER", "HEALTHCHECK"} & (
        EXPANDING_INSTRUCTIONS
    )
    assert {"EXPOSE"} == WORD_SPLITTING_INSTRUCTIONS


_names = st.sampled_from(["PWD", "EMPTY", "UNSET", "SPACED", "x", "_1", "1"])
_pieces = st.one_of(
    st.text(max_size=5),
    st.sampled_from(["$", "${", "}", ":-", ":+", ":", "-", "+", "'", '"', "\\", "`", " "]),
    _names.map(lambda n: "$" + n),
    _names.map(lambda n: "${" + n + "}"),
    st.tuples(_names, st.sampled_from(":-:+:?-+="), st.text(max_size=4)).map(
        lambda t: "${" + t[0] + t[1] + t[2] + "}"
    ),
)


@given(st.lists(_pieces, max_size=12).map("".join), st.sampled_from(["\\", "`"]))
def test_lexer_never_crashes(word: str, escape: str) -> None:
    try:
        expanded = process_word(word, ENV, escape)
        words = process_words(word, ENV, escape)
    except InvalidArgument as exc:
        assert "substitution" in str(exc) or "unexpected end of statement" in str(exc)
        return
    assert isinstance(expanded, str)
    assert all(w for w in words)


@given(st.text(alphabet=st.characters(blacklist_characters="$'\"\\`")))
def test_plain_text_is_unchanged(word: str) -> None:
    assert process_word(word, ENV) == word
    assert process_word(word, ENV, escape="`") == word


@given(st.text(alphabet=st.characters(blacklist_characters="$'\"\\`", blacklist_categories=["Zs"])))
def test_plain_words_split_like_str_split(word: str) -> None:
    expected = [w for w in word.split() if w]
    # Go's unicode.IsSpace does not count the \x1c-\x1f separators that str.split() does
    if not any(c in word for c in "\x1c\x1d\x1e\x1f"):
        assert process_words(word, ENV) == expected


def test_expand_arguments_uses_the_variables_from_before_the_instruction() -> None:
    # checked against buildah 1.28: `ENV A=1 E=${A:-z}` gives E=z when A was unset before
    env: dict[str, str] = {}
    args = ["A", "1", "E", "${A:-z}", "B", '"two words"', "C", '\\"x\\"', "F", "'$A b'"]
    expected = ["A", "1", "E", "z", "B", "two words", "C", '"x"', "F", "$A b"]
    assert expand_arguments("ENV", args, env) == expected


def test_expand_arguments_per_instruction() -> None:
    env = {"A": "1", "PORTS": "443 8080/udp"}
    assert expand_arguments("expose", ["80", "$A/udp", "$PORTS"], env) == [
        "80",
        "1/udp",
        "443",
        "8080/udp",
    ]
    assert expand_arguments("WORKDIR", ["/w/$A b"], env) == ["/w/1 b"]
    assert expand_arguments("LABEL", ['"l k"', '"$A"'], env) == ["l k", "1"]
    assert expand_arguments("VOLUME", ["/v/$A"], env) == ["/v/1"]
    assert expand_arguments("STOPSIGNAL", ["SIG${NOPE:-TERM}"], env) == ["SIGTERM"]
    assert expand_arguments("RUN", ["echo $A"], env) == ["echo $A"]
    assert expand_arguments("CMD", ["$A"], env) == ["$A"]
    assert expand_arguments("ONBUILD", ["RUN $A"], env) == ["RUN $A"]
    assert expand_arguments("COPY", ["`$A", "/d"], env, escape="`") == ["$A", "/d"]
