"""pypod.engine.names: podman's rule for names, checked by hand, as its pattern checked it."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pypod.engine.names import check_name, is_valid_name, random_name
from pypod.errors import InvalidArgument

RULE = r"[a-zA-Z0-9][a-zA-Z0-9_.-]*"


@given(st.text(alphabet="aZ09_.-/: \n\té٣", max_size=20) | st.from_regex(RULE, fullmatch=True))
@example("")
@example("a\n")
@example("a\n\n")
@example("_a")
@example("٣")
def test_names_follow_the_pattern(name: str) -> None:
    assert is_valid_name(name) == (re.fullmatch(RULE, name) is not None)
    # check_name kept what `re.match("^...$")` let through: a final newline
    valid = re.match(f"^{RULE}$", name) is not None
    if valid:
        check_name(name)
    else:
        with pytest.raises(InvalidArgument, match="names must match"):
            check_name(name)


def test_random_names_are_valid() -> None:
    for _ in range(50):
        name = random_name()
        assert is_valid_name(name) and "_" in name
