"""The crontab preview: the next fire times in the project's zone, before a task is saved."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from twinbill_scheduler.api import fire_times
from twinbill_scheduler.domain.crontab import parse_crontab

Client = TestClient[web.Request, web.Application]


async def preview(client: Client, **query: str) -> tuple[int, Any]:
    async with client.get("/api/v1/scheduler/crontab/preview/", params=query) as response:
        return response.status, await response.json()


def test_fire_times_are_local_and_strictly_after() -> None:
    """Five local fire times after the instant, in the zone, the first strictly later."""
    crontab = parse_crontab({"month": "*", "day": "1", "hour": "0", "minute": "0"})
    after = datetime(2026, 1, 31, 16, tzinfo=UTC)  # 2026-02-01 00:00 in Shanghai: excluded
    assert fire_times(after, crontab=crontab, zone="Asia/Shanghai", count=3) == [
        "2026-03-01T00:00:00", "2026-04-01T00:00:00", "2026-05-01T00:00:00"]


async def test_preview_answers_five_fire_times_in_the_project_zone(client: Client) -> None:
    """Project 7 runs in Europe/Paris (the test's zones): the answer names the zone and five times."""
    status, answer = await preview(client, project_id="7", month="*", day="L", hour="23", minute="30")
    assert status == 200, answer
    data = answer["data"]
    assert data["timezone"] == "Europe/Paris"
    assert len(data["fire_times"]) == 5
    assert all(t.endswith("T23:30:00") for t in data["fire_times"])
    assert data["fire_times"] == sorted(data["fire_times"])


async def test_preview_names_each_bad_field(client: Client) -> None:
    """An invalid crontab is a 400 naming the field, in the seed envelope; nothing else is needed."""
    status, answer = await preview(client, project_id="7", month="2", day="30", hour="24", minute="0")
    assert status == 400
    errors = answer["data"]["errors"]
    assert "crontab.hour" in errors and "crontab.day" in errors
    assert "crontab.hour" in answer["meta"]["message"]
    status, answer = await preview(client, month="*", day="*", hour="*", minute="0")
    assert status == 400 and "project_id" in answer["data"]["errors"]
