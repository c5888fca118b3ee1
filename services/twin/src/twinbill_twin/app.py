"""The twin service application: lifespan (migrations, pool, bus), routes, background consumers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from twinbill_common.background import add_background_loops
from twinbill_common.bus import Bus, Delivery
from twinbill_common.deadletters import dead_letter_gauge, watch_dead_letter_depth
from twinbill_common.health import add_health_routes
from twinbill_common.http import envelope_middleware, render_dt, render_management
from twinbill_common.metrics import new_registry
from twinbill_common.postgres import TRANSIENT_ERRORS, open_schema
from twinbill_common.schemas import BillingJobFinished, CommandOutcome
from twinbill_common.smorest import render_smorest
from twinbill_common.topology import TWIN_BILLING_OUTCOMES, TWIN_COMMAND_OUTCOMES, TWIN_TELEMETRY
from twinbill_twin.api.routes import add_registry_routes
from twinbill_twin.bemserver import PREFIX as BEMSERVER
from twinbill_twin.bemserver import setup_bemserver
from twinbill_twin.directory import Directory, GatewayDirectory
from twinbill_twin.events import Outbox, declare_journal
from twinbill_twin.handlers import TWIN_ALARMS, AlarmConsumer, handle_billing_outcome, handle_command_outcome
from twinbill_twin.keys import ALARMS, BUS, DIRECTORY, OUTBOX, POOL, SETTINGS
from twinbill_twin.notifier import Notifier
from twinbill_twin.settings import TwinSettings
from twinbill_twin.timeseries import setup_timeseries
from twinbill_twin.webhooks import Dispatcher, add_deliveries

MIGRATIONS = Path(__file__).parent / "migrations"



def create_app(settings: TwinSettings, *, directory: Directory | None = None) -> web.Application:
    """Build the twin service: seed-002 open API under /dt/open/v1, management under /api/v1.

    `directory` overrides who a campaign scope's users are (default: the gateway)."""
    app = web.Application(
        middlewares=[envelope_middleware([("/dt/open/", render_dt), (BEMSERVER + "/", render_smorest)],
                                         default=render_management)],
        client_max_size=64 * 1024 * 1024,
    )
    app[SETTINGS] = settings
    registry = new_registry()
    checks = add_health_routes(app, registry=registry)
    dead_letters = dead_letter_gauge(registry)
    background = add_background_loops(app)
    add_registry_routes(app)
    setup_bemserver(app)

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        pool = await open_schema(settings, schema=settings.schema_name, migrations=MIGRATIONS)
        bus = Bus(settings.amqp_url.get_secret_value(), namespace=settings.bus_namespace,
                  transient=TRANSIENT_ERRORS)
        await bus.connect()
        app[POOL] = pool
        app[BUS] = bus
        checks["postgres"] = lambda: pool.fetchval("SELECT 1")
        checks["rabbitmq"] = bus.ping
        await declare_journal(bus)
        outbox = Outbox(pool, bus)
        app[OUTBOX] = outbox
        gateway = None
        scope_users: Directory
        if directory is None:
            gateway = GatewayDirectory(settings.gateway_url, settings.gateway_internal_token.get_secret_value())
            scope_users = gateway
        else:
            scope_users = directory
        app[DIRECTORY] = scope_users
        notifier = Notifier(pool, app[DIRECTORY], hooks=(add_deliveries,))
        dispatcher = Dispatcher(pool, lease=settings.webhook_lease, timeout=settings.webhook_timeout,
                                max_attempts=settings.webhook_max_attempts, concurrency=settings.webhook_concurrency,
                                first_retry=settings.webhook_first_retry)
        async with background:  # the telemetry consumer joins it (setup_timeseries)
            background.start("outbox_relay", outbox.relay(interval=settings.outbox_relay_interval))
            background.start("dead_letter_depth", watch_dead_letter_depth(
                bus, tuple(f"{queue.name}.dlq" for queue in (TWIN_TELEMETRY, TWIN_COMMAND_OUTCOMES,
                                                             TWIN_BILLING_OUTCOMES)), dead_letters))
            if settings.notifier_enabled:
                background.start("notifier", notifier.run(interval=settings.notifier_interval))
            async def on_outcome(delivery: Delivery[CommandOutcome]) -> None:
                await handle_command_outcome(delivery, pool=pool)
            background.start("command_outcomes", bus.consume(TWIN_COMMAND_OUTCOMES.name, CommandOutcome,
                                                             on_outcome, prefetch=20))
            async def on_billing(delivery: Delivery[BillingJobFinished]) -> None:
                await handle_billing_outcome(delivery, pool=pool)
            background.start("billing_outcomes", bus.consume(TWIN_BILLING_OUTCOMES.name, BillingJobFinished,
                                                             on_billing, prefetch=5))
            if settings.webhooks_enabled:
                background.start("webhooks", dispatcher.run(interval=settings.webhook_interval))
            if settings.alarms_enabled:
                await bus.declare_work_queue(TWIN_ALARMS)
                alarms = AlarmConsumer(pool, bus, default_zone=settings.default_timezone,
                                       max_batch=settings.alarm_batch, rules_ttl=settings.alarm_rules_ttl,
                                       parallel=settings.alarm_parallel)
                app[ALARMS] = alarms
                background.start("alarm_consumer", alarms.run())
                background.start("offline_sweep", alarms.sweep_offline(interval=settings.alarm_sweep_interval))
            yield
        if gateway is not None:
            await gateway.close()
        await bus.close()
        await pool.close()

    app.cleanup_ctx.append(lifespan)
    # time series: routes, and the telemetry consumer (a cleanup context after the lifespan)
    setup_timeseries(app, pool_key=POOL, bus_key=BUS, default_zone=settings.default_timezone,
                     max_batch=settings.telemetry_batch, max_wait=settings.telemetry_batch_wait,
                     consume=settings.telemetry_enabled)
    return app
