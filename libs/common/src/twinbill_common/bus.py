"""RabbitMQ helpers: a robust connection, confirmed publishing, readiness by a round trip, and
(through `twinbill_common.consumers`, its consuming half) consumers that ack after the side
effect, retry a transient error in place, requeue an unexpected one and dead-letter (with the
reason) a permanent one. Consumers survive a broker restart: their queues are restored on the new
channel, and an ack or nack that finds the channel gone is left to the broker's redelivery."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn, TypeVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
    HeadersType,
)
from yarl import URL

from twinbill_common.consumers import Consumers
from twinbill_common.consumers import Delivery as Delivery  # the name callers import from the bus
from twinbill_common.errors import TRANSIENT_ERRORS, BusUnavailable
from twinbill_common.logging import get_logger
from twinbill_common.redelivery import RETRY_BUDGET_SECONDS, RETRY_MAX_PAUSE_SECONDS, settle
from twinbill_common.schemas.base import Message
from twinbill_common.topology import (
    DEAD_LETTER,
    EXCHANGES,
    WORK_QUEUES,
    WorkQueue,
    named,
    queue_arguments,
)

log = get_logger(__name__)
PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)  # AMQP delivery_mode 2: written to disk
M = TypeVar("M", bound=Message)
T = TypeVar("T")
REASON_HEADER = "x-twinbill-reason"
# Seconds between the robust connection's attempts to reach a broker that went away.
RECONNECT_INTERVAL_SECONDS = 2.0
# AMQP heartbeat (seconds) unless the URL sets `heartbeat=`: the client sends one every half of
# it and gives a silent link up after 3 x (heartbeat + 1) s (aiormq), RabbitMQ after 2 missed
# ones. AMQP's usual 60 s let a partitioned link look open for three minutes.
HEARTBEAT_SECONDS = 5
# How long readiness waits for the broker's answer to its round trip (/readyz allows 2 s a check).
PING_TIMEOUT_SECONDS = 1.5


async def connect_robust(url: str, *, connect_timeout: float | None = None, **kwargs: Any) -> aio_pika.RobustConnection:
    """aio_pika.connect_robust, except that a first connection that fails is closed before the
    error is raised: left to the garbage collector, its __del__ schedules the close on whatever
    loop runs then, or warns "coroutine ... was never awaited" outside one."""
    connection = aio_pika.RobustConnection(URL(url), **kwargs)
    try:
        await connection.connect(timeout=connect_timeout)
    except BaseException:
        with contextlib.suppress(Exception):
            await connection.close()
        raise
    return connection


class Bus(Consumers):
    """One robust connection with a confirming publish channel; consumers get channels of their own."""

    def __init__(self, url: str, *, namespace: str = "", publish_timeout: float = 10.0,
                 transient: tuple[type[BaseException], ...] = TRANSIENT_ERRORS,
                 retry_budget: float = RETRY_BUDGET_SECONDS, retry_first_pause: float = 0.5,
                 retry_max_pause: float = RETRY_MAX_PAUSE_SECONDS, heartbeat: int = HEARTBEAT_SECONDS,
                 ping_timeout: float = PING_TIMEOUT_SECONDS) -> None:
        """`transient`: the errors a handler's stores raise when they do not answer (see
        twinbill_common.postgres.TRANSIENT_ERRORS); consumers retry those in place, pausing at
        most `retry_max_pause` between tries. `heartbeat`: seconds (a `heartbeat=` in the URL wins)."""
        self.url = url
        self.heartbeat = heartbeat
        self.ping_timeout = ping_timeout
        self.retry_max_pause = retry_max_pause
        self.transient = transient
        self.namespace = namespace
        self.publish_timeout = publish_timeout
        self.retry_budget = retry_budget
        self.retry_first_pause = retry_first_pause
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._consumer_channels: list[AbstractRobustChannel] = []
        self._probe: AbstractRobustChannel | None = None
        self._probe_lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()

    async def connect(self, *, declare: bool = True) -> None:
        """Connect and declare the platform's topology; BusUnavailable if RabbitMQ does not answer.

        The first connection is not retried (the caller decides: start-up fails, an orchestrator
        restarts). Once connected, the robust connection reconnects by itself and restores its
        channels, exchanges, queues and consumers.
        """
        connection: aio_pika.RobustConnection | None = None
        try:
            connection = await connect_robust(with_heartbeat(self.url, self.heartbeat), connect_timeout=10,
                                              reconnect_interval=RECONNECT_INTERVAL_SECONDS)
            self._channel = await connection.channel(publisher_confirms=True)
        except (TimeoutError, OSError, aiormq.AMQPError) as err:
            if connection is not None:
                with contextlib.suppress(Exception):
                    await connection.close()
            raise BusUnavailable(f"RabbitMQ at {_redact(self.url)} did not answer: {err}") from err
        self._connection = connection
        if declare:
            await self.declare_topology()

    async def close(self) -> None:
        """Close every channel and the connection."""
        self._drop_probe()
        for channel in self._consumer_channels:
            with contextlib.suppress(Exception):
                await channel.close()
        if self._connection is not None:
            await self._connection.close()

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Call `callback` each time the connection is back after a loss: whatever was published
        meanwhile to a queue that went away with it (exclusive ones) was missed."""
        if self._connection is None:
            raise BusUnavailable("bus is not connected")
        self._connection.reconnect_callbacks.add(lambda *_: callback())

    async def ping(self) -> None:
        """Raise BusUnavailable unless RabbitMQ answers a round trip on this connection within
        `ping_timeout`: a passive declare of `amq.direct` (in every vhost) on the probe channel.
        The client's idea that its connection is open is not enough: across a partition it stays
        open until the heartbeat gives up."""
        connection = self._connection
        if connection is None or connection.is_closed or self.channel.is_closed:
            raise BusUnavailable("RabbitMQ connection is closed")
        await self._on_probe("a round trip", lambda underlay: underlay.exchange_declare(
            "amq.direct", passive=True))

    async def queue_depth(self, queue: str) -> int:
        """Ready messages in a queue (un-namespaced name): a passive declare on the probe channel
        (a missing queue closes that channel; the next call opens another)."""
        if self._connection is None:
            raise BusUnavailable("bus is not connected")
        declared = await self._on_probe(f"a passive declare of queue {self.name(queue)}",
                                        lambda underlay: underlay.queue_declare(self.name(queue), passive=True))
        return int(getattr(declared, "message_count", 0) or 0)

    async def _on_probe(self, what: str, call: Callable[[aiormq.abc.AbstractChannel], Awaitable[T]]) -> T:
        """`call` on the probe channel, one at a time, within `ping_timeout`.

        One channel kept for every probe and inspection, never one per call: each channel opened
        and closed leaves its close observer on the connection (aio-pika 10.2 with aiormq 7.2:
        `UnderlayChannel` adds its callback to one observer of `connection.closing` and removes
        it from another), which the billing worker's queue-depth gauges, four channels every 5 s,
        turned into 3 MiB of memory a minute in the soak. The probe is dropped after an error (it
        may hold a late answer, or the broker closed it) and opened afresh by the next call.
        """
        connection = self._connection
        if connection is None or connection.is_closed:
            raise BusUnavailable("RabbitMQ connection is closed")
        try:
            async with asyncio.timeout(self.ping_timeout), self._probe_lock:
                if self._probe is None or self._probe.is_closed:
                    self._probe = await connection.channel()
                return await call(await self._probe.get_underlay_channel())
        except (TimeoutError, aio_pika.exceptions.AMQPError, aiormq.AMQPError, OSError, RuntimeError) as err:
            self._drop_probe()
            why = f"no answer within {self.ping_timeout:g}s" if isinstance(err, TimeoutError) else repr(err)
            raise BusUnavailable(f"RabbitMQ did not answer {what}: {why}") from err
        except asyncio.CancelledError as err:
            self._drop_probe()
            _given_up(err, what)

    def _drop_probe(self) -> None:
        probe, self._probe = self._probe, None
        if probe is None:
            return

        async def close() -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(probe.close(), 5)

        task = asyncio.get_running_loop().create_task(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @property
    def channel(self) -> AbstractRobustChannel:
        """The publish channel (publisher confirms on)."""
        if self._channel is None:
            raise BusUnavailable("bus is not connected")
        return self._channel

    def name(self, name: str) -> str:
        """The namespaced broker name."""
        return named(self.namespace, name)

    async def declare_topology(self, queues: Sequence[WorkQueue] = WORK_QUEUES) -> None:
        """Declare every exchange, the dead-letter exchange, and the work queues with their DLQs."""
        channel = self.channel
        for exchange in EXCHANGES:
            self._exchanges[exchange] = await channel.declare_exchange(
                self.name(exchange), aio_pika.ExchangeType.TOPIC, durable=True
            )
        dlx = await channel.declare_exchange(
            self.name(DEAD_LETTER), aio_pika.ExchangeType.DIRECT, durable=True
        )
        self._exchanges[DEAD_LETTER] = dlx
        for queue in queues:
            await self.declare_work_queue(queue)

    async def declare_work_queue(self, queue: WorkQueue) -> None:
        """Declare one quorum work queue, its bindings and its dead-letter queue."""
        channel = self.channel
        dlq = await channel.declare_queue(
            self.name(f"{queue.name}.dlq"), durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dlq.bind(self.name(DEAD_LETTER), routing_key=self.name(queue.name))
        declared = await channel.declare_queue(
            self.name(queue.name), durable=True, arguments=queue_arguments(self.namespace, queue)
        )
        for key in queue.routing_keys:
            await declared.bind(self.name(queue.exchange), routing_key=key)

    async def exchange(self, name: str) -> AbstractExchange:
        """A declared exchange by its un-namespaced name; "" is the default exchange (routing
        key = queue name)."""
        if name == "":
            return self.channel.default_exchange
        if name not in self._exchanges:
            self._exchanges[name] = await self.channel.get_exchange(self.name(name), ensure=False)
        return self._exchanges[name]

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        message: Message,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Publish persistently and wait for RabbitMQ's confirm; raise BusUnavailable otherwise.

        `mandatory` is on, so a message no queue would take is an error rather than a silent loss.
        """
        body = message.model_dump_json().encode()
        await self.publish_raw(
            exchange, routing_key, body, message_id=message.message_id,
            headers={"type": type(message).__name__, **(headers or {})},
        )

    async def publish_raw(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        headers: HeadersType | None = None,
    ) -> None:
        """Publish bytes that are already encoded (the hot path of the ingest gateway).

        Straight to the robust channel's current aiormq channel, as aio-pika's Exchange.publish
        does, without its Message object, and without waiting for the frame to reach the socket
        (`wait=False`): aiormq otherwise holds its channel lock until the writer task has drained
        each frame, one loop turn per publish, and the broker's confirm comes after the write
        anyway. The confirm is awaited as before; a channel that closes first fails it.
        """
        properties = _properties(message_id, headers)
        try:
            # The whole publish, waiting for a reconnect included, within publish_timeout: a
            # device that gets no 200 must hear "retry later" soon, not when a node is back.
            async with asyncio.timeout(self.publish_timeout):
                target, channel = await self._publishing_channel(exchange)
                confirmation = await channel.basic_publish(  # type: ignore[call-arg]  # aiormq's Channel takes wait; its abc omits it
                    body, exchange=target, routing_key=routing_key, properties=properties,
                    mandatory=True, wait=False,
                )
        except (TimeoutError, aio_pika.exceptions.AMQPError, aiormq.AMQPError, OSError, RuntimeError) as err:
            raise BusUnavailable(f"publish to {exchange}/{routing_key} failed: {err!r}") from err
        except asyncio.CancelledError as err:
            _given_up(err, f"publish to {exchange}/{routing_key}")
        if not isinstance(confirmation, aiormq.spec.Basic.Ack):
            raise BusUnavailable(f"publish to {exchange}/{routing_key} not confirmed: {confirmation!r}")

    async def publish_many(self, exchange: str, routing_key: str, messages: Sequence[Message]) -> None:
        """Publish messages as `publish` does, all in flight at once, then wait for every confirm.

        One round of confirms instead of one per message, and the exchange, channel and timeout
        (`publish_timeout` for the whole batch) are looked up and set once. Every publish settles
        before this returns or raises: BusUnavailable names the first that was refused, returned
        (mandatory) or not confirmed, so a caller that retries republishes the whole batch
        (at-least-once, the same message ids).
        """
        if not messages:
            return
        what = f"publish to {exchange}/{routing_key}"
        try:
            async with asyncio.timeout(self.publish_timeout):
                target, channel = await self._publishing_channel(exchange)
                results = await asyncio.gather(*(
                    channel.basic_publish(  # type: ignore[call-arg]  # aiormq's Channel takes wait; its abc omits it
                        message.model_dump_json().encode(), exchange=target, routing_key=routing_key,
                        properties=_properties(message.message_id, {"type": type(message).__name__}),
                        mandatory=True, wait=False,
                    )
                    for message in messages
                ), return_exceptions=True)
        except (TimeoutError, aio_pika.exceptions.AMQPError, aiormq.AMQPError, OSError, RuntimeError) as err:
            raise BusUnavailable(f"{what} failed: {err!r}") from err
        except asyncio.CancelledError as err:
            _given_up(err, what)
        for result in results:
            if isinstance(result, asyncio.CancelledError):  # aiormq gave the connection up
                raise BusUnavailable(f"{what}: the connection to RabbitMQ was given up") from result
            if isinstance(result, BaseException):
                raise BusUnavailable(f"{what} failed: {result!r}") from result
            if not isinstance(result, aiormq.spec.Basic.Ack):
                raise BusUnavailable(f"{what} not confirmed: {result!r}")

    async def _publishing_channel(self, exchange: str) -> tuple[str, aiormq.abc.AbstractChannel]:
        """The exchange's full name and the robust channel's current aiormq channel (waiting for a
        reconnect); a closed channel raises ChannelInvalidStateError."""
        target = await self.exchange(exchange)
        if self.channel.is_closed:
            raise aiormq.exceptions.ChannelInvalidStateError(f"{self.channel!r} closed")
        return target.name, await self.channel.get_underlay_channel()

    async def open_channel(self) -> AbstractRobustChannel:
        """A channel of its own for the caller to close (inspection, basic.get)."""
        if self._connection is None:
            raise BusUnavailable("bus is not connected")
        try:
            return await self._connection.channel()
        except asyncio.CancelledError as err:
            _given_up(err, "opening a channel")

    async def dead_letter(self, raw: AbstractIncomingMessage, *, queue: str, reason: str) -> None:
        """Move a message to `<queue>.dlq` with the reason in a header, then ack the original."""
        headers = dict(raw.headers or {})
        headers[REASON_HEADER] = reason[:1000]
        await self.publish_raw(DEAD_LETTER, self.name(queue), raw.body,
                               message_id=raw.message_id or "", headers=headers)
        # Only once the dead-letter queue has confirmed the copy. If the channel is gone by now the
        # broker redelivers the original and it is dead-lettered again: a duplicate in the DLQ,
        # never a loss.
        await settle(raw, ack=True, queue=queue)
        log.warning("dead-lettered", queue=queue, message_id=raw.message_id, reason=reason)

    async def consumer_queue(self, queue: str, prefetch: int) -> aio_pika.abc.AbstractRobustQueue:
        """A queue (un-namespaced name) on a consumer channel of its own, for a consumer loop.
        Declared passively on the robust channel, so the queue and its consumers are restored
        after a reconnect; settle its deliveries with `settle`."""
        channel = await self._consumer_channel(prefetch)
        try:
            return await channel.declare_queue(self.name(queue), passive=True)
        except BaseException:
            self._consumer_channels.remove(channel)
            if not channel.is_closed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(channel.close(), 5)
            raise

    async def release_queue(self, queue: aio_pika.abc.AbstractRobustQueue) -> None:
        """Close the consumer channel of a queue from `consumer_queue`: its consumers end and the
        broker takes back what they held unacked (redelivered, marked so, to the next consumer)."""
        channel = queue.channel
        if channel in self._consumer_channels:
            self._consumer_channels.remove(channel)
        if channel.is_closed or self._connection is None or self._connection.is_closed:
            return  # closed with the connection already: nothing to send
        with contextlib.suppress(Exception):
            await asyncio.wait_for(channel.close(), 5)

    async def _consumer_channel(self, prefetch: int) -> AbstractRobustChannel:
        if self._connection is None:
            raise BusUnavailable("bus is not connected")
        channel: AbstractRobustChannel = await self._connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        self._consumer_channels.append(channel)
        return channel


def _properties(message_id: str, headers: HeadersType | None) -> aiormq.spec.Basic.Properties:
    """A persistent JSON message's AMQP properties."""
    return aiormq.spec.Basic.Properties(
        content_type="application/json",
        delivery_mode=PERSISTENT,
        message_id=message_id,
        headers=dict(headers or {}),
    )


def _given_up(err: asyncio.CancelledError, what: str) -> NoReturn:
    """Raise for a CancelledError out of a broker call: itself when this task is being cancelled;
    BusUnavailable when it is not, which is aiormq giving a connection up (a missed heartbeat
    cancels its reader and with it every call waiting on that connection)."""
    task = asyncio.current_task()
    if task is None or task.cancelling():
        raise err
    raise BusUnavailable(f"{what}: the connection to RabbitMQ was given up") from err


def with_heartbeat(url: str, heartbeat: int) -> str:
    """The URL with `heartbeat=<seconds>` unless it sets one itself."""
    parts = urlsplit(url)
    if "heartbeat" in parse_qs(parts.query):
        return url
    return urlunsplit(parts._replace(query="&".join(filter(None, (parts.query, f"heartbeat={heartbeat}")))))


def _redact(url: str) -> str:
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"

