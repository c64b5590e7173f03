"""`kube generate`: containers and pods as Kubernetes YAML (v1 Pod, and a v1 Service with `-s`),
field for field as podman 4.3 writes them.

A pod becomes one Pod whose containers are its members (the infra container's published ports
go on the first member); a container outside any pod becomes a Pod named `<name>-pod`.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pypod.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from pypod.engine.config import ContainerConfig
    from pypod.engine.containers import Engine
    from pypod.engine.pods import Pod
    from pypod.engine.state import Container
    from pypod.engine.volumes import Volume

log = logging.getLogger(__name__)

HEADER = (
    "# Save the output of this file and use kubectl create -f to import\n"
    "# it into Kubernetes.\n#\n# Created with podman-4.3.1\n"
)

#: podman's default capabilities (containers.conf): `capabilities` lists what differs
DEFAULT_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT",
)  # fmt: skip

#: Kubernetes' limit for annotation values podman truncates to
_ANNOTATION_MAX = 63

_RESTART = {
    "always": "Always",
    "unless-stopped": "Always",
    "on-failure": "OnFailure",
    "no": "Never",
}


def generate(eng: Engine, names: Sequence[str], *, service: bool = False) -> str:
    """The YAML for `names` (pods or containers, pods looked up first as podman does)."""
    from pypod.engine.pods import PodNotFound, Pods

    pods = Pods(eng)
    docs: list[dict[str, Any]] = []
    services: list[dict[str, Any]] = []
    lone: list[Container] = []
    claims: list[dict[str, Any]] = []
    for name in names:
        try:
            pod = pods.lookup(name)
        except PodNotFound:
            pod = None
        if pod is not None:
            members = [c for c in pods.members(pod) if c.id != pod.infra_id]
            members.sort(key=lambda c: c.created)
            infra = eng.lookup(pod.infra_id) if pod.infra_id else None
            doc = pod_yaml(pod.name, members, pod=pod, infra=infra)
        else:
            try:
                c = eng.lookup(name)
            except NotFound:
                from pypod.engine.volumes import Volumes

                volumes = Volumes(eng.db, eng.paths.graphroot)
                if not volumes.exists(name):
                    raise NotFound(f'name or ID "{name}" not found') from None
                claims.append(claim_yaml(volumes.get(name)))
                continue
            if c.config.pod:
                raise InvalidArgument(
                    f"container {c.id} is associated with pod {c.config.pod}: use generate on "
                    "the pod itself"
                )
            lone.append(c)
            continue
        docs.append(doc)
        if service:
            services.append(service_yaml(doc))
    if lone:  # podman: all the containers given become one Pod
        doc = pod_yaml(f"{lone[0].name}-pod", lone, pod=None, infra=None)
        docs.append(doc)
        if service:
            services.append(service_yaml(doc))
    from pypod.engine.kube.yamlio import dump_all

    return HEADER + dump_all([*services, *docs, *claims])


def _timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def pod_yaml(name: str, members: Sequence[Container], *, pod: Pod | None,
             infra: Container | None) -> dict[str, Any]:  # fmt: skip
    """One v1 Pod: `members` with the pod's ports (from `infra`) on the first of them."""
    annotations: dict[str, str] = {}
    containers: list[dict[str, Any]] = []
    volumes: dict[str, dict[str, Any]] = {}
    ports = [_port(p) for p in (infra.config.ports if infra else ())]
    restart = "Never"
    for i, c in enumerate(members):
        cfg = c.config
        spec, vols = container_yaml(c.name, cfg, in_pod=pod is not None)
        if i == 0 and ports:
            spec["ports"] = ports + spec.get("ports", [])
        containers.append(spec)
        for v in vols:
            volumes.setdefault(v["name"], v)
        annotations.update(_annotations(c, pod))
        if cfg.restart_policy != "no":  # the Pod's policy: its members' last one set
            restart = _RESTART.get(cfg.restart_policy, "Never")
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "containers": containers,
        "enableServiceLinks": False,
    }
    if pod is not None:
        pod_spec["hostname"] = pod.config.hostname or pod.name
        pod_spec["restartPolicy"] = restart
    if volumes:
        pod_spec["volumes"] = list(volumes.values())
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "annotations": annotations,
            "creationTimestamp": _timestamp(),
            "labels": {"app": name},
            "name": name,
        },
        "spec": pod_spec,
    }
    if not annotations:
        del doc["metadata"]["annotations"]
    if pod is not None:
        doc["status"] = {}
    return doc


def _annotations(c: Container, pod: Pod | None) -> dict[str, str]:
    cfg = c.config
    out: dict[str, str] = {}
    if pod is not None:
        out[f"io.kubernetes.cri-o.ContainerType/{c.name}"] = "container"
        if len(pod.id) > _ANNOTATION_MAX:
            log.warning(
                'Truncation Annotation: "%s" to "%s": Kubernetes only allows 63 characters',
                pod.id, pod.id[:_ANNOTATION_MAX],
            )  # fmt: skip
        out[f"io.kubernetes.cri-o.SandboxID/{c.name}"] = pod.id[:_ANNOTATION_MAX]
    out[f"io.kubernetes.cri-o.TTY/{c.name}"] = "true" if cfg.tty else "false"
    flags = {"autoremove": cfg.remove, "init": cfg.init, "privileged": cfg.privileged,
             "publish-all": cfg.publish_all}  # fmt: skip
    for key, on in flags.items():
        out[f"io.podman.annotations.{key}/{c.name}"] = "TRUE" if on else "FALSE"
    for key, value in cfg.annotations.items():
        if not is_reserved_annotation(key):
            out[f"{key}/{c.name}"] = value[:_ANNOTATION_MAX]
    return out


def is_reserved_annotation(key: str) -> bool:
    """podman's own annotations, written per container by generate and not played back."""
    return key.startswith(("io.kubernetes.cri-o.", "io.podman.annotations.", "io.container."))


def container_yaml(name: str, cfg: ContainerConfig, *, in_pod: bool,
                   ) -> tuple[dict[str, Any], list[dict[str, Any]]]:  # fmt: skip
    """One container of a Pod's spec, and the Pod volumes its mounts need."""
    out: dict[str, Any] = {"image": cfg.image, "name": name}
    if cfg.entrypoint:
        out["command"] = list(cfg.entrypoint)
        if cfg.command:
            out["args"] = list(cfg.command)
    elif cfg.command:
        out["command"] = list(cfg.command)
    if cfg.env:
        out["env"] = [{"name": k, "value": v} for k, v in cfg.env.items()]
    ports = [_port(p) for p in cfg.ports]
    if ports:
        out["ports"] = ports
    if cfg.workdir:
        out["workingDir"] = cfg.workdir
    limits = _limits(cfg)
    if limits or in_pod:
        out["resources"] = {"limits": limits} if limits else {}
    out["securityContext"] = _security(cfg)
    mounts, volumes = _mounts(cfg)
    if mounts:
        out["volumeMounts"] = mounts
    if cfg.tty:
        out["tty"] = True
    if cfg.stdin:
        out["stdin"] = True
    return out, volumes


def _port(p: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"containerPort": int(p["container_port"])}
    if p.get("host_port"):
        out["hostPort"] = int(p["host_port"])
    if p.get("host_ip"):
        out["hostIP"] = p["host_ip"]
    proto = str(p.get("protocol") or "tcp").upper()
    if proto != "TCP":
        out["protocol"] = proto
    return out


def quantity(n: int) -> str:
    """Bytes as a Kubernetes quantity, as Go's resource.Quantity prints them (64Mi)."""
    for suffix, size in (("Ei", 1 << 60), ("Pi", 1 << 50), ("Ti", 1 << 40), ("Gi", 1 << 30),
                         ("Mi", 1 << 20), ("Ki", 1 << 10)):  # fmt: skip
        if n >= size and n % size == 0:
            return f"{n // size}{suffix}"
    return str(n)


def cpu_quantity(cpus: float) -> str:
    milli = round(cpus * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def _limits(cfg: ContainerConfig) -> dict[str, str]:
    out: dict[str, str] = {}
    if cfg.resources.cpus:
        out["cpu"] = cpu_quantity(cfg.resources.cpus)
    if cfg.resources.memory:
        out["memory"] = quantity(cfg.resources.memory)
    return out


def _cap(name: str) -> str:
    name = name.upper()
    return name if name.startswith("CAP_") or name == "ALL" else f"CAP_{name}"


def _security(cfg: ContainerConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if cfg.privileged:
        out["privileged"] = True
    else:
        caps: dict[str, list[str]] = {}
        add = [_cap(c) for c in cfg.cap_add if _cap(c) not in DEFAULT_CAPS]
        drop = [_cap(c) for c in cfg.cap_drop]
        if add:
            caps["add"] = add
        if drop:
            caps["drop"] = drop
        out["capabilities"] = caps
    if cfg.read_only:
        out["readOnlyRootFilesystem"] = True
    if cfg.no_new_privileges:
        out["allowPrivilegeEscalation"] = False
    if cfg.user:
        user, _, group = cfg.user.partition(":")
        if user.isdigit():
            out["runAsUser"] = int(user)
        if group.isdigit():
            out["runAsGroup"] = int(group)
    return out


def volume_name(path: str) -> str:
    """podman's name for a host path volume (`/srv/www` -> `srv-www`)."""
    return path.strip("/").replace("/", "-").replace("_", "-").lower() or "root"


def _mounts(cfg: ContainerConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    mounts: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = []
    host = 0
    for m in cfg.mounts:
        ro = "ro" in m.options
        if m.type == "tmpfs":
            log.warning("tmpfs mount %s of container %s is not exported to Kubernetes YAML",
                        m.destination, cfg.name)  # fmt: skip
            continue
        if m.volume:
            vname = f"{m.volume}-pvc"
            volumes.append({"name": vname, "persistentVolumeClaim": {"claimName": m.volume}})
        else:
            vname = f"{volume_name(m.source)}-host-{host}"
            host += 1
            kind = (
                "Directory" if os.path.isdir(m.source)
                else "File" if os.path.isfile(m.source)
                else "DirectoryOrCreate"
            )  # fmt: skip
            volumes.append({"hostPath": {"path": m.source, "type": kind}, "name": vname})
        mount: dict[str, Any] = {"mountPath": m.destination, "name": vname}
        if ro:
            mount["readOnly"] = True
        mounts.append(mount)
    return mounts, volumes


#: a volume's options as PersistentVolumeClaim annotations (podman's keys)
VOLUME_ANNOTATIONS = {"type": "volume.podman.io/type", "device": "volume.podman.io/device",
                      "o": "volume.podman.io/mount-options", "UID": "volume.podman.io/uid",
                      "GID": "volume.podman.io/gid"}  # fmt: skip


def claim_yaml(vol: Volume) -> dict[str, Any]:
    """A named volume as a v1 PersistentVolumeClaim (`generate kube VOLUME`)."""
    annotations = {"volume.podman.io/driver": vol.driver}
    for key, value in vol.options.items():
        if key in VOLUME_ANNOTATIONS:
            annotations[VOLUME_ANNOTATIONS[key]] = value
    meta: dict[str, Any] = {"annotations": annotations, "creationTimestamp": _timestamp(),
                            "name": vol.name}  # fmt: skip
    if vol.labels:
        meta["labels"] = dict(vol.labels)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta,
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        "status": {},
    }


def service_yaml(pod: dict[str, Any]) -> dict[str, Any]:
    """The v1 Service (NodePort) for a Pod's published ports, as `generate kube -s`."""
    name = pod["metadata"]["name"]
    ports = []
    for c in pod["spec"]["containers"]:
        for p in c.get("ports", ()):
            entry: dict[str, Any] = {
                "name": str(p["containerPort"]),
                "nodePort": random.randint(30000, 32767),
                "port": p["containerPort"],
                "targetPort": p["containerPort"],
            }
            if p.get("protocol"):
                entry["protocol"] = p["protocol"]
            ports.append(entry)
    spec: dict[str, Any] = {"selector": {"app": name}, "type": "NodePort"}
    if ports:
        spec["ports"] = ports
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"creationTimestamp": _timestamp(), "labels": {"app": name}, "name": name},
        "spec": spec,
    }
