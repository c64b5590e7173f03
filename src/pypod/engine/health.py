"""Health checks: `--health-*` or the image's HEALTHCHECK, run as exec sessions.

`pypod healthcheck run CTR` runs the check once and records it in the container's state
(`health`: status starting|healthy|unhealthy, failing streak, the last five results), as podman
does.  Podman schedules checks with systemd timers; there is no systemd here (MACHINE.md), so
the container's monitor runs `pypod healthcheck run ID` every interval instead
(`MonitorConfig.periodic_command`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from pypod.engine.config import ContainerConfig, Healthcheck
from pypod.engine.containers import Engine
from pypod.engine.state import Container
from pypod.errors import InvalidState, PypodError

#: podman keeps this many results in State.Health.Log
MAX_LOG = 5
#: and this much of each result's output
MAX_OUTPUT = 4096


def effective(cfg: ContainerConfig, image_config: Mapping[str, Any]) -> Healthcheck | None:
    """The container's check: its own flags, else the image's HEALTHCHECK (None: no check)."""
    if cfg.healthcheck is not None:
        return None if cfg.healthcheck.test[:1] == ("NONE",) else cfg.healthcheck
    image = image_config.get("Healthcheck")
    if not isinstance(image, Mapping):
        return None
    test = tuple(str(x) for x in image.get("Test") or ())
    if not test or test[0] == "NONE":
        return None

    def seconds(key: str, default: float) -> float:
        value = image.get(key)
        return float(value) / 1e9 if isinstance(value, int) and value > 0 else default

    retries = image.get("Retries")
    return Healthcheck(
        test=test,
        interval=seconds("Interval", 30.0),
        timeout=seconds("Timeout", 30.0),
        start_period=seconds("StartPeriod", 0.0),
        retries=retries if isinstance(retries, int) and retries > 0 else 3,
    )


def command(check: Healthcheck) -> tuple[str, ...]:
    kind, rest = check.test[0], check.test[1:]
    if kind == "CMD-SHELL":
        return ("/bin/sh", "-c", " ".join(rest))
    if kind == "CMD":
        return rest
    return check.test  # a bare command line, as `--health-cmd '["prog", "arg"]'` gives


def _go_time(t: float) -> str:
    from pypod.engine.inspect import go_time

    return go_time(t)


def run_check(eng: Engine, c: Container) -> tuple[str, int]:
    """Run the check once and record it: the resulting status ("healthy", "unhealthy",
    "starting") and the check's exit code."""
    from pypod.engine.exec import ExecOptions, run_exec

    check = c.state.get("healthcheck")
    if not check:
        raise InvalidState(f"container {c.name} has no defined healthcheck")
    if c.status != "running":
        raise InvalidState(f"container {c.name} is not running")
    hc = Healthcheck(**{**check, "test": tuple(check["test"])})
    started = time.time()
    import tempfile  # here: `run` imports this module, health checks are rarer

    with tempfile.TemporaryFile() as out:
        try:
            result = run_exec(eng, c, ExecOptions(command=command(hc), output_fd=out.fileno(),
                                                  timeout=hc.timeout))  # fmt: skip
            code = result.exit_code
        except PypodError as e:
            out.write(str(e).encode())
            code = e.engine_exit_code
        out.seek(0)
        output = out.read(MAX_OUTPUT).decode(errors="replace")
    ended = time.time()
    with eng.locked(c.id), eng.db.transaction():
        current = eng.lookup(c.id)
        health = dict(current.state.get("health") or {"status": "starting", "failing_streak": 0})
        log = list(health.get("log") or [])
        log.append({"Start": _go_time(started), "End": _go_time(ended), "ExitCode": code,
                    "Output": output})  # fmt: skip
        health["log"] = log[-MAX_LOG:]
        in_start_period = started - float(current.state.get("started_at", started)) < (
            hc.start_period
        )
        if code == 0:
            health["status"] = "healthy"
            health["failing_streak"] = 0
        elif not in_start_period:
            health["failing_streak"] = int(health.get("failing_streak", 0)) + 1
            if health["failing_streak"] >= hc.retries:
                health["status"] = "unhealthy"
        current.state["health"] = health
        eng.save_state(current)
        eng.event("container", "health_status", c.id, c.name,
                  {"image": c.config.image, "health_status": health["status"]})  # fmt: skip
    return str(health["status"]), code


def as_state(check: Healthcheck) -> dict[str, Any]:
    """How a check is kept in the container's state (set when the container is started)."""
    return {"test": list(check.test), "interval": check.interval, "timeout": check.timeout,
            "start_period": check.start_period, "retries": check.retries}  # fmt: skip
