"""pypod.cli.process_exit and the signal proxy of `run`: what the CLI process sets up for itself
and what it leaves to the processes it forks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import types

from pypod.cli.engine.run import proxy_signals


def test_collect_less_applies_to_the_command_and_not_to_its_forks() -> None:
    script = textwrap.dedent(
        """
        import gc, os
        from pypod.cli.process_exit import collect_less
        usual = gc.get_threshold()
        collect_less()
        print("parent", usual, gc.get_threshold())
        pid = os.fork()
        if pid == 0:
            print("child", gc.get_threshold(), flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    parent = next(line for line in out if line.startswith("parent"))
    child = next(line for line in out if line.startswith("child"))
    usual = parent.split(" ", 1)[1].split(") (")[0] + ")"
    assert "(100000, 10, 10)" in parent
    assert child == f"child {usual}"


def _container(pid: int) -> types.SimpleNamespace:
    return types.SimpleNamespace(state={"pid": pid, "pid_start": 0})


def test_signals_are_proxied_from_the_main_thread_and_restored() -> None:
    before = signal.getsignal(signal.SIGUSR1)
    with proxy_signals(_container(os.getpid())):  # type: ignore[arg-type]
        handler = signal.getsignal(signal.SIGUSR1)
        assert callable(handler) and handler is not before
    assert signal.getsignal(signal.SIGUSR1) is before


def test_outside_the_main_thread_nothing_is_proxied() -> None:
    seen: list[object] = []

    def attach() -> None:
        try:
            with proxy_signals(_container(os.getpid())):  # type: ignore[arg-type]
                seen.append(signal.getsignal(signal.SIGUSR1))
        except BaseException as e:
            seen.append(e)

    before = signal.getsignal(signal.SIGUSR1)
    t = threading.Thread(target=attach)
    t.start()
    t.join()
    assert seen == [before]
    assert signal.getsignal(signal.SIGUSR1) is before
