"""`pypod-build inspect`: buildah's BuilderInfo document, for a working container or an image.

buildah prints the same structure for both: the base image, its config and manifest (as JSON
strings), the OCI and Docker views of the config being built, the namespace options of its
`run`.  Templates see Go field names (`{{.OCIv1.Config.Env}}`, `{{.Docker.Config.Cmd}}`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pypod.cli.build.common import (
    exactly,
    go_struct,
    open_build_store,
    out,
    plain_struct,
    template_out,
)
from pypod.cli.build.main import Command, Globals
from pypod.cli.flags import Flag, Parsed
from pypod.cli.gotemplate import Struct
from pypod.errors import ContainerNotFound, ImageNotFound, InvalidArgument, PypodError

BUILDAH_TYPE = "buildah 0.0.1"

_DOCKER_CONFIG_KEYS = ("Hostname", "Domainname", "User", "AttachStdin", "AttachStdout",
                       "AttachStderr", "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env",
                       "Cmd", "Healthcheck", "ArgsEscaped", "Image", "Volumes", "WorkingDir",
                       "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild", "Labels",
                       "StopSignal", "StopTimeout", "Shell")  # fmt: skip
_DOCKER_ALWAYS = {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
                  "AttachStdout": False, "AttachStderr": False, "Tty": False,
                  "OpenStdin": False, "StdinOnce": False, "Env": None, "Cmd": None, "Image": "",
                  "Volumes": None, "WorkingDir": "", "Entrypoint": None, "OnBuild": None,
                  "Labels": None}  # fmt: skip
_OCI_CONFIG_KEYS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir",
                    "Labels", "StopSignal")  # fmt: skip
_NAMESPACES = (("cgroup", True), ("ipc", False), ("mount", False), ("network", False),
               ("pid", False), ("user", True), ("uts", False))  # fmt: skip


def docker_config(cfg: dict[str, Any], *, container: bool = False) -> dict[str, Any]:
    """The Docker schema2 `config` object (every field Go always writes, in Go's order); a
    working container's shows `OnBuild: []` where an image's has null (as buildah)."""
    out_cfg: dict[str, Any] = {}
    for key in _DOCKER_CONFIG_KEYS:
        if key in cfg and cfg[key] not in (None, "", [], {}):
            out_cfg[key] = cfg[key]
        elif key in _DOCKER_ALWAYS:
            out_cfg[key] = cfg.get(key) if key in cfg else _DOCKER_ALWAYS[key]
    if container and out_cfg.get("OnBuild") is None:
        out_cfg["OnBuild"] = []
    return out_cfg


def oci_config(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: cfg[k] for k in _OCI_CONFIG_KEYS if cfg.get(k) not in (None, "", [], {})}


def _oci_doc(image_config: dict[str, Any], cfg: dict[str, Any], history: list[Any],
             author: str) -> dict[str, Any]:  # fmt: skip
    doc: dict[str, Any] = {}
    if image_config.get("created"):
        doc["created"] = image_config["created"]
    if author:
        doc["author"] = author
    doc["architecture"] = image_config.get("architecture", "amd64")
    doc["os"] = image_config.get("os", "linux")
    doc["config"] = oci_config(cfg)
    doc["rootfs"] = image_config.get("rootfs") or {"type": "layers", "diff_ids": []}
    doc["history"] = history
    return doc


def _docker_doc(image_config: dict[str, Any], cfg: dict[str, Any], history: list[Any],
                author: str, container: bool) -> dict[str, Any]:  # fmt: skip
    doc: dict[str, Any] = {}
    if image_config.get("created"):
        doc["created"] = image_config["created"]
    doc["container_config"] = docker_config(cfg, container=container)
    if author:
        doc["author"] = author
    doc["config"] = docker_config(cfg, container=container)
    doc["architecture"] = image_config.get("architecture", "amd64")
    doc["os"] = image_config.get("os", "linux")
    doc["rootfs"] = image_config.get("rootfs") or {"type": "layers", "diff_ids": []}
    doc["history"] = history
    return doc


def builder_info(*, from_image: str, from_image_id: str, from_image_digest: str,
                 image_config: dict[str, Any], manifest: str, container: str = "",
                 container_id: str = "", mount_point: str = "",
                 config: dict[str, Any] | None = None, author: str | None = None,
                 history: Sequence[Any] | None = None,
                 annotations: dict[str, str] | None = None,
                 created_by: str = "") -> dict[str, Any]:  # fmt: skip
    """buildah's BuilderInfo (key order as buildah prints it)."""
    cfg = config if config is not None else dict(image_config.get("config") or {})
    hist = list(history if history is not None else image_config.get("history") or [])
    who = author if author is not None else str(image_config.get("author", ""))
    return {
        "Type": BUILDAH_TYPE,
        "FromImage": from_image,
        "FromImageID": from_image_id,
        "FromImageDigest": from_image_digest,
        "Config": json.dumps(image_config, separators=(",", ":")) if image_config else "",
        "Manifest": manifest,
        "Container": container,
        "ContainerID": container_id,
        "MountPoint": mount_point,
        "ProcessLabel": "",
        "MountLabel": "",
        "ImageAnnotations": annotations if annotations is not None else {},
        "ImageCreatedBy": created_by,
        "OCIv1": _oci_doc(image_config, cfg, hist, who),
        "Docker": _docker_doc(image_config, cfg, hist, who, bool(container_id)),
        "DefaultMountsFilePath": "",
        "Isolation": "oci",
        "NamespaceOptions": [{"Name": n, "Host": h, "Path": ""} for n, h in _NAMESPACES],
        "Capabilities": None,
        "ConfigureNetwork": "NetworkDefault",
        "CNIPluginPath": "",
        "CNIConfigDir": "",
        "IDMappingOptions": {
            "HostUIDMapping": True,
            "HostGIDMapping": True,
            "UIDMap": [],
            "GIDMap": [],
            "AutoUserNs": False,
            "AutoUserNsOpts": {
                "Size": 0,
                "InitialSize": 0,
                "PasswdFile": "",
                "GroupFile": "",
                "AdditionalUIDMappings": None,
                "AdditionalGIDMappings": None,
            },
        },  # fmt: skip
        "History": hist,
        "Devices": None,
    }


def image_info(g: Globals, name: str) -> dict[str, Any]:
    from pypod.image import local

    with open_build_store(g) as store:
        image = local.find_image(store, name)
        cfg = local.image_config(store, image)
        manifest = ""
        if image.digest:
            try:
                manifest = store.image_blob(image.id, image.digest).decode()
            except PypodError:
                manifest = ""
    annotations: dict[str, str] = {}
    if manifest:
        try:
            found = json.loads(manifest).get("annotations")
            annotations = found if isinstance(found, dict) else {}
        except ValueError:
            pass
    return builder_info(
        from_image=image.names[0] if image.names else image.id,
        from_image_id=image.id,
        from_image_digest=image.digest,
        image_config=cfg,
        manifest=manifest,
        annotations=annotations,
    )


def container_info(g: Globals, name: str) -> dict[str, Any]:
    from pypod.build.builder import Builder

    with open_build_store(g) as store:
        b = Builder.open(store, name)
        image_config: dict[str, Any] = {}
        manifest = ""
        digest = ""
        if b.from_image_id:
            from pypod.image import local

            try:
                image = store.image(b.from_image_id)
                image_config = local.image_config(store, image)
                digest = image.digest
                if image.digest:
                    manifest = store.image_blob(image.id, image.digest).decode()
            except PypodError:
                pass
        annotations = dict(getattr(b, "annotations", None) or {})
        if b.from_image_id:
            annotations.setdefault("org.opencontainers.image.base.digest", digest)
            annotations.setdefault("org.opencontainers.image.base.name", b.from_image)
        return builder_info(
            from_image=b.from_image,
            from_image_id=b.from_image_id,
            from_image_digest=digest,
            image_config=image_config,
            manifest=manifest,
            container=b.name,
            container_id=b.container_id,
            mount_point=b.mount_point or "",
            config=dict(b.config),
            author=b.author,
            history=list(b.history),
            annotations=annotations,
            created_by=str(getattr(b, "created_by", "") or ""),
        )


def cmd_inspect(g: Globals, opts: Parsed) -> int:
    exactly(opts.args, 1)
    kind = opts.text("type") or "container"
    if kind not in ("container", "image", "manifest"):
        raise InvalidArgument('the only recognized types are "container" and "image"')
    name = opts.args[0]
    if kind == "manifest":
        from pypod.errors import NotSupported

        raise NotSupported("'inspect --type manifest' is not supported yet")
    if kind == "container":
        try:
            info = container_info(g, name)
        except ContainerNotFound:
            try:
                info = image_info(g, name)
            except ImageNotFound as e:
                raise ImageNotFound(f"importing settings: {e}") from None
    else:
        try:
            info = image_info(g, name)
        except ImageNotFound as e:
            raise ImageNotFound(f"importing settings: {e}") from None
    fmt = opts.text("format")
    if fmt:
        data = Struct({k: plain_struct(v) for k, v in info.items()})
        data["OCIv1"] = _with_go_fields(go_struct(info["OCIv1"]), _OCI_GO_FIELDS)
        data["Docker"] = _with_go_fields(go_struct(info["Docker"]), _DOCKER_GO_FIELDS)
        template_out(fmt, data)
        return 0
    out(json.dumps(info, indent=4) + "\n")
    return 0


_CONFIG_LISTS = ("Env", "Entrypoint", "Cmd", "OnBuild", "Shell")
_CONFIG_MAPS = ("ExposedPorts", "Volumes", "Labels")
_CONFIG_TEXTS = ("User", "WorkingDir", "StopSignal", "Hostname", "Domainname", "Image")
#: the Go struct fields a template may name though the JSON left them out (Go: zero values)
_OCI_GO_FIELDS = {"Created": "", "Author": "", "Architecture": "", "Variant": "", "OS": "",
                  "OSVersion": "", "OSFeatures": [], "History": [],
                  "RootFS": {"Type": "", "DiffIDs": []}}  # fmt: skip
_DOCKER_GO_FIELDS = {**_OCI_GO_FIELDS, "ID": "", "Parent": "", "Comment": "", "Container": "",
                     "DockerVersion": "", "Size": 0}  # fmt: skip


def _with_go_fields(doc: Any, fields: dict[str, Any]) -> Any:
    if not isinstance(doc, Struct):
        return doc
    for key, zero in fields.items():
        if key not in doc:
            doc[key] = go_struct(zero) if isinstance(zero, dict) else zero
    for key in ("Config", "ContainerConfig"):
        cfg = doc.get(key)
        if key == "ContainerConfig" and "Config" in fields and "ID" not in fields:
            continue
        if cfg is None:
            cfg = doc[key] = Struct()
        if isinstance(cfg, Struct):
            for names, zero in ((_CONFIG_LISTS, list), (_CONFIG_MAPS, Struct),
                                (_CONFIG_TEXTS, str)):  # fmt: skip
                for name in names:
                    if cfg.get(name) is None:  # Go prints a nil slice as [], a nil map map[]
                        cfg[name] = zero()
    return doc


COMMANDS: dict[str, Command] = {
    "inspect": Command(
        handler=cmd_inspect,
        flags=(
            Flag(("format", "f"), True, help="use format as a Go template to format the output"),
            Flag(
                ("type", "t"),
                True,
                help="look at the item of the specified type (container or "
                'image) and name (default "container")',
            ),
        ),  # fmt: skip
        help="Inspect the configuration of a container or image",
        long="Inspects a build container's or built image's configuration.",
        usage="[flags] CONTAINER|IMAGE",
    ),
}
