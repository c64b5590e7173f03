"""RUN --mount and -v parsing (pypod.build.run_mounts): buildah 1.28's rules and messages.

The messages marked "buildah" are what `buildah run --mount ...` / `-v` print here (1.28.2);
pypod adds the value they come from.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pypod.build.run_mounts import (
    cache_dir,
    parse_mount,
    parse_mounts,
    parse_volume,
    prepare_mounts,
)
from pypod.errors import InvalidArgument, NotSupported


def test_bind_defaults_read_only_recursive(tmp_path: Path) -> None:
    m = parse_mount(f"type=bind,src={tmp_path},target=/mnt")
    assert (m.type, m.destination, m.source) == ("bind", "/mnt", str(tmp_path))
    assert m.options == ("ro", "rbind")  # buildah: read-only unless rw is given


@pytest.mark.parametrize(
    ("extra", "options"),
    [
        ("rw", ("rw", "rbind")),
        ("readwrite", ("rw", "rbind")),
        ("readonly", ("ro", "rbind")),
        ("ro=false", ("rw", "rbind")),
        ("bind-nonrecursive", ("ro", "bind")),
        ("nosuid,rw", ("nosuid", "rw", "rbind")),
        ("bind-propagation=rshared", ("rshared", "ro", "rbind")),
        ("z", ("ro", "rbind")),
        ("consistency=cached", ("ro", "rbind")),
    ],
)
def test_bind_options(tmp_path: Path, extra: str, options: tuple[str, ...]) -> None:
    m = parse_mount(f"type=bind,source={tmp_path},dst=/mnt,{extra}")
    assert m.options == options


def test_type_defaults_to_bind(tmp_path: Path) -> None:
    assert parse_mount(f"src={tmp_path},target=/x").type == "bind"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("type=bind,src=/tmp", "must set volume destination"),  # buildah
        ("type=bind,target=/mnt,bogus=1", "bogus: invalid mount option"),  # buildah
        ("type=bind,target=/mnt,foo", "foo: invalid mount option"),  # buildah
        ("type=tmpfs,target=/t,foo=1", "foo: invalid mount option"),
        ("type=nope,target=/x", 'invalid filesystem type "nope"'),  # buildah
        ("target=/mnt", "incorrect mount format"),  # buildah
        ("type=bind,target=/mnt", "must set volume source"),
        ("type=bind,src=rel,target=/mnt", 'invalid host path, must be an absolute path "rel"'),
        ("type=bind,src=/no/such/dir,target=/mnt", "stat /no/such/dir: no such file or directory"),
        ("type=bind,src=/tmp,target=/mnt,from=", "from: must provide an argument for option"),
        ("type=bind,src=/tmp,target=/mnt,from=stage", "no stage or image found with name stage"),
        ("type=tmpfs,target=/t,src=/x", "source is not supported with tmpfs mounts"),
        ("type=tmpfs,target=/t,tmpfs-mode=9", "tmpfs-mode=9: must be an octal number"),
        ("type=cache,target=/c,sharing=odd", 'unrecognized value "odd" for field `sharing`'),
        ("type=cache,target=/c,uid=x", "uid=x: must be a number"),
        ("type=cache,id=x", "must set volume destination"),
        ("type=secret,id=s,mode=rw", "mode=rw: must be an octal number"),
        ("type=secret,id=s,required=maybe", "required=maybe: must be true or false"),
        ("type=secret", "a secret mount needs id=ID"),
        ("type=bind,src=/tmp,target=/mnt,bind-propagation=odd", "bind-propagation=odd"),
    ],
)  # fmt: skip
def test_mount_errors_name_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_mount(text)
    assert message in str(info.value)
    assert text in str(info.value) or message.startswith("incorrect")


def test_not_supported_options() -> None:
    with pytest.raises(NotSupported, match="'U'"):
        parse_mount("type=bind,src=/tmp,target=/mnt,U")
    with pytest.raises(NotSupported, match="private"):
        parse_mount("type=cache,target=/c,sharing=private")


def test_relative_target_is_below_the_workdir(tmp_path: Path) -> None:
    m = parse_mount(f"type=bind,src={tmp_path},target=sub/../dir", workdir="/work")
    assert m.destination == "/work/dir"
    assert parse_mount("type=tmpfs,target=//a//b/").destination == "/a/b"


def test_bind_source_from_context_stays_inside(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "d").mkdir(parents=True)
    (ctx / "out").symlink_to("/etc")  # resolved inside the context, not on the host
    (ctx / "etc").mkdir()
    m = parse_mount("type=bind,src=d,target=/x", context_dir=str(ctx))
    assert m.source == str(ctx / "d")
    assert parse_mount("type=bind,target=/x", context_dir=str(ctx)).source == str(ctx)
    assert parse_mount("type=bind,src=../../d,target=/x", context_dir=str(ctx)).source == str(
        ctx / "d"
    )
    assert parse_mount("type=bind,src=out,target=/x", context_dir=str(ctx)).source == str(
        ctx / "etc"
    )
    with pytest.raises(InvalidArgument, match="no such file"):
        parse_mount("type=bind,src=missing,target=/x", context_dir=str(ctx))


def test_bind_from_stage(tmp_path: Path) -> None:
    root = tmp_path / "stage"
    (root / "usr" / "lib").mkdir(parents=True)
    m = parse_mount(
        "type=bind,from=builder,src=/usr/lib,target=/lib2,rw",
        context_dir=str(tmp_path),
        stage_roots={"builder": str(root)},
    )
    assert (m.source, m.options, m.from_stage) == (
        str(root / "usr/lib"),
        ("rw", "rbind"),
        "builder",
    )


def test_cache_fields() -> None:
    m = parse_mount("type=cache,target=/root/.cache,id=pip,mode=0700,uid=10,gid=20,sharing=locked")
    assert (m.type, m.destination, m.cache_id, m.mode, m.uid, m.gid, m.sharing) == (
        "cache", "/root/.cache", "pip", 0o700, 10, 20, "locked",
    )  # fmt: skip
    assert m.options == ("rw", "bind")
    plain = parse_mount("type=cache,target=/c,ro")
    assert (plain.cache_id, plain.mode, plain.options) == ("/c", 0o755, ("ro", "bind"))


def test_tmpfs_fields() -> None:
    m = parse_mount("type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1777,noexec")
    assert m.options == ("size=1m", "mode=1777", "noexec")
    assert parse_mount("type=tmpfs,target=/t,size=2m,mode=700").options == ("size=2m", "mode=700")


def test_secret_fields() -> None:
    m = parse_mount("type=secret,id=token")
    assert (m.destination, m.source, m.mode, m.required) == (
        "/run/secrets/token",
        "token",
        0o400,
        False,
    )
    m = parse_mount("type=secret,id=token,target=tok,required,mode=0440,uid=1,gid=2")
    assert (m.destination, m.required, m.mode, m.uid, m.gid) == (
        "/run/secrets/tok",
        True,
        0o440,
        1,
        2,
    )
    assert parse_mount("type=secret,target=/etc/key").source == "key"  # id from the target
    assert "ro" in m.options


def test_volume(tmp_path: Path) -> None:
    v = parse_volume(f"{tmp_path}:/data")
    assert (v.type, v.source, v.destination, v.options) == (
        "bind",
        str(tmp_path),
        "/data",
        ("rbind",),
    )
    v = parse_volume(f"{tmp_path}:/data:ro,Z,nosuid")
    assert v.options == ("ro", "nosuid", "rbind")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/tmp", 'incorrect volume format "/tmp", should be host-dir:ctr-dir[:option]'),  # buildah
        ("rel:/x", 'invalid host path, must be an absolute path "rel"'),  # buildah
        ("/tmp:rel", 'invalid container path "rel", must be an absolute path'),  # buildah
        ("/no/such:/x", "stat /no/such: no such file or directory"),
        ("/tmp:/x:bogus", 'invalid option type "bogus"'),
        ("/tmp:/x:ro,rw", "can only specify 1 'ro' or 'rw' option"),
    ],
)
def test_volume_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_volume(text)
    assert message in str(info.value)


def test_volume_escaped_colon(tmp_path: Path) -> None:
    odd = tmp_path / "a:b"
    odd.mkdir()
    assert parse_volume(f"{tmp_path}/a\\:b:/x").source == str(odd)


def test_duplicate_destination(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="/x: duplicate mount destination"):
        parse_mounts([f"{tmp_path}:/x"], ["type=tmpfs,target=/x/"])


def test_cache_dir_names_cannot_escape(tmp_path: Path) -> None:
    root = str(tmp_path)
    for cache_id in ("..", ".", "/", "../../etc", "a/b", "/a", "a"):
        path = cache_dir(root, cache_id)
        assert os.path.dirname(path) == root
        assert os.path.basename(path) not in (".", "..", "")
    assert cache_dir(root, "/a") != cache_dir(root, "a")


def test_prepare_cache_and_secret(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    parsed = parse_mounts(
        [],
        [
            "type=cache,target=/c,mode=0700,uid=12,gid=34,sharing=locked",
            "type=secret,id=tok,uid=5,mode=0440",
            "type=secret,id=absent",
            "type=tmpfs,target=/t",
        ],
    )
    private = tmp_path / "private"
    private.mkdir()
    with prepare_mounts(
        parsed,
        private_dir=str(private),
        cache_root=str(tmp_path / "cache"),
        secrets={"tok": str(secret)},
    ) as prepared:
        by_dest = {m["destination"]: m for m in prepared.mounts}
        assert sorted(by_dest) == ["/c", "/run/secrets/tok", "/t"]  # the absent optional one: none
        cache = os.stat(by_dest["/c"]["source"])
        assert (stat.S_IMODE(cache.st_mode), cache.st_uid, cache.st_gid) == (0o700, 12, 34)
        copy = by_dest["/run/secrets/tok"]["source"]
        assert copy.startswith(str(private))
        st = os.stat(copy)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, Path(copy).read_text()) == (0o440, 5, "s3cret")
    with pytest.raises(InvalidArgument, match="secret required but no secret with id gone"):
        prepare_mounts(
            parse_mounts([], ["type=secret,id=gone,required=true"]),
            private_dir=str(private),
            cache_root=None,
            secrets={},
        )
    with pytest.raises(InvalidArgument, match="cache directory"):
        prepare_mounts(
            parse_mounts([], ["type=cache,target=/c"]),
            private_dir=str(private),
            cache_root=None,
            secrets={},
        )
