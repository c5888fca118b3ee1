"""How a consumer treats failures: a transient one is retried in place with backoff (it must
not count toward a queue's delivery limit), and an ack or nack lost with its channel is left to
the broker's redelivery."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aio_pika
import aiormq
from aio_pika.abc import AbstractIncomingMessage

from twinbill_common.errors import TRANSIENT_ERRORS
from twinbill_common.logging import get_logger

log = get_logger(__name__)
# How long a consumer keeps retrying a transiently failing handler before it gives the message
# back to the queue (where redeliveries count toward the delivery limit). An outage of a store
# shorter than this stalls consumption instead of dead-lettering data that was acknowledged.
RETRY_BUDGET_SECONDS = 900.0
RETRY_MAX_PAUSE_SECONDS = 30.0
# What an ack or nack raises when the channel it belongs to died with its connection.
_SETTLE_ERRORS = (aiormq.exceptions.ChannelInvalidStateError, aiormq.AMQPError,
                  aio_pika.exceptions.AMQPError, ConnectionError)


async def retry_transient(call: Callable[[], Awaitable[None]], *, what: str,
                          transient: tuple[type[BaseException], ...] = TRANSIENT_ERRORS,
                          budget: float = RETRY_BUDGET_SECONDS, first_pause: float = 0.5,
                          max_pause: float = RETRY_MAX_PAUSE_SECONDS) -> None:
    """Run `call`, retrying `transient` failures with exponential backoff for up to `budget` seconds.

    Other errors, and a transient one past the budget, propagate to the caller.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    pause = first_pause
    while True:
        try:
            await call()
            return
        except transient as err:
            if loop.time() + pause > deadline:
                raise
            log.warning("transient failure, retrying", what=what, error=repr(err), retry_in=pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, max_pause)


async def settle(raw: AbstractIncomingMessage, *, ack: bool, queue: str, multiple: bool = False) -> bool:
    """Ack (or nack with requeue) a delivery (with `multiple`, every unsettled one of its channel
    up to it); False if its channel is gone.

    A channel dies with its connection (a broker restart, a network cut). RabbitMQ then requeues
    every message that channel had not acked, and the restored consumer gets it again, so a lost
    ack or nack is not an error for the consumer: it must go on consuming, not end.
    """
    try:
        if ack:
            await raw.ack(multiple=multiple)
        else:
            await raw.nack(requeue=True, multiple=multiple)
    except _SETTLE_ERRORS as err:
        log.info("channel gone before the ack; the broker redelivers", queue=queue,
                 message_id=raw.message_id, ack=ack, error=repr(err))
        return False
    return True
