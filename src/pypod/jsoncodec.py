"""`loads` and `dumps` as the `json` package's, without importing the `json` package.

`json` imports `re` (its decoder's and encoder's module-level patterns), and `re` imports `enum`,
`functools` and `collections`: ~6 ms at the start of every command that reads or writes JSON
(see `pypod/stdlite.py`).  The work itself is done by the same C code `json` uses, the `_json`
module's scanner and encoder, so the results are `json`'s to the byte; whatever that C code does
not cover (bytes in UTF-16/32, `indent`, a document `_json` rejects, so that the error is
`json`'s own `JSONDecodeError`, a subclass of ValueError) is handed to `json` itself.
"""

from __future__ import annotations

from _json import encode_basestring_ascii, make_encoder, make_scanner

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["dumps", "loads"]

_WHITESPACE = " \t\n\r"


class _ScanContext:
    """The attributes `_json.make_scanner` reads from a `json.JSONDecoder` (its defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


# (typeshed asks for a scanner; the C code reads these attributes of any object)
_scan_once = make_scanner(_ScanContext())  # type: ignore[arg-type]


def loads(s: str | bytes | bytearray) -> Any:
    """`json.loads(s)`."""
    if not isinstance(s, str):
        head = bytes(s[:4])
        if head.startswith(b"\xef\xbb\xbf") or b"\x00" in head:  # BOM, UTF-16/32: json's job
            return _json_loads(s)
        s = bytes(s).decode("utf-8", "surrogatepass")
    start = len(s) - len(s.lstrip(_WHITESPACE))
    try:
        value, end = _scan_once(s, start)
    except (StopIteration, ValueError):
        return _json_loads(s)  # raises json's JSONDecodeError, with its message
    if end != len(s) and s[end:].strip(_WHITESPACE):
        return _json_loads(s)  # "Extra data"
    return value


def _default(o: object) -> Any:
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


def dumps(
    obj: Any,
    *,
    sort_keys: bool = False,
    separators: tuple[str, str] | None = None,
) -> str:
    """`json.dumps(obj, sort_keys=..., separators=...)` (ASCII output, circular check)."""
    item_separator, key_separator = separators if separators is not None else (", ", ": ")
    if isinstance(obj, str):
        return str(encode_basestring_ascii(obj))
    encode = make_encoder(
        {}, _default, encode_basestring_ascii, None,
        key_separator, item_separator, sort_keys, False, True,
    )  # fmt: skip
    return "".join(encode(obj, 0))


def _json_loads(s: str | bytes | bytearray) -> Any:
    import json

    return json.loads(s)
