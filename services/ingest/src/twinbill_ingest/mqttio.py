"""Cheaper MQTT I/O for aiomqtt's client (`BatchedIO`): the ingest gateway's clients and the
bench's simulated gateways read and write each connection in fewer system calls, and hand each
message over with less asyncio machinery. What goes over the wire, and when a call returns or
raises, stays aiomqtt's and paho's."""

from __future__ import annotations

import asyncio
import math
import socket
from collections import deque
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from aiomqtt.client import MessagesIterator
from aiomqtt.types import PayloadType
from paho.mqtt.properties import Properties

# Bytes taken from the kernel per read: a 100-point request is about 8 KiB.
RECV_CHUNK = 65536


class BatchedIO(aiomqtt.Client):
    """aiomqtt.Client that reads and writes the connection in fewer system calls; the bytes on
    the wire and the order of packets are the same.

    paho reads each packet with at least three `recv` calls (the command byte, each byte of the
    remaining length, then the rest) and writes each queued packet with its own `send`; aiomqtt
    has it write from a writer callback that it registers from any thread with
    `call_soon_threadsafe` (a wake-up of the loop) and removes again once the queue is empty:
    for a request and its reply that is about a dozen system calls on each side of the ingest
    bench, a good part of the gateway's and the simulator's CPU (services/ingest/README.md,
    "Where the time goes"). Here:

    - reads come from a buffer filled by one `recv` of up to RECV_CHUNK bytes (`_BufferedSocket`,
      which tells aiomqtt's reader through `pending()` that buffered packets are left);
    - a packet queued on the event loop's own thread is written by a callback scheduled with
      `call_soon`, once per loop turn, and the packets queued meanwhile go out in one `send`
      (`_coalesce`); only when the socket takes less than all of it does a writer callback wait
      for it to drain, as aiomqtt's does. A packet queued from another thread (paho's CONNECT,
      from aiomqtt's executor) takes aiomqtt's own path.

    And per message, without a task of its own (aiomqtt makes one for each, and an
    `asyncio.wait` around it):

    - `messages` hands over a message that is already queued at once (`_QueuedFirst`);
    - `publish` waits for a QoS 1 message's PUBACK within a timeout scope, not in a task
      under `wait_for`, and finds a clash of message ids without listing every pending call.
    """

    @property
    def messages(self) -> MessagesIterator:
        """aiomqtt's message iterator: the messages in the order received, then an MqttError
        once the connection is lost and none is left."""
        return _QueuedFirst(self)

    async def publish(
        self, /, topic: str, payload: PayloadType = None, qos: int = 0, retain: bool = False,
        properties: Properties | None = None, *args: Any,
        timeout: float | None = None,  # noqa: ASYNC109  # aiomqtt's parameter, kept for its callers
        **kwargs: Any,
    ) -> None:
        """aiomqtt's publish: returns once the message is sent (QoS 0) or acknowledged (QoS 1:
        its PUBACK), raises MqttCodeError if paho cannot send it and MqttError("Operation timed
        out") after `timeout` (the client's by default)."""
        if self._outgoing_calls_sem is not None:  # a limit on concurrent calls: aiomqtt's own
            await super().publish(topic, payload, qos, retain, properties, *args, timeout=timeout, **kwargs)
            return
        info = self._client.publish(topic, payload, qos, retain, properties, *args, **kwargs)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            if self._disconnected.done() and self._disconnected.exception():
                raise aiomqtt.MqttCodeError(info.rc, "Could not publish message") from self._disconnected.exception()
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        if info.is_published():
            return
        mid, pending = info.mid, self._pending_publishes
        if mid in pending or mid in self._pending_subscribes or mid in self._pending_unsubscribes:
            raise RuntimeError(f'There already exists a pending call for message ID "{mid}"')
        confirmation = pending[mid] = asyncio.Event()  # set by aiomqtt's on_publish
        try:
            calls = len(pending) + len(self._pending_subscribes) + len(self._pending_unsubscribes)
            if calls > self.pending_calls_threshold:
                self._logger.warning("There are %d pending publish calls.", calls)
            limit = self.timeout if timeout is None else timeout
            try:
                async with asyncio.timeout(None if limit == math.inf else limit):
                    await confirmation.wait()
            except TimeoutError:
                raise aiomqtt.MqttError("Operation timed out") from None
        finally:
            pending.pop(mid, None)

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        super()._on_socket_open(client, userdata, sock)
        if type(sock) is socket.socket:  # a TLS socket buffers by itself (and has its own pending())
            client._sock = _BufferedSocket(sock)  # paho reads and writes through client._sock

    def _on_socket_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:  # paho's connect, in aiomqtt's executor thread
            on_loop = False
        if on_loop:
            self._loop.call_soon(self._write_queued, client)
        else:
            super()._on_socket_register_write(client, userdata, sock)

    def _write_queued(self, client: paho.Client) -> None:
        """Write what paho queued since the last turn; wait for the socket only if it is full."""
        if not self._write_now(client):
            return
        sock = client.socket()
        if client.want_write() and sock is not None and sock.fileno() >= 0:
            # paho keeps the rest queued (and its write registered): drain it when writable
            self._loop.add_writer(sock.fileno(), self._write_now, client)

    def _write_now(self, client: paho.Client) -> bool:
        """paho's loop_write over the coalesced queue; False once the connection failed (the
        failure goes where aiomqtt's writer callback puts it)."""
        _coalesce(client)
        try:
            client.loop_write()
        except Exception as exc:  # noqa: BLE001  # as aiomqtt's writer callback: any error ends the connection
            if not self._disconnected.done():
                self._disconnected.set_exception(exc)
            return False
        return True


class _QueuedFirst(MessagesIterator):
    """aiomqtt's iterator, with a fast path: a message already in the queue is returned at once
    (aiomqtt returns it too, also after a disconnect, one loop turn and a task later)."""

    async def __anext__(self) -> aiomqtt.Message:
        queue = self._client._queue
        if not queue.empty():
            return queue.get_nowait()
        return await super().__anext__()


class _BufferedSocket:
    """paho's socket, with reads served from the last chunk `recv` returned."""

    __slots__ = ("_chunk", "_position", "_sock")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._chunk = b""
        self._position = 0

    def recv(self, bufsize: int) -> bytes:
        """Up to `bufsize` buffered bytes; a `recv` of the socket (which may raise
        BlockingIOError, or return b"" at the end) only once the buffer is empty."""
        chunk, position = self._chunk, self._position
        if position >= len(chunk):
            chunk, position = self._sock.recv(RECV_CHUNK), 0
            if len(chunk) <= bufsize:
                self._chunk, self._position = b"", 0
                return chunk
            self._chunk = chunk
        end = min(position + bufsize, len(chunk))
        self._position = end
        return chunk[position:end]

    def pending(self) -> int:
        """Bytes buffered and not read yet (aiomqtt's reader reads on while there are)."""
        return len(self._chunk) - self._position

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _coalesce(client: paho.Client) -> None:
    """Join paho's queued packets into as few as possible, so each run of them is one `send`.

    A packet after whose write paho acts (a QoS 0 PUBLISH: its on_publish; a DISCONNECT) stays
    on its own. The others need nothing but their bytes written (a QoS 1 PUBLISH is settled by
    its PUBACK), so a run of them becomes one queue entry with their bytes joined, named after
    its first packet. Left alone if paho's queue is not the deque of dicts it is in paho 2.x.
    """
    queue = getattr(client, "_out_packet", None)
    if not isinstance(queue, deque) or len(queue) < 2:
        return
    merged: deque[Any] = deque()
    run: list[dict[str, Any]] = []
    for packet in queue:
        if not isinstance(packet, dict) or not packet.keys() >= _OUT_PACKET_KEYS:
            return
        command = packet["command"] & 0xF0
        if command == paho.DISCONNECT or (command == paho.PUBLISH and packet["qos"] == 0):
            merged.extend(_joined(run))
            merged.append(packet)
            run = []
        else:
            run.append(packet)
    merged.extend(_joined(run))
    if len(merged) < len(queue):
        queue.clear()
        queue.extend(merged)


_OUT_PACKET_KEYS = frozenset(("command", "mid", "qos", "pos", "to_process", "packet", "info"))


def _joined(run: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if len(run) < 2:
        return run
    data = b"".join(memoryview(packet["packet"])[packet["pos"]:] for packet in run)
    return [{**run[0], "packet": data, "pos": 0, "to_process": len(data)}]
