"""Project time zones in billing: cached with a TTL, and the history/time window uses them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from bson import ObjectId

from twinbill_billing.errors import TwinUnavailable
from twinbill_billing.twin import HttpTwinClient
from twinbill_common.mongo import free_port

from .conftest import Billing
from .fake_twin import TwinData


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_project_zone_is_cached_for_the_ttl_then_reread(twin: tuple[TwinData, str]) -> None:
    """A zone change reaches billing once the cached answer is older than zone_ttl."""
    data, url = twin
    data.timezones[5] = "Asia/Shanghai"
    clock = FakeClock()
    async with aiohttp.ClientSession() as session:
        client = HttpTwinClient(url, session=session, zone_ttl=300, monotonic=clock)
        assert await client.project_timezone(5) == "Asia/Shanghai"
        data.timezones[5] = "Europe/Paris"
        clock.now += 299
        assert await client.project_timezone(5) == "Asia/Shanghai"  # still cached
        assert data.calls["project"] == 1
        clock.now += 2
        assert await client.project_timezone(5) == "Europe/Paris"  # expired: read again
        assert data.calls["project"] == 2


async def test_an_unreachable_twin_is_not_cached() -> None:
    """No answer raises TwinUnavailable every time; nothing is remembered from it."""
    async with aiohttp.ClientSession() as session:
        client = HttpTwinClient(f"http://127.0.0.1:{free_port()}", session=session)
        for _ in range(2):
            with pytest.raises(TwinUnavailable):
                await client.project_timezone(5)


def bill(project_id: int, to_time: datetime) -> dict[str, Any]:
    """A bill recorded in Asia/Shanghai whose period ends at `to_time` (UTC)."""
    return {
        "_id": ObjectId(), "project_id": project_id, "device_id": 9001, "device_key": "M9001",
        "device_type": 2, "water_meter_kind": None, "house_address": ["", "", "", "", ""],
        "residents": [], "opening_reading": "1", "closing_reading": "2", "consumption": "1",
        "charge": "0.50", "charge_minor": 50, "timezone": "Asia/Shanghai",
        "from_time": datetime(2024, 2, 1, 2, tzinfo=UTC), "to_time": to_time,
        "created_at": to_time, "run_id": "test", "job_id": "test:0",
    }


async def days(billing: Billing, project_id: int, date: str) -> list[str]:
    """Meter numbers of the bills history/time lists for one whole day."""
    path = (f"/api/v1/scheduler/history/time/?project_id={project_id}&device_type=10"
            f"&start_date={date}&end_date={date}")
    async with billing.http.get(billing.url + path) as response:
        body: dict[str, Any] = await response.json()
        assert response.status == 200, body
    return [item["device_id"] for item in body["data"]]


async def test_history_time_days_follow_the_twins_zone(billing: Billing,
                                                        twin: tuple[TwinData, str]) -> None:
    """2024-03-01T02:00Z is 1 March in Shanghai (the bills' zone) but 29 February in New York
    (the project's zone now, per the twin); a project the twin cannot tell falls back to the
    bills' zone."""
    data, _ = twin
    data.timezones[61] = "America/New_York"
    end = datetime(2024, 3, 1, 2, tzinfo=UTC)
    await billing.db.bills.insert_many([bill(61, end), bill(62, end)])
    assert await days(billing, 61, "2024-3-1") == []
    assert await days(billing, 61, "2024-2-29") == ["M9001"]
    assert await days(billing, 62, "2024-3-1") == ["M9001"]  # twin: 404 -> the bills' zone
    assert await days(billing, 62, "2024-2-29") == []


async def test_readyz_names_a_consumer_that_stopped(billing: Billing) -> None:
    """Every background loop is a readiness check; a stopped one makes /readyz 503, named."""
    async with billing.http.get(billing.url + "/readyz") as response:
        body = await response.json()
        assert response.status == 200, body
    assert {"runs-consumer", "jobs-consumer", "dead-letter-watcher", "queue-depth"} <= set(body["checks"])
    [jobs] = [task for task in asyncio.all_tasks() if task.get_name() == "billing.jobs-consumer"]
    jobs.cancel()  # the loop ends, as it would if it died
    await asyncio.wait([jobs], timeout=10)
    assert jobs.done()
    async with billing.http.get(billing.url + "/readyz") as response:
        body = await response.json()
        assert response.status == 503, body
    assert body["failures"] == {"jobs-consumer": "RuntimeError: background task jobs-consumer stopped"}
