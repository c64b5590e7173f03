"""OCI hooks: each runs with the container's state as JSON on its stdin, with a timeout."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Sequence
from typing import Any

from pypod.errors import RuntimeError_
from pypod.log import get_logger
from pypod.oci.runtime_spec import Hook

log = get_logger(__name__)


def run_hooks(
    phase: str,
    hooks: Sequence[Hook],
    state: dict[str, Any],
    *,
    fatal: bool,
    warn: Callable[[str], None] | None = None,
) -> None:
    """Run the hooks of `phase` in order.

    A failing prestart/createRuntime/createContainer/startContainer hook aborts the operation
    (`fatal`); poststart and poststop failures go to `warn` (default: this module's logger) and
    the rest still run (runtime-spec).  A hook past its timeout is killed with every process
    it started (it runs in a session of its own).
    """
    if not hooks:
        return
    import subprocess  # only when there are hooks: keeps the common path light

    payload = json.dumps(state, separators=(",", ":")).encode()  # as runc (Go) writes it
    for i, hook in enumerate(hooks):
        argv = list(hook.args) or [hook.path]
        try:
            with subprocess.Popen(
                argv,
                executable=hook.path,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(e.split("=", 1) for e in hook.env if "=" in e),
                start_new_session=True,
            ) as proc:
                try:
                    out, err = proc.communicate(payload, timeout=hook.timeout or None)
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    proc.wait()
                    problem = f"hook ran past specified timeout of {float(hook.timeout or 0)}s"
                else:
                    if proc.returncode == 0:
                        continue
                    problem = (
                        f"exit status {proc.returncode}, stdout: {out.decode(errors='replace')}, "
                        f"stderr: {err.decode(errors='replace')}"
                    )
        except OSError as e:
            problem = f"{hook.path}: {e.strerror}"
        message = f"error running {phase} hook #{i}: {problem}"
        if fatal:
            raise RuntimeError_(message)
        if warn is not None:
            warn(message)
        else:
            log.warning("%s", message)
