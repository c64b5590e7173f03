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
    indent: int | None = None,
) -> str:
    """`json.dumps(obj, sort_keys=..., separators=..., indent=...)` (ASCII output, circular
    check).  With an indent (podman's indented output: `inspect`, `--format json`), the layout is
    written here; with an indent and sort_keys or separators too, by `json` itself."""
    if indent is not None:
        if sort_keys or separators is not None:
            import json

            return json.dumps(obj, sort_keys=sort_keys, separators=separators, indent=indent)
        return _dumps_indent(obj, indent)
    item_separator, key_separator = separators if separators is not None else (", ", ": ")
    if isinstance(obj, str):
        return str(encode_basestring_ascii(obj))
    encode = make_encoder(
        {}, _default, encode_basestring_ascii, None,
        key_separator, item_separator, sort_keys, False, True,
    )  # fmt: skip
    return "".join(encode(obj, 0))


def _float(o: float) -> str:
    if o != o:
        return "NaN"
    if o == float("inf"):
        return "Infinity"
    if o == float("-inf"):
        return "-Infinity"
    return float.__repr__(o)


def _key(k: object) -> str:
    if isinstance(k, str):
        return k
    if isinstance(k, float):
        return _float(k)
    if k is True:
        return "true"
    if k is False:
        return "false"
    if k is None:
        return "null"
    if isinstance(k, int):
        return int.__repr__(k)
    raise TypeError(f"keys must be str, int, float, bool or None, not {k.__class__.__name__}")


def _dumps_indent(obj: Any, indent: int) -> str:
    """`json.dumps(obj, indent=indent)`: the layout of `json.encoder._make_iterencode` with an
    indent (`","` at line ends, `": "` after keys), strings by `_json`'s C code."""
    out: list[str] = []
    markers: set[int] = set()
    step = " " * indent

    def encode(o: Any, level: int) -> None:
        if isinstance(o, str):
            out.append(encode_basestring_ascii(o))
        elif o is None:
            out.append("null")
        elif o is True:
            out.append("true")
        elif o is False:
            out.append("false")
        elif isinstance(o, int):
            out.append(int.__repr__(o))
        elif isinstance(o, float):
            out.append(_float(o))
        elif isinstance(o, list | tuple):
            if not o:
                out.append("[]")
                return
            enter(o)
            inner = "\n" + step * (level + 1)
            out.append("[" + inner)
            for i, item in enumerate(o):
                if i:
                    out.append("," + inner)
                encode(item, level + 1)
            out.append("\n" + step * level + "]")
            markers.discard(id(o))
        elif isinstance(o, dict):
            if not o:
                out.append("{}")
                return
            enter(o)
            inner = "\n" + step * (level + 1)
            out.append("{" + inner)
            for i, (k, v) in enumerate(o.items()):
                if i:
                    out.append("," + inner)
                out.append(encode_basestring_ascii(_key(k)) + ": ")
                encode(v, level + 1)
            out.append("\n" + step * level + "}")
            markers.discard(id(o))
        else:
            raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")

    def enter(o: object) -> None:
        if id(o) in markers:
            raise ValueError("Circular reference detected")
        markers.add(id(o))

    encode(obj, 0)
    return "".join(out)


def _json_loads(s: str | bytes | bytearray) -> Any:
    import json

    return json.loads(s)
