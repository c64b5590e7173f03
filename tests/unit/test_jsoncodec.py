"""`pypod.jsoncodec` against the `json` package: same values, same text, same errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pypod import jsoncodec

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300)
@given(_values)
def test_dumps_is_jsons_text(value: object) -> None:
    assert jsoncodec.dumps(value) == json.dumps(value)
    assert jsoncodec.dumps(value, sort_keys=True, separators=(",", ":")) == json.dumps(
        value, sort_keys=True, separators=(",", ":")
    )


@settings(max_examples=300)
@given(_values, st.sampled_from(["", " ", "\n\t ", "\r\n"]))
def test_loads_reads_what_json_reads(value: object, space: str) -> None:
    text = space + json.dumps(value) + space
    assert jsoncodec.loads(text) == json.loads(text)
    assert jsoncodec.loads(text.encode()) == json.loads(text.encode())


@given(st.text(max_size=20))
def test_loads_fails_where_json_fails_with_its_error(text: str) -> None:
    try:
        expected = json.loads(text)
    except json.JSONDecodeError as e:
        with pytest.raises(json.JSONDecodeError) as got:
            jsoncodec.loads(text)
        assert str(got.value) == str(e)
    else:
        got_value = jsoncodec.loads(text)
        assert got_value == expected or (math.isnan(got_value) and math.isnan(expected))


@pytest.mark.parametrize(
    "doc",
    [b'\xef\xbb\xbf{"a": 1}', '{"a": 1}'.encode("utf-16"), '{"a": 1}'.encode("utf-32-le"),
     "NaN", "[Infinity, -Infinity]", '"\\ud800"', '{"a": 1} x', "\ufeff{}", "", "{"],
)  # fmt: skip
def test_the_cases_handed_to_json(doc: str | bytes) -> None:
    try:
        expected = repr(json.loads(doc))
    except ValueError as e:
        with pytest.raises(type(e), match="^" + __import__("re").escape(str(e)) + "$"):
            jsoncodec.loads(doc)
    else:
        assert repr(jsoncodec.loads(doc)) == expected


def test_dumps_refuses_what_json_refuses() -> None:
    with pytest.raises(TypeError, match="^Object of type object is not JSON serializable$"):
        jsoncodec.dumps({"a": object()})
    circular: list[object] = []
    circular.append(circular)
    with pytest.raises(ValueError, match="Circular reference detected"):
        jsoncodec.dumps(circular)
    assert jsoncodec.dumps([float("nan")]) == json.dumps([float("nan")])


def test_importing_it_imports_neither_json_nor_re() -> None:
    code = "import sys, pypod.jsoncodec as j; j.loads('[1]'); j.dumps({'a': [1.5]}); " \
        "print(sorted({'json', 're', 'enum'} & set(sys.modules)))"  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
