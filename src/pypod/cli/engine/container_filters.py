"""`--filter KEY=VALUE` for containers (ps, start, container prune), as podman 4.3 reads it.

Podman's rules (pkg/domain/filters/containers.go): values of one key are alternatives (any
matches) except `label` (all must match); different keys must all match.  `id` and `name` are
regular expressions searched in the ID or name; `ancestor` is the image's full ID, its name as
stored (`localhost/busybox:latest`) or that name without a `:latest` tag; `status` is libpod's
(`configured` shows and filters as `created`, `stopped` is `exited`).  Every filter is checked
before any container is looked at, so a bad one fails even when no container exists.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pypod.errors import InvalidArgument

if TYPE_CHECKING:
    from pypod.engine.containers import Engine
    from pypod.engine.state import Container

Predicate = Callable[["Container"], bool]

#: define.StringToContainerStatus's names (libpod's String() of each status)
_STATUSES = ("unknown", "created", "initialized", "running", "stopped", "paused", "exited",
             "removing", "stopping")  # fmt: skip
#: define.RestartPolicyMap's names (and "none", which the filter also takes)
_RESTART_POLICIES = ("", "no", "none", "on-failure", "always", "unless-stopped")


def parse(values: Sequence[str]) -> dict[str, list[str]]:
    """`KEY=VALUE` strings -> values per key, in order."""
    out: dict[str, list[str]] = {}
    for f in values:
        key, eq, value = f.partition("=")
        if not eq:
            raise InvalidArgument(f'invalid filter "{f}": use KEY=VALUE')
        out.setdefault(key, []).append(value)
    return out


def matcher(eng: Engine, filters: dict[str, list[str]], *, prune: bool = False) -> Predicate:
    """One predicate for all `filters` (podman's `ps`/`start` set, or `container prune`'s)."""
    preds = [_make(eng, key, values, prune=prune) for key, values in filters.items()]
    return lambda c: all(p(c) for p in preds)


def label_match(labels: dict[str, str], want: str) -> bool:
    """podman's MatchLabelFilters for one filter: `KEY` or `KEY=VALUE`."""
    key, eq, value = want.partition("=")
    return key in labels and (not eq or labels[key] == value)


def shown_status(c: Container) -> str:
    """The status podman shows ("created" for `configured`, "initialized" for `created`)."""
    from pypod.engine.state import shown_status as shown

    return shown(c.status)


def _regex(values: list[str]) -> list[re.Pattern[str]]:
    out = []
    for v in values:
        try:
            out.append(re.compile(v))
        except re.error as e:
            raise InvalidArgument(f"error parsing regexp: {e.msg}: `{v}`") from None
    return out


def _make(eng: Engine, key: str, values: list[str], *, prune: bool) -> Predicate:
    if prune:
        if key == "label":
            return lambda c: all(label_match(c.config.labels, v) for v in values)
        if key == "until":
            return _until(values)
        raise InvalidArgument(f"{key} is an invalid filter")
    if key in ("id", "name"):
        patterns = _regex(values)
        if key == "id":
            return lambda c: any(p.search(c.id) for p in patterns)
        return lambda c: any(p.search(c.name) for p in patterns)
    if key == "label":
        return lambda c: all(label_match(c.config.labels, v) for v in values)
    if key == "exited":
        codes = []
        for v in values:
            try:
                codes.append(int(v))
            except ValueError:
                raise InvalidArgument(
                    f'exited code out of range "{v}": strconv.ParseInt: parsing "{v}": '
                    "invalid syntax"
                ) from None
        return lambda c: c.status == "exited" and c.state.get("exit_code") in codes
    if key == "status":
        for v in values:
            if v not in _STATUSES:
                raise InvalidArgument(f"unknown container state: {v}: invalid argument")
        wanted = {"exited" if v == "stopped" else v for v in values}
        return lambda c: shown_status(c) in wanted
    if key == "ancestor":
        return lambda c: any(_ancestor(c, v) for v in values)
    if key in ("before", "since"):
        times = [eng.lookup(v).created for v in values]
        first = min(times)
        if key == "before":
            return lambda c: c.created < first
        return lambda c: c.created > first
    if key == "volume":
        return lambda c: any(_uses_volume(c, v) for v in values)
    if key == "health":
        return lambda c: ((c.state.get("health") or {}).get("status") or "") in values
    if key == "until":
        return _until(values)
    if key == "network":
        return lambda c: c.config.network in ("", "bridge") and any(
            n in c.config.networks for n in values
        )
    if key == "pod":  # a pod's name, ID or ID prefix
        return _in_pods(eng, values)
    if key == "restart-policy":
        bad = [v for v in values if v not in _RESTART_POLICIES]
        if bad:
            what = "invalid restart policies" if len(bad) > 1 else "invalid restart policy"
            raise InvalidArgument(f"{', '.join(bad)} {what}")
        return lambda c: any(
            c.config.restart_policy == v or (v == "none" and c.config.restart_policy in ("", "no"))
            for v in values
        )
    raise InvalidArgument(f"{key} is an invalid filter")


def _ancestor(c: Container, want: str) -> bool:
    name = c.config.image
    base, sep, tag = name.partition(":")  # podman splits at the first colon
    return (
        c.config.image_id == want or name == want or bool(sep and base == want and tag == "latest")
    )


def _uses_volume(c: Container, want: str) -> bool:
    source, _, dest = want.partition(":")
    for m in c.config.mounts:
        names = (m.source, m.volume) if m.volume else (m.source,)
        if source in names and (not dest or m.destination == dest):
            return True
    return False


def _in_pods(eng: Engine, values: list[str]) -> Predicate:
    from pypod.engine.pods import Pods

    pods = Pods(eng).list_pods()
    ids = {p.id for p in pods for v in values if v in (p.name, p.id) or p.id.startswith(v)}
    return lambda c: c.config.pod in ids


def _until(values: list[str]) -> Predicate:
    from pypod.engine.logs import parse_time_arg

    limit = max(parse_time_arg(v) for v in values)
    return lambda c: c.created < limit
