"""The telemetry consumer on the real RabbitMQ and PostgreSQL: every point stored once, current
values only move forward in device time, poison messages are dead-lettered while the rest flow."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from twinbill_common.bus import REASON_HEADER, Bus, Delivery
from twinbill_common.consumers import decode_body
from twinbill_common.errors import PermanentError
from twinbill_common.health import READINESS
from twinbill_common.metrics import new_registry
from twinbill_common.schemas import MeasurementsAccepted
from twinbill_common.topology import TWIN_TELEMETRY
from twinbill_twin.handlers import TelemetryConsumer
from twinbill_twin.handlers.measurements import RawMeasurements, decode_telemetry
from twinbill_twin.handlers.telemetry import REPEAT_COOLDOWN
from twinbill_twin.metrics import TwinMetrics
from twinbill_twin.store.samples import PartitionManager

from .conftest import count_samples, make_device, measurements, publish, wait_for

T0 = 1_534_147_200_000  # 2018-08-13T08:00:00Z


async def test_redelivered_messages_are_stored_once(publisher: Bus, pool: asyncpg.Pool) -> None:
    device = await make_device(pool)
    total = device.attributes["total"]
    message = measurements(device, [(T0 + i * 1000, {"total": Decimal(f"{100 + i}.5")})
                                    for i in range(10)])
    for _ in range(3):                      # the same message delivered three times
        await publish(publisher, message)
    overlapping = measurements(device, [(T0 + i * 1000, {"total": Decimal(f"{100 + i}.5")})
                                        for i in range(5, 15)])
    await publish(publisher, overlapping)   # a retry that overlaps half of it

    async def all_there() -> bool:
        return await count_samples(pool, total) == 15
    await wait_for(all_there)
    await publish(publisher, measurements(device, [(T0 + 99_000, {"humidity": 1})]))
    await wait_for(lambda: _has(pool, device.attributes["humidity"]))
    assert await count_samples(pool, total) == 15
    minute = await pool.fetchrow(
        "SELECT n, sum, min, max, first_v, last_v FROM rollup_1m WHERE attribute_id = $1", total)
    assert dict(minute) == {"n": 15, "sum": sum(100.5 + i for i in range(15)), "min": 100.5,
                            "max": 114.5, "first_v": 100.5, "last_v": 114.5}
    hour = await pool.fetchval("SELECT n FROM rollup_1h WHERE attribute_id = $1", total)
    assert hour == 15


async def _has(pool: asyncpg.Pool, attribute_id: int) -> bool:
    return await count_samples(pool, attribute_id) > 0


async def test_late_backfill_never_moves_the_current_value_back(
    publisher: Bus, pool: asyncpg.Pool
) -> None:
    device = await make_device(pool)
    total = device.attributes["total"]
    await publish(publisher, measurements(device, [(T0 + 60_000, {"total": Decimal("20.50")})],
                                          received_at=T0 + 61_000))
    await wait_for(lambda: _has(pool, total))
    await publish(publisher, measurements(device, [(T0, {"total": Decimal("10.00")})],
                                          received_at=T0 + 120_000))

    async def both() -> bool:
        return await count_samples(pool, total) == 2
    await wait_for(both)
    row = await pool.fetchrow("SELECT value, stime, atime FROM attributes WHERE id = $1", total)
    assert row["value"] == "20.50"
    assert int(row["stime"].timestamp() * 1000) == T0 + 60_000
    assert int(row["atime"].timestamp() * 1000) == T0 + 61_000
    # the rollups took the late point in: first is now the back-filled one
    hour = await pool.fetchrow("SELECT n, first_v, last_v FROM rollup_1h WHERE attribute_id = $1", total)
    assert dict(hour) == {"n": 2, "first_v": 10.0, "last_v": 20.5}
    await publish(publisher, measurements(device, [(T0 + 120_000, {"total": Decimal("30.125")})],
                                          received_at=T0 + 121_000))

    async def moved() -> bool:
        return bool(await pool.fetchval("SELECT value FROM attributes WHERE id = $1", total) == "30.125")
    await wait_for(moved)
    last_seen = await pool.fetchval("SELECT last_seen FROM devices WHERE id = $1", device.id)
    assert int(last_seen.timestamp() * 1000) == T0 + 121_000
    atime = await pool.fetchval("SELECT atime FROM instances WHERE id = $1", device.instance_id)
    assert int(atime.timestamp() * 1000) == T0 + 121_000


async def test_poison_message_is_dead_lettered_while_the_rest_flows(
    publisher: Bus, pool: asyncpg.Pool
) -> None:
    device = await make_device(pool)
    humidity = device.attributes["humidity"]
    good = [measurements(device, [(T0 + i * 1000, {"humidity": i})]) for i in range(6)]
    poison = measurements(device, [(T0 + 500, {"humidity": 1, "no_such_point": 2})])
    unstorable = measurements(device, [(T0 + 700, {"humidity": None})])
    huge_zero = measurements(device, [(T0 + 800, {"humidity": Decimal("0E+2000000000")})])
    for message in [*good[:3], poison, *good[3:], unstorable, huge_zero]:
        await publish(publisher, message)

    async def six() -> bool:
        return await count_samples(pool, humidity) == 6
    await wait_for(six)
    dlq = await publisher.channel.get_queue(publisher.name(f"{TWIN_TELEMETRY.name}.dlq"))
    reasons = {}
    for _ in range(200):
        dead = await dlq.get(fail=False)
        if dead is not None:
            await dead.ack()
            reasons[dead.message_id] = str((dead.headers or {}).get(REASON_HEADER))
            if len(reasons) == 3:
                break
        else:
            await asyncio.sleep(0.05)
    assert "no_such_point" in reasons[poison.message_id]
    assert "has no attribute in the registry" in reasons[poison.message_id]
    assert "null is not a value" in reasons[unstorable.message_id]
    assert "exponent beyond a double's range" in reasons[huge_zero.message_id]


async def test_a_value_postgresql_refuses_is_permanent_not_a_batch_requeue(
    publisher: Bus, pool: asyncpg.Pool, monkeypatch: Any
) -> None:
    """Whatever slips past the checks and PostgreSQL refuses (a DataError) makes the batch
    permanent-failed, so the bus isolates the one message instead of requeueing all of them."""
    device = await make_device(pool)
    consumer = TelemetryConsumer(pool, publisher)

    async def refused(*_args: Any, **_kwargs: Any) -> None:
        raise asyncpg.exceptions.NumericValueOutOfRangeError("value overflows numeric format")

    monkeypatch.setattr("twinbill_twin.handlers.telemetry.write_batch", refused)
    message = MeasurementsAccepted.model_validate(dict(measurements(device, [(T0, {"humidity": 1})])))
    raw: Any = SimpleNamespace(redelivered=False)  # handle() reads only the redelivered flag
    with pytest.raises(PermanentError, match="a value cannot be stored: value overflows numeric format"):
        await consumer.handle([Delivery(message, raw)])


async def test_arrays_structs_and_text_are_stored_by_kind(publisher: Bus, pool: asyncpg.Pool) -> None:
    device = await make_device(pool)
    await publish(publisher, measurements(device, [(T0, {
        "temps": [Decimal("21.5"), Decimal("22.25"), 23],
        "reading": {"value": Decimal("1234.500"), "quality": 2},
        "status": "open", "valve": True})]))

    async def stored() -> bool:
        return await count_samples(pool, device.attributes["valve"]) == 1
    await wait_for(stored)
    temps = await pool.fetch("SELECT idx, num, dbl FROM samples WHERE attribute_id = $1 ORDER BY idx",
                             device.attributes["temps"])
    assert [(r["idx"], r["num"]) for r in temps] == [(0, Decimal("21.5")), (1, Decimal("22.25")),
                                                     (2, Decimal(23))]
    reading = await pool.fetchrow("SELECT idx, num, quality FROM samples WHERE attribute_id = $1",
                                  device.attributes["reading"])
    assert dict(reading) == {"idx": -1, "num": Decimal("1234.500"), "quality": "2"}
    status = await pool.fetchrow("SELECT num, txt FROM samples WHERE attribute_id = $1",
                                 device.attributes["status"])
    assert dict(status) == {"num": None, "txt": "open"}
    values = dict(await pool.fetch("SELECT name, value FROM attributes WHERE instance_id = $1",
                                   device.instance_id))
    assert values["temps"] == "[21.5,22.25,23]"
    assert values["reading"] == '{"value":1234.500,"quality":2}'
    assert values["valve"] == "true"


async def test_readings_last_is_exact_and_batched(
    twin: TestClient[Any, Any], publisher: Bus, pool: asyncpg.Pool
) -> None:
    first, second, silent = [await make_device(pool) for _ in range(3)]
    await publish(publisher, measurements(first, [(T0, {"total": Decimal("100.100")}),
                                                  (T0 + 3_600_000, {"total": Decimal("150.250")})]))
    await publish(publisher, measurements(second, [(T0 + 10, {"total": Decimal("7")})]))

    async def stored() -> bool:
        return (await count_samples(pool, first.attributes["total"]) == 2
                and await count_samples(pool, second.attributes["total"]) == 1)
    await wait_for(stored)
    resp = await twin.post("/internal/v1/readings/last", json={
        "device_ids": [first.id, second.id, silent.id, 999_999_999], "at": T0 + 3_599_999})
    assert resp.status == 200
    assert await resp.json() == {"readings": [
        {"device_id": first.id, "value": "100.100", "time": T0},
        {"device_id": second.id, "value": "7", "time": T0 + 10}]}
    resp = await twin.post("/internal/v1/readings/last",
                           json={"device_ids": [first.id], "at": T0 + 3_600_000})
    assert (await resp.json())["readings"][0]["value"] == "150.250"
    bad = await twin.post("/internal/v1/readings/last", json={"device_ids": list(range(5001)), "at": 1})
    assert bad.status == 422
    assert "device_ids" in (await bad.json())["errors"]["json"]


async def test_consumer_writes_directly_with_copy(pool: asyncpg.Pool) -> None:
    """The handler alone (no broker): one batch with a duplicate inside stores each point once."""
    device = await make_device(pool)
    consumer = TelemetryConsumer(pool, bus=None)  # type: ignore[arg-type]  # handle() uses no bus
    consumer.partitions = PartitionManager()
    message = MeasurementsAccepted.model_validate({
        "product_key": device.product_key, "device_key": device.device_key, "method": "m",
        "received_at": T0, "points": [
            {"product_key": device.product_key, "device_key": device.device_key, "time": T0,
             "measurepoints": {"humidity": Decimal("1.5")}},
            {"product_key": device.product_key, "device_key": device.device_key, "time": T0,
             "measurepoints": {"humidity": Decimal("1.5")}}]})

    class _Raw:
        message_id = "x"
        redelivered = False
    await consumer.handle([Delivery(message, _Raw())])  # type: ignore[arg-type]  # handle() reads only the redelivered flag
    assert await count_samples(pool, device.attributes["humidity"]) == 1
    assert consumer.stored_total == 1


async def test_consumer_counts_writes_and_the_lag_behind_the_gateway(pool: asyncpg.Pool) -> None:
    """A committed batch adds its new samples and messages to the write-rate counters and one
    write-lag observation per message: received a minute ago, stored now, so about 60 s."""
    device = await make_device(pool)
    registry = new_registry()
    consumer = TelemetryConsumer(pool, bus=None, metrics=TwinMetrics.create(registry))  # type: ignore[arg-type]  # handle() uses no bus
    received = int(time.time() * 1000) - 60_000
    message = MeasurementsAccepted.model_validate({
        "product_key": device.product_key, "device_key": device.device_key, "method": "m",
        "received_at": received, "points": [
            {"product_key": device.product_key, "device_key": device.device_key, "time": T0 + i,
             "measurepoints": {"humidity": Decimal("1.5")}} for i in range(3)]})

    class _Raw:
        message_id = "lag"
        redelivered = False
    await consumer.handle([Delivery(message, _Raw())])  # type: ignore[arg-type]  # handle() reads only the redelivered flag
    await consumer.handle([Delivery(message, _Raw())])  # type: ignore[arg-type]  # a redelivery: no new samples
    assert registry.get_sample_value("twin_samples_written_total") == 3
    assert registry.get_sample_value("twin_telemetry_messages_total") == 2
    assert registry.get_sample_value("twin_telemetry_write_lag_seconds_count") == 2
    lag_sum = registry.get_sample_value("twin_telemetry_write_lag_seconds_sum")
    assert lag_sum is not None and 2 * 59 < lag_sum < 2 * 120
    assert registry.get_sample_value("twin_telemetry_write_lag_seconds_bucket", {"le": "30.0"}) == 0


async def test_readiness_includes_the_consumer(twin: TestClient[Any, Any]) -> None:
    """/readyz answers 200 while the telemetry consumer runs (it is one of the checks)."""
    resp = await twin.get("/readyz")
    assert resp.status == 200, await resp.text()
    assert "telemetry_consumer" in twin.app[READINESS]


async def test_concurrent_batch_with_the_same_key_falls_back_and_stays_exact(pool: asyncpg.Pool) -> None:
    """Another batch stores one of our keys while we insert: our fast insert hits the unique key,
    falls back to ON CONFLICT DO NOTHING, stores only the new rows and rolls up exactly those."""
    device = await make_device(pool)
    humidity = device.attributes["humidity"]
    points = [(T0 + i * 1000, {"humidity": Decimal(i % 7) + Decimal("0.5")}) for i in range(120)]
    contested = points[30][0]
    consumer = TelemetryConsumer(pool, bus=None)  # type: ignore[arg-type]  # handle() uses no bus
    consumer.partitions = PartitionManager()

    class _Raw:
        message_id = "concurrent"
        redelivered = False

    # warm the partitions and caches with an unrelated point so the blocked moment is the insert
    def validated(batch: list[tuple[int, dict[str, Any]]]) -> MeasurementsAccepted:
        built = measurements(device, batch)
        return MeasurementsAccepted.model_validate({name: getattr(built, name) for name in built.model_fields_set})

    await consumer.handle([Delivery(validated([(T0 - 3_600_000, {"humidity": Decimal(1)})]),
                                    _Raw())])  # type: ignore[arg-type]  # handle() reads only the redelivered flag
    blocker = await pool.acquire()
    try:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("INSERT INTO samples (attribute_id, idx, ts, num, dbl) VALUES ($1, -1, $2, 3.5, 3.5)",
                              humidity, contested)
        batch = asyncio.create_task(consumer.handle(
            [Delivery(validated(points), _Raw())]))  # type: ignore[arg-type]  # handle() reads only the redelivered flag

        async def waiting_on_the_blocker() -> bool:
            return bool(await pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()"))

        await wait_for(waiting_on_the_blocker, timeout=10)
        await transaction.commit()
        await asyncio.wait_for(batch, timeout=10)
    finally:
        await pool.release(blocker)
    assert await count_samples(pool, humidity) == 1 + 120  # the warm-up point, then each key once
    in_window = await pool.fetchrow(
        "SELECT sum(n) AS n, sum(sum) AS total FROM rollup_1m WHERE attribute_id = $1 AND bucket >= $2",
        humidity, T0 - T0 % 60_000)
    ours = [value["humidity"] for ts, value in points if ts != contested]
    assert in_window["n"] == len(ours) == 119  # the contested key was stored by the other batch
    assert in_window["total"] == float(sum(ours))


# Number spellings a device may send: plain ones take the consumer's text path (stored from the
# message's own digits), exponents and ones over 300 characters the decoded path. (Values beyond
# about 1e154 overflow the rollups' squared deviations, with either path.)
SPELLINGS = ["12.50", "-0", "-0.0", "0.0000001", "7", "-3.25", "123456789012345678901234567890",
             "1e5", "1E+4", "2.5e-3", "-0e0", "1" * 100, "0." + "1" * 298, "0." + "1" * 299, "0.1",
             "-999999.999999"]


async def test_plain_numbers_are_stored_as_the_decoded_path_stores_them(pool: asyncpg.Pool) -> None:
    """Each spelling stored from its JSON text (decode_telemetry) gives the same exact decimal,
    double and current value as the same body decoded by the schema (Decimal values)."""
    from_text, decoded = await make_device(pool), await make_device(pool)

    def body(device: Any) -> bytes:
        points = ",".join(
            f'{{"product_key":"{device.product_key}","device_key":"{device.device_key}","time":{T0 + i},'
            f'"measurepoints":{{"humidity":{text},"temps":[{text},{text}]}}}}' for i, text in enumerate(SPELLINGS))
        return (f'{{"product_key":"{device.product_key}","device_key":"{device.device_key}","method":"m",'
                f'"received_at":{T0},"points":[{points}]}}').encode()

    class _Raw:
        message_id = "spellings"
        redelivered = False
    consumer = TelemetryConsumer(pool, bus=None)  # type: ignore[arg-type]  # handle() uses no bus
    consumer.partitions = PartitionManager()
    text_message = decode_telemetry(body(from_text))
    assert isinstance(text_message, RawMeasurements)  # the text path, not the reference decoder
    await consumer.handle([Delivery(text_message, _Raw())])  # type: ignore[arg-type]  # handle() reads only the redelivered flag
    await consumer.handle([Delivery(decode_body(MeasurementsAccepted, body(decoded), exact_decimals=True),
                                    _Raw())])  # type: ignore[arg-type]  # handle() reads only the redelivered flag

    async def stored(device: Any) -> list[Any]:
        rows = await pool.fetch(
            "SELECT a.name, s.idx, s.ts, s.num::text, s.dbl FROM samples s JOIN attributes a ON a.id = s.attribute_id "
            "WHERE a.instance_id = $1 ORDER BY 1, 2, 3", device.instance_id)
        currents = await pool.fetch("SELECT name, value, stime FROM attributes WHERE instance_id = $1 "
                                    "AND name IN ('humidity', 'temps') ORDER BY name", device.instance_id)
        return [tuple(r) for r in rows] + [tuple(r) for r in currents]

    got, expected = await stored(from_text), await stored(decoded)
    assert len(got) == 3 * len(SPELLINGS) + 2
    assert got == expected
    numbers = {row[2] - T0: (row[3], row[4]) for row in got if row[0] == "humidity" and len(row) == 5}
    assert numbers[SPELLINGS.index("12.50")] == ("12.50", 12.5)
    assert numbers[SPELLINGS.index("0.0000001")] == ("0.0000001", 1e-7)


async def test_a_repeated_batch_turns_the_plain_insert_off_for_a_while(pool: asyncpg.Pool) -> None:
    """A live batch is inserted without the probe; a batch holding stored keys (a redelivery the
    broker did not flag) is written again with it and stores nothing new; the next batches then
    start with the probe, until REPEAT_COOLDOWN batches have passed."""
    device = await make_device(pool)
    consumer = TelemetryConsumer(pool, bus=None)  # type: ignore[arg-type]  # handle() uses no bus
    consumer.partitions = PartitionManager()

    class _Raw:
        message_id = "repeat"
        redelivered = False

    def batch(start: int) -> list[Delivery[Any]]:
        message = measurements(device, [(T0 + start + i, {"humidity": Decimal(i)}) for i in range(5)])
        return [Delivery(MeasurementsAccepted.model_validate(dict(message)), _Raw())]  # type: ignore[arg-type]  # handle() reads only the redelivered flag

    await consumer.handle(batch(0))
    assert (consumer.stored_total, consumer.batches_since_repeat) == (5, REPEAT_COOLDOWN + 1)
    await consumer.handle(batch(0))
    assert (consumer.stored_total, consumer.batches_since_repeat) == (5, 0)
    await consumer.handle(batch(100))
    assert (consumer.stored_total, consumer.batches_since_repeat) == (10, 1)
    assert await count_samples(pool, device.attributes["humidity"]) == 10
