"""`pypod-build images`, `rmi`, `tag`: buildah 1.28's listings and messages over image.local."""

from __future__ import annotations

import json
import re
import time

from pypod.cli.build.common import at_least, open_build_store, out, render
from pypod.cli.build.main import Command, CommandError, Globals
from pypod.cli.engine.units import image_size, since
from pypod.cli.flags import Flag, Parsed
from pypod.cli.gotemplate import Struct
from pypod.cli.image_list import (
    check_rmi_args,
    common_cells,
    listed_images,
    repo_tags,
    shown_id,
)
from pypod.errors import InvalidArgument, PypodError
from pypod.image import local
from pypod.image.transports.containers_storage import Store

_HEADERS = {"Name": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST",
            "CreatedAt": "CREATED", "Size": "SIZE", "CreatedAtRaw": "CREATED AT",
            "ReadOnly": "R/O", "History": "HISTORY", "Created": "CREATED"}  # fmt: skip


def _raw_created(store: Store, s: local.ImageSummary) -> str:
    """The config's `created` as Go's RFC3339Nano (exact: the float loses nanoseconds)."""
    created = local.image_config(store, store.image(s.id)).get("created")
    if isinstance(created, str) and re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", created
    ):
        whole, _, frac = created[:-1].partition(".")
        frac = frac.rstrip("0")
        return f"{whole}.{frac}Z" if frac else f"{whole}Z"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(s.created)))
    frac = f"{s.created - int(s.created):.9f}"[2:].rstrip("0")
    return f"{stamp}.{frac}Z" if frac else f"{stamp}Z"


def _go_string(rfc3339: str) -> str:
    """RFC3339Nano (UTC) as Go's time.Time.String(): "2026-11-26 02:54:06.1944639 +0000 UTC"."""
    return rfc3339[:-1].replace("T", " ") + " +0000 UTC"


def _rows(s: local.ImageSummary, raw: str, *, truncate: bool) -> list[Struct]:
    # pypod keeps no names history: HISTORY shows the names the image has (buildah: <none>
    # until a name is added or removed)
    history = ", ".join(reversed(s.names)) or "<none>"
    return [
        Struct(
            {
                **common_cells(s, tag, truncate=truncate),
                "Name": repo,
                "CreatedAt": since(s.created),
                "Created": int(s.created),
                "CreatedAtRaw": _go_string(raw),
                "History": history,
            }
        )  # fmt: skip
        for repo, tag in repo_tags(s)
    ]


def cmd_images(g: Globals, opts: Parsed) -> int:
    if len(opts.args) > 1:
        raise InvalidArgument("'pypod-build images' requires at most 1 argument")
    if opts.flag("quiet") and opts.text("format"):
        raise InvalidArgument("quiet and format are mutually exclusive")
    truncate = not opts.flag("no-trunc")
    with open_build_store(g) as store:
        filters = [f for spec in opts.texts("filter") for f in spec.split(",") if f]
        summaries = listed_images(store, filters, all_images=opts.flag("all"))
        if opts.args:
            wanted = local.find_image(store, opts.args[0]).id
            summaries = [s for s in summaries if s.id == wanted]
        raw = {s.id: _raw_created(store, s) for s in summaries}
    if opts.flag("quiet"):
        out("".join(f"{shown_id(s.id, truncate=truncate)}\n" for s in summaries))
        return 0
    if opts.flag("json"):
        docs = []
        for s in summaries:
            docs.append({
                "id": shown_id(s.id, truncate=truncate),
                "names": list(s.names) or None,
                "digest": s.digest,
                "createdat": since(s.created),
                "size": image_size(s.size),
                "created": int(s.created),
                "createdatraw": raw[s.id],
                "readonly": False,
                "history": None,
            })  # fmt: skip
        out(json.dumps(docs, indent=4) + "\n")
        return 0
    rows = [row for s in summaries for row in _rows(s, raw[s.id], truncate=truncate)]
    fmt = opts.text("format")
    if fmt is None:
        cols = ["{{.Name}}", "{{.Tag}}"]
        if opts.flag("digests"):
            cols.append("{{.Digest}}")
        cols += ["{{.ID}}", "{{.CreatedAt}}", "{{.Size}}"]
        if opts.flag("history"):
            cols.append("{{.History}}")
        fmt = "\t".join(cols)
        if not opts.flag("noheading"):
            fmt = "table " + fmt
        # cells hold spaces ("2.13 MB"): lay the default table out by tabs only
        return _table(fmt, rows)
    if opts.flag("noheading"):
        fmt = fmt.removeprefix("table").lstrip()
    out(render(fmt, rows, _HEADERS))
    return 0


def _table(fmt: str, rows: list[Struct]) -> int:
    from pypod.cli.gotemplate import parse
    from pypod.cli.output import tabwrite

    table = fmt.startswith("table ")
    tpl = parse(fmt.removeprefix("table "))
    lines = [tpl.execute(Struct(_HEADERS))] if table else []
    lines += [tpl.execute(r) for r in rows]
    if lines:
        out(tabwrite([line.split("\t") for line in lines], minwidth=0, padding=3))
    return 0


def cmd_rmi(g: Globals, opts: Parsed) -> int:
    all_images = opts.flag("all")
    if opts.flag("prune"):
        if opts.args or all_images:
            raise InvalidArgument("when using the --prune switch, you may not pass any images "
                                  "names or IDs, or --all")  # fmt: skip
        with open_build_store(g) as store:
            for image_id in local.prune_images(store):  # the dangling ones, as buildah
                print(image_id)
        return 0
    check_rmi_args(opts.args, all_images=all_images)
    with open_build_store(g) as store:
        reports = local.remove_images(
            store, opts.args, force=opts.flag("force"), all_images=all_images
        )
    errors: list[PypodError] = []
    for report in reports:
        for name in report.untagged:
            print(f"untagged: {name}")
        if report.deleted is not None:
            print(report.deleted)
        if report.error is not None:
            errors.append(report.error)
    if errors:
        lines = "".join(f"\t* {e}\n" for e in errors)
        plural = "error" if len(errors) == 1 else "errors"
        raise CommandError(f"{len(errors)} {plural} occurred:\n{lines}\n", code=125)
    return 0


def cmd_tag(g: Globals, opts: Parsed) -> int:
    at_least(opts.args, 2)
    with open_build_store(g) as store:
        local.tag_image(store, opts.args[0], opts.args[1:])
    return 0


def _flags_images() -> tuple[Flag, ...]:
    return (
        Flag(("all", "a"), help="show all images, including intermediate images from a build"),
        Flag(("digests",), help="show digests"),
        Flag(("filter", "f"), True, True, help="filter output based on conditions provided"),
        Flag(("format",), True, help="pretty-print images using a Go template"),
        Flag(("history",), help="display the image name history"),
        Flag(("json",), help="output in JSON format"),
        Flag(("no-trunc",), help="do not truncate output"),
        Flag(("noheading", "n"), help="do not print column headings"),
        Flag(("quiet", "q"), help="display only image IDs"),
    )


COMMANDS: dict[str, Command] = {
    "images": Command(
        handler=cmd_images,
        flags=_flags_images(),
        help="List images in local storage",
        long="Lists locally stored images.",
        usage="[flags] [IMAGE]",
    ),
    "rmi": Command(
        handler=cmd_rmi,
        flags=(
            Flag(("all", "a"), help="remove all images"),
            Flag(("force", "f"), help="force removal of the image and any containers using it"),
            Flag(("prune", "p"), help="prune dangling images"),
        ),
        help="Remove one or more images from local storage",
        long="Removes one or more locally stored images.",
        usage="[flags] IMAGE [IMAGE...]",
    ),
    "tag": Command(
        handler=cmd_tag,
        flags=(),
        help="Add an additional name to a local image",
        long="Adds one or more additional names to locally-stored image.",
        usage="IMAGE NEW-NAME [NEW-NAME...]",
        interspersed=True,
    ),
}
