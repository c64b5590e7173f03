"""`pypod.stdlite` against what it stands in for: contextlib, typing.cast, signal."""

from __future__ import annotations

import contextlib
import signal as std_signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from pypod import stdlite


def test_signal_names_and_numbers_are_signals_enums() -> None:
    for sig in std_signal.Signals:
        assert stdlite.signal_name(sig.value) == sig.name
    for name, sig in std_signal.Signals.__members__.items():  # aliases too (SIGIOT, SIGCLD...)
        assert stdlite.signal_number(name) == sig.value
    assert stdlite.signal_name(std_signal.SIGRTMIN + 1) is None
    assert stdlite.signal_number("SIG_DFL") is None
    assert stdlite.signal_number("NSIG") is None
    assert stdlite.signal.SIGTERM == std_signal.SIGTERM


@pytest.mark.parametrize("where", [contextlib, stdlite], ids=["contextlib", "stdlite"])
def test_suppress(where: object) -> None:
    suppress = where.suppress  # type: ignore[attr-defined]
    with suppress(KeyError):
        {}[1]
    with suppress(LookupError, OSError):
        [][1]
    with pytest.raises(ValueError), suppress(KeyError):
        raise ValueError("x")
    with pytest.raises(ExceptionGroup), suppress(KeyError):  # as 3.11's: no group splitting
        raise ExceptionGroup("g", [KeyError(1)])


@pytest.mark.parametrize("where", [contextlib, stdlite], ids=["contextlib", "stdlite"])
def test_contextmanager(where: object) -> None:
    contextmanager = where.contextmanager  # type: ignore[attr-defined]
    seen: list[str] = []

    @contextmanager
    def managed(value: int) -> Iterator[int]:
        """Doc."""
        seen.append("enter")
        try:
            yield value
        except KeyError:
            seen.append("handled")
        finally:
            seen.append("exit")

    assert managed.__name__ == "managed" and managed.__doc__ == "Doc."
    with managed(3) as v:
        assert v == 3
    with managed(4):
        raise KeyError(1)  # handled inside: the with statement goes on
    with pytest.raises(ValueError, match="boom"), managed(5):
        raise ValueError("boom")
    assert seen == ["enter", "exit", "enter", "handled", "exit", "enter", "exit"]

    @contextmanager
    def no_yield() -> Iterator[None]:
        if False:
            yield

    with pytest.raises(RuntimeError, match="didn't yield"), no_yield():
        pass

    @contextmanager
    def two_yields() -> Iterator[None]:
        yield
        yield

    with pytest.raises(RuntimeError, match="didn't stop"), two_yields():
        pass

    @contextmanager
    def reraises_other() -> Iterator[None]:
        try:
            yield
        except KeyError as e:
            raise OSError("other") from e

    with pytest.raises(OSError, match="other"), reraises_other():
        raise KeyError(1)

    @contextmanager
    def passes_stopiteration() -> Iterator[None]:
        yield

    with pytest.raises(StopIteration), passes_stopiteration():
        raise StopIteration


def test_cast_is_identity() -> None:
    value = object()
    assert stdlite.cast(int, value) is value


def test_importing_it_imports_none_of_what_it_replaces() -> None:
    code = (
        "import sys, pypod.stdlite as s\n"
        "with s.suppress(KeyError): {}[1]\n"
        "s.signal_name(15)\n"
        "print(sorted({'contextlib', 'signal', 'typing', 'enum', 'collections', 're'}"
        " & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_one_of_gives_the_member_or_enums_error() -> None:
    member = "running"
    assert stdlite.one_of("".join(["run", "ning"]), ("created", member), "Status") is member
    with pytest.raises(ValueError, match="^'x' is not a valid Status$"):
        stdlite.one_of("x", ("created", member), "Status")
