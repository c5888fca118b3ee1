"""A project's time zone changes (registry event): its tasks move to the new zone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conditions import wait_until
from tests.integration.scheduler.helpers import StaticZones
from twinbill_common.bus import Bus
from twinbill_common.schemas import RegistryChanged
from twinbill_common.topology import REGISTRY
from twinbill_scheduler.domain.crontab import next_fire, parse_crontab
from twinbill_scheduler.settings import SchedulerSettings

Client = TestClient[web.Request, web.Application]


async def test_project_zone_change_reschedules_its_tasks(
        client: Client, zones: StaticZones, settings: SchedulerSettings, db: Any) -> None:
    """After `project.updated`, project 7's daily 09:00 task fires at 09:00 Tokyo time, its
    times render in Tokyo, and another project's task is untouched."""
    crontab = {"month": "*", "day": "*", "hour": "9", "minute": "0"}
    tasks = []
    for project in (7, 8):
        async with client.post("/api/v1/scheduler/task/", json={
                "name": "n", "project_id": project, "device_type": 1, "crontab": crontab}) as r:
            tasks.append((await r.json())["data"])
    other_before = await db.fetchval("SELECT next_fire_at FROM tasks WHERE natrual_key = $1",
                                     tasks[1]["natrual_key"])
    zones.zones[7] = "Asia/Tokyo"
    before = datetime.now(UTC)
    bus = Bus(settings.amqp_url.get_secret_value(), namespace=settings.bus_namespace)
    await bus.connect(declare=False)
    try:
        await bus.publish(REGISTRY, "project.updated",
                          RegistryChanged(entity="project", action="updated", id="7",
                                          project_id=7, data={"timezone": "Asia/Tokyo"}))
    finally:
        await bus.close()

    async def moved() -> bool:
        zone = await db.fetchval("SELECT timezone FROM tasks WHERE natrual_key = $1",
                                 tasks[0]["natrual_key"])
        return bool(zone == "Asia/Tokyo")
    await wait_until(moved, timeout=15, what="project 7's task to move to Asia/Tokyo")

    tokyo = ZoneInfo("Asia/Tokyo")
    fire_at = await db.fetchval("SELECT next_fire_at FROM tasks WHERE natrual_key = $1",
                                tasks[0]["natrual_key"])
    local = fire_at.astimezone(tokyo)
    assert (local.hour, local.minute) == (9, 0)
    assert fire_at == next_fire(before, crontab=parse_crontab(crontab), tz=tokyo)
    async with client.get(f"/api/v1/scheduler/tasks/{tasks[0]['natrual_key']}/") as response:
        shown = (await response.json())["data"]["create_time"]
    created = datetime.fromisoformat(tasks[0]["create_time"])  # rendered in Paris before
    assert round((datetime.fromisoformat(shown) - created).total_seconds() / 3600) in (7, 8)
    assert await db.fetchval("SELECT next_fire_at FROM tasks WHERE natrual_key = $1",
                             tasks[1]["natrual_key"]) == other_before
