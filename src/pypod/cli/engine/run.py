"""`pypod run` and `pypod create` (podman 4.3's flags, output, messages and exit codes), and
the foreground attachment `start -a` shares with `run`.

A module of their own, apart from the other container commands (`containers.py`): starting
a container is what must start fast, and this is all of the CLI it loads.
"""

from __future__ import annotations

import os
import sys

from pypod.cli.engine.main import Command, Globals
from pypod.cli.engine.shared import _cmd, engine
from pypod.cli.flags import Flag, Parsed
from pypod.engine.containers import Engine
from pypod.errors import EXIT_ENGINE_ERROR, InvalidArgument, PypodError
from pypod.stdlite import contextmanager, suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from pypod.engine.config import ContainerConfig
    from pypod.engine.state import Container

__all__ = ["COMMANDS", "proxy_signals", "resolve_image", "foreground", "stored_image_name"]


def resolve_image(g: Globals, eng: Engine, name: str, extras: Any) -> str:
    from pypod.errors import ImageNotFound
    from pypod.image.lookup import find_image

    policy = getattr(extras, "pull", "missing") or "missing"
    if policy not in ("always", "missing", "never", "newer"):
        raise InvalidArgument(
            f'invalid pull policy "{policy}": use always, missing, never or newer'
        )
    if policy != "always":
        try:
            return find_image(eng.store, name).id
        except ImageNotFound:
            if policy == "never":
                raise ImageNotFound(
                    f"{name}: image not known: pull it or use --pull missing"
                ) from None
    from pypod.image import transfer
    from pypod.image.transports.containers_storage import StoreLocation
    from pypod.image.types import SystemContext

    quiet = bool(getattr(extras, "quiet", False))
    ctx = SystemContext(
        tls_verify=getattr(extras, "tls_verify", None),
        authfile=getattr(extras, "authfile", None) or os.environ.get("REGISTRY_AUTH_FILE"),
        credentials=getattr(extras, "creds", None),
        tmpdir=g.tmpdir,
        environ=dict(os.environ),
    )

    def progress(message: str) -> None:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    opts = transfer.TransferOptions(
        store=StoreLocation(graphroot=g.graphroot, runroot=g.runroot, driver=g.driver),
        ctx=ctx,
        progress=None if quiet else progress,
    )
    return transfer.pull_image(name, opts)


def stored_image_name(eng: Engine, name: str, image_id: str) -> str:
    """The image's stored name `name` designates (podman shows "localhost/busybox:latest")."""
    from pypod.image.lookup import matching_name

    image = eng.store.image(image_id)
    found = matching_name(name, image)
    if found is None and not image_id.startswith(name.removeprefix("sha256:")):
        found = image.names[0] if image.names else None
    return found or name


def _help(command: str) -> int:
    from pypod.cli.engine.run_flags import flags_for
    from pypod.cli.flags import help_text

    what = "Run a command in a new container" if command == "run" else (
        "Create but do not start a container")  # fmt: skip
    print(f"{what}\n\nUsage:\n  pypod {command} [options] IMAGE [COMMAND [ARG...]]\n\n"
          f"Options:\n{help_text(flags_for(command))}")  # fmt: skip
    return 0


def _create(g: Globals, cfg: ContainerConfig, extras: Any) -> tuple[Engine, Container, Any]:
    from pypod.record import replace

    eng = engine(g)
    image_id = resolve_image(g, eng, cfg.image, extras)
    cfg = replace(cfg, image_id=image_id, image=stored_image_name(eng, cfg.image, image_id))
    c = eng.create(cfg, replace_existing=bool(getattr(extras, "replace", False)),
                   create_command=(os.path.basename(sys.argv[0]), *sys.argv[1:]))  # fmt: skip
    cidfile = getattr(extras, "cidfile", None)
    if cidfile:
        from pypod.atomic import write_atomic

        if os.path.exists(cidfile):
            raise InvalidArgument(f"container id file exists: {cidfile}: remove it first")
        write_atomic(cidfile, c.id.encode())
    return eng, c, extras


def cmd_create(g: Globals, opts: Parsed) -> int:
    from pypod.cli.engine.run_flags import parse_run

    cfg, extras = parse_run(opts.args, command="create")
    if extras.help:
        return _help("create")
    eng, c, _ = _create(g, cfg, extras)
    print(c.id)
    return 0


def cmd_run(g: Globals, opts: Parsed) -> int:
    from pypod.cli.engine.run_flags import parse_run

    cfg, extras = parse_run(opts.args, command="run")
    if extras.help:
        return _help("run")
    eng, c, extras = _create(g, cfg, extras)
    if getattr(extras, "detach", False):
        try:
            eng.start(c.id)
        except PypodError:
            if c.config.remove:
                _remove_quietly(eng, c.id)
            raise
        print(c.id)
        return 0
    return foreground(eng, c, stdin=c.config.stdin, sig_proxy=getattr(extras, "sig_proxy", True))


def _remove_quietly(eng: Engine, cid: str) -> bool:
    """Remove the container; whether that worked (a failure is not reported: podman's)."""
    try:
        eng.remove(cid, force=True, volumes=True, timeout=0)
    except PypodError:
        return False
    return True


def foreground(eng: Engine, c: Container, *, stdin: bool, sig_proxy: bool = True) -> int:
    """Attach, start, stream until the container ends (or the user detaches); its exit code.
    With `sig_proxy`, the signals pypod gets meanwhile go to the container (podman's)."""
    from pypod.engine import attach as protocol

    conn: list[Any] = []
    proxying: list[Any] = []  # proxy_signals' context once entered: left when we return
    try:

        def attach(created: Container) -> None:
            conn.append(protocol.connect(eng.paths.rundir(created.id)))
            if created.config.remove:
                # we remove it once it exits: the monitor need not start `container cleanup`
                # too (it does if we go away first, or say nothing: see _exit_code_after)
                conn[0].claim_cleanup()
            # from now on (the process exists, it has not started): signals go to it
            proxy = proxy_signals(created if sig_proxy else None)
            proxy.__enter__()
            proxying.append(proxy)
            with eng.db.transaction():
                eng.container_event(created, "attach")

        try:
            eng.start(
                c.id, before_start=attach, console_size=_terminal_size() if c.config.tty else None
            )
        except PypodError:
            for sock in conn:
                sock.close()
            if c.config.remove:
                _remove_quietly(eng, c.id)
            raise
        detached = protocol.stream(
            conn[0], stdin=stdin, tty=c.config.tty, detach_keys=c.config.detach_keys
        )
        if detached:
            return 0
        try:
            return _exit_code_after(eng, c, conn[0])
        finally:
            conn[0].close()
    finally:
        for proxy in proxying:
            proxy.__exit__(None, None, None)


#: what podman's --sig-proxy forwards (not SIGCHLD, SIGPIPE, SIGURG, SIGWINCH, nor the ones
#: that stop or continue pypod itself)
_PROXIED = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGTERM", "SIGALRM")


@contextmanager
def proxy_signals(c: Container | None) -> Iterator[None]:
    """While attached: the signals pypod receives are sent to the container's process (None:
    nothing is proxied)."""
    from pypod.engine.state import process_alive
    from pypod.stdlite import signal

    pid = int(c.state.get("pid", 0)) if c is not None else 0
    start = int(c.state.get("pid_start", 0)) if c is not None else 0
    if pid <= 0:
        yield
        return

    def forward(sig: int, _frame: object) -> None:
        if process_alive(pid, start):
            with suppress(OSError):
                os.kill(pid, sig)

    saved = {}
    # outside the main thread (a caller's thread), signal.signal raises ValueError at once:
    # then nothing is proxied (asking `threading` first would cost its import, ~0.5 ms)
    with suppress(ValueError):
        for name in _PROXIED:
            num = getattr(signal, name)
            if signal.getsignal(num) == signal.SIG_IGN:
                continue  # ignored by whoever started us (a shell's `&`): as podman, keep it so
            saved[num] = signal.signal(num, forward)
    try:
        yield
    finally:
        for num, old in saved.items():
            signal.signal(num, old)


def _terminal_size() -> tuple[int, int] | None:
    """(rows, columns) of the terminal on our stdin, if there is one."""
    try:
        size = os.get_terminal_size(0)
    except OSError:
        return None
    return size.lines, size.columns


def _exit_code_after(eng: Engine, c: Container, conn: Any = None) -> int:
    """The exit code once the container ended, after its cleanup (`--rm`: its removal; then
    `conn`, the attach connection that claimed that cleanup, tells the monitor it is done)."""
    code = eng.wait(c.id)
    if c.config.remove:
        if _remove_quietly(eng, c.id) and conn is not None:
            conn.cleanup_done()
    else:
        eng.cleanup(c.id, remove=False)
    return code if code >= 0 else EXIT_ENGINE_ERROR


_RAW = (Flag(("help", "h")),)

COMMANDS: dict[str, Command] = {
    "run": _cmd(
        cmd_run,
        _RAW,
        "Run a command in a new container",
        "[options] IMAGE [COMMAND [ARG...]]",
        raw=True,
    ),  # fmt: skip
    "create": _cmd(
        cmd_create,
        _RAW,
        "Create but do not start a container",
        "[options] IMAGE [COMMAND [ARG...]]",
        raw=True,
    ),  # fmt: skip
}
COMMANDS["container run"] = COMMANDS["run"]
COMMANDS["container create"] = COMMANDS["create"]
