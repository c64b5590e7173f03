"""`sync`: the pairs of images to copy from a registry repository or a directory tree of
`dir:` images into a registry, a directory tree or OCI layouts (skopeo sync's naming)."""

from __future__ import annotations

import os

from pypod.errors import InvalidArgument
from pypod.image.reference import parse_normalized
from pypod.image.transports import parse_image_name
from pypod.image.types import ImageReference, SystemContext
from pypod.record import record

SOURCE_KINDS = ("docker", "dir")
DEST_KINDS = ("docker", "dir", "oci")


@record
class SyncItem:
    source: ImageReference
    destination: ImageReference
    #: "name:tag" below the destination, as shown in messages
    suffix: str


def _docker_sources(source: str, ctx: SystemContext, scoped: bool) -> list[tuple[str, str]]:
    ref = parse_normalized(source)
    if ref.digest is not None:
        raise InvalidArgument(f"sync: {source}: digest references are not supported")
    repo = parse_image_name(f"docker://{ref.name}")
    tags = [ref.tag] if ref.tag is not None else sorted(repo.list_tags(ctx))  # type: ignore[attr-defined]
    base = ref.name if scoped else ref.path.rsplit("/", 1)[-1]
    return [(f"docker://{ref.name}:{tag}", f"{base}:{tag}") for tag in tags]


def _dir_sources(source: str) -> list[tuple[str, str]]:
    if not os.path.isdir(source):
        raise InvalidArgument(f"sync: {source} is not a directory")
    found = []
    root = os.path.normpath(source)
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        if "manifest.json" in files:
            rel = os.path.relpath(dirpath, os.path.dirname(root))
            found.append((f"dir:{dirpath}", rel if ":" in rel else f"{rel}:latest"))
            dirs.clear()
    return found


def _destination(kind: str, destination: str, suffix: str) -> str:
    if kind == "docker":
        return f"docker://{destination.rstrip('/')}/{suffix}"
    if kind == "dir":
        return f"dir:{os.path.join(destination, suffix)}"
    name, _, tag = suffix.rpartition(":")
    return f"oci:{os.path.join(destination, name)}:{tag}"


def sync_plan(
    src_kind: str,
    source: str,
    dest_kind: str,
    destination: str,
    ctx: SystemContext,
    *,
    scoped: bool = False,
) -> list[SyncItem]:
    """What `sync --src SRC_KIND --dest DEST_KIND SOURCE DESTINATION` copies, in order."""
    if src_kind not in SOURCE_KINDS:
        raise InvalidArgument(f'sync: unsupported source transport "{src_kind}" (docker, dir)')
    if dest_kind not in DEST_KINDS:
        raise InvalidArgument(
            f'sync: unsupported destination transport "{dest_kind}" (docker, dir, oci)'
        )
    pairs = _docker_sources(source, ctx, scoped) if src_kind == "docker" else _dir_sources(source)
    return [
        SyncItem(
            source=parse_image_name(src),
            destination=parse_image_name(_destination(dest_kind, destination, suffix)),
            suffix=suffix,
        )
        for src, suffix in pairs
    ]
