"""pypod.runtime.state: the id check gives runc's regular expression's answer, without `re`.

runc checks ids with `^[\\w+\\-.]+$` in Go's syntax: `\\w` is ASCII only and `$` ends the text
(Python's `re.match` with the same pattern let Unicode letters and one final newline through).
"""

from __future__ import annotations

import re
import sys

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pypod.errors import InvalidArgument
from pypod.runtime.state import Status, _valid_id_chars, validate_id

_ID_RE = re.compile(r"[\w+\-.]+", re.ASCII)  # Go semantics, matched with fullmatch

#: characters that matter to the pattern, and some that str methods could mistake for them
ALPHABET = "aZ09_+-.é٣²Ⅻ\n\t /:@*ß𝟘"


def _regex_says(text: str) -> bool:
    return _ID_RE.fullmatch(text) is not None and text not in (".", "..")


def test_every_character_is_classified_as_the_pattern_does() -> None:
    for code in range(sys.maxunicode + 1):
        c = chr(code)
        assert _valid_id_chars(c) == (_ID_RE.fullmatch(c) is not None), repr(c)


@settings(max_examples=2000)
@given(st.text(alphabet=ALPHABET, max_size=8) | st.text(max_size=8))
@example("")
@example("\n")
@example("abc\n")
@example("abc\n\n")
@example("\nabc")
@example(".")
@example("..")
@example("...")
def test_ids_are_accepted_and_refused_as_by_the_pattern(text: str) -> None:
    try:
        validate_id(text)
        accepted = True
    except InvalidArgument:
        accepted = False
    assert accepted == _regex_says(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "container id cannot be empty"), ("a/b", "invalid id format: a/b"),
     ("..", "invalid id format: ..")],
)  # fmt: skip
def test_refusals_keep_their_messages(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_id(text)
    assert str(info.value) == message


def test_statuses_are_runc_strings() -> None:
    assert [Status.CREATING, Status.CREATED, Status.RUNNING, Status.PAUSED, Status.STOPPED] == [
        "creating", "created", "running", "paused", "stopped",
    ]  # fmt: skip
    assert all(type(s) is str for s in (Status.CREATED, Status.STOPPED))
