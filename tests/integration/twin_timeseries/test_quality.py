"""A struct point's quality comes back with raw points when asked (`quality=true`, issue 12)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.integration.twin_timeseries.conftest import count_samples, make_device, measurements, publish, wait_for
from twinbill_common.bus import Bus

T0 = 1_534_147_200_000  # 2018-08-13T08:00:00Z


async def test_struct_qualities_beside_raw_values(publisher: Bus, pool: asyncpg.Pool,
                                                  twin: TestClient[Any, Any]) -> None:
    device = await make_device(pool, timezone="UTC")
    await publish(publisher, measurements(device, [
        (T0, {"reading": {"value": Decimal("10.5"), "quality": 2}}),
        (T0 + 1000, {"reading": {"value": Decimal("11"), "quality": 9}})]))

    async def stored() -> bool:
        return await count_samples(pool, device.attributes["reading"]) == 2
    await wait_for(stored)
    url = f"/dt/open/v1/instance/attribute/{device.attributes['reading']}"
    window = {"start": str(T0 // 1000), "end": str(T0 // 1000 + 60)}
    body = await (await twin.get(url, params={**window, "quality": "true"})).json()
    series = body["data"]["value"][0]
    assert series["dps"] == {str(T0 // 1000): 10.5, str(T0 // 1000 + 1): 11}
    assert series["quality"] == {str(T0 // 1000): 2, str(T0 // 1000 + 1): 9}
    plain = await (await twin.get(url, params=window)).json()
    assert "quality" not in plain["data"]["value"][0]
    refused = await twin.get(url, params={**window, "quality": "true", "downsample": "1m-avg"})
    assert refused.status == 400 and "quality" in (await refused.json())["data"]["errors"]
