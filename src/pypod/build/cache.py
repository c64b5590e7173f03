"""The layer cache of `pypod build` (`--layers`): the image an earlier build made for a step.

A step's key is its parent image and the history entry buildah would write for it
(`instructions.created_by`: RUN with its build args, COPY/ADD with the content digest).  An
image matches when its history is the parent's plus one entry with that `created_by` (and the
same `empty_layer`), its layers are the parent's (plus one for a step that writes files), and
its config says what the step leaves in the config (Env, Cmd, Labels ...: `ENV A=$X` writes the
same history for every X, so the config is compared too), and its manifest is of the format
asked for (oci or docker).  Intermediate images are stored
without names; any image, named or not, may serve.  Of several matches the newest wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pypod.errors import ImageNotFound
from pypod.image.local import image_config
from pypod.storage.records import Image
from pypod.storage.store import Store

#: config keys compared (what a Containerfile can set; the builder's own labels are ignored)
COMPARED_KEYS = (
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Labels",
    "Volumes",
    "StopSignal",
    "Healthcheck",
    "Shell",
    "OnBuild",
)
#: labels a builder writes by itself (not compared)
_OWN_LABELS = ("io.buildah.version", "io.pypod.version")
_HISTORY_KEYS = ("created_by", "empty_layer", "comment", "author")


def _history_key(entry: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(bool(entry.get(k)) if k == "empty_layer" else entry.get(k) or ""
                 for k in _HISTORY_KEYS)  # fmt: skip


#: keys only a docker-format image keeps (an OCI commit drops them)
DOCKER_ONLY_KEYS = ("Healthcheck", "Shell", "OnBuild")


def comparable(config: Mapping[str, Any], *, docker: bool = True) -> dict[str, Any]:
    """The part of a Docker-style config the cache compares (empty values dropped)."""
    out: dict[str, Any] = {}
    for key in COMPARED_KEYS:
        if not docker and key in DOCKER_ONLY_KEYS:
            continue
        value = config.get(key)
        if key == "Labels" and value:
            value = {k: v for k, v in value.items() if k not in _OWN_LABELS}
        if value:
            out[key] = value
    return out


class LayerCache:
    """The configs of the store's images, read once per build, and the lookup over them."""

    __slots__ = ("_configs", "_created", "_docker", "store")

    def __init__(self, store: Store) -> None:
        self.store = store
        self._configs: dict[str, dict[str, Any]] | None = None
        self._created: dict[str, float] = {}
        #: image id -> whether its manifest is Docker's (else OCI)
        self._docker: dict[str, bool] = {}

    def _all(self) -> dict[str, dict[str, Any]]:
        if self._configs is None:
            self._configs = {}
            for image in self.store.images():
                self._remember(image)
        return self._configs

    def config(self, image_id: str) -> dict[str, Any]:
        """The whole config document of an image (read and kept on first use)."""
        configs = self._all()
        if image_id not in configs:
            self.add(image_id)
        return configs.get(image_id, {})

    def add(self, image_id: str) -> None:
        """An image committed during this build (so that a later step may find it)."""
        self._all()
        try:
            image = self.store.image(image_id)
        except ImageNotFound:  # removed meanwhile: nothing to cache
            return
        self._remember(image)

    def _remember(self, image: Image) -> None:
        assert self._configs is not None
        self._configs[image.id] = image_config(self.store, image)
        self._created[image.id] = image.created
        self._docker[image.id] = "docker" in image.manifest_media_type

    def forget(self, image_id: str) -> None:
        if self._configs is not None:
            self._configs.pop(image_id, None)

    def find(
        self,
        parent_id: str,
        created_by: str,
        *,
        empty_layer: bool,
        config: Mapping[str, Any],
        docker: bool = False,
    ) -> str | None:
        """The ID of an image that is `parent_id` ("" for scratch) plus this step, or None."""
        parent = self.config(parent_id) if parent_id else {}
        parent_history = [_history_key(h) for h in parent.get("history") or ()]
        parent_layers = list((parent.get("rootfs") or {}).get("diff_ids") or ())
        want_layers = len(parent_layers) + (0 if empty_layer else 1)
        want_config = comparable(config, docker=docker)
        best: tuple[float, str] | None = None
        for image_id, doc in self._all().items():
            if image_id == parent_id or self._docker.get(image_id) != docker:
                continue  # an image of the other format would make the result that format
            history = doc.get("history") or []
            if len(history) != len(parent_history) + 1:
                continue
            last = history[-1]
            if last.get("created_by") != created_by or bool(last.get("empty_layer")) != (
                empty_layer
            ):
                continue
            layers = list((doc.get("rootfs") or {}).get("diff_ids") or ())
            if len(layers) != want_layers or layers[: len(parent_layers)] != parent_layers:
                continue
            if [_history_key(h) for h in history[:-1]] != parent_history:
                continue
            if comparable(doc.get("config") or {}, docker=docker) != want_config:
                continue
            created = self._created.get(image_id, 0.0)
            if best is None or created > best[0]:
                best = (created, image_id)
        return best[1] if best else None
