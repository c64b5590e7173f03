"""The Go-template subset behind `--format`."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pypod.cli.engine.units import human_duration, human_size, image_size
from pypod.cli.gotemplate import Struct, TemplateError, format_value, parse, render

ROW = Struct(
    Repository="docker.io/library/busybox",
    Tag="latest",
    ID="b88e1ce29a35",
    Names=["a", "b"],
    Labels={"k": "v", "a": "1"},
    Containers=0,
    Dangling=False,
    Nested=Struct(Inner=Struct(Value="deep")),
)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{.Repository}}:{{.Tag}}", "docker.io/library/busybox:latest"),
        ("{{.Nested.Inner.Value}}", "deep"),
        ("{{.Names}} {{.Labels}}", "[a b] map[a:1 k:v]"),
        ("{{.Containers}} {{.Dangling}}", "0 false"),
        ("{{range .Names}}<{{.}}>{{end}}", "<a><b>"),
        ("{{range .Labels.nope}}x{{else}}none{{end}}", "none"),
        ("{{if .Dangling}}yes{{else}}no{{end}}", "no"),
        ("{{if .Names}}has{{end}}", "has"),
        ("{{json .Names}}", '["a","b"]'),
        ("{{.Names | json}}", '["a","b"]'),
        ('{{join .Names ","}}', "a,b"),
        ('{{.Names | join "-"}}', "a-b"),
        ("{{upper .Tag}} {{lower .Repository}}", "LATEST docker.io/library/busybox"),
        ("{{len .Names}}", "2"),
        ('{{index .Labels "k"}}', "v"),
        ("{{upper (index .Names 1)}}", "B"),
        ('{{printf "%s-%d" .Tag 3}}', "latest-3"),
        ("a  {{- .Tag -}}  b", "alatestb"),
        ("{{.Labels.k}} {{.Labels.nope}}", "v <no value>"),
        ("{{/* comment */}}x", "x"),
        ('{{"quoted }} braces"}}', "quoted }} braces"),
        ("{{`raw`}}", "raw"),
        ('{{eq .Tag "latest"}} {{ne .Tag "latest"}} {{not .Dangling}}', "true false true"),
    ],
)
def test_render(template: str, expected: str) -> None:
    assert render(template, ROW) == expected


def test_json_of_the_dot_is_go_json() -> None:
    out = render("{{json .}}", Struct(A="<&>", B=[1, 2], C=None))
    assert out == '{"A":"\\u003c\\u0026\\u003e","B":[1,2],"C":null}'
    assert json.loads(out) == {"A": "<&>", "B": [1, 2], "C": None}


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{.Nope}}", "can't evaluate field Nope"),
        ("{{.Tag", "unclosed action"),
        ("{{range .Names}}x", "without {{end}}"),
        ("{{end}}", "unexpected {{end}}"),
        ("{{nosuchfunc .Tag}}", 'function "nosuchfunc" not defined'),
        ("{{.Tag .Tag}}", "can't give argument to non-function"),
    ],
)
def test_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        render(template, ROW)


_text = st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=30)
_names = st.from_regex(r"[A-Z][A-Za-z0-9]{0,8}", fullmatch=True)


@given(_text)
def test_text_without_actions_is_unchanged(text: str) -> None:
    assert render(text, ROW) == text


@given(st.dictionaries(_names, st.text(max_size=20), min_size=1, max_size=5), _text)
def test_fields_join_like_python_formatting(fields: dict[str, str], sep: str) -> None:
    template = sep.join("{{." + k + "}}" for k in fields)
    assert render(template, Struct(fields)) == sep.join(fields.values())


@given(st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=8,
))  # fmt: skip
def test_json_round_trips(value: object) -> None:
    assert json.loads(render("{{json .V}}", Struct(V=value))) == value


@given(st.lists(st.text(alphabet="abc xyz", max_size=5), max_size=6))
def test_range_visits_every_element(items: list[str]) -> None:
    assert render("{{range .L}}[{{.}}]{{end}}", Struct(L=items)) == "".join(f"[{i}]" for i in items)
    assert format_value(items) == "[" + " ".join(items) + "]"


@given(_text, _text)
def test_parse_is_reusable(before: str, after: str) -> None:
    tpl = parse(before + "{{.Tag}}" + after)
    assert tpl.execute(ROW) == tpl.execute(ROW) == before + "latest" + after


@pytest.mark.parametrize(
    ("size", "precision", "expected"),
    [(0, 4, "0B"), (999, 4, "999B"), (4262094, 4, "4.262MB"), (10240, 4, "10.24kB"),
     (2131047, 3, "2.13MB"), (1000, 3, "1kB")],
)  # fmt: skip
def test_human_size(size: int, precision: int, expected: str) -> None:
    assert human_size(size, precision) == expected


def test_image_size_and_durations() -> None:
    assert image_size(2131047) == "2.13 MB"
    assert image_size(843) == "843 B"
    assert human_duration(0.5) == "Less than a second"
    assert human_duration(1) == "1 second"
    assert human_duration(8) == "8 seconds"
    assert human_duration(61) == "About a minute"
    assert human_duration(150) == "2 minutes"
    assert human_duration(3600) == "About an hour"
    assert human_duration(5 * 3600) == "5 hours"
    assert human_duration(3 * 86400) == "3 days"
    assert human_duration(20 * 86400) == "2 weeks"
    assert human_duration(90 * 86400) == "3 months"
    assert human_duration(3 * 365 * 86400) == "3 years"
