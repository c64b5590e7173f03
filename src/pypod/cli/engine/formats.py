"""podman's `--format` for listings: Go templates, the `table` prefix, aligned columns, json."""

from __future__ import annotations

import sys

from pypod.cli.output import tabwrite
from pypod.errors import PypodError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from pypod.cli.gotemplate import Struct

#: podman's table layout: tabwriter.NewWriter(w, 12, 2, 2, ' ', 0)
_MINWIDTH, _PADDING = 12, 2


def _normalize_format(fmt: str) -> tuple[str, bool]:
    """(template, table): `table` prefix stripped, `\\t` and `\\n` escapes made real."""
    table = fmt.startswith("table")
    if table:
        fmt = fmt[len("table") :].lstrip()
    fmt = fmt.replace("\\t", "\t").replace("\\n", "\n")
    return fmt, table


def _header(template: str, headers: dict[str, str]) -> Struct:
    """The header row: each field's column title (podman: the field name upper-cased)."""
    import re

    from pypod.cli.gotemplate import Struct

    out = Struct()
    for name in re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)", template):
        title = headers.get(name) or re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).upper()
        out[name] = title
    return out


def _plain_fields(template: str) -> list[tuple[str, str]] | None:
    """A template made of text and `{{.Field}}` actions only, as (text before, field) pairs
    (the last field "": the text after the last action); None for any other template."""
    out: list[tuple[str, str]] = []
    rest = template
    while True:
        text, brace, rest = rest.partition("{{")
        if not brace:
            if "}}" in text:
                return None
            out.append((text, ""))
            return out
        action, close, rest = rest.partition("}}")
        name = action[1:]
        if (
            not close or "}}" in text or not action.startswith(".") or not name
            or not name.replace("_", "a").isalnum() or not name.isascii() or name[0].isdigit()
        ):  # fmt: skip
            return None
        out.append((text, name))


def _render_plain(
    parts: list[tuple[str, str]], rows: Sequence[Mapping[str, object]],
    headers: dict[str, str], table: bool,
) -> list[str] | None:  # fmt: skip
    """The lines of `render_rows` for a template of `{{.Field}}` actions whose every value is
    a string (they print as they are) and whose titles are all in `headers`; None otherwise."""
    names = [name for _, name in parts if name]
    if table and not all(headers.get(name) for name in names):
        return None
    for row in rows:
        for name in names:
            if not isinstance(row.get(name), str):
                return None
    lines = []
    if table:
        lines.append("".join(text + (headers[name] if name else "") for text, name in parts))
    for row in rows:
        lines.append("".join(text + (str(row[name]) if name else "") for text, name in parts))
    return lines


def render_rows(
    fmt: str, rows: Sequence[Mapping[str, object]], headers: dict[str, str]
) -> str:  # fmt: skip
    """Rows through a Go template as podman's `--format`: tab-separated cells aligned, a header
    line with the `table` prefix, a newline after each row.  A template of plain `{{.Field}}`
    actions over strings (the default listings) is filled in directly, without the template
    engine (which imports json and re: ~6 ms of `ps`, pypod/stdlite.py); rows that are not
    `Struct`s are made so for the engine."""
    template, table = _normalize_format(fmt)
    lines: list[str] | None = None
    parts = _plain_fields(template)
    if parts is not None:
        lines = _render_plain(parts, rows, headers, table)
    if lines is None:
        lines = _render_template(template, table, rows, headers)
    text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    if "\t" in text:
        cells = [line.split("\t") for line in text.rstrip("\n").split("\n")]
        return tabwrite(cells, minwidth=_MINWIDTH, padding=_PADDING)
    return text


def _render_template(
    template: str, table: bool, rows: Sequence[Mapping[str, object]], headers: dict[str, str]
) -> list[str]:
    from pypod.cli.gotemplate import Struct, parse

    tpl = parse(template)
    lines: list[str] = []
    if table:
        hdr = _header(template, headers)
        try:
            lines.append(tpl.execute(hdr))
        except PypodError:
            lines.append("")
    lines += [tpl.execute(row if isinstance(row, Struct) else Struct(row)) for row in rows]
    return lines


def is_json(fmt: str | None) -> bool:
    return fmt is not None and fmt.strip() == "json"


def report_errors(errors: Sequence[tuple[str, int]]) -> int:
    """The end of an `rm` of several things, as podman ends it: each error's message on
    stderr ("Error: ..."), and the exit code of the last one (0 when there was none)."""
    for message, _ in errors:
        print(f"Error: {message}", file=sys.stderr)
    return errors[-1][1] if errors else 0
