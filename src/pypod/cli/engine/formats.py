"""podman's `--format` for listings: Go templates, the `table` prefix, aligned columns, json."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pypod.cli.gotemplate import Struct, parse
from pypod.cli.output import tabwrite
from pypod.errors import PypodError

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

    out = Struct()
    for name in re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)", template):
        title = headers.get(name) or re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).upper()
        out[name] = title
    return out


def render_rows(fmt: str, rows: Sequence[Struct], headers: dict[str, str]) -> str:
    """Rows through a Go template as podman's `--format`: tab-separated cells aligned, a header
    line with the `table` prefix, a newline after each row."""
    template, table = _normalize_format(fmt)
    tpl = parse(template)
    lines: list[str] = []
    if table:
        hdr = _header(template, headers)
        try:
            lines.append(tpl.execute(hdr))
        except PypodError:
            lines.append("")
    lines += [tpl.execute(row) for row in rows]
    text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    if "\t" in text:
        cells = [line.split("\t") for line in text.rstrip("\n").split("\n")]
        return tabwrite(cells, minwidth=_MINWIDTH, padding=_PADDING)
    return text


def is_json(fmt: str | None) -> bool:
    return fmt is not None and fmt.strip() == "json"


def report_errors(errors: Sequence[tuple[str, int]]) -> int:
    """The end of an `rm` of several things, as podman ends it: each error's message on
    stderr ("Error: ..."), and the exit code of the last one (0 when there was none)."""
    for message, _ in errors:
        print(f"Error: {message}", file=sys.stderr)
    return errors[-1][1] if errors else 0
