"""What the campaign asserts, read straight from the stores: acknowledged points in PostgreSQL,
bills in MongoDB, fire times in the scheduler's table."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import asyncpg
from pymongo import AsyncMongoClient

SAMPLE_QUERY = """
SELECT s.attribute_id, s.ts, s.num::text AS num
FROM samples s
WHERE s.attribute_id = ANY($1::bigint[]) AND s.idx = -1 AND s.ts BETWEEN $2 AND $3
"""
TIMES_QUERY = """
SELECT s.ts FROM samples s WHERE s.attribute_id = $1 AND s.idx = -1 AND s.ts BETWEEN $2 AND $3
"""
ATTRIBUTE_QUERY = """
SELECT d.device_key, a.id
FROM devices d JOIN instances i ON i.device_id = d.id JOIN attributes a ON a.instance_id = i.id
WHERE d.project_id = $1 AND a.measurepoint = 'total'
"""


@dataclass
class PointCheck:
    """Acknowledged points against stored rows."""

    acked: int = 0
    stored: int = 0
    missing: int = 0
    wrong_value: int = 0
    duplicates: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.wrong_value == 0 and self.duplicates == 0


class Stores:
    """Connections to the campaign's stores for checking (re-opened after a store restart)."""

    def __init__(self, *, twin_dsn: str, scheduler_dsn: str, mongo_url: str, project_id: int) -> None:
        self.twin_dsn = twin_dsn
        self.scheduler_dsn = scheduler_dsn
        self.mongo_url = mongo_url
        self.project_id = project_id
        self.attributes: dict[str, int] = {}

    async def _twin_fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        connection = await asyncpg.connect(self.twin_dsn, timeout=10, server_settings={"search_path": "twin"})
        try:
            rows: list[asyncpg.Record] = await connection.fetch(query, *args, timeout=60)
            return rows
        finally:
            await connection.close()

    async def check_points(self, points: dict[tuple[str, int], str]) -> PointCheck:
        """Each acknowledged point stored exactly once with the acknowledged value."""
        result = PointCheck(acked=len(points))
        if not points:
            return result
        if not self.attributes:
            rows = await self._twin_fetch(ATTRIBUTE_QUERY, self.project_id)
            self.attributes = {r["device_key"]: int(r["id"]) for r in rows}
        by_attribute = {self.attributes[key]: key for key in {dk for dk, _ in points}}
        low = min(ts for _, ts in points)
        high = max(ts for _, ts in points)
        rows = await self._twin_fetch(SAMPLE_QUERY, list(by_attribute), low, high)
        seen: Counter[tuple[str, int]] = Counter()
        values: dict[tuple[str, int], str | None] = {}
        for row in rows:
            key = (by_attribute[int(row["attribute_id"])], int(row["ts"]))
            if key in points:
                seen[key] += 1
                values[key] = row["num"]
        for key, value in points.items():
            count = seen.get(key, 0)
            if count == 0:
                result.missing += 1
                if len(result.examples) < 3:
                    result.examples.append(f"missing {key[0]}@{key[1]}")
                continue
            result.stored += 1
            result.duplicates += count - 1
            if not _same_number(values.get(key), value):
                result.wrong_value += 1
                if len(result.examples) < 3:
                    result.examples.append(f"{key[0]}@{key[1]} stored {values.get(key)} acked {value}")
        return result

    async def check_times(self, times: Mapping[str, Sequence[int]]) -> PointCheck:
        """Each acknowledged time stored exactly once, meter by meter (the soak's loss check: the
        times only, not the values, so that tens of millions of points fit in memory)."""
        result = PointCheck()
        if not self.attributes:
            rows = await self._twin_fetch(ATTRIBUTE_QUERY, self.project_id)
            self.attributes = {r["device_key"]: int(r["id"]) for r in rows}
        for device_key, acked in times.items():
            if not acked:
                continue
            rows = await self._twin_fetch(TIMES_QUERY, self.attributes[device_key], min(acked), max(acked))
            seen = Counter(int(row["ts"]) for row in rows)
            distinct = set(acked)
            result.acked += len(distinct)
            for ts in distinct:
                count = seen.get(ts, 0)
                if count == 0:
                    result.missing += 1
                    if len(result.examples) < 3:
                        result.examples.append(f"missing {device_key}@{ts}")
                else:
                    result.stored += 1
                    result.duplicates += count - 1
        return result

    async def wait_points(self, points: dict[tuple[str, int], str], *, within: float) -> tuple[PointCheck, float]:
        """Check until nothing is missing or `within` passes (the twin catching up); returns the
        last check and how long the catch-up took."""
        started = time.monotonic()
        last = PointCheck(acked=len(points), missing=len(points))
        while True:
            try:
                last = await self.check_points(points)
                answered = True
            except (OSError, asyncpg.PostgresError, TimeoutError) as err:
                last.examples = [f"check failed: {err!r}"]
                answered = False
            if (answered and last.missing == 0) or time.monotonic() - started > within:
                return last, time.monotonic() - started
            await asyncio.sleep(1.0)

    async def fires(self, task_keys: list[str]) -> list[dict[str, Any]]:
        connection = await asyncpg.connect(self.scheduler_dsn, timeout=10,
                                           server_settings={"search_path": "scheduler"})
        try:
            rows = await connection.fetch(
                "SELECT task_key, fire_time, period_start, device_type, state, attempts FROM fires "
                "WHERE task_key = ANY($1::text[]) ORDER BY task_key, fire_time", task_keys, timeout=30)
            return [dict(r) for r in rows]
        finally:
            await connection.close()

    async def bills(self) -> list[dict[str, Any]]:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(self.mongo_url, serverSelectionTimeoutMS=10000,
                                                                    tz_aware=True)
        try:
            cursor = client["billing"]["bills"].find(
                {"project_id": self.project_id}, {"device_key": 1, "from_time": 1, "to_time": 1, "run_id": 1})
            return [doc async for doc in cursor]
        finally:
            await client.close()


def _same_number(stored: str | None, acked: str) -> bool:
    if stored is None:
        return False
    try:
        return Decimal(stored) == Decimal(acked)
    except InvalidOperation:
        return stored == acked


@dataclass
class BillCheck:
    """Meter-periods due against bills made, and fire times against the schedule."""

    fires: int = 0
    fire_gaps: int = 0
    fires_unpublished: int = 0
    fires_taken_over: int = 0
    due: int = 0
    made: int = 0
    missing: int = 0
    duplicates: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.fire_gaps == 0 and self.fires_unpublished == 0 and self.missing == 0 and self.duplicates == 0


def check_bills(*, fires: list[dict[str, Any]], bills: list[dict[str, Any]], acked_ts: dict[str, list[int]],
                device_types: dict[str, int], fired_from: datetime, fired_to: datetime) -> BillCheck:
    """For each fire in [fired_from, fired_to]: claimed once, published, no fire time skipped; and
    every meter of its device type with an acknowledged reading before the period and one inside it
    has exactly one bill for the period (and no bill overlaps another of the same meter)."""
    result = BillCheck()
    by_task: dict[str, list[dict[str, Any]]] = {}
    for fire in fires:
        by_task.setdefault(fire["task_key"], []).append(fire)
    made: Counter[tuple[str, datetime, datetime]] = Counter(
        (b["device_key"], b["from_time"], b["to_time"]) for b in bills)
    result.duplicates += sum(count - 1 for count in made.values() if count > 1)
    result.duplicates += _overlaps(bills)
    second = timedelta(seconds=1)
    for chain in by_task.values():
        for previous, fire in zip([None, *chain[:-1]], chain, strict=True):
            if previous is not None and fire["period_start"] != previous["fire_time"]:
                result.fire_gaps += 1
                if len(result.examples) < 3:
                    result.examples.append(f"fire {fire['fire_time']:%H:%M} follows {previous['fire_time']:%H:%M}")
            if not fired_from <= fire["fire_time"] <= fired_to:
                continue
            result.fires += 1
            result.fires_unpublished += fire["state"] != "published"
            result.fires_taken_over += fire["attempts"] > 1
            start_ms = int((fire["period_start"] + second).timestamp() * 1000)
            end_ms = int((fire["fire_time"] - second).timestamp() * 1000)
            for device_key, device_type in device_types.items():
                if device_type != fire["device_type"]:
                    continue
                times = acked_ts.get(device_key, [])
                if not (any(t < start_ms - 1000 for t in times) and any(start_ms <= t <= end_ms for t in times)):
                    continue
                result.due += 1
                count = made.get((device_key, fire["period_start"], fire["fire_time"]), 0)
                result.made += min(count, 1)
                if count == 0:
                    result.missing += 1
                    if len(result.examples) < 3:
                        result.examples.append(f"no bill {device_key} {fire['period_start']:%H:%M}-"
                                               f"{fire['fire_time']:%H:%M}")
    return result


def _overlaps(bills: list[dict[str, Any]]) -> int:
    by_device: dict[str, list[tuple[datetime, datetime]]] = {}
    for bill in bills:
        by_device.setdefault(bill["device_key"], []).append((bill["from_time"], bill["to_time"]))
    overlaps = 0
    for periods in by_device.values():
        periods = sorted(set(periods))
        overlaps += sum(1 for (_, end), (start, _) in itertools.pairwise(periods) if start < end)
    return overlaps
