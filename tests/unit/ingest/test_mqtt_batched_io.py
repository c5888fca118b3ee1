"""The MQTT client's batched I/O (twinbill_ingest.mqttio.BatchedIO): reads served from a buffer
give paho the same bytes as the socket; queued packets are joined into fewer writes without
changing the bytes, their order, or what paho does after writing a QoS 0 PUBLISH or DISCONNECT;
publish and the message iterator return and raise as aiomqtt's do."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
import pytest

from twinbill_ingest.mqttio import RECV_CHUNK, BatchedIO, _BufferedSocket, _coalesce


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


def _packet(command: int, data: bytes | bytearray, *, qos: int = 1, mid: int = 0, pos: int = 0) -> dict[str, Any]:
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
    client: Any = SimpleNamespace(_out_packet=odd)
    _coalesce(client)
    assert list(client._out_packet) == [{"packet": b"a"}, {"packet": b"b"}]


class _PahoStub:
    """What BatchedIO.publish asks of paho: publish() and its message info."""

    def __init__(self, rc: int = paho.MQTT_ERR_SUCCESS, *, published: bool = False) -> None:
        self.info = SimpleNamespace(rc=rc, mid=7, is_published=lambda: published)

    def publish(self, *args: Any, **kwargs: Any) -> Any:
        return self.info


def _offline_client(stub: _PahoStub) -> BatchedIO:
    client = BatchedIO("127.0.0.1", 1, logger=logging.getLogger("test.batched"))  # never connected
    client._client = stub  # type: ignore[assignment]  # only publish() is used
    return client


async def test_publish_returns_on_the_puback() -> None:
    client = _offline_client(_PahoStub())
    publishing = asyncio.ensure_future(client.publish("/t", b"x", qos=1))
    await asyncio.sleep(0)
    assert not publishing.done()  # waiting for its PUBACK
    client._on_publish(client._client, None, 7, None, None)  # type: ignore[arg-type]  # paho's callback
    await asyncio.wait_for(publishing, 1)
    assert client._pending_publishes == {}


async def test_publish_without_a_puback_times_out_and_forgets_the_call() -> None:
    client = _offline_client(_PahoStub())
    with pytest.raises(aiomqtt.MqttError, match="Operation timed out"):
        await client.publish("/t", b"x", qos=1, timeout=0.01)
    assert client._pending_publishes == {}


async def test_publish_that_paho_refuses_raises_its_code() -> None:
    client = _offline_client(_PahoStub(paho.MQTT_ERR_NO_CONN))
    with pytest.raises(aiomqtt.MqttCodeError):
        await client.publish("/t", b"x", qos=1)
    await _offline_client(_PahoStub(published=True)).publish("/t", b"x")  # QoS 0 already sent: returns


async def test_messages_come_in_order_then_the_lost_connection() -> None:
    """Queued messages are handed over first, also after the connection is lost; then the
    iterator raises MqttError, as aiomqtt's does."""
    client = _offline_client(_PahoStub())
    for n in range(3):
        client._queue.put_nowait(aiomqtt.Message("/t", str(n).encode(), 1, False, n, None))
    client._disconnected.set_exception(aiomqtt.MqttCodeError(7, "Unexpected disconnection"))
    got = []
    with pytest.raises(aiomqtt.MqttError, match="Disconnected during message iteration"):
        async for message in client.messages:
            got.append(message.payload)
    assert got == [b"0", b"1", b"2"]
