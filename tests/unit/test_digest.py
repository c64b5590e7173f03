"""pypod.oci.digest: validate, compute and compare content digests (go-digest's rules)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pypod.errors import InvalidArgument
from pypod.oci.digest import (
    Digester,
    DigestMismatch,
    InvalidDigest,
    algorithm_of,
    digest_bytes,
    encoded_of,
    is_digest,
    parse_digest,
    verify_digest,
)

EMPTY_SHA256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
HEX64 = "a" * 64


def test_known_digest_of_empty_content() -> None:
    assert digest_bytes(b"") == EMPTY_SHA256
    assert digest_bytes(b"", "sha512") == "sha512:" + hashlib.sha512(b"").hexdigest()


@pytest.mark.parametrize(
    "value",
    [
        EMPTY_SHA256,
        "sha384:" + "0" * 96,
        "sha512:" + "f" * 128,
    ],
)
def test_valid_digests(value: str) -> None:
    assert parse_digest(value) == value
    assert is_digest(value)


# The go-digest test table (digest_test.go), with its error texts.
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("sha256:", "invalid checksum digest format"),
        ("", "invalid checksum digest format"),
        (":" + HEX64, "invalid checksum digest format"),
        ("sha256", "invalid checksum digest format"),
        ("sha256:" + "a" * 63, "invalid checksum digest length"),
        ("sha256:" + "a" * 65, "invalid checksum digest length"),
        ("sha256:" + "A" * 64, "invalid checksum digest format"),
        ("sha256:" + "g" * 64, "invalid checksum digest format"),
        ("foo:" + HEX64, "unsupported digest algorithm"),
        ("sha256+b64:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564", "unsupported digest algorithm"),
        ("Sha256:" + HEX64, "invalid checksum digest format"),
        ("sha512:" + "a" * 64, "invalid checksum digest length"),
        ("md5:d41d8cd98f00b204e9800998ecf8427e", "unsupported digest algorithm"),
    ],
)
def test_invalid_digests_name_the_value_and_reason(value: str, reason: str) -> None:
    with pytest.raises(InvalidDigest) as info:
        parse_digest(value)
    assert info.value.reason == reason
    assert str(info.value) == f'invalid digest "{value}": {reason}'
    assert not is_digest(value)


def test_digester_matches_one_shot_and_counts_bytes() -> None:
    d = Digester()
    for piece in (b"hello ", b"", b"world"):
        d.update(piece)
    assert d.digest() == digest_bytes(b"hello world")
    assert d.size == 11


def test_digester_for_digest_uses_its_algorithm() -> None:
    expected = digest_bytes(b"x", "sha512")
    d = Digester.for_digest(expected)
    d.update(b"x")
    assert d.algorithm == "sha512"
    verify_digest(expected, d.digest())


def test_mismatch_names_both_digests() -> None:
    other = digest_bytes(b"other")
    with pytest.raises(DigestMismatch) as info:
        verify_digest(EMPTY_SHA256, other, what="blob")
    assert info.value.expected == EMPTY_SHA256
    assert info.value.actual == other
    assert f"expected {EMPTY_SHA256}, got {other}" in str(info.value)
    assert str(info.value).startswith("digest mismatch for blob:")


def test_unsupported_algorithm_for_computing() -> None:
    with pytest.raises(InvalidArgument, match="unsupported digest algorithm 'md5'"):
        Digester("md5")


def test_parts() -> None:
    d = parse_digest(EMPTY_SHA256)
    assert algorithm_of(d) == "sha256"
    assert encoded_of(d) == EMPTY_SHA256[7:]


@given(st.binary(max_size=512), st.sampled_from(["sha256", "sha384", "sha512"]))
def test_computed_digests_always_validate(data: bytes, algorithm: str) -> None:
    d = digest_bytes(data, algorithm)
    assert parse_digest(d) == d
    assert algorithm_of(d) == algorithm


@given(st.text(max_size=200))
def test_garbage_raises_only_invalid_argument(value: str) -> None:
    try:
        parse_digest(value)
    except InvalidArgument:
        pass
