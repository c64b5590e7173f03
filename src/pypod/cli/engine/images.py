"""pypod's image commands (podman 4.3's output, messages and exit codes) over pypod.image.local.

images / image ls, rmi / image rm, tag, untag, image exists, inspect / image inspect,
history / image history, image prune, system df.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from pypod.cli.engine.formats import is_json as _is_json
from pypod.cli.engine.formats import render_rows
from pypod.cli.engine.main import Command, Globals
from pypod.cli.engine.units import go_time_string, human_duration, human_size, image_size, since
from pypod.cli.flags import Flag, Parsed
from pypod.cli.gotemplate import Struct
from pypod.cli.image_list import (
    check_rmi_args,
    common_cells,
    listed_images,
    repo_tags,
    shown_id,
)
from pypod.cli.output import out
from pypod.cli.program import open_cli_store
from pypod.errors import (
    EXIT_ENGINE_ERROR,
    ImageNotFound,
    InUse,
    InvalidArgument,
    NotSupported,
)
from pypod.image import local
from pypod.image.transports.containers_storage import Store
from pypod.record import record

_IMAGE_HEADERS = {
    "ID": "IMAGE ID",
    "Id": "IMAGE ID",
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "Created": "CREATED",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
    "ReadOnly": "R/O",
    "Containers": "CONTAINERS",
    "SharedSize": "SHARED SIZE",
    "VirtualSize": "VIRTUAL SIZE",
    "Names": "NAMES",
    "Labels": "LABELS",
    "Dangling": "DANGLING",
    "History": "HISTORY",
    "ParentId": "PARENT ID",
}
_HISTORY_HEADERS = {
    "ID": "ID",
    "Created": "CREATED",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "CreatedBy": "CREATED BY",
    "Size": "SIZE",
    "Comment": "COMMENT",
}


# --- images -------------------------------------------------------------------------------
def _summary_rows(summaries: Sequence[local.ImageSummary], *, no_trunc: bool) -> list[Struct]:
    return [
        _image_struct(s, repo, tag, no_trunc=no_trunc)
        for s in summaries
        for repo, tag in repo_tags(s)
    ]


def _image_struct(s: local.ImageSummary, repo: str, tag: str, *, no_trunc: bool) -> Struct:
    return Struct({
        **common_cells(s, tag, truncate=not no_trunc),
        "Id": s.id,
        "ParentId": s.parent_id,
        "Repository": repo,
        "Digests": list(s.digests),
        "Created": since(s.created),
        "CreatedSince": since(s.created),
        "CreatedAt": go_time_string(s.created),
        "CreatedTime": go_time_string(s.created),
        "VirtualSize": image_size(s.size),
        "SharedSize": image_size(s.shared_size),
        "Containers": s.containers,
        "Labels": dict(s.labels or {}),
        "Dangling": s.dangling,
        "IsReadOnly": False,
        "Names": list(s.names),
        "History": list(reversed(s.names)),
        "RepoTags": [n for n in s.names if "@" not in n],
    })  # fmt: skip


def _image_json(s: local.ImageSummary) -> dict[str, Any]:
    repo_digests: list[str] = []
    for name in s.names:
        repo = local.split_name(name)[0]
        for d in s.digests[:1]:
            if f"{repo}@{d}" not in repo_digests:
                repo_digests.append(f"{repo}@{d}")
    import time

    return {
        "Id": s.id,
        "ParentId": s.parent_id,
        "RepoTags": None,  # as podman 4.3 reports it
        "RepoDigests": repo_digests,
        "Size": s.size,
        "SharedSize": s.shared_size,
        "VirtualSize": s.size,
        "Labels": s.labels,
        "Containers": s.containers,
        "Names": list(s.names) or None,
        "Digest": s.digest,
        "History": list(reversed(s.names)) or None,
        "Created": int(s.created),
        "CreatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(s.created))),
    }


def _matches(s: local.ImageSummary, wanted: str) -> bool:
    if s.id.startswith(wanted) or wanted in s.digests:
        return True
    for name in s.names:
        repo, tag, _ = local.split_name(name)
        want_repo, _, want_tag = wanted.partition(":")
        if "/" in want_tag:  # host:port/name
            want_repo, want_tag = wanted, ""
        if (repo == want_repo or repo.endswith("/" + want_repo)) and (
            not want_tag or want_tag == tag
        ):
            return True
    return False


_SORT_KEYS = ("created", "id", "repository", "size", "tag")


def _sorted(summaries: list[local.ImageSummary], key: str) -> list[local.ImageSummary]:
    if key not in _SORT_KEYS:
        raise InvalidArgument(f"invalid option for --sort, options are: {list(_SORT_KEYS)}")
    if key == "created":
        return sorted(summaries, key=lambda s: -s.created)
    if key == "id":
        return sorted(summaries, key=lambda s: s.id)
    if key == "size":
        return sorted(summaries, key=lambda s: s.size)

    def first(s: local.ImageSummary) -> tuple[str, str]:
        repo, tag, _ = local.split_name(s.names[0]) if s.names else ("<none>", "<none>", "")
        return (repo, tag) if key == "repository" else (tag, repo)

    return sorted(summaries, key=first)


def cmd_images(g: Globals, opts: Parsed) -> int:
    if len(opts.args) > 1:
        raise InvalidArgument("pypod images accepts at most 1 argument (an image name)")
    filters = opts.texts("filter")
    with open_cli_store(g) as store:
        summaries = listed_images(store, filters, all_images=opts.flag("all"))
    summaries = _sorted(summaries, opts.text("sort") or "created")
    if opts.args:
        summaries = [s for s in summaries if _matches(s, opts.args[0])]
    no_trunc = opts.flag("no-trunc")
    fmt = opts.text("format")
    if opts.flag("quiet"):
        seen: list[str] = []
        for s in summaries:
            shown = shown_id(s.id, truncate=not no_trunc)
            if shown not in seen:
                seen.append(shown)
        out("".join(f"{i}\n" for i in seen))
        return 0
    if _is_json(fmt):
        out(json.dumps([_image_json(s) for s in summaries], indent=4) + "\n")
        return 0
    rows = _summary_rows(summaries, no_trunc=no_trunc)
    if fmt is None:
        cols = ["{{.Repository}}", "{{.Tag}}"]
        if opts.flag("digests"):
            cols.append("{{.Digest}}")
        cols += ["{{.ID}}", "{{.Created}}", "{{.Size}}"]
        fmt = "table " + "\t".join(cols)
    if opts.flag("noheading"):
        fmt = fmt.removeprefix("table").lstrip()
    out(render_rows(fmt, rows, _IMAGE_HEADERS))
    return 0


# --- rmi, tag, untag, exists --------------------------------------------------------------
def cmd_rmi(g: Globals, opts: Parsed) -> int:
    all_images = opts.flag("all")
    check_rmi_args(opts.args, all_images=all_images)
    with open_cli_store(g) as store:
        reports = local.remove_images(
            store, opts.args, force=opts.flag("force"), all_images=all_images
        )
    code = 0
    for report in reports:
        for name in report.untagged:
            print(f"Untagged: {name}")
        if report.deleted is not None:
            print(f"Deleted: {report.deleted}")
        if report.error is not None:
            if opts.flag("ignore") and isinstance(report.error, ImageNotFound):
                continue  # --ignore: a missing image is not an error (podman)
            print(f"Error: {report.error}", file=sys.stderr)
            if isinstance(report.error, ImageNotFound):
                this = 1
            elif isinstance(report.error, InUse):
                this = 2
            else:
                this = EXIT_ENGINE_ERROR
            code = this if code in (0, this) else EXIT_ENGINE_ERROR
    sys.stdout.flush()
    return code


def cmd_tag(g: Globals, opts: Parsed) -> int:
    if len(opts.args) < 2:
        raise InvalidArgument("image name and at least one new name must be specified")
    with open_cli_store(g) as store:
        local.tag_image(store, opts.args[0], opts.args[1:])
    return 0


def cmd_untag(g: Globals, opts: Parsed) -> int:
    if not opts.args:
        raise InvalidArgument("requires at least 1 arg(s), only received 0")
    with open_cli_store(g) as store:
        local.untag_image(store, opts.args[0], opts.args[1:])
    return 0


def cmd_exists(g: Globals, opts: Parsed) -> int:
    if len(opts.args) != 1:
        raise InvalidArgument(f"accepts 1 arg(s), received {len(opts.args)}")
    with open_cli_store(g) as store:
        return 0 if local.image_exists(store, opts.args[0]) else 1


# --- inspect ------------------------------------------------------------------------------
def _inspect(g: Globals, opts: Parsed, *, generic: bool) -> int:
    if not opts.args:
        raise InvalidArgument("inspect requires at least one argument")
    if opts.text("type") not in (None, "image", "all"):
        raise NotSupported(f"inspect --type {opts.text('type')}: only images are supported yet")
    found: list[dict[str, Any]] = []
    errors: list[str] = []
    with open_cli_store(g) as store:
        for name in opts.args:
            try:
                found.append(local.inspect_image(store, name))
            except ImageNotFound:
                errors.append(
                    f'no such object: "{name}"' if generic else f"{name}: image not known"
                )
    fmt = opts.text("format")
    if fmt is None or _is_json(fmt):
        out(json.dumps(found, indent=5) + "\n")
    else:
        out(render_rows(fmt, [_struct(d) for d in found], {}))
    if errors:
        for e in errors[:-1]:
            print(f"Error: {e}", file=sys.stderr)
        print(f"Error: inspecting object: {errors[-1]}", file=sys.stderr)
        return EXIT_ENGINE_ERROR
    return 0


def _struct(value: Any) -> Any:
    if isinstance(value, dict):
        return Struct({k: _struct(v) for k, v in value.items()})
    return value


def cmd_inspect(g: Globals, opts: Parsed) -> int:
    return _inspect(g, opts, generic=True)


def cmd_image_inspect(g: Globals, opts: Parsed) -> int:
    return _inspect(g, opts, generic=False)


# --- history ------------------------------------------------------------------------------
def cmd_history(g: Globals, opts: Parsed) -> int:
    if len(opts.args) != 1:
        raise InvalidArgument(f"accepts 1 arg(s), received {len(opts.args)}")
    with open_cli_store(g) as store:
        entries = local.image_history(store, opts.args[0])
    no_trunc, human = opts.flag("no-trunc"), opts.text("human") != "false"
    fmt = opts.text("format")
    if opts.flag("quiet"):
        out("".join(f"{e.id if no_trunc or e.id == '<missing>' else e.id[:12]}\n" for e in entries))
        return 0
    if _is_json(fmt):
        data = [
            {
                "id": e.id,
                "created": local.go_time(e.created) if e.created is not None else None,
                "CreatedBy": e.created_by,
                "size": e.size,
                "comment": e.comment,
                "Created": local.go_time(e.created, nanos=False) if e.created else None,
            }
            for e in entries
        ]
        out(json.dumps(data, separators=(",", ":")) + "\n")
        return 0
    rows: list[Struct] = []
    for e in entries:
        created_by = e.created_by
        if not no_trunc and len(created_by) > 45:
            created_by = created_by[:42] + "..."
        ident = e.id if no_trunc or e.id == "<missing>" else e.id[:12]
        created = ""
        if e.created is not None:
            created = since(e.created) if human else go_time_string(e.created)
        rows.append(
            Struct(
                ID=ident,
                Created=created,
                CreatedSince=created,
                CreatedAt=go_time_string(e.created) if e.created is not None else "",
                CreatedBy=created_by,
                Size=image_size(e.size) if human else str(e.size),
                Comment=e.comment,
            )
        )
    fmt = fmt or "table {{.ID}}\t{{.Created}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
    out(render_rows(fmt, rows, _HISTORY_HEADERS))
    return 0


# --- prune, system df ---------------------------------------------------------------------
def cmd_prune(g: Globals, opts: Parsed) -> int:
    if opts.args:
        raise InvalidArgument(f"accepts 0 arg(s), received {len(opts.args)}")
    filters = opts.texts("filter")
    all_images = opts.flag("all")
    if not opts.flag("force"):
        what = (
            "all images without at least one container associated to them"
            if all_images
            else "all dangling images"
        )
        sys.stdout.write(
            f"WARNING! This command removes {what}.\nAre you sure you want to continue? [y/N] "
        )
        sys.stdout.flush()
        answer = sys.stdin.readline()
        if not answer:
            raise InvalidArgument("EOF")
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    with open_cli_store(g) as store:
        removed = local.prune_images(store, all_images=all_images, filters=filters)
    out("".join(f"{i}\n" for i in removed))
    return 0


@record
class _ContainerUsage:
    id: str
    image_id: str
    command: str
    volumes: int
    size: int
    created: float
    status: str
    name: str


@record
class _VolumeUsage:
    name: str
    links: int
    size: int


def _engine_usage(g: Globals, store: Store) -> tuple[list[_ContainerUsage], list[_VolumeUsage]]:
    """The containers (with the size of their read-write layers) and the local volumes (with
    the bytes below their mount points), from the engine's database."""
    import os
    import time

    from pypod.engine.containers import Engine
    from pypod.engine.volumes import Volumes

    sizes = dict(store.disk_usage().containers)
    containers: list[_ContainerUsage] = []
    volumes: list[_VolumeUsage] = []
    with Engine(g.graphroot, g.runroot, driver=g.driver) as eng:
        for c in eng.containers():
            cfg = c.config
            containers.append(
                _ContainerUsage(
                    id=c.id,
                    image_id=cfg.image_id,
                    command=" ".join(cfg.command),
                    volumes=sum(1 for m in cfg.mounts if m.volume),
                    size=sizes.get(c.id, 0),
                    created=c.created or time.time(),
                    status="created" if c.status == "configured" else c.status,  # podman's
                    name=c.name,
                )
            )
        store_volumes = Volumes(eng.db, eng.paths.graphroot)
        for vol in store_volumes.all():
            if not os.path.isdir(vol.mountpoint):
                continue  # podman skips what it cannot measure
            volumes.append(
                _VolumeUsage(
                    name=vol.name,
                    links=len(store_volumes.users(vol.name)),
                    size=local.tree_size(vol.mountpoint),
                )
            )
    return containers, volumes


def cmd_system_df(g: Globals, opts: Parsed) -> int:
    with open_cli_store(g) as store:
        images, _total = local.image_disk_usage(store)
        containers, volumes = _engine_usage(g, store)
    if opts.flag("verbose"):  # podman 4.3 prints its tables whatever --format says
        out(_df_verbose(images, containers, volumes))
        return 0
    rows = [
        _df_row(
            "Images",
            len(images),
            sum(1 for i in images if i.containers),
            sum(i.size for i in images),
            sum(i.size for i in images if not i.containers),
        ),
        _df_row(
            "Containers",
            len(containers),
            sum(1 for c in containers if c.status == "running"),
            sum(c.size for c in containers),
            sum(c.size for c in containers if c.status != "running"),
        ),
        _df_row(
            "Local Volumes",
            len(volumes),
            sum(v.links for v in volumes),
            sum(v.size for v in volumes),
            sum(v.size for v in volumes if not v.links),
        ),
    ]
    fmt = opts.text("format")
    if _is_json(fmt):
        out(json.dumps([dict(r) for r in rows], indent=4) + "\n")
        return 0
    fmt = fmt or "table {{.Type}}\t{{.Total}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
    out(render_rows(fmt, rows, {}))
    return 0


def _df_row(kind: str, total: int, active: int, size: int, reclaimable: int) -> Struct:
    pct = int(round(reclaimable * 100 / size)) if size else 0
    return Struct(
        Type=kind,
        Total=total,
        Active=active,
        Size=human_size(size),
        Reclaimable=f"{human_size(reclaimable)} ({pct}%)",
    )


def _df_verbose(
    images: Sequence[local.ImageDiskUsage],
    containers: Sequence[_ContainerUsage],
    volumes: Sequence[_VolumeUsage],
) -> str:
    """`podman system df -v`: the images, containers and volumes, each a table."""
    now = time.time()
    image_rows = [
        Struct(
            Repository=i.repository,
            Tag=i.tag,
            ImageID=i.id[:12],
            Created=human_duration(max(0.0, now - i.created)),
            Size=human_size(i.size),
            SharedSize=human_size(i.shared_size),
            UniqueSize=human_size(i.unique_size),
            Containers=i.containers,
        )
        for i in images
    ]
    container_rows = [
        Struct(
            ContainerID=c.id[:12],
            Image=c.image_id[:12],
            Command=c.command,
            LocalVolumes=c.volumes,
            Size=human_size(c.size),
            Created=human_duration(max(0.0, now - c.created)),
            Status=c.status,
            Names=c.name,
        )
        for c in containers
    ]
    volume_rows = [
        Struct(VolumeName=v.name, Links=v.links, Size=human_size(v.size)) for v in volumes
    ]
    return (
        "Images space usage:\n\n"
        + render_rows(
            "table {{.Repository}}\t{{.Tag}}\t{{.ImageID}}\t{{.Created}}\t{{.Size}}\t"
            "{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
            image_rows,
            {"ImageID": "IMAGE ID", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE"},
        )
        + "\nContainers space usage:\n\n"
        + render_rows(
            "table {{.ContainerID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t"
            "{{.Created}}\t{{.Status}}\t{{.Names}}",
            container_rows,
            {"ContainerID": "CONTAINER ID", "LocalVolumes": "LOCAL VOLUMES"},
        )
        + "\nLocal Volumes space usage:\n\n"
        + render_rows(
            "table {{.VolumeName}}\t{{.Links}}\t{{.Size}}",
            volume_rows,
            {"VolumeName": "VOLUME NAME"},
        )
    )


_FORMAT = Flag(("format",), True, help="pretty-print output using a Go template or json")
_IMAGES = (
    Flag(("all", "a"), help="show all images (default hides intermediate images)"),
    Flag(("quiet", "q"), help="display only image IDs"),
    Flag(("digests",), help="show digests"),
    Flag(("no-trunc",), help="do not truncate output"),
    Flag(("noheading", "n"), help="do not print column headings"),
    Flag(("filter", "f"), True, True, help="filter output based on conditions provided"),
    Flag(("sort",), True, help="sort by created, id, repository, size or tag"),
    _FORMAT,
)
_RMI = (
    Flag(("all", "a"), help="remove all images"),
    Flag(("force", "f"), help="force removal of the image and any containers using it"),
    Flag(("ignore", "i"), help="ignore errors if a specified image does not exist"),
)
_INSPECT = (_FORMAT, Flag(("type", "t"), True), Flag(("size", "s")))
_HISTORY = (
    Flag(("human", "H"), help="display sizes and dates in human readable format"),
    Flag(("no-trunc",), help="do not truncate the output"),
    Flag(("quiet", "q"), help="display the numeric IDs only"),
    _FORMAT,
)
_PRUNE = (
    Flag(("all", "a"), help="remove all images not in use by containers, not just dangling ones"),
    Flag(("force", "f"), help="do not prompt for confirmation"),
    Flag(("filter",), True, True, help="provide filter values (e.g. 'label=<key>=<value>')"),
)
_DF = (Flag(("verbose", "v")), _FORMAT)

_images_cmd = Command(
    handler=cmd_images,
    flags=_IMAGES,
    help="List images in local storage",
    usage="[options] [IMAGE]",
)
_rmi_cmd = Command(
    handler=cmd_rmi,
    flags=_RMI,
    help="Remove one or more images from local storage",
    usage="[options] IMAGE [IMAGE...]",
)
_tag_cmd = Command(
    handler=cmd_tag,
    flags=(),
    help="Add an additional name to a local image",
    usage="IMAGE TARGET_NAME [TARGET_NAME...]",
)
_untag_cmd = Command(
    handler=cmd_untag, flags=(), help="Remove a name from a local image", usage="IMAGE [IMAGE...]"
)
_history_cmd = Command(
    handler=cmd_history,
    flags=_HISTORY,
    help="Show history of a specified image",
    usage="[options] IMAGE",
)

COMMANDS: dict[str, Command] = {
    "images": _images_cmd,
    "image ls": _images_cmd,
    "image list": _images_cmd,
    "rmi": _rmi_cmd,
    "image rm": _rmi_cmd,
    "tag": _tag_cmd,
    "image tag": _tag_cmd,
    "untag": _untag_cmd,
    "image untag": _untag_cmd,
    "history": _history_cmd,
    "image history": _history_cmd,
    "image exists": Command(
        handler=cmd_exists,
        flags=(),
        help="Check if an image exists in " "local storage",
        usage="IMAGE",
    ),
    "inspect": Command(
        handler=cmd_inspect,
        flags=_INSPECT,
        help="Display the configuration of " "object denoted by ID",
        usage="[options] {CONTAINER|IMAGE} [...]",
    ),
    "image inspect": Command(
        handler=cmd_image_inspect,
        flags=_INSPECT,
        help="Display the " "configuration of an image",
        usage="[options] IMAGE [IMAGE...]",
    ),
    "image prune": Command(
        handler=cmd_prune, flags=_PRUNE, help="Remove unused images", usage="[options]"
    ),
    "system df": Command(
        handler=cmd_system_df, flags=_DF, help="Show podman disk usage", usage="[options]"
    ),
}
