"""The scheduler's background loops are watched: one that stops makes /readyz fail, naming it."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from tests.conditions import wait_until
from tests.integration.scheduler.helpers import StaticZones
from twinbill_scheduler.app import create_app
from twinbill_scheduler.settings import SchedulerSettings


def running_task(name: str) -> asyncio.Task[Any]:
    """The app's background task of that name."""
    found = [task for task in asyncio.all_tasks() if task.get_name() == name]
    assert len(found) == 1, [task.get_name() for task in asyncio.all_tasks()]
    return found[0]


async def test_readyz_names_a_loop_that_stopped(settings: SchedulerSettings,
                                                zones: StaticZones) -> None:
    """Both loops are checked while they run; when the firing loop stops, /readyz answers 503
    naming it, and the registry consumer still counts as running."""
    app = create_app(settings.model_copy(update={"firing_enabled": True}), zones=zones)
    async with TestClient(TestServer(app)) as client:
        async with client.get("/readyz") as response:
            body = await response.json()
            assert response.status == 200, body
        assert {"firing", "registry-consumer"} <= set(body["checks"])

        firing = running_task("scheduler.firing")
        firing.cancel()  # the loop ends, as it would if it died

        async def firing_stopped() -> bool:
            return firing.done()

        await wait_until(firing_stopped, timeout=10, what="the firing loop to stop")
        async with client.get("/readyz") as response:
            body = await response.json()
            assert response.status == 503, body
        assert body["failures"] == {"firing": "RuntimeError: background task firing stopped"}
