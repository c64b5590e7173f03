"""image/gotime.py: Go's time.ParseDuration.  The expected values and messages are what Go
1.19's time.ParseDuration returned for the same strings (Debian's golang-go, run once)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pypod.engine.processes import go_duration
from pypod.errors import InvalidArgument
from pypod.image.gotime import parse_go_duration

VALUES = [
    ("0", 0), ("+0", 0), ("-0", 0), ("0s", 0), ("30s", 30_000_000_000),
    ("1m30s", 90_000_000_000), ("500ms", 500_000_000), ("1.5h", 5_400_000_000_000),
    ("-2s", -2_000_000_000), ("+5s", 5_000_000_000), ("3us", 3000), ("3µs", 3000),
    ("3μs", 3000), (".5s", 500_000_000), ("5.s", 5_000_000_000), ("-.5m", -30_000_000_000),
    ("1m.5s", 60_500_000_000), ("1ns1ns", 2), ("3.7ms", 3_700_000), ("1.2us", 1200),
    ("7.25m", 435_000_000_000), ("1h2m3s4ms", 3_723_004_000_000),
    ("0000000000000000000000001s", 1_000_000_000),
    ("1.0000000005s", 1_000_000_000), ("1.999999999999s", 1_999_999_999),
    ("0.000000001s", 1), ("0.0000000001s", 0),
    ("0.123456789012345678901234567890s", 123_456_789),
    ("2562047h", 9_223_369_200_000_000_000),
    ("9223372036854775807ns", 9_223_372_036_854_775_807),
    ("-9223372036854775808ns", -9_223_372_036_854_775_808),
]  # fmt: skip

ERRORS = [
    ("", 'time: invalid duration ""'),
    ("-", 'time: invalid duration "-"'),
    (".", 'time: invalid duration "."'),
    ("s", 'time: invalid duration "s"'),
    (".s", 'time: invalid duration ".s"'),
    ("..5s", 'time: invalid duration "..5s"'),
    ("1s.", 'time: invalid duration "1s."'),
    ("--5s", 'time: invalid duration "--5s"'),
    ("+-5s", 'time: invalid duration "+-5s"'),
    (" 1s", 'time: invalid duration " 1s"'),
    ("9999999999h", 'time: invalid duration "9999999999h"'),
    ("2562048h", 'time: invalid duration "2562048h"'),
    ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
    ("-9223372036854775809ns", 'time: invalid duration "-9223372036854775809ns"'),
    ("123456789012345678901234567890ns",
     'time: invalid duration "123456789012345678901234567890ns"'),
    ("00", 'time: missing unit in duration "00"'),
    ("10", 'time: missing unit in duration "10"'),
    ("1.5", 'time: missing unit in duration "1.5"'),
    ("1s2", 'time: missing unit in duration "1s2"'),
    ("1..5s", 'time: missing unit in duration "1..5s"'),
    ("1x", 'time: unknown unit "x" in duration "1x"'),
    ("1H", 'time: unknown unit "H" in duration "1H"'),
    ("1e5s", 'time: unknown unit "e" in duration "1e5s"'),
    ("1s ", 'time: unknown unit "s " in duration "1s "'),
    ("1é", 'time: unknown unit "\\xc3\\xa9" in duration "1\\xc3\\xa9"'),
    ('1"s', 'time: unknown unit "\\"s" in duration "1\\"s"'),
    ("1\\s", 'time: unknown unit "\\\\s" in duration "1\\\\s"'),
    ("1\x01s", 'time: unknown unit "\\x01s" in duration "1\\x01s"'),
]  # fmt: skip


@pytest.mark.parametrize(("text", "ns"), VALUES)
def test_values_as_go(text: str, ns: int) -> None:
    assert parse_go_duration(text) == ns


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_errors_as_go(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_go_duration(text)
    assert str(err.value) == message


@given(st.integers(min_value=-(1 << 63) + 1, max_value=(1 << 63) - 1))
def test_reads_what_go_duration_string_writes(ns: int) -> None:
    assert parse_go_duration(go_duration(ns)) == ns


@given(st.text(alphabet="0123456789.smhnuµ+-x ", max_size=12))
def test_any_text_is_a_value_or_invalid_argument(text: str) -> None:
    try:
        value = parse_go_duration(text)
    except InvalidArgument as e:
        assert str(e).startswith("time: ")
    else:
        assert -(1 << 63) <= value < 1 << 63
