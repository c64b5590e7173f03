"""`pypod inspect` (containers first, then images, as podman) and `pypod container inspect`."""

from __future__ import annotations

import sys

from pypod import jsoncodec
from pypod.cli.engine.formats import is_json
from pypod.cli.engine.main import Command, Globals
from pypod.cli.engine.shared import _cmd, _f, engine
from pypod.cli.flags import Parsed
from pypod.errors import EXIT_ENGINE_ERROR, ContainerNotFound, ImageNotFound, InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_TYPES = ("all", "container", "image")


def _struct(value: Any) -> Any:
    from pypod.cli.gotemplate import Struct

    if isinstance(value, dict):
        return Struct({k: _struct(v) for k, v in value.items()})
    return value


def _inspect(g: Globals, opts: Parsed, *, kind: str) -> int:
    from pypod.engine.inspect import inspect_container

    kind = opts.text("type") or kind
    if kind not in _TYPES:
        raise InvalidArgument(f'invalid type "{kind}": must be one of {", ".join(_TYPES)}')
    eng = engine(g)
    names = list(opts.args)
    if opts.flag("latest"):
        names = [eng.latest().id]
    if not names:
        raise InvalidArgument("inspect requires at least one argument")
    found: list[dict[str, Any]] = []
    errors: list[str] = []
    for name in names:
        if kind in ("all", "container"):
            try:
                found.append(inspect_container(eng, eng.lookup(name), size=opts.flag("size")))
                continue
            except ContainerNotFound:
                if kind == "container":
                    errors.append(f"no such container {name}")
                    continue
        from pypod.image.local import inspect_image

        try:
            found.append(inspect_image(eng.store, name))
        except (ImageNotFound, InvalidArgument):
            errors.append(f'no such object: "{name}"' if kind == "all" else
                          f"{name}: image not known")  # fmt: skip
    fmt = opts.text("format")
    if fmt is None or is_json(fmt):
        sys.stdout.write(jsoncodec.dumps(found, indent=5) + "\n")
    else:
        from pypod.cli.engine.formats import render_rows

        sys.stdout.write(render_rows(fmt, [_struct(d) for d in found], {}))
    if errors:
        for e in errors[:-1]:
            print(f"Error: {e}", file=sys.stderr)
        print(f"Error: inspecting object: {errors[-1]}", file=sys.stderr)
        return EXIT_ENGINE_ERROR
    return 0


def cmd_inspect(g: Globals, opts: Parsed) -> int:
    return _inspect(g, opts, kind="all")


def cmd_container_inspect(g: Globals, opts: Parsed) -> int:
    return _inspect(g, opts, kind="container")


_FLAGS = (
    _f("format", "f", value=True, help="format the output using the given Go template"),
    _f("type", "t", value=True, help="only inspect this type: container, image or all"),
    _f("size", "s", help="display the total file size"),
    _f("latest", "l", help="act on the latest container pypod knows of"),
)
COMMANDS: dict[str, Command] = {
    "inspect": _cmd(
        cmd_inspect,
        _FLAGS,
        "Display the configuration of object denoted by ID",
        "[options] {CONTAINER|IMAGE} [...]",
    ),  # fmt: skip
    "container inspect": _cmd(
        cmd_container_inspect,
        _FLAGS,
        "Display the configuration of a container",
        "[options] CONTAINER [CONTAINER...]",
    ),  # fmt: skip
}
