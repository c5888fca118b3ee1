"""Reverse control downlink: `SetMeasurepoints` from `ingest.commands` to the device's
`/sys/{pk}/{dk}/thing/service/measurepoint/set`, and the device's `set_reply` back in.

A command is acked on RabbitMQ only after Mosquitto's PUBACK of the set request (or when it is
dropped on purpose: expired, superseded), so a killed gateway loses nothing: the quorum queue
delivers it again. A command for an offline device is held (unacked) until the device is online;
after `command_hold` seconds it is published again to the tail of the queue (confirmed) and the
held copy acked, so no delivery stays unacked for long (RabbitMQ's consumer timeout).

Outcomes go to the twin the same way: a device's set_reply is acknowledged to Mosquitto (PUBACK)
only once its outcome is confirmed on RabbitMQ, so a gateway killed in between gets it again
when it comes back under the same client id (a persistent session, as the gateway's own); an
expired command is acked on RabbitMQ only once its outcome is confirmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiomqtt

from twinbill_common.bus import Bus, Delivery
from twinbill_common.errors import BusUnavailable, PermanentError
from twinbill_common.logging import get_logger
from twinbill_common.schemas import CommandOutcome, SetMeasurepoints
from twinbill_common.topology import COMMANDS, INGEST_COMMANDS
from twinbill_ingest.domain.commands import (
    SET_REPLY_FILTER,
    BadCommand,
    Pending,
    Stamp,
    device_params,
    encode_set,
    live_params,
    parse_set_reply,
    set_topic,
    stamp,
    supersedes,
)
from twinbill_ingest.metrics import IngestMetrics
from twinbill_ingest.mqtt import MqttClient
from twinbill_ingest.settings import IngestSettings
from twinbill_ingest.store import DeviceKey, RegistryCache

log = get_logger(__name__)
SENT_MEMORY = 10_000  # set requests remembered to match replies (latency, version in the log)


@dataclass
class _Waiter:
    pending: Pending
    superseded: bool = False


@dataclass
class _Sent:
    device: DeviceKey
    version: int
    instance_id: int | None = None
    identifiers: tuple[str, ...] = ()
    at: float = field(default_factory=time.perf_counter)


class CommandRelay:
    """Consumes `ingest.commands` and delivers each command to its device when it is online.

    Online: a sub-device while its combine.login holds (the cache's sessions, seen by every
    replica); a directly connected device while this replica heard from it (a post/resume or a
    set_reply) within `command_online_window` seconds.
    """

    def __init__(
        self,
        settings: IngestSettings,
        *,
        bus: Bus,
        cache: RegistryCache,
        metrics: IngestMetrics,
        client_factory: Callable[..., MqttClient],
        client_id: str,
        session_expiry: int = 0,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.cache = cache
        self.metrics = metrics
        self.client_factory = client_factory
        self.client_id = f"{client_id}-commands"
        self.session_expiry = session_expiry  # > 0: Mosquitto keeps unacknowledged replies for us
        self.ready = asyncio.Event()  # connected to Mosquitto and subscribed to set_reply
        self._client: aiomqtt.Client | None = None
        self._changed = asyncio.Event()
        self._waiters: dict[DeviceKey, list[_Waiter]] = {}
        self._delivered: dict[DeviceKey, dict[str, Stamp]] = {}  # identifier -> latest command sent
        self._locks: dict[DeviceKey, asyncio.Lock] = {}
        self._seen: dict[DeviceKey, float] = {}  # direct devices: monotonic time last heard from
        self._sent: OrderedDict[str, _Sent] = OrderedDict()
        # Outcomes (applied, refused, expired) waiting to be published to the twin, in order, each
        # with what to do once it is confirmed (acknowledge the reply, release the expired command).
        self._outcomes: asyncio.Queue[tuple[CommandOutcome, Callable[[], None]]] = asyncio.Queue()

    # -- presence -------------------------------------------------------------------------------

    def wake(self) -> None:
        """Something changed (a login, a device heard from, a command superseded): re-check."""
        self._changed.set()
        self._changed = asyncio.Event()

    def device_active(self, devices: list[DeviceKey]) -> None:
        """Devices heard from on their own topics (the gateway calls this); [] for a session change."""
        now = time.monotonic()
        for device in devices:
            self._seen[device] = now
        if any(self._waiters.get(device) for device in devices) or not devices:
            self.wake()

    def is_online(self, product_key: str, device_key: str) -> bool:
        """Whether a command for the device can be delivered now."""
        device = self.cache.device(product_key, device_key)
        if device is None:
            return False
        if device.gateway_product_key is not None:
            return self.cache.is_online(product_key, device_key)
        seen = self._seen.get((product_key, device_key))
        return seen is not None and time.monotonic() - seen <= self.settings.command_online_window

    # -- running --------------------------------------------------------------------------------

    async def run(self) -> None:
        """The MQTT connection (publish, set_reply) and the queue consumer, until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._mqtt())
            tasks.create_task(self._publish_outcomes())
            tasks.create_task(
                self.bus.consume(
                    INGEST_COMMANDS.name,
                    SetMeasurepoints,
                    self.handle,
                    prefetch=self.settings.command_prefetch,
                    exact_decimals=True,
                )
            )

    async def _mqtt(self) -> None:
        first = min(0.2, self.settings.mqtt_reconnect_max)
        delay = first
        share = self.settings.share_group
        topic_filter = f"$share/{share}/{SET_REPLY_FILTER}" if share else SET_REPLY_FILTER
        while True:
            try:
                async with self.client_factory(self.client_id, session_expiry=self.session_expiry,
                                               manual_ack=True) as client:
                    await client.subscribe(topic_filter, qos=1)
                    self._client = client
                    self.ready.set()
                    self.wake()
                    delay = first
                    async for message in client.messages:
                        payload = message.payload if isinstance(message.payload, bytes) else b""
                        self._on_reply(message.topic.value, payload, functools.partial(client.ack, message))
            except aiomqtt.MqttError as err:
                log.warning("commands: MQTT connection lost, reconnecting", error=str(err), delay=delay)
            finally:
                self._client = None
                self.ready.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.mqtt_reconnect_max)

    def _on_reply(self, topic: str, payload: bytes, ack: Callable[[], None]) -> None:
        """A device's set_reply: its outcome queued for the twin, `ack` (the PUBACK) once confirmed."""
        reply = parse_set_reply(topic, payload)
        if reply is None:  # nothing to report (counted and logged as malformed)
            ack()
            return
        self.device_active([(reply.product_key, reply.device_key)])
        sent = self._sent.pop(reply.request_id, None) if reply.request_id is not None else None
        code = str(reply.code) if reply.code is not None else "malformed"
        self.metrics.command_replies.labels(code).inc()
        if sent is not None:
            self.metrics.command_reply_latency.observe(time.perf_counter() - sent.at)
        fields: dict[str, Any] = {
            "product_key": reply.product_key,
            "device_key": reply.device_key,
            "request_id": reply.request_id,
            "code": reply.code,
            "version": sent.version if sent else None,
        }
        if reply.code == 200:
            log.info("command applied by the device", **fields)
        else:
            log.warning("command refused by the device", message=reply.message, **fields)
        self._outcomes.put_nowait((CommandOutcome(
            product_key=reply.product_key, device_key=reply.device_key, request_id=reply.request_id,
            outcome="applied" if reply.code == 200 else "refused", code=reply.code, reply_message=reply.message,
            instance_id=sent.instance_id if sent else None, version=sent.version if sent else None,
            identifiers=list(sent.identifiers) if sent else [], at=datetime.now(UTC)), ack))

    async def _confirmed(self, outcome: CommandOutcome) -> None:
        """Queue an outcome behind the others and wait for its confirm."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def release() -> None:
            if not done.done():  # not cancelled meanwhile (the consumer stopping)
                done.set_result(None)

        self._outcomes.put_nowait((outcome, release))
        await done

    async def _publish_outcomes(self) -> None:
        """Publish outcomes to the twin in order, each confirmed, then acknowledge what they came
        from; a broker that does not answer is retried (the outcome waits here, its reply or
        command unacknowledged: a process killed meanwhile gets them again)."""
        while True:
            outcome, then = await self._outcomes.get()
            pause = 0.5
            while True:
                try:
                    await self.bus.publish(COMMANDS, f"outcome.{outcome.product_key}.{outcome.device_key}", outcome)
                    break
                except BusUnavailable as err:
                    log.warning("command outcome not published, retrying", error=str(err), delay=pause)
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 30.0)
            then()

    # -- one command ----------------------------------------------------------------------------

    async def handle(self, delivery: Delivery[SetMeasurepoints]) -> None:
        """Deliver, hold, re-queue or drop one command; returning acks it (Bus.consume)."""
        command = delivery.message
        key = (command.product_key, command.device_key)
        order = stamp(command.produced_at, command.version)
        waiter = _Waiter(Pending(order, frozenset(command.values)))
        if not live_params(command.values, order=order, delivered=self._delivered.get(key, {})):
            self._outcome(command, "superseded")  # later commands already set all of it
            return
        for other in self._waiters.get(key, []):
            if supersedes(other.pending, waiter.pending):
                self._outcome(command, "superseded")
                return
            if supersedes(waiter.pending, other.pending):
                other.superseded = True
                self.wake()
        self._waiters.setdefault(key, []).append(waiter)
        self.metrics.commands_pending.inc()
        try:
            await self._until_delivered(delivery, waiter)
        finally:
            self._waiters[key].remove(waiter)
            if not self._waiters[key]:
                del self._waiters[key]
            self.metrics.commands_pending.dec()

    async def _until_delivered(self, delivery: Delivery[SetMeasurepoints], waiter: _Waiter) -> None:
        command = delivery.message
        key = (command.product_key, command.device_key)
        loop = asyncio.get_running_loop()
        hold_until = loop.time() + self.settings.command_hold
        params: dict[str, Any] | None = None
        while True:
            changed = self._changed
            if waiter.superseded:
                self._outcome(command, "superseded")
                return
            remaining = (command.expires_at - datetime.now(UTC)).total_seconds()
            if remaining <= 0:
                self._outcome(command, "expired", expires_at=command.expires_at.isoformat())
                await self._confirmed(CommandOutcome(
                    product_key=command.product_key, device_key=command.device_key,
                    request_id=command.message_id, outcome="expired", instance_id=command.instance_id,
                    version=command.version, identifiers=sorted(command.values), at=datetime.now(UTC)))
                return
            if params is None and self.cache.device(*key) is not None:
                params = self._typed(command)
            client = self._client
            if params is not None and client is not None and self.is_online(*key):
                if await self._deliver(client, command, params):
                    return
                continue  # the connection dropped mid-publish: wait for it to come back
            held = hold_until - loop.time()
            if held <= 0:
                await self._requeue(delivery)
                return
            timeout = min(remaining, held, self.settings.command_recheck)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout)

    def _typed(self, command: SetMeasurepoints) -> dict[str, Any]:
        model = self.cache.model(command.product_key)
        try:
            if model is None:
                raise BadCommand(f"product {command.product_key} has no thing model")
            return device_params(command.values, model)
        except BadCommand as err:
            self.metrics.commands.labels("invalid").inc()
            raise PermanentError(
                f"SetMeasurepoints for {command.product_key}/{command.device_key} v{command.version}: {err}"
            ) from err

    async def _deliver(self, client: aiomqtt.Client, command: SetMeasurepoints, params: dict[str, Any]) -> bool:
        """Publish the set request (QoS 1, waits for the PUBACK); False if the connection failed."""
        key = (command.product_key, command.device_key)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            delivered = self._delivered.setdefault(key, {})
            order = stamp(command.produced_at, command.version)
            live = live_params(params, order=order, delivered=delivered)
            if not live:
                self._outcome(command, "superseded")
                return True
            request_id = command.message_id
            try:
                await client.publish(set_topic(*key), encode_set(request_id, live), qos=1)
            except aiomqtt.MqttError as err:
                log.warning("command not published, will retry", device=f"{key[0]}/{key[1]}", error=str(err))
                if self._client is client:
                    self._client = None
                return False
            for identifier in live:
                delivered[identifier] = max(delivered.get(identifier, order), order)
        self._sent[request_id] = _Sent(key, command.version, command.instance_id, tuple(sorted(live)))
        while len(self._sent) > SENT_MEMORY:
            self._sent.popitem(last=False)
        self._outcome(command, "delivered", request_id=request_id, identifiers=sorted(live))
        return True

    async def _requeue(self, delivery: Delivery[SetMeasurepoints]) -> None:
        """Still offline after `command_hold`: back to the queue's tail (confirmed), then ack."""
        command = delivery.message
        await self.bus.publish_raw(
            COMMANDS,
            f"set.{command.product_key}.{command.device_key}",
            delivery.raw.body,
            message_id=command.message_id,
            headers={"type": "SetMeasurepoints"},
        )
        self._outcome(command, "requeued")

    def _outcome(self, command: SetMeasurepoints, outcome: str, **fields: Any) -> None:
        self.metrics.commands.labels(outcome).inc()
        emit = log.warning if outcome == "expired" else log.info
        emit(
            f"command {outcome}",
            product_key=command.product_key,
            device_key=command.device_key,
            instance_id=command.instance_id,
            version=command.version,
            message_id=command.message_id,
            **fields,
        )
