"""Keep the registry cache fresh: each replica listens on the `registry` exchange through an
exclusive auto-delete queue of its own, and reloads the cache after product or device changes."""

from __future__ import annotations

import asyncio
import contextlib

import aio_pika
import aiormq
from aio_pika.abc import AbstractIncomingMessage

from twinbill_common.bus import connect_robust
from twinbill_common.consumers import BROKER_AWAY
from twinbill_common.logging import get_logger
from twinbill_common.topology import REGISTRY, named
from twinbill_ingest.errors import RegistryUnavailable
from twinbill_ingest.store import RegistryCache, RegistrySource

log = get_logger(__name__)
ROUTING_KEYS = ("product.*", "device.*")
# What a RabbitMQ that is away (or goes away while the listener subscribes) raises: what a
# consumer waits out, and a channel the broker closed on its way down. The listener declares what
# it uses, so no error of its own topology is hidden in it.
_AWAY: tuple[type[BaseException], ...] = (*BROKER_AWAY, aiormq.AMQPError)


class RegistryListener:
    """Reloads the cache (coalescing bursts of events) whenever products or devices change."""

    def __init__(
        self, amqp_url: str, *, namespace: str, cache: RegistryCache, source: RegistrySource, reload_delay: float = 0.5
    ) -> None:
        self.amqp_url = amqp_url
        self.namespace = namespace
        self.cache = cache
        self.source = source
        self.reload_delay = reload_delay
        self.reloads = 0
        self.subscribed = asyncio.Event()
        self.reloaded = asyncio.Event()  # set after each successful reload (tests wait on it)
        self._changed = asyncio.Event()

    async def run(self, *, max_pause: float = 30.0) -> None:
        """Listen and reload until cancelled. A RabbitMQ that does not answer, at the start or
        while the listener subscribes (once subscribed, the robust connection reconnects by
        itself), is tried again after a pause (0.5 s, doubling up to `max_pause`); changes made
        meanwhile were missed, so the cache is reloaded once the listener is subscribed again."""
        pause = 0.5
        while True:
            try:
                await self._listen()
            except _AWAY as err:
                if self.subscribed.is_set():
                    pause = 0.5
                self.subscribed.clear()
                log.warning("registry listener: RabbitMQ did not answer, retrying", error=repr(err), delay=pause)
                self._changed.set()
                await asyncio.sleep(pause)
                pause = min(pause * 2, max_pause)

    async def _listen(self) -> None:
        """One connection: subscribe, then reload after each burst of changes."""
        connection = await connect_robust(self.amqp_url)
        try:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(
                named(self.namespace, REGISTRY), aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            for key in ROUTING_KEYS:
                await queue.bind(exchange, routing_key=key)
            await queue.consume(self._on_event, no_ack=True)
            # The exclusive queue goes with a lost connection (declared again on reconnect):
            # changes made meanwhile were missed, so reload once it is back.
            connection.reconnect_callbacks.add(lambda *_: self._changed.set())
            self.subscribed.set()
            while True:
                await self._changed.wait()
                await asyncio.sleep(self.reload_delay)  # coalesce a burst of changes into one reload
                self._changed.clear()
                await self._reload()
        finally:
            with contextlib.suppress(*_AWAY):
                await connection.close()

    async def _on_event(self, message: AbstractIncomingMessage) -> None:
        log.debug("registry changed", routing_key=message.routing_key)
        self._changed.set()

    async def _reload(self) -> None:
        try:
            await self.cache.load(self.source)
        except RegistryUnavailable as err:
            log.warning("registry reload failed, retrying", error=str(err))
            self._changed.set()
            return
        self.reloads += 1
        self.reloaded.set()
        log.info("registry reloaded", reloads=self.reloads)
