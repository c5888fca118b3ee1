"""Project changes from the twin service's `registry` events: a project's time zone moved.

Queue `scheduler.registry` (bound to `project.*`) is shared by the replicas: one of them moves the
project's tasks to the new zone and recomputes their next fire from now (never retroactively).
Other replicas' zone caches catch up within `zone_cache_seconds`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from twinbill_common.bus import Delivery
from twinbill_common.errors import PermanentError
from twinbill_common.logging import get_logger
from twinbill_common.schemas import RegistryChanged
from twinbill_common.topology import REGISTRY, WorkQueue
from twinbill_common.zones import ProjectZones
from twinbill_scheduler.domain.crontab import next_fire
from twinbill_scheduler.domain.tasks import Task
from twinbill_scheduler.store import TaskStore

log = get_logger(__name__)
SCHEDULER_REGISTRY = WorkQueue("scheduler.registry", REGISTRY, ("project.*",))


async def handle_project_changed(delivery: Delivery[RegistryChanged], *, zones: ProjectZones,
                                 store: TaskStore, clock: Callable[[], datetime]) -> None:
    """Re-read the project's zone; move its tasks there if it changed."""
    event = delivery.message
    if event.entity != "project":
        return
    try:
        project_id = int(event.id)
    except ValueError:
        raise PermanentError(f"project event with a non-integer id {event.id!r}") from None
    zones.forget(project_id)
    zone = await zones.zone_of(project_id)
    now = clock()

    def reschedule(task: Task) -> datetime | None:
        if not task.enabled:
            return None
        return next_fire(now, crontab=task.crontab, tz=ZoneInfo(zone))

    moved = await store.rezone(project_id, zone=zone, reschedule=reschedule)
    if moved:
        log.info("project time zone changed; tasks rescheduled", project_id=project_id,
                 zone=zone, tasks=moved)
