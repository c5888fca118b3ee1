"""The MQTT client's batched I/O (twinbill_ingest.mqtt.BatchedIO): reads served from a buffer
give paho the same bytes as the socket, and queued packets are joined into fewer writes without
changing the bytes, their order, or what paho does after writing a QoS 0 PUBLISH or DISCONNECT."""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import paho.mqtt.client as paho
import pytest

from twinbill_ingest.mqtt import RECV_CHUNK, _BufferedSocket, _coalesce


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    left, right = socket.socketpair()
    right.setblocking(False)
    yield left, right
    left.close()
    right.close()


def test_buffered_reads_give_the_bytes_in_order_and_say_what_is_left(
        pair: tuple[socket.socket, socket.socket]) -> None:
    """paho reads one byte at a time, then the rest: one recv of the socket serves them all."""
    left, right = pair
    data = bytes(range(256)) * 40  # 10,240 bytes
    left.sendall(data)
    buffered = _BufferedSocket(right)
    got = [buffered.recv(1), buffered.recv(1)]
    assert buffered.pending() == len(data) - 2
    while buffered.pending():
        got.append(buffered.recv(2048))
    assert b"".join(got) == data
    with pytest.raises(BlockingIOError):  # nothing buffered and nothing to read: as a socket says
        buffered.recv(1)
    assert buffered.fileno() == right.fileno()  # everything else is the socket's


def test_buffered_reads_longer_than_a_chunk_and_the_end_of_the_connection(
        pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    data = b"x" * (RECV_CHUNK * 2 + 5)
    left.sendall(data)
    left.shutdown(socket.SHUT_WR)
    buffered = _BufferedSocket(right)
    got = b""
    while len(got) < len(data):
        got += buffered.recv(len(data))
    assert got == data
    assert buffered.recv(1) == b""  # the peer closed: paho sees the connection end


def _packet(command: int, data: bytes, *, qos: int = 1, mid: int = 0, pos: int = 0) -> dict[str, Any]:
    return {"command": command, "mid": mid, "qos": qos, "pos": pos, "to_process": len(data) - pos,
            "packet": data, "info": None}


def _client(*packets: dict[str, Any]) -> Any:
    return SimpleNamespace(_out_packet=deque(packets))


def _written(queue: deque[dict[str, Any]]) -> bytes:
    return b"".join(bytes(p["packet"][p["pos"]:]) for p in queue)


def test_queued_packets_become_one_write_with_the_same_bytes() -> None:
    """PUBACKs and QoS 1 PUBLISHes (one partly written already) become one entry."""
    client = _client(
        _packet(paho.PUBLISH | 2, b"AAAAhead-of-it-written", mid=1, pos=4),
        _packet(paho.PUBACK, bytearray(b"\x40\x02\x00\x07")),
        _packet(paho.PUBLISH | 2, b"reply-bytes", mid=2),
    )
    expected = _written(client._out_packet)
    _coalesce(client)
    [merged] = client._out_packet
    assert (merged["packet"], merged["pos"], merged["to_process"]) == (expected, 0, len(expected))
    assert (merged["command"], merged["mid"], merged["qos"]) == (paho.PUBLISH | 2, 1, 1)


def test_a_qos0_publish_and_a_disconnect_keep_their_own_entry() -> None:
    """paho calls on_publish after writing a QoS 0 PUBLISH and closes after a DISCONNECT: those
    stay entries of their own, between the joined runs around them."""
    qos0 = _packet(paho.PUBLISH, b"q0", qos=0, mid=5)
    disconnect = _packet(paho.DISCONNECT, b"\xe0\x00", qos=0)
    client = _client(_packet(paho.PUBACK, b"a1"), _packet(paho.PUBACK, b"a2"), qos0,
                     _packet(paho.PUBACK, b"a3"), disconnect)
    expected = _written(client._out_packet)
    _coalesce(client)
    queue = list(client._out_packet)
    assert [p["packet"] for p in queue] == [b"a1a2", b"q0", b"a3", b"\xe0\x00"]
    assert queue[1] is qos0 and queue[3] is disconnect
    assert _written(client._out_packet) == expected


def test_an_unexpected_queue_is_left_alone() -> None:
    """Another paho's queue (not the dicts of paho 2.x) is not touched."""
    odd = deque([{"packet": b"a"}, {"packet": b"b"}])
    client = SimpleNamespace(_out_packet=odd)
    _coalesce(client)
    assert list(client._out_packet) == [{"packet": b"a"}, {"packet": b"b"}]
