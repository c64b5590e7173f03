"""Stand-ins for a few standard-library helpers whose modules are expensive to import.

Every pypod command pays for the modules it imports before it does anything: `contextlib`
imports `collections` and `functools`, `signal` imports `enum`, and `re`, `typing`, `enum`,
`functools`, `collections` and `contextlib` together cost ~8 ms of CPU at each start (measured
with `perf stat` on the 2-core test VM: `python -c pass` 7.8 ms, with the run path's standard
modules 21 ms, without these 13 ms) -- a sixth of a whole `pypod run -d`.  The modules on the
paths of `run`, `create`, `start` and of the monitor up to the container's start therefore take
these from here (`tests/e2e/test_import_budget.py` holds them to it):

- `suppress` and `contextmanager`, which behave as `contextlib`'s, and `cast` (for type checkers
  they *are* `contextlib`'s and `typing`'s);
- `is_decimal` and `is_digits`, the two number patterns flags are checked with;
- `one_of`, what `SomeEnum(value)` does for the classes of str constants that replace enums;
- `signal`: the C module `_signal` (the same functions and numbers; handlers, masks and
  constants are plain ints instead of `signal`'s enums); `signal_name` and `signal_number`
  give the names `signal.Signals` would.

Type-only imports use the `TYPE_CHECKING = False` / `if TYPE_CHECKING:` pattern (mypy treats the
name as true), so `typing` and `collections.abc` are never imported at run time.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as signal
    from contextlib import contextmanager as contextmanager
    from contextlib import suppress as suppress
    from typing import cast as cast
else:
    import _signal as signal

    def cast(_type, value):
        """`typing.cast`: `value` itself."""
        return value


__all__ = [
    "cast", "contextmanager", "is_decimal", "is_digits", "one_of", "signal", "signal_name",
    "signal_number", "suppress",
]  # fmt: skip


if not TYPE_CHECKING:

    class suppress:
        """`contextlib.suppress`: leave the `with` body quietly on one of these exceptions."""

        __slots__ = ("_exceptions",)

        def __init__(self, *exceptions):
            self._exceptions = exceptions

        def __enter__(self):
            return None

        def __exit__(self, typ, value, tb):
            return typ is not None and issubclass(typ, self._exceptions)

    class _GeneratorContextManager:
        """What `contextmanager` returns: contextlib's protocol for one generator."""

        __slots__ = ("_gen",)

        def __init__(self, gen):
            self._gen = gen

        def __enter__(self):
            try:
                return next(self._gen)
            except StopIteration:
                raise RuntimeError("generator didn't yield") from None

        def __exit__(self, typ, value, tb):
            if typ is None:
                try:
                    next(self._gen)
                except StopIteration:
                    return False
                raise RuntimeError("generator didn't stop")
            if value is None:
                value = typ()
            try:
                self._gen.throw(value)
            except StopIteration as exc:
                return exc is not value
            except RuntimeError as exc:
                if exc is value:
                    exc.__traceback__ = tb
                    return False
                if isinstance(value, StopIteration) and exc.__cause__ is value:
                    value.__traceback__ = tb
                    return False
                raise
            except BaseException as exc:
                if exc is not value:
                    raise
                exc.__traceback__ = tb
                return False
            raise RuntimeError("generator didn't stop after throw()")

    def contextmanager(func):
        """`contextlib.contextmanager`: a generator function made a context manager factory."""

        def helper(*args, **kwds):
            return _GeneratorContextManager(func(*args, **kwds))

        helper.__name__ = func.__name__
        helper.__qualname__ = func.__qualname__
        helper.__doc__ = func.__doc__
        helper.__module__ = func.__module__
        helper.__wrapped__ = func
        return helper


def is_decimal(text: str) -> bool:
    """`re.fullmatch(r"[+-]?[0-9]+", text)`: a sign, then ASCII digits (Go's strconv.Atoi)."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    return digits.isascii() and digits.isdigit()


def is_digits(text: str) -> bool:
    """`re.fullmatch(r"[0-9]+", text)`: ASCII digits only."""
    return text.isascii() and text.isdigit()


def one_of(value: object, members: tuple[str, ...], what: str) -> str:
    """`SomeEnum(value)` for a class of str constants (the stand-in for `enum` here): the
    member equal to `value`, else ValueError "'x' is not a valid <what>"."""
    for member in members:
        if value == member:
            return member
    raise ValueError(f"{value!r} is not a valid {what}")


_NAMES: dict[int, str] = {}
_NUMBERS: dict[str, int] = {}


def _load_names() -> None:
    # signal.Signals' members: SIG* names but not SIG_* (SIG_DFL, SIG_BLOCK...); for numbers
    # with aliases (SIGABRT/SIGIOT, SIGCHLD/SIGCLD, SIGIO/SIGPOLL) the canonical name is the
    # first in (number, name) order, as `signal.Signals(n).name` gives
    found = sorted(
        (value, name)
        for name, value in vars(signal).items()
        if name.isupper() and name.startswith("SIG") and not name.startswith("SIG_")
    )
    for value, name in found:
        _NAMES.setdefault(value, name)
        _NUMBERS[name] = value


def signal_name(number: int) -> str | None:
    """`signal.Signals(number).name`, or None for a number that has no name (realtime ones)."""
    if not _NAMES:
        _load_names()
    return _NAMES.get(number)


def signal_number(name: str) -> int | None:
    """The number of `signal.Signals[name]` ("SIGTERM"...), or None for an unknown name."""
    if not _NUMBERS:
        _load_names()
    return _NUMBERS.get(name)
