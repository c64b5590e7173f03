"""The resource flags of `pypod run`/`create`: memory, CPUs, pids, /dev/shm, ulimits, OOM score.

Sizes, numbers and their relations are checked as podman 4.3 checks them, with its messages.
"""

from __future__ import annotations

import os

from pypod.cli.engine.run_values import (
    is_digits,
    parse_float,
    parse_int,
    parse_size,
    parse_uint,
    parse_ulimit,
)
from pypod.engine.config import ContainerConfig, Resources
from pypod.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["oom_score_adj", "resources", "shm_size", "ulimits"]

_MIN_MEMORY = 6 * 1024 * 1024
_DEFAULT_SHM = ContainerConfig(image="", image_id="").shm_size


def ulimits(texts: list[str]) -> tuple[str, ...]:
    """Each as "name=soft:hard" (numbers; -1 for unlimited), the last one of a name winning."""
    by_name: dict[str, str] = {}
    for text in texts:
        name, soft, hard = parse_ulimit(text)
        by_name[name] = f"{name}={soft}:{hard}"
    return tuple(by_name.values())


def shm_size(text: str | None) -> int:
    default = _DEFAULT_SHM
    if text is None:
        return default
    try:
        size = parse_size(text)
    except InvalidArgument as e:
        raise InvalidArgument(f"unable to translate --shm-size: {e}") from None
    return size if size > 0 else default


def oom_score_adj(text: str | None) -> int | None:
    if text is None:
        return None
    value = parse_int(text, "--oom-score-adj")
    if not -1000 <= value <= 1000:
        raise InvalidArgument(
            f"oom_score_adj must be between -1000 and 1000, not {value}: invalid argument"
        )
    return value


def _memory(text: str | None, *, swap: bool = False) -> int | None:
    if text is None or text == "":
        return None
    if swap and text == "-1":
        return -1
    try:
        return parse_size(text)
    except InvalidArgument as e:
        raise InvalidArgument(f"invalid value for memory: {e}") from None


def resources(text: Callable[[str], str | None]) -> Resources:
    """`-m`, `--memory-swap`, `--memory-reservation`, `--cpus`, `-c`, `--cpuset-cpus`,
    `--pids-limit` (their values by flag name from `text`), checked together as podman does."""
    memory = _memory(text("memory")) or None
    swap = _memory(text("memory-swap"), swap=True) or None
    reservation = _memory(text("memory-reservation")) or None
    if memory is not None and memory < _MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if swap is not None:
        if memory is None:
            raise InvalidArgument(
                "you should always set a memory limit when using a memoryswap limit, see usage"
            )
        if swap != -1 and swap < memory:
            raise InvalidArgument(
                "minimum memoryswap limit should be larger than memory limit, see usage"
            )
    if memory is not None and reservation is not None and memory < reservation:
        raise InvalidArgument(
            "minimum memory limit cannot be less than memory reservation limit, see usage"
        )
    cpus: float | None = None
    if text("cpus") is not None:
        cpus = parse_float(text("cpus") or "", "--cpus")
        if cpus < 0:
            raise InvalidArgument(f"--cpus {text('cpus')}: the number of CPUs cannot be negative")
        if 0 < cpus * 100000 < 1000:
            raise InvalidArgument("CPU cfs quota cannot be less than 1ms (i.e. 1000)")
        cpus = cpus or None
    shares = text("cpu-shares")
    pids = text("pids-limit")
    return Resources(
        memory=memory,
        memory_swap=swap,
        memory_reservation=reservation,
        cpus=cpus,
        cpu_shares=(parse_uint(shares, "-c, --cpu-shares") or None) if shares is not None else None,
        cpuset_cpus=_cpuset(text("cpuset-cpus")),
        pids_limit=parse_int(pids, "--pids-limit") if pids is not None else None,
    )


def _cpuset(text: str | None) -> str | None:
    if not text:
        return None
    wanted: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.partition("-")  # `[0-9]+(-[0-9]+)?`
        if not is_digits(first) or dash and (not is_digits(last) or int(last) < int(first)):
            raise InvalidArgument(f"invalid value {text} for cpuset cpus")
        wanted.update(range(int(first), int(last if dash else first) + 1))
    available = sorted(os.sched_getaffinity(0))
    if not wanted <= set(available):
        raise InvalidArgument(
            f"requested CPUs are not available - requested {text}, available: "
            f"{_ranges(available)}"
        )
    return text


def _ranges(numbers: list[int]) -> str:
    """[0, 1, 2, 5] -> "0-2,5"."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
