"""Missing readings on the real RabbitMQ and MongoDB: a period without a reading is estimated from
the recent average daily consumption and flagged; the next actual reading trues it up, so the
chain stays exact."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from twinbill_common.topology import BILLING

from .conftest import Billing
from .fake_twin import TwinData, meter
from .test_billing_run import P_START, PROJECT, create_tariff, finished_run, ms, run_message

D = Decimal


async def test_estimate_then_true_up(billing: Billing, twin: tuple[TwinData, str]) -> None:
    """30 days at 2 units a day are billed; the next 30 days have no reading: estimated at 60
    (flagged, listed in the run); the reading after them (150) trues up: 150 - 100 - 60 = -10."""
    data, _ = twin
    data.timezones[PROJECT] = "Asia/Shanghai"
    await create_tariff(billing, {"project_id": PROJECT, "device_type": 2, "kind": "flat",
                                  "unit_price": "1", "effective_from": "2000-01-01T00:00:00Z"})
    data.add_device(PROJECT, meter(1))
    start = P_START
    ends = [start + timedelta(days=30 * n) for n in (1, 2, 3)]
    data.add_reading(1, ms(start), "40.0")
    data.add_reading(1, ms(ends[0]), "100.0")
    for index, end in enumerate(ends[:2]):
        await billing.bus.publish(BILLING, "run.requested",
                                  run_message(f"e:{index}", start=start + timedelta(days=30 * index), end=end))
        await finished_run(billing, f"e:{index}")
    estimated = await billing.db.bills.find_one({"run_id": "e:1"})
    assert estimated["estimated"] is True and "estimated" in estimated["flags"]
    assert (estimated["closing_reading"], estimated["consumption"]) == ("160.0", "60.0")
    assert estimated["closing_source"] == "estimate"
    run = await billing.db.runs.find_one({"_id": "e:1"})
    assert run["summary"]["estimated"] == 1 and run["summary"]["estimated_devices"][0]["device_id"] == 1

    data.add_reading(1, ms(ends[2] - timedelta(days=1)), "150.0")
    await billing.bus.publish(BILLING, "run.requested", run_message("e:2", start=ends[1], end=ends[2]))
    await finished_run(billing, "e:2")
    trued = await billing.db.bills.find_one({"run_id": "e:2"})
    assert trued["true_up"] is True and trued["estimated"] is False
    assert (trued["opening_reading"], trued["closing_reading"]) == ("160.0", "150.0")
    assert D(trued["consumption"]) == D("-10.0") and D(trued["charge"]) == D("-10.00")
    bills = await billing.db.bills.find({"device_id": 1}).to_list()
    assert sum(D(b["consumption"]) for b in bills) == D("150.0") - D("40.0")
