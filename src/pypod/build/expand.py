"""Docker's word expansion for Containerfile instructions (`$var`, `${var}`, quotes, escapes).

The rules are those of the shell lexer buildah 1.28 uses (imagebuilder's copy of moby's
`ShellLex`): `$name`, `${name}`, `${name:-word}` (word when unset or empty) and
`${name:+word}` (word when set and not empty); `${name-word}` / `${name+word}` do not
exist there and are refused ("missing ':' in substitution").  Unset variables expand to the
empty string.  Outside quotes the escape character (`\\` or the `escape` directive's
backtick) makes the next character literal; inside double quotes it escapes only `"`, `$`
and itself and is kept otherwise; single quotes keep everything literally.

Errors are `InvalidArgument` with buildah's words ("Missing ':' in substitution: ${a-b}",
"unexpected end of statement while looking for matching double-quote"); the caller adds the
file, line and instruction.

`process_word` gives one string (quotes removed, spaces kept); `process_words` also splits
it into words on unquoted white space, a split done after expansion, like moby's
`ProcessWords`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence

from pypod.errors import InvalidArgument

#: instructions whose arguments go through `process_word` (buildah/imagebuilder's
#: `replaceEnvAllowed`); their `--flag` values are expanded too, as are those of RUN and FROM
EXPANDING_INSTRUCTIONS = frozenset(
    {"ADD", "ARG", "COPY", "ENV", "EXPOSE", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}
)
#: of those, the ones whose expanded text is also split into words (`EXPOSE $PORTS`)
WORD_SPLITTING_INSTRUCTIONS = frozenset({"EXPOSE"})
#: FROM is expanded with the ARGs declared before the first FROM only (and build args)
#: ONBUILD, RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK and MAINTAINER are never expanded here


def is_space(ch: str) -> bool:
    """Go's `unicode.IsSpace` (Python's `isspace` also counts the \\x1c-\\x1f separators)."""
    return ch.isspace() and ch not in "\x1c\x1d\x1e\x1f"


def _is_letter(ch: str) -> bool:
    return ch.isalpha()


def _is_digit(ch: str) -> bool:
    return unicodedata.category(ch) == "Nd"


class _Words:
    """Collects words as moby's `wordsStruct` does: expanded text splits, quoted text not."""

    __slots__ = ("in_word", "word", "words")

    def __init__(self) -> None:
        self.word = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if is_space(ch):
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        else:
            self.add_raw(ch)

    def add_raw(self, text: str) -> None:
        self.word += text
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def finish(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


class _Lexer:
    __slots__ = ("env", "escape", "pos", "text")

    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        if self.pos >= len(self.text):
            return ""
        ch = self.text[self.pos]
        self.pos += 1
        return ch

    def stop_on(self, stop: str) -> tuple[str, list[str]]:
        """Read up to `stop` (consumed) or the end; `stop` "" means the end only."""
        result: list[str] = []
        words = _Words()
        while self.pos < len(self.text):
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return "".join(result), words.finish()
            if ch == "'":
                text = self.single_quote()
                result.append(text)
                words.add_raw(text)
            elif ch == '"':
                text = self.double_quote()
                result.append(text)
                words.add_raw(text)
            elif ch == "$":
                text = self.dollar()
                result.append(text)
                words.add_string(text)
            else:
                ch = self.next()
                if ch == self.escape:
                    ch = self.next()
                    if not ch:  # an escape at the very end is dropped
                        break
                    words.add_raw(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop:
            raise ValueError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.finish()

    def single_quote(self) -> str:
        self.next()
        result: list[str] = []
        while True:
            ch = self.next()
            if not ch:
                raise ValueError(
                    "unexpected end of statement while looking for matching single-quote"
                )
            if ch == "'":
                return "".join(result)
            result.append(ch)

    def double_quote(self) -> str:
        self.next()
        result: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise ValueError(
                    "unexpected end of statement while looking for matching double-quote"
                )
            if ch == '"':
                self.next()
                return "".join(result)
            if ch == "$":
                result.append(self.dollar())
                continue
            ch = self.next()
            if ch == self.escape:
                following = self.peek()
                if not following:
                    continue  # an escape at the end of the word is ignored
                if following in ('"', "$", self.escape):
                    ch = self.next()
            result.append(ch)

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            return self.env.get(name, "") if name else "$"
        self.next()
        name = self.name()
        ch = self.peek()
        if ch == "}":
            self.next()
            return self.env.get(name, "")
        if ch == ":":
            self.next()
            modifier = self.next()
            word, _ = self.stop_on("}")
            value = self.env.get(name, "")
            if modifier == "+":
                return word if value else value
            if modifier == "-":
                return value or word
            raise ValueError(f"Unsupported modifier ({modifier}) in substitution: {self.text}")
        raise ValueError(f"Missing ':' in substitution: {self.text}")

    def name(self) -> str:
        """A name of letters, digits and `_`; a leading digit is a one-character name."""
        start = self.pos
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if self.pos == start and _is_digit(ch):
                self.pos += 1
                return ch
            if not (_is_letter(ch) or _is_digit(ch) or ch == "_"):
                break
            self.pos += 1
        return self.text[start : self.pos]


def _process(word: str, env: Mapping[str, str], escape: str) -> tuple[str, list[str]]:
    if escape not in ("\\", "`"):
        raise InvalidArgument(f"invalid escape token {escape!r}: use \\ or `")
    lexer = _Lexer(word, env, escape)
    try:
        return lexer.stop_on("")
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None


def process_word(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Expand variables and remove quotes and escapes in `word` (moby's `ProcessWord`)."""
    return _process(word, env, escape)[0]


def process_words(word: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """`process_word`, then split on unquoted white space (moby's `ProcessWords`).

    Text that came from a variable splits too; quoted text never does.
    """
    return _process(word, env, escape)[1]


def expand_arguments(
    command: str, args: Sequence[str], env: Mapping[str, str], escape: str = "\\"
) -> list[str]:
    """An instruction's arguments after expansion, as buildah dispatches them.

    Every argument of one instruction sees the same variables, those set before it:
    `ENV A=1 B=$A` gives B the previous value of A, not 1.  EXPOSE's arguments are also
    split into words; instructions that do not expand get their arguments back unchanged.
    """
    command = command.upper()
    if command not in EXPANDING_INSTRUCTIONS:
        return list(args)
    if command in WORD_SPLITTING_INSTRUCTIONS:
        return [word for arg in args for word in process_words(arg, env, escape)]
    return [process_word(arg, env, escape) for arg in args]
