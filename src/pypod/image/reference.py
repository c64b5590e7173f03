"""Docker image references: ``[domain[:port]/]path[:tag][@digest]``.

The grammar, the normalisation and the error texts are those of the Go package
``github.com/distribution/reference`` (which podman, skopeo and buildah use):

- :func:`parse` is ``reference.Parse``: the name exactly as written; the first path component is
  the domain whenever there are two or more components and it has the syntax of a host name
  (so ``foo/bar`` has domain ``foo``).
- :func:`parse_normalized` is ``ParseNormalizedNamed``: ``busybox`` ->
  ``docker.io/library/busybox``, ``user/app`` -> ``docker.io/user/app``; a domain is kept only
  when the first component contains ``.`` or ``:``, is ``localhost`` or has an upper-case letter.
- :func:`parse_docker` adds ``:latest`` when there is neither tag nor digest
  (``ParseDockerRef`` / ``TagNameOnly``).

Errors are :class:`InvalidReference` (an ``InvalidArgument``) whose ``reason`` is the Go text
("invalid reference format", "repository name must be lowercase", ...).
"""

from __future__ import annotations

from pypod.errors import InvalidArgument
from pypod.oci.digest import digest_problem
from pypod.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "NAME_TOTAL_LENGTH_MAX",
    "InvalidReference",
    "Reference",
    "is_domain",
    "is_short_name",
    "parse",
    "parse_docker",
    "parse_normalized",
    "split_docker_domain",
    "validate_tag",
]

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

# Go's error texts
REFERENCE_FORMAT = "invalid reference format"
TAG_FORMAT = "invalid tag format"
DIGEST_FORMAT = "invalid digest format"
NAME_UPPERCASE = "repository name must be lowercase"
NAME_EMPTY = "repository name must have at least one component"
NAME_TOO_LONG = f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"

# The grammar of distribution/reference (regexp.go); ASCII only, as Go's \w.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9A-Fa-f]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"

_REFERENCE = rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?"
_NAME_SPLIT = rf"(?:({_DOMAIN})/)?({_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
_IDENTIFIER = r"[a-f0-9]{64}"


def _full(pattern: str, value: str) -> re.Match[str] | None:
    # The patterns are compiled on first use and kept in re's own cache, and `re` itself is
    # imported then (the checks by hand below answer for the usual references): importing this
    # module costs nothing more than its source.
    import re

    return re.fullmatch(pattern, value, re.ASCII)


# The same grammar checked by hand (compiling _REFERENCE and _NAME_SPLIT costs ~0.6 ms, in every
# `pypod run`): exact for tags, digests, identifiers and host names; for a whole reference,
# `_split_fast` answers only when the input is valid and has no IPv6 domain, and the regular
# expressions decide (and word the error) otherwise.  tests/unit/test_reference_fast.py holds
# both to the same answers.
_DIGITS = "0123456789"
_LOWER = "abcdefghijklmnopqrstuvwxyz"
_UPPER = _LOWER.upper()
_LETTER_SET = frozenset(_LOWER + _UPPER)
_ALNUM_SET = frozenset(_LOWER + _UPPER + _DIGITS)
_LOWER_ALNUM_SET = frozenset(_LOWER + _DIGITS)
_WORD_SET = _ALNUM_SET | {"_"}
_TAG_SET = _WORD_SET | {".", "-"}
_HEX_SET = frozenset(_DIGITS + "abcdefABCDEF")
_LOWER_HEX_SET = frozenset(_DIGITS + "abcdef")
_DIGIT_SET = frozenset(_DIGITS)
_HOST_SET = _ALNUM_SET | {"-"}


def _is_tag(value: str) -> bool:
    """_TAG: a word character, then up to 127 word characters, dots and dashes."""
    return 0 < len(value) <= 128 and value[0] in _WORD_SET and all(c in _TAG_SET for c in value)


def _is_digest(value: str) -> bool:
    """_DIGEST: `alg[+-_.alg]*:hex` with 32 or more hex digits, each alg a letter then
    letters and digits."""
    algorithm, colon, encoded = value.partition(":")
    if not colon or len(encoded) < 32 or not all(c in _HEX_SET for c in encoded):
        return False
    start = True  # at the start of an algorithm component
    for c in algorithm:
        if start:
            if c not in _LETTER_SET:
                return False
            start = False
        elif c in "-_+.":
            start = True
        elif c not in _ALNUM_SET:
            return False
    return not start


def _is_identifier(value: str) -> bool:
    """_IDENTIFIER: 64 lower-case hex digits."""
    return len(value) == 64 and all(c in _LOWER_HEX_SET for c in value)


def _is_host(value: str) -> bool:
    """_DOMAIN without its IPv6 form: dot-separated components of letters, digits and inner
    dashes, then an optional `:port`."""
    host, colon, port = value.partition(":")
    if colon and (not port or not all(c in _DIGIT_SET for c in port)):
        return False
    for part in host.split("."):
        if (
            not part
            or part[0] not in _ALNUM_SET
            or part[-1] not in _ALNUM_SET
            or not all(c in _HOST_SET for c in part)
        ):
            return False
    return True


def _is_path_component(value: str) -> bool:
    """_PATH_COMPONENT: runs of lower-case letters and digits, joined by `.`, `_`, `__` or
    dashes."""
    if not value or value[0] not in _LOWER_ALNUM_SET or value[-1] not in _LOWER_ALNUM_SET:
        return False
    separator = ""
    for c in value:
        if c in _LOWER_ALNUM_SET:
            if separator:
                if separator not in (".", "_", "__") and separator.strip("-"):
                    return False
                separator = ""
        elif c in "._-":
            separator += c
        else:
            return False
    return True


def _split_fast(value: str) -> tuple[str, str, str | None, str | None] | None:
    """(domain, path, tag, digest) of a valid reference as _REFERENCE and _NAME_SPLIT split
    it; None when it is not valid or names an IPv6 domain (the regular expressions decide)."""
    rest, at, digest = value.partition("@")
    if at and not _is_digest(digest):
        return None
    tag = None
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):  # after the last slash, a colon can only start the tag
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _is_tag(tag):
            return None
    if rest.startswith("["):  # an IPv6 domain
        return None
    domain, slash, path = rest.partition("/")
    if not (slash and _is_host(domain)):
        # the first component is the domain only when others follow and it is a host name
        domain, path = "", rest
    if not all(_is_path_component(c) for c in path.split("/")):
        return None
    return domain, path, tag, digest if at else None


def _split_regex(value: str) -> tuple[str, str, str | None, str | None] | None:
    """(domain, path, tag, digest) by the grammar's regular expressions; None when invalid."""
    m = _full(_REFERENCE, value)
    if m is None:
        return None
    name, tag, digest = m.group(1), m.group(2), m.group(3)
    nm = _full(_NAME_SPLIT, name)
    assert nm is not None  # the whole reference matched
    return nm.group(1) or "", nm.group(2), tag, digest


# Longer input is refused before any regular expression runs (the longest valid reference is a
# 255-character name, a 128-character tag and a digest).
_INPUT_MAX = 1024


class InvalidReference(InvalidArgument):
    """A string that is not a valid image reference; ``reason`` is distribution's error text."""

    def __init__(self, value: str, reason: str, *, message: str | None = None) -> None:
        self.value = value
        self.reason = reason
        super().__init__(message or f"{reason}: {_show(value)}")


def _show(value: str) -> str:
    from pypod import jsoncodec

    text = jsoncodec.dumps(value)
    return text if len(text) <= 120 else text[:110] + '..."'


@record
class Reference:
    """A parsed reference.  ``domain`` is "" only for references parsed without normalisation
    whose name has a single path component (or whose first component is not a host name)."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``domain/path`` (no tag, no digest)."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    def __str__(self) -> str:
        out = self.name
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + self.digest
        return out

    @property
    def registry(self) -> str:
        """The domain (``docker.io`` when the reference is normalised)."""
        return self.domain

    def familiar_name(self) -> str:
        """The name as docker shows it: ``busybox``, ``user/app``, ``quay.io/x/y``."""
        domain, path = self.domain, self.path
        if domain == DEFAULT_DOMAIN:
            domain = ""
            rest = path.removeprefix(OFFICIAL_REPO_PREFIX)
            if rest != path and "/" not in rest:
                path = rest
        return f"{domain}/{path}" if domain else path

    def familiar(self) -> str:
        """The whole reference in familiar form: ``busybox:latest``, ``user/app@sha256:...``."""
        out = self.familiar_name()
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + self.digest
        return out

    def with_tag(self, tag: str) -> Reference:
        """The same name with `tag` (a digest is kept, as Go's WithTag does)."""
        validate_tag(tag)
        return Reference(domain=self.domain, path=self.path, tag=tag, digest=self.digest)

    def with_digest(self, digest: str) -> Reference:
        """The same name with `digest` (a tag is kept, as Go's WithDigest does)."""
        _check_digest(digest, digest)
        return Reference(domain=self.domain, path=self.path, tag=self.tag, digest=digest)

    def trim(self) -> Reference:
        """The name only (Go's TrimNamed)."""
        return Reference(domain=self.domain, path=self.path)

    def with_default_tag(self) -> Reference:
        """`self` with ``:latest`` when it has neither tag nor digest (Go's TagNameOnly)."""
        if self.tag is None and self.digest is None:
            return Reference(domain=self.domain, path=self.path, tag=DEFAULT_TAG)
        return self

    def is_name_only(self) -> bool:
        return self.tag is None and self.digest is None


def validate_tag(tag: str) -> str:
    if not isinstance(tag, str) or not _is_tag(tag):
        raise InvalidReference(str(tag), TAG_FORMAT)
    return tag


def _check_digest(value: str, digest: str) -> None:
    if not isinstance(digest, str) or not _is_digest(digest):
        raise InvalidReference(value, DIGEST_FORMAT)
    problem = digest_problem(digest)
    if problem is not None:
        raise InvalidReference(value, problem)


def parse(value: str) -> Reference:
    """`value` exactly as written (distribution's ``reference.Parse``)."""
    if not isinstance(value, str):
        raise InvalidReference(repr(value), REFERENCE_FORMAT)
    if len(value) > _INPUT_MAX:
        raise InvalidReference(value, REFERENCE_FORMAT)
    split = _split_fast(value) or _split_regex(value)
    if split is None:
        if value == "":
            raise InvalidReference(value, NAME_EMPTY)
        if _full(_REFERENCE, value.lower()) is not None:
            raise InvalidReference(value, NAME_UPPERCASE)
        raise InvalidReference(value, REFERENCE_FORMAT)
    domain, path, tag, digest = split
    if len(domain) + bool(domain) + len(path) > NAME_TOTAL_LENGTH_MAX:  # len(domain/path)
        raise InvalidReference(value, NAME_TOO_LONG)
    if digest is not None:
        problem = digest_problem(digest)
        if problem is not None:
            raise InvalidReference(value, problem)
    return Reference(domain=domain, path=path, tag=tag, digest=digest)


def split_docker_domain(name: str) -> tuple[str, str]:
    """(domain, remainder) as docker splits a name: ``docker.io`` and ``library/`` added."""
    i = name.find("/")
    first = name[:i]
    if i == -1 or (
        not any(c in first for c in ".:") and first != "localhost" and first.lower() == first
    ):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, name[i + 1 :]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def parse_normalized(value: str) -> Reference:
    """`value` with docker's defaults filled in (``ParseNormalizedNamed``); no tag is added."""
    if not isinstance(value, str):
        raise InvalidReference(repr(value), REFERENCE_FORMAT)
    if _is_identifier(value):
        raise InvalidReference(
            value,
            REFERENCE_FORMAT,
            message=f"invalid repository name ({value}), cannot specify 64-byte hexadecimal "
            "strings",
        )
    if len(value) > _INPUT_MAX:
        raise InvalidReference(value, REFERENCE_FORMAT)
    domain, remainder = split_docker_domain(value)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise InvalidReference(
            value,
            NAME_UPPERCASE,
            message=f"{REFERENCE_FORMAT}: repository name ({remote}) must be lowercase",
        )
    ref = parse(f"{domain}/{remainder}")
    if ref.domain != domain:  # e.g. "docker.io/" + "a:b/c": the split did not hold
        raise InvalidReference(value, REFERENCE_FORMAT)
    return ref


def parse_docker(value: str) -> Reference:
    """Normalised, with ``:latest`` added when there is neither tag nor digest
    (distribution's ``ParseDockerRef`` keeps only the digest when both are given; this keeps
    both, as podman does, and leaves the choice to the caller)."""
    return parse_normalized(value).with_default_tag()


def is_short_name(value: str) -> bool:
    """Whether `value` names no registry (containers/image shortnames.IsShortName): ``busybox``,
    ``library/fedora``, ``user/app:1`` are short; ``quay.io/x``, ``localhost/x``,
    ``host:5000/x`` are not, nor is anything that does not parse."""
    try:
        ref = parse(value)
    except InvalidArgument:
        return False
    return not _is_registry(ref.domain)


def _is_registry(domain: str) -> bool:
    return any(c in domain for c in ".:") or domain == "localhost"


def is_domain(value: str) -> bool:
    """Whether `value` is a ``host[:port]`` as the reference grammar allows."""
    if value.startswith("["):  # an IPv6 address
        return _full(_DOMAIN, value) is not None
    return _is_host(value)
