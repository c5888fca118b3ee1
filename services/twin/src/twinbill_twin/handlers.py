"""The telemetry consumer: batches of MeasurementsAccepted -> samples, rollups, current values.

A batch is acked after its transaction commits. A point whose device or measurepoint the
registry does not know, or a value that can never be stored, makes its message poison: the bus
retries the batch message by message and dead-letters that one with the reason.
"""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from aio_pika.abc import AbstractIncomingMessage

from twinbill_common.bus import Bus, Delivery
from twinbill_common.errors import PermanentError
from twinbill_common.logging import get_logger
from twinbill_common.postgres import TRANSIENT_ERRORS as POSTGRES_TRANSIENT
from twinbill_common.schemas import BillingJobFinished, CommandOutcome, MeasurementsAccepted
from twinbill_common.topology import REGISTRY, TELEMETRY, TWIN_TELEMETRY, WorkQueue
from twinbill_twin.domain.alarms import Alarm, Rule, evaluate
from twinbill_twin.domain.levels import LEVELS
from twinbill_twin.domain.samples import (
    MAX_TS,
    MIN_TS,
    SCALAR,
    SampleValue,
    UnstorableValue,
    check_time,
    fast_number,
    sample_values,
    value_text,
)
from twinbill_twin.metrics import TwinMetrics
from twinbill_twin.refusals import WriteRefusals, refuses_writes
from twinbill_twin.store.alarms import (
    Device,
    DeviceCache,
    DeviceState,
    RuleCache,
    device_by_id,
    device_by_key,
    lock_states,
    record_alarm,
    record_device_event,
    save_states,
)
from twinbill_twin.store.samples import (
    CurrentValue,
    PartitionManager,
    SampleRecord,
    WriteResult,
    write_batch,
)

log = get_logger(__name__)

_DEVICE_ATTRIBUTES = """
SELECT q.pk, q.dk, d.id AS device_id, i.id AS instance_id, a.measurepoint, a.id AS attribute_id
FROM unnest($1::text[], $2::text[]) AS q(pk, dk)
JOIN products p ON p.product_key = q.pk
JOIN devices d ON d.product_id = p.id AND d.device_key = q.dk
LEFT JOIN instances i ON i.device_id = d.id
LEFT JOIN attributes a ON a.instance_id = i.id AND a.measurepoint IS NOT NULL
"""

REGISTRY_KEYS = ("product.*", "device.*", "instance.*", "template.*")

# A batch decodes into ~10^5 short-lived containers (points, their dicts, sample tuples). With
# CPython's default gen-0 threshold (700) the cyclic collector ran hundreds of times per batch,
# and its full collections rescanned everything still alive: profiled, that was most of the
# consumer's CPU (decoding measured 6 us/point instead of 2). Nothing here makes cycles worth
# chasing sooner, so collections are made rarer; reference counting frees the batches as before.
GC_THRESHOLDS = (50_000, 20, 20)


def tune_gc() -> None:
    """Rarer cyclic collections for this process (idempotent), and everything alive at start-up
    (modules, settings, pools) moved out of the collector's way (gc.freeze)."""
    if gc.get_threshold()[0] < GC_THRESHOLDS[0]:
        gc.set_threshold(*GC_THRESHOLDS)
        gc.freeze()


@dataclass
class DeviceAttributes:
    """What the consumer needs of one device: its ids and measurepoint -> attribute ids."""

    device_id: int
    instance_id: int | None
    attributes: dict[str, list[int]] = field(default_factory=dict)


class AttributeCache:
    """(product_key, device_key) -> DeviceAttributes; a miss reloads from the registry tables."""

    def __init__(self) -> None:
        self._devices: dict[tuple[str, str], DeviceAttributes] = {}

    def clear(self) -> None:
        """Forget everything (a registry change was announced)."""
        self._devices.clear()

    def get(self, key: tuple[str, str]) -> DeviceAttributes | None:
        """The cached entry, if any."""
        return self._devices.get(key)

    async def load(self, conn: asyncpg.Connection, keys: set[tuple[str, str]]) -> None:
        """(Re)load these devices from the registry tables in one query."""
        if not keys:
            return
        ordered = sorted(keys)
        rows = await conn.fetch(_DEVICE_ATTRIBUTES, [k[0] for k in ordered], [k[1] for k in ordered])
        for key in ordered:
            self._devices.pop(key, None)
        for row in rows:
            key = (row["pk"], row["dk"])
            entry = self._devices.setdefault(key, DeviceAttributes(row["device_id"], row["instance_id"]))
            if row["measurepoint"] is not None:
                entry.attributes.setdefault(row["measurepoint"], []).append(row["attribute_id"])


@dataclass
class _Batch:
    samples: list[SampleRecord] = field(default_factory=list)
    currents: dict[int, CurrentValue] = field(default_factory=dict)
    devices: dict[int, int] = field(default_factory=dict)
    instances: dict[int, int] = field(default_factory=dict)


class TelemetryConsumer:
    """Consumes `twin.telemetry` in batches into PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool, bus: Bus, *, max_batch: int = 500,
                 max_wait: float = 0.05, parallel: int = 2, refusals: WriteRefusals | None = None,
                 metrics: TwinMetrics | None = None) -> None:
        self.pool = pool
        self.metrics = metrics
        self.bus = bus
        # Class-53 refusals seen by the writes (readiness, metrics, the ingest gateway's poll).
        self.refusals = refusals if refusals is not None else WriteRefusals()
        self.max_batch = max_batch
        self.max_wait = max_wait
        # Batches in flight at once: while one waits for PostgreSQL the next is being decoded.
        # Safe because every effect commutes: samples are stored once, rollups merge, and the
        # current value only moves to a newer device time; rows are locked in key order.
        self.parallel = parallel
        self.cache = AttributeCache()
        self.partitions = PartitionManager()
        self.stored_total = 0

    async def run(self) -> None:
        """Consume telemetry and watch registry changes until cancelled."""
        tune_gc()
        async with asyncio.TaskGroup() as group:
            group.create_task(self.watch_registry())
            for _ in range(self.parallel):
                group.create_task(self.bus.consume_batches(
                    TWIN_TELEMETRY.name, MeasurementsAccepted, self.handle,
                    max_batch=self.max_batch, max_wait=self.max_wait, exact_decimals=True))

    async def watch_registry(self) -> None:
        """An exclusive queue on the `registry` exchange: any change there empties the cache."""
        channel = self.bus.channel
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for key in REGISTRY_KEYS:
            await queue.bind(self.bus.name(REGISTRY), routing_key=key)

        async def on_change(message: AbstractIncomingMessage) -> None:
            async with message.process():
                self.cache.clear()

        await queue.consume(on_change)
        # The exclusive queue goes with a lost connection (it is declared again on reconnect):
        # changes made meanwhile were missed, so forget everything.
        self.bus.on_reconnect(self.cache.clear)
        await asyncio.Future()  # until cancelled

    async def handle(self, deliveries: list[Delivery[MeasurementsAccepted]]) -> None:
        """Store a batch; PermanentError names the first point that can never be stored."""
        async with self.pool.acquire() as conn:
            await self._resolve(conn, deliveries)
            batch = self._build(deliveries)
            if not batch.samples:
                return
            try:
                result: WriteResult = await write_batch(
                    conn, samples=batch.samples, currents=list(batch.currents.values()),
                    devices=batch.devices, instances=batch.instances, partitions=self.partitions)
            except (asyncpg.DataError, OverflowError, UnicodeEncodeError) as err:
                # A value PostgreSQL refuses (the gateway checks the same limits, so this is a
                # message from elsewhere): permanent, so the bus isolates the one message that
                # holds it and dead-letters it instead of requeueing the whole batch.
                raise PermanentError(f"a value cannot be stored: {err}") from err
            except asyncpg.InsufficientResourcesError as err:
                # Disk full, out of memory: transient for the bus (the batch stays unacked and is
                # retried in place), and reported, so that ingest stops acknowledging new points.
                if refuses_writes(err):
                    self.refusals.refused(err, batch=id(deliveries))  # retried with the same list
                raise
        self.refusals.stored(batch=id(deliveries))
        self.stored_total += result.stored
        if self.metrics is not None:
            self.observe(deliveries, stored=result.stored)

    def observe(self, deliveries: list[Delivery[MeasurementsAccepted]], *, stored: int) -> None:
        """Count a committed batch and how long after the gateway received each message it was."""
        assert self.metrics is not None
        now_ms = time.time() * 1000
        self.metrics.samples_written.inc(stored)
        self.metrics.messages_stored.inc(len(deliveries))
        for delivery in deliveries:
            self.metrics.write_lag.observe(max(now_ms - delivery.message.received_at, 0.0) / 1000)

    async def _resolve(self, conn: asyncpg.Connection,
                       deliveries: list[Delivery[MeasurementsAccepted]]) -> None:
        missing: set[tuple[str, str]] = set()
        checked: set[tuple[str, str, str]] = set()
        for delivery in deliveries:
            for point in delivery.message.points:
                key = (point.product_key, point.device_key)
                entry = self.cache.get(key)
                if entry is None:
                    missing.add(key)
                    continue
                for mp in point.measurepoints:
                    if (key[0], key[1], mp) not in checked:
                        checked.add((key[0], key[1], mp))
                        if mp not in entry.attributes:
                            missing.add(key)
        await self.cache.load(conn, missing)

    def _build(self, deliveries: list[Delivery[MeasurementsAccepted]]) -> _Batch:
        batch = _Batch()
        samples = batch.samples
        newest: dict[int, tuple[int, int, Any]] = {}  # attribute -> (ts, arrived, value)
        for delivery in deliveries:
            message = delivery.message
            arrived = message.received_at
            for number, point in enumerate(message.points):
                key = (point.product_key, point.device_key)
                entry = self.cache.get(key)
                if entry is None:
                    raise PermanentError(f"points[{number}]: device {key[0]}/{key[1]} is not in "
                                         "the registry")
                ts = point.time
                if not MIN_TS <= ts < MAX_TS:
                    try:
                        check_time(ts, where=f"points[{number}]")
                    except UnstorableValue as err:
                        raise PermanentError(str(err)) from err
                for measurepoint, value in point.measurepoints.items():
                    attribute_ids = entry.attributes.get(measurepoint)
                    if not attribute_ids:
                        raise PermanentError(
                            f"points[{number}].{measurepoint}: measurepoint {measurepoint!r} of "
                            f"device {key[0]}/{key[1]} has no attribute in the registry")
                    exact = fast_number(value)
                    if exact is not None:
                        text = str(exact[0])
                    else:
                        where = f"points[{number}].{measurepoint}"
                        values = sample_values_or_error(value, where=where)
                        rows = [(s.idx, None if s.num is None else str(s.num), s.dbl, s.txt, s.quality)
                                for s in values]
                    for attribute_id in attribute_ids:
                        if exact is not None:
                            samples.append((attribute_id, SCALAR, ts, text, exact[1], None, None))
                        else:
                            samples.extend((attribute_id, r[0], ts, r[1], r[2], r[3], r[4]) for r in rows)
                        held = newest.get(attribute_id)
                        if held is None or ts >= held[0]:
                            newest[attribute_id] = (ts, arrived, value)
                if batch.devices.get(entry.device_id, -1) < arrived:
                    batch.devices[entry.device_id] = arrived
                if entry.instance_id is not None and batch.instances.get(entry.instance_id, -1) < arrived:
                    batch.instances[entry.instance_id] = arrived
        batch.currents = {attribute_id: CurrentValue(attribute_id, value_text(value), ts, arrived)
                          for attribute_id, (ts, arrived, value) in newest.items()}
        return batch


def sample_values_or_error(value: Any, *, where: str) -> list[SampleValue]:
    """The samples of a value, or PermanentError saying why it can never be stored."""
    try:
        return sample_values(value, where=where)
    except UnstorableValue as err:
        raise PermanentError(str(err)) from err



# -- alarm rules on the live stream (issue 13) ---------------------------------------------------

# Its own queue on the telemetry exchange, so alarms never slow the sample store and replicas
# share it; state is per device in PostgreSQL (alarm_device_state), locked per batch in id order.
TWIN_ALARMS = WorkQueue("twin.alarms", TELEMETRY, ("mp.#",))


@dataclass
class _Seen:
    received: datetime
    samples: list[tuple[datetime, dict[str, Any]]] = field(default_factory=list)


class AlarmConsumer:
    """Consumes `twin.alarms` in batches: every point passes its project's rules; the offline rule
    is a sweep over the devices' last-seen times."""

    def __init__(self, pool: asyncpg.Pool, bus: Bus, *, default_zone: str, max_batch: int = 500,
                 max_wait: float = 0.1, rules_ttl: float = 5.0, parallel: int = 1) -> None:
        self.pool = pool
        self.bus = bus
        self.default_zone = default_zone
        self.max_batch = max_batch
        self.max_wait = max_wait
        # Batches in flight at once. Two batches with the same device serialise on its state row
        # (created first, then locked in id order), so nothing is lost or raised twice; but a
        # sample older than the state's is ignored, so with more than one (or several replicas
        # on the queue) the older points of a race are not evaluated. Default 1: queue order.
        self.parallel = parallel
        self.rules = RuleCache(ttl=rules_ttl)
        self.devices = DeviceCache()
        self.points_evaluated = 0
        self.alarms_raised = 0

    async def run(self) -> None:
        """Consume until cancelled."""
        async with asyncio.TaskGroup() as group:
            for _ in range(self.parallel):
                group.create_task(self.bus.consume_batches(
                    TWIN_ALARMS.name, MeasurementsAccepted, self.handle, max_batch=self.max_batch,
                    max_wait=self.max_wait, exact_decimals=True))

    async def handle(self, deliveries: list[Delivery[MeasurementsAccepted]]) -> None:
        """Evaluate a batch: decode -> rules (domain) -> states and events, in one transaction."""
        seen: dict[tuple[str, str], _Seen] = {}
        for delivery in deliveries:
            message = delivery.message
            received = datetime.fromtimestamp(message.received_at / 1000, UTC)
            publisher = seen.setdefault((message.product_key, message.device_key), _Seen(received))
            publisher.received = max(publisher.received, received)
            for point in message.points:
                entry = seen.setdefault((point.product_key, point.device_key), _Seen(received))
                entry.received = max(entry.received, received)
                entry.samples.append((datetime.fromtimestamp(point.time / 1000, UTC), point.measurepoints))
        async with self.pool.acquire() as conn:
            rules = await self.rules.get(conn)
            if not rules:
                return
            devices = await self.devices.resolve(conn, set(seen))
            watched = {key: device for key, device in devices.items() if device.project_id in rules}
            if not watched:
                return
            started = time.perf_counter()
            async with conn.transaction():
                states = await lock_states(conn, [(d.id, d.project_id, seen[key].received)
                                                  for key, d in watched.items()])
                locked = time.perf_counter()
                changed: list[DeviceState] = []
                for key, device in sorted(watched.items(), key=lambda item: item[1].id):
                    entry = seen[key]
                    state = states.get(device.id) or DeviceState(device.id, device.project_id, entry.received, None, {},
                                                                 stored=False)
                    state.last_seen = max(state.last_seen, entry.received)
                    if state.offline_since is not None:
                        await self._back_online(conn, device, state, rules[device.project_id], entry.received)
                        state.offline_since = None
                    zone = await self.devices.zone(conn, device.project_id, default=self.default_zone)
                    for rule in rules[device.project_id]:
                        await self._evaluate(conn, rule, device, state, entry, zone)
                    changed.append(state)
                evaluated = time.perf_counter()
                await save_states(conn, changed)
            log.debug("alarm batch", messages=len(deliveries), devices=len(changed),
                      lock_ms=round((locked - started) * 1000, 1), evaluate_ms=round((evaluated - locked) * 1000, 1),
                      save_commit_ms=round((time.perf_counter() - evaluated) * 1000, 1))

    async def _evaluate(self, conn: asyncpg.Connection, rule: Rule, device: Device, state: DeviceState,
                        entry: _Seen, zone: ZoneInfo) -> None:
        point = rule.measurepoint
        if point is None or (rule.device_type is not None and rule.device_type != device.device_type):
            return
        rule_state: dict[str, Any] = state.rules.setdefault(str(rule.id), {})
        for at, values in sorted(entry.samples, key=lambda sample: sample[0]):
            raw = values.get(point)
            if isinstance(raw, bool) or not isinstance(raw, int | float | Decimal):
                continue
            self.points_evaluated += 1
            value = raw if isinstance(raw, Decimal) else Decimal(str(raw))
            for alarm in evaluate(rule, rule_state, at, value, zone=zone, register_max=device.register_max):
                if await record_alarm(conn, alarm, device) is not None:
                    self.alarms_raised += 1

    async def _back_online(self, conn: asyncpg.Connection, device: Device, state: DeviceState,
                           rules: list[Rule], at: datetime) -> None:
        assert state.offline_since is not None
        for rule in rules:
            if rule.kind == "offline":
                await record_alarm(conn, Alarm(rule, at, int(at.timestamp() * 1000),
                                               f"reporting again (silent since {state.offline_since.isoformat()})",
                                               level=LEVELS["INFO"]), device)
                return

    async def sweep_offline(self, *, interval: float) -> None:
        """Every `interval` seconds, raise the offline rule for each device silent for its minutes."""
        while True:
            try:
                await self.sweep_once()
            except POSTGRES_TRANSIENT as err:
                log.warning("offline sweep: store did not answer, retrying", error=repr(err))
            await asyncio.sleep(interval)

    async def sweep_once(self) -> int:
        """One sweep; returns how many devices went offline."""
        raised = 0
        async with self.pool.acquire() as conn:
            rules = await self.rules.get(conn)
            for rule in (r for project in rules.values() for r in project if r.kind == "offline"):
                async with conn.transaction():
                    rows = await conn.fetch(
                        "SELECT st.device_id, st.last_seen, d.name, d.device_type, d.register_max, d.space_id "
                        "FROM alarm_device_state st JOIN devices d ON d.id = st.device_id "
                        "WHERE st.project_id = $1 AND st.offline_since IS NULL "
                        "AND st.last_seen <= now() - make_interval(secs => $2) "
                        "AND ($3::int IS NULL OR d.device_type = $3) "
                        "ORDER BY st.device_id FOR UPDATE OF st SKIP LOCKED",
                        rule.project_id, float(rule.params["minutes"]) * 60, rule.device_type)
                    for row in rows:
                        device = Device(row["device_id"], rule.project_id, row["name"], row["device_type"],
                                        row["register_max"], row["space_id"])
                        last = row["last_seen"]
                        await record_alarm(conn, Alarm(rule, last, int(last.timestamp() * 1000),
                                                       f"no data for {rule.params['minutes']} min "
                                                       f"(last at {last.isoformat()})"), device)
                        await conn.execute("UPDATE alarm_device_state SET offline_since = last_seen "
                                           "WHERE device_id = $1", row["device_id"])
                        raised += 1
        self.alarms_raised += raised
        return raised


# -- command outcomes (issue 13) -----------------------------------------------------------------

COMMAND_CATEGORY = "Reverse control"
OUTCOME_LEVELS = {"applied": LEVELS["INFO"], "refused": LEVELS["ERROR"], "expired": LEVELS["WARNING"]}


async def handle_command_outcome(delivery: Delivery[CommandOutcome], *, pool: asyncpg.Pool) -> None:
    """Record a device's answer to a command on the desired values it set (unless a newer desired
    value is pending: its version is higher) and as an event of the project's Alarms scope."""
    outcome = delivery.message
    async with pool.acquire() as conn, conn.transaction():
        device = await device_by_key(conn, outcome.product_key, outcome.device_key)
        if device is None:
            log.warning("command outcome of an unknown device", product_key=outcome.product_key,
                        device_key=outcome.device_key)
            return
        marked = "0"
        if outcome.instance_id is not None and outcome.version is not None and outcome.identifiers:
            marked = await conn.execute(
                "UPDATE attributes SET expect_status = $4, expect_code = $5, expect_message = $6, "
                "expect_status_at = $7 WHERE instance_id = $1 AND attrtype = 'State' "
                "AND coalesce(measurepoint, name) = ANY($2::text[]) AND expect_version <= $3",
                outcome.instance_id, outcome.identifiers, outcome.version, outcome.outcome, outcome.code,
                outcome.reply_message, outcome.at)
        what = ", ".join(outcome.identifiers) or "a command"
        detail = {"applied": "applied by the device",
                  "refused": f"refused by the device with code {outcome.code}"
                             + (f" ({outcome.reply_message})" if outcome.reply_message else ""),
                  "expired": "expired before the device came online"}[outcome.outcome]
        version = f" v{outcome.version}" if outcome.version is not None else ""
        await record_device_event(
            conn, device, category=COMMAND_CATEGORY, level=OUTCOME_LEVELS[outcome.outcome], at=outcome.at,
            description=f"desired {what}{version}: {detail}",
            dedup_key=f"command:{outcome.request_id or outcome.message_id}:{outcome.outcome}")
    log.info("command outcome recorded", device_id=device.id, outcome=outcome.outcome, code=outcome.code,
             attributes=marked)


# -- billing outcomes (issue 13) -----------------------------------------------------------------

BILLING_CATEGORY = "Billing"
BILLING_LEVELS = {"failed": LEVELS["ERROR"], "skipped": LEVELS["WARNING"], "estimated": LEVELS["INFO"]}


async def handle_billing_outcome(delivery: Delivery[BillingJobFinished], *, pool: asyncpg.Pool) -> None:
    """One event per meter a billing job failed, skipped or estimated (once per job and meter)."""
    job = delivery.message
    period = f"{job.period_start.isoformat()} - {job.period_end.isoformat()}"
    async with pool.acquire() as conn, conn.transaction():
        for kind in ("failed", "skipped", "estimated"):
            for entry in getattr(job, kind):
                device = await device_by_id(conn, int(entry["device_id"]))
                if device is None:
                    continue
                reason = f": {entry['reason']}" if entry.get("reason") else ""
                await record_device_event(
                    conn, device, category=BILLING_CATEGORY, level=BILLING_LEVELS[kind], at=job.produced_at,
                    description=f"billing run {job.run_id} ({period}): meter {kind}{reason}",
                    dedup_key=f"billing:{job.job_id}:{device.id}:{kind}")
