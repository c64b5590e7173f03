"""What the pypod-build commands share: the store, buildah's `--format` layout, Go names,
the flags several commands take."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from pypod.cli.build.main import Globals
from pypod.cli.flags import Flag, Parsed
from pypod.cli.gotemplate import Struct, parse
from pypod.cli.output import out, tabwrite
from pypod.cli.program import open_cli_store, store_location
from pypod.cli.registry import RETRY_FLAG
from pypod.errors import InvalidArgument
from pypod.image.transports.containers_storage import Store

__all__ = ["ADD_HISTORY_FLAG", "RETRY_FLAGS", "add_history_wanted", "at_least", "exactly",
           "go_struct", "open_build_store", "out", "plain_struct", "render", "store_location",
           "template_out"]  # fmt: skip
#: `--retry` and buildah's `--retry-delay` (pull, push, commit, copy, add, bud ...)
RETRY_FLAGS = (
    RETRY_FLAG,
    Flag(("retry-delay",), True, help='delay between retries (default "2s")'),
)
#: `--add-history` of the commands that change a working container (config, copy, add, run)
ADD_HISTORY_FLAG = Flag(
    ("add-history",), help="add an entry for this operation to the image's history"
)


def add_history_wanted(opts: Parsed) -> bool:
    """--add-history, else $BUILDAH_HISTORY (buildah's default: no history entry)."""
    if "add-history" in opts.values:
        return opts.flag("add-history")
    return os.environ.get("BUILDAH_HISTORY", "").lower() in ("1", "true")


def open_build_store(g: Globals) -> Store:
    return open_cli_store(g)


def render(fmt: str, rows: Sequence[Any], headers: dict[str, str]) -> str:
    """Rows through a Go template as buildah's `--format` (containers/common's
    StdoutTemplateArray): spaces of the template become column breaks, cells are aligned with
    a padding of 3, `table` adds a header line."""
    table = fmt.startswith("table")
    template = fmt[len("table") :].strip() if table else fmt
    template = template.replace("\\t", "\t").replace("\\n", "\n").replace(" ", "\t")
    tpl = parse(template)
    lines: list[str] = []
    if table:
        hdr = Struct()
        for name in re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)", template):
            hdr[name] = headers.get(name) or re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).upper()
        lines.append(tpl.execute(hdr))
    lines += [tpl.execute(row) for row in rows]
    text = "".join(line + "\n" for line in lines)
    if "\t" not in text:
        return text
    cells = [line.split("\t") for line in text.rstrip("\n").split("\n")]
    return tabwrite(cells, minwidth=0, padding=3)


def go_struct(value: Any) -> Any:
    """A JSON document for a Go template: keys as the Go struct fields (`config` → `Config`,
    `diff_ids` → `DiffIDs`), as buildah's templates see OCIv1 and Docker images."""
    if isinstance(value, dict):
        return Struct({_go_name(k): go_struct(v) for k, v in value.items()})
    if isinstance(value, list):
        return [go_struct(v) for v in value]
    return value


_GO_NAMES = {"rootfs": "RootFS", "diff_ids": "DiffIDs", "os": "OS", "os.version": "OSVersion",
             "os.features": "OSFeatures", "container_config": "ContainerConfig",
             "docker_version": "DockerVersion", "empty_layer": "EmptyLayer",
             "created_by": "CreatedBy", "ExposedPorts": "ExposedPorts"}  # fmt: skip


def _go_name(key: str) -> str:
    if key in _GO_NAMES:
        return _GO_NAMES[key]
    return "".join(part[:1].upper() + part[1:] for part in key.split("_"))


def plain_struct(value: Any) -> Any:
    """A JSON document for a Go template, keys as they are (maps, and structs whose fields
    are named as their JSON)."""
    if isinstance(value, dict):
        return Struct({k: plain_struct(v) for k, v in value.items()})
    if isinstance(value, list):
        return [plain_struct(v) for v in value]
    return value


def template_out(fmt: str, data: Any) -> None:
    """`--format` of one object as buildah prints it: a newline after it only on a terminal."""
    text = parse(fmt).execute(data)
    out(text + "\n" if sys.stdout.isatty() else text)


def exactly(args: Sequence[str], n: int) -> None:
    if len(args) != n:
        raise InvalidArgument(f"accepts {n} arg(s), received {len(args)}")


def at_least(args: Sequence[str], n: int) -> None:
    if len(args) < n:
        raise InvalidArgument(f"requires at least {n} arg(s), only received {len(args)}")
