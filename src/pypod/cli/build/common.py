"""What the pypod-build commands share: the store, buildah's `--format` layout, Go names."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any

from pypod.cli.build.main import Globals
from pypod.cli.gotemplate import Struct, parse
from pypod.cli.output import tabwrite
from pypod.errors import InvalidArgument
from pypod.image.transports.containers_storage import Store, StoreLocation, open_store


def store_location(g: Globals) -> StoreLocation:
    return StoreLocation(graphroot=g.graphroot, runroot=g.runroot, driver=g.driver)


def open_build_store(g: Globals) -> Store:
    return open_store(store_location(g))


def out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


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
