"""Helpers of the scheduler integration tests: fixed project zones, reading the runs queue."""

from __future__ import annotations

import aio_pika

from twinbill_common.schemas import RunBilling
from twinbill_common.topology import BILLING_RUNS


async def drain_runs(amqp_url: str, namespace: str) -> list[RunBilling]:
    """Every RunBilling waiting on the namespace's billing.runs queue, in queue order."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(f"{namespace}{BILLING_RUNS.name}", ensure=True)
        runs = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            runs.append(RunBilling.model_validate_json(message.body))
        return runs
    finally:
        await connection.close()


class StaticZones:
    """Fixed zones per project: the scheduler tests' ProjectZones, no twin service needed."""

    def __init__(self, zones: dict[int, str] | None = None, *, default: str) -> None:
        self.zones = dict(zones or {})
        self.default = default

    async def zone_of(self, project_id: int) -> str:
        """The configured zone, else the default."""
        return self.zones.get(project_id, self.default)

    def forget(self, project_id: int) -> None:
        """Nothing is cached."""
