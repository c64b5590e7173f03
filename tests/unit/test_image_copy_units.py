"""Parsing of `transport:reference` names and the copy pipeline's format decisions."""

from __future__ import annotations

import gzip
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pypod.errors import InvalidArgument
from pypod.image.copy.compression import Peeked, compression_of_media_type, transform
from pypod.image.copy.convert import layer_type_for, manifest_type_for, wanted_compression
from pypod.image.transports import get_transport, parse_image_name, transport_names
from pypod.oci.image_spec import (
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
)


def test_registered_transports() -> None:
    assert {"dir", "docker", "docker-archive", "oci", "oci-archive"} <= set(transport_names())
    assert get_transport("oci").name == "oci"
    with pytest.raises(InvalidArgument, match='unknown transport "nope"'):
        get_transport("nope")


@pytest.mark.parametrize(
    ("name", "within"),
    [
        ("docker://busybox", "//docker.io/library/busybox:latest"),
        ("docker://quay.io/a/b:1", "//quay.io/a/b:1"),
        ("oci:/tmp/layout:v1", "/tmp/layout:v1"),
        ("oci:/tmp/layout", "/tmp/layout"),
        ("oci-archive:/tmp/a.tar:x", "/tmp/a.tar:x"),
        ("docker-archive:/tmp/a.tar:busybox", "/tmp/a.tar:busybox:latest"),
        ("docker-archive:/tmp/a.tar:@2", "/tmp/a.tar:@2"),
        ("dir:/tmp/d", "/tmp/d"),
    ],
)
def test_names_round_trip(name: str, within: str) -> None:
    ref = parse_image_name(name)
    assert ref.transport_name == name.split(":", 1)[0]
    assert ref.string_within_transport() == within


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("busybox", 'Invalid image name "busybox", expected colon-separated transport:reference'),
        ("foo:bar", 'Invalid image name "foo:bar", unknown transport "foo"'),
        ("docker:busybox", "docker: image reference busybox does not start with //"),
        ("docker://a:1@sha256:" + "a" * 64, "both a tag and digest"),
        ("docker-archive:/a.tar:x@sha256:" + "a" * 64, "doesn't support digest references"),
        ("oci:", "a layout path is required"),
    ],
)
def test_bad_names(name: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(")):
        parse_image_name(name)


@given(
    path=st.from_regex(r"/[a-z0-9_./-]{1,30}", fullmatch=True),
    image=st.from_regex(r"[A-Za-z0-9._/-]{0,20}", fullmatch=True),
)
def test_oci_names_split_at_the_first_colon(path: str, image: str) -> None:
    name = f"oci:{path}:{image}" if image else f"oci:{path}"
    ref = parse_image_name(name)
    assert ref.string_within_transport() == name[4:]


def test_manifest_type_choice() -> None:
    assert manifest_type_for(DOCKER_MANIFEST, None, ()) == DOCKER_MANIFEST
    assert manifest_type_for(DOCKER_MANIFEST, None, (OCI_MANIFEST, OCI_INDEX)) == OCI_MANIFEST
    assert manifest_type_for(OCI_MANIFEST, "v2s2", ()) == DOCKER_MANIFEST
    with pytest.raises(InvalidArgument, match="does not accept"):
        manifest_type_for(OCI_MANIFEST, "v2s2", (OCI_MANIFEST,))
    with pytest.raises(InvalidArgument, match='unknown format "v3"'):
        manifest_type_for(OCI_MANIFEST, "v3", ())


def test_layer_types_and_compression() -> None:
    assert layer_type_for(DOCKER_MANIFEST, OCI_LAYER_GZIP, "gzip") == DOCKER_LAYER
    assert layer_type_for(OCI_MANIFEST, DOCKER_LAYER, "none") == OCI_LAYER
    assert layer_type_for(OCI_MANIFEST, DOCKER_LAYER, "zstd") == OCI_LAYER_ZSTD
    with pytest.raises(InvalidArgument, match="zstd"):
        layer_type_for(DOCKER_MANIFEST, OCI_LAYER_ZSTD, "zstd")
    assert wanted_compression("none", "compress", None, OCI_MANIFEST) == "gzip"
    assert wanted_compression("gzip", "decompress", "zstd", OCI_MANIFEST) == "none"
    assert wanted_compression("gzip", "preserve", None, OCI_MANIFEST) == "gzip"
    assert wanted_compression("zstd", "preserve", None, DOCKER_MANIFEST) == "gzip"
    assert compression_of_media_type(OCI_LAYER_GZIP) == "gzip"
    assert compression_of_media_type(OCI_LAYER) == "none"
    assert compression_of_media_type("application/x-unknown") is None


@pytest.mark.parametrize(("current", "wanted"), [("none", "gzip"), ("gzip", "zstd"),
                                                 ("zstd", "none"), ("gzip", "none")])  # fmt: skip
def test_transform_round_trips(current: str, wanted: str) -> None:
    data = bytes(range(256)) * 4096
    source = {"none": data, "gzip": gzip.compress(data)}.get(current)
    if source is None:
        import zstandard

        source = zstandard.ZstdCompressor().compress(data)
    peeked = Peeked(io.BytesIO(source))  # type: ignore[arg-type]
    assert peeked.compression == current
    out = transform(peeked, current, wanted).read(1 << 30)
    back = Peeked(io.BytesIO(out))  # type: ignore[arg-type]
    assert back.compression == wanted
    assert transform(back, wanted, "none").read(1 << 30) == data
