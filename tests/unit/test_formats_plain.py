"""cli.engine.formats.render_rows: the default listings' templates (`{{.Field}}` actions over
strings) are filled in without the template engine, to the same text as the engine's."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pypod.cli.engine import formats

HEADERS = {"ID": "CONTAINER ID", "Names": "NAMES", "Status": "STATUS", "Ports": "PORTS"}
TEMPLATES = [
    "table {{.ID}}\t{{.Names}}\t{{.Status}}\t{{.Ports}}",
    "table {{.ID}}\\t{{.Names}}",
    "{{.ID}}",
    "{{.ID}}:{{.Names}} x",
    "table {{.ID}} {{.Other}}",  # a title not in the headers: the engine's
    "{{ .ID }}",
    "{{.ID | upper}}",
    "{{.Count}}",  # not a string: the engine's
    "{{if .ID}}{{.ID}}{{end}}",
    "text only",
    "a }} b {{.ID}}",
]
_value = st.text(alphabet="ab \t-:é", max_size=6)


def _engine(monkeypatch: pytest.MonkeyPatch, fmt: str, rows: list[dict[str, object]]) -> str:
    with monkeypatch.context() as m:
        m.setattr(formats, "_plain_fields", lambda template: None)
        return formats.render_rows(fmt, rows, HEADERS)


def _outcome(fn):  # type: ignore[no-untyped-def]
    try:
        return fn()
    except Exception as e:
        return (type(e), str(e))


@given(st.sampled_from(TEMPLATES), st.lists(st.tuples(_value, _value, _value), max_size=3))
def test_the_same_text_as_the_template_engine(fmt: str, values: list[tuple[str, str, str]]) -> None:
    rows: list[dict[str, object]] = [
        {"ID": a, "Names": b, "Status": c, "Ports": "", "Other": a, "Count": 3}
        for a, b, c in values
    ]
    with pytest.MonkeyPatch.context() as mp:
        reference = _outcome(lambda: _engine(mp, fmt, rows))
    assert _outcome(lambda: formats.render_rows(fmt, rows, HEADERS)) == reference


def test_the_default_listing_does_not_parse_a_template() -> None:
    assert formats._plain_fields("{{.ID}}\t{{.Names}}") == [("", "ID"), ("\t", "Names"), ("", "")]
    assert formats._plain_fields("{{.ID | upper}}") is None
