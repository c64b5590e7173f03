"""registries.conf (version 2) and its drop-ins, as containers/image's sysregistriesv2 reads them.

Which files are read (:func:`config_paths`):

- an explicit `path` argument: that file, and the drop-ins of the ``registries.conf.d``
  directory next to it (so that tests and ``--registries-conf`` stay hermetic);
- else ``$CONTAINERS_REGISTRIES_CONF``: that file, with the system and user drop-in directories;
- else ``~/.config/containers/registries.conf`` when it exists, with only the user drop-ins
  (``~/.config/containers/registries.conf.d``);
- else ``/etc/containers/registries.conf`` (or, when missing, pypod's packaged
  ``/usr/share/containers/registries.conf``), with ``/etc/containers/registries.conf.d`` then the
  user drop-ins.

Drop-ins are the ``*.conf`` files of each directory in lexical order; each must be v2.  Merging
follows containers/image: ``[[registry]]`` tables replace those with the same prefix,
``unqualified-search-registries``, ``short-name-mode`` and ``credential-helpers`` replace the
earlier value when set (even to ``[]``), ``[aliases]`` merge per name (``""`` removes one).
Version 1 files (``[registries.search]``...) are refused with a ConfigError naming the file.

Lookups: :func:`find_registry` (the longest matching prefix, ``*.example.com`` wildcards) and
:func:`pull_sources` (mirrors, then the primary location; a blocked registry raises
:class:`RegistryBlocked`).  References are passed as strings (``str(reference)``), fully
qualified; this layer does not depend on ``pypod.image``.  Alias values are kept as written;
``pypod.image.shortnames`` validates and normalises them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

from pypod.errors import ConfigError, PermissionDenied
from pypod.log import get_logger
from pypod.record import field, record

__all__ = [
    "PULL_FROM_MIRROR_VALUES",
    "SHORT_NAME_MODES",
    "Alias",
    "ConfigFile",
    "ConfigPaths",
    "Endpoint",
    "PullSource",
    "RegistriesConfig",
    "Registry",
    "RegistryBlocked",
    "config_paths",
    "find_registry",
    "load_aliases_file",
    "load_registries_conf",
    "parse_registries_conf",
    "pull_sources",
    "short_name_aliases_path",
]

log = get_logger(__name__)

SYSTEM_CONF = "/etc/containers/registries.conf"
SYSTEM_CONF_DIR = "/etc/containers/registries.conf.d"
VENDOR_CONF = "/usr/share/containers/registries.conf"
USER_CONF = ".config/containers/registries.conf"  # under $HOME
USER_CONF_DIR = ".config/containers/registries.conf.d"
ENV_CONF = "CONTAINERS_REGISTRIES_CONF"

SHORT_NAME_MODES: tuple[str, ...] = ("enforcing", "permissive", "disabled")
DEFAULT_SHORT_NAME_MODE = "permissive"
PULL_FROM_MIRROR_VALUES: tuple[str, ...] = ("all", "digest-only", "tag-only")
DEFAULT_CREDENTIAL_HELPERS: tuple[str, ...] = ("containers-auth.json",)

# host[:port] as the reference grammar has it (distribution/reference DomainRegexp)
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?", re.ASCII
)


class RegistryBlocked(PermissionDenied):
    """The registry an image would come from is ``blocked = true`` in registries.conf."""


@record
class Endpoint:
    """Where to pull from: a registry's location or one of its mirrors."""

    location: str
    insecure: bool = False
    pull_from_mirror: str = ""  # mirrors only: "", all, digest-only, tag-only
    is_mirror: bool = False


@record
class Registry:
    """One ``[[registry]]`` table, after normalisation (prefix defaults to location)."""

    prefix: str
    location: str
    insecure: bool = False
    blocked: bool = False
    mirror_by_digest_only: bool = False
    mirrors: tuple[Endpoint, ...] = ()
    origin: str = ""  # the file it came from

    def endpoint(self) -> Endpoint:
        return Endpoint(location=self.location, insecure=self.insecure)


@record
class Alias:
    """A short-name alias: `value` as written (None when reset by ``""``) and its file."""

    value: str | None
    origin: str


@record
class RegistriesConfig:
    registries: tuple[Registry, ...] = ()  # sorted by prefix, one per prefix
    unqualified_search_registries: tuple[str, ...] = ()
    search_registries_origin: str = ""  # the file that set unqualified-search-registries
    short_name_mode: str = DEFAULT_SHORT_NAME_MODE
    aliases: Mapping[str, Alias] = field(default_factory=dict)
    credential_helpers: tuple[str, ...] = DEFAULT_CREDENTIAL_HELPERS
    files: tuple[str, ...] = ()  # every file read, in order
    description: str = ""  # "main file, drop-in dirs" for messages, as podman shows it


@record
class PullSource:
    """An endpoint and the reference rewritten for it (prefix replaced by the location)."""

    endpoint: Endpoint
    reference: str


@record
class ConfigPaths:
    conf: str
    dirs: tuple[str, ...]
    explicit: bool  # a missing file is an error, not an empty configuration


# --------------------------------------------------------------------------- finding files


def _home(environ: Mapping[str, str]) -> str:
    home = environ.get("HOME")
    if home:
        return home
    import pwd

    return pwd.getpwuid(os.getuid()).pw_dir


def config_paths(
    path: str | None = None, *, environ: Mapping[str, str] | None = None
) -> ConfigPaths:
    """The registries.conf file and drop-in directories to read (see the module docstring)."""
    env = os.environ if environ is None else environ
    if path:
        return ConfigPaths(
            conf=path,
            dirs=(os.path.join(os.path.dirname(path) or ".", "registries.conf.d"),),
            explicit=True,
        )
    home = _home(env)
    user_dir = os.path.join(home, USER_CONF_DIR)
    if env.get(ENV_CONF):
        return ConfigPaths(conf=env[ENV_CONF], dirs=(SYSTEM_CONF_DIR, user_dir), explicit=True)
    user_conf = os.path.join(home, USER_CONF)
    if os.path.exists(user_conf):
        return ConfigPaths(conf=user_conf, dirs=(user_dir,), explicit=False)
    conf = (
        SYSTEM_CONF
        if os.path.exists(SYSTEM_CONF) or not os.path.exists(VENDOR_CONF)
        else (VENDOR_CONF)
    )
    return ConfigPaths(conf=conf, dirs=(SYSTEM_CONF_DIR, user_dir), explicit=False)


def _drop_ins(dirs: tuple[str, ...]) -> list[str]:
    files = []
    for d in dirs:
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            continue
        except OSError as e:
            raise ConfigError(f"reading registries.conf.d: {e.strerror}", path=d) from None
        for name in names:
            full = os.path.join(d, name)
            if name.endswith(".conf") and not os.path.isdir(full):
                files.append(full)
    return files


def _read_toml(path: str) -> dict[str, Any] | None:
    """The TOML document at `path`, None when the file does not exist."""
    import tomllib

    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"invalid TOML: {e}", path=path) from None
    except OSError as e:
        raise ConfigError(f"cannot read: {e.strerror}", path=path) from None


# --------------------------------------------------------------------------- one file


@record
class ConfigFile:
    """What one file sets; None = not set (so that drop-ins leave the earlier value)."""

    registries: tuple[Registry, ...]
    search: tuple[str, ...] | None
    mode: str | None
    helpers: tuple[str, ...] | None
    aliases: dict[str, Alias]


def _str(value: object, path: str, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"must be a string, got {_describe(value)}", path=path, key=key)
    return value


def _bool(value: object, path: str, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"must be true or false, got {_describe(value)}", path=path, key=key)
    return value


def _strs(value: object, path: str, key: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(
            f"must be an array of strings, got {_describe(value)}", path=path, key=key
        )
    return tuple(_str(v, path, f"{key}[{i}]") for i, v in enumerate(value))


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"string {json.dumps(value)}"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _location(value: str, path: str, key: str) -> str:
    trimmed = value.rstrip("/")
    if trimmed.startswith(("http://", "https://")):
        raise ConfigError(
            f"invalid location '{value}': URI schemes are not supported; write host[:port][/path]",
            path=path,
            key=key,
        )
    return trimmed


def _mirror(data: object, path: str, key: str, reg_digest_only: bool, prefix: str) -> Endpoint:
    if not isinstance(data, dict):
        raise ConfigError(f"must be a table, got {_describe(data)}", path=path, key=key)
    location = _location(
        _str(data.get("location", ""), path, f"{key}.location"), path, f"{key}.location"
    )
    if not location:
        raise ConfigError("invalid condition: mirror location is unset", path=path, key=key)
    pull_from = _str(data.get("pull-from-mirror", ""), path, f"{key}.pull-from-mirror")
    if pull_from and reg_digest_only:
        raise ConfigError(
            f"cannot set mirror usage mirror-by-digest-only for the registry ({json.dumps(prefix)})"
            f" and pull-from-mirror for per-mirror ({json.dumps(location)}) at the same time",
            path=path,
            key=key,
        )
    if pull_from and pull_from not in PULL_FROM_MIRROR_VALUES:
        raise ConfigError(
            f"unsupported pull-from-mirror value {json.dumps(pull_from)} for mirror "
            f"{json.dumps(location)}; expected one of {', '.join(PULL_FROM_MIRROR_VALUES)}",
            path=path,
            key=f"{key}.pull-from-mirror",
        )
    return Endpoint(
        location=location,
        insecure=_bool(data.get("insecure", False), path, f"{key}.insecure"),
        pull_from_mirror=pull_from,
        is_mirror=True,
    )


def _registry(data: object, path: str, key: str) -> Registry:
    if not isinstance(data, dict):
        raise ConfigError(f"must be a table, got {_describe(data)}", path=path, key=key)
    location = _location(
        _str(data.get("location", ""), path, f"{key}.location"), path, f"{key}.location"
    )
    prefix = _str(data.get("prefix", ""), path, f"{key}.prefix")
    if not prefix:
        if not location:
            raise ConfigError(
                "invalid condition: both location and prefix are unset", path=path, key=key
            )
        prefix = location
    else:
        prefix = _location(prefix, path, f"{key}.prefix")
        if not prefix.startswith("*.") and not location:
            raise ConfigError(
                "invalid condition: location is unset and prefix is not in the format: "
                "*.example.com",
                path=path,
                key=key,
            )
    if prefix.startswith("*.") and any(c in prefix for c in "/@:"):
        raise ConfigError(
            f"Wildcarded prefix should be in the format: *.example.com. Current prefix "
            f"{json.dumps(prefix)} is incorrectly formatted",
            path=path,
            key=f"{key}.prefix",
        )
    if data.get("pull-from-mirror"):
        raise ConfigError(
            f"pull-from-mirror must not be set for a non-mirror registry {json.dumps(prefix)}",
            path=path,
            key=f"{key}.pull-from-mirror",
        )
    digest_only = _bool(
        data.get("mirror-by-digest-only", False), path, f"{key}.mirror-by-digest-only"
    )
    mirrors_data = data.get("mirror", [])
    if not isinstance(mirrors_data, list):
        raise ConfigError("must be an array of tables", path=path, key=f"{key}.mirror")
    mirrors = tuple(
        _mirror(m, path, f"{key}.mirror[{j}]", digest_only, prefix)
        for j, m in enumerate(mirrors_data)
    )
    return Registry(
        prefix=prefix,
        location=location,
        insecure=_bool(data.get("insecure", False), path, f"{key}.insecure"),
        blocked=_bool(data.get("blocked", False), path, f"{key}.blocked"),
        mirror_by_digest_only=digest_only,
        mirrors=mirrors,
        origin=path,
    )


def _check_conflicts(registries: tuple[Registry, ...], path: str) -> None:
    seen: dict[str, Registry] = {}
    for reg in registries:
        where = reg.location or reg.prefix
        other = seen.setdefault(where, reg)
        for setting in ("insecure", "blocked"):
            if getattr(reg, setting) != getattr(other, setting):
                raise ConfigError(
                    f"registry '{reg.location}' is defined multiple times with conflicting "
                    f"'{setting}' setting",
                    path=path,
                )


def _aliases(data: object, path: str, key: str) -> dict[str, Alias]:
    if not isinstance(data, dict):
        raise ConfigError(f"must be a table, got {_describe(data)}", path=path, key=key)
    out = {}
    for name, value in data.items():
        text = _str(value, path, f"{key}.{json.dumps(name)}")
        out[name] = Alias(value=text or None, origin=path)
    return out


def parse_registries_conf(
    data: Mapping[str, Any], *, path: str, drop_in: bool = False
) -> ConfigFile:
    """Validate one decoded file (exposed for tests; most callers use load_registries_conf)."""
    v1 = data.get("registries")
    if isinstance(v1, dict) and any(v1.get(k) for k in ("search", "insecure", "block")):
        kind = "a drop-in must be in the v2 format" if drop_in else "the v1 format is not supported"
        raise ConfigError(
            f"{kind} ([registries.search], [registries.insecure], [registries.block]); write "
            "unqualified-search-registries = [...] and [[registry]] tables with insecure = "
            "true or blocked = true instead, see containers-registries.conf(5)",
            path=path,
        )
    regs_data = data.get("registry", [])
    if not isinstance(regs_data, list):
        raise ConfigError("must be an array of tables ([[registry]])", path=path, key="registry")
    parsed = tuple(_registry(r, path, f"registry[{i}]") for i, r in enumerate(regs_data))
    _check_conflicts(parsed, path)
    unique: dict[str, Registry] = {}
    for reg in parsed:  # the first table with a prefix wins, as in containers/image
        unique.setdefault(reg.prefix, reg)
    search = None
    if "unqualified-search-registries" in data:
        key = "unqualified-search-registries"
        search = tuple(
            _location(s, path, f"{key}[{i}]") for i, s in enumerate(_strs(data[key], path, key))
        )
        for i, s in enumerate(search):
            if not _DOMAIN_RE.fullmatch(s):
                raise ConfigError(
                    f"Invalid unqualified-search-registries entry {json.dumps(s)}: expected "
                    "host[:port]",
                    path=path,
                    key=f"{key}[{i}]",
                )
    mode = None
    if data.get("short-name-mode"):
        mode = _str(data["short-name-mode"], path, "short-name-mode")
        if mode not in SHORT_NAME_MODES:
            raise ConfigError(
                f"invalid short-name mode: {json.dumps(mode)}; expected one of "
                f"{', '.join(SHORT_NAME_MODES)}",
                path=path,
                key="short-name-mode",
            )
    helpers = None
    if data.get("credential-helpers"):
        helpers = _strs(data["credential-helpers"], path, "credential-helpers")
    return ConfigFile(
        registries=tuple(unique[p] for p in sorted(unique)),
        search=search,
        mode=mode,
        helpers=helpers,
        aliases=_aliases(data.get("aliases", {}), path, "aliases"),
    )


# --------------------------------------------------------------------------- loading


def load_registries_conf(
    path: str | None = None, *, environ: Mapping[str, str] | None = None
) -> RegistriesConfig:
    """Read registries.conf and its drop-ins (see the module docstring for which files)."""
    where = config_paths(path, environ=environ)
    files = []
    registries: dict[str, Registry] = {}
    search: tuple[str, ...] = ()
    search_origin = ""
    mode = DEFAULT_SHORT_NAME_MODE
    helpers: tuple[str, ...] | None = None
    aliases: dict[str, Alias] = {}

    def merge(part: ConfigFile, origin: str) -> None:
        nonlocal search, search_origin, mode, helpers
        for reg in part.registries:
            registries[reg.prefix] = reg
        if part.search is not None:
            search, search_origin = part.search, origin
        if part.mode is not None:
            mode = part.mode
        if part.helpers is not None:
            helpers = part.helpers
        aliases.update(part.aliases)

    main = _read_toml(where.conf)
    if main is None:
        if where.explicit:
            raise ConfigError("registries configuration file does not exist", path=where.conf)
        log.debug("no registries configuration at %s", where.conf)
    else:
        files.append(where.conf)
        merge(parse_registries_conf(main, path=where.conf), where.conf)
        search_origin = where.conf  # as containers/image: the main file, even when unset
    for drop_in in _drop_ins(where.dirs):
        data = _read_toml(drop_in)
        if data is None:  # removed since the listing
            continue
        files.append(drop_in)
        merge(parse_registries_conf(data, path=drop_in, drop_in=True), drop_in)
    return RegistriesConfig(
        registries=tuple(registries[p] for p in sorted(registries)),
        unqualified_search_registries=search,
        search_registries_origin=search_origin,
        short_name_mode=mode,
        aliases=aliases,
        credential_helpers=helpers or DEFAULT_CREDENTIAL_HELPERS,
        files=tuple(files),
        description=", ".join((where.conf, *where.dirs)),
    )


def short_name_aliases_path(
    *, rootless: bool | None = None, environ: Mapping[str, str] | None = None
) -> str:
    """Where podman records the short names the user chose: ``/var/cache/containers/...``
    for root, ``$XDG_CACHE_HOME`` (``~/.cache``) ``/containers/short-name-aliases.conf`` else."""
    env = os.environ if environ is None else environ
    if rootless is None:
        rootless = os.geteuid() != 0
    if not rootless:
        return "/var/cache/containers/short-name-aliases.conf"
    cache = env.get("XDG_CACHE_HOME") or os.path.join(_home(env), ".cache")
    return os.path.join(cache, "containers", "short-name-aliases.conf")


def load_aliases_file(path: str) -> dict[str, Alias]:
    """The ``[aliases]`` of a short-name-aliases.conf file; {} when it does not exist."""
    data = _read_toml(path)
    if data is None:
        return {}
    return _aliases(data.get("aliases", {}), path, "aliases")


# --------------------------------------------------------------------------- lookups


def _match_length(ref: str, prefix: str) -> int:
    """Length of `ref` matched by `prefix`, -1 when it does not match (refMatchingPrefix)."""
    if prefix.startswith("*."):
        suffix = prefix[1:]  # ".example.com"
        index = ref.find(suffix)
        if index == -1 or "/" in ref[:index]:
            return -1
        index += len(suffix)
        if index == len(ref) or ref[index] in ":/@":
            return index
        return -1
    if len(ref) < len(prefix) or not ref.startswith(prefix):
        return -1
    if len(ref) == len(prefix) or ref[len(prefix)] in ":/@":
        return len(prefix)
    return -1


def find_registry(config: RegistriesConfig, reference: str) -> Registry | None:
    """The ``[[registry]]`` whose prefix matches `reference` (a fully qualified
    ``host/path[:tag][@digest]``, or a bare host or namespace) longest; None when none does."""
    best: Registry | None = None
    for reg in config.registries:
        if _match_length(reference, reg.prefix) != -1 and (
            best is None or len(reg.prefix) > len(best.prefix)
        ):
            best = reg
    return best


def pull_sources(config: RegistriesConfig, reference: str) -> list[PullSource]:
    """Where to try pulling `reference` from, in order: the mirrors that apply (by digest or by
    tag), then the registry itself, each with the reference rewritten for it.  Raises
    RegistryBlocked when the matching registry is blocked."""
    domain = reference.split("/", 1)[0]
    reg = find_registry(config, reference)
    if reg is None:
        return [PullSource(endpoint=Endpoint(location=domain), reference=reference)]
    if reg.blocked:
        raise RegistryBlocked(
            f"registry {reg.prefix} is blocked in {reg.origin or config.description}; pulling "
            f"{reference} is not allowed"
        )
    digested = "@" in reference
    endpoints: list[Endpoint] = []
    if reg.mirror_by_digest_only:
        if digested:
            endpoints += reg.mirrors
    else:
        for mirror in reg.mirrors:
            if mirror.pull_from_mirror == "digest-only" and not digested:
                continue
            if mirror.pull_from_mirror == "tag-only" and digested:
                continue
            endpoints.append(mirror)
    endpoints.append(reg.endpoint())
    out = []
    length = _match_length(reference, reg.prefix)
    for ep in endpoints:
        if not ep.location:  # a wildcard registry: the reference as it is
            out.append(PullSource(endpoint=Endpoint(
                location=domain, insecure=ep.insecure, is_mirror=ep.is_mirror,
            ), reference=reference))  # fmt: skip
        else:
            out.append(PullSource(endpoint=ep, reference=ep.location + reference[length:]))
    return out
