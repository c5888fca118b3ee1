"""GET /dt/open/v1/instance/attribute/{id} on the real service: seed 002's examples with the
documented shape, State/Description fields, errors, and downsampled answers equal to a reference
computed from the raw points (rollups with raw edges, late data included)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest
from aiohttp.test_utils import TestClient

from twinbill_common.bus import Bus
from twinbill_twin.keys import POOL

from .conftest import Device, count_samples, make_device, measurements, publish, wait_for

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
T0 = 1_534_147_200_000  # the seed example's first timestamp (2018-08-13T08:00:00Z)
PATH = "/dt/open/v1/instance/attribute/{}"


def _same_shape(actual: Any, expected: Any, where: str = "") -> None:
    """Field by field: the same keys, and values of the same JSON type."""
    if isinstance(expected, dict) and where not in (".data.value[0].dps",):
        assert isinstance(actual, dict), where
        assert set(actual) == set(expected), f"{where}: {set(actual) ^ set(expected)}"
        for key in expected:
            _same_shape(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and actual, where
        _same_shape(actual[0], expected[0], f"{where}[0]")
    elif isinstance(expected, dict):  # dps: Unix-second string keys, numeric values
        assert actual and all(k.isdigit() and len(k) == 10 for k in actual), where
        assert all(isinstance(v, int | float) for v in actual.values()), where
    else:
        assert type(actual) is type(expected), f"{where}: {actual!r} vs {expected!r}"


async def _publish_points(bus: Bus, pool: asyncpg.Pool, device: Device, attr: str,
                          points: list[tuple[int, Any]], *, chunk: int = 50) -> None:
    for i in range(0, len(points), chunk):
        await publish(bus, measurements(device, [(ts, {attr: v}) for ts, v in points[i:i + chunk]]))

    async def done() -> bool:
        return await count_samples(pool, device.attributes[attr]) >= len(points)
    await wait_for(done)


@pytest.fixture(scope="module")
async def seed_device(twin: TestClient[Any, Any], publisher: Bus) -> Device:
    """A device whose `humidity` has a point a minute from T0 for two hours, and one a minute
    for the last two hours (for the relative example)."""
    pool = twin.app[POOL]
    device = await make_device(pool)
    now = int(time.time()) * 1000
    points = [(T0 + i * 60_000, Decimal(19 + i % 3)) for i in range(120)]
    points += [(now - 7_000_000 + i * 60_000, Decimal(i)) for i in range(110)]
    await _publish_points(publisher, pool, device, "humidity", points)
    return device


@pytest.mark.parametrize("query", [
    "start=1534147200&downsample=10m-count&aggregator=avg",
    "start=2h-ago&downsample=15m-count&aggregator=avg",
    "start=2018/08/13&downsample=15m-count&aggregator=avg",
])
async def test_seed_examples_have_the_documented_shape(
    twin: TestClient[Any, Any], seed_device: Device, query: str
) -> None:
    expected = json.loads((FIXTURES / "seed002_attribute_stream.json").read_text())
    resp = await twin.get(PATH.format(seed_device.attributes["humidity"]) + "?" + query)
    assert resp.status == 200
    body = await resp.json()
    _same_shape(body, expected)
    assert (body["code"], body["message"]) == (200, "success")
    data = body["data"]
    assert data["attrtype"] == "Stream" and data["metric"] == "humidity"
    series = data["value"]
    assert len(series) == 1 and series[0]["metric"] == "humidity"
    assert series[0]["tags"] == {"device_id": seed_device.device_key,
                                 "dt_name": seed_device.instance_name}
    assert data["deviceid"] == seed_device.device_key
    dps = series[0]["dps"]
    if query.startswith("start=2h-ago"):
        assert sum(dps.values()) >= 100 and all(int(k) % 900 == 0 for k in dps)
    else:
        window = {k: v for k, v in dps.items() if int(k) < T0 // 1000 + 7200}
        step = 600 if "10m" in query else 900
        assert all(int(k) % step == 0 for k in window)
        assert sum(window.values()) == 120
        assert window[str(T0 // 1000)] == step // 60


async def test_state_and_description_return_the_current_value(
    twin: TestClient[Any, Any], publisher: Bus, pool: asyncpg.Pool
) -> None:
    expected = json.loads((FIXTURES / "seed002_attribute_state.json").read_text())
    device = await make_device(pool)
    valve = device.attributes["valve"]
    resp = await twin.get(PATH.format(valve))
    body = await resp.json()
    _same_shape(body, expected)
    assert body["data"]["value"] == "" and body["data"]["atime"] == 0 and body["data"]["stime"] == 0
    await publish(publisher, measurements(device, [(T0, {"valve": False})], received_at=T0 + 5))

    async def moved() -> bool:
        return bool(await pool.fetchval("SELECT value FROM attributes WHERE id = $1", valve) == "false")
    await wait_for(moved)
    body = await (await twin.get(PATH.format(valve))).json()
    assert body["data"] | {"ctime": 0, "mtime": 0} == {
        "id": valve, "name": "valve", "displayname": "显示-valve", "attrtype": "State",
        "datatype": "Boolean", "value": "false", "unit": "", "ctime": 0, "mtime": 0,
        "instance": device.instance_id, "expectvalue": "", "metric": "valve",
        "deviceid": device.device_key, "atime": T0 + 5, "stime": T0}
    described = await (await twin.get(PATH.format(device.attributes["location"]))).json()
    _same_shape(described, expected)
    assert described["data"]["value"] == "3rd floor"


@pytest.mark.parametrize(("query", "parameter"), [
    ("", "start"),
    ("start=yesterday", "start"),
    ("start=1534147200&end=1534140000", "end"),
    ("start=1534147200&end=2018/02/30", "end"),
    ("start=1534147200&downsample=1h", "downsample"),
    ("start=1534147200&downsample=1h-avg-maybe", "downsample"),
    ("start=1534147200&aggregator=median", "aggregator"),
    ("start=2018/08/13&timezone=Mars/Base", "timezone"),
    ("start=1h-ago&downsample=99999999999999999999h-avg", "downsample"),
    ("start=1534147200&downsample=200y-sum", "downsample"),
])
async def test_bad_parameters_are_400_naming_the_parameter(
    twin: TestClient[Any, Any], seed_device: Device, query: str, parameter: str
) -> None:
    resp = await twin.get(PATH.format(seed_device.attributes["humidity"]) + "?" + query)
    assert resp.status == 400
    body = await resp.json()
    assert (body["code"], body["message"]) == (400, "paramater error")
    assert parameter in body["data"]["errors"], body
    assert body["data"]["detail"].startswith(parameter)


async def test_unknown_attribute_is_404_and_bad_id_400(twin: TestClient[Any, Any]) -> None:
    resp = await twin.get(PATH.format(987654321) + "?start=1h-ago")
    assert resp.status == 404
    assert (await resp.json())["message"] == "not found"
    resp = await twin.get(PATH.format("abc"))
    assert resp.status == 400
    assert "id" in (await resp.json())["data"]["errors"]


async def test_computed_values_read_as_the_decimal_sum(
    twin: TestClient[Any, Any], publisher: Bus, pool: asyncpg.Pool
) -> None:
    """0.1 + 0.2 summed in doubles is 0.30000000000000004; the answer says 0.3, as the exact
    decimal sum (Decimal, independent of the store) does, and raw values keep their digits."""
    device = await make_device(pool)
    values = [Decimal("0.1"), Decimal("0.2"), Decimal("4852.092"), Decimal("9704.0")]
    await _publish_points(publisher, pool, device, "humidity",
                          [(T0 + i * 1000, v) for i, v in enumerate(values)], chunk=10)
    url = PATH.format(device.attributes["humidity"])
    resp = await twin.get(url, params={"start": str(T0 // 1000), "end": str(T0 // 1000 + 1),
                                       "downsample": "1h-sum"})
    [series] = (await resp.json())["data"]["value"]
    assert list(series["dps"].values()) == [float(values[0] + values[1])]
    resp = await twin.get(url, params={"start": str(T0 // 1000), "downsample": "0all-sum"})
    [series] = (await resp.json())["data"]["value"]
    assert list(series["dps"].values()) == [float(sum(values))]
    resp = await twin.get(url, params={"start": str(T0 // 1000), "aggregator": "none"})
    [series] = (await resp.json())["data"]["value"]
    assert list(series["dps"].values()) == [0.1, 0.2, 4852.092, 9704]


async def test_downsamples_equal_a_reference_from_raw_points(
    twin: TestClient[Any, Any], publisher: Bus, pool: asyncpg.Pool
) -> None:
    """Rollups (whole minutes/hours) plus raw edges give what the raw points give; points
    arrive shuffled, so late data must have been merged into the rollups."""
    device = await make_device(pool)
    rng = random.Random(7)
    points = [(T0 + i * 7_000 + rng.randrange(0, 3000), Decimal(rng.randrange(-5000, 5000)) / 100)
              for i in range(1600)]              # ~3.1 hours of irregular points
    shuffled = points[:]
    rng.shuffle(shuffled)
    await _publish_points(publisher, pool, device, "humidity", shuffled, chunk=80)
    start, end = T0 + 1_234_567, T0 + 10_000_000    # not aligned to minutes or hours
    inside = [(ts, float(v)) for ts, v in points if start <= ts <= end]
    url = PATH.format(device.attributes["humidity"])
    reference: dict[str, Callable[[Any], Any]] = {
        "avg": np.mean, "sum": np.sum, "min": np.min, "max": np.max, "count": len,
        "dev": np.std, "first": lambda v: v[0], "last": lambda v: v[-1],
        "p95": lambda v: np.percentile(v, 95, method="weibull"),
        "ep90r3": lambda v: np.percentile(v, 90, method="closest_observation"),
        "ep90r7": lambda v: np.percentile(v, 90, method="linear"),
    }
    # (bucket width, offset from the epoch grid, downsample unit, time zone): 1hc in Asia/Kabul
    # (UTC+4:30) starts its hours at :30 UTC, so only the minute rollup can serve it
    for interval_ms, offset, unit, zone in ((3_600_000, 0, "1h", "UTC"), (60_000, 0, "1m", "UTC"),
                                            (420_000, 0, "7m", "UTC"), (0, 0, "0all", "UTC"),
                                            (3_600_000, 1_800_000, "1hc", "Asia/Kabul")):
        buckets: dict[int, list[float]] = {}
        for ts, v in inside:
            key = start if interval_ms == 0 else ts - (ts - offset) % interval_ms
            buckets.setdefault(key, []).append(v)
        for name, fn in reference.items():
            resp = await twin.get(url, params={"start": str(start), "end": str(end), "timezone": zone,
                                               "downsample": f"{unit}-{name}"})
            assert resp.status == 200, await resp.text()
            series = (await resp.json())["data"]["value"]
            dps = series[0]["dps"]
            # ms keys only where a bucket starts off a whole second (0all from start)
            in_ms = {int(k) if len(k) > 10 else int(k) * 1000: v for k, v in dps.items()}
            assert set(in_ms) == set(buckets), (unit, name)
            assert all(len(k) == (13 if unit == "0all" else 10) for k in dps)
            for key, values in buckets.items():
                got = in_ms[key]
                assert got == pytest.approx(float(fn(np.array(values))), rel=1e-9, abs=1e-9), (unit, name, key)


async def test_edge_buckets_holding_no_point_outside_the_query_read_from_the_rollup_rows(
    twin: TestClient[Any, Any], publisher: Bus, pool: asyncpg.Pool
) -> None:
    """A range that starts and ends inside buckets whose points all lie in it (a query up to now,
    say) reads those edge buckets from the rollup rows in the same statement as the rest; the
    answer is still what the raw points give. Then a point outside the range lands in the last
    bucket: that bucket comes from the finer reads and still leaves that point out."""
    device = await make_device(pool)
    points = [(T0 + 600_000 + i * 13_000, Decimal(i % 17) + Decimal("0.25")) for i in range(700)]
    await _publish_points(publisher, pool, device, "humidity", points, chunk=100)
    start, end = T0 + 300_000, points[-1][0] + 4_321   # both inside a partial hour and minute
    url = PATH.format(device.attributes["humidity"])

    async def check(unit: str, width: int, inside: list[tuple[int, Decimal]]) -> None:
        buckets: dict[int, list[float]] = {}
        for ts, v in inside:
            buckets.setdefault(ts - ts % width, []).append(float(v))
        for name, fn in (("avg", np.mean), ("count", len), ("first", lambda v: v[0]), ("last", lambda v: v[-1]),
                         ("dev", np.std), ("max", np.max)):
            resp = await twin.get(url, params={"start": str(start), "end": str(end), "downsample": f"{unit}-{name}"})
            assert resp.status == 200, await resp.text()
            dps = (await resp.json())["data"]["value"][0]["dps"]
            assert {int(k) * 1000 for k in dps} == set(buckets), (unit, name)
            for key, values in buckets.items():
                assert dps[str(key // 1000)] == pytest.approx(float(fn(np.array(values))), rel=1e-9, abs=1e-9)

    for unit, width in (("1h", 3_600_000), ("1m", 60_000), ("10s", 10_000)):
        await check(unit, width, points)
    late = (end + 2_000, Decimal(1000))   # after the range, in the same 10 s, minute and hour
    await publish(publisher, measurements(device, [(late[0], {"humidity": late[1]})]))

    async def late_stored() -> bool:
        return await count_samples(pool, device.attributes["humidity"]) == len(points) + 1
    await wait_for(late_stored)
    for unit, width in (("1h", 3_600_000), ("1m", 60_000), ("10s", 10_000)):
        await check(unit, width, points)


async def test_fill_policies_and_array_series(
    twin: TestClient[Any, Any], publisher: Bus, pool: asyncpg.Pool
) -> None:
    device = await make_device(pool)
    temps = [(T0, [Decimal(1), Decimal(10)]), (T0 + 120_000, [Decimal(3), Decimal(30)])]
    await publish(publisher, measurements(device, [(ts, {"temps": v}) for ts, v in temps]))

    async def stored() -> bool:
        return await count_samples(pool, device.attributes["temps"]) == 4
    await wait_for(stored)
    url = PATH.format(device.attributes["temps"])
    window = {"start": str(T0 // 1000), "end": str((T0 + 120_000) // 1000)}
    body = await (await twin.get(url, params={**window, "aggregator": "none"})).json()
    series = body["data"]["value"]
    assert [s["tags"]["index"] for s in series] == ["0", "1"]
    assert series[1]["dps"] == {str(T0 // 1000): 10, str(T0 // 1000 + 120): 30}
    summed = await (await twin.get(url, params={**window, "aggregator": "sum",
                                                "downsample": "1m-avg-zero"})).json()
    assert summed["data"]["value"] == [{
        "metric": "temps", "tags": {"device_id": device.device_key, "dt_name": device.instance_name},
        "dps": {str(T0 // 1000): 11, str(T0 // 1000 + 60): 0, str(T0 // 1000 + 120): 33}}]
    text = await twin.get(url, params={**window, "aggregator": "sum", "downsample": "1m-avg-null"})
    assert (await text.json())["data"]["value"][0]["dps"][str(T0 // 1000 + 60)] is None
    raw = await twin.get(url, params={**window, "aggregator": "sum", "downsample": "1m-avg-nan"})
    assert "NaN" in await raw.text()
    none_fill = await (await twin.get(url, params={**window, "aggregator": "sum",
                                                   "downsample": "1m-avg"})).json()
    assert list(none_fill["data"]["value"][0]["dps"]) == [str(T0 // 1000), str(T0 // 1000 + 120)]


async def test_text_series_and_millisecond_keys(
    twin: TestClient[Any, Any], publisher: Bus, pool: asyncpg.Pool
) -> None:
    device = await make_device(pool)
    await publish(publisher, measurements(device, [(T0 + 250, {"status": "open"}),
                                                   (T0 + 1_500, {"status": "closed"})]))

    async def stored() -> bool:
        return await count_samples(pool, device.attributes["status"]) == 2
    await wait_for(stored)
    url = PATH.format(device.attributes["status"])
    body = await (await twin.get(url, params={"start": str(T0 // 1000), "end": "1534147210"})).json()
    assert body["data"]["value"][0]["dps"] == {str(T0 + 250): "open", str(T0 + 1_500): "closed"}
    refused = await twin.get(url, params={"start": str(T0 // 1000), "downsample": "1m-count"})
    assert refused.status == 400
    assert "downsample" in (await refused.json())["data"]["errors"]
