"""pypod.config.registries: registries.conf v2, drop-ins, prefix matching, pull sources."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pypod.config import registries
from pypod.config.registries import (
    Alias,
    Endpoint,
    RegistriesConfig,
    RegistryBlocked,
    _match_length,
    config_paths,
    find_registry,
    load_aliases_file,
    load_registries_conf,
    parse_registries_conf,
    pull_sources,
    short_name_aliases_path,
)
from pypod.errors import ConfigError, PermissionDenied

DIGEST = "sha256:" + "a" * 64


def write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def load(tmp_path: Path, text: str) -> RegistriesConfig:
    return load_registries_conf(write(tmp_path / "registries.conf", text))


FULL = """
unqualified-search-registries = ["registry.fedoraproject.org", "quay.io", "docker.io"]
short-name-mode = "enforcing"

[[registry]]
prefix = "example.com/foo"
location = "internal.example.com/bar/"
insecure = true

[[registry.mirror]]
location = "mirror-1.example.com"

[[registry.mirror]]
location = "mirror-2.example.com/library"
insecure = true
pull-from-mirror = "digest-only"

[[registry.mirror]]
location = "mirror-3.example.com"
pull-from-mirror = "tag-only"

[[registry]]
location = "blocked.example.com"
blocked = true

[[registry]]
prefix = "*.wild.example.com"

[[registry]]
location = "example.com"

[aliases]
"fedora" = "registry.fedoraproject.org/fedora"
"""


def test_full_file(tmp_path: Path) -> None:
    c = load(tmp_path, FULL)
    assert c.unqualified_search_registries == ("registry.fedoraproject.org", "quay.io", "docker.io")
    assert c.short_name_mode == "enforcing"
    assert c.search_registries_origin == str(tmp_path / "registries.conf")
    assert [r.prefix for r in c.registries] == [
        "*.wild.example.com",
        "blocked.example.com",
        "example.com",
        "example.com/foo",
    ]  # fmt: skip  (sorted by prefix, as containers/image keeps them)
    foo = c.registries[3]
    assert foo.location == "internal.example.com/bar"  # trailing "/" trimmed
    assert foo.insecure
    assert foo.mirrors == (
        Endpoint(location="mirror-1.example.com", is_mirror=True),
        Endpoint(location="mirror-2.example.com/library", insecure=True,
                 pull_from_mirror="digest-only", is_mirror=True),
        Endpoint(location="mirror-3.example.com", pull_from_mirror="tag-only", is_mirror=True),
    )  # fmt: skip
    assert c.registries[2].prefix == c.registries[2].location == "example.com"
    origin = str(tmp_path / "registries.conf")
    assert c.aliases == {"fedora": Alias(value="registry.fedoraproject.org/fedora", origin=origin)}
    assert c.credential_helpers == ("containers-auth.json",)


def test_missing_default_file_is_an_empty_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registries, "SYSTEM_CONF", str(tmp_path / "etc/registries.conf"))
    monkeypatch.setattr(registries, "SYSTEM_CONF_DIR", str(tmp_path / "etc/registries.conf.d"))
    monkeypatch.setattr(registries, "VENDOR_CONF", str(tmp_path / "usr/registries.conf"))
    c = load_registries_conf(environ={"HOME": str(tmp_path / "home")})
    assert c == RegistriesConfig(
        search_registries_origin="",
        description=f"{tmp_path}/etc/registries.conf, {tmp_path}/etc/registries.conf.d, "
        f"{tmp_path}/home/.config/containers/registries.conf.d",
    )


def test_vendor_file_when_etc_has_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registries, "SYSTEM_CONF", str(tmp_path / "etc/registries.conf"))
    monkeypatch.setattr(registries, "SYSTEM_CONF_DIR", str(tmp_path / "etc/registries.conf.d"))
    vendor = write(tmp_path / "usr/registries.conf", 'unqualified-search-registries = ["a.io"]\n')
    monkeypatch.setattr(registries, "VENDOR_CONF", vendor)
    user_drop_in = tmp_path / "home/.config/containers/registries.conf.d/x.conf"
    write(user_drop_in, 'short-name-mode = "disabled"\n')
    c = load_registries_conf(environ={"HOME": str(tmp_path / "home")})
    assert c.files == (vendor, str(user_drop_in))
    assert c.unqualified_search_registries == ("a.io",)
    assert c.short_name_mode == "disabled"


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="registries configuration file does not exist"):
        load_registries_conf(str(tmp_path / "nope.conf"))


def test_empty_file_defaults(tmp_path: Path) -> None:
    c = load(tmp_path, "")
    assert c.short_name_mode == "permissive"
    assert c.unqualified_search_registries == ()
    assert c.registries == ()


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ('[[registry]]\nlocation = "http://example.com"\n', "registry[0].location",
         "invalid location 'http://example.com': URI schemes are not supported"),
        ('[[registry]]\nprefix = "https://example.com"\nlocation = "x.com"\n', "registry[0].prefix",
         "URI schemes are not supported"),
        ("[[registry]]\ninsecure = true\n", "registry[0]",
         "invalid condition: both location and prefix are unset"),
        ('[[registry]]\nprefix = "example.com"\n', "registry[0]",
         "invalid condition: location is unset and prefix is not in the format: *.example.com"),
        ('[[registry]]\nprefix = "*.example.com/foo"\n', "registry[0].prefix",
         'Wildcarded prefix should be in the format: *.example.com. Current prefix '
         '"*.example.com/foo" is incorrectly formatted'),
        ('[[registry]]\nprefix = "*.example.com:5000"\n', "registry[0].prefix",
         "Wildcarded prefix should be in the format"),
        ('[[registry]]\nlocation = "a.com"\npull-from-mirror = "all"\n',
         "registry[0].pull-from-mirror",
         'pull-from-mirror must not be set for a non-mirror registry "a.com"'),
        ('[[registry]]\nlocation = "a.com"\n[[registry.mirror]]\nlocation = "m.com"\n'
         'pull-from-mirror = "sometimes"\n', "registry[0].mirror[0].pull-from-mirror",
         'unsupported pull-from-mirror value "sometimes" for mirror "m.com"'),
        ('[[registry]]\nlocation = "a.com"\nmirror-by-digest-only = true\n[[registry.mirror]]\n'
         'location = "m.com"\npull-from-mirror = "all"\n', "registry[0].mirror[0]",
         'cannot set mirror usage mirror-by-digest-only for the registry ("a.com") and '
         'pull-from-mirror for per-mirror ("m.com") at the same time'),
        ('[[registry]]\nlocation = "a.com"\n[[registry.mirror]]\ninsecure = true\n',
         "registry[0].mirror[0]", "invalid condition: mirror location is unset"),
        ('[[registry]]\nlocation = "a.com"\ninsecure = "yes"\n', "registry[0].insecure",
         'must be true or false, got string "yes"'),
        ('short-name-mode = "prompt"\n', "short-name-mode",
         'invalid short-name mode: "prompt"; expected one of enforcing, permissive, disabled'),
        ('unqualified-search-registries = ["docker.io/library"]\n',
         "unqualified-search-registries[0]",
         'Invalid unqualified-search-registries entry "docker.io/library"'),
        ('unqualified-search-registries = "docker.io"\n', "unqualified-search-registries",
         'must be an array of strings, got string "docker.io"'),
        ("[aliases]\nfedora = 1\n", 'aliases."fedora"', "must be a string, got number 1"),
    ],
)  # fmt: skip
def test_errors_name_file_and_key(tmp_path: Path, text: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert info.value.path == str(tmp_path / "registries.conf")
    assert info.value.key == key
    assert message in str(info.value)


def test_conflicting_insecure_for_one_location(tmp_path: Path) -> None:
    text = (
        '[[registry]]\nprefix = "a.com/x"\nlocation = "a.com"\ninsecure = true\n'
        '[[registry]]\nprefix = "a.com/y"\nlocation = "a.com"\n'
    )
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert "registry 'a.com' is defined multiple times with conflicting 'insecure' setting" in str(
        info.value
    )


def test_first_table_with_a_prefix_wins_within_a_file(tmp_path: Path) -> None:
    c = load(
        tmp_path,
        '[[registry]]\nprefix = "a.com"\nlocation = "one.com"\n'
        '[[registry]]\nprefix = "a.com"\nlocation = "two.com"\n',
    )
    assert [r.location for r in c.registries] == ["one.com"]


def test_v1_format_is_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "[registries.search]\nregistries = ['docker.io']\n")
    assert str(info.value).startswith(str(tmp_path / "registries.conf") + ": the v1 format")
    assert "unqualified-search-registries" in str(info.value)


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"registries.conf: invalid TOML: "):
        load(tmp_path, "unqualified-search-registries = [\n")


# --------------------------------------------------------------------------- drop-ins


def test_drop_ins_merge_in_lexical_order(tmp_path: Path) -> None:
    main = write(
        tmp_path / "registries.conf",
        'unqualified-search-registries = ["quay.io"]\nshort-name-mode = "enforcing"\n'
        '[[registry]]\nlocation = "a.com"\n[[registry]]\nlocation = "b.com"\n'
        '[aliases]\nfedora = "registry.fedoraproject.org/fedora"\n'
        'ubi = "registry.access.redhat.com/ubi9"\n',
    )
    d = tmp_path / "registries.conf.d"
    write(
        d / "10-b.conf",
        '[[registry]]\nlocation = "b.com"\ninsecure = true\n'
        '[aliases]\nubi = ""\nalpine = "docker.io/library/alpine"\n',
    )
    write(
        d / "02-a.conf",
        'unqualified-search-registries = ["docker.io"]\nshort-name-mode = "permissive"\n',
    )
    write(d / "20-c.conf", "unqualified-search-registries = []\n")
    write(d / "30-ignored.txt", "not toml at all [")
    (d / "40-dir.conf").mkdir()
    c = load_registries_conf(main)
    assert c.files == (
        main, str(d / "02-a.conf"), str(d / "10-b.conf"), str(d / "20-c.conf"),
    )  # fmt: skip
    assert c.short_name_mode == "permissive"
    assert c.unqualified_search_registries == ()  # "[]" in a later drop-in still replaces
    assert c.search_registries_origin == str(d / "20-c.conf")
    regs = {r.prefix: r for r in c.registries}
    assert not regs["a.com"].insecure and regs["b.com"].insecure
    assert regs["b.com"].origin == str(d / "10-b.conf")
    assert c.aliases["fedora"].value == "registry.fedoraproject.org/fedora"
    assert c.aliases["ubi"] == Alias(value=None, origin=str(d / "10-b.conf"))  # reset
    assert c.aliases["alpine"].origin == str(d / "10-b.conf")


def test_unset_keys_in_drop_ins_keep_earlier_values(tmp_path: Path) -> None:
    main = write(tmp_path / "registries.conf", 'unqualified-search-registries = ["quay.io"]\n')
    write(tmp_path / "registries.conf.d" / "a.conf", '[[registry]]\nlocation = "x.com"\n')
    c = load_registries_conf(main)
    assert c.unqualified_search_registries == ("quay.io",)
    assert c.search_registries_origin == main


def test_drop_in_in_v1_format_is_refused(tmp_path: Path) -> None:
    main = write(tmp_path / "registries.conf", "")
    bad = write(
        tmp_path / "registries.conf.d" / "old.conf", "[registries.block]\nregistries = ['x']\n"
    )
    with pytest.raises(ConfigError) as info:
        load_registries_conf(main)
    assert info.value.path == bad
    assert "a drop-in must be in the v2 format" in str(info.value)


# --------------------------------------------------------------------------- search paths


def test_explicit_path_uses_its_sibling_drop_in_dir(tmp_path: Path) -> None:
    p = config_paths(str(tmp_path / "r.conf"), environ={"HOME": "/nonexistent"})
    assert p.conf == str(tmp_path / "r.conf")
    assert p.dirs == (str(tmp_path / "registries.conf.d"),)
    assert p.explicit


def test_env_variable_then_system_and_user_dirs(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "CONTAINERS_REGISTRIES_CONF": "/x/reg.conf"}
    p = config_paths(environ=env)
    assert p.conf == "/x/reg.conf"
    assert p.dirs == (
        "/etc/containers/registries.conf.d", str(tmp_path / ".config/containers/registries.conf.d"),
    )  # fmt: skip


def test_user_file_first_with_only_the_user_dir(tmp_path: Path) -> None:
    user = write(tmp_path / ".config/containers/registries.conf", "")
    p = config_paths(environ={"HOME": str(tmp_path)})
    assert p.conf == user
    assert p.dirs == (str(tmp_path / ".config/containers/registries.conf.d"),)
    assert not p.explicit


def test_system_file_when_no_user_file(tmp_path: Path) -> None:
    p = config_paths(environ={"HOME": str(tmp_path)})
    assert p.conf in ("/etc/containers/registries.conf", "/usr/share/containers/registries.conf")
    assert p.dirs[0] == "/etc/containers/registries.conf.d"


def test_short_name_aliases_path(tmp_path: Path) -> None:
    assert (
        short_name_aliases_path(rootless=False) == "/var/cache/containers/short-name-aliases.conf"
    )
    env = {"HOME": str(tmp_path)}
    assert short_name_aliases_path(rootless=True, environ=env) == str(
        tmp_path / ".cache/containers/short-name-aliases.conf"
    )
    env["XDG_CACHE_HOME"] = "/xdg"
    assert short_name_aliases_path(rootless=True, environ=env) == (
        "/xdg/containers/short-name-aliases.conf"
    )


def test_aliases_file(tmp_path: Path) -> None:
    assert load_aliases_file(str(tmp_path / "missing.conf")) == {}
    path = write(tmp_path / "a.conf", '[aliases]\n"busybox" = "docker.io/library/busybox"\n')
    assert load_aliases_file(path) == {
        "busybox": Alias(value="docker.io/library/busybox", origin=path)
    }


# --------------------------------------------------------------------------- prefix matching


# containers/image TestRefMatchingPrefix and TestRefMatchingSubdomainPrefix
@pytest.mark.parametrize(
    ("ref", "prefix", "expected"),
    [
        ("docker.io", "docker.io", 9),
        ("docker.io", "example.com", -1),
        ("example.com:5000", "example.com", 11),  # a documented quirk of containers/image
        ("example.com/foo", "example.com", 11),
        ("example.com/foo/bar", "example.com/foo", 15),
        ("example.com/foo/bar:baz", "example.com/foo/bar", 19),
        (f"example.com/foo/bar@{DIGEST}", "example.com/foo/bar", 19),
        ("example.com/foo/barbaz", "example.com/foo/bar", -1),
        ("example.com/foo", "example.com/foo/bar", -1),
        ("example.com", "example.com/foo", -1),
        ("docker.io", "*.io", 9),
        ("docker.io/foo", "*.com", -1),
        ("example.com/foo", "*.co", -1),
        ("example.com/foo", "*.example.com", -1),
        ("sub.example.com/foo", "*.example.com", 15),
        ("sub.example.com:5000/foo", "*.example.com", 15),
        ("sub.sub.example.com/foo", "*.example.com", 19),
        ("sub.example.com@" + DIGEST, "*.example.com", 15),
        ("example.com/sub.example.com/foo", "*.example.com", -1),
        ("sub.example.co/foo", "*.example.com", -1),
        ("sub.example.comm/foo", "*.example.com", -1),
    ],
)
def test_prefix_matching(ref: str, prefix: str, expected: int) -> None:
    assert _match_length(ref, prefix) == expected


def test_find_registry_longest_prefix(tmp_path: Path) -> None:
    c = load(tmp_path, FULL)
    found = find_registry(c, "example.com/foo/image:latest")
    assert found is not None and found.prefix == "example.com/foo"
    found = find_registry(c, "example.com/other/image")
    assert found is not None and found.prefix == "example.com"
    found = find_registry(c, "a.wild.example.com/x")
    assert found is not None and found.prefix == "*.wild.example.com"
    assert find_registry(c, "quay.io/x") is None


def test_pull_sources_by_tag(tmp_path: Path) -> None:
    c = load(tmp_path, FULL)
    sources = pull_sources(c, "example.com/foo/image:latest")
    assert [(s.endpoint.location, s.reference, s.endpoint.insecure) for s in sources] == [
        ("mirror-1.example.com", "mirror-1.example.com/image:latest", False),
        ("mirror-3.example.com", "mirror-3.example.com/image:latest", False),
        ("internal.example.com/bar", "internal.example.com/bar/image:latest", True),
    ]


def test_pull_sources_by_digest(tmp_path: Path) -> None:
    c = load(tmp_path, FULL)
    sources = pull_sources(c, f"example.com/foo/image@{DIGEST}")
    assert [s.reference for s in sources] == [
        f"mirror-1.example.com/image@{DIGEST}",
        f"mirror-2.example.com/library/image@{DIGEST}",
        f"internal.example.com/bar/image@{DIGEST}",
    ]
    assert [s.endpoint.is_mirror for s in sources] == [True, True, False]


def test_mirror_by_digest_only(tmp_path: Path) -> None:
    c = load(
        tmp_path,
        '[[registry]]\nlocation = "a.com"\nmirror-by-digest-only = true\n'
        '[[registry.mirror]]\nlocation = "m.com"\n',
    )
    assert [s.reference for s in pull_sources(c, "a.com/x:1")] == ["a.com/x:1"]
    assert [s.reference for s in pull_sources(c, f"a.com/x@{DIGEST}")] == [
        f"m.com/x@{DIGEST}", f"a.com/x@{DIGEST}",
    ]  # fmt: skip


def test_no_registry_means_the_reference_domain(tmp_path: Path) -> None:
    c = load(tmp_path, FULL)
    [source] = pull_sources(c, "quay.io/podman/hello:latest")
    assert source.endpoint == Endpoint(location="quay.io")
    assert source.reference == "quay.io/podman/hello:latest"


def test_wildcard_registry_keeps_the_reference(tmp_path: Path) -> None:
    c = load(tmp_path, FULL)
    [source] = pull_sources(c, "a.wild.example.com/x:1")
    assert source.endpoint.location == "a.wild.example.com"
    assert source.reference == "a.wild.example.com/x:1"


def test_blocked_registry(tmp_path: Path) -> None:
    c = load(tmp_path, FULL)
    with pytest.raises(RegistryBlocked) as info:
        pull_sources(c, "blocked.example.com/x:1")
    assert isinstance(info.value, PermissionDenied)
    assert str(info.value) == (
        f"registry blocked.example.com is blocked in {tmp_path / 'registries.conf'}; pulling "
        "blocked.example.com/x:1 is not allowed"
    )


# --------------------------------------------------------------------------- properties

_scalars = st.one_of(
    st.booleans(), st.integers(-5, 5), st.sampled_from(["", "a.com", "*.b.com", "http://x", "x/y"])
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["location", "prefix", "insecure", "blocked", "mirror",
                             "pull-from-mirror", "mirror-by-digest-only", "x"]),
            inner, max_size=4),
    ),
    max_leaves=12,
)  # fmt: skip
_documents = st.dictionaries(
    st.sampled_from(["registry", "unqualified-search-registries", "short-name-mode", "aliases",
                     "credential-helpers", "registries", "other"]),
    _values, max_size=4,
)  # fmt: skip


@given(_documents)
def test_any_document_gives_a_config_or_a_config_error(doc: dict[str, object]) -> None:
    try:
        part = parse_registries_conf(doc, path="r.conf")
    except ConfigError as e:
        assert e.path == "r.conf"
        return
    for reg in part.registries:
        assert reg.prefix and not reg.prefix.endswith("/")
