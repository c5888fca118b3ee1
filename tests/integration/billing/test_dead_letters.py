"""The dead-letter watcher and BillIssued events, on the real RabbitMQ and MongoDB.

A job the broker dead-letters by itself (its delivery limit exhausted without the handler ever
finishing, as when a worker dies on every delivery) is recorded on its run from `billing.jobs.dlq`:
its unbilled devices failed with the broker's reason, bills already inserted counted as billed, once
however often the DLQ message comes back. Every new bill is announced on `bill.issued`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any

import aio_pika
import aiohttp
from bson import ObjectId
from pymongo import AsyncMongoClient

from twinbill_billing.app import create_app
from twinbill_billing.deadletters import PARKED
from twinbill_billing.events import JOURNAL_QUEUE, declare_journal
from twinbill_billing.settings import BillingSettings
from twinbill_common.bus import REASON_HEADER, Bus
from twinbill_common.schemas.billing import BillingJob, BillIssued, RunBilling
from twinbill_common.topology import BILLING, DEAD_LETTER

from .conftest import Billing, serve, wait_for
from .fake_twin import TwinData, meter
from .test_billing_run import P_END, P_START, PROJECT, create_tariff, finished_run, ms, run_message
from .test_poison_jobs import drained


@asynccontextmanager
async def started(settings: BillingSettings) -> AsyncIterator[Billing]:
    """A billing app with these settings, a publisher bus and a database handle."""
    app = create_app(settings)
    runner, url = await serve(app)
    bus = Bus(settings.amqp_url.get_secret_value(), namespace=settings.bus_namespace)
    await bus.connect()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url, tz_aware=True)
    session = aiohttp.ClientSession()
    try:
        yield Billing(url, app, settings, client[settings.mongo_db], bus, session)
    finally:
        await session.close()
        await client.close()
        await bus.close()
        await runner.cleanup()


async def three_meters(billing: Billing, data: TwinData) -> None:
    """Meters 1-3 with a reading before and inside the period, and a flat tariff."""
    data.timezones[PROJECT] = "Asia/Shanghai"
    for i in (1, 2, 3):
        data.add_device(PROJECT, meter(i))
        data.add_reading(i, ms(P_START - timedelta(hours=1)), "10")
        data.add_reading(i, ms(P_END - timedelta(hours=1)), str(10 + i))
    await create_tariff(billing, {"project_id": PROJECT, "device_type": 2, "kind": "flat",
                                  "unit_price": "0.50", "effective_from": "2000-01-01T00:00:00Z"})


async def take_all(billing: Billing, queue_name: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Every message ready in a queue (taken and acked)."""
    channel = await billing.bus._connection.channel()  # type: ignore[union-attr,unused-ignore]  # connected
    queue = await channel.get_queue(billing.bus.name(queue_name), ensure=False)
    taken = []
    while (message := await queue.get(fail=False, no_ack=True)) is not None:
        taken.append(message)
    await channel.close()
    return taken


def bill_doc(device_id: int, *, run_id: str, job_id: str) -> dict[str, Any]:
    """A bill as a worker that died right after its insert would have left it."""
    return {"_id": ObjectId(), "project_id": PROJECT, "device_id": device_id, "device_type": 2,
            "from_time": P_START, "to_time": P_END, "consumption": str(device_id),
            "charge": "0.50", "estimated": False, "run_id": run_id, "job_id": job_id,
            "closing_reading": "11", "closing_time": P_END}


async def test_job_dead_lettered_by_the_broker_is_recorded_once(
        billing_settings: BillingSettings, twin: tuple[TwinData, str]) -> None:
    """No replica consumes billing.jobs here: the test plays a worker that dies on every delivery
    (take, give back) until the quorum queue's delivery limit dead-letters the job by itself."""
    data, _ = twin
    settings = billing_settings.model_copy(update={"consume_jobs": False})
    async with started(settings) as billing:
        await three_meters(billing, data)
        run_id, job_id = "crash:1", "crash:1:0"
        await billing.bus.publish(BILLING, "run.requested", run_message(run_id))

        async def split() -> bool:
            run = await billing.db.runs.find_one({"_id": run_id})
            return bool(run and run.get("jobs_published"))
        await wait_for(split, what="the run to be split")
        # The dying worker inserted device 2's bill; device 3 was billed by another job already.
        own = bill_doc(2, run_id=run_id, job_id=job_id)
        await billing.db.bills.insert_many([own, bill_doc(3, run_id="earlier:1", job_id="earlier:1:0")])

        channel = await billing.bus._connection.channel()  # type: ignore[union-attr,unused-ignore]
        jobs = await channel.get_queue(billing.bus.name("billing.jobs"), ensure=False)
        deliveries = 0

        async def crash_until_dead_lettered() -> bool:
            nonlocal deliveries
            message = await jobs.get(fail=False)
            if message is None:
                return deliveries > 0
            deliveries += 1
            await message.nack(requeue=True)
            return False
        await wait_for(crash_until_dead_lettered, what="the broker to dead-letter the job")
        await channel.close()
        assert deliveries == 6  # x-delivery-limit 5: the sixth return dead-letters it

        run = await finished_run(billing, run_id)
        summary = run["summary"]
        assert summary["jobs_dead_lettered"] == 1 and summary["jobs_done"] == summary["jobs_total"] == 1
        assert [d["device_id"] for d in summary["failed_devices"]] == [1]
        assert "delivery limit exceeded" in summary["failed_devices"][0]["reason"]
        assert "delivery limit exceeded" in summary["dead_lettered_jobs"][0]["reason"]
        assert summary["billed"] == 2 and summary["newly_billed"] == 1 and summary["failed"] == 1
        await drained(billing, "recorded")
        # The bill the dead worker inserted is announced (its event may never have gone out).
        events = [BillIssued.model_validate_json(m.body) for m in await take_all(billing, JOURNAL_QUEUE)]
        assert {e.bill_id for e in events} == {str(own["_id"])}

        # The same dead letter again (a redelivery), and a malformed one: nothing counted twice,
        # the malformed message parked with its reason, the watcher still running.
        dead_letters = await billing.bus.exchange(DEAD_LETTER)
        job = BillingJob(job_id=job_id, message_id=job_id, run=run_message(run_id), device_ids=[1, 2, 3],
                         chunk=0, chunks=1)
        for body in (b"{not json", job.model_dump_json().encode()):
            await dead_letters.publish(
                aio_pika.Message(body, headers={"x-first-death-reason": "delivery_limit"}),
                routing_key=billing.bus.name("billing.jobs"))
        await drained(billing, "already_recorded")
        await drained(billing, "parked")
        assert await billing.db.run_jobs.count_documents({"run_id": run_id}) == 1
        assert (await finished_run(billing, run_id))["summary"] == summary
        [parked] = await take_all(billing, PARKED)
        assert parked.body == b"{not json"
        assert "not a valid BillingJob" in str((parked.headers or {})[REASON_HEADER])
        assert await take_all(billing, "billing.jobs.dlq") == []


async def test_new_bills_are_announced_on_bill_issued(billing: Billing, twin: tuple[TwinData, str]) -> None:
    """One BillIssued per new bill in the journal queue, fields as the bill; a redelivered job
    announces its own bills again (at-least-once, same bill ids) and bills nothing twice."""
    data, _ = twin
    await three_meters(billing, data)
    await billing.bus.publish(BILLING, "run.requested", run_message("issued:1"))
    await finished_run(billing, "issued:1")
    bills = {b["device_id"]: b for b in await billing.db.bills.find({"run_id": "issued:1"}).to_list()}
    assert sorted(bills) == [1, 2, 3]
    messages = await take_all(billing, JOURNAL_QUEUE)
    assert all(m.routing_key == "bill.issued" and (m.headers or {})["type"] == "BillIssued" for m in messages)
    events = {e.device_id: e for e in (BillIssued.model_validate_json(m.body) for m in messages)}
    assert len(messages) == 3 and sorted(events) == [1, 2, 3]
    for device_id, event in events.items():
        bill = bills[device_id]
        assert event.bill_id == event.message_id == str(bill["_id"])
        assert (event.run_id, event.project_id, int(event.device_type)) == ("issued:1", PROJECT, 2)
        assert (event.period_start, event.period_end) == (P_START, P_END)
        assert event.consumption == bill["consumption"] and Decimal(event.consumption) == device_id
        assert event.charge == bill["charge"] == f"{Decimal('0.50') * device_id:.2f}"
        assert event.outcome == "billed"

    run = RunBilling.model_validate(run_message("issued:1").model_dump())
    job = BillingJob(job_id="issued:1:0", run=run, device_ids=[1, 2, 3], chunk=0, chunks=1)
    await billing.bus.publish(BILLING, "job.created", job)

    async def redelivered() -> bool:
        async with billing.http.get(f"{billing.url}/metrics") as response:
            return 'billing_jobs_total{outcome="redelivered"} 1.0' in await response.text()
    await wait_for(redelivered, what="the redelivered job")
    again = [BillIssued.model_validate_json(m.body) for m in await take_all(billing, JOURNAL_QUEUE)]
    assert sorted(e.bill_id for e in again) == sorted(str(b["_id"]) for b in bills.values())
    assert await billing.db.bills.count_documents({"project_id": PROJECT}) == 3


async def test_a_job_whose_events_are_refused_is_retried_and_announces_its_bills(
        billing: Billing, twin: tuple[TwinData, str]) -> None:
    """With `bill.issued` unroutable (its journal queue gone), the events of a job's new bills are
    refused after the bills are inserted: the job is retried, not recorded; once the events are
    routable again the retry finds its bills there and announces every one of them with its bill
    id, and nothing is billed twice."""
    data, _ = twin
    await three_meters(billing, data)
    channel = await billing.bus._connection.channel()  # type: ignore[union-attr,unused-ignore]  # connected
    await channel.queue_delete(billing.bus.name(JOURNAL_QUEUE))
    await channel.close()
    await billing.bus.publish(BILLING, "run.requested", run_message("refused:1"))

    async def retried() -> bool:
        async with billing.http.get(f"{billing.url}/metrics") as response:
            return 'billing_jobs_total{outcome="retried"}' in await response.text()
    await wait_for(retried, what="the job to fail on its refused events")
    assert await billing.db.run_jobs.count_documents({"run_id": "refused:1"}) == 0
    bills = await billing.db.bills.find({"run_id": "refused:1"}).to_list()
    assert sorted(b["device_id"] for b in bills) == [1, 2, 3]

    await declare_journal(billing.bus)
    run = await finished_run(billing, "refused:1")
    assert run["summary"]["billed"] == 3 and run["summary"]["jobs_done"] == 1
    events = [BillIssued.model_validate_json(m.body) for m in await take_all(billing, JOURNAL_QUEUE)]
    assert {e.bill_id for e in events} == {str(b["_id"]) for b in bills}  # at least once each
    assert all(e.message_id == e.bill_id and e.run_id == "refused:1" for e in events)
    assert await billing.db.bills.count_documents({"project_id": PROJECT}) == 3
