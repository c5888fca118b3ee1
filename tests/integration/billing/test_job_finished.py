"""Billing's outcomes reach the events (issue 13): a run's jobs publish BillingJobFinished on
`job.finished` (queue twin.billing_outcomes) naming the meters skipped (no reading), and the
exception (a register going backwards) as failed, each with its reason; deduplicable by job."""

from __future__ import annotations

from typing import Any

from twinbill_common.schemas import BillingJobFinished
from twinbill_common.topology import BILLING, TWIN_BILLING_OUTCOMES

from .conftest import Billing
from .fake_twin import TwinData
from .test_billing_run import PROJECT, create_tariff, finished_run, run_message, simulate


async def test_a_run_publishes_the_meters_it_skipped_and_could_not_bill(billing: Billing,
                                                                         twin: tuple[TwinData, str]) -> None:
    """Meters 18 and 19 skipped, 17 failed (backwards), one message per job with any of them."""
    data, _ = twin
    simulate(data)
    await create_tariff(billing, {"project_id": PROJECT, "device_type": 2, "kind": "flat",
                                  "unit_price": "0.55", "effective_from": "2000-01-01T00:00:00Z"})
    await billing.bus.publish(BILLING, "run.requested", run_message("task9:1711900800"))
    await finished_run(billing, "task9:1711900800")
    channel = await billing.bus.open_channel()
    queue = await channel.declare_queue(billing.bus.name(TWIN_BILLING_OUTCOMES.name), passive=True)
    found: list[BillingJobFinished] = []
    while (message := await queue.get(fail=False)) is not None:
        await message.ack()
        found.append(BillingJobFinished.model_validate_json(message.body))
    await channel.close()
    assert found and all(m.message_id == f"job:{m.job_id}" and m.project_id == PROJECT for m in found)
    skipped: dict[int, Any] = {e["device_id"]: e["reason"] for m in found for e in m.skipped}
    failed: dict[int, Any] = {e["device_id"]: e["reason"] for m in found for e in m.failed}
    assert sorted(skipped) == [18, 19] and all(skipped.values())
    assert sorted(failed) == [17] and failed[17]
    assert all(m.run_id == "task9:1711900800" and m.status == "done" for m in found)
