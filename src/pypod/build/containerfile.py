"""Parse a Containerfile / Dockerfile into records, as buildah (BuildKit's parser) reads it.

`parse(text, path)` gives a `Containerfile`: the parser directives (`# escape=`, `# syntax=`),
the ARGs before the first FROM and the stages, each a list of `Instruction`s that keep their
1-based line numbers.  Nothing is expanded here: `$var` stays in the arguments (quotes too, for
ENV/LABEL/ARG) and the builder runs them through `pypod.build.expand` with the variables of the
moment.  Errors are `ContainerfileError("Containerfile:12: unknown instruction: FOO")`.

The reading, line by line:
- directives come first: `# name=value` lines before anything else (a blank line, another
  comment or an instruction ends them); `escape` must be `\\` or a backtick;
- the escape character at the end of a line continues the instruction on the next one;
  comment lines and empty lines inside a continuation are skipped;
- a line's first word is the instruction (any case), then leading `--name=value` flags,
  then the arguments, split the way the instruction wants (JSON array or shell form for
  RUN/CMD/ENTRYPOINT/SHELL/HEALTHCHECK CMD; `key=value` words or legacy `key value` for
  ENV/LABEL; words for FROM/EXPOSE; JSON or words for ADD/COPY/VOLUME; the whole rest for
  MAINTAINER/USER/WORKDIR/STOPSIGNAL);
- RUN, COPY and ADD in shell form may name heredocs (`<<EOF`, `<<-EOF`, `<<"EOF"`): their
  bodies follow the instruction's line, one after another.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from pypod.build.expand import is_space
from pypod.errors import InvalidArgument
from pypod.image.gotime import parse_go_duration
from pypod.record import record, replace

INSTRUCTIONS = frozenset(
    {
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    }
)
#: instructions whose shell form may carry heredocs
HEREDOC_INSTRUCTIONS = frozenset({"ADD", "COPY", "RUN"})
#: HEALTHCHECK's options, with their Go-duration (or integer) values
HEALTHCHECK_FLAGS = frozenset({"interval", "timeout", "start-period", "retries"})

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_KNOWN_DIRECTIVES = frozenset({"escape", "syntax", "check"})
_HEREDOC = re.compile(r"^(\d*)<<(-?)(.+)$", re.DOTALL)
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*$")
_WS_SPLIT = re.compile(r"[\t\v\f\r ]+")


class ContainerfileError(InvalidArgument):
    """A Containerfile that cannot be read; says which file and line."""

    def __init__(self, path: str, line: int, message: str) -> None:
        self.path = path
        self.line = line
        self.reason = message
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")


@record
class Flag:
    """One `--name=value` (value None for a bare `--name`) before an instruction's arguments."""

    name: str
    value: str | None


@record
class Heredoc:
    """A here-document named on an instruction's line (`<<EOF`, `<<-EOF`, `<<"EOF"`)."""

    name: str
    #: the body, every line ending in "\n"; leading tabs already removed when `chomp`
    content: str
    #: False when the delimiter was quoted: the body is used as written, no `$` expansion
    expand: bool
    #: `<<-`: leading tabs stripped from the body lines and from the delimiter line
    chomp: bool
    #: the file descriptor written before `<<` (`3<<EOF`), 0 when none
    fd: int = 0


@record
class Instruction:
    """One instruction as written (before expansion) and where it was written."""

    #: upper case: "RUN", "COPY"...
    command: str
    #: the arguments, split as the instruction wants (see the module docstring); for ENV and
    #: LABEL alternating names and values; for ARG the `name` or `name=value` words
    args: tuple[str, ...]
    flags: tuple[Flag, ...] = ()
    #: exec form: the arguments came from a JSON array
    json: bool = False
    heredocs: tuple[Heredoc, ...] = ()
    #: the instruction an ONBUILD carries
    trigger: Instruction | None = None
    #: the instruction's text on one line (continuations joined), as buildah shows it
    original: str = ""
    path: str = "Containerfile"
    #: first and last 1-based line of the instruction (heredoc bodies included)
    line: int = 0
    end_line: int = 0

    def flag_values(self, name: str) -> list[str]:
        """The values of every `--name=...` flag, in order (`--mount` may come several times)."""
        return [f.value for f in self.flags if f.name == name and f.value is not None]

    def flag_value(self, name: str) -> str | None:
        """The last `--name=...` value, or None."""
        values = self.flag_values(name)
        return values[-1] if values else None

    def pairs(self) -> list[tuple[str, str]]:
        """ENV / LABEL: the (name, value) pairs (values still unexpanded)."""
        return list(zip(self.args[0::2], self.args[1::2], strict=True))

    def arg_pairs(self) -> list[tuple[str, str | None]]:
        """ARG: (name, default) for each word; default None for a bare `ARG name`."""
        out: list[tuple[str, str | None]] = []
        for word in self.args:
            name, sep, value = word.partition("=")
            out.append((name, value if sep else None))
        return out

    def error(self, message: str) -> ContainerfileError:
        """An error about this instruction, naming its file and line."""
        return ContainerfileError(self.path, self.line, message)


@record
class Stage:
    """`FROM base [AS name]` and the instructions up to the next FROM."""

    index: int
    #: the stage's name in lower case (`AS Build` -> "build"), or None
    name: str | None
    #: the image, unexpanded (`$BASE`, `scratch`, another stage's name)
    base: str
    from_instruction: Instruction
    instructions: tuple[Instruction, ...]

    @property
    def platform(self) -> str | None:
        return self.from_instruction.flag_value("platform")


@record
class Containerfile:
    path: str
    #: the `escape` directive's character: "\\" or "`"
    escape: str
    #: the `syntax` directive's value, or None (recorded, not acted on)
    syntax: str | None
    #: every directive seen (lower-case names)
    directives: tuple[tuple[str, str], ...]
    #: ARG instructions before the first FROM; visible to FROM lines only
    global_args: tuple[Instruction, ...]
    stages: tuple[Stage, ...]

    def stage(self, name_or_index: str) -> Stage:
        """A stage by name (any case) or number, as `--target` and `COPY --from` name them."""
        wanted = name_or_index.lower()
        for stage in self.stages:
            if stage.name == wanted:
                return stage
        if name_or_index.isdigit() and int(name_or_index) < len(self.stages):
            return self.stages[int(name_or_index)]
        raise InvalidArgument(
            f"{self.path}: no stage named {name_or_index!r}: "
            f"stages are {', '.join(s.name or str(s.index) for s in self.stages)}"
        )


# --- the reading -------------------------------------------------------------------------


def parse(text: str, path: str = "Containerfile") -> Containerfile:
    """Read a Containerfile's text; `path` names it in errors."""
    escape, syntax, directives, instructions = _read(text, path)
    return _assemble(path, escape, syntax, directives, instructions)


def parse_instructions(text: str, path: str = "Containerfile") -> list[Instruction]:
    """Every instruction in order, without grouping them into stages (nor requiring a FROM)."""
    return _read(text, path)[3]


def _is_comment(line: str) -> bool:
    return line.lstrip(" \t").startswith("#")


def _trim_continuation(line: str, escape: str) -> tuple[str, bool]:
    """Strip the escape character (and trailing blanks) ending a line; True when it ends."""
    stripped = line.rstrip(" \t")
    if stripped.endswith(escape):
        return stripped[: -len(escape)], False
    return line, True


def _read(
    text: str, path: str
) -> tuple[str, str | None, tuple[tuple[str, str], ...], list[Instruction]]:
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    escape = "\\"
    syntax: str | None = None
    directives: list[tuple[str, str]] = []
    seen: set[str] = set()
    directives_done = False
    instructions: list[Instruction] = []
    i = 0
    while i < len(lines):
        raw = lines[i]
        i += 1
        start = i
        if not directives_done:
            match = _DIRECTIVE.match(raw.lstrip(" \t"))
            if match is None:
                directives_done = True
            else:
                name, value = match.group(1).lower(), match.group(2)
                if name in _KNOWN_DIRECTIVES:
                    if name in seen:
                        raise ContainerfileError(
                            path, start, f"only one {name} parser directive can be used"
                        )
                    seen.add(name)
                    directives.append((name, value))
                    if name == "escape":
                        if value not in ("\\", "`"):
                            raise ContainerfileError(
                                path,
                                start,
                                f"invalid ESCAPE '{value}'. Must be ` or \\",
                            )
                        escape = value
                    elif name == "syntax":
                        syntax = value
                continue
        if _is_comment(raw):
            continue
        line, complete = _trim_continuation(raw.lstrip(" \t"), escape)
        if complete and not line.strip():
            continue
        while not complete and i < len(lines):
            raw = lines[i]
            i += 1
            if _is_comment(raw) or not raw.strip(" \t"):
                continue  # comments and empty lines inside a continuation are skipped
            more, complete = _trim_continuation(raw, escape)
            line += more
        instruction = _instruction(line, path, start, i, escape)
        if instruction.command in HEREDOC_INSTRUCTIONS and not instruction.json and "<<" in line:
            docs: list[Heredoc] = []
            for name, chomp, quoted, fd in _heredoc_names(line):
                body: list[str] = []
                while True:
                    if i >= len(lines):
                        raise ContainerfileError(
                            path, start, f"unterminated heredoc: no line {name!r} ends it"
                        )
                    raw = lines[i]
                    i += 1
                    candidate = raw.lstrip("\t") if chomp else raw
                    if candidate == name:
                        break
                    body.append(candidate + "\n")
                docs.append(
                    Heredoc(name=name, content="".join(body), expand=not quoted, chomp=chomp, fd=fd)
                )
            instruction = replace(instruction, heredocs=tuple(docs), end_line=i)
        instructions.append(instruction)
    return escape, syntax, tuple(directives), instructions


def _heredoc_names(line: str) -> Iterator[tuple[str, bool, bool, int]]:
    """(name, chomp, quoted, fd) of each `<<NAME` word of a line, in order."""
    for word in _raw_words(line):
        match = _HEREDOC.match(word)
        if match is None:
            continue
        fd, chomp, rest = int(match.group(1) or 0), match.group(2) == "-", match.group(3)
        name, quoted = _unquote(rest)
        if name and not any(is_space(c) for c in name):
            yield name, chomp, quoted, fd


def _unquote(word: str) -> tuple[str, bool]:
    """Remove shell quotes and escapes from a heredoc delimiter; True when any were there."""
    out: list[str] = []
    quoted = False
    quote = ""
    i = 0
    while i < len(word):
        ch = word[i]
        i += 1
        if quote:
            if ch == quote:
                quote = ""
            elif ch == "\\" and quote == '"' and i < len(word):
                out.append(word[i])
                i += 1
            else:
                out.append(ch)
        elif ch in ("'", '"'):
            quote = ch
            quoted = True
        elif ch == "\\" and i < len(word):
            quoted = True
            out.append(word[i])
            i += 1
        else:
            out.append(ch)
    return "".join(out), quoted


def _raw_words(rest: str, escape: str = "\\") -> list[str]:
    """Split on white space outside quotes, keeping quotes and escapes (BuildKit's `parseWords`)."""
    words: list[str] = []
    word: list[str] = []
    blank_ok = False
    quote = ""
    i = 0
    n = len(rest)
    in_word = False
    while i < n:
        ch = rest[i]
        i += 1
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if i == n:
                    continue
                word.append(ch)
                ch = rest[i]
                i += 1
            word.append(ch)
            continue
        if is_space(ch):
            if in_word and (blank_ok or word):
                words.append("".join(word))
            word, blank_ok, in_word = [], False, False
            continue
        in_word = True
        if ch in ("'", '"'):
            quote = ch
            blank_ok = True
        elif ch == escape:
            if i == n:
                continue  # an escape at the end of the line is dropped
            word.append(ch)
            ch = rest[i]
            i += 1
        word.append(ch)
    if in_word and (blank_ok or word):
        words.append("".join(word))
    return words


def _extract_flags(rest: str) -> tuple[str, list[str]]:
    """Leading `--flag` words (quotes removed) and the rest of the line (`--` ends them)."""
    flags: list[str] = []
    i = 0
    n = len(rest)
    while True:
        while i < n and is_space(rest[i]):
            i += 1
        if not rest.startswith("--", i):
            return rest[i:], flags
        word: list[str] = []
        quote = ""
        blank_ok = False
        while i < n:
            ch = rest[i]
            if not quote and is_space(ch):
                break
            i += 1
            if quote:
                if ch == quote:
                    quote = ""
                    continue
            elif ch in ("'", '"'):
                quote = ch
                blank_ok = True
                continue
            if ch == "\\":
                if i == n:
                    continue
                ch = rest[i]
                i += 1
            word.append(ch)
        text = "".join(word)
        if text == "--":
            return rest[i:].lstrip(), flags
        if text or blank_ok:
            flags.append(text)


def _flag(text: str) -> Flag:
    name, sep, value = text[2:].partition("=")
    return Flag(name=name, value=value if sep else None)


def _json_array(rest: str) -> list[str] | None:
    """The strings of a JSON array, or None when `rest` is not a JSON array (shell form)."""
    rest = rest.lstrip()
    if not rest.startswith("["):
        return None

    def refuse(value: str) -> object:
        raise ValueError(value)  # NaN and Infinity are not JSON for Go either

    try:  # like Go's json.Decoder, buildah reads the first value and ignores what follows
        value, _ = json.JSONDecoder(parse_constant=refuse).raw_decode(rest)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise ValueError("when using JSON array syntax, arrays must be comprised of strings only")
    return value


def _split_command(line: str) -> tuple[str, str]:
    parts = _WS_SPLIT.split(line.strip(" \t\v\f\r\n"), maxsplit=1)
    return parts[0], parts[1] if len(parts) > 1 else ""


def _instruction(line: str, path: str, start: int, end: int, escape: str) -> Instruction:
    word, rest = _split_command(line)
    command = word.upper()
    if command not in INSTRUCTIONS:
        raise ContainerfileError(path, start, f"unknown instruction: {command}")
    original = line.strip()
    try:
        rest, flag_words = _extract_flags(rest)
        flags = tuple(_flag(f) for f in flag_words)
        args, is_json, trigger = _arguments(command, rest, escape, path, start, end)
        ins = Instruction(
            command=command,
            args=tuple(args),
            flags=flags,
            json=is_json,
            trigger=trigger,
            original=original,
            path=path,
            line=start,
            end_line=end,
        )
        _check(ins)
    except ValueError as exc:
        raise ContainerfileError(path, start, str(exc)) from None
    return ins


def _arguments(
    command: str, rest: str, escape: str, path: str, start: int, end: int
) -> tuple[list[str], bool, Instruction | None]:
    if command in ("RUN", "CMD", "ENTRYPOINT", "SHELL"):
        if not rest.strip():
            return [], False, None
        array = _json_array(rest)
        return (array, True, None) if array is not None else ([rest.rstrip()], False, None)
    if command in ("ADD", "COPY", "VOLUME"):
        array = _json_array(rest)
        return (array, True, None) if array is not None else (_split_ws(rest), False, None)
    if command in ("FROM", "EXPOSE"):
        return _split_ws(rest), False, None
    if command in ("MAINTAINER", "USER", "WORKDIR", "STOPSIGNAL"):
        rest = rest.strip()
        return ([rest] if rest else []), False, None
    if command in ("ENV", "LABEL"):
        return _name_values(command, rest, escape), False, None
    if command == "ARG":
        return _raw_words(rest, escape), False, None
    if command == "HEALTHCHECK":
        return _healthcheck(rest)
    # ONBUILD
    if not rest.strip():
        return [], False, None
    trigger = _instruction(rest, path, start, end, escape)
    return [rest.strip()], False, trigger


def _split_ws(rest: str) -> list[str]:
    rest = rest.strip(" \t\v\f\r\n")
    return _WS_SPLIT.split(rest) if rest else []


def _name_values(command: str, rest: str, escape: str) -> list[str]:
    words = _raw_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:  # legacy `ENV name value...`: the value is the rest of the line
        parts = _WS_SPLIT.split(rest.strip(" \t\v\f\r\n"), maxsplit=1)
        if len(parts) < 2:
            raise ValueError(f"{command} must have two arguments")
        return [parts[0], parts[1]]
    out: list[str] = []
    for word in words:
        if "=" not in word:
            raise ValueError(
                f"Syntax error - can't find = in {json.dumps(word)}. "
                "Must be of the form: name=value"
            )
        name, _, value = word.partition("=")
        out += [name, value]
    return out


def _healthcheck(rest: str) -> tuple[list[str], bool, None]:
    rest = rest.strip(" \t\v\f\r\n")
    if not rest:
        return [], False, None
    parts = _WS_SPLIT.split(rest, maxsplit=1)
    kind, cmd = parts[0], parts[1] if len(parts) > 1 else ""
    if not cmd.strip():
        return [kind], False, None
    array = _json_array(cmd)
    if array is not None:
        return [kind, *array], True, None
    return [kind, cmd.rstrip()], False, None


# --- checks, with buildah's words ---------------------------------------------------------


def _check(ins: Instruction) -> None:
    command, args = ins.command, ins.args
    _check_flags(ins)
    needs_one = ("ENV", "LABEL", "EXPOSE", "VOLUME", "ONBUILD", "ARG", "HEALTHCHECK")
    if command in needs_one and not args:
        raise ValueError(f"{command} requires at least one argument")
    if command in ("MAINTAINER", "USER", "WORKDIR", "STOPSIGNAL") and len(args) != 1:
        raise ValueError(f"{command} requires exactly one argument")
    if command in ("ADD", "COPY") and len(args) < 2:
        raise ValueError(f"{command} requires at least two arguments")
    if command == "RUN" and not args:
        raise ValueError("RUN requires at least one argument")
    if command == "SHELL" and not ins.json:
        raise ValueError("SHELL requires the arguments to be in JSON form")
    if command == "SHELL" and not args:
        raise ValueError("SHELL requires at least one argument")
    if command == "VOLUME" and any(not a.strip() for a in args):
        raise ValueError("Volume specified can not be an empty string")
    if command in ("ENV", "LABEL") and any(not name for name in args[0::2]):
        raise ValueError(f"{command} names can not be blank")
    if command == "FROM":
        ok = len(args) == 1 or (len(args) == 3 and args[1].lower() == "as" and args[2])
        if not ok:
            raise ValueError(
                "FROM requires either one argument, or three: FROM <source> [as <name>]"
            )
        if len(args) == 3 and not _STAGE_NAME.match(args[2].lower()):
            raise ValueError(
                f"invalid name for build stage: {json.dumps(args[2])}, "
                "name can't start with a number or contain symbols"
            )
    if command == "ONBUILD" and ins.trigger is not None:
        trigger = ins.trigger.command
        if trigger == "ONBUILD":
            raise ValueError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("MAINTAINER", "FROM"):
            raise ValueError(f"{trigger} isn't allowed as an ONBUILD trigger")
    if command == "HEALTHCHECK":
        _check_healthcheck(ins)


_FLAG_ERRORS = {
    "FROM": "FROM only supports the --platform flag",
    "COPY": "COPY only supports the --chmod=<permissions> --chown=<uid:gid> "
    "and the --from=<image|stage> flags",
    "ADD": "ADD only supports the --chmod=<permissions> and the --chown=<uid:gid> flags",
    "RUN": "RUN only supports the --mount and --network flag",
}
#: flags taking a value (`--name=value`) per instruction; `--link` is accepted (and ignored
#: by the builder: layers are always independent here) as newer buildah does
_VALUE_FLAGS = {
    "FROM": {"platform"},
    "COPY": {"chmod", "chown", "from"},
    "ADD": {"chmod", "chown"},
    "RUN": {"mount", "network"},
    "HEALTHCHECK": set(HEALTHCHECK_FLAGS),
}
_BOOL_FLAGS = {"COPY": {"link"}, "ADD": {"link"}}


def _check_flags(ins: Instruction) -> None:
    allowed = _VALUE_FLAGS.get(ins.command)
    for flag in ins.flags:
        if allowed is None:
            raise ValueError(f"unknown flag: --{flag.name}: {ins.command} takes no flags")
        if flag.name in _BOOL_FLAGS.get(ins.command, set()):
            if flag.value not in (None, "true", "false"):
                raise ValueError(f"expecting boolean value for flag {flag.name}, not: {flag.value}")
            continue
        if flag.name not in allowed or flag.value is None:
            if ins.command == "HEALTHCHECK":
                raise ValueError(f"flag provided but not defined: -{flag.name}")
            raise ValueError(_FLAG_ERRORS[ins.command])
        if ins.command in ("COPY", "ADD") and flag.name == "chmod":
            _check_chmod(flag.value)


def _check_chmod(value: str) -> None:
    if "$" in value:
        return  # expanded later; checked by the builder
    if not re.fullmatch(r"[0-7]{1,4}", value):
        raise ValueError(f"Error parsing chmod {value}: use an octal mode like 0755")


def _check_healthcheck(ins: Instruction) -> None:
    kind = ins.args[0].upper()
    if kind == "NONE":
        if len(ins.args) > 1:
            raise ValueError("HEALTHCHECK NONE takes no arguments")
        return
    if kind != "CMD":
        raise ValueError(f"Unknown type {json.dumps(ins.args[0].upper())} in HEALTHCHECK (try CMD)")
    if len(ins.args) < 2:
        raise ValueError("Missing command after HEALTHCHECK CMD")
    for flag in ins.flags:
        assert flag.value is not None
        if flag.name == "retries":
            try:
                retries = int(flag.value)
            except ValueError:
                raise ValueError(
                    f'strconv.ParseInt: parsing "{flag.value}": invalid syntax'
                ) from None
            if retries < 1:
                raise ValueError(f"--retries must be at least 1 (not {retries})")
        else:
            parse_duration(flag.value, flag.name)


def parse_duration(value: str, flag: str = "interval") -> int:
    """A HEALTHCHECK option's Go duration ("30s", "1m30s", "1.5h", "0") in nanoseconds.

    An empty value is 0 (the default); any other value must be positive, as buildah wants.
    """
    if value == "":
        return 0
    try:
        nanos = parse_go_duration(value)
    except InvalidArgument:
        raise ValueError(f'time: invalid duration "{value}" (for --{flag})') from None
    if nanos <= 0:
        raise ValueError(f'Interval "{flag}" must be positive')
    return nanos


# --- stages ------------------------------------------------------------------------------


def _assemble(
    path: str,
    escape: str,
    syntax: str | None,
    directives: tuple[tuple[str, str], ...],
    instructions: list[Instruction],
) -> Containerfile:
    if not instructions:
        raise ContainerfileError(path, 0, "file with no instructions")
    global_args: list[Instruction] = []
    stages: list[Stage] = []
    current: Instruction | None = None
    body: list[Instruction] = []
    names: set[str] = set()

    def close() -> None:
        if current is None:
            return
        name = current.args[2].lower() if len(current.args) == 3 else None
        stages.append(
            Stage(
                index=len(stages),
                name=name,
                base=current.args[0],
                from_instruction=current,
                instructions=tuple(body),
            )
        )

    for ins in instructions:
        if ins.command == "FROM":
            close()
            current, body = ins, []
            if len(ins.args) == 3:
                name = ins.args[2].lower()
                if name in names:
                    raise ins.error(f"duplicate stage name {json.dumps(name)}")
                names.add(name)
        elif current is None:
            if ins.command != "ARG":
                raise ins.error(
                    f"{ins.command} before the first FROM: no build stage in current context; "
                    "only ARG may come before FROM"
                )
            global_args.append(ins)
        else:
            body.append(ins)
    close()
    if not stages:
        raise ContainerfileError(path, 0, "no stages to build: the file has no FROM instruction")
    return Containerfile(
        path=path,
        escape=escape,
        syntax=syntax,
        directives=directives,
        global_args=tuple(global_args),
        stages=tuple(stages),
    )
