"""The alarm rules scale out: two twin replicas split the alarm shards between them, each
device's points are evaluated in order whichever replica holds its shard, and the shards of a
replica that stops are taken over by the other, which goes on raising alarms."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient, TestServer

from tests.integration.alarms.test_alarm_rules import (
    START,
    add_rule,
    events_of,
    project_of,
    readings,
    waiting_for,
)
from tests.integration.twin_timeseries.conftest import Device, make_device, wait_for
from twinbill_common.bus import Bus
from twinbill_common.topology import ALARM_SHARDS, telemetry_slot
from twinbill_twin.app import create_app
from twinbill_twin.keys import POOL
from twinbill_twin.settings import TwinSettings

READINGS = 20
BACKWARDS = {7: 95, 14: 90}  # reading index -> a value below the one before it


def shard_of(device: Device) -> int:
    return telemetry_slot(device.product_key, device.device_key) % ALARM_SHARDS


async def holders(pool: asyncpg.Pool) -> Counter[str]:
    """Live leases per replica."""
    rows = await pool.fetch("SELECT member FROM alarm_shard_leases WHERE member IS NOT NULL AND expires_at > now()")
    return Counter(row["member"] for row in rows)


async def devices_on_every_shard(twin: TestClient[Any, Any], per_shard: int) -> list[Device]:
    """Devices (each in a project of its own with a register rule) until every shard has `per_shard`."""
    pool = twin.app[POOL]
    found: dict[int, list[Device]] = {shard: [] for shard in range(ALARM_SHARDS)}
    while any(len(devices) < per_shard for devices in found.values()):
        device = await make_device(pool)
        if len(found[shard_of(device)]) < per_shard:
            found[shard_of(device)].append(device)
            await add_rule(twin, await project_of(pool, device), "register", {"measurepoint": "total"})
    return [device for devices in found.values() for device in devices]


async def test_two_replicas_split_the_shards_keep_each_device_in_order_and_take_over_a_stopped_one(
        twin: TestClient[Any, Any], publisher: Bus, alarm_settings: TwinSettings) -> None:
    pool = twin.app[POOL]
    devices = await devices_on_every_shard(twin, per_shard=2)
    second: TestClient[Any, Any] = TestClient(TestServer(create_app(alarm_settings)))
    await second.start_server()
    try:
        async def balanced() -> bool:
            return sorted((await holders(pool)).values()) == [ALARM_SHARDS // 2, ALARM_SHARDS // 2]
        await wait_for(balanced)

        # every device's readings, interleaved across devices, one message each
        for index in range(READINGS):
            for device in devices:
                value = BACKWARDS.get(index, 100 + index)
                await readings(publisher, device, [(START + timedelta(minutes=index), value)])
        for device in devices:
            project = await project_of(pool, device)
            await wait_for(waiting_for(twin, project, len(BACKWARDS)))
            descriptions = [event["description"] for event in await events_of(twin, project)]
            # in order, each drop is raised once against the reading just before it
            assert len(descriptions) == 2, (device, descriptions)
            assert "went backwards: 106 -> 95" in descriptions[0]
            assert "went backwards: 113 -> 90" in descriptions[1]
    finally:
        await second.close()  # gives its shards back

    async def all_held_by_the_first() -> bool:
        return list((await holders(pool)).values()) == [ALARM_SHARDS]
    await wait_for(all_held_by_the_first)
    for device in devices:  # every shard, the second replica's former ones included
        await readings(publisher, device, [(START + timedelta(minutes=READINGS), 50)])
    for device in devices:
        project = await project_of(pool, device)
        await wait_for(waiting_for(twin, project, len(BACKWARDS) + 1))
        assert "went backwards: 119 -> 50" in (await events_of(twin, project))[-1]["description"]
