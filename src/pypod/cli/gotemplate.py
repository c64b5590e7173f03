"""A small subset of Go's text/template, for `--format '{{.Repository}}:{{.Tag}}'`.

Supported: text; `{{.}}`, `{{.Field}}`, `{{.A.B}}`; functions with arguments and pipes
(`{{json .}}`, `{{.Names | join ","}}`, `{{upper .Tag}}`); `{{range PIPELINE}}...{{else}}...
{{end}}` (the dot becomes each element); `{{if PIPELINE}}...{{else}}...{{end}}`; `{{- ` and
` -}}` trimming; string ("...", `...`), number, true/false and nil literals.

Values print as Go's fmt `%v` does: true/false, `[a b]` for lists, `map[k:v]` for maps,
`<no value>` for a missing map key.  A `Struct` (a dict whose keys are a Go struct's fields)
raises TemplateError for an unknown field, as Go does: "can't evaluate field X in type T".

Functions: the ones podman registers (json, lower, upper, title, join, split, trim, truncate,
pad) and Go's builtins used in practice (len, index, print, printf, eq, ne, not, and, or).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pypod.errors import InvalidArgument
from pypod.record import record

__all__ = ["Struct", "Template", "TemplateError", "format_value", "parse", "render"]


class TemplateError(InvalidArgument):
    pass


class Struct(dict[str, Any]):
    """A Go struct as a dict: unknown fields are an error, not `<no value>`."""

    type_name = "struct"


@record(kw_only=False)
class _Text:
    text: str


@record(kw_only=False)
class _Field:
    path: tuple[str, ...]  # () is the dot itself


@record(kw_only=False)
class _Literal:
    value: Any


@record(kw_only=False)
class _Call:
    name: str
    args: tuple[Any, ...]  # _Field | _Literal | _Pipeline


@record(kw_only=False)
class _Pipeline:
    commands: tuple[Any, ...]  # _Call | _Field | _Literal; each gets the previous as last arg


@record(kw_only=False)
class _Action:
    pipeline: _Pipeline


@record(kw_only=False)
class _Block:
    kind: str  # "range" | "if"
    pipeline: _Pipeline
    body: tuple[Any, ...]
    orelse: tuple[Any, ...] = ()


_MISSING = object()


def _go_json(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def format_value(value: Any) -> str:
    """A value as Go's fmt prints it with %v."""
    if value is _MISSING:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, str | int):
        return str(value)
    if isinstance(value, Mapping):
        inner = " ".join(f"{format_value(k)}:{format_value(value[k])}" for k in sorted(value))
        return f"map[{inner}]"
    if isinstance(value, Sequence):
        return "[" + " ".join(format_value(v) for v in value) + "]"
    return str(value)


def _truth(value: Any) -> bool:
    if value is _MISSING or value is None:
        return False
    if isinstance(value, bool | int | float | str | Mapping | Sequence):
        return bool(value)
    return True


def _text(value: Any) -> str:
    return value if isinstance(value, str) else format_value(value)


def _printf(fmt: str, *args: Any) -> str:
    out: list[str] = []
    i = 0
    it = iter(args)
    while i < len(fmt):
        c = fmt[i]
        if c == "%" and i + 1 < len(fmt):
            verb = fmt[i + 1]
            i += 2
            if verb == "%":
                out.append("%")
                continue
            arg = next(it, _MISSING)
            if verb == "q":
                out.append(json.dumps(_text(arg)))
            elif verb == "d" and isinstance(arg, int | float):
                out.append(str(int(arg)))
            else:
                out.append(_text(arg))
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            raise TemplateError(f"error calling index: cannot index with {key!r}") from None
    return value


def _pad(value: Any, left: int, right: int) -> str:
    return " " * left + _text(value) + " " * right


def _truncate(value: Any, n: int) -> str:
    text = _text(value)
    return text[:n]


_FUNCS: dict[str, Callable[..., Any]] = {
    "json": _go_json,
    "lower": lambda v: _text(v).lower(),
    "upper": lambda v: _text(v).upper(),
    "title": lambda v: _text(v).title(),
    "join": lambda v, sep: sep.join(_text(x) for x in (v or [])),
    "split": lambda v, sep: _text(v).split(sep),
    "trim": lambda v: _text(v).strip(),
    "truncate": _truncate,
    "pad": _pad,
    "len": lambda v: len(v) if v is not None else 0,
    "index": _index,
    "print": lambda *a: "".join(_text(x) for x in a),
    "printf": _printf,
    "eq": lambda a, *b: any(a == x for x in b),
    "ne": lambda a, b: a != b,
    "not": lambda v: not _truth(v),
    "and": lambda *a: next((x for x in a if not _truth(x)), a[-1]),
    "or": lambda *a: next((x for x in a if _truth(x)), a[-1]),
}
#: how a function takes a piped value: podman's join is `join .X ","`, so `.X | join ","`
#: passes the pipe as the last argument in Go; these are the ones where that reads naturally
_PIPE_FIRST = {"join", "split", "truncate", "pad"}


# --- lexing -------------------------------------------------------------------------------
def _split_actions(text: str) -> list[tuple[str, str]]:
    """[(kind, content)] with kind "text" or "action"; trimming markers applied."""
    parts: list[tuple[str, str]] = []
    i = 0
    while True:
        start = text.find("{{", i)
        if start < 0:
            parts.append(("text", text[i:]))
            break
        parts.append(("text", text[i:start]))
        j = start + 2
        quote = ""
        while j < len(text):
            c = text[j]
            if quote:
                if c == "\\" and quote == '"':
                    j += 2
                    continue
                if c == quote:
                    quote = ""
            elif c in "\"`'":
                quote = c
            elif text.startswith("}}", j):
                break
            j += 1
        else:
            raise TemplateError(f"template: unclosed action at offset {start}")
        inner = text[start + 2 : j]
        if inner.startswith("- "):
            parts[-1] = ("text", parts[-1][1].rstrip())
            inner = inner[2:]
        trim_after = inner.endswith(" -")
        if trim_after:
            inner = inner[:-2]
        parts.append(("action", inner.strip()))
        i = j + 2
        if trim_after:
            while i < len(text) and text[i] in " \t\r\n":
                i += 1
    return parts


def _tokens(inner: str) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(inner):
        c = inner[i]
        if c in " \t\r\n":
            i += 1
        elif c in "()|":
            out.append(c)
            i += 1
        elif c == '"':
            j = i + 1
            while j < len(inner) and inner[j] != '"':
                j += 2 if inner[j] == "\\" else 1
            if j >= len(inner):
                raise TemplateError(f"template: unterminated quoted string in {{{{{inner}}}}}")
            out.append(inner[i : j + 1])
            i = j + 1
        elif c == "`":
            j = inner.find("`", i + 1)
            if j < 0:
                raise TemplateError(f"template: unterminated raw string in {{{{{inner}}}}}")
            out.append(inner[i : j + 1])
            i = j + 1
        else:
            j = i
            while j < len(inner) and inner[j] not in " \t\r\n()|":
                j += 1
            out.append(inner[i:j])
            i = j
    return out


def _operand(tok: str, inner: str) -> Any:
    if tok == ".":
        return _Field(())
    if tok.startswith("."):
        parts = tuple(tok[1:].split("."))
        if not all(p.isidentifier() for p in parts):
            raise TemplateError(f'template: bad field "{tok}" in {{{{{inner}}}}}')
        return _Field(parts)
    if tok.startswith('"'):
        try:
            return _Literal(json.loads(tok))
        except ValueError:
            raise TemplateError(f"template: bad string {tok}") from None
    if tok.startswith("`"):
        return _Literal(tok[1:-1])
    if tok in ("true", "false"):
        return _Literal(tok == "true")
    if tok == "nil":
        return _Literal(None)
    try:
        return _Literal(int(tok))
    except ValueError:
        pass
    try:
        return _Literal(float(tok))
    except ValueError:
        pass
    if tok in _FUNCS:
        return _Call(tok, ())
    raise TemplateError(f'template: function "{tok}" not defined')


def _pipeline(tokens: list[str], inner: str) -> _Pipeline:
    if not tokens:
        raise TemplateError(f"template: missing value in {{{{{inner}}}}}")
    commands: list[Any] = []
    current: list[Any] = []
    stack: list[tuple[list[Any], list[Any]]] = []

    def finish(cmd: list[Any]) -> Any:
        if not cmd:
            raise TemplateError(f"template: missing value in {{{{{inner}}}}}")
        head = cmd[0]
        if isinstance(head, _Call):
            return _Call(head.name, tuple(cmd[1:]))
        if len(cmd) > 1:
            raise TemplateError(f"template: can't give argument to non-function in {{{{{inner}}}}}")
        return head

    for tok in tokens:
        if tok == "|":
            commands.append(finish(current))
            current = []
        elif tok == "(":
            stack.append((commands, current))
            commands, current = [], []
        elif tok == ")":
            if not stack:
                raise TemplateError(f"template: unexpected ) in {{{{{inner}}}}}")
            commands.append(finish(current))
            sub = _Pipeline(tuple(commands))
            commands, current = stack.pop()
            current.append(sub)
        else:
            current.append(_operand(tok, inner))
    if stack:
        raise TemplateError(f"template: unclosed ( in {{{{{inner}}}}}")
    commands.append(finish(current))
    return _Pipeline(tuple(commands))


def _parse_nodes(parts: list[tuple[str, str]], pos: int, stop: tuple[str, ...]
                 ) -> tuple[list[Any], int, str]:  # fmt: skip
    nodes: list[Any] = []
    while pos < len(parts):
        kind, content = parts[pos]
        pos += 1
        if kind == "text":
            if content:
                nodes.append(_Text(content))
            continue
        if content.startswith("/*") and content.endswith("*/"):
            continue
        words = content.split(None, 1)
        word = words[0] if words else ""
        if word in stop:
            return nodes, pos, word
        if word in ("range", "if"):
            rest = _tokens(words[1] if len(words) > 1 else "")
            pipe = _pipeline(rest, content)
            body, pos, ended = _parse_nodes(parts, pos, ("end", "else"))
            orelse: list[Any] = []
            if ended == "else":
                orelse, pos, ended = _parse_nodes(parts, pos, ("end",))
            if ended != "end":
                raise TemplateError(f"template: unexpected EOF: {{{{{word}}}}} without {{{{end}}}}")
            nodes.append(_Block(word, pipe, tuple(body), tuple(orelse)))
            continue
        if word in ("end", "else"):
            raise TemplateError(f"template: unexpected {{{{{word}}}}}")
        nodes.append(_Action(_pipeline(_tokens(content), content)))
    return nodes, pos, ""


@record
class Template:
    name: str
    nodes: tuple[Any, ...]

    def execute(self, data: Any) -> str:
        out: list[str] = []
        self._run(self.nodes, data, out)
        return "".join(out)

    def _run(self, nodes: Sequence[Any], dot: Any, out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                out.append(node.text)
            elif isinstance(node, _Action):
                out.append(_text(self._eval_pipeline(node.pipeline, dot)))
            elif node.kind == "if":
                test = _truth(self._eval_pipeline(node.pipeline, dot))
                branch = node.body if test else node.orelse
                self._run(branch, dot, out)
            else:
                value = self._eval_pipeline(node.pipeline, dot)
                items: list[Any]
                if value is None or value is _MISSING:
                    items = []
                elif isinstance(value, Mapping):
                    items = [value[k] for k in sorted(value)]
                elif isinstance(value, Sequence) and not isinstance(value, str):
                    items = list(value)
                elif isinstance(value, int) and not isinstance(value, bool):
                    items = list(range(value))
                else:
                    raise TemplateError(
                        f"template: {self.name}: range can't iterate over {format_value(value)}"
                    )
                if not items:
                    self._run(node.orelse, dot, out)
                for item in items:
                    self._run(node.body, item, out)

    def _eval_pipeline(self, pipe: _Pipeline, dot: Any) -> Any:
        value: Any = _MISSING
        for i, cmd in enumerate(pipe.commands):
            piped = () if i == 0 else (value,)
            value = self._eval_command(cmd, dot, piped)
        return value

    def _eval_command(self, cmd: Any, dot: Any, piped: tuple[Any, ...]) -> Any:
        if isinstance(cmd, _Call):
            args = [self._eval_arg(a, dot) for a in cmd.args]
            if piped:
                if cmd.name in _PIPE_FIRST:
                    args.insert(0, piped[0])
                else:
                    args.append(piped[0])
            try:
                return _FUNCS[cmd.name](*args)
            except TypeError:
                raise TemplateError(
                    f"template: {self.name}: wrong number of args for {cmd.name}"
                ) from None
        if piped:
            raise TemplateError(f"template: {self.name}: can't give argument to non-function")
        return self._eval_arg(cmd, dot)

    def _eval_arg(self, arg: Any, dot: Any) -> Any:
        if isinstance(arg, _Literal):
            return arg.value
        if isinstance(arg, _Pipeline):
            return self._eval_pipeline(arg, dot)
        if isinstance(arg, _Call):
            return self._eval_command(arg, dot, ())
        return self._field(dot, arg.path)

    def _field(self, value: Any, path: tuple[str, ...]) -> Any:
        for name in path:
            if isinstance(value, Struct):
                if name not in value:
                    raise TemplateError(
                        f'template: {self.name}: executing "{self.name}" at <.{name}>: '
                        f"can't evaluate field {name} in type {value.type_name}"
                    )
                value = value[name]
            elif isinstance(value, Mapping):
                value = value.get(name, _MISSING)
            elif value is None or value is _MISSING:
                return _MISSING
            elif hasattr(value, name):
                value = getattr(value, name)
            else:
                raise TemplateError(
                    f'template: {self.name}: executing "{self.name}" at <.{name}>: '
                    f"can't evaluate field {name} in type {type(value).__name__}"
                )
        return value


def parse(text: str, name: str = "format") -> Template:
    nodes, _, ended = _parse_nodes(_split_actions(text), 0, ())
    assert not ended
    return Template(name=name, nodes=tuple(nodes))


def render(text: str, data: Any, name: str = "format") -> str:
    return parse(text, name).execute(data)
