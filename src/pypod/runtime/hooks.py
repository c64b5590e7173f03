"""OCI hooks: each runs with the container's state as JSON on its stdin, with a timeout."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pypod.errors import RuntimeError_
from pypod.log import get_logger
from pypod.oci.runtime_spec import Hook

log = get_logger(__name__)


def run_hooks(phase: str, hooks: Sequence[Hook], state: dict[str, Any], *, fatal: bool) -> None:
    """Run the hooks of `phase` in order.

    A failing prestart/createRuntime/createContainer/startContainer hook aborts the operation
    (`fatal`); poststart and poststop failures are logged and the rest still run (runtime-spec).
    """
    if not hooks:
        return
    import subprocess  # only when there are hooks: keeps the common path light

    payload = json.dumps(state).encode()
    for i, hook in enumerate(hooks):
        argv = list(hook.args) or [hook.path]
        try:
            proc = subprocess.run(
                argv,
                executable=hook.path,
                input=payload,
                env=dict(e.split("=", 1) for e in hook.env if "=" in e),
                capture_output=True,
                timeout=hook.timeout if hook.timeout else None,
                check=False,
            )
        except subprocess.TimeoutExpired:
            problem = f"timeout after {hook.timeout} seconds"
        except OSError as e:
            problem = f"{hook.path}: {e.strerror}"
        else:
            if proc.returncode == 0:
                continue
            problem = (
                f"exit status {proc.returncode}, stdout: {proc.stdout.decode(errors='replace')}, "
                f"stderr: {proc.stderr.decode(errors='replace')}"
            )
        message = f"error running {phase} hook #{i}: {problem}"
        if fatal:
            raise RuntimeError_(message)
        log.warning("%s", message)
