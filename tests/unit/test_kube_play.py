"""`kube play`'s parsing without an engine: quantities, Deployment replicas, ports."""

from __future__ import annotations

from typing import Any

import pytest

from pypod.engine.kube.play import _ports, parse_cpu, parse_quantity, pod_templates
from pypod.errors import InvalidArgument


@pytest.mark.parametrize(
    ("text", "n"),
    [("64Mi", 64 << 20), ("1Gi", 1 << 30), ("1G", 10**9), ("500k", 500_000),
     ("128974848", 128974848), ("129e6", 129_000_000), ("0.5Gi", 1 << 29)],
)  # fmt: skip
def test_parse_quantity(text: str, n: int) -> None:
    assert parse_quantity(text) == n


def test_parse_quantity_errors() -> None:
    with pytest.raises(InvalidArgument, match="invalid quantity 'lots'"):
        parse_quantity("lots")
    with pytest.raises(InvalidArgument, match="invalid CPU quantity"):
        parse_cpu("fast")
    assert parse_cpu("500m") == 0.5 and parse_cpu("2") == 2.0


def test_pod_templates_deployment_replicas() -> None:
    tmpl = {"spec": {"containers": [{"name": "a", "image": "x"}]}}
    docs = [
        {"kind": "Pod", "metadata": {"name": "p"}, "spec": {}},
        {
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {"replicas": 3, "template": tmpl},
        },
        {"kind": "Deployment", "metadata": {"name": "one"}, "spec": {"template": tmpl}},
        {"kind": "ConfigMap", "metadata": {"name": "c"}},
    ]
    names = [n for n, _ in pod_templates(docs)]
    assert names == ["p", "d-pod-0", "d-pod-1", "d-pod-2", "one-pod-0"]
    with pytest.raises(InvalidArgument, match="replicas must be a whole number"):
        pod_templates(
            [{"kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": "x"}}]
        )
    with pytest.raises(InvalidArgument, match="Pod has no metadata.name"):
        pod_templates([{"kind": "Pod", "metadata": {}}])


def test_ports_only_those_with_a_host_port() -> None:
    got = _ports([{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81},
                  {"containerPort": 53, "hostPort": 5353, "protocol": "UDP",
                   "hostIP": "127.0.0.1"}])  # fmt: skip
    assert got == [
        {"host_ip": "", "host_port": 8080, "container_port": 80, "protocol": "tcp", "range": 1},
        {"host_ip": "127.0.0.1", "host_port": 5353, "container_port": 53, "protocol": "udp",
         "range": 1},
    ]  # fmt: skip
    with pytest.raises(InvalidArgument, match="no containerPort"):
        _ports([{"hostPort": 1}])


def test_annotations_per_container_and_reserved_left_out() -> None:
    from pypod.engine.kube.play import PlayOptions, PlayReport, _PodPlayer

    player = _PodPlayer(None, PlayOptions(annotations={"cli": "1"}), lambda n: (n, n), {}, {},
                        PlayReport())  # type: ignore[arg-type]  # fmt: skip
    player.names = {"web", "side"}
    player.annotations = {
        "foo/web": "bar",  # generate's KEY/CONTAINER
        "foo/side": "other",
        "example.com/team": "blue",  # a prefixed key, for every container
        "io.podman.annotations.privileged/web": "TRUE",
        "io.kubernetes.cri-o.TTY/web": "false",
    }
    assert player._annotations("web") == {"foo": "bar", "example.com/team": "blue", "cli": "1"}
    assert player._annotations("side") == {"foo": "other", "example.com/team": "blue", "cli": "1"}


def _player() -> object:
    from pypod.engine.kube.play import PlayOptions, PlayReport, _PodPlayer

    return _PodPlayer(None, PlayOptions(), lambda n: (n, n), {}, {}, PlayReport())  # type: ignore[arg-type]


def test_unsupported_fields_are_named() -> None:
    from pypod.errors import NotSupported

    player: Any = _player()
    with pytest.raises(NotSupported, match="'initContainers' is not supported yet"):
        player.play("p", {"spec": {"initContainers": [{}], "containers": [{}]}})
    with pytest.raises(InvalidArgument, match="spec.containers is empty"):
        player.play("p", {"spec": {"nodeSelector": {"a": "b"}}})
    assert player.report.warnings == ["pod p: field spec.nodeSelector is not supported: ignored"]
    with pytest.raises(NotSupported, match="volume v: volume type nfs is not supported yet"):
        player._volumes("p", [{"name": "v", "nfs": {"server": "x", "path": "/"}}])
    with pytest.raises(InvalidArgument, match="invalid hostPath type 'Weird'"):
        player._volumes("p", [{"name": "v", "hostPath": {"path": "/", "type": "Weird"}}])
    tmpfs = player._volumes("p", [{"name": "t", "hostPath": {"path": "tmpfs"}}])["t"]
    assert tmpfs.type == "tmpfs"
    probe = player._probe("c", {"exec": {"command": ["true"]}, "periodSeconds": 5})
    assert probe.test == ("CMD", "true") and probe.interval == 5.0 and probe.retries == 3
    assert player._probe("c", {"httpGet": {"port": 80}}) is None
    assert "livenessProbe httpGet is not supported" in player.report.warnings[-1]
