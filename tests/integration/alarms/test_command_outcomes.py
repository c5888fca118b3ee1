"""Outcomes from other services become events. A device's answer to reverse control reaches the
twin: the ingest gateway's CommandOutcome (a
refused set_reply here) is recorded on the desired value, visible through seed 002's instance
detail (expectstatus, expectcode, expectmessage, expecttime after the seed's own fields), and
as a "Reverse control" event; an outcome of an older command never overwrites a newer pending one.
Billing's skipped, failed and estimated meters become "Billing" events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp.test_utils import TestClient

from tests.integration.twin_timeseries.conftest import make_device, wait_for
from twinbill_common.bus import Bus
from twinbill_common.schemas import BillingJobFinished, CommandOutcome
from twinbill_common.topology import BILLING, COMMANDS
from twinbill_twin.keys import POOL


async def valve_of(twin: TestClient[Any, Any], instance: int) -> dict[str, Any]:
    detail = await (await twin.get(f"/dt/open/v1/instance?ids={instance}")).json()
    attribute: dict[str, Any] = next(a for a in detail["data"][0]["attr"] if a["name"] == "valve")
    return attribute


async def test_a_refused_set_reply_is_recorded_on_the_desired_value_and_as_an_event(
        twin: TestClient[Any, Any], publisher: Bus) -> None:
    """PATCH valve=true (pending), the device refuses with 1806: the attribute says refused with
    the code and message, and an ERROR event names them; a later PATCH is pending again and a late
    outcome of the first command leaves it pending."""
    pool = twin.app[POOL]
    device = await make_device(pool)
    project = int(await pool.fetchval("SELECT project_id FROM devices WHERE id = $1", device.id))
    patched = await twin.patch(f"/dt/open/v1/instance/{device.instance_id}",
                               json=[{"id": device.attributes["valve"], "expectvalue": "true"}])
    assert patched.status == 200, await patched.text()
    valve = await valve_of(twin, device.instance_id)
    assert (valve["expectvalue"], valve["expectstatus"], valve["expectcode"]) == ("true", "pending", None)
    version = int(await pool.fetchval("SELECT expect_version FROM attributes WHERE id = $1",
                                      device.attributes["valve"]))

    def outcome(**fields: Any) -> CommandOutcome:
        return CommandOutcome(product_key=device.product_key, device_key=device.device_key,
                              request_id=uuid.uuid4().hex, instance_id=device.instance_id, version=version,
                              identifiers=["valve"], at=datetime.now(UTC), **fields)

    refused = outcome(outcome="refused", code=1806, reply_message="valve jammed")
    await publisher.publish(COMMANDS, f"outcome.{device.product_key}.{device.device_key}", refused)

    async def recorded() -> bool:
        return bool((await valve_of(twin, device.instance_id))["expectstatus"] == "refused")
    await wait_for(recorded)
    valve = await valve_of(twin, device.instance_id)
    assert (valve["expectcode"], valve["expectmessage"]) == (1806, "valve jammed")
    assert valve["expecttime"] == int(refused.at.timestamp() * 1000)
    events = await (await twin.get(f"/bemserver/events/?campaign_id={project}")).json()
    assert len(events) == 1 and events[0]["level"] == "ERROR"
    assert events[0]["description"] == (f"desired valve v{version}: refused by the device with code 1806 "
                                        "(valve jammed)")
    category = await (await twin.get(f"/bemserver/event_categories/{events[0]['category_id']}")).json()
    assert category["name"] == "Reverse control"

    # a newer desired value is pending; the first command's late "applied" does not hide it
    await twin.patch(f"/dt/open/v1/instance/{device.instance_id}",
                     json=[{"id": device.attributes["valve"], "expectvalue": "false"}])
    late = outcome(outcome="applied", code=200)
    await publisher.publish(COMMANDS, f"outcome.{device.product_key}.{device.device_key}", late)

    async def second_event() -> bool:
        return len(await (await twin.get(f"/bemserver/events/?campaign_id={project}")).json()) == 2
    await wait_for(second_event)
    valve = await valve_of(twin, device.instance_id)
    assert (valve["expectvalue"], valve["expectstatus"]) == ("false", "pending")


async def test_a_reply_the_gateway_no_longer_remembers_is_recorded_by_its_request_id(
        twin: TestClient[Any, Any], publisher: Bus) -> None:
    """An outcome that names only the set request's id (a gateway replica restarted since it sent
    the request knows nothing else of it) marks the desired values that command set, and only while
    no newer command has set them: a late duplicate of the first command's answer leaves the
    second pending, and the second's own answer is recorded."""
    pool = twin.app[POOL]
    device = await make_device(pool)
    project = int(await pool.fetchval("SELECT project_id FROM devices WHERE id = $1", device.id))
    valve = device.attributes["valve"]

    async def command(value: str) -> str:
        patched = await twin.patch(f"/dt/open/v1/instance/{device.instance_id}",
                                   json=[{"id": valve, "expectvalue": value}])
        assert patched.status == 200, await patched.text()
        # the command's message id, which the gateway sends as the set request's id (the device
        # answering it: tests/integration/ingest/test_commands.py, the seed-002 PATCH)
        request: str = await pool.fetchval("SELECT expect_request FROM attributes WHERE id = $1", valve)
        return request

    async def answer(request: str, **fields: Any) -> None:
        reply = CommandOutcome(product_key=device.product_key, device_key=device.device_key, request_id=request,
                               at=datetime.now(UTC), **fields)
        await publisher.publish(COMMANDS, f"outcome.{device.product_key}.{device.device_key}", reply)

    async def events(count: int) -> bool:
        return len(await (await twin.get(f"/bemserver/events/?campaign_id={project}")).json()) >= count

    first = await command("true")
    await answer(first, outcome="applied", code=200)
    await wait_for(lambda: events(1))
    assert (await valve_of(twin, device.instance_id))["expectstatus"] == "applied"

    second = await command("false")
    assert second != first
    await answer(first, outcome="applied", code=200)  # the first answer again, late
    await answer(second, outcome="refused", code=1806, reply_message="valve jammed")
    await wait_for(lambda: events(2))
    state = await valve_of(twin, device.instance_id)
    assert (state["expectvalue"], state["expectstatus"], state["expectcode"], state["expectmessage"]) == (
        "false", "refused", 1806, "valve jammed")
    described = [e["description"] for e in await (await twin.get(f"/bemserver/events/?campaign_id={project}")).json()]
    assert sorted(described) == ["desired a command: applied by the device",
                                 "desired a command: refused by the device with code 1806 (valve jammed)"]


async def test_billing_outcomes_become_one_event_per_meter_once(twin: TestClient[Any, Any], publisher: Bus) -> None:
    """A job that failed one meter, skipped one and estimated one: three events (ERROR, WARNING,
    INFO) with the reasons; the same message again (at least once) adds none."""
    pool = twin.app[POOL]
    failed_d, skipped_d, estimated_d = [await make_device(pool) for _ in range(3)]
    project = int(await pool.fetchval("SELECT project_id FROM devices WHERE id = $1", failed_d.id))
    await pool.execute("UPDATE devices SET project_id = $1 WHERE id = ANY($2::bigint[])", project,
                       [skipped_d.id, estimated_d.id])
    job = BillingJobFinished(
        message_id="job:run-1:0", run_id="run-1", job_id="run-1:0", project_id=project, device_type=1,
        period_start=datetime(2026, 11, 1, tzinfo=UTC), period_end=datetime(2026, 12, 1, tzinfo=UTC),
        failed=[{"device_id": failed_d.id, "reason": "reading went backwards"}],
        skipped=[{"device_id": skipped_d.id, "reason": "no reading at or before the period start"}],
        estimated=[{"device_id": estimated_d.id, "device_key": estimated_d.device_key}])
    for _ in range(2):
        await publisher.publish(BILLING, "job.finished", job)

    async def three() -> bool:
        return len(await (await twin.get(f"/bemserver/events/?campaign_id={project}")).json()) >= 3
    await wait_for(three)
    await publisher.publish(BILLING, "job.finished", job.model_copy(update={"message_id": "marker", "job_id": "m",
                                                                            "failed": [], "skipped": []}))

    async def marker() -> bool:
        return len(await (await twin.get(f"/bemserver/events/?campaign_id={project}")).json()) >= 4
    await wait_for(marker)  # the marker's estimated event: everything before it was handled
    events = await (await twin.get(f"/bemserver/events/?campaign_id={project}&level_min=WARNING")).json()
    assert sorted((e["level"], e["description"].split(": meter ")[1]) for e in events) == [
        ("ERROR", "failed: reading went backwards"), ("WARNING", "skipped: no reading at or before the period start")]
