"""How the programs start and end: their console scripts call `run_program(main)`, which is
`collect_less()`, then `exit_now(main())`.

While a command starts, it imports ~100 modules and creates their functions and classes: all
objects that live as long as the process, which the cyclic garbage collector, run every 700
allocations by default, walks over and over to find no garbage (~2.5 ms of `pypod run`'s
~50 ms of CPU).  `collect_less()` runs it every 100,000 allocations instead: a command rarely
reaches that many, and a long one (a pull, an attached `run`) still collects, in fewer and
longer passes.  A process forked from the command (the monitor, a container's init) gets the
usual thresholds back, since it lives on.

Once a command's work is done, the interpreter's own shutdown (finalising every module and
object, closing the SQLite connections, which checkpoints and deletes their write-ahead logs)
takes ~10 ms: more than some commands' work.  Nothing is left to do by then: the
databases are consistent after every commit (WAL; the next command reads what is in the log),
every thread the commands start is joined or a daemon, and pypod registers no `atexit`
handlers.  So the process ends at once, once what it printed is flushed.  `main(argv)`
itself returns normally, for callers in the same process (tests).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

#: allocations (less deallocations) between two collections of the youngest generation
_START_THRESHOLD = 100_000


def collect_less() -> None:
    """Run the garbage collector less often in this process (not in the processes it forks)."""
    import gc

    usual = gc.get_threshold()
    gc.set_threshold(_START_THRESHOLD, *usual[1:])
    os.register_at_fork(after_in_child=lambda: gc.set_threshold(*usual))


def exit_now(code: int) -> NoReturn:
    """End the process with `code` now, after flushing stdout and stderr."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`) or stream: nothing to keep
            pass
    os._exit(code)


def run_program(main: Callable[[], int]) -> NoReturn:
    """A program's console script: `main()` with the collector run less often, then the
    process ends at once with its exit code."""
    collect_less()
    exit_now(main())
