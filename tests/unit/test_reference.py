"""pypod.image.reference: the docker reference grammar (distribution/reference's test tables)."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from pypod.errors import InvalidArgument
from pypod.image.reference import (
    InvalidReference,
    Reference,
    is_short_name,
    parse,
    parse_docker,
    parse_normalized,
)
from pypod.oci.digest import digest_bytes

F64 = "sha256:" + "f" * 64
F128 = "sha512:" + "f" * 128
HEX_ID = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"


# distribution/reference TestReferenceParse: (input, domain, name, tag, digest)
@pytest.mark.parametrize(
    ("value", "domain", "name", "tag", "digest"),
    [
        ("test_com", "", "test_com", None, None),
        ("test.com:tag", "", "test.com", "tag", None),
        ("test.com:5000", "", "test.com", "5000", None),
        ("test.com/repo:tag", "test.com", "test.com/repo", "tag", None),
        ("test:5000/repo", "test:5000", "test:5000/repo", None, None),
        ("test:5000/repo:tag", "test:5000", "test:5000/repo", "tag", None),
        (f"test:5000/repo@{F64}", "test:5000", "test:5000/repo", None, F64),
        (f"test:5000/repo:tag@{F64}", "test:5000", "test:5000/repo", "tag", F64),
        ("lowercase:Uppercase", "", "lowercase", "Uppercase", None),
        ("a/" * 127 + "a:tag-puts-this-over-max", "a", "a/" * 127 + "a",
         "tag-puts-this-over-max", None),
        ("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", "sub-dom1.foo.com/bar/baz/quux",
         None, None),
        ("sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com",
         "sub-dom1.foo.com/bar/baz/quux", "some-long-tag", None),
        ("b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io",
         "b.gcr.io/test.example.com/my-app", "test.example.com", None),
        ("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com", "xn--n3h.com/myimage", "xn--n3h.com",
         None),
        (f"xn--7o8h.com/myimage:xn--7o8h.com@{F128}", "xn--7o8h.com", "xn--7o8h.com/myimage",
         "xn--7o8h.com", F128),
        ("foo_bar.com:8080", "", "foo_bar.com", "8080", None),
        ("foo/foo_bar.com:8080", "foo", "foo/foo_bar.com", "8080", None),
        ("192.168.1.1", "", "192.168.1.1", None, None),
        ("192.168.1.1:tag", "", "192.168.1.1", "tag", None),
        ("192.168.1.1:5000", "", "192.168.1.1", "5000", None),
        ("192.168.1.1/repo", "192.168.1.1", "192.168.1.1/repo", None, None),
        ("192.168.1.1:5000/repo", "192.168.1.1:5000", "192.168.1.1:5000/repo", None, None),
        ("192.168.1.1:5000/repo:5050", "192.168.1.1:5000", "192.168.1.1:5000/repo", "5050",
         None),
        ("[2001:db8::1]/repo", "[2001:db8::1]", "[2001:db8::1]/repo", None, None),
        ("[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]",
         "[2001:db8:1:2:3:4:5:6]/repo", "tag", None),
        ("[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "[2001:db8::1]:5000/repo", None, None),
        (f"[2001:db8::1]:5000/repo:tag@{F64}", "[2001:db8::1]:5000", "[2001:db8::1]:5000/repo",
         "tag", F64),
        ("[::1]:5000/repo", "[::1]:5000", "[::1]:5000/repo", None, None),
        # "Uppercase" has the syntax of a host name, so this parses (a known Go quirk)
        ("Uppercase/lowercase:tag", "Uppercase", "Uppercase/lowercase", "tag", None),
        ("test-com:8080/foo", "test-com:8080", "test-com:8080/foo", None, None),
        ("test_com/foo", "", "test_com/foo", None, None),
    ],
)  # fmt: skip
def test_parse_table(
    value: str, domain: str, name: str, tag: str | None, digest: str | None
) -> None:
    ref = parse(value)
    assert (ref.domain, ref.name, ref.tag, ref.digest) == (domain, name, tag, digest)
    assert str(ref) == value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "repository name must have at least one component"),
        (":justtag", "invalid reference format"),
        (f"@{F64}", "invalid reference format"),
        ("repo@sha256:" + "f" * 34, "invalid checksum digest length"),
        ("validname@invaliddigest:" + "f" * 64, "unsupported digest algorithm"),
        ("Uppercase:tag", "repository name must be lowercase"),
        ("test:5000/Uppercase/lowercase:tag", "repository name must be lowercase"),
        ("a/" * 128 + "a:tag", "repository name must not be more than 255 characters"),
        ("aa/asdf$$^/aa", "invalid reference format"),
        ("[2001:db8::1]", "invalid reference format"),
        ("[2001:db8::1]:5000", "invalid reference format"),
        ("[2001:db8::1]:tag", "invalid reference format"),
        ("[fe80::1%eth0]:5000/repo", "invalid reference format"),
        ("[fe80::1%@invalidzone]:5000/repo", "invalid reference format"),
        ("foo:" + "a" * 129, "invalid reference format"),  # tags are at most 128 characters
        ("foo:-tag", "invalid reference format"),
        ("foo bar", "invalid reference format"),
        ("foo\n", "invalid reference format"),
        ("docker.io/docker//docker", "invalid reference format"),
        ("-docker", "invalid reference format"),
    ],
)
def test_parse_errors_carry_go_reason(value: str, reason: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse(value)
    assert info.value.reason == reason
    assert str(info.value).startswith(reason + ': "')


# distribution/reference normalize_test.go
@pytest.mark.parametrize(
    ("value", "full", "familiar"),
    [
        ("busybox", "docker.io/library/busybox", "busybox"),
        ("library/ubuntu", "docker.io/library/ubuntu", "ubuntu"),
        ("docker.io/ubuntu", "docker.io/library/ubuntu", "ubuntu"),
        ("index.docker.io/ubuntu", "docker.io/library/ubuntu", "ubuntu"),
        ("index.docker.io/library/ubuntu:20.04", "docker.io/library/ubuntu:20.04",
         "ubuntu:20.04"),
        ("fooo/bar", "docker.io/fooo/bar", "fooo/bar"),
        ("nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu", "nonlibrary/ubuntu"),
        ("library/a/b", "docker.io/library/a/b", "library/a/b"),
        ("user/app", "docker.io/user/app", "user/app"),
        ("127.0.0.1:8000/private/moonbase", "127.0.0.1:8000/private/moonbase",
         "127.0.0.1:8000/private/moonbase"),
        ("localhost:8000/private/moonbase", "localhost:8000/private/moonbase",
         "localhost:8000/private/moonbase"),
        ("localhost/x", "localhost/x", "localhost/x"),
        ("registry:5000/x", "registry:5000/x", "registry:5000/x"),
        ("example.com/private/moonbase", "example.com/private/moonbase",
         "example.com/private/moonbase"),
        ("192.168.0.1", "docker.io/library/192.168.0.1", "192.168.0.1"),
        ("192.168.0.1:80", "docker.io/library/192.168.0.1:80", "192.168.0.1:80"),
        (f"ubuntu@{F64}", f"docker.io/library/ubuntu@{F64}", f"ubuntu@{F64}"),
        ("docker.io/" + "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
         "docker.io/library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
         "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"),
    ],
)  # fmt: skip
def test_normalisation_and_familiar_form(value: str, full: str, familiar: str) -> None:
    ref = parse_normalized(value)
    assert str(ref) == full
    assert ref.familiar() == familiar
    assert parse_normalized(full) == ref
    if len(familiar) != 64:  # a bare 64-hex name is refused as an image ID, as in Go
        assert parse_normalized(familiar) == ref


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("https://github.com/docker/docker", "invalid reference format"),
        ("docker/Docker", "invalid reference format: repository name (docker/Docker) must be "
         "lowercase"),
        ("docker.io/docker/Docker", "invalid reference format: repository name (docker/Docker) "
         "must be lowercase"),
        ("Busybox", "invalid reference format: repository name (library/Busybox) must be "
         "lowercase"),
        ("-docker", "invalid reference format"),
        ("-docker/docker", "invalid reference format"),
        ("-docker.io/docker/docker", "invalid reference format"),
        ("docker///docker", "invalid reference format"),
        ("docker.io/docker///docker", "invalid reference format"),
        (HEX_ID, f"invalid repository name ({HEX_ID}), cannot specify 64-byte hexadecimal "
         "strings"),
    ],
)  # fmt: skip
def test_normalisation_errors(value: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_normalized(value)
    assert str(info.value).startswith(message)


def test_uppercase_domain_is_kept_as_a_domain() -> None:
    ref = parse_normalized("Docker.io/foo")  # has a ".", so it is a registry (as in Go)
    assert ref.domain == "Docker.io"


def test_parse_docker_adds_latest_only_without_tag_or_digest() -> None:
    assert str(parse_docker("busybox")) == "docker.io/library/busybox:latest"
    assert str(parse_docker("busybox:1.36")) == "docker.io/library/busybox:1.36"
    assert str(parse_docker(f"busybox@{F64}")) == f"docker.io/library/busybox@{F64}"
    assert parse_docker("busybox").familiar() == "busybox:latest"


def test_accessors_and_builders() -> None:
    ref = parse_normalized("quay.io/podman/hello:v1")
    assert ref.registry == "quay.io" and ref.path == "podman/hello"
    assert ref.tag == "v1" and ref.digest is None
    assert str(ref.with_tag("v2")) == "quay.io/podman/hello:v2"
    both = ref.with_digest(F64)
    assert str(both) == f"quay.io/podman/hello:v1@{F64}"
    assert str(both.trim()) == "quay.io/podman/hello"
    assert both.with_tag("TAG5").tag == "TAG5"
    assert ref.trim().is_name_only()


@pytest.mark.parametrize("tag", ["", "-x", ".x", "a" * 129, "a b", "é"])
def test_with_tag_refuses_bad_tags(tag: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse("foo").with_tag(tag)
    assert info.value.reason == "invalid tag format"


@pytest.mark.parametrize(
    ("digest", "reason"),
    [
        ("sha256:abc", "invalid digest format"),
        ("nothing", "invalid digest format"),
        # Go's WithDigest accepts any 32+ hex; pypod also checks the length of known algorithms
        ("sha256:1234567890098765432112345667890098765", "invalid checksum digest length"),
    ],
)
def test_with_digest_refuses_bad_digests(digest: str, reason: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse("foo").with_digest(digest)
    assert info.value.reason == reason


def test_references_are_hashable_and_compare_by_value() -> None:
    a, b = parse_normalized("busybox"), parse_normalized("docker.io/library/busybox")
    assert a == b and hash(a) == hash(b)
    assert len({a, b, parse_normalized("busybox:1")}) == 2
    assert a == Reference(domain="docker.io", path="library/busybox")


# containers/image shortnames_test.go TestIsShortName
@pytest.mark.parametrize(
    ("value", "short"),
    [
        ("busybox", True),
        ("busybox:latest", True),
        (f"busybox@{F64}", True),
        ("library/busybox", True),
        ("user/app:1", True),
        ("quay.io/busybox", False),
        ("localhost/busybox", False),
        ("localhost:5000/busybox", False),
        ("registry:5000/x", False),
        ("docker.io/library/busybox", False),
        ("Busybox", False),  # does not parse
        ("", False),
    ],
)
def test_is_short_name(value: str, short: bool) -> None:
    assert is_short_name(value) is short


# --------------------------------------------------------------------------- properties

_component = st.from_regex(r"[a-z0-9]{1,6}(?:(?:[._]|__|-{1,2})[a-z0-9]{1,6}){0,2}", fullmatch=True)
_domain_component = st.from_regex(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?", fullmatch=True)
_domain = st.one_of(
    st.tuples(st.lists(_domain_component, min_size=1, max_size=3).map(".".join),
              st.one_of(st.just(""), st.integers(0, 65535).map(lambda p: f":{p}"))
              ).map("".join),
    st.sampled_from(["[::1]", "[2001:db8::1]:5000", "localhost", "localhost:5000"]),
)  # fmt: skip
_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
_digest = st.binary(max_size=4).map(digest_bytes)


@st.composite
def _references(draw: st.DrawFn) -> str:
    domain = draw(st.one_of(st.just(""), _domain))
    path = "/".join(draw(st.lists(_component, min_size=1, max_size=4)))
    name = f"{domain}/{path}" if domain else path
    tag = draw(st.one_of(st.none(), _tag))
    digest = draw(st.one_of(st.none(), _digest))
    return name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


@given(_references())
def test_round_trip(value: str) -> None:
    assume(len(value.split("@")[0].rsplit(":", 1)[0]) <= 255)
    ref = parse(value)
    assert str(ref) == value
    assert parse(str(ref)) == ref
    try:
        normalized = parse_normalized(value)
    except InvalidArgument:
        return
    assert parse_normalized(str(normalized)) == normalized
    assert parse_normalized(normalized.familiar()) == normalized
    if normalized.domain.lower() == normalized.domain:  # "A/b": Go's quirk, "A" is no registry
        assert not is_short_name(str(normalized))


@given(st.text(max_size=80))
def test_garbage_raises_only_invalid_argument(value: str) -> None:
    for fn in (parse, parse_normalized, parse_docker):
        try:
            fn(value)
        except InvalidArgument:
            pass
    assert isinstance(is_short_name(value), bool)


@given(st.text(alphabet="ab:/@._-AZ09[]", max_size=60))
def test_grammar_like_garbage_raises_only_invalid_argument(value: str) -> None:
    for fn in (parse, parse_normalized):
        try:
            ref = fn(value)
        except InvalidArgument:
            continue
        assert fn(str(ref)) == ref
