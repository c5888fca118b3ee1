"""Tasks and fires as the scheduler holds them, and how a task renders in seed 000's shape."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from twinbill_common.times import seed000_time
from twinbill_scheduler.domain.crontab import Crontab


@dataclass(frozen=True)
class Task:
    """One scheduled billing task. `natrual_key` is seed 000's (misspelt) public id."""

    natrual_key: str
    name: str
    project_id: int
    device_type: int
    crontab: Crontab
    enabled: bool
    description: str
    timezone: str
    next_fire_at: datetime | None
    last_run_at: datetime | None
    create_time: datetime
    update_time: datetime


@dataclass(frozen=True)
class DueTask:
    """A task whose next fire time has come: what a claim needs to compute the following one."""

    natrual_key: str
    due: datetime
    crontab: Crontab
    timezone: str


@dataclass(frozen=True)
class Claim:
    """A claim to make: advance `natrual_key` from `due` to `next_fire`; the period starts at
    `period_start` (the schedule's previous fire time)."""

    natrual_key: str
    due: datetime
    next_fire: datetime
    period_start: datetime


@dataclass(frozen=True)
class Fire:
    """A claimed fire time of a task: one billing run to request."""

    task_key: str
    fire_time: datetime
    period_start: datetime
    project_id: int
    device_type: int

    @property
    def run_id(self) -> str:
        """Deterministic run id: the same fire always names the same run."""
        return f"{self.task_key}:{int(self.fire_time.timestamp())}"


def local_iso(instant: datetime | None, tz: ZoneInfo) -> str | None:
    """Seed 000's time format: naive ISO local time in the project's zone, to the second."""
    return None if instant is None else seed000_time(instant, tz)


def render_task(task: Task) -> dict[str, Any]:
    """The seed-000 JSON of a task, keys in the seed's order."""
    tz = ZoneInfo(task.timezone)
    return {
        "name": task.name,
        "crontab": task.crontab.as_dict(),
        "natrual_key": task.natrual_key,
        "project_id": task.project_id,
        "device_type": task.device_type,
        "last_run_at": local_iso(task.last_run_at, tz),
        "enabled": task.enabled,
        "update_time": local_iso(task.update_time, tz),
        "create_time": local_iso(task.create_time, tz),
        "description": task.description,
    }
