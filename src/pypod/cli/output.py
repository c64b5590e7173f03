"""Output helpers shared by the programs: Go's tabwriter layout, runc's log lines."""

from __future__ import annotations

import sys
import time

from pypod import jsoncodec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence


def out(text: str) -> None:
    """`text` on stdout, flushed (before an error line on stderr, as Go's unbuffered writes)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def tabwrite(rows: Sequence[Sequence[str]], *, minwidth: int = 12, padding: int = 3) -> str:
    """Lay out rows as Go's tabwriter.NewWriter(w, minwidth, 1, padding, ' ', 0) does.

    Every cell but the last of a row is padded to its column's width: the widest cell plus
    `padding`, at least `minwidth`.
    """
    ncols = max((len(r) for r in rows), default=0)
    widths = [0] * ncols
    for r in rows:
        for i, cell in enumerate(r[:-1]):
            widths[i] = max(widths[i], len(cell) + padding, minwidth)
    lines = []
    for r in rows:
        cells = [c.ljust(widths[i]) for i, c in enumerate(r[:-1])]
        lines.append("".join(cells) + (r[-1] if r else ""))
    return "".join(line + "\n" for line in lines)


def _go_quote(s: str) -> str:
    import json

    return json.dumps(s, ensure_ascii=False)


def logrus_line(level: str, msg: str, *, fmt: str = "text") -> str:
    """One log entry the way runc's logrus writes it (text or json formatter)."""
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if fmt == "json":
        return jsoncodec.dumps({"level": level, "msg": msg, "time": ts}) + "\n"
    shown = msg if msg and all(c.isalnum() or c in "-._/@^+" for c in msg) else _go_quote(msg)
    return f'time="{ts}" level={level} msg={shown}\n'
