"""What one instruction does to the image being built, and how buildah records it in history.

Pure functions over the Docker-style config dict a `Builder` carries (`Env`, `Cmd`,
`Entrypoint`, `WorkingDir`, `User`, `ExposedPorts`, `Labels`, `Volumes`, `StopSignal`,
`Healthcheck`, `Shell`, `OnBuild`): no file system, no container.  The executor expands the
arguments (`expand.expand_arguments`) with `env_map(config) | args` and calls these.

History texts, as buildah 1.28 writes `created_by` (its `getCreatedBy`):
- RUN: `/bin/sh -c <the line after "RUN ">`, prefixed with `|N K=V ...` when build args are
  in scope (N counts the space-separated words, as buildah does);
- COPY/ADD: `/bin/sh -c #(nop) COPY <file|dir|multi>:<sha256> in <dest as written> `;
- ARG: `/bin/sh -c #(nop) ARG <sorted names of the args with values>`;
- anything else: `/bin/sh -c #(nop) <the instruction as written>`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pypod.build.config_edit import (
    add_onbuild,
    add_port,
    add_volume,
    env_map,
    healthcheck_config,
    set_env,
    set_label,
)
from pypod.build.containerfile import Instruction, parse_duration
from pypod.errors import InvalidArgument

__all__ = [
    "DEFAULT_SHELL",
    "LAYER_INSTRUCTIONS",
    "apply_config",
    "command_argv",
    "created_by",
    "env_map",
    "healthcheck",
    "run_argv",
    "set_env",
    "shell_of",
    "workdir_path",
]

DEFAULT_SHELL = ("/bin/sh", "-c")
#: the instructions that change the file system (the others only change the config)
LAYER_INSTRUCTIONS = frozenset({"RUN", "COPY", "ADD"})


def created_by(
    ins: Instruction, *, run_args: str = "", arg_keys: str = "", content: str = ""
) -> str:
    """The history entry's `created_by` for `ins` (see the module docstring).

    `run_args`: `ArgScope.history_text` at a RUN; `arg_keys`: `ArgScope.keys_text` after an
    ARG; `content`: the content digest `Builder.copy` returned for COPY/ADD."""
    command = ins.command
    if command == "RUN":
        text = ins.original[4:]
        if run_args:
            return f"|{len(run_args.split(' '))} {run_args} /bin/sh -c {text}"
        return f"/bin/sh -c {text}"
    if command in ("COPY", "ADD"):
        dest = ins.args[-1] if ins.args else ""
        return f"/bin/sh -c #(nop) {command} {content} in {dest} "
    if command == "ARG":
        return f"/bin/sh -c #(nop) ARG {arg_keys}"
    return f"/bin/sh -c #(nop) {ins.original}"


def shell_of(config: Mapping[str, Any]) -> list[str]:
    shell = config.get("Shell")
    return list(shell) if shell else list(DEFAULT_SHELL)


def command_argv(ins: Instruction, config: Mapping[str, Any], args: Sequence[str]) -> list[str]:
    """CMD / ENTRYPOINT / RUN / HEALTHCHECK CMD: exec form as given, shell form under SHELL."""
    if ins.json:
        return list(args)
    return [*shell_of(config), *args]


def run_argv(ins: Instruction, config: Mapping[str, Any]) -> list[str]:
    """RUN's command: exec form as is; shell form under SHELL.  With heredocs, `RUN <<EOF`
    alone runs the document as the shell's script; otherwise the line and its documents go
    to the shell together (the shell reads the here-documents itself), as BuildKit does."""
    if ins.json:
        return list(ins.args)
    text = ins.args[0] if ins.args else ""
    if ins.heredocs:
        words = text.split()
        if len(ins.heredocs) == 1 and len(words) == 1 and words[0].lstrip("0123456789")[:2] == "<<":
            return [*shell_of(config), ins.heredocs[0].content]
        script = text + "\n" + "".join(f"{doc.content}{doc.name}\n" for doc in ins.heredocs)
        return [*shell_of(config), script]
    return [*shell_of(config), text]


def heredoc_files(ins: Instruction) -> list[tuple[str, str]]:
    """COPY/ADD `<<NAME dest`: (name, content) of each document (its file name is NAME)."""
    return [(doc.name, doc.content) for doc in ins.heredocs]


def healthcheck(ins: Instruction) -> dict[str, Any]:
    """HEALTHCHECK's config value (Docker's `Healthcheck`: Test, Interval, Timeout, ...)."""
    kind = ins.args[0].upper()
    if kind == "NONE":
        return healthcheck_config(["NONE"])
    test = ["CMD", *ins.args[1:]] if ins.json else ["CMD-SHELL", ins.args[1]]
    durations: dict[str, int | None] = {}
    for flag in ("interval", "timeout", "start-period"):
        value = ins.flag_value(flag)
        try:
            durations[flag] = parse_duration(value, flag) if value else None
        except ValueError as e:
            raise ins.error(str(e)) from None
    retries = ins.flag_value("retries")
    return healthcheck_config(
        test,
        interval=durations["interval"],
        timeout=durations["timeout"],
        start_period=durations["start-period"],
        retries=int(retries) if retries else None,
    )


def _check_signal(value: str, ins: Instruction) -> None:
    import signal

    name = value.upper().removeprefix("SIG")
    if value.isdigit() and 0 < int(value) < 65:
        return
    if name.startswith("RTMIN") or name.startswith("RTMAX") or hasattr(signal, "SIG" + name):
        return
    raise ins.error(f'invalid signal: "{value}": use a name like SIGTERM or a number')


def apply_config(
    ins: Instruction, config: dict[str, Any], args: Sequence[str], *, cmd_set: bool
) -> bool:
    """Apply a config-only instruction (`args` expanded); the new `cmd_set` (CMD given in
    this stage: ENTRYPOINT then keeps it, otherwise ENTRYPOINT clears an inherited CMD)."""
    command = ins.command
    if command == "ENV":
        for key, value in zip(args[0::2], args[1::2], strict=True):
            set_env(config, key, value)
    elif command == "LABEL":
        for key, value in zip(args[0::2], args[1::2], strict=True):
            set_label(config, key, value)
    elif command == "EXPOSE":
        for port in args:
            try:
                add_port(config, port)
            except InvalidArgument as e:
                raise ins.error(str(e)) from None
    elif command == "VOLUME":
        for volume in args:
            if not volume.strip():
                raise ins.error("VOLUME specified can not be an empty string")
            add_volume(config, volume)
    elif command == "WORKDIR":
        config["WorkingDir"] = workdir_path(config.get("WorkingDir") or "", args[0])
    elif command == "USER":
        config["User"] = args[0]
    elif command == "CMD":
        config["Cmd"] = command_argv(ins, config, args)
        return True
    elif command == "ENTRYPOINT":
        config["Entrypoint"] = command_argv(ins, config, args) if args else None
        if not cmd_set:
            config["Cmd"] = None
    elif command == "SHELL":
        config["Shell"] = list(args)
    elif command == "STOPSIGNAL":
        _check_signal(args[0], ins)
        config["StopSignal"] = args[0]
    elif command == "HEALTHCHECK":
        config["Healthcheck"] = healthcheck(ins)
    elif command == "ONBUILD":
        add_onbuild(config, args[0])
    else:
        raise InvalidArgument(f"{command} does not change the image config")
    return cmd_set


def workdir_path(current: str, value: str) -> str:
    """WORKDIR `value` (relative to the current one), cleaned."""
    import posixpath

    path = value if value.startswith("/") else posixpath.join(current or "/", value)
    cleaned = posixpath.normpath(path)
    return "/" if cleaned == "//" else cleaned
