"""Short-name resolution, as podman 4 does it (containers/image ``pkg/shortnames``).

A short name names no registry (``busybox``, ``library/fedora:40``; see
:func:`~pypod.image.reference.is_short_name`).  :func:`resolve` turns a name into the references
to try pulling, in order:

1. a name that is not short: itself (``:latest`` added when it has no tag or digest);
2. an alias: first from the machine-written short-name-aliases.conf the caller names, then from
   the ``[aliases]`` of registries.conf and its drop-ins; an alias set to ``""`` is no alias;
3. each unqualified-search registry + the name.  With several and ``short-name-mode`` not
   ``disabled``, the caller's `prompt` (given only on a terminal) chooses one; without a prompt
   ``permissive`` keeps them all and ``enforcing`` fails as podman does.

:func:`resolve_locally` is the order for images already in local storage: alias,
``localhost/``, then the search registries.  Tags and digests are kept on every candidate.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence

from pypod.config.registries import Alias, RegistriesConfig, load_aliases_file
from pypod.errors import ConfigError, InvalidArgument
from pypod.image.reference import (
    DEFAULT_DOMAIN,
    InvalidReference,
    Reference,
    parse,
    parse_normalized,
)
from pypod.log import get_logger
from pypod.record import record

__all__ = [
    "AmbiguousShortName",
    "Candidate",
    "Resolved",
    "check_alias",
    "docker_hub_candidate",
    "record_alias",
    "resolve",
    "resolve_alias",
    "resolve_locally",
    "validate_aliases",
]

log = get_logger(__name__)

# Why the candidates are what they are (containers/image's rationale).
RATIONALE_NONE = "none"  # not a short name
RATIONALE_ALIAS = "alias"
RATIONALE_SEARCH = "unqualified-search"
RATIONALE_SELECTION = "user-selection"
RATIONALE_DOCKER_HUB = "docker-hub"

ENFORCING_NO_TTY = "short-name resolution enforced but cannot prompt without a TTY"


class AmbiguousShortName(InvalidArgument):
    """A short name that matches several search registries where no one can choose."""

    def __init__(self, message: str, *, candidates: tuple[str, ...]) -> None:
        self.candidates = candidates
        super().__init__(message)


@record
class Candidate:
    """A fully qualified reference to try, and where it came from (for messages)."""

    reference: Reference
    description: str
    record: bool = False  # the user chose it: record it as an alias once pulled


@record
class Resolved:
    user_input: str  # the short name without tag or digest ("" when not a short name)
    candidates: tuple[Candidate, ...]
    rationale: str
    origin: str = ""  # the file the alias or the search registries came from

    @property
    def description(self) -> str:
        """What podman prints before pulling ("" when there is nothing to say)."""
        quoted = json.dumps(self.user_input)
        if self.rationale == RATIONALE_ALIAS:
            return f"Resolved {quoted} as an alias ({self.origin})"
        if self.rationale == RATIONALE_SEARCH:
            return f"Resolving {quoted} using unqualified-search registries ({self.origin})"
        if self.rationale == RATIONALE_DOCKER_HUB:
            return f"Resolving {quoted} to docker.io ({self.origin})"
        return ""

    def references(self) -> tuple[Reference, ...]:
        return tuple(c.reference for c in self.candidates)


# --------------------------------------------------------------------------- parsing names


def _is_registry(domain: str) -> bool:
    return any(c in domain for c in ".:") or domain == "localhost"


def _split(name: str) -> tuple[bool, Reference]:
    """(is short, reference): normalised when not short, as written when short."""
    try:
        ref = parse(name)
    except InvalidReference as e:
        raise InvalidReference(
            name, e.reason, message=f"cannot parse input: {json.dumps(name)}: {e.reason}"
        ) from None
    if _is_registry(ref.domain):
        return False, parse_normalized(name)
    return True, ref


def check_alias(name: str, value: str | None, *, origin: str = "") -> Reference | None:
    """Validate one alias (left side a short name without tag or digest, right side a name
    with a registry and without tag or digest); the normalised value.  ConfigError naming the
    file otherwise."""
    key = f"aliases.{json.dumps(name)}"

    def fail(message: str) -> ConfigError:
        return ConfigError(message, path=origin or None, key=key)

    try:
        left = parse(name)
    except InvalidReference as e:
        raise fail(f"cannot parse short name: {json.dumps(name)}: {e.reason}") from None
    if left.digest is not None:
        raise fail(f"invalid short name {json.dumps(name)}: must not contain digest")
    if left.tag is not None:
        raise fail(f"invalid short name {json.dumps(name)}: must not contain tag")
    if _is_registry(left.domain):
        raise fail(f"invalid short name {json.dumps(name)}: must not contain registry")
    if value is None:
        return None
    try:
        right = parse(value)
    except InvalidReference as e:
        raise fail(f"parsing alias {json.dumps(value)}: {e.reason}") from None
    if right.digest is not None:
        raise fail(f"invalid alias {json.dumps(value)}: must not contain digest")
    if right.tag is not None:
        raise fail(f"invalid alias {json.dumps(value)}: must not contain tag")
    if not _is_registry(right.domain):
        raise fail(f"invalid alias {json.dumps(value)}: must contain registry and repository")
    return parse_normalized(value)


def validate_aliases(aliases: Mapping[str, Alias]) -> None:
    """Check every alias; one ConfigError listing all the bad ones (as containers/image does, to
    spare the user a whack-a-mole)."""
    problems = []
    for name, alias in aliases.items():
        try:
            check_alias(name, alias.value, origin=alias.origin)
        except ConfigError as e:
            problems.append(str(e))
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError("invalid short-name aliases:\n" + "\n".join(f" * {p}" for p in problems))


def resolve_alias(
    name: str, config: RegistriesConfig, aliases_file: str | None = None
) -> tuple[Reference | None, str] | None:
    """The alias of short name `name` (no tag or digest) and its file: from `aliases_file` first,
    then registries.conf.  None when there is no alias; (None, file) when it was reset (``""``)."""
    found: Alias | None = None
    if aliases_file:
        found = load_aliases_file(aliases_file).get(name)
    if found is None:
        found = config.aliases.get(name)
    if found is None:
        return None
    return check_alias(name, found.value, origin=found.origin), found.origin


def _with_tag_and_digest(base: Reference, ref: Reference) -> Reference:
    out = base
    if ref.tag is not None:
        out = out.with_tag(ref.tag)
    if ref.digest is not None:
        out = out.with_digest(ref.digest)
    return out.with_default_tag()


def _search_candidates(name: str, registries: Sequence[str]) -> list[Reference]:
    out = []
    for registry in registries:
        try:
            out.append(parse_normalized(f"{registry}/{name}").with_default_tag())
        except InvalidReference as e:
            raise InvalidReference(
                name,
                e.reason,
                message=f"creating reference with unqualified-search registry "
                f"{json.dumps(registry)}: {e}",
            ) from None
    return out


# --------------------------------------------------------------------------- resolving


def resolve(
    name: str,
    config: RegistriesConfig,
    *,
    aliases_file: str | None = None,
    prompt: Callable[[Sequence[str]], str] | None = None,
    mode: str | None = None,
    force_docker_hub: bool = False,
) -> Resolved:
    """The references to pull `name` from, in order (see the module docstring).

    `prompt` receives the candidates (strings) and returns the chosen one; pass it only when
    stdin and stdout are terminals.  `mode` overrides registries.conf's short-name-mode.
    `force_docker_hub` resolves every short name to docker.io (the Docker-compatible API).
    """
    mode = mode or config.short_name_mode
    if mode not in ("enforcing", "permissive", "disabled"):
        raise InvalidArgument(f"unsupported short-name mode ({mode})")
    is_short, ref = _split(name)
    if not is_short:
        full = ref.with_default_tag()
        return Resolved(
            user_input="",
            candidates=(Candidate(reference=full, description="fully qualified reference"),),
            rationale=RATIONALE_NONE,
        )
    if force_docker_hub:
        full = parse_normalized(name).with_default_tag()
        return Resolved(
            user_input=ref.trim().name,
            candidates=(Candidate(reference=full, description="docker.io, enforced by caller"),),
            rationale=RATIONALE_DOCKER_HUB,
            origin="enforced by caller",
        )
    short = ref.trim().name
    alias = resolve_alias(short, config, aliases_file)
    if alias is not None and alias[0] is not None:
        value, origin = alias[0], alias[1]
        return Resolved(
            user_input=short,
            candidates=(
                Candidate(
                    reference=_with_tag_and_digest(value, ref), description=f"alias in {origin}"
                ),
            ),
            rationale=RATIONALE_ALIAS,
            origin=origin,
        )
    registries = config.unqualified_search_registries
    origin = config.search_registries_origin
    if not registries:
        if origin:
            raise InvalidArgument(
                f"short-name {json.dumps(name)} did not resolve to an alias and no "
                f"unqualified-search registries are defined in {json.dumps(origin)}"
            )
        raise InvalidArgument(
            f"short-name {json.dumps(name)} did not resolve to an alias and no "
            "containers-registries.conf(5) was found"
        )
    candidates = tuple(
        Candidate(reference=r, description=f"unqualified-search registry {reg} from {origin}")
        for reg, r in zip(registries, _search_candidates(name, registries), strict=True)
    )
    resolved = Resolved(
        user_input=short, candidates=candidates, rationale=RATIONALE_SEARCH, origin=origin
    )
    if mode == "disabled" or len(candidates) == 1:
        return resolved
    if prompt is None:
        if mode == "permissive":
            return resolved
        raise AmbiguousShortName(
            ENFORCING_NO_TTY, candidates=tuple(str(c.reference) for c in candidates)
        )
    selection = prompt([str(c.reference) for c in candidates])
    try:
        chosen = parse_normalized(selection)
    except InvalidReference as e:
        raise InvalidArgument(
            f"selection {json.dumps(selection)} is not a valid reference: {e}"
        ) from None
    return Resolved(
        user_input=short,
        candidates=(Candidate(reference=chosen, description="selected by the user", record=True),),
        rationale=RATIONALE_SELECTION,
        origin=origin,
    )


def resolve_locally(
    name: str, config: RegistriesConfig, *, aliases_file: str | None = None
) -> tuple[Reference, ...]:
    """Names under which `name` may already be in local storage, best first: the alias,
    ``localhost/NAME``, then each unqualified-search registry (containers/image
    ``ResolveLocally``); a name that is not short is returned alone."""
    is_short, ref = _split(name)
    if not is_short:
        return (ref.with_default_tag(),)
    out: list[Reference] = []
    alias = resolve_alias(ref.trim().name, config, aliases_file)
    if alias is not None and alias[0] is not None:
        out.append(_with_tag_and_digest(alias[0], ref))
    out += _search_candidates(name, ("localhost", *config.unqualified_search_registries))
    return tuple(out)


def docker_hub_candidate(name: str) -> Reference:
    """`name` on Docker Hub (``docker.io/library/NAME:latest``)."""
    return parse_normalized(f"{DEFAULT_DOMAIN}/{name}").with_default_tag()


def record_alias(path: str, name: str, value: Reference) -> None:
    """Record ``name = value`` in the short-name-aliases.conf at `path` (after the user chose a
    candidate and the pull worked).  The file is rewritten atomically; callers serialise
    concurrent writers with a lock of their own."""
    short = value.trim()
    check_alias(name, str(short), origin=path)
    aliases = {k: a.value or "" for k, a in load_aliases_file(path).items()}
    aliases[name] = str(short)
    lines = ["[aliases]"] + [f"  {json.dumps(k)} = {json.dumps(v)}" for k, v in aliases.items()]
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
