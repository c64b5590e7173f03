"""`kube play`: Kubernetes YAML -> pods, containers and volumes, as podman 4.3 plays it.

Kinds: Pod, Deployment (`replicas` pods named `<name>-pod-<i>`), PersistentVolumeClaim (a
named volume), ConfigMap and Secret (env `valueFrom`/`envFrom`, volumes), Service (accepted,
nothing to do locally, as podman).  Other kinds, and fields pypod does not act on, are named in
a warning; fields it cannot honour raise NotSupported.  `kube down` removes the pods a file
describes.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pypod.errors import AlreadyExists, InvalidArgument, NotFound, NotSupported
from pypod.record import field, record

if TYPE_CHECKING:
    from pypod.engine.config import ContainerConfig, Healthcheck, MountSpec
    from pypod.engine.containers import Engine

log = logging.getLogger(__name__)

#: image name -> (stored name, image ID); the CLI's (it may pull)
ImageResolver = Callable[[str], tuple[str, str]]

#: a named volume's mount options (podman's defaults for `-v NAME:/dst`)
_VOLUME_OPTIONS = ("rprivate", "nosuid", "nodev", "rbind")
_TMPFS_OPTIONS = ("rprivate", "nosuid", "nodev", "tmpcopyup")

_RESTART = {"Always": "always", "OnFailure": "on-failure", "Never": "no"}

#: container fields pypod acts on; others are named in a warning
_CONTAINER_FIELDS = {
    "name", "image", "command", "args", "env", "envFrom", "ports", "workingDir", "volumeMounts",
    "securityContext", "resources", "tty", "stdin", "imagePullPolicy", "terminationMessagePath",
    "terminationMessagePolicy", "livenessProbe",
}  # fmt: skip
_POD_SPEC_FIELDS = {
    "containers", "volumes", "restartPolicy", "hostname", "automountServiceAccountToken",
    "enableServiceLinks", "hostNetwork", "dnsPolicy", "terminationGracePeriodSeconds",
    "securityContext", "schedulerName",
}  # fmt: skip


@record
class PlayOptions:
    start: bool = True
    replace: bool = False
    network: str = ""
    #: extra ConfigMap YAML files (`--configmap`)
    configmaps: tuple[str, ...] = ()
    #: `--annotation KEY=VALUE` for every container
    annotations: dict[str, str] = field(default_factory=dict)
    no_hosts: bool = False
    log_driver: str = "k8s-file"
    log_max_size: int = 0


@record(frozen=False)
class PlayReport:
    pods: list[tuple[str, list[str]]] = field(default_factory=list)  # (pod ID, container IDs)
    volumes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@record(frozen=False)
class DownReport:
    stopped: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def _warn(report: PlayReport, message: str) -> None:
    log.warning("%s", message)
    report.warnings.append(message)


def _meta_name(doc: dict[str, Any], kind: str) -> str:
    name = (doc.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"{kind} has no metadata.name: every object must be named")
    return name


def pod_templates(docs: Sequence[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(pod name, Pod-shaped document) for every Pod and every Deployment replica."""
    out: list[tuple[str, dict[str, Any]]] = []
    for doc in docs:
        kind = doc.get("kind")
        if kind == "Pod":
            out.append((_meta_name(doc, "Pod"), doc))
        elif kind == "Deployment":
            name = _meta_name(doc, "Deployment")
            spec = doc.get("spec") or {}
            replicas = spec.get("replicas", 1)
            if not isinstance(replicas, int) or replicas < 0:
                raise InvalidArgument(f"Deployment {name}: replicas must be a whole number")
            template = spec.get("template") or {}
            for i in range(replicas):
                out.append((f"{name}-pod-{i}", template))
    return out


def play(eng: Engine, docs: Sequence[dict[str, Any]], opts: PlayOptions,
         resolve_image: ImageResolver) -> PlayReport:  # fmt: skip
    """Create (and unless `opts.start` is off, start) what `docs` describe."""
    from pypod.engine.kube.yamlio import load_all

    report = PlayReport()
    configmaps: dict[str, dict[str, str]] = {}
    secrets: dict[str, dict[str, str]] = {}
    for path in opts.configmaps:
        try:
            with open(path, encoding="utf-8") as f:
                extra = load_all(f.read(), path)
        except OSError as e:
            raise NotFound(f"--configmap {path}: {e.strerror}") from None
        for doc in extra:
            if doc.get("kind") != "ConfigMap":
                raise InvalidArgument(f"--configmap {path}: a {doc.get('kind')} is not a ConfigMap")
            configmaps[_meta_name(doc, "ConfigMap")] = _strings(doc.get("data"))
    for doc in docs:
        kind = doc.get("kind")
        if kind == "ConfigMap":
            configmaps[_meta_name(doc, kind)] = _strings(doc.get("data"))
        elif kind == "Secret":
            data = {k: base64.b64decode(v).decode() for k, v in _strings(doc.get("data")).items()}
            data.update(_strings(doc.get("stringData")))
            secrets[_meta_name(doc, kind)] = data
        elif kind == "PersistentVolumeClaim":
            report.volumes.append(_claim(eng, doc))
        elif kind in ("Pod", "Deployment", "Service"):
            pass
        else:
            _warn(report, f"kube kind {kind} is not supported: ignored")
    for name, template in pod_templates(docs):
        player = _PodPlayer(eng, opts, resolve_image, configmaps, secrets, report)
        report.pods.append(player.play(name, template))
    return report


def _strings(data: object) -> dict[str, str]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidArgument("ConfigMap/Secret data must be a map of strings")
    return {str(k): str(v) for k, v in data.items()}


def _claim(eng: Engine, doc: dict[str, Any]) -> str:
    from pypod.engine.kube.generate import VOLUME_ANNOTATIONS
    from pypod.engine.volumes import Volumes

    name = _meta_name(doc, "PersistentVolumeClaim")
    meta = doc.get("metadata") or {}
    labels = _strings(meta.get("labels"))
    annotations = _strings(meta.get("annotations"))
    options = {k: annotations[a] for k, a in VOLUME_ANNOTATIONS.items() if a in annotations}
    driver = annotations.get("volume.podman.io/driver", "local")
    Volumes(eng.db, eng.paths.graphroot).create(name, driver=driver, labels=labels,
                                                options=options)  # fmt: skip
    return name


def down(eng: Engine, docs: Sequence[dict[str, Any]]) -> DownReport:
    """Remove the pods `docs` describe (stopping them first)."""
    from pypod.engine.pods import PodNotFound, Pods

    pods = Pods(eng)
    report = DownReport()
    for name, _ in pod_templates(docs):
        try:
            pod = pods.lookup(name)
        except PodNotFound:
            continue
        pods.stop(pod.id)
        report.stopped.append(pod.id)
        report.removed.append(pods.remove(pod.id, force=True))
    return report


class _PodPlayer:
    def __init__(self, eng: Engine, opts: PlayOptions, resolve_image: ImageResolver,
                 configmaps: dict[str, dict[str, str]], secrets: dict[str, dict[str, str]],
                 report: PlayReport) -> None:  # fmt: skip
        self.eng = eng
        self.opts = opts
        self.resolve_image = resolve_image
        self.configmaps = configmaps
        self.secrets = secrets
        self.report = report
        self.annotations: dict[str, str] = {}
        self.names: set[str] = set()

    def play(self, name: str, doc: dict[str, Any]) -> tuple[str, list[str]]:
        from pypod.engine.pods import PodConfig, Pods

        spec = doc.get("spec") or {}
        for key in spec:
            if key == "initContainers":
                raise NotSupported(f"pod {name}: 'initContainers' is not supported yet")
            if key not in _POD_SPEC_FIELDS:
                _warn(self.report, f"pod {name}: field spec.{key} is not supported: ignored")
        containers = spec.get("containers") or []
        if not containers:
            raise InvalidArgument(f"pod {name}: spec.containers is empty")
        pods = Pods(self.eng)
        if pods.exists(name):
            if not self.opts.replace:
                raise AlreadyExists(
                    f'adding pod to state: name "{name}" is in use: pod already exists'
                )
            pods.remove(name, force=True)
        ports: list[dict[str, Any]] = []
        for c in containers:
            ports.extend(_ports(c.get("ports") or ()))
        labels = _strings((doc.get("metadata") or {}).get("labels"))
        network = self.opts.network
        if spec.get("hostNetwork"):
            network = "host"
        volumes = self._volumes(name, spec.get("volumes") or [])
        restart = spec.get("restartPolicy") or "Always"
        if restart not in _RESTART:
            raise InvalidArgument(f"pod {name}: invalid restartPolicy {restart!r}")
        pod = pods.create(
            PodConfig(
                name=name,
                hostname=str(spec.get("hostname") or ""),
                labels=labels,
                ports=tuple(ports),
                network=network,
                no_hosts=self.opts.no_hosts,
            )
        )
        self.annotations = _strings((doc.get("metadata") or {}).get("annotations"))
        self.names = {str(c.get("name")) for c in containers}
        ids: list[str] = []
        try:
            for c in containers:
                cfg = self._container(name, pod.id, c, volumes, _RESTART[restart])
                ids.append(self.eng.create(cfg).id)
        except BaseException:  # nothing half made is left (a failed start keeps the pod)
            pods.remove(pod.id, force=True)
            raise
        if self.opts.start:
            pods.start(pod.id)
        return pod.id, ids

    # --- volumes --------------------------------------------------------------------------------
    def _volumes(self, pod: str, specs: list[dict[str, Any]]) -> dict[str, MountSpec]:
        """Pod volume name -> the mount it stands for (destination filled in per container)."""
        from pypod.engine.config import MountSpec

        out: dict[str, MountSpec] = {}
        for v in specs:
            name = v.get("name")
            if not isinstance(name, str):
                raise InvalidArgument(f"pod {pod}: a volume has no name")
            if "hostPath" in v:
                hp = v["hostPath"] or {}
                path = str(hp.get("path") or "")
                kind = hp.get("type") or ""
                if not path:
                    raise InvalidArgument(f"pod {pod}: volume {name}: hostPath has no path")
                if path == "tmpfs":
                    # podman 4.3 writes a --read-only container's tmpfs mounts so (and binds a
                    # folder "tmpfs" of the current directory when it plays them): a tmpfs
                    out[name] = MountSpec(type="tmpfs", source="tmpfs", destination="",
                                          options=_TMPFS_OPTIONS)  # fmt: skip
                    continue
                path = os.path.abspath(path)  # relative: to the current directory, as podman
                self._host_path(pod, name, path, kind)
                out[name] = MountSpec(type="bind", source=path, destination="",
                                      options=("rprivate", "rbind"))  # fmt: skip
            elif "emptyDir" in v:
                out[name] = MountSpec(type="bind", source="", destination="", volume="",
                                      options=_VOLUME_OPTIONS)  # fmt: skip
            elif "persistentVolumeClaim" in v:
                claim = (v["persistentVolumeClaim"] or {}).get("claimName")
                if not claim:
                    raise InvalidArgument(f"pod {pod}: volume {name}: no claimName")
                out[name] = MountSpec(type="bind", source="", destination="", volume=str(claim),
                                      options=_VOLUME_OPTIONS)  # fmt: skip
            elif "configMap" in v or "secret" in v:
                out[name] = self._data_volume(pod, name, v)
            else:
                kinds = ", ".join(k for k in v if k != "name") or "none"
                raise NotSupported(f"pod {pod}: volume {name}: volume type {kinds} is not "
                                   "supported yet")  # fmt: skip
        return out

    @staticmethod
    def _host_path(pod: str, name: str, path: str, kind: str) -> None:
        if kind in ("DirectoryOrCreate", ""):
            if kind and not os.path.exists(path):
                os.makedirs(path, mode=0o755, exist_ok=True)
        elif kind == "FileOrCreate":
            if not os.path.exists(path):
                os.makedirs(os.path.dirname(path), exist_ok=True)
                open(path, "a").close()
        elif kind == "Directory" and not os.path.isdir(path):
            raise NotFound(f"pod {pod}: volume {name}: {path} is not a directory")
        elif kind == "File" and not os.path.isfile(path):
            raise NotFound(f"pod {pod}: volume {name}: {path} is not a file")
        elif kind not in ("Directory", "File", "Socket", "CharDevice", "BlockDevice"):
            raise InvalidArgument(f"pod {pod}: volume {name}: invalid hostPath type {kind!r}")

    def _data_volume(self, pod: str, name: str, v: dict[str, Any]) -> MountSpec:
        """A ConfigMap or Secret as a volume of files (one per key, or per `items`)."""
        from pypod.engine.config import MountSpec
        from pypod.engine.volumes import Volumes

        if "configMap" in v:
            ref = v["configMap"] or {}
            source, store, what = str(ref.get("name") or ""), self.configmaps, "ConfigMap"
        else:
            ref = v["secret"] or {}
            source, store, what = str(ref.get("secretName") or ""), self.secrets, "Secret"
        data = store.get(source)
        if data is None:
            if ref.get("optional"):
                data = {}
            else:
                raise NotFound(f"pod {pod}: volume {name}: {what} {source!r} not found: give "
                               "it in the YAML or with --configmap")  # fmt: skip
        items = ref.get("items")
        files = (
            {str(i["path"]): data[str(i["key"])] for i in items if str(i["key"]) in data}
            if items else dict(data)
        )  # fmt: skip
        vol = Volumes(self.eng.db, self.eng.paths.graphroot).create(source, ignore_if_exists=True)
        for rel, content in files.items():
            path = os.path.join(vol.mountpoint, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(content)
        return MountSpec(type="bind", source="", destination="", volume=vol.name,
                         options=(*_VOLUME_OPTIONS, "ro"))  # fmt: skip

    # --- containers -----------------------------------------------------------------------------
    def _container(self, pod: str, pod_id: str, c: dict[str, Any], volumes: dict[str, MountSpec],
                   restart: str) -> ContainerConfig:  # fmt: skip
        from pypod.engine.config import ContainerConfig, Resources
        from pypod.record import replace

        name = c.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"pod {pod}: a container has no name")
        for key in c:
            if key not in _CONTAINER_FIELDS:
                _warn(self.report, f"container {name}: field {key} is not supported: ignored")
        image = c.get("image")
        if not isinstance(image, str) or not image:
            raise InvalidArgument(f"pod {pod}: container {name} has no image")
        image_name, image_id = self.resolve_image(image)
        command = c.get("command")
        args = c.get("args")
        entrypoint = tuple(str(a) for a in command) if command else None
        cmd = tuple(str(a) for a in args) if args else ()
        mounts = []
        for m in c.get("volumeMounts") or ():
            vname = m.get("name")
            if vname not in volumes:
                raise InvalidArgument(f"pod {pod}: container {name}: volume {vname!r} is not "
                                      "in spec.volumes")  # fmt: skip
            if m.get("subPath"):
                raise NotSupported(f"container {name}: volumeMounts subPath is not supported yet")
            base = volumes[vname]
            options = tuple(o for o in base.options if o not in ("ro", "rw"))
            ro = m.get("readOnly") or "ro" in base.options
            mounts.append(replace(base, destination=str(m["mountPath"]),
                                  options=(*options, "ro" if ro else "rw")))  # fmt: skip
        sec = c.get("securityContext") or {}
        caps = sec.get("capabilities") or {}
        user = None
        if sec.get("runAsUser") is not None:
            user = str(sec["runAsUser"])
            if sec.get("runAsGroup") is not None:
                user += f":{sec['runAsGroup']}"
        limits = (c.get("resources") or {}).get("limits") or {}
        return ContainerConfig(
            image=image_name,
            image_id=image_id,
            name=f"{pod}-{name}",
            command=cmd,
            entrypoint=entrypoint,
            env=self._env(name, c),
            workdir=c.get("workingDir") or None,
            user=user,
            tty=bool(c.get("tty")),
            stdin=bool(c.get("stdin")),
            mounts=tuple(mounts),
            read_only=bool(sec.get("readOnlyRootFilesystem")),
            privileged=bool(sec.get("privileged")),
            cap_add=tuple(str(x) for x in caps.get("add") or ()),
            cap_drop=tuple(str(x) for x in caps.get("drop") or ()),
            no_new_privileges=sec.get("allowPrivilegeEscalation") is False,
            resources=Resources(
                memory=parse_quantity(str(limits["memory"])) if "memory" in limits else None,
                cpus=parse_cpu(str(limits["cpu"])) if "cpu" in limits else None,
            ),
            restart_policy=restart,
            healthcheck=self._probe(name, c.get("livenessProbe")),
            annotations=self._annotations(name),
            log_driver=self.opts.log_driver,
            log_max_size=self.opts.log_max_size,
            pod=pod_id,
        )

    def _annotations(self, name: str) -> dict[str, str]:
        """The Pod's annotations for container `name`: `KEY/NAME` ones (generate's) for it
        only, podman's own (`io.podman.annotations.*` ...) left out, `--annotation` added."""
        from pypod.engine.kube.generate import is_reserved_annotation

        out: dict[str, str] = {}
        for key, value in self.annotations.items():
            base, slash, target = key.rpartition("/")
            if slash and target == name and base:
                key = base
            elif slash and base and target in self.names:
                continue  # another container's
            if not is_reserved_annotation(key):
                out[key] = value
        return {**out, **self.opts.annotations}

    def _probe(self, name: str, probe: Any) -> Healthcheck | None:
        """An `exec` livenessProbe as the container's health check (podman's)."""
        from pypod.engine.config import Healthcheck

        if not probe:
            return None
        if "exec" not in probe:
            kinds = ", ".join(k for k in probe if k in ("httpGet", "tcpSocket", "grpc"))
            _warn(self.report, f"container {name}: livenessProbe {kinds or 'without exec'} is "
                               "not supported: no health check")  # fmt: skip
            return None
        command = (probe["exec"] or {}).get("command") or []
        if not command:
            raise InvalidArgument(f"container {name}: livenessProbe exec has no command")
        return Healthcheck(
            test=("CMD", *(str(a) for a in command)),
            interval=float(probe.get("periodSeconds", 10)),
            timeout=float(probe.get("timeoutSeconds", 1)),
            start_period=float(probe.get("initialDelaySeconds", 0)),
            retries=int(probe.get("failureThreshold", 3)),
        )

    def _env(self, name: str, c: dict[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for ref in c.get("envFrom") or ():
            prefix = str(ref.get("prefix") or "")
            if "configMapRef" in ref:
                src, store, what = ref["configMapRef"], self.configmaps, "ConfigMap"
            elif "secretRef" in ref:
                src, store, what = ref["secretRef"], self.secrets, "Secret"
            else:
                raise NotSupported(f"container {name}: envFrom {list(ref)} is not supported yet")
            data = store.get(str(src.get("name")))
            if data is None:
                if src.get("optional"):
                    continue
                raise NotFound(f"container {name}: envFrom: {what} {src.get('name')!r} not "
                               "found: give it in the YAML or with --configmap")  # fmt: skip
            env.update({prefix + k: v for k, v in data.items()})
        for e in c.get("env") or ():
            key = str(e.get("name"))
            if "valueFrom" not in e:
                env[key] = str(e.get("value", ""))
                continue
            source = e["valueFrom"] or {}
            if "configMapKeyRef" in source:
                ref, store, what = source["configMapKeyRef"], self.configmaps, "ConfigMap"
            elif "secretKeyRef" in source:
                ref, store, what = source["secretKeyRef"], self.secrets, "Secret"
            else:
                raise NotSupported(f"container {name}: env {key}: valueFrom {list(source)} is "
                                   "not supported yet")  # fmt: skip
            data = store.get(str(ref.get("name")))
            value = None if data is None else data.get(str(ref.get("key")))
            if value is None:
                if ref.get("optional"):
                    continue
                raise NotFound(f"container {name}: env {key}: key {ref.get('key')!r} of {what} "
                               f"{ref.get('name')!r} not found")  # fmt: skip
            env[key] = value
        return env


def _ports(specs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for p in specs:
        if "containerPort" not in p:
            raise InvalidArgument("a port has no containerPort")
        if not p.get("hostPort"):
            continue  # podman publishes only ports with a hostPort
        out.append({
            "host_ip": str(p.get("hostIP") or ""),
            "host_port": int(p["hostPort"]),
            "container_port": int(p["containerPort"]),
            "protocol": str(p.get("protocol") or "TCP").lower(),
            "range": 1,
        })  # fmt: skip
    return out


_SUFFIXES = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50,
             "Ei": 1 << 60, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
             "E": 10**18}  # fmt: skip


def parse_quantity(text: str) -> int:
    """A Kubernetes memory quantity (64Mi, 1G, 128974848, 129e6) in bytes."""
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix):
            number = text[: -len(suffix)]
            try:
                return int(float(number) * _SUFFIXES[suffix])
            except ValueError:
                break
    else:
        try:
            return int(float(text))
        except ValueError:
            pass
    raise InvalidArgument(f"invalid quantity {text!r}: use a number with Ki, Mi, Gi ... or k, M, G")


def parse_cpu(text: str) -> float:
    """A Kubernetes CPU quantity (500m, 1, 0.5) in CPUs."""
    try:
        return int(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        raise InvalidArgument(f"invalid CPU quantity {text!r}: use 500m or 0.5") from None
