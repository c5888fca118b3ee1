"""The MQTT side: subscribe to the EnOS request topics, decide each request, publish accepted
points to the `telemetry` exchange with publisher confirms, and only then reply 200.

Requests are pipelined: each one is handled in its own task (at most `max_inflight` at once), so
many confirms are in flight while the MQTT loop keeps reading.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable

import aiomqtt
from prometheus_client import Counter

from twinbill_common.bus import Bus
from twinbill_common.errors import BusUnavailable
from twinbill_common.logging import get_logger
from twinbill_common.topology import TELEMETRY, telemetry_key
from twinbill_ingest.domain.codes import MESSAGES, Code, Rejection
from twinbill_ingest.domain.encoding import encode_accepted, encode_reply, message_id
from twinbill_ingest.domain.fastpath import accept_plain
from twinbill_ingest.domain.requests import validate_request
from twinbill_ingest.domain.topics import Topic, parse_topic, subscriptions
from twinbill_ingest.metrics import IngestMetrics
from twinbill_ingest.mqtt import MqttClient, create_client
from twinbill_ingest.sessions import SessionHandler, StatusReporter
from twinbill_ingest.settings import IngestSettings
from twinbill_ingest.store import RegistryCache
from twinbill_ingest.twinstore import TwinStoreGate

log = get_logger(__name__)
# aiomqtt warns on every publish while more than 10 await their PUBACK: normal when replies are
# pipelined, so only its errors are logged.
MQTT_LOG = logging.getLogger("twinbill_ingest.mqtt")
MQTT_LOG.setLevel(logging.ERROR)


def now_ms() -> int:
    """The current time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


class Gateway:
    """One replica's MQTT loop; `ready` is set while it is connected and subscribed."""

    def __init__(
        self,
        settings: IngestSettings,
        *,
        bus: Bus,
        cache: RegistryCache,
        status: StatusReporter | None,
        metrics: IngestMetrics,
        store_gate: TwinStoreGate | None = None,
    ) -> None:
        self.settings = settings
        # While the twin reports that it cannot store (disk full), no new point gets a 200.
        self.store_gate = store_gate
        self.bus = bus
        self.cache = cache
        self.status = status
        self.metrics = metrics
        self.sessions = SessionHandler(cache, status, max_bytes=settings.max_payload_bytes)
        self.ready = asyncio.Event()
        self.client_id = settings.mqtt_client_id or f"twinbill-ingest-{uuid.uuid4().hex[:8]}"
        self._inflight = asyncio.Semaphore(settings.max_inflight)
        # ingest_requests_total's child per (kind, code): labels() costs more than the increment
        self._request_counters: dict[tuple[str, Code], Counter] = {}
        # Reverse control listens here: devices heard from on their own topics, [] for a session
        # change (a login may make held commands deliverable).
        self.on_presence: Callable[[list[tuple[str, str]]], None] | None = None

    def mqtt_client(self, identifier: str, *, session_expiry: int = 0, manual_ack: bool = False) -> MqttClient:
        """A new MQTT v5 client of the service user (not yet connected); see mqtt.create_client."""
        password = self.settings.mqtt_password.get_secret_value() if self.settings.mqtt_password else None
        return create_client(self.settings.mqtt_host, self.settings.mqtt_port, identifier=identifier,
                             username=self.settings.mqtt_username, password=password, logger=MQTT_LOG,
                             session_expiry=session_expiry, manual_ack=manual_ack)

    @property
    def session_expiry(self) -> int:
        """Seconds Mosquitto keeps this replica's session: only with a client id that outlives
        the process (a generated one would leave a session behind in the share group that
        Mosquitto keeps queueing requests for after each restart)."""
        return self.settings.mqtt_session_expiry if self.settings.mqtt_client_id else 0

    async def run(self) -> None:
        """Serve until cancelled, reconnecting to Mosquitto with backoff; `ready` is clear while
        disconnected. Any error other than a lost connection ends the loop (the app's readiness
        check sees the task stop)."""
        first = min(0.2, self.settings.mqtt_reconnect_max)
        delay = first
        while True:
            try:
                await self._serve_connection()
            except* aiomqtt.MqttError as group:
                # The message loop runs inside a TaskGroup, so a lost connection arrives as an
                # ExceptionGroup (from the loop, the session watcher or the connect itself).
                log.warning("MQTT connection lost", error="; ".join(str(err) for err in group.exceptions))
            finally:
                if self.ready.is_set():
                    delay = first  # it was serving: the first retry comes soon
                    self.ready.clear()
            log.info("reconnecting to Mosquitto", delay=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.mqtt_reconnect_max)

    async def _serve_connection(self) -> None:
        """One MQTT connection: subscribe, then hand each request to its own task until the
        connection ends (in-flight requests are cancelled with it; devices retry them)."""
        client = self.mqtt_client(self.client_id, session_expiry=self.session_expiry)
        async with client, asyncio.TaskGroup() as tasks:
            # One SUBSCRIBE for every filter: serving starts one round trip after the CONNACK.
            # A resumed session already has them; subscribing again is harmless and covers a
            # broker that lost the session (Mosquitto does not restore shared subscriptions
            # from its persistence file).
            await client.subscribe([(flt, 1) for flt in subscriptions(self.settings.share_group or None)])
            if self.settings.share_group:
                tasks.create_task(self._observe_sessions())
            self.ready.set()
            log.info("serving", client_id=self.client_id, share_group=self.settings.share_group)
            async for message in client.messages:
                await self._inflight.acquire()
                tasks.create_task(self._handle(client, message))

    async def _observe_sessions(self) -> None:
        """Replicas share request topics, so each also watches every session request (unshared)
        to know which sub-devices are online whichever replica answered the login."""
        async with self.mqtt_client(f"{self.client_id}-sessions") as client:
            await client.subscribe([(flt, 1) for flt in subscriptions(None) if "/ext/session/" in flt])
            async for message in client.messages:
                topic = parse_topic(message.topic.value)
                if topic is not None and topic.kind.is_session and isinstance(message.payload, bytes):
                    self._apply_session_silently(topic, message.payload)
                    self._presence([])

    def _apply_session_silently(self, topic: Topic, payload: bytes) -> None:
        status, self.sessions.status = self.sessions.status, None
        try:
            self.sessions.decide(topic, payload, now_ms=now_ms())
        finally:
            self.sessions.status = status

    async def _handle(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        try:
            await self._handle_one(client, message)
        except aiomqtt.MqttError as err:
            log.warning("reply not sent", topic=message.topic.value, error=str(err))
        except Exception:  # one bad request must never stop the gateway
            log.exception("request failed", topic=message.topic.value)
        finally:
            self._inflight.release()

    async def _handle_one(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        received_at = now_ms()
        topic = parse_topic(message.topic.value)
        if topic is None:
            return
        payload = message.payload if isinstance(message.payload, bytes) else str(message.payload or "").encode()
        qos = min(message.qos, 1)
        if topic.kind.is_session:
            request_id, code, text, data = self.sessions.decide(topic, payload, now_ms=received_at)
            self.metrics.online_devices.set(self.cache.online_count)
            self._presence([])
            await self._reply(client, topic, qos, encode_reply(request_id, code, message=text, data=data), code)
            return
        try:
            # The usual request, valid throughout, takes the fast path; validate_request decides
            # (and words) everything else.
            accepted = accept_plain(
                topic, payload, registry=self.cache, received_at=received_at,
                max_bytes=self.settings.max_payload_bytes, grants=self.cache.grants,
            ) or validate_request(
                topic, payload, registry=self.cache, received_at=received_at, max_bytes=self.settings.max_payload_bytes
            )
        except Rejection as err:
            self.metrics.points_rejected.inc(err.points)
            await self._reply(client, topic, qos, encode_reply(err.request_id, err.code, message=err.message), err.code)
            return
        request_id = accepted.envelope.request_id
        if self.store_gate is not None and (refusal := self.store_gate.refusal) is not None:
            # A 200 promises that the twin will store the points; it cannot now. The device keeps
            # them and sends them again, as after any 500 (services/ingest/README.md).
            await self._reply(client, topic, qos, encode_reply(
                request_id, Code.SERVER_ERROR,
                message=f"{MESSAGES[Code.SERVER_ERROR]}: the twin cannot store measurepoints now ({refusal})"),
                Code.SERVER_ERROR)
            return
        mid = message_id(topic, request_id, payload)
        body = encode_accepted(accepted, topic=topic, message_id=mid, received_at=received_at)
        started = time.perf_counter()
        self.metrics.inflight.inc()
        try:
            await self.bus.publish_raw(
                TELEMETRY,
                telemetry_key(topic.product_key, topic.device_key),
                body,
                message_id=mid,
                headers={"type": "MeasurementsAccepted"},
            )
        except BusUnavailable as err:
            # Not durable, so no 200: the device hears "retry later" and sends the request again.
            log.warning("publish not confirmed, no 200", topic=topic.request, error=str(err))
            await self._reply(
                client,
                topic,
                qos,
                encode_reply(
                    request_id, Code.SERVER_ERROR, message=f"{MESSAGES[Code.SERVER_ERROR]}: the broker did not confirm"
                ),
                Code.SERVER_ERROR,
            )
            return
        finally:
            self.metrics.inflight.dec()
        self.metrics.confirm_latency.observe(time.perf_counter() - started)
        self.metrics.points_accepted.inc(accepted.accepted)
        if accepted.dropped:
            self.metrics.points_rejected.inc(accepted.dropped)
        self._presence([(topic.product_key, topic.device_key)])
        if self.status is not None:
            publisher = (topic.product_key, topic.device_key)
            devices = {(point.product_key, point.device_key) for point in accepted.points}
            # the publisher is seen too: a gateway that reports only its sub-devices' points is
            # online (it showed `online: false` before issue 13)
            self.status.seen_all(devices, online=self.cache.online_among(devices) | {publisher}, at_ms=received_at)
        await self._reply(client, topic, qos, encode_reply(request_id, Code.OK), Code.OK)

    def _presence(self, devices: list[tuple[str, str]]) -> None:
        if self.on_presence is not None:
            self.on_presence(devices)

    async def _reply(self, client: aiomqtt.Client, topic: Topic, qos: int, body: bytes, code: Code) -> None:
        counter = self._request_counters.get((topic.kind.value, code))
        if counter is None:
            counter = self._request_counters[(topic.kind.value, code)] = self.metrics.requests.labels(
                topic.kind.value, str(int(code)))
        counter.inc()
        await client.publish(topic.reply, body, qos=qos)
