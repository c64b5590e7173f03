"""jsoncodec.dumps(obj, indent=N): json.dumps(obj, indent=N)'s text, to the byte."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pypod.jsoncodec import dumps

_leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text()
_keys = st.text() | st.integers() | st.floats() | st.booleans() | st.none()
_values = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=4)
    | st.lists(inner, max_size=3).map(tuple)
    | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=20,
)


@given(_values, st.sampled_from([0, 1, 2, 4, 5]))
def test_as_json_dumps_with_indent(value: Any, indent: int) -> None:
    assert dumps(value, indent=indent) == json.dumps(value, indent=indent)


def test_podman_inspect_shape() -> None:
    doc = [{"Id": "abc", "State": {"Pid": 12, "Running": True, "Env": ["A=é", "B"]},
            "Empty": {}, "None": [], "Float": 1.5, "Nan": float("nan")}]  # fmt: skip
    assert dumps(doc, indent=5) == json.dumps(doc, indent=5)


def test_errors_are_jsons() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference detected"):
        dumps(loop, indent=2)
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        dumps({"a": {1}}, indent=2)
    with pytest.raises(TypeError, match="keys must be str, int, float, bool or None"):
        dumps({(1,): 1}, indent=2)
