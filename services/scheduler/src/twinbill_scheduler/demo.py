"""Demo tasks for `make run`: water and electricity billing every two minutes, through the API."""

from __future__ import annotations

from typing import Any

import aiohttp

DEMO_TASKS = (
    {"name": "演示：水表每2分钟出账", "device_type": 1,
     "crontab": {"month": "*", "day": "*", "hour": "*", "minute": "*/2"},
     "enabled": True, "description": "demo: water meters billed every 2 minutes"},
    {"name": "演示：电表每2分钟出账", "device_type": 2,
     "crontab": {"month": "*", "day": "*", "hour": "*", "minute": "1-59/2"},
     "enabled": True, "description": "demo: electricity meters billed every 2 minutes"},
)


class DemoSetupFailed(RuntimeError):
    """The scheduler refused a demo request."""


async def _call(session: aiohttp.ClientSession, method: str, url: str,
                body: object = None) -> Any:
    async with session.request(method, url, json=body) as response:
        answer = await response.json()
        if response.status != 200 or answer.get("meta", {}).get("code") != 0:
            raise DemoSetupFailed(f"{method} {url} -> {response.status} {answer}")
        return answer["data"]


async def seed_demo_tasks(base_url: str, *, project_id: int) -> list[str]:
    """Create (once) and enable the demo tasks of `project_id`; return their natrual_keys.

    Idempotent: a task already there under the same name is kept (and switched on).
    """
    base = base_url.rstrip("/")
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        existing: dict[str, dict[str, Any]] = {}
        page = 1
        while True:
            data = await _call(session, "GET", f"{base}/api/v1/scheduler/tasks/?project_id="
                               f"{project_id}&device_type=0&page_size=100&page={page}")
            existing.update({task["name"]: task for task in data["results"]})
            if not data["next"]:
                break
            page += 1
        keys = []
        for spec in DEMO_TASKS:
            task = existing.get(str(spec["name"]))
            if task is None:
                task = await _call(session, "POST", f"{base}/api/v1/scheduler/task/",
                                   {**spec, "project_id": project_id})
            elif not task["enabled"]:
                await _call(session, "PUT",
                            f"{base}/api/v1/scheduler/tasks/{task['natrual_key']}/status/",
                            {"enabled": True})
            keys.append(task["natrual_key"])
        return keys
