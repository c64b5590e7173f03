"""How the programs end: their console scripts call `exit_now(main())`.

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
from typing import NoReturn


def exit_now(code: int) -> NoReturn:
    """End the process with `code` now, after flushing stdout and stderr."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`) or stream: nothing to keep
            pass
    os._exit(code)
