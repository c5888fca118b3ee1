"""The gateway's MQTT client: aiomqtt's, with an optional persistent session, without the
"Future exception was never retrieved (MqttCodeError)" that aiomqtt leaves after a lost
connection, and with fewer system calls per packet (`BatchedIO`)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from typing import Any, Self

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
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
    """

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


class MqttClient(BatchedIO):
    """aiomqtt.Client that never leaves the reason of an unexpected disconnect unretrieved.

    aiomqtt stores that reason in a future that only its message iterator (or a pending
    disconnect in `__aexit__`) reads. A client that was not reading at that moment (a sibling
    task the TaskGroup cancelled when the connection dropped, a client cancelled while it
    disconnected) leaves the exception unread, and asyncio logs "Future exception was never
    retrieved (MqttCodeError)" when the client is collected. Whoever still waits on the future
    gets the exception as before; it is only marked as seen, here, when it is set.

    aiomqtt also asks a cancelled connect future for its exception when a connection that was
    abandoned while connecting goes away, which raises CancelledError inside paho's callback:
    that disconnect has no one to report an error to, but whoever waits for the disconnect (a
    pending `__aexit__`) must still be released.
    """

    def __init__(self, *args: Any, manual_ack: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if manual_ack:  # paho sends a QoS 1 message's PUBACK only when `ack` is called
            self._client.manual_ack_set(True)

    def ack(self, message: aiomqtt.Message) -> None:
        """The PUBACK of a message received with `manual_ack`, on the connection it came on (on
        another one it means nothing: a persistent session gets the message again)."""
        self._client.ack(message.mid, message.qos)

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        if _cancel_swallowed():
            await self.__aexit__(None, None, None)
            raise asyncio.CancelledError
        return self

    async def subscribe(self, *args: Any, **kwargs: Any) -> Any:
        """aiomqtt's subscribe, then the cancellation check of `_cancel_swallowed`."""
        granted = await super().subscribe(*args, **kwargs)
        if _cancel_swallowed():
            raise asyncio.CancelledError
        return granted

    def _on_disconnect(self, *args: Any, **kwargs: Any) -> None:
        if self._connected.cancelled():
            if not self._disconnected.done():
                self._disconnected.set_result(None)
            return
        super()._on_disconnect(*args, **kwargs)
        disconnected = self._disconnected
        if disconnected.done() and not disconnected.cancelled():
            disconnected.exception()


def _cancel_swallowed() -> bool:
    """Whether this task was asked to stop although the call it awaited returned.

    aiomqtt waits for CONNACK and SUBACK with asyncio.wait_for and a timeout, and Python 3.11's
    wait_for loses a cancellation that arrives just as the awaited future completes (fixed in
    3.12). The gateway's TaskGroup cancels its session watcher exactly then when the connection
    drops during a (re)connect; the watcher went on reading a dead connection and the gateway's
    shutdown waited for it forever.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def share_property_tables() -> None:
    """Make paho's MQTT v5 `Properties` objects share their lookup tables (idempotent).

    paho 2.x builds a list and two dicts (27 property names, 24 property types, 30 list.index
    calls) in every `Properties.__init__`, and it makes one for every PUBLISH and PUBACK it
    reads: about 15 us each, two or three per request on each side of the ingest bench. They are
    constants that Properties only reads, so one copy serves every instance; each instance keeps
    its own property values. Left alone if paho's Properties is not built as expected.
    """
    if getattr(Properties.__init__, "shares_tables", False):
        return
    template = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho is untyped here
    tables = {name: template.__dict__.get(name) for name in ("types", "names", "properties")}
    expected = set(template.__dict__) == {"packetType", *tables}
    if not expected or not all(isinstance(table, list | dict) for table in tables.values()):
        return

    def __init__(self: Properties, packetType: int) -> None:  # paho's parameter name
        self.__dict__.update(tables, packetType=packetType)

    __init__.shares_tables = True  # type: ignore[attr-defined]  # marks the patch as applied
    Properties.__init__ = __init__  # type: ignore[method-assign]  # paho's own __init__ rebuilds them


def session_properties(expiry_seconds: int) -> Properties:
    """CONNECT properties asking the broker to keep the session this long after a disconnect."""
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho is untyped here
    properties.SessionExpiryInterval = expiry_seconds
    return properties


def create_client(host: str, port: int, *, identifier: str, username: str | None, password: str | None,
                  logger: logging.Logger, session_expiry: int = 0, manual_ack: bool = False) -> MqttClient:
    """An MQTT v5 client (not yet connected). With `session_expiry` > 0 the session is
    persistent: clean_start is off and the broker keeps the subscriptions and queues QoS 1
    messages for that many seconds while the client is away. With `manual_ack` a QoS 1 message
    is acknowledged only by `MqttClient.ack` (unacknowledged ones come again to a persistent
    session that reconnects)."""
    share_property_tables()
    persistent: dict[str, Any] = {}
    if session_expiry > 0:
        persistent = {"clean_start": False, "properties": session_properties(session_expiry)}
    return MqttClient(host, port, identifier=identifier, username=username, password=password,
                      protocol=aiomqtt.ProtocolVersion.V5, max_queued_outgoing_messages=None,
                      logger=logger, manual_ack=manual_ack, **persistent)
