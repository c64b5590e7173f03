"""pypod.runtime.process.sync: the parent/init messages on the wire (plain strings, no enum);
and the signals parent.wait_foreground forwards (numbers from `_signal`, no `signal.Signals`)."""

from __future__ import annotations

import signal

import pytest

from pypod.errors import RuntimeError_
from pypod.runtime.process import parent
from pypod.runtime.process.sync import Channel, ChildError, Msg

WIRE = {
    Msg.CGROUP_JOINED: "cgroup-joined", Msg.MAP_IDS: "map-ids", Msg.IDS_MAPPED: "ids-mapped",
    Msg.SECCOMP: "seccomp", Msg.PID: "pid", Msg.RUN_HOOKS: "run-hooks",
    Msg.HOOKS_DONE: "hooks-done", Msg.CONSOLE: "console", Msg.READY: "ready",
    Msg.ERROR: "error",
}  # fmt: skip


def test_every_type_travels_as_its_wire_string() -> None:
    assert sorted(Msg.ALL) == sorted(WIRE.values()) and len(set(Msg.ALL)) == len(Msg.ALL)
    a, b = Channel.pair()
    try:
        for type_ in Msg.ALL:
            if type_ == Msg.ERROR:
                continue
            a.send(type_, n=1)
            raw = b.sock.recv(4096)
            assert raw == f'{{"type": "{WIRE[type_]}", "n": 1}}'.encode()
            a.send(type_, n=1)
            msg = b.expect(type_)
            assert msg.type == type_ and msg.data == {"n": 1}
    finally:
        a.close()
        b.close()


def test_an_unexpected_or_unknown_type_is_refused() -> None:
    a, b = Channel.pair()
    try:
        a.send(Msg.READY)
        with pytest.raises(RuntimeError_, match="sync: expected pid/map-ids, got ready"):
            b.expect(Msg.PID, Msg.MAP_IDS)
        a.sock.send(b'{"type": "bogus"}')
        with pytest.raises(ValueError, match="'bogus' is not a valid sync message type"):
            b.recv()
    finally:
        a.close()
        b.close()


def test_an_error_becomes_a_child_error_with_its_exit_code() -> None:
    a, b = Channel.pair()
    try:
        a.send(Msg.ERROR, message="exec: no such file", exit_code=127)
        with pytest.raises(ChildError, match="unable to start container process: exec") as info:
            b.expect_read(Msg.READY)
        assert info.value.exit_code == 127
    finally:
        a.close()
        b.close()


def test_the_forwarded_signals_are_the_named_ones_but_four() -> None:
    skip = (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGWINCH)
    expected = [int(s) for s in signal.Signals if s not in skip]
    assert parent._forwarded() == expected
    assert signal.SIGTERM in expected and signal.SIGRTMIN in expected
