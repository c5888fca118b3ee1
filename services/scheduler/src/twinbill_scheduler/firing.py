"""The firing loop: claim due fire times atomically, request a billing run for each, confirm.

Every replica runs this loop. A round (1) takes over fires whose lease ran out unconfirmed,
(2) reads due tasks, computes each one's following fire time and the period start from its
schedule (never the clock), (3) claims them in one atomic statement (store.claim), (4) publishes
one RunBilling per won fire with confirms, and (5) marks the confirmed ones published. A task
advances one fire time per claim, so after downtime its missed fires come one by one, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from twinbill_common.bus import Bus
from twinbill_common.errors import BusUnavailable
from twinbill_common.logging import get_logger
from twinbill_common.schemas import RunBilling
from twinbill_common.schemas.registry import DeviceType
from twinbill_common.topology import BILLING
from twinbill_scheduler.domain.crontab import Crontab, next_fire, previous_fire
from twinbill_scheduler.domain.tasks import Claim, DueTask, Fire
from twinbill_scheduler.metrics import SchedulerMetrics
from twinbill_scheduler.store import TaskStore

log = get_logger(__name__)
RUN_REQUESTED = "run.requested"


def default_replica_id() -> str:
    """hostname-pid: unique per process on a machine."""
    return f"{socket.gethostname()}-{os.getpid()}"


@functools.lru_cache(maxsize=4096)
def _schedule_around(due: datetime, crontab: Crontab, timezone: str) -> tuple[datetime, datetime]:
    """(following fire, previous fire) of `due`; cached, as many tasks share a schedule."""
    tz = ZoneInfo(timezone)
    return (next_fire(due, crontab=crontab, tz=tz), previous_fire(due, crontab=crontab, tz=tz))


def plan_claims(due: Sequence[DueTask]) -> list[Claim]:
    """For each due task: its following fire time and the period start, from the schedule."""
    claims = []
    for task in due:
        following, previous = _schedule_around(task.due, task.crontab, task.timezone)
        claims.append(Claim(natrual_key=task.natrual_key, due=task.due, next_fire=following,
                            period_start=previous))
    return claims


def run_message(fire: Fire) -> RunBilling:
    """The billing command for one fire; the same fire always yields the same run_id."""
    return RunBilling(
        message_id=fire.run_id, run_id=fire.run_id, project_id=fire.project_id,
        device_type=DeviceType(fire.device_type), task_key=fire.task_key,
        period_start=fire.period_start, period_end=fire.fire_time, fire_time=fire.fire_time,
    )


class Firer:
    """One replica's firing loop."""

    def __init__(self, store: TaskStore, bus: Bus, *, metrics: SchedulerMetrics, replica: str,
                 batch: int = 1000, poll_interval: float = 0.2, lease_seconds: float = 30.0,
                 publish_concurrency: int = 2000, max_inflight: int = 4,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store = store
        self.bus = bus
        self.metrics = metrics
        self.replica = replica
        self.batch = batch
        self.poll_interval = poll_interval
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._limit = asyncio.Semaphore(publish_concurrency)
        self._inflight = asyncio.Semaphore(max_inflight)
        self._retry: list[Fire] = []  # not confirmed: publish again next round
        self._unmarked: list[Fire] = []  # confirmed, but recording that failed

    async def run(self) -> None:
        """Fire forever; a database or broker outage pauses the loop, it never ends it.

        Claiming the next batch overlaps with confirming the previous ones (at most
        `max_inflight` batches in flight): a task is not claimed again while a fire of it
        is unpublished, so each task's runs still go out in order.
        """
        log.info("firing loop started", replica=self.replica, batch=self.batch)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._heartbeat())
                await self._claim_and_publish_forever(group)
        finally:
            with contextlib.suppress(Exception):  # best effort: others take over sooner
                await self.store.retire(self.replica)

    async def _heartbeat(self) -> None:
        """Tell the other replicas this one is alive, a few times per lease."""
        while True:
            try:
                await self.store.heartbeat(self.replica)
            except Exception as err:  # noqa: BLE001  # any database failure: warn, beat again
                log.warning("heartbeat failed", error=repr(err))
            await asyncio.sleep(max(0.2, self.lease_seconds / 5))

    async def _claim_and_publish_forever(self, group: asyncio.TaskGroup) -> None:
        next_count = 0.0
        while True:
            try:
                fires, busy = await self.claim_round()
                if time.monotonic() >= next_count:  # a gauge; no need to count every round
                    self.metrics.tasks_enabled.set(await self.store.count_enabled())
                    next_count = time.monotonic() + 10.0
            except Exception:  # asyncpg and aio-pika raise many classes; the loop outlives them
                log.exception("firing round failed, retrying")
                fires, busy = [], False
            if fires:
                await self._inflight.acquire()
                group.create_task(self._publish_batch(fires))
            if not busy:
                await asyncio.sleep(self.poll_interval)

    async def round(self) -> bool:
        """One claim-and-publish round, publishes awaited; True when more may be due now."""
        fires, busy = await self.claim_round()
        await self.publish(fires)
        return busy

    async def claim_round(self) -> tuple[list[Fire], bool]:
        """Take over fires whose lease ran out, then claim due fires: what to publish now."""
        if self._unmarked:
            await self.store.mark_published(self._unmarked)
            self._unmarked = []
        retry, self._retry = self._retry, []
        stale = retry + await self.store.take_stale(lease_seconds=self.lease_seconds,
                                            replica=self.replica, limit=self.batch)
        if stale:
            self.metrics.fires_retaken.inc(len(stale))
            log.warning("re-publishing fires whose lease ran out", count=len(stale))
        started = time.perf_counter()
        due = await self.store.due(limit=self.batch)
        if not due:
            return stale, bool(stale)
        claims = await asyncio.to_thread(plan_claims, due)
        planned = time.perf_counter()
        fires = await self.store.claim(claims, replica=self.replica)
        log.debug("claimed", due=len(due), won=len(fires),
                  select_plan_s=round(planned - started, 3),
                  claim_s=round(time.perf_counter() - planned, 3))
        self.metrics.fires_claimed.inc(len(fires))
        return stale + fires, True

    async def _publish_batch(self, fires: Sequence[Fire]) -> None:
        try:
            await self.publish(fires)
        except Exception:  # publish() kept what it could not record; the loop goes on
            log.exception("recording published fires failed; retried next round")
        finally:
            self._inflight.release()

    async def publish(self, fires: Sequence[Fire]) -> None:
        """Publish each fire's run with confirms, then record the confirmed ones."""
        started = time.perf_counter()
        results = await asyncio.gather(*(self._publish_one(fire) for fire in fires))
        confirmed = [fire for fire, ok in zip(fires, results, strict=True) if ok]
        published = time.perf_counter()
        self._retry.extend(fire for fire, ok in zip(fires, results, strict=True) if not ok)
        try:
            await self.store.mark_published(confirmed)
        except Exception:
            self._unmarked.extend(confirmed)
            raise
        if fires:
            log.debug("batch published", fires=len(fires), confirmed=len(confirmed),
                      publish_s=round(published - started, 3),
                      mark_s=round(time.perf_counter() - published, 3))

    async def _publish_one(self, fire: Fire) -> bool:
        async with self._limit:
            try:
                await self.bus.publish(BILLING, RUN_REQUESTED, run_message(fire))
            except BusUnavailable as err:
                self.metrics.publish_failures.inc()
                log.warning("run not confirmed; retried next round", run_id=fire.run_id,
                            error=str(err))
                return False
        self.metrics.fires_published.inc()
        self.metrics.lateness.observe(max(0.0, (self.clock() - fire.fire_time).total_seconds()))
        return True
