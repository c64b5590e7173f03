"""pypod.image.reference: the hand-written checks give the regular expressions' answers.

`_split_fast` must split every valid reference (but an IPv6 domain) exactly as `_REFERENCE` and
`_NAME_SPLIT` do and refuse to answer for anything else; the tag, digest, identifier and host
checks must agree with their patterns on every input.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pypod.image import reference
from pypod.image.reference import (
    _DIGEST,
    _DOMAIN,
    _IDENTIFIER,
    _TAG,
    InvalidReference,
    _full,
    _is_digest,
    _is_identifier,
    _is_tag,
    _split_fast,
    _split_regex,
    is_domain,
    parse,
    parse_normalized,
    validate_tag,
)

F64 = "sha256:" + "f" * 64

#: characters that matter to the grammar, some that never appear in it, and non-ASCII ones
#: that str methods would take for letters and digits
GRAMMAR = "aAzZ09_.-:/@[]+é٣\n "

_lower_run = st.text(alphabet="abz09", min_size=1, max_size=6)
_separator = st.sampled_from([".", "_", "__", "-", "--", "---"])
_path_component = st.builds(
    lambda first, rest: first + "".join(s + r for s, r in rest),
    _lower_run,
    st.lists(st.tuples(_separator, _lower_run), max_size=3),
)
_host_part = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?", fullmatch=True)
_host = st.builds(
    lambda parts, port: ".".join(parts) + (f":{port}" if port is not None else ""),
    st.lists(_host_part, min_size=1, max_size=3),
    st.none() | st.integers(0, 99999),
)
_tag = st.from_regex(r"[\w][\w.-]{0,20}", fullmatch=True).filter(str.isascii)
_digest = st.builds(
    lambda alg, hexdigits: f"{alg}:{hexdigits}",
    st.from_regex(r"[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)?", fullmatch=True).filter(
        str.isascii
    ),
    st.text(alphabet="0123456789abcdefABCDEF", min_size=32, max_size=70),
)


@st.composite
def valid_references(draw: st.DrawFn) -> str:
    domain = draw(st.none() | _host)
    path = "/".join(draw(st.lists(_path_component, min_size=1, max_size=4)))
    tag = draw(st.none() | _tag)
    digest = draw(st.none() | _digest)
    value = path if domain is None else f"{domain}/{path}"
    if tag is not None:
        value += ":" + tag
    if digest is not None:
        value += "@" + digest
    return value


@st.composite
def near_references(draw: st.DrawFn) -> str:
    """Pieces of the grammar with mistakes: empty parts, wrong separators, upper case..."""
    piece = st.text(alphabet="aB0_.-:[]", max_size=8)
    domain = draw(st.none() | piece | _host)
    path = "/".join(draw(st.lists(piece | _path_component, min_size=0, max_size=3)))
    value = path if domain is None else f"{domain}/{path}"
    if draw(st.booleans()):
        value += ":" + draw(piece | _tag)
    if draw(st.booleans()):
        value += "@" + draw(
            _digest
            | st.builds(
                lambda a, h: f"{a}:{h}",
                st.text(alphabet="aZ0+._-:", max_size=6),
                st.text(alphabet="0aFg:", min_size=28, max_size=40),
            )
        )
    return value


@given(valid_references())
@example("localhost/busybox")
@example("docker.io/library/busybox:latest")
@example(f"quay.io/a/b:1.0@{F64}")
@example("host:5000/x")
@example("foo/bar")
@example("Foo/bar")
@example("a" * 300)
def test_fast_path_splits_every_valid_reference_as_the_grammar(value: str) -> None:
    fast = _split_fast(value)
    assert fast is not None, value
    assert fast == _split_regex(value)


@settings(max_examples=500)
@given(near_references() | st.text(alphabet=GRAMMAR, max_size=60))
@example("[::1]:5000/foo:tag")
@example("[fe80::1]/a")
@example("a@b@c")
@example("a:b/c")
@example("a/b:")
@example("a__b___c")
@example("a._b")
@example("-a/b")
@example("a-/b")
@example("a./b")
@example("a:/b")
@example("a:1x/b")
@example("A/b")
@example("é/b")
@example(f"a@{F64}:1")
@example("a:" + "t" * 129)
def test_fast_path_answers_only_what_the_grammar_says(value: str) -> None:
    fast = _split_fast(value)
    if fast is not None:
        assert fast == _split_regex(value)
    elif not value.startswith("["):
        assert _split_regex(value) is None, value


@settings(max_examples=300)
@given(st.text(alphabet=GRAMMAR + "bcdefF", max_size=80) | _tag | _digest | _host)
@example("f" * 64)
@example("F" * 64)
@example("sha256:" + "a" * 31)
@example("sha256+b64u.x:" + "a" * 32)
@example("sha256:")
@example("a-:" + "a" * 32)
@example("_a")
@example("a:")
@example("a:0")
@example("[::1]:80")
@example("a-.b")
def test_single_checks_agree_with_their_patterns(value: str) -> None:
    assert _is_tag(value) == bool(_full(_TAG, value))
    assert _is_digest(value) == bool(_full(_DIGEST, value))
    assert _is_identifier(value) == bool(_full(_IDENTIFIER, value))
    assert is_domain(value) == bool(_full(_DOMAIN, value))


def _outcome(func: object, value: str) -> object:
    try:
        return func(value)  # type: ignore[operator]
    except InvalidReference as e:
        return (type(e), e.reason, str(e))


@settings(max_examples=300)
@given(valid_references() | near_references() | st.text(alphabet=GRAMMAR, max_size=40))
@example("a" * 256)
@example("a/" * 127 + "a:tag")
@example("Uppercase/repo")
@example("")
@example(f"a@sha256:{'0' * 63}")
@example(f"a@sha256:{'0' * 64}")
@example(f"a@sha256:{'A' * 64}")
def test_parse_gives_the_same_references_and_errors_without_the_fast_path(
    value: str,
) -> None:
    with_fast = (_outcome(parse, value), _outcome(parse_normalized, value))
    with pytest.MonkeyPatch.context() as m:
        m.setattr(reference, "_split_fast", lambda _value: None)
        without = (_outcome(parse, value), _outcome(parse_normalized, value))
    assert with_fast == without


def test_common_references_compile_no_regular_expression(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(pattern: str, value: str) -> None:
        raise AssertionError(f"regular expression used for {value!r}")

    monkeypatch.setattr(reference, "_full", refuse)
    assert str(parse_normalized("busybox")) == "docker.io/library/busybox"
    assert parse("localhost/busybox:latest").domain == "localhost"
    assert parse(f"registry.example:5000/team/app:v1.2@{F64}").digest == F64
    assert validate_tag("v1.0-rc_1") == "v1.0-rc_1"
    assert is_domain("localhost:5000")
    with pytest.raises(InvalidReference, match="cannot specify 64-byte hexadecimal"):
        parse_normalized("a" * 64)


def test_ipv6_domains_still_parse_through_the_grammar() -> None:
    ref = parse("[2001:db8::1]:5000/foo/bar:tag")
    assert (ref.domain, ref.path, ref.tag) == ("[2001:db8::1]:5000", "foo/bar", "tag")
    assert is_domain("[::1]")
