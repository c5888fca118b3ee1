"""The telemetry consumer: batches of MeasurementsAccepted -> samples, rollups, current values.

A batch is acked after its transaction commits. A point whose device or measurepoint the
registry does not know, or a value that can never be stored, makes its message poison: the bus
retries the batch message by message and dead-letters that one with the reason.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec
from aio_pika.abc import AbstractIncomingMessage

from twinbill_common.bus import Bus, Delivery
from twinbill_common.errors import PermanentError
from twinbill_common.logging import get_logger
from twinbill_common.schemas import MeasurementsAccepted
from twinbill_common.schemas.telemetry import DevicePoints
from twinbill_common.topology import REGISTRY, TWIN_TELEMETRY
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
from twinbill_twin.handlers.measurements import Measurements, PointSet, RawPointSet, decode_telemetry, value_of
from twinbill_twin.metrics import TwinMetrics
from twinbill_twin.refusals import WriteRefusals, refuses_writes
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

# What the consumer handles: the compact decoded form (decode_telemetry: values as JSON text),
# or the schema's model (tests hand the handler those; values then decoded already).
Telemetry = Measurements | MeasurementsAccepted
Point = PointSet | RawPointSet | DevicePoints
# The bytes of a JSON number written without exponent: "-", digits and at most one "." (msgspec
# checked that the text is JSON). Up to 300 of them it is within every storable limit (a
# double's range, 16,383 decimal places), and its text is the exact decimal PostgreSQL parses.
_PLAIN_NUMBER = b"-.0123456789"
_PLAIN_NUMBER_MAX = 300

# A batch decodes into ~10^5 short-lived containers (points, their dicts, sample tuples). With
# CPython's default gen-0 threshold (700) the cyclic collector ran hundreds of times per batch,
# and its full collections rescanned everything still alive: profiled, that was most of the
# consumer's CPU (decoding measured 6 us/point instead of 2). Nothing here makes cycles worth
# chasing sooner, so collections are made rarer; reference counting frees the batches as before.
GC_THRESHOLDS = (50_000, 20, 20)
# ... but the oldest generation is then collected on a timer. With these thresholds, and start-up
# frozen, CPython 3.11 makes a full collection only after 21 generation-1 collections *and* when
# the objects promoted since the last one exceed a quarter of the long-lived ones: under the
# soak's load (bench/bench_soak.py) that was less than once an hour, while cycles that outlived a
# young collection (a batch's tasks, futures and frames, holding its decoded messages) became
# garbage in generation 2 and stayed there: the twin's RSS grew ~1 MiB/min. A full collection of
# what is not frozen takes milliseconds (docs/architecture.md, "Fault campaign").
FULL_COLLECT_SECONDS = 60.0
# After a batch that held a stored key, this many batches are written with the probe first.
REPEAT_COOLDOWN = 16


def tune_gc() -> None:
    """Rarer cyclic collections for this process (idempotent), and everything alive at start-up
    (modules, settings, pools) moved out of the collector's way (gc.freeze)."""
    if gc.get_threshold()[0] < GC_THRESHOLDS[0]:
        gc.set_threshold(*GC_THRESHOLDS)
        gc.freeze()


async def collect_periodically(every: float) -> None:
    """A full collection every `every` seconds until cancelled (see FULL_COLLECT_SECONDS)."""
    while True:
        await asyncio.sleep(every)
        started = time.perf_counter()
        found = gc.collect()
        log.debug("full gc", unreachable=found, ms=round((time.perf_counter() - started) * 1000, 1))


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
        # The cached entry of a key, if any: the dict's own lookup (called per point; the dict
        # is only ever changed in place, so this stays bound to it).
        self.get: Callable[[tuple[str, str]], DeviceAttributes | None] = self._devices.get

    def clear(self) -> None:
        """Forget everything (a registry change was announced)."""
        self._devices.clear()

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
                 metrics: TwinMetrics | None = None, full_collect_every: float = FULL_COLLECT_SECONDS) -> None:
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
        # Batches written since one held a stored key (a repeat): a stream of repeats is written
        # with the probe first, instead of failing the plain insert every time.
        self.batches_since_repeat = REPEAT_COOLDOWN
        self.full_collect_every = full_collect_every  # 0: never (the collector's own thresholds only)

    async def run(self) -> None:
        """Consume telemetry and watch registry changes until cancelled."""
        tune_gc()
        async with asyncio.TaskGroup() as group:
            group.create_task(self.watch_registry())
            if self.full_collect_every > 0:
                group.create_task(collect_periodically(self.full_collect_every))
            for _ in range(self.parallel):
                group.create_task(self.bus.consume_decoded_batches(
                    TWIN_TELEMETRY.name, decode_telemetry, self.handle,
                    max_batch=self.max_batch, max_wait=self.max_wait))

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

    async def handle(self, deliveries: list[Delivery[Telemetry]]) -> None:
        """Store a batch; PermanentError names the first point that can never be stored."""
        async with self.pool.acquire() as conn:
            try:
                batch = self._build(deliveries, reloaded=False)
            except _Unknown:  # a device or measurepoint not cached (or not in the registry)
                await self._resolve(conn, deliveries)
                batch = self._build(deliveries, reloaded=True)
            if not batch.samples:
                return
            # A live stream's points are new: inserted without probing for stored keys, unless a
            # message is a redelivery or a recent batch held a stored key (write_batch then
            # writes it again with the probe).
            expect_new = self.batches_since_repeat >= REPEAT_COOLDOWN and not any(
                delivery.raw.redelivered for delivery in deliveries)
            try:
                result: WriteResult = await write_batch(
                    conn, samples=batch.samples, currents=list(batch.currents.values()),
                    devices=batch.devices, instances=batch.instances, partitions=self.partitions,
                    expect_new=expect_new)
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
        self.batches_since_repeat = 0 if expect_new and result.form != "plain" else self.batches_since_repeat + 1
        self.refusals.stored(batch=id(deliveries))
        self.stored_total += result.stored
        if self.metrics is not None:
            self.observe(deliveries, stored=result.stored)

    def observe(self, deliveries: list[Delivery[Telemetry]], *, stored: int) -> None:
        """Count a committed batch and how long after the gateway received each message it was."""
        assert self.metrics is not None
        now_ms = time.time() * 1000
        self.metrics.samples_written.inc(stored)
        self.metrics.messages_stored.inc(len(deliveries))
        for delivery in deliveries:
            self.metrics.write_lag.observe(max(now_ms - delivery.message.received_at, 0.0) / 1000)

    async def _resolve(self, conn: asyncpg.Connection, deliveries: list[Delivery[Telemetry]]) -> None:
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

    def _build(self, deliveries: list[Delivery[Telemetry]], *, reloaded: bool) -> _Batch:
        """The batch's sample rows, newest values and device times. A device or measurepoint the
        cache does not know raises _Unknown until the cache was `reloaded` for this batch, and
        PermanentError after."""
        batch = _Batch()
        samples = batch.samples
        devices, instances = batch.devices, batch.instances
        newest: dict[int, tuple[int, int, Any]] = {}  # attribute -> (ts, arrived, value)
        for delivery in deliveries:
            message = delivery.message
            arrived = message.received_at
            seen: DeviceAttributes | None = None  # the device whose times this message moved last
            points: Sequence[Point] = message.points
            for number, point in enumerate(points):
                key = (point.product_key, point.device_key)
                entry = self.cache.get(key)
                if entry is None:
                    if not reloaded:
                        raise _Unknown
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
                        if not reloaded:
                            raise _Unknown
                        raise PermanentError(
                            f"points[{number}].{measurepoint}: measurepoint {measurepoint!r} of "
                            f"device {key[0]}/{key[1]} has no attribute in the registry")
                    if type(value) is msgspec.Raw:
                        text = bytes(value)
                        if len(text) <= _PLAIN_NUMBER_MAX and not text.translate(None, _PLAIN_NUMBER):
                            # a plain number: its own digits are the exact decimal
                            exact_text, approx = text.decode(), float(text)
                            for attribute_id in attribute_ids:
                                samples.append((attribute_id, SCALAR, ts, exact_text, approx, None, None))
                                held = newest.get(attribute_id)
                                if held is None or ts >= held[0]:
                                    newest[attribute_id] = (ts, arrived, value)
                            continue
                        decoded = decoded_value(value, where=f"points[{number}].{measurepoint}")
                    else:
                        decoded = value
                    self._add_value(samples, newest, attribute_ids, decoded, value, ts=ts, arrived=arrived,
                                    where=f"points[{number}].{measurepoint}")
                if entry is not seen:
                    seen = entry
                    if devices.get(entry.device_id, -1) < arrived:
                        devices[entry.device_id] = arrived
                    if entry.instance_id is not None and instances.get(entry.instance_id, -1) < arrived:
                        instances[entry.instance_id] = arrived
        batch.currents = {attribute_id: CurrentValue(attribute_id, current_text(value), ts, arrived)
                          for attribute_id, (ts, arrived, value) in newest.items()}
        return batch

    @staticmethod
    def _add_value(samples: list[SampleRecord], newest: dict[int, tuple[int, int, Any]], attribute_ids: list[int],
                   value: Any, held_as: Any, *, ts: int, arrived: int, where: str) -> None:
        """The rows of any other value (an array, a struct, text, a number with an exponent);
        `held_as` is what `newest` keeps of it (its JSON text, or the decoded value)."""
        rows: list[tuple[int, str | None, float | None, str | None, str | None]]
        exact = fast_number(value)
        if exact is not None:
            rows = [(SCALAR, str(exact[0]), exact[1], None, None)]
        else:
            rows = [(s.idx, None if s.num is None else str(s.num), s.dbl, s.txt, s.quality)
                    for s in sample_values_or_error(value, where=where)]
        for attribute_id in attribute_ids:
            samples.extend((attribute_id, r[0], ts, r[1], r[2], r[3], r[4]) for r in rows)
            held = newest.get(attribute_id)
            if held is None or ts >= held[0]:
                newest[attribute_id] = (ts, arrived, held_as)


class _Unknown(Exception):
    """A device or measurepoint the attribute cache does not hold (reload, then build again)."""


def decoded_value(raw: msgspec.Raw, *, where: str) -> Any:
    """A measurepoint value's JSON text decoded (msgspec checked it with the message, so this
    does not fail; if it ever did, the message is dead-lettered naming the point, not retried)."""
    try:
        return value_of(raw)
    except (msgspec.DecodeError, RecursionError) as err:
        raise PermanentError(f"{where}: {err}") from err


def current_text(value: Any) -> str:
    """An attribute's current value text (value_text) of a decoded value or of its JSON text."""
    return value_text(value_of(value) if type(value) is msgspec.Raw else value)


def sample_values_or_error(value: Any, *, where: str) -> list[SampleValue]:
    """The samples of a value, or PermanentError saying why it can never be stored."""
    try:
        return sample_values(value, where=where)
    except UnstorableValue as err:
        raise PermanentError(str(err)) from err



# -- alarm rules on the live stream (issue 13) ---------------------------------------------------

# Its own queue on the telemetry exchange, so alarms never slow the sample store and replicas
# share it; state is per device in PostgreSQL (alarm_device_state), locked per batch in id order.
