"""Images in local storage as podman's image commands see them (libimage's rules).

Lookup (`find_image`, in `image.lookup`, which `run` loads without the rest): a full or short
image id, a stored name, the name normalised (`busybox` -> `docker.io/library/busybox:latest`),
`localhost/NAME`, then any stored name whose repository ends in `/NAME` with the same tag.
Tagging normalises a short name to
`localhost/NAME:latest`, as podman does.  Removal (`remove_images`) follows `podman rmi`: by
name only that name goes while the image has others; by id an image with several names is
refused without `force`; an image used by containers is refused without `force` (with it, the
containers' storage goes too).
"""

from __future__ import annotations

import time

from pypod import jsoncodec
from pypod.errors import InUse, InvalidArgument, PypodError
from pypod.image.lookup import (
    find_image,
    image_config,
    image_exists,
    matching_name,
    split_name,
)
from pypod.image.reference import parse, parse_normalized
from pypod.record import field, record, replace
from pypod.storage.records import Image
from pypod.storage.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Any

__all__ = [
    "HistoryEntry",
    "ImageSummary",
    "RemoveReport",
    "SystemDf",
    "disk_usage",
    "filter_images",
    "find_image",
    "image_config",
    "image_exists",
    "image_history",
    "image_size",
    "inspect_image",
    "list_images",
    "matching_name",
    "normalize_tag_name",
    "prune_images",
    "remove_images",
    "split_name",
    "tag_image",
    "untag_image",
]


@record
class ImageSummary:
    id: str
    names: tuple[str, ...]
    #: the first manifest digest, and every one
    digest: str
    digests: tuple[str, ...]
    #: seconds since the epoch (the config's `created`, else when it was stored)
    created: float
    size: int
    shared_size: int
    containers: int
    #: no name
    dangling: bool
    #: no name and another image builds on it (hidden by `images` without -a)
    intermediate: bool
    parent_id: str
    labels: dict[str, str] | None = None


@record
class HistoryEntry:
    #: the image id for the top entry, "<missing>" for the others
    id: str
    created: float | None
    created_by: str
    size: int
    comment: str
    empty_layer: bool = False


@record
class RemoveReport:
    #: what the user named
    name: str
    untagged: tuple[str, ...] = ()
    #: full id when the image itself was removed
    deleted: str | None = None
    error: PypodError | None = None


@record
class SystemDf:
    images_total: int
    images_active: int
    images_size: int
    images_reclaimable: int
    containers_total: int
    containers_size: int
    per_image: tuple[tuple[str, int, int, int], ...] = field(default_factory=tuple)


@record
class ImageDiskUsage:
    """One row of `podman system df -v` (one per repository:tag of an image)."""

    repository: str
    tag: str
    id: str
    created: float
    size: int
    shared_size: int
    unique_size: int
    containers: int


def _parse_time(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    from datetime import datetime

    text = value.replace("Z", "+00:00")
    if "." in text:  # Go writes nanoseconds; fromisoformat takes at most microseconds
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _created(image: Image, config: dict[str, Any]) -> float:
    t = _parse_time(config.get("created"))
    return t if t is not None else image.created


def image_size(store: Store, image: Image) -> int:
    """Bytes as podman counts them: the layers (uncompressed) plus manifest and config."""
    import os

    size = sum(layer.uncompressed_size or 0 for layer in store.chain(image.top_layer))
    directory = os.path.join(store.storage_paths().images, image.id)
    for digest in (image.config_digest, *image.digests):
        algorithm, _, encoded = digest.partition(":")
        try:  # the blob files as the store names them (see pypod.storage.store)
            size += os.stat(os.path.join(directory, f"{algorithm}-{encoded}")).st_size
        except OSError:
            pass
    return size


def list_images(store: Store, *, all_images: bool = False) -> list[ImageSummary]:
    """The images, newest first (as `podman images`); intermediate ones only with `all_images`."""
    images = store.images()
    layers = {layer.id: layer for layer in store.layers()}
    tops: dict[str | None, list[str]] = {}
    for img in images:
        tops.setdefault(img.top_layer, []).append(img.id)
    configs = {img.id: image_config(store, img) for img in images}
    in_use: dict[str, int] = {}
    for c in store.containers():
        in_use[c.image_id] = in_use.get(c.image_id, 0) + 1
    out: list[ImageSummary] = []
    for img in images:
        config = configs[img.id]
        intermediate = not img.names and _has_child(img, images, layers, configs)
        if intermediate and not all_images:
            continue
        parent_id = ""
        top = layers.get(img.top_layer) if img.top_layer else None
        if top is not None and top.parent is not None:
            parent_id = next(iter(tops.get(top.parent, [])), "")
        labels = (config.get("config") or {}).get("Labels") if config else None
        out.append(
            ImageSummary(
                id=img.id,
                names=img.names,
                digest=img.digest,
                digests=img.digests,
                created=_created(img, config),
                size=image_size(store, img),
                shared_size=0,
                containers=in_use.get(img.id, 0),
                dangling=not img.names,
                intermediate=intermediate,
                parent_id=parent_id,
                labels=labels if isinstance(labels, dict) and labels else None,
            )
        )
    out.sort(key=lambda s: s.created, reverse=True)
    return out


def _has_child(parent: Image, images: Sequence[Image], layers: Mapping[str, Any],
               configs: Mapping[str, dict[str, Any] | None]) -> bool:  # fmt: skip
    """Whether an image builds on `parent` (libimage's layer tree): its top layer is parent's
    or sits on it, and parent's history and diff ids begin its own (a build step that adds no
    layer keeps the top layer)."""
    mine = configs.get(parent.id) or {}
    history = mine.get("history") or []
    diff_ids = (mine.get("rootfs") or {}).get("diff_ids") or []
    for child in images:
        if child.id == parent.id:
            continue
        top = layers.get(child.top_layer) if child.top_layer else None
        if child.top_layer != parent.top_layer and (top is None or top.parent != parent.top_layer):
            continue
        theirs = configs.get(child.id) or {}
        their_history = theirs.get("history") or []
        their_ids = (theirs.get("rootfs") or {}).get("diff_ids") or []
        if (len(their_history) > len(history) and their_history[: len(history)] == history
                and their_ids[: len(diff_ids)] == diff_ids):  # fmt: skip
            return True
    return False


def normalize_tag_name(name: str) -> str:
    """A name as `podman tag` stores it: normalised, short names under `localhost/`, `:latest`
    when there is no tag."""
    raw = parse(name)  # InvalidReference for a malformed name
    if not any(c in raw.domain for c in ".:") and raw.domain != "localhost":
        name = "localhost/" + name
    ref = parse_normalized(name)
    if ref.digest is not None and ref.tag is None:
        raise InvalidArgument(f"{name}: a tag cannot be a digest; give NAME[:TAG]")
    return str(ref.with_default_tag())


def tag_image(store: Store, name: str, targets: Sequence[str]) -> Image:
    if not targets:
        raise InvalidArgument("at least one target name is needed")
    image = find_image(store, name)
    normalized = [normalize_tag_name(t) for t in targets]
    return store.add_names(image.id, normalized)


def untag_image(store: Store, name: str, targets: Sequence[str] = ()) -> Image:
    """Remove names (all of them when none are given) from an image."""
    image = find_image(store, name)
    if not targets:
        return store.remove_names(image.id, image.names)
    drop: list[str] = []
    for t in targets:
        normalized = normalize_tag_name(t)
        if normalized not in image.names:
            raise InvalidArgument(f"{t}: tag not known")
        drop.append(normalized)
    return store.remove_names(image.id, drop)


def remove_images(
    store: Store, names: Iterable[str], *, force: bool = False, all_images: bool = False
) -> list[RemoveReport]:
    """`podman rmi`: one report per name (an error in the report does not stop the others)."""
    reports: list[RemoveReport] = []
    names = list(names)
    if all_images:
        names = [img.id for img in sorted(store.images(), key=lambda i: -i.created)]
    for name in names:
        try:
            reports.append(_remove_one(store, name, force=force, whole=all_images))
        except PypodError as e:
            reports.append(RemoveReport(name=name, error=e))
    store.sweep_layouts()  # the tar layouts of layers no longer stored
    return reports


def _remove_one(store: Store, name: str, *, force: bool, whole: bool) -> RemoveReport:
    image = find_image(store, name)
    named = None if whole else matching_name(name, image)
    if named is not None and len(image.names) > 1:
        store.remove_names(image.id, [named])
        return RemoveReport(name=name, untagged=(named,))
    if named is None and len(image.names) > 1 and not force and not whole:
        raise InUse(
            f'unable to delete image "{image.id}" by ID with more than one tag '
            f"([{' '.join(image.names)}]): please force removal"
        )
    users = [c for c in store.containers() if c.image_id == image.id]
    if users and not force:
        raise InUse(
            f"image used by {users[0].id}: image is in use by a container: consider listing "
            "external containers and force-removing image"
        )
    for c in users:
        store.delete_container(c.id)
    store.delete_image(image.id)
    return RemoveReport(name=name, untagged=image.names, deleted=image.id)


#: `image prune --filter` keys (libimage's image filters)
PRUNE_FILTERS = ("after", "before", "containers", "dangling", "id", "intermediate", "label",
                 "readonly", "reference", "since", "until")  # fmt: skip


def prune_images(
    store: Store, *, all_images: bool = False, filters: Sequence[str] = ()
) -> list[str]:
    """`podman image prune`: remove the dangling images (no name, no image built on them; with
    `all_images`, every image), none a container uses, that pass every filter (podman 4.3 ANDs
    them all: `until=`, `label=`, `dangling=`...); repeatedly, as removing one can leave its
    parent dangling.  The ids removed."""
    check = _prune_filter(store, filters, all_images)
    removed: list[str] = []
    while True:
        used = {c.image_id for c in store.containers()}
        summaries = list_images(store, all_images=True)
        victims = [
            s.id
            for s in summaries
            if s.id not in used and (all_images or (s.dangling and not s.intermediate)) and check(s)
        ]
        if not victims:
            store.sweep_layouts()  # the tar layouts of layers no longer stored
            return removed
        for image_id in victims:
            store.delete_image(image_id)
            removed.append(image_id)


def _prune_filter(
    store: Store, filters: Sequence[str], all_images: bool
) -> Callable[[ImageSummary], bool]:
    """One check for all the prune filters (each must pass); errors before anything is
    removed."""
    checks: list[Callable[[ImageSummary], bool]] = []
    for f in filters:
        key, eq, value = f.partition("=")
        if not eq:
            raise InvalidArgument(
                f"filter input must be in the form of filter=value: {f} is invalid"
            )
        if key == "dangling" and not all_images and not _filter_bool(key, value):
            raise InvalidArgument(
                'specifying "dangling" filter more than once with different values is not '
                "supported"
            )  # podman adds dangling=true itself without --all
        if key not in PRUNE_FILTERS:
            raise InvalidArgument(f'unsupported image filter "{key}"')
        checks.append(_prune_check(store, key, value))
    return lambda s: all(check(s) for check in checks)


def _prune_check(store: Store, key: str, value: str) -> Callable[[ImageSummary], bool]:
    if key == "until":
        limit = parse_until(value)
        return lambda s: s.created < limit
    if key == "dangling":
        dangling = _filter_bool(key, value)
        return lambda s: (s.dangling and not s.intermediate) == dangling
    if key == "containers":
        if value not in ("true", "false"):
            raise InvalidArgument(f'unsupported value "{value}" for containers filter')
        used = value == "true"
        return lambda s: (s.containers > 0) == used
    flt = f"{'since' if key == 'after' else key}={value}"
    filter_images(store, [], [flt])  # looks up before=/since= images now
    return lambda s: bool(filter_images(store, [s], [flt]))


def _filter_bool(key: str, value: str) -> bool:
    """strconv.ParseBool, as podman reads a filter's boolean."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    # podman 4.3's message, its two values swapped as it prints them
    raise InvalidArgument(
        f'non-boolean value "{key}" for {value} filter: strconv.ParseBool: parsing '
        f'"{value}": invalid syntax'
    )


def parse_until(text: str, now: float | None = None) -> float:
    """An `until=` filter's time (docker's timetype.GetTimestamp): a Go duration before now
    ("24h", "10m30s"), an RFC 3339 time or a day (local time without a zone), or Unix
    seconds ("1700000000.5")."""
    import datetime as dt
    import time as time_mod

    from pypod.image.gotime import parse_go_duration

    now = time_mod.time() if now is None else now
    if text != "0":
        try:
            return now - parse_go_duration(text) / 1e9
        except InvalidArgument:
            pass  # not a duration: a time
    local = not (any(c in text for c in "zZ+") or text.count("-") == 3)
    value = text[:-1] + "+00:00" if text[-1:] in "zZ" else text
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is not None and ("T" in text or text.count("-") >= 2):
        if parsed.tzinfo is None:
            if not local:
                raise InvalidArgument(f'failed to parse value as time or duration: "{text}"')
            return time_mod.mktime(parsed.timetuple()) + parsed.microsecond / 1e6
        return parsed.timestamp()
    import re

    if "-" not in text and re.fullmatch(r"[0-9]+(\.[0-9]{1,9})?", text):
        return float(text)
    raise InvalidArgument(f'failed to parse value as time or duration: "{text}"')


def image_history(store: Store, name: str) -> list[HistoryEntry]:
    """The config's history, newest first, with each non-empty entry's layer size."""
    image = find_image(store, name)
    config = image_config(store, image)
    chain = list(reversed(store.chain(image.top_layer)))  # bottom first
    history = config.get("history") if isinstance(config.get("history"), list) else []
    entries: list[HistoryEntry] = []
    index = 0
    for h in history or []:
        if not isinstance(h, dict):
            continue
        empty = bool(h.get("empty_layer"))
        size = 0
        if not empty and index < len(chain):
            size = chain[index].uncompressed_size or 0
            index += 1
        entries.append(
            HistoryEntry(
                id="<missing>",
                created=_parse_time(h.get("created")),
                created_by=str(h.get("created_by", "")),
                size=size,
                comment=str(h.get("comment", "")),
                empty_layer=empty,
            )
        )
    if not entries:  # no history: one entry per layer, as podman shows it
        entries = [
            HistoryEntry(
                id="<missing>",
                created=layer.created,
                created_by="",
                size=layer.uncompressed_size or 0,
                comment="",
            )  # fmt: skip
            for layer in chain
        ]
    entries.reverse()
    if entries:
        top = entries[0]
        entries[0] = HistoryEntry(
            id=image.id,
            created=top.created,
            created_by=top.created_by,
            size=top.size,
            comment=top.comment,
            empty_layer=top.empty_layer,
        )
    return entries


def go_time(t: float, *, nanos: bool = True) -> str:
    """RFC 3339 in UTC as Go's time.Time marshals it (fraction without trailing zeros)."""
    whole = int(t)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    if nanos:
        frac = f"{t - whole:.9f}"[2:].rstrip("0")
        if frac:
            text += "." + frac
    return text + "Z"


def _repo_digests(image: Image) -> list[str]:
    out: list[str] = []
    for name in image.names:
        repo, _, digest = split_name(name)
        for d in (image.digest,) if digest == "<none>" else (digest,):
            if d and f"{repo}@{d}" not in out:
                out.append(f"{repo}@{d}")
    return out


def inspect_image(store: Store, name: str) -> dict[str, Any]:
    """`podman image inspect`'s object for one image."""
    image = find_image(store, name)
    config = image_config(store, image)
    layers = list(reversed(store.chain(image.top_layer)))
    size = image_size(store, image)
    graph_data: dict[str, str] = {}
    paths = store.storage_paths()
    if image.top_layer is not None:
        top = f"{paths.driver_home}/{image.top_layer}"
        if paths.driver == "overlay":
            lowers = [f"{paths.driver_home}/{layer.id}/diff" for layer in reversed(layers[:-1])]
            if lowers:
                graph_data["LowerDir"] = ":".join(lowers)
            graph_data["UpperDir"] = f"{top}/diff"
            graph_data["WorkDir"] = f"{top}/work"
        else:
            graph_data["Dir"] = store.driver.diff_path(image.top_layer)
    manifest_annotations: dict[str, str] = {}
    try:
        manifest = jsoncodec.loads(store.image_blob(image.id, image.digest)) if image.digest else {}
        if isinstance(manifest.get("annotations"), dict):
            manifest_annotations = manifest["annotations"]
    except (ValueError, PypodError):
        pass
    cfg = config.get("config") if isinstance(config.get("config"), dict) else {}
    history = config.get("history") if isinstance(config.get("history"), list) else []
    last_comment = ""
    for h in history or []:
        if isinstance(h, dict):
            last_comment = str(h.get("comment", "")) or last_comment
    created = _created(image, config)
    summary = [s for s in list_images(store, all_images=True) if s.id == image.id]
    return {
        "Id": image.id,
        "Digest": image.digest,
        "RepoTags": [n for n in image.names if "@" not in n],
        "RepoDigests": _repo_digests(image),
        "Parent": summary[0].parent_id if summary else "",
        "Comment": str(config.get("comment", "")) or last_comment,
        "Created": config.get("created") or go_time(created),
        "Config": cfg or {},
        "Version": str(config.get("docker_version", "")),
        "Author": str(config.get("author", "")),
        "Architecture": str(config.get("architecture", "")),
        "Os": str(config.get("os", "")),
        "Size": size,
        "VirtualSize": size,
        "GraphDriver": {"Name": paths.driver, "Data": graph_data},
        "RootFS": {"Type": "layers", "Layers": [layer.diff_id for layer in layers]},
        "Labels": (cfg or {}).get("Labels") or None,
        "Annotations": manifest_annotations,
        "ManifestType": image.manifest_media_type,
        "User": str((cfg or {}).get("User", "")),
        "History": history or [],
        "NamesHistory": list(reversed(image.names)),
    }


def disk_usage(store: Store) -> SystemDf:
    """The numbers of `podman system df` (images and containers)."""
    usage = store.disk_usage()
    active = {u.id for u in usage.images if u.containers}
    total = usage.layers_size
    kept: dict[str, int] = {}  # layers of images in use: not reclaimable
    for img in store.images():
        if img.id in active:
            for layer in store.chain(img.top_layer):
                kept[layer.id] = layer.uncompressed_size or 0
    unused = max(0, total - sum(kept.values()))
    return SystemDf(
        images_total=len(usage.images),
        images_active=len(active),
        images_size=total,
        images_reclaimable=unused,
        containers_total=len(usage.containers),
        containers_size=sum(size for _, size in usage.containers),
        per_image=tuple((u.id, u.size, u.shared_size, u.containers) for u in usage.images),
    )


def tree_size(path: str) -> int:
    """Bytes of the files below `path` (apparent sizes, hardlinks once), as podman's
    SizeOfPath counts a volume."""
    import os
    import stat

    total = 0
    seen: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(path):
        for name in files + dirs:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen or stat.S_ISDIR(st.st_mode):
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def image_disk_usage(store: Store) -> tuple[list[ImageDiskUsage], int]:
    """The images' disk usage as podman 4 (libimage's DiskUsage) counts it: one row per
    repository:tag (`<none>` for an image with no name), its size shared with its parent
    image (the image whose top layer is just below its own) or, when other images build on it,
    all shared; and the bytes all images take, each layer counted once."""
    images = store.images()
    layers = {layer.id: layer for layer in store.layers()}
    by_top: dict[str, list[Image]] = {}
    for img in images:
        if img.top_layer is not None:
            by_top.setdefault(img.top_layer, []).append(img)
    below = {
        layers[img.top_layer].parent
        for img in images
        if img.top_layer in layers and layers[img.top_layer].parent is not None
    }
    used: dict[str, int] = {}
    for c in store.containers():
        used[c.image_id] = used.get(c.image_id, 0) + 1
    sizes = {img.id: image_size(store, img) for img in images}
    rows: list[ImageDiskUsage] = []
    total = 0
    counted: set[str] = set()
    for img in images:
        size = sizes[img.id]
        unique, shared = size, 0
        top = layers.get(img.top_layer) if img.top_layer else None
        parents = by_top.get(top.parent, []) if top is not None and top.parent else []
        if img.top_layer in below:  # images build on it: everything is shared
            unique, shared = 0, size
        elif parents:
            shared = sizes[parents[0].id]
            unique = size - shared
        config = image_config(store, img)
        base = ImageDiskUsage(
            repository="<none>",
            tag="<none>",
            id=img.id,
            created=_created(img, config),
            size=shared + unique,
            shared_size=shared,
            unique_size=unique,
            containers=used.get(img.id, 0),
        )
        tagged = [split_name(n) for n in img.names]
        pairs = [(repo, tag) for repo, tag, _ in tagged if tag != "<none>"]
        rows += [replace(base, repository=r, tag=t) for r, t in pairs] or [base]
        for layer in store.chain(img.top_layer):
            if layer.id in counted:
                size -= layer.uncompressed_size or 0
            counted.add(layer.id)
        total += size
    return rows, total


def filter_images(
    store: Store, summaries: Sequence[ImageSummary], filters: Sequence[str]
) -> list[ImageSummary]:
    """`podman images --filter`: dangling, label, reference, before, since, id, readonly,
    intermediate; different keys must all match, values of one key any."""
    import fnmatch

    by_key: dict[str, list[str]] = {}
    for f in filters:
        key, eq, value = f.partition("=")
        if not eq:
            raise InvalidArgument(f"invalid image filter {f!r}: use KEY=VALUE")
        by_key.setdefault(key, []).append(value)
    created: dict[str, float] = {}
    for key in ("before", "since"):
        for value in by_key.get(key, []):
            image = find_image(store, value)
            created[value] = _created(image, image_config(store, image))

    def boolean(key: str, value: str) -> bool:
        if value.lower() not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"invalid {key} filter value {value!r}: use true or false")
        return value.lower() in ("true", "1")

    def one(s: ImageSummary, key: str, value: str) -> bool:
        if key == "dangling":
            return s.dangling == boolean(key, value)
        if key == "intermediate":
            return s.intermediate == boolean(key, value)
        if key == "readonly":
            return not boolean(key, value)
        if key == "label":
            k, eq, v = value.partition("=")
            labels = s.labels or {}
            return k in labels and (not eq or labels[k] == v)
        if key == "id":
            return s.id.startswith(value.removeprefix("sha256:"))
        if key == "before":
            return s.created < created[value]
        if key == "since":
            return s.created > created[value]
        if key == "reference":
            for name in s.names:
                repo, tag, _ = split_name(name)
                forms = {name, repo, f"{repo}:{tag}"}
                short = repo.rsplit("/", 1)[-1]
                forms |= {short, f"{short}:{tag}"}
                if any(fnmatch.fnmatchcase(form, value) for form in forms):
                    return True
            return False
        raise InvalidArgument(f'invalid image filter "{key}"')

    return [
        s
        for s in summaries
        if all(any(one(s, key, v) for v in values) for key, values in by_key.items())
    ]
