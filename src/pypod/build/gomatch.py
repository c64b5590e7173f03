"""Go's `path/filepath` lexical rules, as buildah applies them to build-context paths.

- `clean`: `filepath.Clean` (lexical: `//` -> `/`, drops `.`, resolves `..`, no trailing `/`).
- `match`: `filepath.Match` on one name: `*` (any run without `/`), `?` (one character but
  `/`), `[...]` / `[^...]` classes with ranges and `\\` escapes, `\\x` a literal `x`.
  A malformed pattern raises `BadPattern` ("syntax error in pattern") whatever the name,
  as Go >= 1.16 does: the whole pattern is checked, not only the part that was compared.
- `has_meta`: whether `filepath.Glob` treats a path as a pattern (`*`, `?`, `[` or `\\`).

Names are compared character by character (Python `str`), which is Go's byte-wise
comparison for UTF-8 names; `?` and classes take one character, as Go takes one rune.
"""

from __future__ import annotations

import posixpath

from pypod.errors import InvalidArgument

_META = frozenset("*?[\\")


class BadPattern(InvalidArgument):
    """Go's `filepath.ErrBadPattern`."""

    def __init__(self, message: str = "syntax error in pattern") -> None:
        super().__init__(message)


def clean(path: str) -> str:
    """Go's `filepath.Clean` for `/`-separated paths (`posixpath.normpath` keeps `//a`)."""
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


def has_meta(path: str) -> bool:
    """Go's `hasMeta` (Unix): the characters that make `filepath.Glob` match, not stat."""
    return any(ch in _META for ch in path)


def match(pattern: str, name: str) -> bool:
    """Go's `filepath.Match(pattern, name)`; raises `BadPattern` for a malformed pattern."""
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and not chunk:
            # a trailing * matches the rest of the name unless it holds a /
            return "/" not in name
        rest, ok = _match_chunk(chunk, name)
        # the last chunk must use up the name; another chunk may still match after a star
        if ok and (not rest or pattern):
            name = rest
            continue
        if star:
            # try the chunk at every later position; a star does not cross /
            found = False
            for i in range(len(name)):
                if name[i] == "/":
                    break
                rest, ok = _match_chunk(chunk, name[i + 1 :])
                if ok:
                    if not pattern and rest:
                        continue
                    name = rest
                    found = True
                    break
            if found:
                continue
        # before answering "no", make sure the rest of the pattern is well formed
        while pattern:
            _, chunk, pattern = _scan_chunk(pattern)
            _match_chunk(chunk, "")
        return False
    return not name


def validate(pattern: str) -> None:
    """Raise `BadPattern` when `pattern` is malformed (Go checks with `Match(p, ".")`)."""
    match(pattern, ".")


def _scan_chunk(pattern: str) -> tuple[bool, str, str]:
    """Split off leading stars, then the chunk up to the next star outside a class."""
    star = False
    while pattern.startswith("*"):
        pattern = pattern[1:]
        star = True
    in_range = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            # the error (a trailing backslash) is reported by _match_chunk
            if i + 1 < len(pattern):
                i += 1
        elif ch == "[":
            in_range = True
        elif ch == "]":
            in_range = False
        elif ch == "*" and not in_range:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _match_chunk(chunk: str, s: str) -> tuple[str, bool]:
    """Match `chunk` (no stars outside classes) at the start of `s`: (rest of s, matched).

    After a mismatch the loop goes on through the chunk, only to check its syntax."""
    failed = False
    while chunk:
        if not failed and not s:
            failed = True
        ch = chunk[0]
        if ch == "[":
            r = ""
            if not failed:
                r, s = s[0], s[1:]
            chunk = chunk[1:]
            negated = False
            if chunk.startswith("^"):
                negated = True
                chunk = chunk[1:]
            matched = False
            nrange = 0
            while True:
                if chunk.startswith("]") and nrange > 0:
                    chunk = chunk[1:]
                    break
                lo, chunk = _get_esc(chunk)
                hi = lo
                if chunk[0] == "-":
                    hi, chunk = _get_esc(chunk[1:])
                if lo <= r <= hi and not failed:
                    matched = True
                nrange += 1
            if matched == negated:
                failed = True
        elif ch == "?":
            if not failed:
                if s[0] == "/":
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
        else:
            if ch == "\\":
                chunk = chunk[1:]
                if not chunk:
                    raise BadPattern()
            if not failed:
                if chunk[0] != s[0]:
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
    if failed:
        return "", False
    return s, True


def _get_esc(chunk: str) -> tuple[str, str]:
    """One (possibly escaped) character of a class; `-` and `]` must be escaped there."""
    if not chunk or chunk[0] in "-]":
        raise BadPattern()
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise BadPattern()
    ch, rest = chunk[0], chunk[1:]
    if not rest:
        raise BadPattern()
    return ch, rest
