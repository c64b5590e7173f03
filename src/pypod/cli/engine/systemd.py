"""`pypod generate systemd`: podman 4.3's command (flags, output on stdout, `--files`,
`--format json`).  The units come from `pypod.engine.systemd.units`."""

from __future__ import annotations

import json
import os
import shutil
import sys

from pypod.cli.engine.main import Command, Globals
from pypod.cli.flags import Flag, Parsed
from pypod.errors import InvalidArgument


def _f(*names: str, value: bool = False, multiple: bool = False, help: str = "") -> Flag:
    return Flag(names, value, multiple, help)


def executable() -> str:
    """This program's absolute path, as the units call it (podman: os.Executable())."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "pypod"
    if os.sep in argv0:
        return os.path.abspath(argv0)
    return shutil.which(argv0) or "/usr/bin/pypod"


def _uint(opts: Parsed, name: str) -> int | None:
    text = opts.text(name)
    if text is None:
        return None
    if not text.isdigit():
        raise InvalidArgument(f'invalid argument "{text}" for "--{name}" flag: '
                              "strconv.ParseUint: parsing: invalid syntax")  # fmt: skip
    return int(text)


def cmd_generate_systemd(g: Globals, opts: Parsed) -> int:
    from pypod.engine.containers import Engine
    from pypod.engine.systemd.units import UnitOptions, generate, write_units

    if len(opts.args) != 1:
        raise InvalidArgument(f"accepts 1 arg(s), received {len(opts.args)}")
    fmt = opts.text("format")
    if fmt not in (None, "", "json"):
        raise InvalidArgument(f"unknown format {fmt!r}: only json is supported")
    stop = _uint(opts, "time")
    if stop is None:
        stop = _uint(opts, "stop-timeout")
    uopts = UnitOptions(
        executable=executable(),
        new=opts.flag("new"),
        use_name=opts.flag("name"),
        no_header=opts.flag("no-header"),
        restart_policy=opts.text("restart-policy"),
        restart_sec=_uint(opts, "restart-sec"),
        stop_timeout=stop,
        start_timeout=_uint(opts, "start-timeout"),
        container_prefix=_text(opts, "container-prefix", "container"),
        pod_prefix=_text(opts, "pod-prefix", "pod"),
        separator=_text(opts, "separator", "-"),
        env=tuple(opts.texts("env")),
        wants=tuple(opts.texts("wants")),
        after=tuple(opts.texts("after")),
        requires=tuple(opts.texts("requires")),
        template=opts.flag("template"),
    )
    eng = Engine(g.graphroot, g.runroot, driver=g.driver)
    units = generate(eng, opts.args[0], uopts)
    if opts.flag("files"):
        paths = write_units(units, os.getcwd())
        if fmt == "json":
            print(json.dumps({os.path.basename(p)[: -len(".service")]: p for p in paths},
                             indent=1))  # fmt: skip
        else:
            for p in paths:
                print(p)
        return 0
    if fmt == "json":
        print(json.dumps(dict(sorted(units.items())), indent=1))
        return 0
    sys.stdout.write("".join(units.values()))
    return 0


def _text(opts: Parsed, name: str, default: str) -> str:
    value = opts.text(name)
    return default if value is None else value


COMMANDS = {
    "generate systemd": Command(
        handler=cmd_generate_systemd,
        flags=(
            _f("after", value=True, multiple=True, help="add dependencies order to the unit"),
            _f("container-prefix", value=True, help="unit name prefix for containers"),
            _f("env", "e", value=True, multiple=True, help="set environment variables in units"),
            _f("files", "f", help="generate .service files instead of printing to stdout"),
            _f("format", value=True, help="print the created units in specified format (json)"),
            _f("name", "n", help="use container/pod names instead of IDs"),
            _f("new", help="create a new container or pod instead of starting an existing one"),
            _f("no-header", help="skip header generation"),
            _f("pod-prefix", value=True, help="unit name prefix for pods"),
            _f("requires", value=True, multiple=True, help="add requirement dependencies"),
            _f("restart-policy", value=True, help="systemd restart-policy (on-failure)"),
            _f("restart-sec", value=True, help="systemd restart-sec"),
            _f("separator", value=True, help="separator between name/id and prefix (-)"),
            _f("start-timeout", value=True, help="start timeout override"),
            _f("stop-timeout", value=True, help="stop timeout override (10)"),
            _f("time", "t", value=True, help="stop timeout override"),
            _f("template", help="make it a template file (%i and %I specifiers)"),
            _f("wants", value=True, multiple=True, help="add (weak) requirement dependencies"),
        ),
        help="Generate systemd units",
        usage="[options] {CONTAINER|POD}",
    ),
}


# --- pypod-quadlet: the systemd generator ------------------------------------------------------
QUADLET_USAGE = """\
Usage: pypod-quadlet [-dryrun] [-user] [-v] [-no-kmsg-log] NORMAL-DIR [EARLY-DIR] [LATE-DIR]

Converts the .container, .volume, .network, .pod and .kube files of /etc/containers/systemd
(with -user: ~/.config/containers/systemd; QUADLET_UNIT_DIRS overrides both) into service units
in NORMAL-DIR, as a systemd generator; -dryrun prints them instead."""


def _unit_program() -> str:
    """The pypod the units run: $PYPOD, else the one beside this program, else on PATH."""
    given = os.environ.get("PYPOD")
    if given:
        return given
    here = os.path.dirname(executable())
    beside = os.path.join(here, "pypod")
    if os.access(beside, os.X_OK):
        return beside
    return shutil.which("pypod") or "/usr/bin/pypod"


def quadlet_main(argv: list[str] | None = None) -> int:
    """`pypod-quadlet`: podman's quadlet command line (Go-style single-dash flags)."""
    from pypod.engine.systemd import quadlet

    args = list(sys.argv[1:] if argv is None else argv)
    flags: set[str] = set()
    dirs: list[str] = []
    for a in args:
        if a.startswith("-"):
            name = a.lstrip("-")
            if name in ("h", "help"):
                print(QUADLET_USAGE)
                return 0
            if name not in ("dryrun", "user", "v", "no-kmsg-log", "version"):
                sys.stderr.write(f"flag provided but not defined: {a}\n{QUADLET_USAGE}\n")
                return 2
            flags.add(name)
        else:
            dirs.append(a)
    if "version" in flags:
        import pypod

        print(f"pypod-quadlet {pypod.__version__}")
        return 0
    if "dryrun" not in flags and not dirs:
        sys.stderr.write("pypod-quadlet: missing output directory argument\n")
        return 1
    user = "user" in flags or os.path.basename(sys.argv[0] if sys.argv else "").startswith(
        "pypod-user-generator"
    )
    search = quadlet.unit_dirs(user, os.environ, os.getuid())
    if "v" in flags:
        sys.stderr.write(f"pypod-quadlet: looking for files in {', '.join(search)}\n")
    header = f"# Automatically generated by {executable()}\n#\n"
    result = quadlet.generate(search, _unit_program(), header)
    for error in result.errors:
        sys.stderr.write(f"pypod-quadlet: {error}\n")
    if "dryrun" in flags:
        for name, text in result.units.items():
            sys.stdout.write(f"---{name}---\n{text}\n")
    else:
        quadlet.write(result, dirs[0])
    return 1 if result.errors else 0
