"""The `make run` demo tasks: created through the API, once, firing every two minutes."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient

from twinbill_scheduler.demo import seed_demo_tasks


async def test_seed_demo_tasks_is_idempotent(
        client: TestClient[web.Request, web.Application]) -> None:
    """Seeding twice keeps the same two tasks (water, electricity), re-enabling them."""
    base = str(client.make_url("/"))
    first = await seed_demo_tasks(base, project_id=5)
    async with client.put(f"/api/v1/scheduler/tasks/{first[0]}/status/",
                          json={"enabled": False}) as response:
        assert response.status == 200
    second = await seed_demo_tasks(base, project_id=5)
    assert first == second and len(first) == 2
    async with client.get("/api/v1/scheduler/tasks/?project_id=5&device_type=0") as response:
        data = (await response.json())["data"]
    assert data["count"] == 2
    assert sorted(t["device_type"] for t in data["results"]) == [1, 2]
    assert all(t["enabled"] for t in data["results"])
