"""Finding an image in local storage by what a user calls it (libimage's lookup rules).

The part of `image.local` that `pypod run` and `create` need (`find_image`, `matching_name`,
`image_config`), in a module of its own so that they do not load the rest (listing, removal,
history, inspection: ~0.3 ms of every start); `image.local` offers them too.

Lookup (`find_image`): a full or short image id, a stored name, the name normalised
(`busybox` -> `docker.io/library/busybox:latest`), `localhost/NAME`, then any stored name whose
repository ends in `/NAME` with the same tag.
"""

from __future__ import annotations

from pypod import jsoncodec
from pypod.errors import ImageNotFound, InvalidArgument, PypodError
from pypod.image.reference import parse, parse_normalized

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pypod.storage.records import Image
    from pypod.storage.store import Store

__all__ = ["find_image", "image_config", "image_exists", "matching_name", "split_name"]


def _not_known(name: str) -> ImageNotFound:
    return ImageNotFound(f"{name}: image not known")


def split_name(name: str) -> tuple[str, str, str]:
    """(repository, tag, digest) of a stored name; "<none>" for what is missing."""
    repo, _, digest = name.partition("@")
    tag = "<none>"
    slash = repo.rfind("/")
    colon = repo.rfind(":")
    if colon > slash:
        repo, tag = repo[:colon], repo[colon + 1 :]
    return repo, tag, digest or "<none>"


def find_image(store: Store, name: str) -> Image:
    """The image `name` names (id, id prefix, digest or name, podman's lookup rules)."""
    if not name:
        raise InvalidArgument("an image name or id is needed")
    name = name.removeprefix("containers-storage:")
    try:
        return store.image(name)
    except ImageNotFound:
        pass
    except InvalidArgument as e:
        raise InvalidArgument(f"{name}: {e}") from None
    candidates: list[str] = []
    try:
        ref = parse_normalized(name).with_default_tag()
        candidates.append(str(ref))
        if ref.tag is not None and ref.digest is not None:
            candidates.append(f"{ref.name}@{ref.digest}")
        raw = parse(name)
        if not any(c in raw.domain for c in ".:") and raw.domain != "localhost":
            candidates.append(f"localhost/{name if raw.tag or raw.digest else name + ':latest'}")
    except InvalidArgument:
        raise _not_known(name) from None
    for candidate in candidates:
        try:
            return store.image(candidate)
        except ImageNotFound:
            pass
    # a short name matches a stored name whose repository ends with it ("/NAME:TAG")
    raw_ref = parse(name)
    tag = raw_ref.tag or ("latest" if raw_ref.digest is None else None)
    want = raw_ref.name
    for img in store.images():
        for stored in img.names:
            repo, stored_tag, stored_digest = split_name(stored)
            if not (repo == want or repo.endswith("/" + want)):
                continue
            if raw_ref.digest is not None:
                if raw_ref.digest in img.digests or stored_digest == raw_ref.digest:
                    return img
            elif stored_tag == tag:
                return img
    raise _not_known(name)


def image_exists(store: Store, name: str) -> bool:
    try:
        find_image(store, name)
    except (ImageNotFound, InvalidArgument):
        return False
    return True


def image_config(store: Store, image: Image) -> dict[str, Any]:
    try:
        doc = jsoncodec.loads(store.image_blob(image.id, image.config_digest))
    except (ValueError, PypodError):
        return {}
    return doc if isinstance(doc, dict) else {}


def matching_name(name: str, image: Image) -> str | None:
    """The stored name `name` designates on `image`, or None when it was an id/digest."""
    if name in image.names:
        return name
    if name.startswith("sha256:"):
        return None
    try:
        raw = parse(name)
    except InvalidArgument:  # a full id, for one
        return None
    # a name first, as podman: "ee" is localhost/ee:latest when the image has that name, even
    # if its id begins with "ee" (an id prefix that names nothing matches nothing here)
    for candidate in image.names:
        repo, tag, _ = split_name(candidate)
        want_tag = raw.tag or "latest"
        if (repo == raw.name or repo.endswith("/" + raw.name)) and tag == want_tag:
            return candidate
    return None
