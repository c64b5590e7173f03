"""pypod.image.shortnames: short-name resolution as podman 4 does it (containers/image)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from pypod.config.registries import Alias, RegistriesConfig, load_registries_conf
from pypod.errors import ConfigError, InvalidArgument
from pypod.image.reference import parse_normalized
from pypod.image.shortnames import (
    AmbiguousShortName,
    record_alias,
    resolve,
    resolve_locally,
    validate_aliases,
)

DIGEST = "sha256:" + "b" * 64


def make_config(
    tmp_path: Path, search: Sequence[str] = (), mode: str = "", aliases: str = ""
) -> RegistriesConfig:
    text = f"unqualified-search-registries = {list(search)!r}\n".replace("'", '"')
    if mode:
        text += f'short-name-mode = "{mode}"\n'
    if aliases:
        text += f"[aliases]\n{aliases}\n"
    path = tmp_path / "registries.conf"
    path.write_text(text)
    return load_registries_conf(str(path))


def conf_path(tmp_path: Path) -> str:
    return str(tmp_path / "registries.conf")


def strs(resolved: object) -> list[str]:
    return [str(c.reference) for c in resolved.candidates]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("quay.io/repo/image", "quay.io/repo/image:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest"),
        ("localhost/image:tag", "localhost/image:tag"),
        (f"example.com:5000/lib/image@{DIGEST}", f"example.com:5000/lib/image@{DIGEST}"),
    ],
)
def test_fully_qualified_names_are_their_own_candidate(
    tmp_path: Path, name: str, expected: str
) -> None:
    r = resolve(name, make_config(tmp_path, ["quay.io", "docker.io"], "enforcing"))
    assert strs(r) == [expected]
    assert r.description == ""


def test_alias_from_registries_conf(tmp_path: Path) -> None:
    config = make_config(
        tmp_path, ["quay.io", "docker.io"], "enforcing",
        aliases='"fedora" = "registry.fedoraproject.org/fedora"',
    )  # fmt: skip
    r = resolve("fedora", config)
    assert strs(r) == ["registry.fedoraproject.org/fedora:latest"]
    assert r.description == f'Resolved "fedora" as an alias ({conf_path(tmp_path)})'
    assert r.candidates[0].description == f"alias in {conf_path(tmp_path)}"
    assert strs(resolve("fedora:40", config)) == ["registry.fedoraproject.org/fedora:40"]
    assert strs(resolve(f"fedora@{DIGEST}", config)) == [
        f"registry.fedoraproject.org/fedora@{DIGEST}"
    ]


def test_alias_values_are_normalised(tmp_path: Path) -> None:
    config = make_config(tmp_path, aliases='"alpine" = "docker.io/alpine"')
    assert strs(resolve("alpine:3", config)) == ["docker.io/library/alpine:3"]


def test_aliases_file_comes_first(tmp_path: Path) -> None:
    config = make_config(tmp_path, aliases='"busybox" = "quay.io/x/busybox"')
    cache = tmp_path / "short-name-aliases.conf"
    cache.write_text('[aliases]\n"busybox" = "docker.io/library/busybox"\n')
    r = resolve("busybox", config, aliases_file=str(cache))
    assert strs(r) == ["docker.io/library/busybox:latest"]
    assert r.origin == str(cache)
    missing = str(tmp_path / "missing.conf")
    assert strs(resolve("busybox", config, aliases_file=missing)) == ["quay.io/x/busybox:latest"]


def test_reset_alias_falls_back_to_search_registries(tmp_path: Path) -> None:
    config = make_config(tmp_path, ["quay.io"], aliases='"busybox" = ""')
    assert strs(resolve("busybox", config)) == ["quay.io/busybox:latest"]


@pytest.mark.parametrize(
    ("alias", "message"),
    [
        ('"fedora" = "registry.fedoraproject.org/fedora:40"',
         'aliases."fedora": invalid alias "registry.fedoraproject.org/fedora:40": must not '
         "contain tag"),
        (f'"fedora" = "registry.fedoraproject.org/fedora@{DIGEST}"',
         "must not contain digest"),
        ('"fedora" = "fedora/fedora"',
         'invalid alias "fedora/fedora": must contain registry and repository'),
        ('"fedora" = "Not Valid"', 'parsing alias "Not Valid": invalid reference format'),
    ],
)  # fmt: skip
def test_bad_alias_values_name_the_file(tmp_path: Path, alias: str, message: str) -> None:
    config = make_config(tmp_path, ["quay.io"], aliases=alias)
    with pytest.raises(ConfigError) as info:
        resolve("fedora", config)
    assert info.value.path == conf_path(tmp_path)
    assert message in str(info.value)


def test_validate_aliases_reports_all_problems() -> None:
    aliases = {
        "ok": Alias(value="quay.io/ok", origin="a.conf"),
        "quay.io/x": Alias(value="quay.io/x", origin="b.conf"),
        "tagged:1": Alias(value="quay.io/x", origin="c.conf"),
        "bad": Alias(value="nohost", origin="d.conf"),
    }
    with pytest.raises(ConfigError) as info:
        validate_aliases(aliases)
    text = str(info.value)
    assert text.startswith("invalid short-name aliases:\n * ")
    assert (
        'b.conf: aliases."quay.io/x": invalid short name "quay.io/x": must not contain registry'
        in text
    )
    assert 'invalid short name "tagged:1": must not contain tag' in text
    assert 'd.conf: aliases."bad": invalid alias "nohost"' in text
    assert "a.conf" not in text
    validate_aliases({"ok": aliases["ok"]})


def test_one_search_registry_is_not_ambiguous(tmp_path: Path) -> None:
    r = resolve("busybox", make_config(tmp_path, ["docker.io"], "enforcing"))
    assert strs(r) == ["docker.io/library/busybox:latest"]
    assert r.description == (
        f'Resolving "busybox" using unqualified-search registries ({conf_path(tmp_path)})'
    )


def test_search_registries_keep_namespaces_tags_and_digests(tmp_path: Path) -> None:
    config = make_config(tmp_path, ["quay.io", "docker.io"], "permissive")
    assert strs(resolve("library/busybox:1.36", config)) == [
        "quay.io/library/busybox:1.36", "docker.io/library/busybox:1.36",
    ]  # fmt: skip
    assert strs(resolve(f"app@{DIGEST}", config)) == [
        f"quay.io/app@{DIGEST}", f"docker.io/library/app@{DIGEST}",
    ]  # fmt: skip


def test_enforcing_without_a_terminal_fails_as_podman(tmp_path: Path) -> None:
    config = make_config(tmp_path, ["quay.io", "docker.io"], "enforcing")
    with pytest.raises(AmbiguousShortName) as info:
        resolve("busybox", config)
    assert str(info.value) == "short-name resolution enforced but cannot prompt without a TTY"
    assert info.value.candidates == ("quay.io/busybox:latest", "docker.io/library/busybox:latest")
    assert isinstance(info.value, InvalidArgument)


def test_enforcing_with_a_prompt(tmp_path: Path) -> None:
    config = make_config(tmp_path, ["quay.io", "docker.io"], "enforcing")
    seen: list[Sequence[str]] = []

    def prompt(choices: Sequence[str]) -> str:
        seen.append(choices)
        return choices[1]

    r = resolve("busybox", config, prompt=prompt)
    assert seen == [["quay.io/busybox:latest", "docker.io/library/busybox:latest"]]
    assert strs(r) == ["docker.io/library/busybox:latest"]
    assert r.candidates[0].record
    assert r.description == ""


def test_permissive_without_a_terminal_tries_all(tmp_path: Path) -> None:
    config = make_config(tmp_path, ["quay.io", "docker.io"], "permissive")
    r = resolve("busybox", config)
    assert strs(r) == ["quay.io/busybox:latest", "docker.io/library/busybox:latest"]
    assert not any(c.record for c in r.candidates)
    assert r.candidates[1].description == (
        f"unqualified-search registry docker.io from {conf_path(tmp_path)}"
    )


def test_disabled_never_prompts(tmp_path: Path) -> None:
    config = make_config(tmp_path, ["quay.io", "docker.io"], "disabled")

    def prompt(choices: Sequence[str]) -> str:
        raise AssertionError("must not prompt")

    assert len(resolve("busybox", config, prompt=prompt).candidates) == 2


def test_mode_argument_overrides_the_file(tmp_path: Path) -> None:
    config = make_config(tmp_path, ["quay.io", "docker.io"], "permissive")
    with pytest.raises(AmbiguousShortName):
        resolve("busybox", config, mode="enforcing")
    with pytest.raises(InvalidArgument, match=r"unsupported short-name mode \(prompt\)"):
        resolve("busybox", config, mode="prompt")


def test_no_search_registries(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    with pytest.raises(InvalidArgument) as info:
        resolve("busybox:1", config)
    assert str(info.value) == (
        'short-name "busybox:1" did not resolve to an alias and no unqualified-search '
        f'registries are defined in "{conf_path(tmp_path)}"'
    )
    with pytest.raises(InvalidArgument) as info:
        resolve("busybox", RegistriesConfig())
    assert str(info.value) == (
        'short-name "busybox" did not resolve to an alias and no containers-registries.conf(5) '
        "was found"
    )


def test_force_docker_hub(tmp_path: Path) -> None:
    config = make_config(tmp_path, ["quay.io"], aliases='"busybox" = "quay.io/x/busybox"')
    r = resolve("busybox", config, force_docker_hub=True)
    assert strs(r) == ["docker.io/library/busybox:latest"]
    assert r.description == 'Resolving "busybox" to docker.io (enforced by caller)'


def test_invalid_input() -> None:
    with pytest.raises(InvalidArgument) as info:
        resolve("Busybox", RegistriesConfig())
    assert str(info.value) == 'cannot parse input: "Busybox": repository name must be lowercase'


def test_resolve_locally_order(tmp_path: Path) -> None:
    config = make_config(
        tmp_path, ["quay.io", "docker.io"], "enforcing", aliases='"app" = "example.com/team/app"'
    )
    assert [str(r) for r in resolve_locally("app:1", config)] == [
        "example.com/team/app:1", "localhost/app:1", "quay.io/app:1", "docker.io/library/app:1",
    ]  # fmt: skip
    assert [str(r) for r in resolve_locally("busybox", config)] == [
        "localhost/busybox:latest", "quay.io/busybox:latest", "docker.io/library/busybox:latest",
    ]  # fmt: skip
    assert [str(r) for r in resolve_locally("quay.io/x", config)] == ["quay.io/x:latest"]


def test_record_alias_round_trip(tmp_path: Path) -> None:
    cache = str(tmp_path / "cache" / "short-name-aliases.conf")
    record_alias(cache, "busybox", parse_normalized("docker.io/library/busybox:1.36"))
    record_alias(cache, "fedora", parse_normalized("registry.fedoraproject.org/fedora"))
    config = make_config(tmp_path, ["quay.io", "docker.io"], "enforcing")
    assert strs(resolve("busybox", config, aliases_file=cache)) == [
        "docker.io/library/busybox:latest"
    ]
    assert strs(resolve("fedora:40", config, aliases_file=cache)) == [
        "registry.fedoraproject.org/fedora:40"
    ]
    assert (Path(cache).stat().st_mode & 0o777) == 0o600
    with pytest.raises(ConfigError, match="must not contain registry"):
        record_alias(cache, "quay.io/x", parse_normalized("quay.io/x"))
