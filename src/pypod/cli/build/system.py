"""`pypod-build info`, `version`, `unshare` (buildah 1.28)."""

from __future__ import annotations

import json
import os
import platform
from typing import Any

import pypod
from pypod.cli.build.common import open_build_store, out
from pypod.cli.build.main import Command, Globals
from pypod.cli.flags import Flag, Parsed
from pypod.errors import InvalidArgument, NotSupported


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def cmd_version(g: Globals, opts: Parsed) -> int:
    if opts.args:
        raise InvalidArgument(f'unknown command "{opts.args[0]}" for "pypod-build version"')
    info = {
        "version": pypod.__version__,
        "goVersion": f"python{platform.python_version()}",
        "imageSpec": "1.1.0-rc2",
        "runtimeSpec": "1.0.2-dev",
        "cniSpec": "",
        "libcniVersion": "",
        "imageVersion": "",
        "gitCommit": "",
        "built": "Thu Jan  1 00:00:00 1970",
        "osArch": f"linux/{_arch()}",
        "buildPlatform": f"linux/{_arch()}",
    }
    if opts.flag("json"):
        out(json.dumps(info, indent=4) + "\n")
        return 0
    out(f"Version:         {info['version']}\n"
        f"Go Version:      {info['goVersion']}\n"
        f"Image Spec:      {info['imageSpec']}\n"
        f"Runtime Spec:    {info['runtimeSpec']}\n"
        f"CNI Spec:        \n"
        f"libcni Version:  \n"
        f"image Version:   \n"
        f"Git Commit:      \n"
        f"Built:           {info['built']}\n"
        f"OS/Arch:         {info['osArch']}\n"
        f"BuildPlatform:   {info['buildPlatform']}\n")  # fmt: skip
    return 0


def _meminfo() -> dict[str, int]:
    found: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                found[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return found


def _distribution() -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        with open("/etc/os-release") as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                fields[k] = v.strip('"')
    except OSError:
        pass
    return {"distribution": fields.get("ID", ""), "version": fields.get("VERSION_ID", "")}


def _uptime() -> str:
    try:
        with open("/proc/uptime") as f:
            secs = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return ""
    h, rest = divmod(secs, 3600)
    m, s = divmod(rest, 60)
    return f"{int(h)}h {int(m)}m {s:.2f}s (Approximately {secs / 86400:.2f} days)"


def info(g: Globals) -> dict[str, Any]:
    mem = _meminfo()
    cgroup = "v2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "v1"
    with open_build_store(g) as store:
        containers = len(store.containers())
        images = len(store.images())
        driver = store.storage_paths().driver
    return {
        "host": {
            "CgroupVersion": cgroup,
            "Distribution": _distribution(),
            "MemFree": mem.get("MemFree", 0),
            "MemTotal": mem.get("MemTotal", 0),
            "OCIRuntime": "pypod",
            "SwapFree": mem.get("SwapFree", 0),
            "SwapTotal": mem.get("SwapTotal", 0),
            "arch": _arch(),
            "cpus": os.cpu_count() or 1,
            "hostname": platform.node(),
            "kernel": platform.release(),
            "os": "linux",
            "rootless": os.geteuid() != 0,
            "uptime": _uptime(),
            "variant": "",
        },
        "store": {
            "ContainerStore": {"number": containers},
            "GraphDriverName": driver,
            "GraphOptions": [o for o in os.environ.get("STORAGE_OPTS", "").split(",") if o],
            "GraphRoot": g.graphroot,
            "GraphStatus": {},
            "ImageStore": {"number": images},
            "RunRoot": g.runroot,
        },
    }


def cmd_info(g: Globals, opts: Parsed) -> int:
    doc = info(g)
    fmt = opts.text("format")
    if fmt:
        from pypod.cli.build.common import plain_struct, template_out

        # buildah's info is a map: templates name its JSON keys ({{.store.GraphRoot}})
        template_out(fmt, plain_struct(doc))
        return 0
    out(json.dumps(doc, indent=4) + "\n")
    return 0


def cmd_unshare(g: Globals, opts: Parsed) -> int:  # exec: returns only on failure
    if os.geteuid() != 0:
        raise NotSupported("'unshare' as a normal user is not supported yet")
    if opts.texts("mount"):
        raise NotSupported("'unshare --mount' is not supported yet")
    argv = opts.args or [os.environ.get("SHELL") or "/bin/sh"]
    # as root buildah runs the command as it is (no user namespace is needed)
    os.environ["BUILDAH_ISOLATION"] = os.environ.get("BUILDAH_ISOLATION", "oci")
    try:
        os.execvp(argv[0], argv)
    except FileNotFoundError:
        raise InvalidArgument(
            f'running "{" ".join(argv)}": exec: "{argv[0]}": executable file not found in $PATH'
        ) from None


def _not_supported(name: str, what: str, verb: str) -> Command:
    """A buildah command pypod-build does not have yet: listed, and saying so when used."""

    def handler(g: Globals, opts: Parsed) -> int:
        raise NotSupported(f"'{name}' ({what}) is not supported yet")

    return Command(handler=handler, flags=(), help=f"{verb} {what} (not supported yet)",
                   usage="COMMAND", storeless=True)  # fmt: skip


COMMANDS: dict[str, Command] = {
    "manifest": _not_supported("manifest", "manifest lists and image indexes", "Manipulate"),
    "source": _not_supported("source", "source containers", "Manage"),
    "version": Command(
        handler=cmd_version,
        flags=(Flag(("json",), help="output in JSON format"),),
        help="Display the Buildah version information",
        long="Shows Buildah version information.",
        usage="[flags]",
        storeless=True,
    ),
    "info": Command(
        handler=cmd_info,
        flags=(
            Flag(("debug", "D"), help="display additional debug information"),
            Flag(("format",), True, help="use `format` as a Go template to format the output"),
        ),
        help="Display Buildah system information",
        long="Display information about the host and current storage statistics.",
        usage="[flags]",
    ),
    "unshare": Command(
        handler=cmd_unshare,
        flags=(Flag(("mount", "m"), True, True, help="mount the specified containers"),),
        help="Run a command in a modified user namespace",
        long="Runs a command in a modified user namespace.",
        usage="[flags] [COMMAND [ARGS...]]",
        storeless=True,
    ),
}
