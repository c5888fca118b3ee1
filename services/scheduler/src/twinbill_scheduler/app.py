"""The scheduler application: lifespan (migrations, pool, bus, zones), routes, firing loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from aiohttp import web

from twinbill_common.apidocs import add_api_docs
from twinbill_common.background import add_background_loops
from twinbill_common.bus import Bus, Delivery
from twinbill_common.deadletters import dead_letter_gauge, watch_dead_letter_depth
from twinbill_common.health import add_health_routes
from twinbill_common.http import envelope_middleware, render_meta
from twinbill_common.metrics import new_registry
from twinbill_common.postgres import TRANSIENT_ERRORS, open_schema
from twinbill_common.schemas import RegistryChanged
from twinbill_common.servicetokens import ServiceTokens
from twinbill_common.topology import BILLING_RUNS
from twinbill_common.zones import HttpProjectZones, ProjectZones
from twinbill_scheduler.api import add_task_routes
from twinbill_scheduler.firing import Firer, default_replica_id
from twinbill_scheduler.handlers import SCHEDULER_REGISTRY, handle_project_changed
from twinbill_scheduler.keys import BUS, POOL, SETTINGS, STORE, ZONES
from twinbill_scheduler.metrics import scheduler_metrics
from twinbill_scheduler.settings import SchedulerSettings
from twinbill_scheduler.store import TaskStore

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: SchedulerSettings, *, zones: ProjectZones | None = None) -> web.Application:
    """Build the scheduler: seed-000 task API under /api/v1/scheduler, and the firing loop.

    `zones` overrides where project time zones come from (default: the twin service).
    """
    app = web.Application(middlewares=[envelope_middleware([("/", render_meta)],
                                                           default=render_meta)])
    app[SETTINGS] = settings
    registry = new_registry()
    metrics = scheduler_metrics(registry)
    checks = add_health_routes(app, registry=registry)
    add_api_docs(app, title="twinbill scheduler", version=version("twinbill-scheduler"),
                 description="Seed 000's billing task API.")
    background = add_background_loops(app, task_prefix="scheduler.")
    dead_letters = dead_letter_gauge(registry)
    add_task_routes(app)

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        pool = await open_schema(settings, schema=settings.schema_name, migrations=MIGRATIONS)
        bus = Bus(settings.amqp_url.get_secret_value(), namespace=settings.bus_namespace,
                  transient=TRANSIENT_ERRORS, heartbeat=settings.amqp_heartbeat)
        await bus.connect(declare=False)
        await bus.declare_topology(queues=(BILLING_RUNS,))  # the queue our runs must reach
        http_zones: HttpProjectZones | None = None
        project_zones: ProjectZones
        if zones is None:
            http_zones = HttpProjectZones(settings.twin_url, default=settings.default_timezone,
                                          ttl=settings.zone_cache_seconds, tokens=ServiceTokens(
                                              settings.service_key.get_secret_value(), issuer="scheduler"))
            project_zones = http_zones
        else:
            project_zones = zones
        app[POOL] = pool
        app[BUS] = bus
        store = TaskStore(pool)
        app[STORE] = store
        app[ZONES] = project_zones
        checks["postgres"] = lambda: pool.fetchval("SELECT 1")
        checks["rabbitmq"] = bus.ping
        firer = Firer(store, bus, metrics=metrics,
                      replica=settings.replica_id or default_replica_id(),
                      batch=settings.claim_batch, poll_interval=settings.poll_interval,
                      lease_seconds=settings.lease_seconds,
                      publish_concurrency=settings.publish_concurrency,
                      max_inflight=settings.max_inflight)
        if settings.registry_events:
            await bus.declare_work_queue(SCHEDULER_REGISTRY)

        async def on_project(delivery: Delivery[RegistryChanged]) -> None:
            await handle_project_changed(delivery, zones=project_zones, store=store,
                                         clock=lambda: datetime.now(UTC))

        loops: dict[str, Coroutine[object, object, None]] = {}
        if settings.firing_enabled:
            loops["firing"] = firer.run()
        if settings.registry_events:
            loops["registry-consumer"] = bus.consume(SCHEDULER_REGISTRY.name, RegistryChanged,
                                                     on_project, prefetch=1)
            loops["dead-letter-depth"] = watch_dead_letter_depth(
                bus, (f"{SCHEDULER_REGISTRY.name}.dlq",), dead_letters)
        # Each loop runs for the life of the app; one that stops fails /readyz under its name
        # and ends the process (twinbill_common.background).
        async with background:
            for name, loop in loops.items():
                background.start(name, loop)
            yield
        if http_zones is not None:
            await http_zones.close()
        await bus.close()
        await pool.close()

    app.cleanup_ctx.append(lifespan)
    return app
