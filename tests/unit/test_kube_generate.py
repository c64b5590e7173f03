"""`kube generate`'s YAML without an engine: podman 4.3's field names, order and quoting, the
quantities, the volumes, the Service — and that it is valid Kubernetes (the v1 Pod, Service and
Deployment OpenAPI schemas, through kubernetes-validate)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from pypod.engine.config import ContainerConfig, MountSpec, Resources
from pypod.engine.kube.generate import (
    HEADER,
    cpu_quantity,
    pod_yaml,
    quantity,
    service_yaml,
    volume_name,
)
from pypod.engine.kube.yamlio import dump, dump_all, load_all
from pypod.engine.pods import Pod, PodConfig
from pypod.engine.state import Container
from pypod.errors import InvalidArgument

POD_ID = "7569f583f80178715183861c9c8afd82c0d4c7b9a58ff57de6919899101c7c77"


def _ctr(name: str, **kw: Any) -> Container:
    cfg = ContainerConfig(image="localhost/busybox:latest", image_id="0" * 64, name=name, **kw)
    return Container(id=name * 4, name=name, config=cfg, created=1.0)


def _web(tmp_path: Any) -> dict[str, Any]:
    www = tmp_path / "www"
    www.mkdir()
    httpd = _ctr(
        "httpd",
        command=("httpd", "-f", "-p", "80", "-h", "/www"),
        env={"A": "1"},
        workdir="/www",
        cap_add=("NET_ADMIN",),
        cap_drop=("CHOWN",),
        resources=Resources(memory=64 << 20, cpus=0.5),
        user="1000",
        read_only=True,
        restart_policy="always",
        mounts=(
            MountSpec(type="bind", source=str(www), destination="/www", options=("ro", "rbind")),
            MountSpec(
                type="bind",
                source="/x/d/_data",
                destination="/data",
                volume="data",
                options=("rw",),
            ),  # fmt: skip
        ),
    )
    side = _ctr(
        "side",
        command=("sleep", "1000"),
        privileged=True,
        annotations={"foo": "bar", "io.podman.annotations.init": "TRUE"},
    )
    infra = _ctr("infra", ports=({"host_ip": "", "host_port": 8080, "container_port": 80,
                                  "protocol": "tcp", "range": 1},))  # fmt: skip
    pod = Pod(id=POD_ID, name="web", config=PodConfig(name="web"), created=1.0, infra_id="i")
    return pod_yaml("web", [httpd, side], pod=pod, infra=infra)


def test_pod_yaml_as_podman_writes_it(tmp_path: Any) -> None:
    text = dump(_web(tmp_path))
    www = tmp_path / "www"
    # podman 4.3.1's output for the same pod (generate kube web), volumes and timestamp aside
    expected = f"""\
apiVersion: v1
kind: Pod
metadata:
  annotations:
    foo/side: bar
    io.kubernetes.cri-o.ContainerType/httpd: container
    io.kubernetes.cri-o.ContainerType/side: container
    io.kubernetes.cri-o.SandboxID/httpd: {POD_ID[:63]}
    io.kubernetes.cri-o.SandboxID/side: {POD_ID[:63]}
    io.kubernetes.cri-o.TTY/httpd: "false"
    io.kubernetes.cri-o.TTY/side: "false"
    io.podman.annotations.autoremove/httpd: "FALSE"
    io.podman.annotations.autoremove/side: "FALSE"
    io.podman.annotations.init/httpd: "FALSE"
    io.podman.annotations.init/side: "FALSE"
    io.podman.annotations.privileged/httpd: "FALSE"
    io.podman.annotations.privileged/side: "TRUE"
    io.podman.annotations.publish-all/httpd: "FALSE"
    io.podman.annotations.publish-all/side: "FALSE"
  creationTimestamp: "TIME"
  labels:
    app: web
  name: web
spec:
  automountServiceAccountToken: false
  containers:
  - command:
    - httpd
    - -f
    - -p
    - "80"
    - -h
    - /www
    env:
    - name: A
      value: "1"
    image: localhost/busybox:latest
    name: httpd
    ports:
    - containerPort: 80
      hostPort: 8080
    resources:
      limits:
        cpu: 500m
        memory: 64Mi
    securityContext:
      capabilities:
        add:
        - CAP_NET_ADMIN
        drop:
        - CAP_CHOWN
      readOnlyRootFilesystem: true
      runAsUser: 1000
    volumeMounts:
    - mountPath: /www
      name: {volume_name(str(www))}-host-0
      readOnly: true
    - mountPath: /data
      name: data-pvc
    workingDir: /www
  - command:
    - sleep
    - "1000"
    image: localhost/busybox:latest
    name: side
    resources: {{}}
    securityContext:
      privileged: true
  enableServiceLinks: false
  hostname: web
  restartPolicy: Always
  volumes:
  - hostPath:
      path: {www}
      type: Directory
    name: {volume_name(str(www))}-host-0
  - name: data-pvc
    persistentVolumeClaim:
      claimName: data
status: {{}}
"""
    import re

    assert re.sub(r'creationTimestamp: "[^"]+"', 'creationTimestamp: "TIME"', text) == expected


def test_lone_container_pod_and_service() -> None:
    c = _ctr("solo", command=("sleep", "100"), ports=({"host_ip": "", "host_port": 9090,
             "container_port": 53, "protocol": "udp", "range": 1},))  # fmt: skip
    doc = pod_yaml("solo-pod", [c], pod=None, infra=None)
    assert doc["metadata"]["labels"] == {"app": "solo-pod"}
    assert "status" not in doc and "restartPolicy" not in doc["spec"]
    (spec,) = doc["spec"]["containers"]
    assert "resources" not in spec
    assert spec["securityContext"] == {"capabilities": {}}
    assert spec["ports"] == [{"containerPort": 53, "hostPort": 9090, "protocol": "UDP"}]
    svc = service_yaml(doc)
    (port,) = svc["spec"]["ports"]
    assert port["name"] == "53" and port["port"] == 53 and port["protocol"] == "UDP"
    assert svc["spec"]["selector"] == {"app": "solo-pod"}


def test_entrypoint_is_command_and_cmd_args() -> None:
    c = _ctr("p2", entrypoint=("/bin/sh",), command=("-c", "sleep 5"))
    (spec,) = pod_yaml("p", [c], pod=None, infra=None)["spec"]["containers"]
    assert spec["command"] == ["/bin/sh"] and spec["args"] == ["-c", "sleep 5"]


@pytest.mark.parametrize(
    ("n", "text"),
    [(64 << 20, "64Mi"), (1 << 30, "1Gi"), (1536, "1536"), (3 << 10, "3Ki"), (1000, "1000")],
)
def test_quantity(n: int, text: str) -> None:
    assert quantity(n) == text


def test_cpu_quantity() -> None:
    assert (
        cpu_quantity(0.5) == "500m" and cpu_quantity(2.0) == "2" and cpu_quantity(1.25) == "1250m"
    )


def test_yaml_quoting_as_go() -> None:
    text = dump({"b": ["80", "FALSE", "yes", "x y", "2026-01-01T00:00:00Z", "", "1.5"], "a": {}})
    assert text == (
        'a: {}\nb:\n- "80"\n- "FALSE"\n- "yes"\n- x y\n- "2026-01-01T00:00:00Z"\n- ""\n' '- "1.5"\n'
    )
    assert load_all(dump_all([{"a": 1}, {"b": 2}]), "x") == [{"a": 1}, {"b": 2}]
    with pytest.raises(InvalidArgument, match="x.yaml: not valid YAML"):
        load_all("a: [", "x.yaml")
    with pytest.raises(InvalidArgument, match="not a Kubernetes object"):
        load_all("- 1\n", "x.yaml")


def test_header_is_podmans() -> None:
    assert HEADER.splitlines()[-1] == "# Created with podman-4.3.1"


def test_generated_yaml_is_valid_kubernetes(tmp_path: Any) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    pod = yaml.safe_load(dump(_web(tmp_path)))
    service = yaml.safe_load(dump(service_yaml(pod)))
    lone = pod_yaml("solo-pod", [_ctr("solo", command=("sleep", "1"))], pod=None, infra=None)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": pod["metadata"], "spec": pod["spec"]},
        },
    }
    for doc in (pod, service, yaml.safe_load(dump(lone)), deployment):
        kv.validate(doc, "1.30.0", strict=True)
    broken = {**pod, "spec": {**pod["spec"], "containers": [{"name": "x", "bogus": 1}]}}
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, "1.30.0", strict=True)
