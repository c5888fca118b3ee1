"""The ingest gateway application: lifespan (bus, registry cache, MQTT loop, listeners) and the
health routes on port 8004."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.metadata import version

from aiohttp import web

from twinbill_common.apidocs import add_api_docs
from twinbill_common.background import add_background_loops
from twinbill_common.bus import Bus, with_heartbeat
from twinbill_common.deadletters import dead_letter_gauge, watch_dead_letter_depth
from twinbill_common.health import add_health_routes
from twinbill_common.logging import get_logger
from twinbill_common.metrics import new_registry
from twinbill_common.servicetokens import ServiceTokens
from twinbill_common.topology import INGEST_COMMANDS
from twinbill_ingest.commands import CommandRelay
from twinbill_ingest.errors import RegistryUnavailable
from twinbill_ingest.gateway import Gateway
from twinbill_ingest.handlers import RegistryListener
from twinbill_ingest.keys import CACHE, GATEWAY, LISTENER, RELAY, SETTINGS
from twinbill_ingest.metrics import IngestMetrics
from twinbill_ingest.sessions import StatusReporter
from twinbill_ingest.settings import IngestSettings
from twinbill_ingest.store import HttpRegistrySource, RegistryCache, RegistrySource, StaticRegistrySource
from twinbill_ingest.twinstore import TwinStoreGate

log = get_logger(__name__)


def default_source(settings: IngestSettings) -> RegistrySource:
    """The registry file if one is set, else the twin service's internal endpoints."""
    if settings.registry_file is not None:
        return StaticRegistrySource.from_file(settings.registry_file)
    return HttpRegistrySource(settings.twin_url, tokens=ServiceTokens(
        settings.service_key.get_secret_value(), issuer="ingest"))


async def load_with_retry(cache: RegistryCache, source: RegistrySource) -> None:
    """Load the cache, retrying with backoff until the registry answers."""
    delay = 0.5
    while True:
        try:
            await cache.load(source)
            return
        except RegistryUnavailable as err:
            log.warning("registry not available yet", error=str(err), delay=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def create_app(settings: IngestSettings, *, source: RegistrySource | None = None,
               store_gate: TwinStoreGate | None = None) -> web.Application:
    """Build the gateway; `source` defaults to the twin's internal endpoints (or registry_file).
    `store_gate` (whether the twin can store) defaults to polling the twin when the registry
    comes from it; none otherwise (a registry file or a fixed source: no twin to ask)."""
    app = web.Application()
    app[SETTINGS] = settings
    registry = new_registry()
    checks = add_health_routes(app, registry=registry)
    add_api_docs(app, title="twinbill ingest gateway", version=version("twinbill-ingest"),
                 description="Health and metrics only: devices speak MQTT (seed 003).")
    background = add_background_loops(app, group_check="ingest_serve")  # its name in /readyz
    metrics = IngestMetrics.create(registry)
    dead_letters = dead_letter_gauge(registry)
    registry_source = source or default_source(settings)

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        amqp_url = settings.amqp_url.get_secret_value()
        bus = Bus(amqp_url, namespace=settings.bus_namespace, publish_timeout=settings.publish_timeout,
                  heartbeat=settings.amqp_heartbeat)
        await bus.connect()  # declares the exchanges and twin.telemetry, so publishes are routable
        cache = RegistryCache()
        status = StatusReporter(registry_source, interval=settings.status_interval)
        gate = store_gate
        if gate is None and isinstance(registry_source, HttpRegistrySource):
            gate = TwinStoreGate(settings.twin_url, interval=settings.store_check_interval,
                                 tokens=ServiceTokens(settings.service_key.get_secret_value(), issuer="ingest"))
        if gate is not None:
            gate.on_change = lambda refusal: metrics.store_refusing.set(refusal is not None)
        gateway = Gateway(settings, bus=bus, cache=cache, status=status, metrics=metrics, store_gate=gate)
        listener = RegistryListener(
            with_heartbeat(amqp_url, settings.amqp_heartbeat),
            namespace=settings.bus_namespace,
            cache=cache,
            source=registry_source,
            reload_delay=settings.registry_reload_delay,
        )
        relay = CommandRelay(
            settings,
            bus=bus,
            cache=cache,
            metrics=metrics,
            client_factory=gateway.mqtt_client,
            client_id=gateway.client_id,
            session_expiry=gateway.session_expiry,
        )
        gateway.on_presence = relay.device_active
        app[GATEWAY], app[CACHE], app[LISTENER], app[RELAY] = gateway, cache, listener, relay
        checks["rabbitmq"] = bus.ping
        checks["registry"] = lambda: _require(cache.loaded, "registry cache not loaded")
        checks["mqtt"] = lambda: _require(gateway.ready.is_set(), "not subscribed to Mosquitto")

        # Each loop handles its own transient failures (reconnects); if one still ends, the
        # others stop, /readyz names it and the process exits (twinbill_common.background).
        # The gateway, the status reporter and the command relay need the registry cache: they
        # wait until the gateway's loop has loaded it.
        loaded = asyncio.Event()

        async def load_then_serve() -> None:
            await load_with_retry(cache, registry_source)
            loaded.set()
            await gateway.run()

        async def once_loaded(loop: Callable[[], Awaitable[None]]) -> None:
            await loaded.wait()
            await loop()

        try:
            async with background:
                background.start("registry_listener", listener.run())
                background.start("mqtt_gateway", load_then_serve())
                background.start("status_reporter", once_loaded(status.run))
                background.start("command_relay", once_loaded(relay.run))
                if gate is not None:
                    background.start("twin_store_gate", gate.run())
                background.start("dead_letter_depth", watch_dead_letter_depth(
                    bus, (f"{INGEST_COMMANDS.name}.dlq",), dead_letters))
                yield
        finally:
            with contextlib.suppress(Exception):
                await status.flush()
            if isinstance(registry_source, HttpRegistrySource):
                await registry_source.close()
            await bus.close()

    app.cleanup_ctx.append(lifespan)
    return app


async def _require(condition: bool, reason: str) -> None:
    if not condition:
        raise RuntimeError(reason)
