"""pypod.oci.image_spec: OCI / Docker manifests, indexes and configs; type detection; platforms."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pypod.errors import ConfigError, InvalidArgument, NotFound
from pypod.oci import image_spec as s
from pypod.oci.digest import digest_bytes

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64
CFG = "sha256:" + "c" * 64

OCI_MANIFEST: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": s.OCI_MANIFEST,
    "config": {"mediaType": s.OCI_CONFIG, "digest": CFG, "size": 1469},
    "layers": [
        {"mediaType": s.OCI_LAYER_GZIP, "digest": D1, "size": 2479},
        {
            "mediaType": s.OCI_LAYER_ZSTD,
            "digest": D2,
            "size": 12,
            "urls": ["https://example.com/blob"],
            "annotations": {"a": "1", "b": "2"},
        },
    ],
    "subject": {"mediaType": s.OCI_MANIFEST, "digest": D3, "size": 7},
    "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
}

DOCKER_MANIFEST: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": s.DOCKER_MANIFEST,
    "config": {"mediaType": s.DOCKER_CONFIG, "size": 1457, "digest": CFG},
    "layers": [{"mediaType": s.DOCKER_LAYER, "size": 772788, "digest": D1}],
}


def _entry(digest: str, arch: str, variant: str = "", os: str = "linux") -> dict[str, Any]:
    platform = {"architecture": arch, "os": os}
    if variant:
        platform["variant"] = variant
    return {"mediaType": s.OCI_MANIFEST, "digest": digest, "size": 500, "platform": platform}


def _index(*entries: dict[str, Any], media_type: str = s.OCI_INDEX) -> s.ImageIndex:
    return s.parse_index({"schemaVersion": 2, "mediaType": media_type, "manifests": list(entries)})


CONFIG: dict[str, Any] = {
    "created": "2024-05-01T10:00:00.123456789Z",
    "author": "someone",
    "architecture": "arm64",
    "os": "linux",
    "variant": "v8",
    "config": {
        "User": "1000:1000",
        "ExposedPorts": {"443/tcp": {}, "80/tcp": {}},
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Entrypoint": ["/docker-entrypoint.sh"],
        "Cmd": ["nginx", "-g", "daemon off;"],
        "Volumes": {"/data": {}},
        "WorkingDir": "/srv",
        "Labels": {"maintainer": "x", "a": "b"},
        "StopSignal": "SIGQUIT",
    },
    "rootfs": {"type": "layers", "diff_ids": [D1, D2]},
    "history": [
        {"created": "2024-05-01T10:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:x in /"},
        {"created_by": '/bin/sh -c #(nop)  CMD ["sh"]', "empty_layer": True},
    ],
}


# --------------------------------------------------------------------------- manifests


def test_oci_manifest_round_trips_with_stable_key_order() -> None:
    m = s.parse_manifest(OCI_MANIFEST)
    assert m.media_type == s.OCI_MANIFEST
    assert m.config.digest == CFG and m.config.size == 1469
    assert [layer.digest for layer in m.layers] == [D1, D2]
    assert m.layers[1].urls == ("https://example.com/blob",)
    assert m.subject is not None and m.subject.digest == D3
    out = s.manifest_to_dict(m)
    assert json.dumps(out) == json.dumps(OCI_MANIFEST)


def test_docker_manifest_writes_keys_in_go_order() -> None:
    m = s.parse_manifest(json.dumps(DOCKER_MANIFEST).encode())
    assert m.media_type == s.DOCKER_MANIFEST
    out = s.manifest_to_dict(m)
    assert list(out) == ["schemaVersion", "mediaType", "config", "layers"]
    assert list(out["config"]) == ["mediaType", "digest", "size"]
    assert out == DOCKER_MANIFEST


def test_maps_are_written_sorted() -> None:
    doc = copy.deepcopy(OCI_MANIFEST)
    doc["annotations"] = {"z": "1", "a": "2"}
    assert list(s.manifest_to_dict(s.parse_manifest(doc))["annotations"]) == ["a", "z"]


def test_unknown_keys_are_ignored_and_null_is_absent() -> None:
    doc = copy.deepcopy(OCI_MANIFEST)
    doc["x-extension"] = {"anything": True}
    doc["annotations"] = None
    doc["subject"] = None
    m = s.parse_manifest(doc)
    assert m.annotations == {} and m.subject is None


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        (lambda d: d.pop("config"), "config", "is required but missing"),
        (lambda d: d.update(schemaVersion=1), "schemaVersion", "unsupported schema version 1"),
        (lambda d: d.update(schemaVersion="2"), "schemaVersion", "must be a non-negative integer"),
        (lambda d: d["layers"][1].update(digest="sha256:abc"), "layers[1].digest",
         'invalid digest "sha256:abc": invalid checksum digest length'),
        (lambda d: d["layers"][0].update(size=-1), "layers[0].size",
         "must be a non-negative integer, got number -1"),
        (lambda d: d["layers"][0].pop("size"), "layers[0].size", "is required but missing"),
        (lambda d: d["layers"][0].update(urls="x"), "layers[0].urls", "must be an array"),
        (lambda d: d["layers"][1]["annotations"].update(a=1), 'layers[1].annotations["a"]',
         "must be a string, got number 1"),
        (lambda d: d.update(layers={}), "layers", "must be an array, got an object"),
        (lambda d: d.update(mediaType=s.OCI_INDEX), "mediaType", "unexpected media type"),
        (lambda d: d["config"].update(digest=None), "config.digest", "is required but missing"),
    ],
)  # fmt: skip
def test_manifest_errors_name_the_json_path(change: Any, key: str, message: str) -> None:
    doc = copy.deepcopy(OCI_MANIFEST)
    change(doc)
    with pytest.raises(ConfigError) as info:
        s.parse_manifest(doc, source="manifest.json")
    assert info.value.key == key
    assert info.value.path == "manifest.json"
    assert message in str(info.value)
    assert str(info.value).startswith(f"manifest.json: {key}: ")


def test_invalid_json_bytes() -> None:
    with pytest.raises(ConfigError, match="manifest: not valid JSON"):
        s.parse_manifest(b"{not json")


def test_not_an_object() -> None:
    with pytest.raises(ConfigError, match="must be a JSON object, got an array"):
        s.parse_manifest([])


# --------------------------------------------------------------------------- index


def test_index_round_trip() -> None:
    doc = {
        "schemaVersion": 2,
        "mediaType": s.OCI_INDEX,
        "manifests": [
            _entry(D1, "amd64"),
            {**_entry(D2, "arm64", "v8"), "annotations": {s.ANNOTATION_REF_NAME: "latest"}},
        ],
    }
    idx = s.parse_index(doc)
    assert idx.manifests[1].platform == s.Platform(architecture="arm64", os="linux", variant="v8")
    assert s.index_to_dict(idx) == doc


def test_platform_requires_os_and_architecture() -> None:
    doc = {"schemaVersion": 2, "manifests": [{**_entry(D1, "amd64"), "platform": {"os": "x"}}]}
    with pytest.raises(ConfigError) as info:
        s.parse_index(doc)
    assert info.value.key == "manifests[0].platform.architecture"


def test_platform_os_version_and_features_keys() -> None:
    p = s.Platform(
        architecture="amd64", os="windows", os_version="10.0.17763.1", os_features=("win32k",)
    )
    assert s.platform_to_dict(p) == {
        "architecture": "amd64", "os": "windows", "os.version": "10.0.17763.1",
        "os.features": ["win32k"],
    }  # fmt: skip


# --------------------------------------------------------------------------- config


def test_config_round_trip() -> None:
    c = s.parse_config(CONFIG)
    assert c.config.user == "1000:1000"
    assert c.config.exposed_ports == ("443/tcp", "80/tcp")
    assert c.config.cmd == ("nginx", "-g", "daemon off;")
    assert c.rootfs.diff_ids == (D1, D2)
    assert c.history[1].empty_layer is True
    out = s.config_to_dict(c)
    assert list(out) == [
        "created", "author", "architecture", "os", "variant", "config", "rootfs", "history",
    ]  # fmt: skip
    assert list(out["config"]["Labels"]) == ["a", "maintainer"]
    assert list(out["config"]["ExposedPorts"]) == ["443/tcp", "80/tcp"]
    assert out["history"][1] == {"created_by": '/bin/sh -c #(nop)  CMD ["sh"]', "empty_layer": True}
    assert s.parse_config(out) == c


def test_config_entrypoint_null_and_empty_differ() -> None:
    doc = copy.deepcopy(CONFIG)
    doc["config"]["Entrypoint"] = None
    doc["config"]["Cmd"] = []
    c = s.parse_config(doc)
    assert c.config.entrypoint is None
    assert c.config.cmd == ()


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        (lambda d: d.pop("rootfs"), "rootfs", "is required but missing"),
        (lambda d: d["rootfs"].update(type="layer"), "rootfs.type",
         'unknown rootfs type "layer"; expected "layers"'),
        (lambda d: d["rootfs"]["diff_ids"].append("sha256:zz"), "rootfs.diff_ids[2]",
         "invalid checksum digest"),
        (lambda d: d.pop("os"), "os", "is required but missing"),
        (lambda d: d["config"].update(Env="A=1"), "config.Env", "must be an array"),
        (lambda d: d["config"].update(Cmd=["a", 1]), "config.Cmd[1]", "must be a string"),
        (lambda d: d["history"][0].update(empty_layer="yes"), "history[0].empty_layer",
         "must be true or false"),
    ],
)  # fmt: skip
def test_config_errors_name_the_json_path(change: Any, key: str, message: str) -> None:
    doc = copy.deepcopy(CONFIG)
    change(doc)
    with pytest.raises(ConfigError) as info:
        s.parse_config(doc)
    assert info.value.key == key
    assert message in str(info.value)


def test_minimal_docker_config_defaults() -> None:
    c = s.parse_config({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}})
    assert c.config == s.ContainerConfig()
    assert s.config_to_dict(c) == {
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
    }  # fmt: skip


# --------------------------------------------------------------------------- type detection


@pytest.mark.parametrize(
    ("doc", "declared", "expected"),
    [
        (OCI_MANIFEST, None, s.OCI_MANIFEST),
        (DOCKER_MANIFEST, None, s.DOCKER_MANIFEST),
        # no mediaType: OCI manifest told by its config's media type
        ({"schemaVersion": 2, "config": {"mediaType": s.OCI_CONFIG}, "layers": []}, "",
         s.OCI_MANIFEST),
        ({"schemaVersion": 2, "config": {"mediaType": s.DOCKER_CONFIG}, "layers": []},
         "application/json", s.DOCKER_MANIFEST),
        ({"schemaVersion": 2, "manifests": [{"mediaType": s.OCI_MANIFEST}]}, None, s.OCI_INDEX),
        ({"schemaVersion": 2, "manifests": [{"mediaType": s.DOCKER_MANIFEST}]}, None,
         s.DOCKER_MANIFEST_LIST),
        ({"schemaVersion": 2, "mediaType": s.DOCKER_MANIFEST_LIST, "manifests": []}, None,
         s.DOCKER_MANIFEST_LIST),
        ({"schemaVersion": 1, "fsLayers": []}, None, s.DOCKER_SCHEMA1),
        ({"schemaVersion": 1, "fsLayers": [], "signatures": []}, "text/plain",
         s.DOCKER_SCHEMA1_SIGNED),
        # a declared manifest type wins, parameters and case ignored
        (DOCKER_MANIFEST, s.OCI_MANIFEST + "; charset=utf-8", s.OCI_MANIFEST),
        (OCI_MANIFEST, "Application/VND.docker.distribution.manifest.v2+json",
         s.DOCKER_MANIFEST),
    ],
)  # fmt: skip
def test_detect_manifest_type(doc: Any, declared: str | None, expected: str) -> None:
    assert s.detect_manifest_type(json.dumps(doc).encode(), declared) == expected


@pytest.mark.parametrize("raw", [b"", b"[]", b"{}", b'{"schemaVersion": 3}', b"\xff"])
def test_detect_manifest_type_refuses_unknown(raw: bytes) -> None:
    with pytest.raises(InvalidArgument):
        s.detect_manifest_type(raw, "application/octet-stream")


# --------------------------------------------------------------------------- schema 1


def _v1(**kw: Any) -> dict[str, str]:
    return {"v1Compatibility": json.dumps(kw)}


SCHEMA1: dict[str, Any] = {
    "schemaVersion": 1,
    "name": "library/busybox",
    "tag": "1.0",
    "architecture": "amd64",
    "fsLayers": [{"blobSum": D3}, {"blobSum": D2}, {"blobSum": D1}],  # top first
    "history": [
        _v1(id="c", architecture="amd64", os="linux", created="2016-03-03T00:00:02Z",
            config={"Cmd": ["sh"], "Env": ["PATH=/bin"]},
            container_config={"Cmd": ["/bin/sh", "-c", "#(nop) CMD [\"sh\"]"]}, throwaway=True),
        _v1(id="b", created="2016-03-03T00:00:01Z",
            container_config={"Cmd": ["/bin/sh", "-c", "#(nop) ADD file:x in /"]}),
        _v1(id="a", created="2016-03-03T00:00:00Z", author="me"),
    ],
    "signatures": [{"header": {}, "signature": "x", "protected": "y"}],
}  # fmt: skip


def test_schema1_layers_history_and_config() -> None:
    m = s.parse_schema1(SCHEMA1)
    assert m.signed
    assert m.layers() == (D1, D2)  # base first, throwaway layer dropped
    history = m.history()
    assert [h.created for h in history] == [
        "2016-03-03T00:00:00Z", "2016-03-03T00:00:01Z", "2016-03-03T00:00:02Z",
    ]  # fmt: skip
    assert history[0].author == "me"
    assert history[1].created_by == "/bin/sh -c #(nop) ADD file:x in /"
    assert history[2].empty_layer
    config = m.config()
    assert config.architecture == "amd64" and config.os == "linux"
    assert config.config.cmd == ("sh",) and config.config.env == ("PATH=/bin",)


def test_schema1_mismatched_lengths() -> None:
    doc = copy.deepcopy(SCHEMA1)
    doc["history"].pop()
    with pytest.raises(ConfigError, match="history: has 2 entries but fsLayers has 3"):
        s.parse_schema1(doc)


def test_schema1_bad_blobsum_path() -> None:
    doc = copy.deepcopy(SCHEMA1)
    doc["fsLayers"][1]["blobSum"] = "sha256:nothex"
    with pytest.raises(ConfigError) as info:
        s.parse_schema1(doc)
    assert info.value.key == "fsLayers[1].blobSum"


def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _signed(payload: bytes, *headers: tuple[int, bytes]) -> bytes:
    """A signed schema 1 manifest as docker's libtrust writes it."""
    length, tail = headers[0]
    sigs = [
        {"header": {"alg": "ES256"}, "signature": "c2ln",
         "protected": _b64(json.dumps({"formatLength": n, "formatTail": _b64(t)}).encode())}
        for n, t in headers
    ]  # fmt: skip
    return payload[:length] + b',\n   "signatures": ' + json.dumps(sigs).encode() + tail


def test_signed_schema1_digest_is_of_the_payload() -> None:
    unsigned = dict(SCHEMA1)
    del unsigned["signatures"]
    payload = json.dumps(unsigned, indent=3).encode()
    raw = _signed(payload, (len(payload) - 2, payload[-2:]))
    assert json.loads(raw)["name"] == "library/busybox"
    assert s.detect_manifest_type(raw) == s.DOCKER_SCHEMA1_SIGNED
    assert s.schema1_payload(raw) == payload
    assert s.manifest_digest(raw) == digest_bytes(payload)
    assert s.manifest_digest(payload) == digest_bytes(payload)  # unsigned: the bytes
    oci = json.dumps(OCI_MANIFEST).encode()
    assert s.manifest_digest(oci) == digest_bytes(oci)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: _signed(p, (len(p) - 2, p[-2:]), (len(p) - 3, p[-3:])),
        lambda p: _signed(p, (10**9, b"")),
        lambda p: p[:-2] + b',"signatures": [{"protected": "!!"}]}',
        lambda p: p[:-2] + b',"signatures": []}',
    ],
)
def test_malformed_signed_schema1(make: Any) -> None:
    payload = json.dumps({"schemaVersion": 1, "name": "x"}, indent=3).encode()
    with pytest.raises(InvalidArgument, match="malformed signed schema 1 manifest"):
        s.schema1_payload(make(payload))


# --------------------------------------------------------------------------- platforms


@pytest.mark.parametrize(
    ("given_", "expected"),
    [
        (("linux", "x86_64", ""), ("linux", "amd64", "")),
        (("linux", "amd64", "v1"), ("linux", "amd64", "")),
        (("linux", "aarch64", ""), ("linux", "arm64", "")),
        (("linux", "arm64", "v8"), ("linux", "arm64", "")),
        (("linux", "armhf", ""), ("linux", "arm", "v7")),
        (("linux", "armel", ""), ("linux", "arm", "v6")),
        (("linux", "arm", ""), ("linux", "arm", "v7")),
        (("linux", "arm", "6"), ("linux", "arm", "v6")),
        (("linux", "i386", ""), ("linux", "386", "")),
        (("MacOS", "AMD64", ""), ("darwin", "amd64", "")),
    ],
)
def test_normalize_platform_like_containerd(
    given_: tuple[str, str, str], expected: tuple[str, str, str]
) -> None:
    assert s.normalize_platform(*given_) == expected


MULTI = _index(
    _entry(D1, "amd64"),
    _entry(D2, "arm", "v6"),
    _entry(D3, "arm64", "v8"),
    _entry(CFG, "amd64", os="windows"),
)


def test_choose_platform_exact() -> None:
    assert MULTI.manifests[0] == s.choose_platform(MULTI, "linux", "amd64")
    assert s.choose_platform(MULTI, "windows", "amd64").digest == CFG
    assert s.choose_platform(MULTI, "linux", "aarch64").digest == D3  # v8 == no variant


def test_choose_platform_arm_falls_back_to_older_variants() -> None:
    assert s.choose_platform(MULTI, "linux", "arm", "v7").digest == D2
    assert s.choose_platform(MULTI, "linux", "armhf").digest == D2
    with pytest.raises(NotFound):
        s.choose_platform(MULTI, "linux", "arm", "v5")


def test_choose_platform_prefers_exact_variant_over_index_order() -> None:
    idx = _index(_entry(D1, "arm", "v5"), _entry(D2, "arm", "v7"))
    assert s.choose_platform(idx, "linux", "arm", "v7").digest == D2


def test_choose_platform_without_variant_prefers_the_baseline() -> None:
    idx = _index(_entry(D1, "amd64", "v3"), _entry(D2, "amd64"), _entry(D3, "amd64", "v2"))
    assert s.choose_platform(idx, "linux", "amd64").digest == D2
    assert s.choose_platform(idx, "linux", "amd64", "v3").digest == D1
    assert s.choose_platform(idx, "linux", "amd64", "v4").digest == D1  # v4 runs v3 images
    only_v3 = _index(_entry(D1, "amd64", "v3"))
    assert s.choose_platform(only_v3, "linux", "amd64").digest == D1


def test_choose_platform_defaults_to_linux_on_this_host() -> None:
    host = s.host_platform()
    idx = _index(_entry(D1, "s390x-nothing"), _entry(D2, host.architecture, host.variant))
    assert s.choose_platform(idx).digest == D2


def test_choose_platform_message_as_containers_image() -> None:
    with pytest.raises(NotFound) as info:
        s.choose_platform(MULTI, "linux", "ppc64le")
    assert str(info.value) == (
        'no image found in image index for architecture "ppc64le", variant "", OS "linux"'
    )
    lst = _index(_entry(D1, "amd64"), media_type=s.DOCKER_MANIFEST_LIST)
    with pytest.raises(NotFound, match="no image found in manifest list for architecture"):
        s.choose_platform(lst, "linux", "riscv64")


def test_entries_without_platform_are_skipped() -> None:
    idx = s.parse_index(
        {"schemaVersion": 2, "manifests": [{"mediaType": s.OCI_MANIFEST, "digest": D1, "size": 1}]}
    )
    with pytest.raises(NotFound):
        s.choose_platform(idx, "linux", "amd64")


# --------------------------------------------------------------------------- properties

_digests = st.binary(max_size=8).map(lambda b: digest_bytes(b))
_descriptors = st.builds(
    s.Descriptor,
    media_type=st.sampled_from([s.OCI_LAYER, s.OCI_LAYER_GZIP, s.DOCKER_LAYER]),
    digest=_digests,
    size=st.integers(0, 2**40),
    urls=st.lists(st.text(min_size=1, max_size=10), max_size=2).map(tuple),
    annotations=st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
)


@given(_descriptors, st.lists(_descriptors, max_size=4))
def test_written_manifests_parse_back(config: s.Descriptor, layers: list[s.Descriptor]) -> None:
    m = s.ImageManifest(
        schema_version=2, media_type=s.OCI_MANIFEST, config=config, layers=tuple(layers)
    )
    raw = json.dumps(s.manifest_to_dict(m)).encode()
    assert s.parse_manifest(raw) == m
    assert s.detect_manifest_type(raw) == s.OCI_MANIFEST
