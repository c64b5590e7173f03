"""What `pypod images` / `rmi` and `pypod-build images` / `rmi` share over pypod.image.local:
which images a listing shows (libimage's filters), the REPOSITORY/TAG pairs of its rows, and
the checks of `rmi`'s arguments.  Each program keeps its own columns, JSON and messages."""

from __future__ import annotations

from collections.abc import Sequence

from pypod.cli.engine.units import image_size
from pypod.errors import InvalidArgument
from pypod.image import local
from pypod.image.transports.containers_storage import Store

NONE = "<none>"


def listed_images(
    store: Store, filters: Sequence[str], *, all_images: bool
) -> list[local.ImageSummary]:
    """The images a listing shows: the top ones (all of them with --all), through libimage's
    `--filter`s, where intermediate images stay hidden unless --all or a filter names them."""
    summaries = local.list_images(store, all_images=all_images or bool(filters))
    if not filters:
        return summaries
    wanted = list(filters)
    if not all_images and not any(f.startswith("intermediate=") for f in wanted):
        wanted.append("intermediate=false")
    return local.filter_images(store, summaries, wanted)


def repo_tags(s: local.ImageSummary) -> list[tuple[str, str]]:
    """(repository, tag) of each row of `s`, once each; ("<none>", "<none>") when unnamed."""
    if not s.names:
        return [(NONE, NONE)]
    return list(dict.fromkeys(local.split_name(name)[:2] for name in s.names))


def shown_id(image_id: str, *, truncate: bool) -> str:
    """An image ID in a listing: 12 hex digits, or `sha256:` and all 64 (--no-trunc)."""
    return image_id[:12] if truncate else "sha256:" + image_id


def common_cells(s: local.ImageSummary, tag: str, *, truncate: bool) -> dict[str, object]:
    """The cells both listings fill alike (ID, Tag, Digest, Size, ReadOnly); each adds its
    own (REPOSITORY is `.Repository` to podman, `.Name` to buildah; CREATED differs too)."""
    return {"ID": shown_id(s.id, truncate=truncate), "Tag": tag, "Digest": s.digest,
            "Size": image_size(s.size), "ReadOnly": False}  # fmt: skip


def check_rmi_args(args: Sequence[str], *, all_images: bool) -> None:
    """`rmi` takes images or --all, not both and not neither."""
    if not args and not all_images:
        raise InvalidArgument("image name or ID must be specified")
    if args and all_images:
        raise InvalidArgument(
            "when using the --all switch, you may not pass any images names or IDs"
        )
