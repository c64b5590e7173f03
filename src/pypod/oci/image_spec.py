"""The OCI image-spec and Docker schema 2 documents as frozen records, with their media types.

One set of records serves both formats (they share their JSON shape): :class:`Descriptor`,
:class:`Platform`, :class:`ImageManifest`, :class:`ImageIndex` (also a Docker manifest list)
and :class:`ImageConfig`.  ``parse_*`` validate decoded JSON and raise
:class:`~pypod.errors.ConfigError` naming the JSON path (``layers[2].digest``); unknown keys are
ignored and JSON ``null`` is "absent", as in Go.  ``*_to_dict`` write keys in the Go structs'
order, maps sorted, empty optional members omitted, so that re-serialising is stable.
:func:`detect_manifest_type` is containers/image's ``GuessMIMEType``; :func:`choose_platform`
picks an index entry as containers/image does, with containerd's normalisation.  Schema 1 can be
read (:func:`parse_schema1`), never written.  No I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NoReturn, TypeVar

from pypod.errors import ConfigError, InvalidArgument, NotFound
from pypod.oci.digest import Digest, digest_problem
from pypod.record import field, record

__all__ = [
    "ANNOTATION_REF_NAME",
    "DOCKER_CONFIG",
    "DOCKER_FOREIGN_LAYER",
    "DOCKER_LAYER",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "DOCKER_SCHEMA1",
    "DOCKER_SCHEMA1_SIGNED",
    "MANIFEST_LIST_TYPES",
    "OCI_CONFIG",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_NONDIST",
    "OCI_LAYER_NONDIST_GZIP",
    "OCI_LAYER_NONDIST_ZSTD",
    "OCI_LAYER_ZSTD",
    "OCI_MANIFEST",
    "SINGLE_MANIFEST_TYPES",
    "ContainerConfig",
    "Descriptor",
    "History",
    "ImageConfig",
    "ImageIndex",
    "ImageManifest",
    "Platform",
    "RootFS",
    "Schema1Manifest",
    "choose_platform",
    "config_to_dict",
    "descriptor_to_dict",
    "detect_manifest_type",
    "host_platform",
    "index_to_dict",
    "manifest_digest",
    "manifest_to_dict",
    "normalize_platform",
    "parse_config",
    "parse_descriptor",
    "parse_index",
    "parse_manifest",
    "parse_schema1",
    "platform_to_dict",
    "schema1_payload",
]

# --------------------------------------------------------------------------- media types

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

MANIFEST_LIST_TYPES: tuple[str, ...] = (OCI_INDEX, DOCKER_MANIFEST_LIST)
SINGLE_MANIFEST_TYPES: tuple[str, ...] = (
    OCI_MANIFEST, DOCKER_MANIFEST, DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED,
)  # fmt: skip
#: The annotation naming an image in an OCI layout's index.json.
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"

_INT64_MAX = 2**63 - 1

# --------------------------------------------------------------------------- records


@record
class Platform:
    architecture: str
    os: str
    os_version: str = ""
    os_features: tuple[str, ...] = ()
    variant: str = ""


@record
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict)
    data: str = ""  # base64, as in the JSON
    platform: Platform | None = None
    artifact_type: str = ""


@record
class ImageManifest:
    """An OCI image manifest or a Docker schema 2 manifest (``media_type`` tells which)."""

    schema_version: int
    config: Descriptor
    layers: tuple[Descriptor, ...] = ()
    media_type: str = ""
    artifact_type: str = ""
    subject: Descriptor | None = None
    annotations: dict[str, str] = field(default_factory=dict)


@record
class ImageIndex:
    """An OCI image index or a Docker manifest list."""

    schema_version: int
    manifests: tuple[Descriptor, ...] = ()
    media_type: str = ""
    artifact_type: str = ""
    subject: Descriptor | None = None
    annotations: dict[str, str] = field(default_factory=dict)


@record
class ContainerConfig:
    """The ``config`` member of an image configuration (what a container runs by default)."""

    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    volumes: tuple[str, ...] = ()
    working_dir: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    args_escaped: bool = False


@record
class RootFS:
    type: str = "layers"
    diff_ids: tuple[Digest, ...] = ()


@record
class History:
    created: str = ""
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False


@record
class ImageConfig:
    architecture: str
    os: str
    created: str = ""  # RFC 3339, kept as written
    author: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()
    variant: str = ""
    config: ContainerConfig = field(default_factory=ContainerConfig)
    rootfs: RootFS = field(default_factory=RootFS)
    history: tuple[History, ...] = ()


@record
class Schema1Manifest:
    """A Docker schema 1 manifest (read only).  Lists are in schema 1's order: top layer first."""

    name: str
    tag: str
    architecture: str
    fs_layers: tuple[Digest, ...]
    v1_compatibility: tuple[str, ...]
    signed: bool = False

    def layers(self) -> tuple[Digest, ...]:
        """Layer blobs base first, without the empty ("throwaway") ones."""
        out = []
        for blob, v1 in zip(reversed(self.fs_layers), reversed(self.v1_compatibility), strict=True):
            if not _v1(v1).get("throwaway"):
                out.append(blob)
        return tuple(out)

    def history(self) -> tuple[History, ...]:
        """The image history, oldest first, as an image config would list it."""
        out = []
        for v1 in reversed(self.v1_compatibility):
            data = _v1(v1)
            cmd = (data.get("container_config") or {}).get("Cmd") or []
            out.append(
                History(
                    created=str(data.get("created") or ""),
                    created_by=" ".join(str(c) for c in cmd),
                    author=str(data.get("author") or ""),
                    comment=str(data.get("comment") or ""),
                    empty_layer=bool(data.get("throwaway")),
                )
            )
        return tuple(out)

    def config(self) -> ImageConfig:
        """The configuration of the top layer's v1Compatibility, with history (no diff IDs)."""
        top = _v1(self.v1_compatibility[0]) if self.v1_compatibility else {}
        inner = _Reader.wrap(top.get("config") or {}, "history[0].v1Compatibility.config", "")
        return ImageConfig(
            architecture=str(top.get("architecture") or self.architecture),
            os=str(top.get("os") or "linux"),
            created=str(top.get("created") or ""),
            author=str(top.get("author") or ""),
            config=_container_config(inner),
            history=self.history(),
        )


def _v1(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"v1Compatibility is not valid JSON: {e}", key="history") from None
    if not isinstance(data, dict):
        raise ConfigError("v1Compatibility must be a JSON object", key="history")
    return data


# --------------------------------------------------------------------------- reading

T = TypeVar("T")


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str):
        text = json.dumps(value)
        return f"string {text}" if len(text) <= 80 else "a string"
    return "an array" if isinstance(value, list) else "an object"


class _Reader:
    """A JSON object being read, with its key path for error messages."""

    __slots__ = ("data", "path", "source")

    def __init__(self, data: Mapping[str, object], path: str, source: str) -> None:
        self.data = data
        self.path = path
        self.source = source

    @classmethod
    def wrap(cls, value: object, path: str, source: str) -> _Reader:
        if not isinstance(value, dict):
            raise ConfigError(
                f"must be a JSON object, got {_describe(value)}",
                path=source or None,
                key=path or None,
            )
        return cls(value, path, source)

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, message: str) -> NoReturn:
        raise ConfigError(message, path=self.source or None, key=self.key(name))

    def get(self, name: str, required: bool) -> object:
        value = self.data.get(name)
        if value is None and required:
            self.fail(name, "is required but missing")
        return value

    def string(self, name: str, *, required: bool = False) -> str:
        value = self.get(name, required)
        if value is None:
            return ""
        if not isinstance(value, str):
            self.fail(name, f"must be a string, got {_describe(value)}")
        return value

    def integer(self, name: str, *, required: bool = False) -> int:
        value = self.get(name, required)
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _INT64_MAX:
            self.fail(name, f"must be a non-negative integer, got {_describe(value)}")
        return value

    def boolean(self, name: str) -> bool:
        value = self.data.get(name)
        if value is None:
            return False
        if not isinstance(value, bool):
            self.fail(name, f"must be true or false, got {_describe(value)}")
        return value

    def digest(self, name: str, *, required: bool = True) -> Digest:
        value = self.string(name, required=required)
        if not value and not required:
            return Digest("")
        problem = digest_problem(value)
        if problem is not None:
            self.fail(name, f"invalid digest {json.dumps(value)}: {problem}")
        return Digest(value)

    def array(self, name: str) -> list[object]:
        value = self.data.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(name, f"must be an array, got {_describe(value)}")
        return value

    def strs(self, name: str) -> tuple[str, ...]:
        items = self.array(name)
        for i, item in enumerate(items):
            if not isinstance(item, str):
                self.fail(f"{name}[{i}]", f"must be a string, got {_describe(item)}")
        return tuple(items)  # type: ignore[arg-type]

    def opt_strs(self, name: str) -> tuple[str, ...] | None:
        return None if self.data.get(name) is None else self.strs(name)

    def obj(self, name: str, parse: Callable[[_Reader], T], *, required: bool = False) -> T | None:
        value = self.get(name, required)
        if value is None:
            return None
        return parse(_Reader.wrap(value, self.key(name), self.source))

    def objs(self, name: str, parse: Callable[[_Reader], T]) -> tuple[T, ...]:
        key = self.key(name)
        return tuple(
            parse(_Reader.wrap(item, f"{key}[{i}]", self.source))
            for i, item in enumerate(self.array(name))
        )

    def str_map(self, name: str) -> dict[str, str]:
        value = self.data.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(name, f"must be an object, got {_describe(value)}")
        for k, v in value.items():
            if not isinstance(v, str):
                self.fail(f"{name}[{json.dumps(k)}]", f"must be a string, got {_describe(v)}")
        return dict(value)

    def key_set(self, name: str) -> tuple[str, ...]:
        """A Go ``map[string]struct{}`` (ExposedPorts, Volumes): its keys."""
        value = self.data.get(name)
        if value is None:
            return ()
        if not isinstance(value, dict):
            self.fail(name, f"must be an object, got {_describe(value)}")
        return tuple(value)


def _platform(o: _Reader) -> Platform:
    return Platform(
        architecture=o.string("architecture", required=True),
        os=o.string("os", required=True),
        os_version=o.string("os.version"),
        os_features=o.strs("os.features"),
        variant=o.string("variant"),
    )


def _descriptor(o: _Reader) -> Descriptor:
    return Descriptor(
        media_type=o.string("mediaType"),
        digest=o.digest("digest"),
        size=o.integer("size", required=True),
        urls=o.strs("urls"),
        annotations=o.str_map("annotations"),
        data=o.string("data"),
        platform=o.obj("platform", _platform),
        artifact_type=o.string("artifactType"),
    )


def _schema_version(o: _Reader, expected: int) -> int:
    version = o.integer("schemaVersion", required=True)
    if version != expected:
        o.fail("schemaVersion", f"unsupported schema version {version}; expected {expected}")
    return version


def _check_media_type(o: _Reader, allowed: tuple[str, ...]) -> str:
    media_type = o.string("mediaType")
    if media_type and media_type not in allowed:
        o.fail("mediaType", f"unexpected media type {json.dumps(media_type)} for this document")
    return media_type


def _manifest(o: _Reader) -> ImageManifest:
    return ImageManifest(
        schema_version=_schema_version(o, 2),
        media_type=_check_media_type(o, (OCI_MANIFEST, DOCKER_MANIFEST)),
        artifact_type=o.string("artifactType"),
        config=o.obj("config", _descriptor, required=True),  # type: ignore[arg-type]
        layers=o.objs("layers", _descriptor),
        subject=o.obj("subject", _descriptor),
        annotations=o.str_map("annotations"),
    )


def _index(o: _Reader) -> ImageIndex:
    return ImageIndex(
        schema_version=_schema_version(o, 2),
        media_type=_check_media_type(o, MANIFEST_LIST_TYPES),
        artifact_type=o.string("artifactType"),
        manifests=o.objs("manifests", _descriptor),
        subject=o.obj("subject", _descriptor),
        annotations=o.str_map("annotations"),
    )


def _container_config(o: _Reader) -> ContainerConfig:
    return ContainerConfig(
        user=o.string("User"),
        exposed_ports=o.key_set("ExposedPorts"),
        env=o.strs("Env"),
        entrypoint=o.opt_strs("Entrypoint"),
        cmd=o.opt_strs("Cmd"),
        volumes=o.key_set("Volumes"),
        working_dir=o.string("WorkingDir"),
        labels=o.str_map("Labels"),
        stop_signal=o.string("StopSignal"),
        args_escaped=o.boolean("ArgsEscaped"),
    )


def _rootfs(o: _Reader) -> RootFS:
    kind = o.string("type", required=True)
    if kind != "layers":
        o.fail("type", f'unknown rootfs type {json.dumps(kind)}; expected "layers"')
    key = o.key("diff_ids")
    ids = []
    for i, item in enumerate(o.array("diff_ids")):
        if not isinstance(item, str) or digest_problem(item) is not None:
            reason = digest_problem(item) if isinstance(item, str) else "must be a string"
            raise ConfigError(
                f"invalid diff ID {_describe(item)}: {reason}", path=o.source or None,
                key=f"{key}[{i}]",
            )  # fmt: skip
        ids.append(Digest(item))
    return RootFS(type=kind, diff_ids=tuple(ids))


def _history(o: _Reader) -> History:
    return History(
        created=o.string("created"),
        created_by=o.string("created_by"),
        author=o.string("author"),
        comment=o.string("comment"),
        empty_layer=o.boolean("empty_layer"),
    )


def _config(o: _Reader) -> ImageConfig:
    return ImageConfig(
        created=o.string("created"),
        author=o.string("author"),
        architecture=o.string("architecture", required=True),
        os=o.string("os", required=True),
        os_version=o.string("os.version"),
        os_features=o.strs("os.features"),
        variant=o.string("variant"),
        config=o.obj("config", _container_config) or ContainerConfig(),
        rootfs=o.obj("rootfs", _rootfs, required=True),  # type: ignore[arg-type]
        history=o.objs("history", _history),
    )


def _decode(data: object, source: str) -> object:
    if isinstance(data, bytes | bytearray | memoryview | str):
        try:
            return json.loads(bytes(data) if not isinstance(data, str) else data)
        except ValueError as e:
            raise ConfigError(f"not valid JSON: {e}", path=source or None) from None
    return data


def parse_descriptor(data: object, *, source: str = "") -> Descriptor:
    return _descriptor(_Reader.wrap(_decode(data, source), "", source))


def parse_manifest(data: object, *, source: str = "manifest") -> ImageManifest:
    """An OCI or Docker schema 2 manifest from decoded JSON (or raw bytes)."""
    return _manifest(_Reader.wrap(_decode(data, source), "", source))


def parse_index(data: object, *, source: str = "index") -> ImageIndex:
    """An OCI index or Docker manifest list from decoded JSON (or raw bytes)."""
    return _index(_Reader.wrap(_decode(data, source), "", source))


def parse_config(data: object, *, source: str = "config") -> ImageConfig:
    """An OCI or Docker image configuration from decoded JSON (or raw bytes)."""
    return _config(_Reader.wrap(_decode(data, source), "", source))


def parse_schema1(data: object, *, source: str = "manifest") -> Schema1Manifest:
    """A Docker schema 1 manifest, signed or not (signatures are not verified)."""
    o = _Reader.wrap(_decode(data, source), "", source)
    _schema_version(o, 1)
    layers = o.objs("fsLayers", lambda r: r.digest("blobSum"))
    history = o.objs("history", lambda r: r.string("v1Compatibility", required=True))
    if len(layers) != len(history):
        o.fail(
            "history",
            f"has {len(history)} entries but fsLayers has {len(layers)}; they must match",
        )
    if not layers:
        o.fail("fsLayers", "must list at least one layer")
    return Schema1Manifest(
        name=o.string("name"),
        tag=o.string("tag"),
        architecture=o.string("architecture"),
        fs_layers=layers,
        v1_compatibility=history,
        signed=o.data.get("signatures") is not None,
    )


def _b64url(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def schema1_payload(raw: bytes) -> bytes:
    """The signed payload of a signed schema 1 manifest: `raw` without its ``signatures``
    member, rebuilt from the JWS protected headers (``formatLength``, ``formatTail``) as
    libtrust does.  Signatures are not verified.  InvalidArgument when they are malformed."""
    try:
        doc = json.loads(raw)
        signatures = doc["signatures"]
        if not isinstance(signatures, list) or not signatures:
            raise ValueError("no signatures")
        formats = set()
        for sig in signatures:
            header = json.loads(_b64url(sig["protected"]))
            length, tail = header["formatLength"], _b64url(header["formatTail"])
            if isinstance(length, bool) or not isinstance(length, int):
                raise ValueError("formatLength is not an integer")
            if not 0 < length <= len(raw):
                raise ValueError(f"formatLength {length} is out of range")
            formats.add((length, tail))
    except (ValueError, KeyError, TypeError) as e:
        raise InvalidArgument(f"malformed signed schema 1 manifest: {e}") from None
    if len(formats) != 1:
        raise InvalidArgument(
            "malformed signed schema 1 manifest: the signatures disagree on the payload"
        )
    ((length, tail),) = formats
    return bytes(raw[:length]) + tail


def manifest_digest(raw: bytes) -> Digest:
    """The digest of manifest `raw` as registries compute it: of the bytes, except for a signed
    schema 1 manifest, whose digest is that of its payload (containers/image manifest.Digest)."""
    from pypod.oci.digest import digest_bytes

    try:
        kind = detect_manifest_type(raw)
    except InvalidArgument:
        kind = ""
    if kind == DOCKER_SCHEMA1_SIGNED:
        raw = schema1_payload(raw)
    return digest_bytes(raw)


# --------------------------------------------------------------------------- writing


def platform_to_dict(p: Platform) -> dict[str, Any]:
    out: dict[str, Any] = {"architecture": p.architecture, "os": p.os}
    if p.os_version:
        out["os.version"] = p.os_version
    if p.os_features:
        out["os.features"] = list(p.os_features)
    if p.variant:
        out["variant"] = p.variant
    return out


def descriptor_to_dict(d: Descriptor) -> dict[str, Any]:
    out: dict[str, Any] = {"mediaType": d.media_type, "digest": d.digest, "size": d.size}
    if d.urls:
        out["urls"] = list(d.urls)
    if d.annotations:
        out["annotations"] = _sorted(d.annotations)
    if d.data:
        out["data"] = d.data
    if d.platform is not None:
        out["platform"] = platform_to_dict(d.platform)
    if d.artifact_type:
        out["artifactType"] = d.artifact_type
    return out


def _sorted(m: Mapping[str, Any]) -> dict[str, Any]:
    return {k: m[k] for k in sorted(m)}  # Go writes maps sorted by key


def _document_tail(out: dict[str, Any], subject: Descriptor | None, ann: dict[str, str]) -> None:
    if subject is not None:
        out["subject"] = descriptor_to_dict(subject)
    if ann:
        out["annotations"] = _sorted(ann)


def manifest_to_dict(m: ImageManifest) -> dict[str, Any]:
    out: dict[str, Any] = {"schemaVersion": m.schema_version}
    if m.media_type:
        out["mediaType"] = m.media_type
    if m.artifact_type:
        out["artifactType"] = m.artifact_type
    out["config"] = descriptor_to_dict(m.config)
    out["layers"] = [descriptor_to_dict(d) for d in m.layers]
    _document_tail(out, m.subject, m.annotations)
    return out


def index_to_dict(i: ImageIndex) -> dict[str, Any]:
    out: dict[str, Any] = {"schemaVersion": i.schema_version}
    if i.media_type:
        out["mediaType"] = i.media_type
    if i.artifact_type:
        out["artifactType"] = i.artifact_type
    out["manifests"] = [descriptor_to_dict(d) for d in i.manifests]
    _document_tail(out, i.subject, i.annotations)
    return out


def _container_config_to_dict(c: ContainerConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if c.user:
        out["User"] = c.user
    if c.exposed_ports:
        out["ExposedPorts"] = {p: {} for p in sorted(c.exposed_ports)}
    if c.env:
        out["Env"] = list(c.env)
    if c.entrypoint:
        out["Entrypoint"] = list(c.entrypoint)
    if c.cmd:
        out["Cmd"] = list(c.cmd)
    if c.volumes:
        out["Volumes"] = {v: {} for v in sorted(c.volumes)}
    if c.working_dir:
        out["WorkingDir"] = c.working_dir
    if c.labels:
        out["Labels"] = _sorted(c.labels)
    if c.stop_signal:
        out["StopSignal"] = c.stop_signal
    if c.args_escaped:
        out["ArgsEscaped"] = True
    return out


def _history_to_dict(h: History) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (
        ("created", h.created), ("created_by", h.created_by), ("author", h.author),
        ("comment", h.comment), ("empty_layer", h.empty_layer),
    ):  # fmt: skip
        if value:
            out[key] = value
    return out


def config_to_dict(c: ImageConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if c.created:
        out["created"] = c.created
    if c.author:
        out["author"] = c.author
    out["architecture"] = c.architecture
    out["os"] = c.os
    if c.os_version:
        out["os.version"] = c.os_version
    if c.os_features:
        out["os.features"] = list(c.os_features)
    if c.variant:
        out["variant"] = c.variant
    out["config"] = _container_config_to_dict(c.config)
    out["rootfs"] = {"type": c.rootfs.type, "diff_ids": list(c.rootfs.diff_ids)}
    if c.history:
        out["history"] = [_history_to_dict(h) for h in c.history]
    return out


# --------------------------------------------------------------------------- manifest type

_KNOWN_TYPES = (
    OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
)  # fmt: skip


def detect_manifest_type(raw: bytes, declared_content_type: str | None = None) -> str:
    """The media type of manifest `raw`: the declared Content-Type when it names a manifest type,
    otherwise guessed from the content as containers/image does (``mediaType``, then
    ``schemaVersion``, then the config's media type or the presence of ``manifests``).
    InvalidArgument when it is none of the five kinds.
    """
    declared = (declared_content_type or "").split(";", 1)[0].strip().lower()
    if declared in _KNOWN_TYPES:
        return declared
    try:
        meta = json.loads(raw)
    except ValueError as e:
        raise InvalidArgument(f"manifest is not valid JSON: {e}") from None
    if not isinstance(meta, dict):
        raise InvalidArgument("manifest is not a JSON object")
    media_type = meta.get("mediaType")
    if media_type in (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST):
        return str(media_type)
    signed = meta.get("signatures") is not None
    version = meta.get("schemaVersion")
    if media_type in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED) or version == 1:
        return DOCKER_SCHEMA1_SIGNED if signed else DOCKER_SCHEMA1
    if version == 2:
        config = meta.get("config")
        if isinstance(config, dict) and config.get("mediaType") == OCI_CONFIG:
            return OCI_MANIFEST
        manifests = meta.get("manifests")
        if isinstance(manifests, list) and manifests:
            first = manifests[0]
            if isinstance(first, dict) and first.get("mediaType") == OCI_MANIFEST:
                return OCI_INDEX
            return DOCKER_MANIFEST_LIST
        return DOCKER_MANIFEST
    shown = f" (Content-Type {declared_content_type})" if declared_content_type else ""
    raise InvalidArgument(
        f"unrecognized manifest{shown}: neither an OCI manifest or index nor a Docker schema 1 "
        "or 2 manifest or manifest list"
    )


# --------------------------------------------------------------------------- platforms

# uname -m -> Go's GOARCH (and the variant the CPU implies)
_MACHINE_ARCH: Mapping[str, tuple[str, str]] = MappingProxyType({
    "x86_64": ("amd64", ""), "amd64": ("amd64", ""), "i386": ("386", ""),
    "i486": ("386", ""), "i586": ("386", ""), "i686": ("386", ""),
    "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8"), "armv8l": ("arm", "v8"),
    "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"), "armv5tel": ("arm", "v5"),
    "ppc64le": ("ppc64le", ""), "ppc64": ("ppc64", ""), "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""), "mips64": ("mips64", ""), "loongarch64": ("loong64", ""),
})  # fmt: skip


def normalize_platform(os: str, arch: str, variant: str = "") -> tuple[str, str, str]:
    """(os, arch, variant) in the canonical spelling, as containerd's platforms package does:
    ``x86_64`` -> ``amd64``, ``aarch64`` -> ``arm64``, ``armhf`` -> ``arm``/``v7``, ``arm`` with
    no variant -> ``v7``, ``arm64``/``v8`` -> no variant, ``macos`` -> ``darwin``...
    """
    os, arch, variant = os.lower(), arch.lower(), variant.lower()
    if os == "macos":
        os = "darwin"
    if arch in ("i386", "i686", "x86"):
        arch, variant = "386", ""
    elif arch in ("x86_64", "x86-64", "amd64"):
        arch = "amd64"
        if variant == "v1":
            variant = ""
    elif arch in ("aarch64", "arm64"):
        arch = "arm64"
        if variant in ("8", "v8", "v8.0"):
            variant = ""
    elif arch == "armhf":
        arch, variant = "arm", "v7"
    elif arch == "armel":
        arch, variant = "arm", "v6"
    elif arch == "arm":
        if variant in ("", "7"):
            variant = "v7"
        elif variant in ("5", "6", "8"):
            variant = "v" + variant
    return os, arch, variant


def host_platform() -> Platform:
    """This machine's platform in Go's terms (``linux``/``amd64``, ``linux``/``arm``/``v7``)."""
    import os as _os

    machine = _os.uname().machine
    arch, variant = _MACHINE_ARCH.get(machine, (machine, ""))
    system = _os.uname().sysname.lower()
    _, arch, variant = normalize_platform(system, arch, variant)
    return Platform(architecture=arch, os=system, variant=variant)


def _wanted_variants(arch: str, variant: str) -> tuple[str, ...]:
    """Variants acceptable for `arch`/`variant`, best first; "" (unspecified) always last."""
    if arch == "arm" and variant.startswith("v") and variant[1:].isdigit():
        level = int(variant[1:])
        return (*(f"v{n}" for n in range(level, 4, -1)), "")
    if arch == "arm64":
        return ("", "v8") if not variant else (variant, "")
    if arch == "amd64" and variant.startswith("v") and variant[1:].isdigit():
        level = int(variant[1:])
        return (*(f"v{n}" for n in range(level, 1, -1)), "", "v1")
    return (variant, "") if variant else ("",)


def choose_platform(
    index: ImageIndex,
    os: str | None = None,
    arch: str | None = None,
    variant: str | None = None,
) -> Descriptor:
    """The entry of `index` for the wanted platform (this host's when not given).

    Candidates are tried best first: the exact variant, then older compatible ones (arm v7 runs
    v6 and v5), then an entry without a variant; within one candidate the first entry in the
    index wins.  When no variant is wanted (and none is implied), any variant matches.
    NotFound, with containers/image's message, when nothing fits.
    """
    host = host_platform()
    want_os = os or "linux"
    if arch:
        want_arch, want_variant = arch, variant or ""
    else:
        want_arch = host.architecture
        want_variant = variant if variant is not None else host.variant
    want_os, want_arch, want_variant = normalize_platform(want_os, want_arch, want_variant)
    entries = []
    for d in index.manifests:
        if d.platform is None:
            continue
        p_os, p_arch, p_variant = normalize_platform(
            d.platform.os, d.platform.architecture, d.platform.variant
        )
        if p_os == want_os and p_arch == want_arch:
            entries.append((p_variant, d))
    if not want_variant and want_arch not in ("arm", "arm64"):
        # no variant wanted: one without a variant (or the baseline v1) first, then any
        for p_variant, d in entries:
            if p_variant in ("", "v1"):
                return d
        if entries:
            return entries[0][1]
    else:
        for candidate in _wanted_variants(want_arch, want_variant):
            for p_variant, d in entries:
                if p_variant == candidate:
                    return d
    what = "manifest list" if index.media_type == DOCKER_MANIFEST_LIST else "image index"
    raise NotFound(
        f"no image found in {what} for architecture {json.dumps(want_arch)}, variant "
        f"{json.dumps(want_variant)}, OS {json.dumps(want_os)}"
    )
