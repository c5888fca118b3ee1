"""Alarm rules on the live stream, on real RabbitMQ and PostgreSQL: a simulated leak (continuous
and at night), an offline meter and an offline gateway, a backwards and a jumping register (a
rollover is not), a threshold with hysteresis, and rule state that survives a restart. Each alarm
is an event of the project's "Alarms" campaign scope, read back through /bemserver/events/."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.integration.twin_timeseries.conftest import Device, make_device, measurements, publish, wait_for
from twinbill_common.bus import Bus
from twinbill_twin.app import create_app
from twinbill_twin.keys import ALARMS, POOL
from twinbill_twin.settings import TwinSettings
from twinbill_twin.store.alarms import StateCache

START = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)  # 2026-12-01 00:00 in Asia/Shanghai


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


async def project_of(pool: asyncpg.Pool, device: Device) -> int:
    return int(await pool.fetchval("SELECT project_id FROM devices WHERE id = $1", device.id))


async def add_rule(twin: TestClient[Any, Any], project: int, kind: str, params: dict[str, Any], *,
                   level: str = "WARNING", name: str | None = None, device_type: int | None = None) -> dict[str, Any]:
    response = await twin.post("/api/v1/alarm_rules/", json={"project_id": project, "kind": kind,
                                                             "name": name or kind, "level": level, "params": params,
                                                             "device_type": device_type})
    assert response.status == 201, await response.text()
    rule: dict[str, Any] = await response.json()
    return rule


async def events_of(twin: TestClient[Any, Any], project: int) -> list[dict[str, Any]]:
    response = await twin.get(f"/bemserver/events/?campaign_id={project}&page_size=100&sort=timestamp")
    assert response.status == 200
    found: list[dict[str, Any]] = await response.json()
    return found


async def readings(bus: Bus, device: Device, values: list[tuple[datetime, Any]], *, point: str = "total",
                   received: datetime | None = None) -> None:
    now = received or datetime.now(UTC)
    for at, value in values:
        await publish(bus, measurements(device, [(ms(at), {point: value})], received_at=ms(now)))


async def evaluated(pool: asyncpg.Pool, device: Device, at: datetime) -> None:
    """Wait until the device's rules have seen the reading at `at` (their state holds its time)."""
    async def check() -> bool:
        state = await pool.fetchval("SELECT rules FROM alarm_device_state WHERE device_id = $1", device.id)
        return state is not None and any(r.get("t", 0) >= ms(at) for r in json.loads(state).values())
    await wait_for(check)


def waiting_for(twin: TestClient[Any, Any], project: int, count: int) -> Callable[[], Any]:
    async def check() -> bool:
        return len(await events_of(twin, project)) >= count
    return check


async def test_a_continuous_leak_raises_one_event_after_the_hours_and_names_its_start(
        twin: TestClient[Any, Any], publisher: Bus) -> None:
    """0.2 m3/h for 3 h against "above 0.1 m3/h for 2 h": one Leak event, at the 2 h mark, whose
    episode starts at the first flowing reading; a quiet reading ends the episode."""
    pool = twin.app[POOL]
    device = await make_device(pool)
    project = await project_of(pool, device)
    await add_rule(twin, project, "leak", {"measurepoint": "total", "flow_above": 0.1, "hours": 2}, level="ERROR")
    values = [(START + timedelta(minutes=15 * i), Decimal("100") + Decimal("0.05") * i) for i in range(13)]
    await readings(publisher, device, values)
    await wait_for(waiting_for(twin, project, 1))
    await readings(publisher, device, [(START + timedelta(hours=4), Decimal("100.60"))])  # no flow
    await readings(publisher, device, [(START + timedelta(hours=5), Decimal("100.61"))])
    await evaluated(pool, device, START + timedelta(hours=5))
    events = await events_of(twin, project)
    assert len(events) == 1
    leak = events[0]
    assert leak["level"] == "ERROR" and leak["timestamp"] == (START + timedelta(hours=2)).isoformat()
    assert "since 2026-11-30T16:00:00+00:00" in leak["description"]
    category = await (await twin.get(f"/bemserver/event_categories/{leak['category_id']}")).json()
    assert category["name"] == "Leak"


async def test_night_flow_in_the_project_zone_raises_once_per_night(twin: TestClient[Any, Any],
                                                                    publisher: Bus) -> None:
    """Night 01:00-05:00 Asia/Shanghai: flow at 02:00 and 03:00 local is one event; the same flow
    at noon is none."""
    pool = twin.app[POOL]
    device = await make_device(pool)
    project = await project_of(pool, device)
    await add_rule(twin, project, "leak", {"measurepoint": "total", "flow_above": 0.01,
                                           "night": {"start": "01:00", "end": "05:00"}})
    local_one = START + timedelta(hours=1)  # 01:00 local
    await readings(publisher, device, [(local_one + timedelta(hours=h), Decimal(10 + h)) for h in range(4)])
    noon = START + timedelta(hours=12)
    await readings(publisher, device, [(noon, Decimal(20)), (noon + timedelta(hours=1), Decimal(30))])
    await evaluated(pool, device, noon + timedelta(hours=1))
    events = await events_of(twin, project)
    assert [e["timestamp"] for e in events] == [(local_one + timedelta(hours=1)).isoformat()]
    assert "at night (2026-12-01)" in events[0]["description"]


async def test_an_offline_meter_and_a_silent_gateway_raise_offline_and_then_back_online(
        twin: TestClient[Any, Any], publisher: Bus) -> None:
    """With "offline after 0.5 s", a meter whose points came through its gateway goes offline,
    and so does the gateway (it published them); a new report brings the meter back (INFO)."""
    pool = twin.app[POOL]
    meter = await make_device(pool)
    project = await project_of(pool, meter)
    gateway = await make_device(pool)
    await pool.execute("UPDATE devices SET project_id = $1 WHERE id = $2", project, gateway.id)
    # registered "in a minute": the never-reported rule (its own test below) must not fire
    # before the first point is evaluated on a loaded machine
    await pool.execute("UPDATE devices SET created_at = now() + interval '1 minute' WHERE id = ANY($1::bigint[])",
                       [meter.id, gateway.id])
    await add_rule(twin, project, "offline", {"minutes": 0.5 / 60}, level="ERROR")
    # the gateway publishes its sub-device's point (no point of its own)
    message = measurements(meter, [(ms(START), {"total": 5})], received_at=ms(datetime.now(UTC)))
    message = message.model_copy(update={"product_key": gateway.product_key, "device_key": gateway.device_key})
    await publish(publisher, message)
    await wait_for(waiting_for(twin, project, 2))
    offline = await events_of(twin, project)
    assert {e["level"] for e in offline} == {"ERROR"}
    assert {e["source"] for e in offline} == {f"d-{meter.device_key.removeprefix('device-')} (device {meter.id})",
                                             f"d-{gateway.device_key.removeprefix('device-')} (device {gateway.id})"}
    await readings(publisher, meter, [(START + timedelta(minutes=1), 6)])
    await wait_for(waiting_for(twin, project, 3))
    back = [e for e in await events_of(twin, project) if e["level"] == "INFO"]
    assert len(back) == 1 and "reporting again" in back[0]["description"]


async def test_a_device_that_never_reported_goes_offline_minutes_after_its_registration(
        twin: TestClient[Any, Any]) -> None:
    """With "offline after 0.5 s" of water meters, a water meter registered 0.5 s ago that never
    sent a point is raised offline once, saying it never reported; an electricity meter of the
    same project is not the rule's, and a water meter registered "in a minute" is not due yet."""
    pool = twin.app[POOL]
    meter = await make_device(pool)
    project = await project_of(pool, meter)
    other = await make_device(pool)
    later = await make_device(pool)
    await pool.execute("UPDATE devices SET project_id = $1, device_type = 2 WHERE id = $2", project, other.id)
    await pool.execute("UPDATE devices SET project_id = $1, device_type = 1, created_at = now() + interval "
                       "'1 minute' WHERE id = $2", project, later.id)
    await pool.execute("UPDATE devices SET device_type = 1 WHERE id = $1", meter.id)
    await add_rule(twin, project, "offline", {"minutes": 0.5 / 60}, level="ERROR", device_type=1)
    await wait_for(waiting_for(twin, project, 1))
    await asyncio.sleep(1.0)  # five more sweeps: still one event
    events = await events_of(twin, project)
    assert len(events) == 1, events
    assert events[0]["level"] == "ERROR"
    assert events[0]["source"] == f"d-{meter.device_key.removeprefix('device-')} (device {meter.id})"
    assert "never reported since it was registered at" in events[0]["description"]


async def test_a_backwards_register_and_an_implausible_jump_are_raised_a_rollover_is_not(
        twin: TestClient[Any, Any], publisher: Bus) -> None:
    """register_max 1000: 100 -> 101 -> 99 is backwards; 99 -> 500 in an hour beats 50/h; 990 ->
    3 is a rollover."""
    pool = twin.app[POOL]
    device = await make_device(pool)
    project = await project_of(pool, device)
    await pool.execute("UPDATE devices SET register_max = 1000 WHERE id = $1", device.id)
    await add_rule(twin, project, "register", {"measurepoint": "total", "max_per_hour": 50})
    hours = [START + timedelta(hours=h) for h in range(8)]
    await readings(publisher, device, [(hours[0], 100), (hours[1], 101), (hours[2], 99), (hours[3], 500)])
    await wait_for(waiting_for(twin, project, 2))
    await readings(publisher, device, [(hours[4], 530), (hours[5], 560), (hours[6], 990),
                                       (hours[6] + timedelta(minutes=30), 3)])
    await readings(publisher, device, [(hours[7], 20)])
    await evaluated(pool, device, hours[7])
    # 560 -> 990 in an hour is a jump too (430/h); 990 -> 3 rolled over, 3 -> 20 is plausible
    descriptions = [e["description"] for e in await events_of(twin, project)]
    assert len(descriptions) == 3, descriptions
    assert "went backwards: 101 -> 99" in descriptions[0]
    assert "jumped 401" in descriptions[1] and "jumped 430" in descriptions[2]


async def test_a_threshold_with_hysteresis_does_not_flood(twin: TestClient[Any, Any], publisher: Bus) -> None:
    """above 50, hysteresis 5: 49, 51 (raised), 50.5, 49, 51 (still raised: never below 45), 44
    (cleared), 52 (raised again): two events."""
    pool = twin.app[POOL]
    device = await make_device(pool)
    project = await project_of(pool, device)
    await add_rule(twin, project, "threshold", {"measurepoint": "humidity", "above": 50, "hysteresis": 5})
    values = [49, 51, Decimal("50.5"), 49, 51, 44, 52]
    await readings(publisher, device, [(START + timedelta(minutes=i), v) for i, v in enumerate(values)],
                   point="humidity")
    await readings(publisher, device, [(START + timedelta(minutes=10), 53)], point="humidity")
    await evaluated(pool, device, START + timedelta(minutes=10))
    events = await events_of(twin, project)
    assert [e["timestamp"] for e in events] == [(START + timedelta(minutes=1)).isoformat(),
                                                (START + timedelta(minutes=6)).isoformat()]


async def test_rule_parameters_are_checked_and_named(twin: TestClient[Any, Any]) -> None:
    """A leak without hours or night, a negative flow, an unknown parameter: 422 naming each."""
    pool = twin.app[POOL]
    device = await make_device(pool)
    project = await project_of(pool, device)
    response = await twin.post("/api/v1/alarm_rules/", json={
        "project_id": project, "kind": "leak", "name": "bad", "params": {"measurepoint": "total",
                                                                         "flow_above": -1, "colour": "red"}})
    assert response.status == 422
    fields = (await response.json())["errors"]["json"]
    assert set(fields) == {"params.flow_above", "params.hours", "params.colour"}


async def test_a_state_another_writer_changed_is_read_again_not_taken_from_the_cache(
        twin: TestClient[Any, Any], publisher: Bus) -> None:
    """The consumer evaluates from the states it keeps between batches only while their rows are
    as it wrote them: a register's row written meanwhile (as another shard's batch or replica
    would) is what the next reading is compared with."""
    pool = twin.app[POOL]
    alarms = twin.app[ALARMS]
    device = await make_device(pool)
    project = await project_of(pool, device)
    rule = await add_rule(twin, project, "register", {"measurepoint": "total"})
    await readings(publisher, device, [(START, 100)])
    await evaluated(pool, device, START)
    await readings(publisher, device, [(START + timedelta(hours=1), 110)])
    await evaluated(pool, device, START + timedelta(hours=1))
    cached = alarms.states.get(device.id)
    assert cached is not None and cached.rules[str(rule["id"])]["v"] == "110"
    await pool.execute("UPDATE alarm_device_state SET rules = jsonb_set(rules, ARRAY[$2], "
                       "jsonb_build_object('t', $3::bigint, 'v', '200')) WHERE device_id = $1",
                       device.id, str(rule["id"]), ms(START + timedelta(hours=2)))
    await readings(publisher, device, [(START + timedelta(hours=3), 150)])
    await wait_for(waiting_for(twin, project, 1))
    assert "went backwards: 200 -> 150" in (await events_of(twin, project))[0]["description"]


async def test_a_batch_whose_process_dies_after_its_quiet_devices_are_written_raises_each_alarm_once(
        twin: TestClient[Any, Any], publisher: Bus, monkeypatch: pytest.MonkeyPatch) -> None:
    """The window the state cache opens: a batch writes its quiet (cached, raising nothing) devices
    in one statement that commits before the transaction of the devices raising alarms. Here the
    process dies right there (the locked transaction fails once, and the cache is lost as a killed
    process loses it); the batch comes again and is evaluated from the rows: the alarm is raised
    once, the quiet device's reading, already stored, changes nothing, and its next reading is
    compared with it."""
    pool = twin.app[POOL]
    alarms = twin.app[ALARMS]
    quiet, loud = await make_device(pool), await make_device(pool)
    project = await project_of(pool, quiet)
    await pool.execute("UPDATE devices SET project_id = $1 WHERE id = $2", project, loud.id)
    await add_rule(twin, project, "register", {"measurepoint": "total"})
    await readings(publisher, quiet, [(START, 100)])
    await readings(publisher, loud, [(START, 100)])
    await evaluated(pool, quiet, START)
    await evaluated(pool, loud, START)
    assert alarms.states.get(quiet.id) is not None and alarms.states.get(loud.id) is not None

    died: list[list[int]] = []
    locked = alarms._evaluate_locked

    async def dies_once(conn: asyncpg.Connection, watched: list[Any], *args: Any) -> None:
        if not died:
            died.append([device.id for device, _ in watched])
            alarms.states = StateCache()  # what a new process starts with
            raise OSError("connection lost: the process died here")
        await locked(conn, watched, *args)

    monkeypatch.setattr(alarms, "_evaluate_locked", dies_once)
    hour = START + timedelta(hours=1)
    # one message (a gateway's batch) with both devices' points: one batch, both paths
    both = measurements(quiet, [(ms(hour), {"total": 110})])
    backwards = {"product_key": loud.product_key, "device_key": loud.device_key, "time": ms(hour),
                 "measurepoints": {"total": 90}}
    both = both.model_copy(update={"points": [*both.points, backwards]})
    await publish(publisher, both)
    await evaluated(pool, loud, hour)
    await evaluated(pool, quiet, hour)
    assert died == [[loud.id]]  # the quiet device had been written before the failure
    descriptions = [e["description"] for e in await events_of(twin, project)]
    assert len(descriptions) == 1 and "went backwards: 100 -> 90" in descriptions[0], descriptions

    await readings(publisher, quiet, [(hour + timedelta(hours=1), 105)])
    await wait_for(waiting_for(twin, project, 2))
    descriptions = [e["description"] for e in await events_of(twin, project)]
    assert len(descriptions) == 2 and "went backwards: 110 -> 105" in descriptions[1], descriptions


async def test_rule_state_survives_a_restart_of_the_consumer(
        twin: TestClient[Any, Any], publisher: Bus, alarm_settings: TwinSettings) -> None:
    """A register's last reading is kept in PostgreSQL: a second twin (the first one stopped
    consuming) sees the next lower reading as backwards."""
    pool = twin.app[POOL]
    device = await make_device(pool)
    project = await project_of(pool, device)
    await add_rule(twin, project, "register", {"measurepoint": "total"})
    await readings(publisher, device, [(START, 100)])

    await evaluated(pool, device, START)
    await twin.close()  # the first consumer stops
    second: TestClient[Any, Any] = TestClient(TestServer(create_app(alarm_settings)))
    await second.start_server()
    try:
        await readings(publisher, device, [(START + timedelta(hours=1), 90)])
        await wait_for(waiting_for(second, project, 1))
        assert "went backwards: 100 -> 90" in (await events_of(second, project))[0]["description"]
    finally:
        await second.close()
