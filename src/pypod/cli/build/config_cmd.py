"""`pypod-build config`: buildah 1.28's edits of a working container's image configuration.

Values as buildah takes them: `--env K=V` (with `$VAR` from the image's Env), `--env K-`
removes K, `--env -` removes all (likewise labels, annotations, ports, volumes); `--cmd` is a
JSON array or split as a shell would; `--entrypoint` is a JSON array or run with `/bin/sh -c`;
`--healthcheck "CMD ..."`, `"CMD-SHELL ..."` or `NONE`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pypod.build import config_edit
from pypod.cli.build.common import ADD_HISTORY_FLAG, add_history_wanted, open_build_store
from pypod.cli.build.main import Command, Globals
from pypod.cli.build.working import open_builder
from pypod.cli.flags import Flag, Parsed
from pypod.errors import InvalidArgument, NotSupported
from pypod.log import get_logger

if TYPE_CHECKING:
    from pypod.build.builder import Builder

log = get_logger(__name__)

_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def set_env(cfg: dict[str, Any], spec: str) -> None:
    """One `--env`: K=V (expanded from the image's Env), K- (unset), - (clear), K (host's)."""
    key, eq, value = spec.partition("=")
    if not eq and _removal(cfg, "Env", key, config_edit.unset_env):
        return
    if eq:
        known = config_edit.env_map(cfg)

        def expand(m: re.Match[str]) -> str:
            name = m.group(1) or m.group(2)
            if name in known:
                return known[name]
            log.error('error expanding variable "%s": no value set in image', name)
            return name

        value = _VAR.sub(expand, value)
    else:
        value = os.environ.get(key, "")
    config_edit.set_env(cfg, key, value)


def _removal(
    cfg: dict[str, Any],
    field: str,
    spec: str,
    remove: Callable[[dict[str, Any], str], None],
    *,
    clear_prefix: bool = False,
) -> bool:
    """buildah's removal forms of a `config` value: `-` empties `field` (any value starting
    with "-" for `--port`: `clear_prefix`), `NAME-` removes NAME; False for anything else."""
    if spec == "-" or (clear_prefix and spec.startswith("-")):
        config_edit.clear(cfg, field)
    elif spec.endswith("-"):
        remove(cfg, spec[:-1])
    else:
        return False
    return True


def _label(cfg: dict[str, Any], spec: str) -> None:
    """`--label K=V`, `K-` (remove), `-` (remove all), `K` (an empty value)."""
    name, eq, value = spec.partition("=")
    if eq or not _removal(cfg, "Labels", name, config_edit.remove_label):
        config_edit.set_label(cfg, name, value)


def _annotation(annotations: dict[str, str], spec: str) -> None:
    """`--annotation K=V`, `K-` (remove), `-` (remove all), `K` (an empty value), as labels;
    the next commit writes them into the manifest."""
    name, eq, value = spec.partition("=")
    if eq:
        annotations[name] = value
    elif name == "-":
        annotations.clear()
    elif name.endswith("-"):
        annotations.pop(name[:-1], None)
    else:
        annotations[name] = ""


def _port(cfg: dict[str, Any], spec: str) -> None:
    """`--port 80` (kept as given, "53/UDP" too, as buildah), `80-` removes, `-` (or any
    value starting with "-") removes all."""
    if not _removal(cfg, "ExposedPorts", spec, config_edit.remove_port, clear_prefix=True):
        config_edit.add_port(cfg, spec, as_given=True)


def _volume(cfg: dict[str, Any], spec: str) -> None:
    if not _removal(cfg, "Volumes", spec, config_edit.remove_volume):
        config_edit.add_volume(cfg, spec)


def _entrypoint(cfg: dict[str, Any], value: str) -> None:
    cmd = cfg.get("Cmd") or []
    entrypoint = config_edit.entrypoint_value(value)
    if entrypoint and cmd:
        if entrypoint[:2] == ["/bin/sh", "-c"] and len(entrypoint) == 3 and entrypoint[2] == value:
            log.warning('cmd "%s" exists but will be ignored because of entrypoint settings',
                        " ".join(cmd))  # fmt: skip
        else:
            log.warning('cmd "%s" exists and will be passed to entrypoint as a parameter',
                        " ".join(cmd))  # fmt: skip
    cfg["Entrypoint"] = entrypoint


_HEALTH_FLAGS = (("healthcheck-interval", "Interval"), ("healthcheck-timeout", "Timeout"),
                 ("healthcheck-start-period", "StartPeriod"),
                 ("healthcheck-retries", "Retries"))  # fmt: skip


def _healthcheck(cfg: dict[str, Any], opts: Parsed) -> None:
    """`--healthcheck` replaces the test (a new one gets buildah's defaults, an existing one
    keeps its other settings); the companion flags change those settings."""
    test = opts.text("healthcheck")
    old = dict(cfg.get("Healthcheck") or {})
    if test is not None and not test.strip():
        cfg.pop("Healthcheck", None)
        return
    if test is not None:
        new = config_edit.docker_healthcheck(
            test,
            interval=opts.text("healthcheck-interval"),
            timeout=opts.text("healthcheck-timeout"),
            start_period=opts.text("healthcheck-start-period"),
            retries=opts.number("healthcheck-retries")
            if opts.text("healthcheck-retries") is not None
            else None,
        )
        for flag, key in _HEALTH_FLAGS:
            if opts.text(flag) is None and key in old:
                new[key] = old[key]
    elif old:
        new = old
        for flag, key in _HEALTH_FLAGS:
            value = opts.text(flag)
            if value is not None:
                new[key] = (
                    opts.number(flag) if key == "Retries" else config_edit.go_duration_ns(value)
                )
    else:
        return
    cfg["Healthcheck"] = {k: new[k] for k in ("Test", "Interval", "Timeout", "StartPeriod",
                                              "Retries") if k in new}  # fmt: skip


def _warn_docker_only(opts: Parsed) -> None:
    """buildah's warnings, at `config` time, for what an OCI image cannot hold (working
    containers are OCI: `from --format docker` is not supported yet)."""
    if opts.text("shell") is not None:
        log.warning("SHELL is not supported for OCI image format, [%s] will be ignored. Must use "
                    "`docker` format", " ".join(config_edit.parse_json_or_shell(
                        opts.text("shell") or "")))  # fmt: skip
    if opts.text("healthcheck"):
        log.warning("HEALTHCHECK is not supported for OCI image format and will be ignored. "
                    "Must use `docker` format")  # fmt: skip
    if opts.text("domainname"):
        log.warning("DOMAINNAME is not supported for OCI image format, domainname %s will be "
                    "ignored. Must use `docker` format", opts.text("domainname"))  # fmt: skip
    if opts.text("hostname"):
        log.warning("HOSTNAME is not supported for OCI V1 image format, hostname %s will be "
                    "ignored. Must use `docker` format", opts.text("hostname"))  # fmt: skip
    for onbuild in opts.texts("onbuild"):
        log.warning("ONBUILD is not supported for OCI image format, %s will be ignored. Must "
                    "use `docker` format", onbuild)  # fmt: skip


def apply(builder: Builder, opts: Parsed) -> None:
    """Every `config` flag given, in buildah's order, on `builder` (not saved)."""
    for name in ("created-by", "comment", "os-feature", "os-version"):
        if opts.values.get(name) not in (None, []):
            raise NotSupported(f"'config --{name}' is not supported yet")
    _warn_docker_only(opts)
    cfg = builder.config
    if opts.text("author") is not None:
        builder.author = opts.text("author") or ""
    for flag, key in (("arch", "architecture"), ("os", "os"), ("variant", "variant")):
        value = opts.text(flag)
        if value is not None:
            if value:
                builder.platform[key] = value
            else:
                builder.platform.pop(key, None)
    for flag, key in (("user", "User"), ("workingdir", "WorkingDir"),
                      ("stop-signal", "StopSignal"), ("domainname", "Domainname"),
                      ("hostname", "Hostname")):  # fmt: skip
        value = opts.text(flag)
        if value is not None:
            cfg[key] = value
    for port in opts.texts("port"):
        _port(cfg, port)
    for spec in opts.texts("env"):
        set_env(cfg, spec)
    entrypoint = opts.text("entrypoint")
    if entrypoint is not None:
        _entrypoint(cfg, entrypoint)
    cmd = opts.text("cmd")
    if cmd is not None:
        cfg["Cmd"] = config_edit.parse_json_or_shell(cmd) if cmd.strip() else []
    for volume in opts.texts("volume"):
        _volume(cfg, volume)
    for label in opts.texts("label"):
        _label(cfg, label)
    for spec in opts.texts("annotation"):
        _annotation(builder.annotations, spec)
    shell = opts.text("shell")
    if shell is not None:
        cfg["Shell"] = config_edit.parse_json_or_shell(shell) if shell.strip() else []
    for onbuild in opts.texts("onbuild"):
        config_edit.add_onbuild(cfg, onbuild)
    _healthcheck(cfg, opts)
    comment = opts.text("history-comment")
    if comment is not None:
        builder.history_comment = comment


#: the flags `--add-history` records, in buildah's order, with the instruction it names
_HISTORY_FLAGS = (("user", "USER"), ("port", "EXPOSE"), ("env", "ENV"),
                  ("entrypoint", "ENTRYPOINT"), ("cmd", "CMD"), ("volume", "VOLUME"),
                  ("label", "LABEL"), ("workingdir", "WORKDIR"), ("stop-signal", "STOPSIGNAL"),
                  ("onbuild", "ONBUILD"), ("shell", "SHELL"),
                  ("healthcheck", "HEALTHCHECK"))  # fmt: skip


def cmd_config(g: Globals, opts: Parsed) -> int:
    if not opts.args:
        raise InvalidArgument("container ID must be specified")
    if len(opts.args) > 1:
        raise InvalidArgument("too many arguments specified")
    with open_build_store(g) as store:
        builder = open_builder(store, opts.args[0])
        apply(builder, opts)
        if add_history_wanted(opts):
            for flag, instruction in _HISTORY_FLAGS:
                value = opts.values.get(flag)
                for one in value if isinstance(value, list) else [value] if value else []:
                    builder.add_history(f"/bin/sh -c #(nop) {instruction} {one}")
        builder.save()
    return 0


COMMANDS: dict[str, Command] = {
    "config": Command(
        handler=cmd_config,
        flags=(
            ADD_HISTORY_FLAG,
            Flag(("annotation", "a"), True, True, help="add annotation e.g. annotation=value"),
            Flag(("arch",), True, help="set architecture of the target image"),
            Flag(("author",), True, help="set image author contact information"),
            Flag(("cmd",), True, help="set the default command to run for containers"),
            Flag(("comment",), True, help="set a comment in the target image"),
            Flag(("created-by",), True, help="set description of how the image was created"),
            Flag(("domainname",), True, help="set a domain name for containers based on image"),
            Flag(("entrypoint",), True, help="set entry point for containers based on image"),
            Flag(("env", "e"), True, True, help="add environment variable to be set"),
            Flag(("healthcheck",), True, help="set a healthcheck command for the target image"),
            Flag(("healthcheck-interval",), True, help="interval between healthcheck runs"),
            Flag(("healthcheck-retries",), True, help="failures before unhealthy"),
            Flag(("healthcheck-start-period",), True, help="wait before failures count"),
            Flag(("healthcheck-timeout",), True, help="maximum time for one healthcheck"),
            Flag(("history-comment",), True, help="set a comment for the history of the image"),
            Flag(("hostname",), True, help="set a hostname for containers based on image"),
            Flag(("label", "l"), True, True, help="add image configuration label e.g. label=value"),
            Flag(("onbuild",), True, True, help="add onbuild command (docker format only)"),
            Flag(("os",), True, help="set operating system of the target image"),
            Flag(("os-feature",), True, True, help="set required OS feature for the target image"),
            Flag(("os-version",), True, help="set required OS version for the target image"),
            Flag(("port", "p"), True, True, help="add port to expose when running containers"),
            Flag(("shell",), True, help="add shell to run in containers"),
            Flag(("stop-signal",), True, help="set stop signal for containers based on image"),
            Flag(("user", "u"), True, help="set default user to run inside containers"),
            Flag(("variant",), True, help="set architecture variant of the target image"),
            Flag(("volume", "v"), True, True, help="add default volume path to be created"),
            Flag(("workingdir",), True, help="set working directory for containers"),
        ),
        help="Update image configuration settings",
        long="Modifies the configuration values which will be saved to the image.",
        usage="[flags] CONTAINER",
    ),
}
