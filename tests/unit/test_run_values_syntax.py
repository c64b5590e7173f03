"""The `run` flags' syntax checks written by hand give the regular expressions' answers.

`pypod run` does not import `re` (its import costs ~6 ms of every start: pypod/stdlite.py), so
the patterns its flags were checked with became string code.  Each check here is held to the
pattern it replaced, on generated input made of the characters that matter to the grammar,
a few that never appear in it, and non-ASCII digits and letters that str methods would take
for digits; the value or the error must be the same.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pypod.cli.engine import run_flags, run_limits, run_mounts, run_network, run_values
from pypod.errors import ConfigError, InvalidArgument
from pypod.oci import runtime_spec_parse

#: non-ASCII characters that `isdigit`/`isdecimal`/`isalnum` accept: Arabic-Indic three,
#: superscript two, fullwidth one, and a letter with an accent
OTHER = "٣²１é"


def _texts(alphabet: str, max_size: int = 12) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet + OTHER + " \n", max_size=max_size)


# --- run_values -----------------------------------------------------------------------------
@given(_texts("0123456789+-_x."))
@example("+")
@example("-0")
@example("٣")
@example("1\n")
def test_is_decimal_and_is_digits(text: str) -> None:
    assert run_values.is_decimal(text) == (re.fullmatch(r"[+-]?[0-9]+", text) is not None)
    assert run_values.is_digits(text) == (re.fullmatch(r"[0-9]+", text) is not None)


_INT_RE = (
    r"(?P<sign>[+-]?)(?:0[xX](?P<hex>_?[0-9a-fA-F](?:_?[0-9a-fA-F])*)"
    r"|0[bB](?P<bin>_?[01](?:_?[01])*)|0[oO](?P<oct>_?[0-7](?:_?[0-7])*)"
    r"|(?P<zoct>0(?:_?[0-7])*)|(?P<dec>[1-9](?:_?[0-9])*))"
)


def _go_int_regex(text: str, fn: str, lo: int, hi: int, signed: bool) -> int:
    """run_values._go_int as it was, with the regular expression."""
    m = re.fullmatch(_INT_RE, text)
    if m is None or (not signed and m["sign"]):
        raise ValueError(f"strconv.{fn}: parsing {run_values.go_quote(text)}: invalid syntax")
    for group, base in (("hex", 16), ("bin", 2), ("oct", 8), ("zoct", 8), ("dec", 10)):
        if m[group] is not None:
            value = int(m[group].replace("_", ""), base)
            break
    if m["sign"] == "-":
        value = -value
    if not lo <= value <= hi:
        raise ValueError(f"strconv.{fn}: parsing {run_values.go_quote(text)}: value out of range")
    return value


def _outcome(call: object, *args: object) -> tuple[str, object]:
    try:
        return "value", call(*args)  # type: ignore[operator]
    except (ValueError, InvalidArgument) as e:
        return type(e).__name__, str(e)


_go_int_texts = st.builds(
    lambda sign, prefix, body: sign + prefix + body,
    st.sampled_from(["", "+", "-", "+-"]),
    st.sampled_from(["", "0", "0x", "0X", "0b", "0B", "0o", "0O", "00", "1"]),
    _texts("0123456789abcdefABCDEFxob_", 8),
)


@settings(max_examples=500)
@given(_go_int_texts | _texts("0123456789abcdefxob_+-"), st.booleans())
@example("0x_1f", True)
@example("0_7", True)
@example("0_", True)
@example("0x", True)
@example("08", True)
@example("1__0", True)
@example("-9223372036854775809", True)
@example("18446744073709551615", False)
@example("+1", False)
def test_go_int_matches_the_pattern(text: str, signed: bool) -> None:
    lo, hi = (-(1 << 63), (1 << 63) - 1) if signed else (0, (1 << 64) - 1)
    fn = "ParseInt" if signed else "ParseUint"
    assert _outcome(run_values._go_int, text, fn, lo, hi, signed) == _outcome(
        _go_int_regex, text, fn, lo, hi, signed
    )


_FLOAT_RE = (r"[+-]?(?:[0-9](?:_?[0-9])*(?:\.(?:[0-9](?:_?[0-9])*)?)?|\.[0-9]+)"
             r"(?:[eE][+-]?[0-9]+)?")  # fmt: skip


@settings(max_examples=500)
@given(_texts("0123456789.eE+-_"))
@example("1.")
@example(".5")
@example(".")
@example("1e")
@example("1e+5")
@example("-.5E-3")
@example("1_0")
@example("1e5E3")
def test_float_syntax_matches_the_pattern(text: str) -> None:
    expected = re.fullmatch(_FLOAT_RE, text) is not None and "_" not in text
    assert run_values._is_float(text) == expected
    if expected:
        assert run_values.parse_float(text, "--cpus") == float(text)


_SIZE_RE = r"([0-9]+(?:\.[0-9]+)*) ?([kKmMgGtTpP])?[iI]?[bB]?"


@settings(max_examples=500)
@given(_texts("0123456789. kKmMgGtTpPiIbBx"))
@example("1.5g")
@example("10 MB")
@example("1KiB")
@example("1.2.3")
@example("1.")
@example("b")
@example("1  m")
@example("1mbb")
def test_size_syntax_matches_the_pattern(text: str) -> None:
    m = re.fullmatch(_SIZE_RE, text)
    expected = None if m is None else (m[1], m[2] or "")
    assert run_values._split_size(text) == expected
    if m is not None and "." not in m[1] and len(m[1]) < 12:
        number = int(m[1]) * run_values._BINARY.get((m[2] or "").lower(), 1)
        assert run_values.parse_size(text) == number


# --- run_limits, run_mounts, run_network ----------------------------------------------------
@given(_texts("0123456789-,", 10))
@example("0-0")
@example("1-0")
@example("0-")
@example("-1")
@example("0,,1")
@example("0-1-2")
def test_cpuset_syntax_matches_the_pattern(text: str) -> None:
    valid = True
    for part in text.split(","):
        m = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", part)
        if m is None or (m[2] is not None and int(m[2]) < int(m[1])):
            valid = False
    try:
        run_limits._cpuset(text)
    except InvalidArgument as e:
        if text and valid:  # well written, but asking for CPUs this machine does not have
            assert "requested CPUs are not available" in str(e)
        else:
            assert str(e) == f"invalid value {text} for cpuset cpus"
    else:
        assert valid or not text


_TMPFS_PATTERNS = {
    "size": r"[0-9]+[kKmMgGtTpPeE%]?",
    "mode": r"[0-7]{1,4}",
    "uid": r"[0-9]+",
    "gid": r"[0-9]+",
    "nr_inodes": r"[0-9]+[kKmMgG%]?",
    "nr_blocks": r"[0-9]+[kKmMgG%]?",
}


def test_every_tmpfs_value_has_its_pattern_here() -> None:
    assert set(run_mounts._TMPFS_VALUES) == set(_TMPFS_PATTERNS)


@given(st.sampled_from(sorted(_TMPFS_PATTERNS)), _texts("0123456789kKmMgGtTpPeE%x", 6))
@example("mode", "01777")
@example("mode", "8")
@example("size", "%")
@example("size", "")
def test_tmpfs_values_match_their_patterns(key: str, value: str) -> None:
    valid, _what = run_mounts._TMPFS_VALUES[key]
    assert valid(value) == (re.fullmatch(_TMPFS_PATTERNS[key], value) is not None)


@given(
    st.lists(st.text(alphabet="0aF:-g" + OTHER, min_size=1, max_size=3), max_size=7).map("".join)
    | st.lists(st.text(alphabet="09afAF", min_size=2, max_size=2), min_size=6, max_size=6).map(
        ":".join
    )
)
@example("12:34:56:78:9a:bc")
@example("12-34-56:78-9A-bc")
@example("12:34:56:78:9a:bc:")
def test_mac_syntax_matches_the_pattern(text: str) -> None:
    pattern = r"[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}"
    assert run_network._is_mac(text) == (re.fullmatch(pattern, text) is not None)


_PORT_RANGE = r"(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?"


@given(
    st.builds(
        lambda a, b, c: a + b + c,
        _texts("0123456789", 4),
        st.sampled_from(["", "-", "-1", "-80", "--", "-x"]),
        st.sampled_from(["", "/", "/tcp", "/udp", "/sctp", "/TCP", "/ip", "/tcp/udp"]),
    )
    | _texts("0123456789-/tcpudsx", 10)
)
@example("٣")
@example("80-81/udp")
def test_port_range_matches_the_pattern(text: str) -> None:
    m = re.fullmatch(_PORT_RANGE, text)
    expected = None
    if m is not None:
        expected = (int(m[1]), int(m[2] or m[1]), m[3] or "tcp")
    assert run_network._port_range(text) == expected


# --- run_flags ------------------------------------------------------------------------------
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=4),
        lambda inner: st.lists(inner, max_size=3),
        max_leaves=6,
    ).map(json.dumps)
    | st.text(alphabet=' \t\n\r[]"x1,', max_size=8)
)
def test_only_what_may_be_an_array_is_read_as_json(text: str) -> None:
    """What `_may_be_json_array` refuses, `json.loads` does not read as an array either."""
    try:
        is_array = isinstance(json.loads(text), list)
    except ValueError:
        is_array = False
    if is_array:
        assert run_flags._may_be_json_array(text)


# --- runtime_spec_parse ---------------------------------------------------------------------
class _Constant(Exception):
    pass


def _reject(name: str) -> None:
    raise _Constant(name)


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(max_size=6),
        lambda inner: st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3),
        max_leaves=8,
    ).map(json.dumps)
    | _texts('{}[]":,0123456789.eNaIfinty-', 12)
)
@example('{"a": NaN}')
@example("[1, -Infinity, }")
@example('"Infinity"')
@example("[1e999]")
def test_decode_is_json_loads_refusing_constants(text: str) -> None:
    try:
        expected: tuple[str, object] = ("value", json.loads(text, parse_constant=_reject))
    except _Constant as e:
        expected = ("constant", str(e))
    except json.JSONDecodeError as e:
        expected = ("JSONDecodeError", str(e))
    try:
        found: tuple[str, object] = ("value", runtime_spec_parse.decode_json(text))
    except runtime_spec_parse._NonStandardNumber as e:
        found = ("constant", str(e))
    except json.JSONDecodeError as e:
        found = ("JSONDecodeError", str(e))
    assert repr(found) == repr(expected)  # (repr: NaN is not equal to itself)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"ociVersion": NaN}', "invalid JSON: NaN is not a JSON number"),
        ('{"ociVersion": "1.0.2"', "invalid JSON at line 1, column 23: Expecting ',' delimiter"),
    ],
)
def test_load_spec_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        runtime_spec_parse.load_spec(str(path))
    assert message in str(e.value)
