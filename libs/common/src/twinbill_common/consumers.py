"""The consuming half of `twinbill_common.bus.Bus`: consumers that ack after the side effect,
retry a transient error in place, requeue an unexpected one and dead-letter (with the reason) a
permanent one, one by one or in batches. A mixin: Bus supplies the consumer channels and
dead-lettering."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustQueue
from pydantic import ValidationError

from twinbill_common.errors import BusUnavailable, PermanentError
from twinbill_common.logging import get_logger
from twinbill_common.redelivery import retry_transient, settle
from twinbill_common.schemas.base import Message

log = get_logger(__name__)
M = TypeVar("M", bound=Message)
T = TypeVar("T")  # a decoded body: a schema's Message, or what a consumer's own decoder makes
# What subscribing raises while the broker is away: aiormq's connection errors are OSErrors, and
# a robust channel or connection without its transport raises RuntimeError ("... closed").
BROKER_AWAY: tuple[type[BaseException], ...] = (TimeoutError, OSError, RuntimeError)


@dataclass
class Delivery(Generic[T]):
    """A decoded message and the broker's handle on it."""

    message: T
    raw: AbstractIncomingMessage


class Consumers:
    """Consuming loops over the queues of a connected Bus."""

    transient: tuple[type[BaseException], ...]
    retry_budget: float
    retry_first_pause: float
    retry_max_pause: float

    async def consumer_queue(self, queue: str, prefetch: int) -> AbstractRobustQueue:
        """A queue on a consumer channel of its own (Bus)."""
        raise NotImplementedError

    async def dead_letter(self, raw: AbstractIncomingMessage, *, queue: str, reason: str) -> None:
        """Move a message to `<queue>.dlq` with the reason (Bus)."""
        raise NotImplementedError

    async def release_queue(self, queue: AbstractRobustQueue) -> None:
        """Close a consumer queue's channel (Bus)."""
        raise NotImplementedError

    @staticmethod
    def _decode(schema: type[M], raw: AbstractIncomingMessage, *, exact_decimals: bool = False) -> M:
        """Decode a body; with exact_decimals, JSON numbers with a fraction become Decimal."""
        return decode_body(schema, raw.body, exact_decimals=exact_decimals)

    async def consume(
        self,
        queue: str,
        schema: type[M],
        handler: Callable[[Delivery[M]], Awaitable[None]],
        *,
        prefetch: int = 10,
        exact_decimals: bool = False,
    ) -> None:
        """Handle messages one by one (up to `prefetch` at once), forever.

        The handler's success acks. A transient failure (a store or broker not answering) is
        retried in place with backoff, so an outage stalls the consumer rather than burning the
        queue's delivery limit; past the retry budget, or on an unexpected error, the message is
        requeued (the quorum queue's delivery limit dead-letters one that never succeeds).
        PermanentError dead-letters with its reason. A broker restart does not end it (see
        `settle`).
        """
        async def on_message(raw: AbstractIncomingMessage) -> None:
            try:
                delivery = Delivery(self._decode(schema, raw, exact_decimals=exact_decimals), raw)
                await retry_transient(lambda: handler(delivery), what=queue, transient=self.transient,
                                      budget=self.retry_budget, first_pause=self.retry_first_pause,
                                  max_pause=self.retry_max_pause)
            except PermanentError as err:
                try:
                    await self.dead_letter(raw, queue=queue, reason=str(err))
                except BusUnavailable:
                    await settle(raw, ack=False, queue=queue)  # not moved: keep it on its queue
                return
            except self.transient as err:
                log.warning("still failing after the retry budget, requeued", queue=queue, error=repr(err))
                await settle(raw, ack=False, queue=queue)
                return
            except Exception:
                log.exception("handler failed, requeued", queue=queue)
                await settle(raw, ack=False, queue=queue)
                return
            await settle(raw, ack=True, queue=queue)

        await self._subscribe(queue, prefetch, on_message)
        await asyncio.Future()  # consume until cancelled

    async def consume_batches(
        self,
        queue: str,
        schema: type[M],
        handler: Callable[[list[Delivery[M]]], Awaitable[None]],
        *,
        max_batch: int = 500,
        max_wait: float = 0.05,
        exact_decimals: bool = False,
    ) -> None:
        """Handle messages of `schema` in batches of up to `max_batch`, waiting at most `max_wait`
        to fill one (see `consume_decoded_batches`)."""
        def decode(body: bytes) -> M:
            return decode_body(schema, body, exact_decimals=exact_decimals)

        await self.consume_decoded_batches(queue, decode, handler, max_batch=max_batch, max_wait=max_wait)

    async def consume_decoded_batches(
        self,
        queue: str,
        decode: Callable[[bytes], T],
        handler: Callable[[list[Delivery[T]]], Awaitable[None]],
        *,
        max_batch: int = 500,
        max_wait: float = 0.05,
    ) -> None:
        """Handle messages in batches of up to `max_batch`, waiting at most `max_wait` to fill one;
        `decode` turns a body into the handler's message or raises PermanentError.

        A batch is acked after the handler returns. If the handler raises PermanentError the batch
        is retried message by message, so one poison message is dead-lettered and the rest flow.
        A broker restart does not end it (see `settle`).
        Cancelled, it closes its channel: the broker takes back whatever it held unacked, so a
        consumer can be stopped on its own (an alarm shard handed to another replica).
        """
        inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        declared = await self._subscribe(queue, max_batch * 2, inbox.put)
        try:
            while True:
                batch = [await inbox.get()]
                deadline = asyncio.get_running_loop().time() + max_wait
                while len(batch) < max_batch:
                    timeout = deadline - asyncio.get_running_loop().time()
                    if timeout <= 0 and inbox.empty():
                        break
                    try:
                        batch.append(await asyncio.wait_for(inbox.get(), timeout=max(timeout, 0)))
                    except TimeoutError:
                        break
                await self._handle_batch(queue, decode, handler, batch)
        finally:
            await asyncio.shield(self.release_queue(declared))

    async def _subscribe(self, queue: str, prefetch: int,
                         callback: Callable[[AbstractIncomingMessage], Awaitable[Any]]) -> AbstractRobustQueue:
        """`queue` on a consumer channel of its own, `callback` consuming from it. A broker that
        goes away before or while this subscribes (a restart just after the service connected)
        is waited for: tried again after a pause (retry_first_pause, doubling up to
        retry_max_pause) rather than ending the consumer, and with it the service. Once
        subscribed, the robust channel restores the consumer after a reconnect by itself. A
        queue that does not exist (ChannelNotFoundEntity) still fails at once."""
        pause = self.retry_first_pause
        while True:
            declared: AbstractRobustQueue | None = None
            try:
                declared = await self.consumer_queue(queue, prefetch)
                await declared.consume(callback)
                return declared
            except BROKER_AWAY as err:
                if declared is not None:
                    await asyncio.shield(self.release_queue(declared))
                log.warning("consumer not subscribed: RabbitMQ did not answer, retrying", queue=queue,
                            error=repr(err), delay=pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, self.retry_max_pause)

    async def _handle_batch(
        self,
        queue: str,
        decode: Callable[[bytes], T],
        handler: Callable[[list[Delivery[T]]], Awaitable[None]],
        batch: list[AbstractIncomingMessage],
    ) -> None:
        decoded: list[Delivery[T]] = []
        for raw in batch:
            try:
                decoded.append(Delivery(decode(raw.body), raw))
            except PermanentError as err:
                try:
                    await self.dead_letter(raw, queue=queue, reason=str(err))
                except BusUnavailable:
                    await settle(raw, ack=False, queue=queue)  # not moved: keep it on its queue
        if not decoded:
            return
        try:
            await retry_transient(lambda: handler(decoded), what=queue, transient=self.transient,
                                  budget=self.retry_budget, first_pause=self.retry_first_pause,
                                  max_pause=self.retry_max_pause)
        except PermanentError as err:
            if len(decoded) == 1:
                try:
                    await self.dead_letter(decoded[0].raw, queue=queue, reason=str(err))
                except BusUnavailable:
                    await settle(decoded[0].raw, ack=False, queue=queue)
                return
            for delivery in decoded:  # isolate the poison message(s)
                await self._handle_batch(queue, decode, handler, [delivery.raw])
            return
        except Exception as err:  # noqa: BLE001  # any other failure requeues the batch: nothing is lost
            log.warning("batch failed, requeued", queue=queue, size=len(decoded), error=repr(err))
            await asyncio.sleep(0.5)
            for delivery in decoded:
                await settle(delivery.raw, ack=False, queue=queue)
            return
        await settle_batch([delivery.raw for delivery in decoded], queue=queue)


def decode_body(schema: type[M], body: bytes, *, exact_decimals: bool = False) -> M:
    """A body as `schema`, or PermanentError; with exact_decimals, JSON numbers with a fraction
    become Decimal."""
    try:
        if exact_decimals:
            return schema.model_validate(json.loads(body, parse_float=Decimal))
        return schema.model_validate_json(body)
    except (ValidationError, ValueError) as err:
        raise PermanentError(f"not a valid {schema.__name__}: {err}") from err


async def settle_batch(raws: list[AbstractIncomingMessage], *, queue: str) -> None:
    """Ack a handled batch (in delivery order) with one `multiple` ack per channel: the last
    delivery of each run of rising delivery tags.

    A batch consumer's channel is its own and it handles one batch at a time, in delivery order,
    so what its channel holds unacked up to the batch's last tag is the batch (messages
    dead-lettered on the way were acked already, which `multiple` passes over): one ack frame
    instead of one per message. A channel restored after a broker restart numbers its deliveries
    from 1 again, so a tag that does not rise starts another channel's run (the old channel's ack
    fails and the broker redelivers, see `settle`).
    """
    last: AbstractIncomingMessage | None = None
    for raw in raws:
        if last is not None and (raw.delivery_tag or 0) <= (last.delivery_tag or 0):
            await settle(last, ack=True, queue=queue, multiple=True)
        last = raw
    if last is not None:
        await settle(last, ack=True, queue=queue, multiple=True)
