"""Edits of a working container's config (`Builder.config`, Docker's field names), shared by
`pypod-build config` and the Containerfile executor, with buildah 1.28's rules:

- `set_env` replaces a variable in place or appends it ("K=V" list); `unset_env` removes it;
- `set_label` / `remove_label`, `add_port` / `remove_port`, `add_volume` / `remove_volume`
  edit the maps (`{"80/tcp": {}}`); an emptied map stays as `{}` as buildah leaves it;
  `clear` empties a field (`--env -`, `--label -` ...); `add_onbuild` appends a trigger;
- `add_port`: Containerfile EXPOSE's rule, checked ("80" → "80/tcp", "53/UDP" → "53/udp");
  `as_given=True` is buildah's `config --port`, which stores the text as typed ("53/UDP",
  "80", even "bogus": checked with buildah 1.28); `remove_port` removes the key as given;
- `parse_json_or_shell`: `--cmd` (a JSON array of strings as it is, anything else split into
  words as a shell would, without running one);
- `entrypoint_value`: `--entrypoint` ("" clears it, a JSON array as it is, anything else runs
  through `/bin/sh -c`);
- `healthcheck_config`: the Healthcheck object from parsed values (HEALTHCHECK and
  `--healthcheck` both); `docker_healthcheck`: `--healthcheck`'s ("CMD ...", "CMD-SHELL ...",
  "NONE"; Go durations in nanoseconds, buildah's defaults; StartPeriod only when set).
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from pypod.errors import InvalidArgument
from pypod.image.gotime import parse_go_duration

__all__ = [
    "add_onbuild",
    "add_port",
    "add_volume",
    "clear",
    "docker_healthcheck",
    "entrypoint_value",
    "env_map",
    "go_duration_ns",
    "healthcheck_config",
    "normalize_port",
    "parse_json_or_shell",
    "remove_label",
    "remove_port",
    "remove_volume",
    "set_env",
    "set_label",
    "unset_env",
]

#: Docker's defaults for a healthcheck without its own values (nanoseconds, count)
HEALTHCHECK_INTERVAL = 30_000_000_000
HEALTHCHECK_TIMEOUT = 30_000_000_000
HEALTHCHECK_RETRIES = 3


def _env(cfg: dict[str, Any]) -> list[str]:
    env = cfg.get("Env")
    if not isinstance(env, list):
        env = []
        cfg["Env"] = env
    return env


def env_map(cfg: dict[str, Any]) -> dict[str, str]:
    """The config's environment as a mapping (a later duplicate wins)."""
    out: dict[str, str] = {}
    for item in cfg.get("Env") or []:
        key, _, value = str(item).partition("=")
        out[key] = value
    return out


def set_env(cfg: dict[str, Any], key: str, value: str) -> None:
    """Set `key` in Env: replaced in place when present, appended otherwise."""
    if not key or "=" in key:
        raise InvalidArgument(f"setting env {key!r}: a variable name is needed (KEY=VALUE)")
    env = _env(cfg)
    entry = f"{key}={value}"
    for i, item in enumerate(env):
        if str(item).partition("=")[0] == key:
            env[i] = entry
            return
    env.append(entry)


def unset_env(cfg: dict[str, Any], key: str) -> None:
    env = _env(cfg)
    env[:] = [e for e in env if str(e).partition("=")[0] != key]


def _map(cfg: dict[str, Any], field: str) -> dict[str, Any]:
    found = cfg.get(field)
    if not isinstance(found, dict):
        found = {}
        cfg[field] = found
    return found


def set_label(cfg: dict[str, Any], key: str, value: str) -> None:
    if not key:
        raise InvalidArgument("a label needs a name: use KEY=VALUE")
    _map(cfg, "Labels")[key] = value


def remove_label(cfg: dict[str, Any], key: str) -> None:
    _map(cfg, "Labels").pop(key, None)


def normalize_port(port: str, *, as_given: bool = False) -> str:
    """EXPOSE's rule: "80" → "80/tcp", "53/UDP" → "53/udp", "1000-1002/udp" kept; refuses
    what is not a port.  `as_given`: buildah's `config --port`, the text stored unchanged."""
    if as_given:
        return port
    number, _, proto = port.partition("/")
    proto = (proto or "tcp").lower()
    low, _, high = number.partition("-")
    if not (low.isdigit() and (not high or high.isdigit()) and proto in ("tcp", "udp", "sctp")):
        raise InvalidArgument(f"invalid containerPort: {json.dumps(port)}")
    return f"{number}/{proto}"


def add_port(cfg: dict[str, Any], port: str, *, as_given: bool = False) -> None:
    _map(cfg, "ExposedPorts")[normalize_port(port, as_given=as_given)] = {}


def remove_port(cfg: dict[str, Any], port: str) -> None:
    """The key as given ("80-" leaves "80/tcp", as buildah's RemovePort)."""
    _map(cfg, "ExposedPorts").pop(port, None)


def add_volume(cfg: dict[str, Any], path: str) -> None:
    if not path:
        raise InvalidArgument("a volume needs a path in the container")
    _map(cfg, "Volumes")[path] = {}


def remove_volume(cfg: dict[str, Any], path: str) -> None:
    _map(cfg, "Volumes").pop(path, None)


def clear(cfg: dict[str, Any], field: str) -> None:
    """Empty `field`: Env becomes [], a map (Labels, ExposedPorts, Volumes) {}."""
    cfg[field] = [] if field == "Env" else {}


def add_onbuild(cfg: dict[str, Any], trigger: str) -> None:
    cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), trigger]


def _json_strings(value: str) -> list[str] | None:
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    if isinstance(parsed, list) and all(isinstance(p, str) for p in parsed):
        return parsed
    return None


def parse_json_or_shell(value: str) -> list[str]:
    """buildah's `--cmd`: a JSON array of strings, else the value split into shell words."""
    parsed = _json_strings(value)
    if parsed is not None:
        return parsed
    try:
        return shlex.split(value)
    except ValueError as e:
        raise InvalidArgument(f"parsing {value!r}: {e}: check its quotes") from None


def entrypoint_value(value: str) -> list[str]:
    """buildah's `--entrypoint`: "" clears, a JSON array is taken as it is, anything else is
    run by `/bin/sh -c`."""
    if not value.strip():
        return []
    parsed = _json_strings(value)
    if parsed is not None:
        return parsed
    return ["/bin/sh", "-c", value]


def go_duration_ns(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds ("30s", "1m30s", "500ms", "0")."""
    try:
        return parse_go_duration(text)
    except InvalidArgument:
        raise InvalidArgument(
            f'time: invalid duration "{text}": use a Go duration like 30s or 1m'
        ) from None


def healthcheck_config(
    test: list[str],
    *,
    interval: int | None = None,
    timeout: int | None = None,
    start_period: int | None = None,
    retries: int | None = None,
) -> dict[str, Any]:
    """Docker's Healthcheck object: the test words and the values given (nanoseconds, a
    count); StartPeriod only when not zero."""
    hc: dict[str, Any] = {"Test": test}
    if interval is not None:
        hc["Interval"] = interval
    if timeout is not None:
        hc["Timeout"] = timeout
    if start_period:
        hc["StartPeriod"] = start_period
    if retries is not None:
        hc["Retries"] = retries
    return hc


def docker_healthcheck(
    test: str,
    *,
    interval: str | None = None,
    timeout: str | None = None,
    start_period: str | None = None,
    retries: int | None = None,
) -> dict[str, Any]:
    """The Healthcheck object of `--healthcheck TEST` and its companions, as buildah 1.28
    stores it: the test split into words ("CMD-SHELL curl x" → ["CMD-SHELL", "curl", "x"]),
    durations in nanoseconds (default 30s), retries (default 3)."""
    words = parse_json_or_shell(test) if not test.lstrip().startswith("[") else None
    if words is None:
        words = _json_strings(test) or []
    if not words:
        raise InvalidArgument("--healthcheck needs a test: CMD ..., CMD-SHELL ... or NONE")
    hc = healthcheck_config(
        words,
        interval=go_duration_ns(interval) if interval else HEALTHCHECK_INTERVAL,
        timeout=go_duration_ns(timeout) if timeout else HEALTHCHECK_TIMEOUT,
        start_period=go_duration_ns(start_period) if start_period else None,
        retries=HEALTHCHECK_RETRIES if retries is None else retries,
    )
    for key in ("Interval", "Timeout"):
        if hc[key] < 0:
            raise InvalidArgument(f"healthcheck {key.lower()} cannot be negative")
    if hc["Retries"] < 0:
        raise InvalidArgument("healthcheck retries cannot be negative")
    return hc
