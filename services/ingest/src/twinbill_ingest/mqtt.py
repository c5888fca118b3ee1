"""The gateway's MQTT client: aiomqtt's, with an optional persistent session, without the
"Future exception was never retrieved (MqttCodeError)" that aiomqtt leaves after a lost
connection, and with less work per packet (`twinbill_ingest.mqttio.BatchedIO`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Self

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from twinbill_ingest.mqttio import BatchedIO


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
