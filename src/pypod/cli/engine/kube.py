"""`pypod kube generate|play|down`, `generate kube`, `play kube`: podman 4.3's Kubernetes YAML
commands.  The work is `pypod.engine.kube`'s; this module reads files, resolves images (pulling
when missing, as `run` does) and prints podman's reports."""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from pypod.cli.engine.main import Command, Globals
from pypod.cli.flags import Flag, Parsed
from pypod.errors import InvalidArgument, NotFound, NotSupported

if TYPE_CHECKING:
    from pypod.engine.containers import Engine


def _engine(g: Globals) -> Engine:
    from pypod.engine.containers import Engine

    return Engine(g.graphroot, g.runroot, driver=g.driver)


def _read(path: str) -> list[dict[str, Any]]:
    from pypod.engine.kube.yamlio import load_all

    if path == "-":
        return load_all(sys.stdin.read(), "stdin")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise NotFound(f"open {path}: no such file or directory") from None
    except IsADirectoryError:
        raise InvalidArgument(f"{path}: is a directory: give the YAML file") from None
    return load_all(text, path)


def _one_file(opts: Parsed) -> str:
    if len(opts.args) != 1:
        raise InvalidArgument(f"accepts 1 arg(s), received {len(opts.args)}")
    return opts.args[0]


def cmd_generate(g: Globals, opts: Parsed) -> int:
    from pypod.engine.kube.generate import generate

    if not opts.args:
        raise InvalidArgument("you must provide at least one container or pod name or ID")
    text = generate(_engine(g), opts.args, service=opts.flag("service"))
    path = opts.text("filename")
    if path:
        import os

        if os.path.exists(path):
            raise InvalidArgument(f'cannot write to "{path}"; file exists')
        from pypod.atomic import write_atomic

        write_atomic(path, text.encode())
    else:
        sys.stdout.write(text)
    return 0


def build_dir_name(image: str) -> str:
    """The folder `--build` looks for an image in (podman's: the last path part, untagged)."""
    last = image.rsplit("/", 1)[-1]
    return last.split("@", 1)[0].split(":", 1)[0]


def _build_file(image: str, context: str) -> str | None:
    folder = os.path.join(context, build_dir_name(image))
    for name in ("Containerfile", "Dockerfile"):
        if os.path.isfile(os.path.join(folder, name)):
            return folder
    return None


def _resolver(g: Globals, eng: Engine, opts: Parsed) -> Any:
    from pypod.cli.engine.run import resolve_image, stored_image_name
    from pypod.image.local import image_exists

    build = opts.values.get("build")  # True, False, or None (build only what is missing)
    context = opts.text("context-dir") or os.getcwd()
    tls = opts.values.get("tls-verify")
    extras = SimpleNamespace(
        pull="missing",
        quiet=opts.flag("quiet"),
        tls_verify=None if tls is None else tls is True,
        authfile=opts.text("authfile"),
        creds=opts.text("creds"),
    )
    built: dict[str, str] = {}

    def resolve(name: str) -> tuple[str, str]:
        folder = _build_file(name, context)
        if (
            folder
            and name not in built
            and (build is True or (build is None and not image_exists(eng.store, name)))
        ):
            _build(g, name, folder)
            built[name] = folder
        image_id = resolve_image(g, eng, name, extras)
        return stored_image_name(eng, name, image_id), image_id

    return resolve


def _build(g: Globals, image: str, folder: str) -> None:
    """`pypod build -t IMAGE FOLDER`, its output on stderr (stdout is play's report)."""
    import contextlib

    from pypod.cli.engine.build import FLAGS, cmd_build
    from pypod.cli.flags import parse

    with contextlib.redirect_stdout(sys.stderr):
        cmd_build(g, parse(["-t", image, folder], FLAGS, interspersed=True))


def cmd_play(g: Globals, opts: Parsed) -> int:
    from pypod.engine.kube.play import PlayOptions, play

    path = _one_file(opts)
    for flag in ("ip", "mac-address", "userns", "seccomp-profile-root", "cert-dir"):
        if opts.values.get(flag) is not None:
            raise NotSupported(f"'kube play --{flag}' is not supported yet")
    docs = _read(path)
    eng = _engine(g)
    if opts.flag("down"):
        return _down(eng, docs)
    start = opts.values.get("start", True) is not False
    annotations = {}
    for text in opts.texts("annotation"):
        key, eq, value = text.partition("=")
        if not key or not eq:
            raise InvalidArgument(f"annotation {text!r}: use KEY=VALUE")
        annotations[key] = value
    log_driver = opts.text("log-driver") or "k8s-file"
    if log_driver not in ("k8s-file", "none"):
        raise NotSupported(f"'kube play --log-driver {log_driver}' is not supported yet")
    max_size = 0
    for text in opts.texts("log-opt"):
        key, _, value = text.partition("=")
        if key != "max-size":
            raise NotSupported(f"'kube play --log-opt {key}' is not supported yet")
        from pypod.cli.engine.run_values import parse_size

        max_size = parse_size(value)
    networks = opts.texts("network")
    if len(networks) > 1:
        raise NotSupported("'kube play' with more than one --network is not supported yet")
    options = PlayOptions(start=start, replace=opts.flag("replace"),
                          network=networks[0] if networks else "",
                          configmaps=tuple(c for t in opts.texts("configmap")
                                           for c in t.split(",") if c),
                          annotations=annotations, no_hosts=opts.flag("no-hosts"),
                          log_driver=log_driver, log_max_size=max_size)  # fmt: skip
    report = play(eng, docs, options, _resolver(g, eng, opts))
    out = []
    if report.volumes:
        out.append("Volumes:\n" + "".join(f"{v}\n" for v in report.volumes))
    for pod_id, ids in report.pods:
        word = "Container" if len(ids) == 1 else "Containers"
        out.append(f"Pod:\n{pod_id}\n{word}:\n" + "".join(f"{c}\n" for c in ids) + "\n")
    sys.stdout.write("".join(out))
    return 0


def _down(eng: Engine, docs: list[dict[str, Any]]) -> int:
    from pypod.engine.kube.play import down

    report = down(eng, docs)
    if report.stopped:
        print("Pods stopped:\n" + "\n".join(report.stopped))
    if report.removed:
        print("Pods removed:\n" + "\n".join(report.removed))
    return 0


def cmd_down(g: Globals, opts: Parsed) -> int:
    return _down(_engine(g), _read(_one_file(opts)))


_GENERATE = Command(
    handler=cmd_generate,
    flags=(
        Flag(("filename", "f"), True, help="write output to the specified path"),
        Flag(("service", "s"), help="generate YAML for a Kubernetes service object"),
    ),
    help="Generate Kubernetes YAML based on containers, pods or volumes",
    usage="[options] {CONTAINER...|POD...}",
)
_PLAY = Command(
    handler=cmd_play,
    flags=(
        Flag(("annotation",), True, True, help="add annotations to pods (key=value)"),
        Flag(("authfile",), True, help="path of the authentication file"),
        Flag(("build",), help="build all images in a YAML (given Containerfiles exist)"),
        Flag(("cert-dir",), True, help="directory with TLS certificates (not supported yet)"),
        Flag(("configmap",), True, True, help="path to a YAML file with a ConfigMap"),
        Flag(("context-dir",), True, help="path to top level of context directory"),
        Flag(("creds",), True, help="credentials (USERNAME:PASSWORD) for the registry"),
        Flag(("down",), help="stop and remove the pods the YAML file describes"),
        Flag(("ip",), True, True, help="static IP addresses (not supported yet)"),
        Flag(("log-driver",), True, help="logging driver for the containers (k8s-file)"),
        Flag(("log-opt",), True, True, help="logging driver options (max-size)"),
        Flag(("mac-address",), True, True, help="static MAC addresses (not supported yet)"),
        Flag(("network",), True, True, help="connect the pods to this network or mode"),
        Flag(("no-hosts",), help="do not create /etc/hosts within the pod's containers"),
        Flag(("quiet", "q"), help="suppress output information when pulling images"),
        Flag(("replace",), help="delete and recreate pods defined in the YAML file"),
        Flag(("seccomp-profile-root",), True, help="seccomp profiles folder (not supported yet)"),
        Flag(("start",), help="start the pods after creating them (default true)"),
        Flag(("tls-verify",), help="require HTTPS and verify certificates (default true)"),
        Flag(("userns",), True, help="user namespace to use (not supported yet)"),
    ),
    help="Play a pod or volume based on Kubernetes YAML",
    usage="[options] KUBEFILE|-",
)
_DOWN = Command(
    handler=cmd_down,
    flags=(),
    help="Remove pods based on Kubernetes YAML",
    usage="KUBEFILE|-",
)

COMMANDS: dict[str, Command] = {
    "kube generate": _GENERATE,
    "generate kube": _GENERATE,
    "kube play": _PLAY,
    "play kube": _PLAY,
    "kube down": _DOWN,
}
