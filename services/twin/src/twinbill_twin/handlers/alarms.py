"""The alarm rules on the live stream: the shard queues `twin.alarms.{n}` on the telemetry
exchange, evaluated per device with state in PostgreSQL (docs/architecture.md, "Events,
notifications, alarm rules and webhooks"). Each replica consumes the shards it leases
(store/shards.py), so the rules scale out while a device's points stay in order."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from twinbill_common.bus import Bus, Delivery
from twinbill_common.logging import get_logger
from twinbill_common.postgres import TRANSIENT_ERRORS as POSTGRES_TRANSIENT
from twinbill_common.topology import ALARM_QUEUES
from twinbill_twin.domain.alarm_series import Sample, evaluate_series, numeric_series
from twinbill_twin.domain.alarms import Alarm, Rule
from twinbill_twin.domain.levels import LEVELS
from twinbill_twin.handlers.measurements import Measurements, decode_measurements
from twinbill_twin.handlers.telemetry import FULL_COLLECT_SECONDS, collect_periodically, tune_gc
from twinbill_twin.store.alarms import (
    Device,
    DeviceCache,
    DeviceState,
    RuleCache,
    StateCache,
    lock_states,
    record_alarm,
    save_if_unchanged,
    save_states,
)
from twinbill_twin.store.shards import balance, leave, release

log = get_logger(__name__)

@dataclass
class _Seen:
    """One device in a batch: when the newest message carrying it was received (epoch ms), and its
    samples (time as published, measurepoints)."""

    received: int
    samples: list[tuple[int, dict[str, Any]]] = field(default_factory=list)

    @property
    def at(self) -> datetime:
        """`received` as a datetime."""
        return datetime.fromtimestamp(self.received / 1000, UTC)


def _group(deliveries: list[Delivery[Measurements]]) -> dict[tuple[str, str], _Seen]:
    """A batch's devices, by (product key, device key): each publisher and each device with points."""
    seen: dict[tuple[str, str], _Seen] = {}
    for delivery in deliveries:
        message = delivery.message
        received = message.received_at
        publisher = seen.get((message.product_key, message.device_key))
        if publisher is None:
            seen[(message.product_key, message.device_key)] = _Seen(received)
        elif received > publisher.received:
            publisher.received = received
        for point in message.points:
            key = (point.product_key, point.device_key)
            entry = seen.get(key)
            if entry is None:
                seen[key] = entry = _Seen(received)
            elif received > entry.received:
                entry.received = received
            entry.samples.append((point.time, point.measurepoints))
    return seen


class AlarmConsumer:
    """Consumes the alarm shards this replica leases, in batches: every point passes its project's
    rules; the offline rule is a sweep over the devices' last-seen times."""

    def __init__(self, pool: asyncpg.Pool, bus: Bus, *, default_zone: str, max_batch: int = 500,
                 max_wait: float = 0.1, rules_ttl: float = 5.0, parallel: int = 2,
                 lease_ttl: float = 15.0, balance_interval: float = 3.0, state_cache: int = 50_000,
                 full_collect_every: float = FULL_COLLECT_SECONDS) -> None:
        self.pool = pool
        self.bus = bus
        self.default_zone = default_zone
        self.max_batch = max_batch
        self.max_wait = max_wait
        # Batches evaluated at once on this replica. A device's messages all reach one shard and
        # a shard is consumed by one replica at a time, one batch after another, so batches in
        # flight together never share a publishing device.
        self._evaluating = asyncio.Semaphore(parallel)
        self.lease_ttl = lease_ttl
        self.balance_interval = balance_interval
        self.member = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.rules = RuleCache(ttl=rules_ttl)
        self.devices = DeviceCache()
        self.states = StateCache(size=state_cache)
        self.full_collect_every = full_collect_every
        self.points_evaluated = 0
        self.alarms_raised = 0
        self.shards: dict[int, asyncio.Task[None]] = {}  # the shards this replica consumes

    async def run(self) -> None:
        """Every `balance_interval`, renew this replica's leases, take its share of the shards and
        give back the rest, consuming exactly the shards it holds; until cancelled. A store that
        does not answer leaves the consumers as they are (a shard queue's single active consumer
        keeps it to one replica meanwhile). A shard consumer that fails ends this loop.

        The collector is tuned as for the telemetry consumer (handlers/telemetry.py, GC_THRESHOLDS):
        a batch decodes into as many short-lived containers, and alone (TWIN_TELEMETRY_ENABLED=
        false) this consumer ran the default thresholds."""
        tune_gc()
        collector = (asyncio.create_task(collect_periodically(self.full_collect_every))
                     if self.full_collect_every > 0 else None)
        try:
            while True:
                await self._rebalance()
                for task in self.shards.values():
                    if task.done():
                        task.result()  # raises what ended it
                await asyncio.sleep(self.balance_interval)
        finally:
            if collector is not None:
                collector.cancel()
                await asyncio.wait([collector])
            for shard in list(self.shards):
                await self._stop(shard)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5), self.pool.acquire() as conn:
                    await leave(conn, self.member)

    async def _rebalance(self) -> None:
        try:
            async with self.pool.acquire() as conn:
                round_ = await balance(conn, self.member, shards=len(ALARM_QUEUES), ttl=self.lease_ttl)
                for shard in [*round_.surplus, *(set(self.shards) - round_.held)]:
                    await self._stop(shard)  # before another replica may take it
                if round_.surplus:
                    await release(conn, self.member, round_.surplus)
        except POSTGRES_TRANSIENT as err:
            log.warning("alarm shards: store did not answer, keeping the shards consumed", error=repr(err))
            return
        for shard in sorted(round_.held - round_.surplus - set(self.shards)):
            log.info("alarm shard taken", shard=shard, member=self.member)
            self.shards[shard] = asyncio.create_task(self.bus.consume_decoded_batches(
                ALARM_QUEUES[shard].name, decode_measurements, self._evaluate_batch, max_batch=self.max_batch,
                max_wait=self.max_wait))

    async def _stop(self, shard: int) -> None:
        task = self.shards.pop(shard, None)
        if task is None:
            return
        task.cancel()
        await asyncio.wait([task])  # its channel is closed: what it held unacked is redelivered
        if not task.cancelled() and task.exception() is not None:
            log.error("alarm shard consumer had failed", shard=shard, error=repr(task.exception()))
        log.info("alarm shard given back", shard=shard, member=self.member)

    async def _evaluate_batch(self, deliveries: list[Delivery[Measurements]]) -> None:
        async with self._evaluating:
            await self.handle(deliveries)

    async def handle(self, deliveries: list[Delivery[Measurements]]) -> None:
        """Evaluate a batch: decoded messages -> rules (domain) -> states and events.

        A device whose state this replica holds (StateCache), that raises nothing and is not
        offline, is evaluated on a copy of it and written back with the others in one statement,
        each only if its row has not changed since. The others (not cached, a row changed
        meanwhile, an alarm to record, back online) are evaluated from their rows, locked, and
        written with their events in one transaction, as every device was before. Written first,
        the former raised nothing: evaluated again (a redelivery after a failure), their samples
        are older than their states and change nothing."""
        seen = _group(deliveries)
        async with self.pool.acquire() as conn:
            rules = await self.rules.get(conn)
            if not rules:
                return
            devices = await self.devices.resolve(conn, set(seen))
            watched = sorted(((device, seen[key]) for key, device in devices.items() if device.project_id in rules),
                             key=lambda item: item[0].id)
            if not watched:
                return
            zones = {project: await self.devices.zone(conn, project, default=self.default_zone)
                     for project in sorted({device.project_id for device, _ in watched})}
            started = time.perf_counter()
            quiet: list[tuple[DeviceState, int]] = []
            again: list[tuple[Device, _Seen]] = []
            for device, entry in watched:
                hit = self.states.get(device.id)
                if hit is None or hit.offline_since is not None:
                    again.append((device, entry))
                    continue
                state = hit.copy()
                state.last_seen = max(state.last_seen, entry.at)
                alarms, points = self._evaluate(device, state, entry, rules[device.project_id],
                                                zones[device.project_id])
                if alarms:
                    again.append((device, entry))  # recorded with its events, evaluated from its row
                else:
                    quiet.append((state, points))
            written = await save_if_unchanged(conn, [state for state, _ in quiet]) if quiet else {}
            changed = set()
            for state, points in quiet:
                version = written.get(state.device_id)
                if version is None:
                    self.states.forget(state.device_id)
                    changed.add(state.device_id)
                    continue
                state.xmin = version
                self.states.put(state)
                self.points_evaluated += points
            if changed:  # another writer was first: evaluated again from the row
                again.extend(item for item in watched if item[0].id in changed)
                again.sort(key=lambda item: item[0].id)
            cached = time.perf_counter()
            if again:
                await self._evaluate_locked(conn, again, rules, zones)
        log.debug("alarm batch", messages=len(deliveries), devices=len(watched), from_cache=len(written),
                  from_rows=len(again), cached_ms=round((cached - started) * 1000, 1),
                  locked_ms=round((time.perf_counter() - cached) * 1000, 1))

    async def _evaluate_locked(self, conn: asyncpg.Connection, watched: list[tuple[Device, _Seen]],
                               rules: dict[int, list[Rule]], zones: dict[int, ZoneInfo]) -> None:
        """Devices (in id order) evaluated from their rows, locked, in one transaction with their
        events; their states are cached once it commits."""
        async with conn.transaction():
            states = await lock_states(conn, [(device.id, device.project_id, entry.at) for device, entry in watched])
            changed: list[DeviceState] = []
            points = raised = 0
            for device, entry in watched:
                received = entry.at
                state = states.get(device.id) or DeviceState(device.id, device.project_id, received, None, {},
                                                             stored=False)
                state.last_seen = max(state.last_seen, received)
                if state.offline_since is not None:
                    await self._back_online(conn, device, state, rules[device.project_id], received)
                    state.offline_since = None
                alarms, evaluated = self._evaluate(device, state, entry, rules[device.project_id],
                                                   zones[device.project_id])
                points += evaluated
                for alarm in alarms:
                    if await record_alarm(conn, alarm, device) is not None:
                        raised += 1
                changed.append(state)
            versions = await save_states(conn, changed)
        self.points_evaluated += points
        self.alarms_raised += raised
        for state in changed:
            if state.device_id in versions:
                state.xmin = versions[state.device_id]
                self.states.put(state)

    @staticmethod
    def _evaluate(device: Device, state: DeviceState, entry: _Seen, rules: list[Rule],
                  zone: ZoneInfo) -> tuple[list[Alarm], int]:
        """A device's samples through its project's rules, each rule over the series of its
        measurepoint (in time order); updates `state`. The alarms, and how many points each rule
        read, summed."""
        alarms: list[Alarm] = []
        points = 0
        series: dict[str, list[Sample]] = {}
        for rule in rules:
            measurepoint = rule.measurepoint
            if measurepoint is None or (rule.device_type is not None and rule.device_type != device.device_type):
                continue
            rule_state: dict[str, Any] = state.rules.setdefault(str(rule.id), {})
            values = series.get(measurepoint)
            if values is None:
                values = series[measurepoint] = numeric_series(entry.samples, measurepoint)
            points += len(values)
            if values:
                alarms.extend(evaluate_series(rule, rule_state, values, zone=zone, register_max=device.register_max))
        return alarms, points

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
                    # A device that never reported has no state row: it is given one from its
                    # registration (or the last time the ingest gateway saw it), so it goes
                    # offline N minutes after it was registered like any silent device.
                    await conn.execute(
                        "INSERT INTO alarm_device_state (device_id, project_id, last_seen) "
                        "SELECT d.id, d.project_id, greatest(d.created_at, d.last_seen) FROM devices d "
                        "WHERE d.project_id = $1 AND ($3::int IS NULL OR d.device_type = $3) "
                        "AND greatest(d.created_at, d.last_seen) <= now() - make_interval(secs => $2) "
                        "AND NOT EXISTS (SELECT 1 FROM alarm_device_state st WHERE st.device_id = d.id) "
                        "ON CONFLICT (device_id) DO NOTHING",
                        rule.project_id, float(rule.params["minutes"]) * 60, rule.device_type)
                    rows = await conn.fetch(
                        "SELECT st.device_id, st.last_seen, d.name, d.device_type, d.register_max, d.space_id, "
                        "st.rules = '{}'::jsonb AND d.last_seen IS NULL AS never "
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
                        text = (f"never reported since it was registered at {last.isoformat()} "
                                f"({rule.params['minutes']} min)" if row["never"] else
                                f"no data for {rule.params['minutes']} min (last at {last.isoformat()})")
                        await record_alarm(conn, Alarm(rule, last, int(last.timestamp() * 1000), text), device)
                        await conn.execute("UPDATE alarm_device_state SET offline_since = last_seen "
                                           "WHERE device_id = $1", row["device_id"])
                        raised += 1
        self.alarms_raised += raised
        return raised


# -- command outcomes (issue 13) -----------------------------------------------------------------
