"""monitor/sync.py: the CLI <-> monitor messages on the wire (JSON objects, one datagram each)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from pypod.linux import unixsock
from pypod.monitor import sync
from pypod.monitor.sync import Msg


@pytest.fixture(name="pair")
def pair_fixture() -> Iterator[tuple[unixsock.Socket, unixsock.Socket]]:
    a, b = unixsock.seqpacket_pair()
    yield a, b
    a.close()
    b.close()


@pytest.mark.parametrize(
    ("type_", "data", "wire"),
    [
        (Msg.CREATE, {"start": True}, b'{"type": "create", "start": true}'),
        (Msg.CREATE, {}, b'{"type": "create"}'),
        (Msg.CREATED, {"pid": 12, "monitor_pid": 11}, b'{"type": "created", "pid": 12, '
         b'"monitor_pid": 11}'),
        (Msg.START, {}, b'{"type": "start"}'),
        (Msg.STARTED, {"pid": 12}, b'{"type": "started", "pid": 12}'),
        (Msg.ERROR, {"error": "NotFound", "message": "n\u00e9", "errno": None},
         b'{"type": "error", "error": "NotFound", "message": "n\\u00e9", "errno": null}'),
    ],
)  # fmt: skip
def test_wire_format(
    pair: tuple[unixsock.Socket, unixsock.Socket], type_: str, data: dict[str, object], wire: bytes
) -> None:
    a, b = pair
    sync.send(a, type_, **data)
    raw = b.recv(65536)
    assert raw == wire
    assert raw == json.dumps({"type": type_, **data}).encode()
    a.send(raw)
    msg = sync.recv(b)
    assert msg is not None
    assert msg.type == type_ and msg.type is getattr(Msg, type_.upper())
    assert msg.data == data


def test_recv_at_eof(pair: tuple[unixsock.Socket, unixsock.Socket]) -> None:
    a, b = pair
    a.close()
    assert sync.recv(b) is None


def test_unknown_type_is_refused(pair: tuple[unixsock.Socket, unixsock.Socket]) -> None:
    a, b = pair
    with pytest.raises(ValueError, match="'nope' is not a valid monitor message type"):
        sync.send(a, "nope")
    a.send(b'{"type": "nope"}')
    with pytest.raises(ValueError, match="not a valid monitor message type"):
        sync.recv(b)
    a.send(b"{not json")
    with pytest.raises(ValueError):
        sync.recv(b)


def test_msg_values() -> None:
    assert Msg.ALL == ("create", "created", "start", "started", "error")
    assert [Msg.parse(v) for v in Msg.ALL] == list(Msg.ALL)
