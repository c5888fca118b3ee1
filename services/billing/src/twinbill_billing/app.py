"""The billing application: lifespan (MongoDB, twin client, bus), routes, and the consumers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from functools import partial
from importlib.metadata import version
from typing import Any

import aiohttp
from aiohttp import web
from pymongo import AsyncMongoClient

from twinbill_billing.api import CLOCK, add_management_routes
from twinbill_billing.audit import (
    audit_collection,
    declare_changed_journal,
    ensure_audit_indexes,
    watch_unpublished,
)
from twinbill_billing.context import CONTEXT, BillingContext
from twinbill_billing.corrections import add_correction_routes
from twinbill_billing.deadletters import PARKED, declare_parking, watch_dead_letters
from twinbill_billing.events import declare_journal
from twinbill_billing.handlers import handle_job, handle_run
from twinbill_billing.history import STORE, TWIN, add_history_routes
from twinbill_billing.metrics import BillingMetrics, StoreOperations
from twinbill_billing.preview import add_preview_route
from twinbill_billing.reports import add_report_routes
from twinbill_billing.settings import BillingSettings
from twinbill_billing.store import TRANSIENT_ERRORS, BillStore
from twinbill_billing.twin import HttpTwinClient
from twinbill_common.apidocs import add_api_docs
from twinbill_common.background import add_background_loops
from twinbill_common.bus import Bus
from twinbill_common.deadletters import dead_letter_gauge, watch_dead_letter_depth
from twinbill_common.errors import BusUnavailable
from twinbill_common.health import add_health_routes
from twinbill_common.http import envelope_middleware, render_management, render_meta
from twinbill_common.logging import get_logger
from twinbill_common.metrics import new_registry
from twinbill_common.schemas.billing import BillingJob, RunBilling
from twinbill_common.servicetokens import ServiceTokens, require_service_token
from twinbill_common.topology import BILLING_JOBS, BILLING_RUNS

log = get_logger(__name__)
SETTINGS = web.AppKey("settings", BillingSettings)
METRICS = web.AppKey("billing_metrics", BillingMetrics)


def utc_clock() -> datetime:
    """The wall clock, in UTC (handlers receive it; domain code never reads it)."""
    return datetime.now(UTC)


async def watch_queue_depth(bus: Bus, metrics: BillingMetrics, *, interval: float) -> None:
    """Keep billing_jobs_queue_depth current (what an autoscaler scales on)."""
    while True:
        try:
            metrics.queue_depth.set(await bus.queue_depth(BILLING_JOBS.name))
        except BusUnavailable as err:  # the gauge is best effort; the next tick retries
            log.warning("queue depth unavailable", error=str(err))
        await asyncio.sleep(interval)


def create_app(settings: BillingSettings, *, clock: Callable[[], datetime] = utc_clock) -> web.Application:
    """Build the billing service: seed-000 history, tariffs, run summaries, health, consumers."""
    tokens = ServiceTokens(settings.service_key.get_secret_value(), issuer="billing")
    app = web.Application(
        middlewares=[envelope_middleware([("/api/v1/scheduler/", render_meta)], default=render_management),
                     require_service_token(tokens, audience="billing")]
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock
    registry = new_registry()
    metrics = BillingMetrics(registry)
    dead_letters = dead_letter_gauge(registry)
    app[METRICS] = metrics
    checks = add_health_routes(app, registry=registry)
    add_api_docs(app, title="twinbill billing", version=version("twinbill-billing"),
                 description="Seed 000's bill history, tariffs, runs and corrections.")
    background = add_background_loops(app, task_prefix="billing.")
    add_history_routes(app)
    add_management_routes(app)
    add_preview_route(app)
    add_report_routes(app)
    add_correction_routes(app)

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            settings.mongo_url, tz_aware=True, serverSelectionTimeoutMS=10_000,
            event_listeners=[StoreOperations(metrics)],
        )
        store = BillStore(client, settings.mongo_db)
        await store.ensure_indexes()
        await ensure_audit_indexes(audit_collection(store.db))
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=settings.twin_timeout),
                                        middlewares=(tokens.client_middleware({settings.twin_url: "twin"}),))
        bus = Bus(
            settings.amqp_url.get_secret_value(),
            namespace=settings.bus_namespace,
            transient=TRANSIENT_ERRORS,
            heartbeat=settings.amqp_heartbeat,
            retry_budget=settings.retry_budget,
        )
        await bus.connect()
        await declare_journal(bus)
        await declare_parking(bus)
        await declare_changed_journal(bus)
        twin = HttpTwinClient(settings.twin_url, session=session, zone_ttl=settings.zone_cache_seconds)
        ctx = BillingContext(
            store=store,
            twin=twin,
            bus=bus,
            metrics=metrics,
            chunk_size=settings.chunk_size,
            delivery_limit=BILLING_JOBS.delivery_limit,
            clock=clock,
            publish_issued=settings.publish_issued,
        )
        app[STORE] = store
        app[TWIN] = twin
        app[CONTEXT] = ctx
        checks["mongodb"] = store.ping
        checks["rabbitmq"] = bus.ping

        loops: dict[str, Coroutine[object, object, None]] = {}
        if settings.consume_runs:
            loops["runs-consumer"] = bus.consume(
                BILLING_RUNS.name, RunBilling, partial(handle_run, ctx=ctx), prefetch=1
            )
        if settings.consume_jobs:
            loops["jobs-consumer"] = bus.consume(
                BILLING_JOBS.name, BillingJob, partial(handle_job, ctx=ctx), prefetch=settings.job_prefetch
            )
        if settings.consume_dead_letters:
            loops["dead-letter-watcher"] = watch_dead_letters(ctx)
        loops["audit-relay"] = watch_unpublished(ctx, interval=settings.audit_relay_interval,
                                                 older_than=timedelta(seconds=settings.audit_relay_after))
        loops["queue-depth"] = watch_queue_depth(bus, metrics, interval=settings.queue_depth_interval)
        loops["dead-letter-depth"] = watch_dead_letter_depth(
            bus, (f"{BILLING_RUNS.name}.dlq", f"{BILLING_JOBS.name}.dlq", PARKED), dead_letters,
            interval=settings.queue_depth_interval)
        # Each loop runs for the life of the app; one that stops fails /readyz under its name
        # and ends the process (twinbill_common.background).
        async with background:
            for name, loop in loops.items():
                background.start(name, loop)
            yield
        await bus.close()
        await session.close()
        await client.close()

    app.cleanup_ctx.append(lifespan)
    return app
