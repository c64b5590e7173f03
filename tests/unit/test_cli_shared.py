"""What `pypod` and `pypod-build` share: cli/program.py (errors to exit codes, store globals,
log levels, lazy command modules), cli/registry.py (registry flags, login --get-login) and
cli/image_list.py (rows of an image listing)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from pypod.cli import program, registry
from pypod.cli.common import default_locations
from pypod.cli.flags import Flag, Parsed, parse
from pypod.cli.image_list import check_rmi_args, common_cells, repo_tags, shown_id
from pypod.errors import ImageNotFound, InvalidArgument, NotSupported
from pypod.image.local import ImageSummary

ID = "ab" * 32


def summary(*names: str) -> ImageSummary:
    return ImageSummary(id=ID, names=names, digest="sha256:" + "cd" * 32, digests=(),
                        created=0.0, size=2_130_000, shared_size=0, containers=0,
                        dangling=not names, intermediate=False, parent_id="")  # fmt: skip


# --- program.py -------------------------------------------------------------------------------
def test_run_guarded_turns_errors_into_the_programs_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def fail() -> int:
        print("partial output")
        raise ImageNotFound("busybox: image not known")

    assert program.run_guarded(fail, lambda e: 7 if isinstance(e, ImageNotFound) else 1) == 7
    out, err = capsys.readouterr()
    assert (out, err) == ("partial output\n", "Error: busybox: image not known\n")

    def missing() -> int:
        raise FileNotFoundError(2, "No such file or directory", "/nope")

    assert program.run_guarded(missing, lambda e: 1) == 125
    assert capsys.readouterr().err == "Error: No such file or directory: /nope\n"
    assert program.run_guarded(lambda: 3, lambda e: 1) == 3


def test_store_globals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_OPTS", "")  # restored after the test, then removed
    monkeypatch.delenv("STORAGE_OPTS")
    monkeypatch.delenv("_PYPOD_ROOTLESS_UID", raising=False)
    values: dict[str, object] = {"root": "/r", "storage-driver": "vfs"}
    graphroot, runroot, driver = program.store_globals(values, [])
    assert (graphroot, driver) == ("/r", "vfs")
    assert runroot == default_locations()[1]
    assert "STORAGE_OPTS" not in os.environ
    program.store_globals({}, ["overlay.mount_program=/x", ""])
    assert os.environ["STORAGE_OPTS"] == "overlay.mount_program=/x"
    with pytest.raises(NotSupported, match='unknown storage driver "btrfs"'):
        program.store_globals({"storage-driver": "btrfs"}, [])


def test_merged_globals_and_log_levels() -> None:
    flags = (*registry.ACCESS_FLAGS,)
    given = Parsed({"authfile": "/a", "creds": "u:p"})
    command = Parsed({"authfile": "/b", "all": True})
    assert program.merged_globals(given, command, flags) == {"authfile": "/b", "creds": "u:p"}
    assert [program.log_level(n, "bad") for n in ("trace", "warn", "panic")] == [10, 30, 50]
    with pytest.raises(InvalidArgument, match="^nope$"):
        program.log_level("loud", "nope")


def test_find_commands_imports_only_the_module_named() -> None:
    modules = {"images": ("images", "rmi"), "missing_module": ("ghost",)}
    found = program.find_commands("pypod.cli.build", modules, "rmi")
    assert set(found) == {"images", "rmi", "tag"}
    # a module that does not exist (yet) is passed over
    assert set(program.find_commands("pypod.cli.build", modules, "ghost")) == set(found)


def test_find_commands_reports_what_a_command_module_misses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "s6pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "good.py").write_text("COMMANDS = {'good': 1}\n")
    (pkg / "broken.py").write_text("import s6_no_such_dependency\nCOMMANDS = {}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert program.find_commands("s6pkg", {"good": ("good",)}, "good") == {"good": 1}
    with pytest.raises(ModuleNotFoundError, match="s6_no_such_dependency"):
        program.find_commands("s6pkg", {"broken": ("b",)}, "b")


# --- registry.py ------------------------------------------------------------------------------
FLAGS = (*registry.ACCESS_FLAGS, registry.RETRY_FLAG, *registry.PLATFORM_FLAGS)


def test_system_context_from_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_AUTH_FILE", "/env/auth.json")
    opts = parse(["--tls-verify=false", "--creds", "u:p", "--retry", "5",
                  "--platform", "linux/arm/v7", "--platform", "linux/amd64"], FLAGS)  # fmt: skip
    ctx = registry.system_context(opts, tmpdir="/t")
    assert (ctx.tls_verify, ctx.credentials, ctx.retries, ctx.tmpdir) == (False, "u:p", 5, "/t")
    assert (ctx.os, ctx.arch, ctx.variant) == ("linux", "arm", "v7")  # the first --platform
    assert ctx.authfile == "/env/auth.json"
    assert registry.system_context(parse(["--tls-verify"], FLAGS)).tls_verify is True
    assert registry.system_context(parse([], FLAGS)).tls_verify is None


def test_platform_rules() -> None:
    given = parse(["--variant", "v8", "--platform", "linux/arm64"], FLAGS)
    assert registry.platform(given) == ("linux", "arm64", "v8")  # buildah keeps --variant
    with pytest.raises(InvalidArgument, match="can not be specified with --arch or --os"):
        registry.platform(given, exclusive=True)  # podman refuses the mix
    with pytest.raises(InvalidArgument, match='invalid platform syntax for "linux"'):
        registry.platform(parse(["--platform", "linux"], FLAGS))


def test_push_format_v2s1_is_refused(tmp_path: Path) -> None:
    from pypod.image.transports.containers_storage import StoreLocation

    store = StoreLocation(graphroot=str(tmp_path), runroot=str(tmp_path), driver="vfs")
    ctx = registry.system_context(parse([], FLAGS))
    opts = parse(["--format", "v2s1"], registry.PUSH_FLAGS)
    with pytest.raises(NotSupported, match="schema 1"):
        registry.transfer_options(store, ctx, opts)
    quiet = registry.transfer_options(store, ctx, parse([], registry.PUSH_FLAGS), quiet=True)
    assert quiet.progress is None


def test_login_get_login_reads_the_stored_user(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # buildah 1.28 here: `buildah login --get-login https://localhost:5999/x` prints "bob";
    # without credentials: "Error: not logged into localhost:5999", exit 125
    auth = tmp_path / "auth.json"
    token = base64.b64encode(b"bob:pw").decode()
    auth.write_text(json.dumps({"auths": {"localhost:5999": {"auth": token}}}))
    login_flags = (*registry.ACCESS_FLAGS, Flag(("get-login",)))
    opts = parse(["--authfile", str(auth), "--get-login", "https://localhost:5999/x"], login_flags)
    registry.login(opts, registry.system_context(opts), no_registry="none")
    assert capsys.readouterr().out == "bob\n"
    other = parse(["--authfile", str(auth), "--get-login", "localhost:6000"], login_flags)
    with pytest.raises(InvalidArgument, match="^not logged into localhost:6000$"):
        registry.login(other, registry.system_context(other), no_registry="none")
    with pytest.raises(InvalidArgument, match="^give one$"):
        registry.login(
            parse([], login_flags), registry.system_context(opts), no_registry="give one"
        )


# --- image_list.py ----------------------------------------------------------------------------
def test_rows_of_a_listing() -> None:
    # one row per repository:tag, once each; an unnamed image is <none> <none>
    named = summary("localhost/a:1", "localhost/a:1", "docker.io/library/b:latest")
    assert repo_tags(named) == [("localhost/a", "1"), ("docker.io/library/b", "latest")]
    assert repo_tags(summary()) == [("<none>", "<none>")]
    assert shown_id(ID, truncate=True) == ID[:12]
    assert shown_id(ID, truncate=False) == "sha256:" + ID
    cells = common_cells(named, "1", truncate=True)
    assert cells == {"ID": ID[:12], "Tag": "1", "Digest": "sha256:" + "cd" * 32,
                     "Size": "2.13 MB", "ReadOnly": False}  # fmt: skip


def test_rmi_arguments() -> None:
    check_rmi_args(["a"], all_images=False)
    check_rmi_args([], all_images=True)
    with pytest.raises(InvalidArgument, match="image name or ID must be specified"):
        check_rmi_args([], all_images=False)
    with pytest.raises(InvalidArgument, match="may not pass any images names or IDs"):
        check_rmi_args(["a"], all_images=True)
