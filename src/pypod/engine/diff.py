"""`pypod diff`: what a container (or an image's top layer) changed, as podman lists it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pypod.errors import ContainerNotFound, ImageNotFound, InvalidArgument, NotFound, PypodError

if TYPE_CHECKING:
    from pypod.engine.containers import Engine
    from pypod.storage.archive.changes import Change

#: paths the engine itself makes in every container (mount points, generated files): podman
#: leaves them out of a diff (libpod's initInodes)
HIDDEN = frozenset(
    {
        "/dev",
        "/etc/hostname",
        "/etc/hosts",
        "/etc/resolv.conf",
        "/etc/mtab",
        "/proc",
        "/run",
        "/run/notify",
        "/run/.containerenv",
        "/run/secrets",
        "/run/podman-init",
        "/sys",
    }
)


def diff(eng: Engine, name: str) -> list[Change]:
    """The changes of image, container or layer `name` against its parent layer (podman looks
    for an image first, then a container, then a layer), sorted by path."""
    store = eng.store
    layer_id: str | None = None
    try:
        from pypod.image.local import find_image

        layer_id = find_image(store, name).top_layer
        if layer_id is None:
            return []
    except (ImageNotFound, InvalidArgument):
        pass
    if layer_id is None:
        try:
            c = eng.lookup(name)
        except (ContainerNotFound, InvalidArgument):
            pass
        else:
            return [ch for ch in store.diff(c.id) if ch.path not in HIDDEN]
        try:
            layer_id = store.layer(name).id
        except PypodError:
            raise NotFound(f"{name} not found: layer not known") from None
    parent = store.layer(layer_id).parent
    return [ch for ch in store.driver.changes(layer_id, parent) if ch.path not in HIDDEN]


def diff_between(eng: Engine, name: str, other: str) -> list[Change]:
    """The changes that turn `other`'s files into `name`'s (podman's `diff NAME OTHER`); each
    an image or a container, their whole root filesystems compared."""
    from pypod.storage.archive.changes import changes_between

    store = eng.store
    new_layer, old_layer = _layer_of(eng, name), _layer_of(eng, other)
    if new_layer is not None and store.layer(new_layer).parent == old_layer:
        # one layer over the other: its own changes, as for one argument (containers/storage
        # does the same: the driver's diff when `other` is the parent, a full compare if not)
        found = store.driver.changes(new_layer, old_layer)
    else:
        with _Root(eng, other) as old, _Root(eng, name) as new:
            found = changes_between(old.path, new.path)
    return [ch for ch in found if ch.path not in HIDDEN]


def _layer_of(eng: Engine, name: str) -> str | None:
    """The top layer of image `name`, or the layer of container `name`; None when neither."""
    from pypod.image.local import find_image

    try:
        return find_image(eng.store, name).top_layer
    except (ImageNotFound, InvalidArgument):
        pass
    try:
        return eng.store.container(eng.lookup(name).id).layer_id
    except (ContainerNotFound, InvalidArgument):
        return None


class _Root:
    """The mounted root filesystem of an image (through a scratch storage container: the
    store mounts containers only) or of a container, for the time of a comparison."""

    def __init__(self, eng: Engine, name: str) -> None:
        self.eng = eng
        self.scratch: str | None = None
        from pypod.image.local import find_image

        store = eng.store
        try:
            image = find_image(store, name)
        except (ImageNotFound, InvalidArgument):
            try:
                self.cid = eng.lookup(name).id
            except (ContainerNotFound, InvalidArgument):
                raise NotFound(f"{name} not found: no image or container of that name") from None
        else:
            self.scratch = self.cid = store.create_container(image.id).id
        try:
            self.path = store.mount_container(self.cid)
        except BaseException:
            self._drop()
            raise

    def _drop(self) -> None:
        if self.scratch is not None:
            self.eng.store.delete_container(self.scratch)
            self.scratch = None

    def __enter__(self) -> _Root:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.eng.store.unmount_container(self.cid)
        finally:
            self._drop()
