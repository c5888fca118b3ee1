"""`BillIssued` events: one per newly inserted bill, published after the bills are committed.

Bills are the source of truth; the event is at-least-once. A job publishes the events of the bills
it inserted before it records its outcome, so a failed publish fails the job (it is retried); the
retry finds those bills already there (unique key) and publishes the events of the ones that
carry its own job id again. A consumer deduplicates on `message_id` (= `bill_id`).

Publishing is `mandatory`, so the service declares a bounded journal queue bound to `bill.issued`:
the event is always routable even before any other consumer binds its own queue.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from twinbill_common.bus import Bus
from twinbill_common.schemas.billing import BillIssued
from twinbill_common.schemas.registry import DeviceType
from twinbill_common.topology import BILLING

JOURNAL_QUEUE = "billing.issued.journal"
JOURNAL_LENGTH = 100_000  # the oldest events are dropped beyond this (x-max-length, drop-head)
ISSUED_KEY = "bill.issued"
PUBLISH_WINDOW = 500  # publishes awaiting their confirms at once


async def declare_journal(bus: Bus) -> None:
    """The bounded quorum queue that keeps `bill.issued` routable (idempotent declare)."""
    queue = await bus.channel.declare_queue(
        bus.name(JOURNAL_QUEUE),
        durable=True,
        arguments={"x-queue-type": "quorum", "x-max-length": JOURNAL_LENGTH},
    )
    await queue.bind(bus.name(BILLING), routing_key=ISSUED_KEY)


def issued_event(bill: Mapping[str, Any]) -> BillIssued:
    """The event of a stored bill; its message id is the bill id, so consumers can deduplicate."""
    bill_id = str(bill["_id"])
    return BillIssued(
        message_id=bill_id,
        bill_id=bill_id,
        run_id=bill["run_id"],
        project_id=int(bill["project_id"]),
        device_id=int(bill["device_id"]),
        device_type=DeviceType(int(bill["device_type"])),
        period_start=bill["from_time"],
        period_end=bill["to_time"],
        consumption=str(bill["consumption"]),
        charge=str(bill["charge"]),
        outcome="estimated" if bill.get("estimated") else "billed",
    )


async def publish_issued(bus: Bus, bills: Iterable[Mapping[str, Any]]) -> int:
    """Publish one confirmed `BillIssued` per bill, PUBLISH_WINDOW in flight at once (all of a
    window published, then its confirms awaited); raises BusUnavailable (a TransientError) if any
    is refused or unconfirmed, after every publish of its window has settled. Returns how many were
    published."""
    events = [issued_event(bill) for bill in bills]
    for start in range(0, len(events), PUBLISH_WINDOW):
        await bus.publish_many(BILLING, ISSUED_KEY, events[start : start + PUBLISH_WINDOW])
    return len(events)
