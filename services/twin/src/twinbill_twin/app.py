"""The twin service application: lifespan (migrations, pool, bus), routes, background consumers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib.metadata import version
from pathlib import Path

from aiohttp import web

from twinbill_common.apidocs import add_api_docs
from twinbill_common.background import add_background_loops
from twinbill_common.bus import Bus, Delivery
from twinbill_common.deadletters import dead_letter_gauge, watch_dead_letter_depth, watch_queue_depth
from twinbill_common.health import add_health_routes
from twinbill_common.http import envelope_middleware, render_dt, render_management
from twinbill_common.logging import get_logger
from twinbill_common.metrics import new_registry
from twinbill_common.postgres import TRANSIENT_ERRORS, open_schema
from twinbill_common.schemas import BillingJobFinished, CommandOutcome
from twinbill_common.servicetokens import ServiceTokens, require_service_token
from twinbill_common.smorest import render_smorest
from twinbill_common.topology import ALARM_QUEUES, TWIN_BILLING_OUTCOMES, TWIN_COMMAND_OUTCOMES, TWIN_TELEMETRY
from twinbill_twin.api.routes import add_registry_routes
from twinbill_twin.bemserver import PREFIX as BEMSERVER
from twinbill_twin.bemserver import setup_bemserver
from twinbill_twin.bemserver.data import PARTITIONS
from twinbill_twin.bemserver.tasks import add_task_routes
from twinbill_twin.bemserver.weather import provider_of
from twinbill_twin.checks import CHECKS, CheckRunner, add_check_routes
from twinbill_twin.directory import Directory, GatewayDirectory
from twinbill_twin.events import Outbox, declare_journal
from twinbill_twin.handlers import AlarmConsumer, handle_billing_outcome, handle_command_outcome
from twinbill_twin.keys import ALARMS, BUS, DEVICE_SECRETS, DIRECTORY, OUTBOX, POOL, REFUSALS, SETTINGS
from twinbill_twin.metrics import TwinMetrics
from twinbill_twin.notifier import Notifier
from twinbill_twin.secretbox import seal_stored_secrets
from twinbill_twin.settings import TwinSettings
from twinbill_twin.timeseries import WriteRefusals, setup_timeseries
from twinbill_twin.webhooks import Dispatcher, add_deliveries

MIGRATIONS = Path(__file__).parent / "migrations"
log = get_logger(__name__)


def create_app(settings: TwinSettings, *, directory: Directory | None = None) -> web.Application:
    """Build the twin service: seed-002 open API under /dt/open/v1, management under /api/v1.

    `directory` overrides who a campaign scope's users are (default: the gateway)."""
    tokens = ServiceTokens(settings.service_key.get_secret_value(), issuer="twin")
    app = web.Application(
        middlewares=[envelope_middleware([("/dt/open/", render_dt), (BEMSERVER + "/", render_smorest)],
                                         default=render_management),
                     require_service_token(tokens, audience="twin")],
        client_max_size=64 * 1024 * 1024,
    )
    app[SETTINGS] = settings
    app[DEVICE_SECRETS] = device_secrets = settings.device_secrets()
    registry = new_registry()
    checks = add_health_routes(app, registry=registry)
    add_api_docs(app, title="twinbill twin service", version=version("twinbill-twin"),
                 description="Registry, digital twins (seed 002), time series; /internal/ wants a service token.")
    dead_letters = dead_letter_gauge(registry)
    # A batch held by the store is retried at least every retry_max_pause: one not heard of for
    # three of those was given back to the queue.
    refusals = WriteRefusals(registry, stale_after=3 * settings.retry_max_pause + 5)
    app[REFUSALS] = refusals
    # Not ready while PostgreSQL refuses time-series writes (disk full): /readyz names the reason.
    checks["timeseries_store"] = refusals.check
    metrics = TwinMetrics.create(registry)
    background = add_background_loops(app)
    add_registry_routes(app)
    setup_bemserver(app)
    add_check_routes(app)
    add_task_routes(app, BEMSERVER)  # imports the runner, which imports the BEMServer routes

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        pool = await open_schema(settings, schema=settings.schema_name, migrations=MIGRATIONS)
        if sealed := await seal_stored_secrets(pool, device_secrets):
            log.info("sealed device secrets stored in plain text", devices=sealed)
        bus = Bus(settings.amqp_url.get_secret_value(), namespace=settings.bus_namespace,
                  transient=TRANSIENT_ERRORS, retry_max_pause=settings.retry_max_pause,
                  heartbeat=settings.amqp_heartbeat)
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
            gateway = GatewayDirectory(settings.gateway_url, tokens)
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
            background.start("telemetry_queue_depth", watch_queue_depth(
                bus, TWIN_TELEMETRY.name, metrics.queue_depth))
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
                for queue in ALARM_QUEUES:
                    await bus.declare_work_queue(queue)
                alarms = AlarmConsumer(pool, bus, default_zone=settings.default_timezone,
                                       max_batch=settings.alarm_batch, rules_ttl=settings.alarm_rules_ttl,
                                       parallel=settings.alarm_parallel, lease_ttl=settings.alarm_lease_ttl,
                                       balance_interval=settings.alarm_balance_interval,
                                       state_cache=settings.alarm_state_cache,
                                       full_collect_every=settings.gc_full_collect_interval)
                app[ALARMS] = alarms
                background.start("alarm_consumer", alarms.run())
                background.start("offline_sweep", alarms.sweep_offline(interval=settings.alarm_sweep_interval))
            runner = CheckRunner(pool, app[PARTITIONS], provider=provider_of(settings), period=settings.checks_period,
                                 min_completeness=settings.check_min_completeness,
                                 min_correctness=settings.check_min_correctness,
                                 default_zone=settings.default_timezone)
            app[CHECKS] = runner
            if settings.checks_enabled:
                background.start("check_services", runner.run(interval=settings.checks_interval))
            yield
        if gateway is not None:
            await gateway.close()
        await bus.close()
        await pool.close()

    app.cleanup_ctx.append(lifespan)
    # time series: routes, and the telemetry consumer (a cleanup context after the lifespan)
    setup_timeseries(app, pool_key=POOL, bus_key=BUS, default_zone=settings.default_timezone,
                     max_batch=settings.telemetry_batch, max_wait=settings.telemetry_batch_wait,
                     refusals=refusals, metrics=metrics, consume=settings.telemetry_enabled,
                     partitions_ahead=settings.timeseries_partitions_ahead,
                     raw_retention_days=settings.raw_retention_days,
                     maintenance_interval=settings.timeseries_maintenance_interval,
                     full_collect_every=settings.gc_full_collect_interval)
    return app
