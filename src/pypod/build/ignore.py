"""`.containerignore` / `.dockerignore`: which files of the build context COPY and ADD see.

Which file (buildah 1.28's `ContainerIgnoreFile`, checked against buildah 1.28.2):
`--ignorefile` when given; else, for each Containerfile in order, `<Containerfile>.dockerignore`
then `<Containerfile>.containerignore` next to it (`.dockerignore` wins when both exist; a
relative Containerfile path is taken relative to the context directory, as buildah does);
else `.containerignore` in the context directory, else `.dockerignore` there.

Lines (imagebuilder's `ParseIgnore` then containers/storage's `NewPatternMatcher`): split on
`\\n`; a line that is empty or starts with `#` in its first column is skipped (` #x` is a
pattern); `/` is trimmed from both ends of the raw line (so `/a` is `a`, but ` /a` stays
`/a` and matches nothing); Go white space is trimmed; the pattern is cleaned like Go's
`filepath.Clean`; a leading `!` makes an exception (`!` alone is an error; what follows is
cleaned again and loses a leading `/`); the pattern must be valid for Go's `filepath.Match`.

Matching a path relative to the context (`MatchesOrParentMatches`): a pattern matches when
it matches the path or any of its parent directories; `*` and `?` do not cross `/`, `[...]`
is a class, `\\x` is a literal `x`, `**` matches any number of directories (`**/x`, `a/**`,
`a/**/b`; a final `**` matches everything below); the last pattern that matches decides.

Walking (`walk_context`, buildah's copier): an excluded directory is skipped with all it holds
unless the text of an exception, plus `/`, starts with the directory's path (`a` for `!a/b/c`,
also `ab` for `!ab*/x`); then the walk goes inside, yields what exceptions re-include, and
buildah creates the excluded directory only as a parent of those (mode 0755).  An exception
with a wildcard in its directory part (`!*/keep`) therefore re-includes nothing under an
excluded directory, exactly as in buildah.  A path named directly (a COPY source) is not
pruned that way: `Ignore.excluded` gives buildah's verdict for such a path.

Deliberate differences from buildah 1.28 (whose pattern-to-regexp translation escapes only
`.` and `$`): `+ ( ) { } | ^` are literal characters here, as Go's `filepath.Match` and later
buildah (moby/patternmatcher) have them, and `\\d`-like escapes are the literal letter;
buildah 1.28 read `a+b` as the regexp `a+b`.  A reversed class range (`[z-a]`) is refused
when the file is loaded instead of when the first path is checked.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator, Sequence

from pypod.build.gomatch import BadPattern, clean, validate
from pypod.errors import InvalidArgument, from_oserror

#: Go's `unicode.IsSpace` characters (what `strings.TrimSpace` removes)
_GO_SPACES = (
    "\t\n\v\f\r \x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)


class IgnorePattern:
    """One cleaned pattern: its text (without `!`), whether it is an exception, its regexp."""

    __slots__ = ("exception", "line", "regex", "text")

    def __init__(self, text: str, *, exception: bool, line: int = 0) -> None:
        self.text = text
        self.exception = exception
        self.line = line
        self.regex = compile_pattern(text)

    def __repr__(self) -> str:
        return f"IgnorePattern({'!' if self.exception else ''}{self.text!r})"


class Ignore:
    """The exclusion rules of one build context (no patterns: nothing is excluded)."""

    __slots__ = ("_prefixes", "path", "patterns")

    def __init__(self, patterns: Sequence[IgnorePattern] = (), *, path: str | None = None):
        #: the ignore file these rules come from (None: none was found or given)
        self.path = path
        self.patterns = tuple(patterns)
        # what the walk compares a directory's path with (buildah trims "/" from both ends)
        self._prefixes = tuple(p.text.strip("/") + "/" for p in self.patterns if p.exception)

    @property
    def has_exceptions(self) -> bool:
        return bool(self._prefixes)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, rel_path: str) -> bool:
        """The patterns' verdict for `rel_path`: True when excluded.  A pattern that matches
        a parent directory matches the path; the last matching pattern decides."""
        rel = _relative(rel_path)
        if rel == "." or not self.patterns:
            return False
        parts = rel.split("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        matched = False
        for pattern in self.patterns:
            if pattern.exception != matched:
                continue  # cannot change the verdict
            if any(pattern.regex.fullmatch(c) for c in candidates):
                matched = not pattern.exception
        return matched

    def descend(self, rel_path: str) -> bool:
        """Whether the walk must look inside an excluded directory: an exception's text
        (plus `/`) starts with the directory's path, so something below may come back."""
        rel = _relative(rel_path).strip("/")
        return any(prefix.startswith(rel) for prefix in self._prefixes)

    def excluded(self, rel_path: str, is_dir: bool) -> bool:
        """Buildah's verdict for a path named directly (a COPY/ADD source): True when it is
        left out.  An excluded directory is not left out when an exception may re-include
        something below it (`descend`); a walk of it then yields only what comes back."""
        if not self.matches(rel_path):
            return False
        return not (is_dir and self.descend(rel_path))


def compile_pattern(text: str) -> re.Pattern[str]:
    """The regexp for one cleaned pattern (without `!`); `BadPattern` when malformed.

    Translation as containers/storage does it: `**` -> any number of directories (`**/`
    eats its `/`; a final `**` -> anything), `*` -> `[^/]*`, `?` -> `[^/]`, classes kept,
    `\\x` -> `x`, a leading U+FEFF dropped (Go's text/scanner skips a byte-order mark)."""
    validate(text)
    if text.startswith("\ufeff"):
        text = text[1:]
    out = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        i += 1
        if ch == "*":
            if i < n and text[i] == "*":
                i += 1
                if i < n and text[i] == "/":
                    i += 1
                out.append(".*" if i >= n else "(?:.*/)?")
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i < n:
                out.append(re.escape(text[i]))
                i += 1
            else:
                out.append(re.escape("\\"))
        elif ch == "[":
            cls, i = _class(text, i)
            out.append(cls)
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out))


def _class(text: str, i: int) -> tuple[str, int]:
    """A validated Go class starting after `[` at `i`: (Python regexp, index after `]`)."""
    negated = text.startswith("^", i)
    if negated:
        i += 1
    ranges: list[str] = []
    while True:
        if text[i] == "]" and ranges:
            i += 1
            break
        lo, i = _class_char(text, i)
        hi = lo
        if text[i] == "-":
            hi, i = _class_char(text, i + 1)
        if lo > hi:
            raise BadPattern()
        ranges.append(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}")
    return ("[^" if negated else "[") + "".join(ranges) + "]", i


def _class_char(text: str, i: int) -> tuple[str, int]:
    if text[i] == "\\":
        i += 1
    return text[i], i + 1


def parse_ignore(text: str, *, path: str | None = None) -> Ignore:
    """Parse the text of an ignore file the way buildah 1.28 reads it (see the module doc).
    Errors are `InvalidArgument` naming the file, the line and buildah's words."""
    patterns = []
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw or raw[0] == "#":
            continue
        pattern = raw.strip("/").strip(_GO_SPACES)
        if not pattern:
            continue
        pattern = clean(pattern)
        exception = pattern[0] == "!"
        where = f"{path or 'ignore file'}:{number}"
        if exception:
            if len(pattern) == 1:
                raise InvalidArgument(
                    f'{where}: illegal exclusion pattern: "!": name what to re-include after "!"'
                )
            pattern = clean(pattern[1:]).removeprefix("/")
        try:
            patterns.append(IgnorePattern(pattern, exception=exception, line=number))
        except BadPattern:
            raise InvalidArgument(
                f"{where}: syntax error in pattern {raw.strip()!r}: "
                "check its [...] classes and \\ escapes (Go filepath.Match syntax)"
            ) from None
    return Ignore(patterns, path=path)


def find_ignore_file(
    context_dir: str | os.PathLike[str],
    containerfile: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
) -> str | None:
    """The ignore file buildah 1.28 would use for this context and Containerfile(s)."""
    context = os.fspath(context_dir)
    if containerfile is None:
        containerfiles: list[str] = []
    elif isinstance(containerfile, str | os.PathLike):
        containerfiles = [os.fspath(containerfile)]
    else:
        containerfiles = [os.fspath(c) for c in containerfile]
    for cf in containerfiles:
        if not os.path.isabs(cf):
            cf = os.path.join(context, cf)
        found = None
        for suffix in (".containerignore", ".dockerignore"):  # the later one wins
            if os.path.exists(cf + suffix):
                found = cf + suffix
        if found is not None:
            return found
    for name in (".containerignore", ".dockerignore"):
        candidate = os.path.join(context, name)
        if os.path.exists(candidate):
            return candidate
    return None


def load_ignore(
    context_dir: str | os.PathLike[str],
    containerfile: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    *,
    ignorefile: str | os.PathLike[str] | None = None,
) -> Ignore:
    """The rules of a build context: `ignorefile` (`--ignorefile`) when given, else the file
    `find_ignore_file` picks; an empty `Ignore` when there is none."""
    path = os.fspath(ignorefile) if ignorefile is not None else None
    if path is None:
        path = find_ignore_file(context_dir, containerfile)
        if path is None:
            return Ignore()
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except OSError as e:
        raise from_oserror(f"reading ignore file {path}", e) from None
    return parse_ignore(text, path=path)


def walk_context(
    context_dir: str | os.PathLike[str], ignore: Ignore, *, top: str = ""
) -> Iterator[str]:
    """The paths (relative to `context_dir`, `/`-separated) of what COPY/ADD take from the
    directory `top` of the context (default: all of it), parents before children, names in
    byte order, as buildah's copier walks: symbolic links are not followed; an excluded
    entry is not yielded; an excluded directory is skipped with all it holds unless
    `ignore.descend` says an exception may re-include something below it.  Parents that are
    not yielded (excluded directories walked for an exception) are for the copier to create.

    `top` itself is not yielded nor checked: `Ignore.excluded` decides on a named source."""
    root = os.fspath(context_dir)
    start = _relative(top) if top else "."
    if start == ".":
        start = ""
    state = [False] * len(ignore.patterns)
    if start and ignore:
        parts = start.split("/")
        for i in range(len(parts)):
            state = _advance(ignore, state, "/".join(parts[: i + 1]))
    yield from _walk(root, start, ignore, state)


def _walk(root: str, rel_dir: str, ignore: Ignore, state: list[bool]) -> Iterator[str]:
    full = os.path.join(root, rel_dir) if rel_dir else root
    try:
        with os.scandir(full) as it:
            entries = sorted(it, key=lambda e: os.fsencode(e.name))
    except OSError as e:
        raise from_oserror(f"reading build context directory {full}", e) from None
    for entry in entries:
        rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
        try:
            is_dir = stat.S_ISDIR(entry.stat(follow_symlinks=False).st_mode)
        except OSError as e:
            raise from_oserror(f"reading build context entry {entry.path}", e) from None
        if not ignore:
            yield rel
            if is_dir:
                yield from _walk(root, rel, ignore, state)
            continue
        child = _advance(ignore, state, rel)
        if not _verdict(ignore, child):
            yield rel
            if is_dir:
                yield from _walk(root, rel, ignore, child)
        elif is_dir and ignore.descend(rel):
            yield from _walk(root, rel, ignore, child)


def _advance(ignore: Ignore, parent: list[bool], rel: str) -> list[bool]:
    """Per pattern: whether it matched `rel` or one of its parents (`parent` holds that for
    the parent directory), as moby's `MatchesUsingParentResults` keeps it."""
    return [
        done or bool(p.regex.fullmatch(rel))
        for done, p in zip(parent, ignore.patterns, strict=True)
    ]


def _verdict(ignore: Ignore, state: list[bool]) -> bool:
    matched = False
    for hit, pattern in zip(state, ignore.patterns, strict=True):
        if hit and pattern.exception == matched:
            matched = not pattern.exception
    return matched


def _relative(rel_path: str) -> str:
    """A context-relative path as buildah compares it: cleaned, without a leading `/`."""
    rel = clean("/" + rel_path).lstrip("/")
    return rel or "."
