"""Poison jobs: dead-lettered with the reason, and the run finishes saying which devices failed
(the dead-letter watcher then drains the DLQ without counting them twice)."""

from __future__ import annotations

from typing import Any

import aio_pika
import pytest

from twinbill_billing.demo import seed_demo_tariffs
from twinbill_billing.settings import BillingSettings
from twinbill_common.bus import REASON_HEADER
from twinbill_common.schemas.billing import BillingJob, RunBilling
from twinbill_common.topology import BILLING

from .conftest import Billing, wait_for
from .fake_twin import TwinData, meter
from .test_billing_run import P_END, P_START, PROJECT, finished_run, run_message


@pytest.fixture
def billing_settings(billing_settings: BillingSettings) -> BillingSettings:
    """No in-place retries: each transient failure is a redelivery, so the delivery limit is
    reached in seconds (in production a job retries in place for BILLING_RETRY_BUDGET first)."""
    return billing_settings.model_copy(update={"retry_budget": 0.0})


async def drained(billing: Billing, outcome: str, count: int = 1) -> None:
    """Wait until the dead-letter watcher has drained `count` DLQ messages with this outcome."""
    line = f'billing_dead_letters_total{{outcome="{outcome}"}} {float(count)}'

    async def check() -> bool:
        async with billing.http.get(f"{billing.url}/metrics") as response:
            return line in await response.text()
    await wait_for(check, timeout=30, what=line)


async def test_job_that_keeps_failing_is_dead_lettered_and_reported(
        billing: Billing, twin: tuple[TwinData, str]) -> None:
    """The twin answers 503 on every readings call: after the delivery limit the job goes to the
    DLQ with the reason, every device is `failed` on the run, and the run still finishes."""
    data, _ = twin
    data.timezones[PROJECT] = "Asia/Shanghai"
    for i in range(1, 4):
        data.add_device(PROJECT, meter(i))
    data.fail_readings = True
    await billing.bus.publish(BILLING, "run.requested", run_message("poison:1"))
    run = await finished_run(billing, "poison:1")
    summary = run["summary"]
    assert summary["jobs_dead_lettered"] == 1 and summary["failed"] == 3 and summary["billed"] == 0
    assert "gave up after 6 deliveries" in summary["dead_lettered_jobs"][0]["reason"]
    assert "503" in summary["failed_devices"][0]["reason"]
    await drained(billing, "already_recorded")  # the handler recorded it before the DLQ; counted once
    assert (await finished_run(billing, "poison:1"))["summary"] == summary
    assert data.calls["readings_last"] == 6  # first delivery + 5 redeliveries (x-delivery-limit 5)
    async with billing.http.get(f"{billing.url}/metrics") as response:
        text = await response.text()
    assert 'billing_jobs_total{outcome="dead_lettered"} 1.0' in text
    assert 'billing_bills_total{outcome="failed"} 3.0' in text
    assert 'billing_runs_finished_total{outcome="with_failures"} 1.0' in text  # the alert's input


async def test_job_without_snapshot_is_dead_lettered_at_once(billing: Billing) -> None:
    """A job whose run was never split is permanent: DLQ with the reason on the first delivery."""
    run = RunBilling(run_id="ghost:1", project_id=PROJECT, device_type=2, task_key="ghost",
                     period_start=P_START, period_end=P_END, fire_time=P_END)
    job = BillingJob(job_id="ghost:1:0", run=run, device_ids=[1, 2], chunk=0, chunks=1)
    await billing.bus.publish(BILLING, "job.created", job)
    await drained(billing, "already_recorded")
    outcome: dict[str, Any] | None = await billing.db.run_jobs.find_one({"_id": "ghost:1:0"})
    assert outcome is not None and outcome["status"] == "dead_lettered"
    assert "no device snapshot" in outcome["reason"] and outcome["failed"][0]["device_id"] == 1


async def test_demo_tariffs_are_idempotent(billing: Billing) -> None:
    """seed_demo_tariffs twice: flat electricity and tiered tap/purified water, once each."""
    await seed_demo_tariffs(billing.url, project_id=77)
    await seed_demo_tariffs(billing.url, project_id=77)
    async with billing.http.get(f"{billing.url}/api/v1/tariffs/?project_id=77") as response:
        tariffs = await response.json()
    assert sorted((t["device_type"], t["water_meter_kind"], t["kind"]) for t in tariffs) == [
        (1, "purified", "tiered"), (1, "tap", "tiered"), (2, None, "flat")]


async def test_empty_run_finishes_and_unknown_project_is_dead_lettered(
        billing: Billing, twin: tuple[TwinData, str]) -> None:
    """A project with no meters of the type: a finished, empty run. An unknown project: the
    RunBilling goes to billing.runs.dlq naming the twin's 404."""
    data, _ = twin
    data.timezones[PROJECT] = "Asia/Shanghai"
    await billing.bus.publish(BILLING, "run.requested", run_message("empty:1", device_type=1))
    run = await finished_run(billing, "empty:1")
    assert run["summary"]["devices_expected"] == 0 and run["summary"]["jobs_total"] == 0
    ghost = RunBilling(run_id="nowhere:1", project_id=999, device_type=2, task_key="nowhere",
                       period_start=P_START, period_end=P_END, fire_time=P_END)
    await billing.bus.publish(BILLING, "run.requested", ghost)
    channel = await billing.bus._connection.channel()  # type: ignore[union-attr,unused-ignore]  # connected above
    queue = await channel.get_queue(billing.bus.name("billing.runs.dlq"), ensure=False)

    async def dead() -> aio_pika.abc.AbstractIncomingMessage | None:
        message: aio_pika.abc.AbstractIncomingMessage | None = await queue.get(fail=False, no_ack=True)
        return message
    message = await wait_for(dead, what="the unknown project's run in the DLQ")
    assert "404" in str((message.headers or {})[REASON_HEADER])
    await channel.close()
    async with billing.http.get(f"{billing.url}/readyz") as response:
        assert response.status == 200
        assert (await response.json())["checks"] == ["audit-relay", "dead-letter-depth", "dead-letter-watcher",
                                                      "jobs-consumer", "mongodb", "queue-depth",
                                                      "rabbitmq", "runs-consumer"]
    async with billing.http.get(f"{billing.url}/metrics") as response:
        text = await response.text()
    assert "billing_jobs_queue_depth " in text and "billing_run_duration_seconds_count 1.0" in text
    assert 'twinbill_dead_letter_messages{queue="billing.runs.dlq"}' in text
