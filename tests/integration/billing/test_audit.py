"""The billing audit on the real MongoDB wire server and RabbitMQ: one entry per change (who, when,
why) and its `BillingChanged` on `changed.{entity}.{action}`, message id = the entry id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal

import aio_pika
import pytest
from bson import ObjectId

from twinbill_billing.audit import record_change, relay_unpublished
from twinbill_billing.context import CONTEXT
from twinbill_billing.settings import BillingSettings
from twinbill_common.schemas.billing import BillingChanged
from twinbill_common.topology import BILLING

from .conftest import Billing, wait_for


@pytest.fixture
def billing_settings(billing_settings: BillingSettings) -> BillingSettings:
    """The service's own relay pass stays out of the way: these tests call the relay themselves."""
    return billing_settings.model_copy(update={"audit_relay_interval": 3600.0})


@asynccontextmanager
async def bound_queue(billing: Billing, pattern: str) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """A queue of the test's own, bound to the billing exchange with `pattern`."""
    channel = await billing.bus._connection.channel()  # type: ignore[union-attr,unused-ignore]  # connected
    queue = await channel.declare_queue(billing.bus.name(f"test.audit.{ObjectId()}"), exclusive=True)
    await queue.bind(billing.bus.name(BILLING), routing_key=pattern)
    try:
        yield queue
    finally:
        await channel.close()


async def test_record_change_stores_the_entry_and_publishes_billing_changed(billing: Billing) -> None:
    """One audit document (actor, ctx-clock time, action, entity, id, reason, data with the project)
    and one confirmed BillingChanged on `changed.bill.voided` whose message id is the entry id."""
    ctx = billing.app[CONTEXT]
    async with bound_queue(billing, "changed.bill.*") as queue:
        data = {"project_id": 42, "charge": Decimal("-12.30"), "credit_note_id": ObjectId("65a0c0ffee0000000000abce")}
        await record_change(ctx, actor="7", action="voided", entity="bill", entity_id="65a0c0ffee0000000000abcd",
                            reason="meter misread: 读数错误", data=data)
        message = await wait_for(lambda: queue.get(fail=False, no_ack=True), what="a BillingChanged")
    entries = await billing.db.audit.find({}).to_list()
    assert len(entries) == 1
    entry = entries[0]
    assert (entry["actor"], entry["action"], entry["entity"], entry["entity_id"], entry["project_id"]) == (
        "7", "voided", "bill", "65a0c0ffee0000000000abcd", 42)
    assert entry["reason"] == "meter misread: 读数错误"
    assert entry["data"] == {"project_id": 42, "charge": "-12.30", "credit_note_id": "65a0c0ffee0000000000abce"}
    assert entry["at"].tzinfo is not None and bool(entry["published"])
    assert message.routing_key == "changed.bill.voided" and (message.headers or {})["type"] == "BillingChanged"
    event = BillingChanged.model_validate_json(message.body)
    assert event.message_id == event.audit_id == str(entry["_id"]) == message.message_id
    assert (event.actor, event.action, event.entity, event.entity_id, event.project_id) == (
        "7", "voided", "bill", "65a0c0ffee0000000000abcd", 42)
    assert event.reason == entry["reason"] and event.data == entry["data"]
    assert event.changed_at == entry["at"]


async def test_a_change_is_routable_without_any_consumer(billing: Billing) -> None:
    """Publishing is mandatory: the journal queue takes the event when nobody else listens."""
    await record_change(billing.app[CONTEXT], actor="system", action="recomputed", entity="run", entity_id="r:1",
                        reason="", data={})
    entry = await billing.db.audit.find_one({"entity": "run"})
    assert entry is not None and entry["project_id"] is None and bool(entry["published"])


async def test_unconfirmed_events_are_relayed_later_with_the_same_message_id(billing: Billing) -> None:
    """An entry left unpublished (its publish failed, or the process died before the confirm) is
    published by the relay once it is older than the grace time, and marked; a fresh one waits."""
    ctx = billing.app[CONTEXT]
    now = ctx.clock()
    stale, fresh = ObjectId(), ObjectId()
    base = {"project_id": 42, "actor": "user:7", "action": "voided", "entity": "bill", "reason": "r", "data": {},
            "published": False}
    await billing.db.audit.insert_many([
        {**base, "_id": stale, "entity_id": "a", "at": (now - timedelta(minutes=5)).replace(microsecond=0)},
        {**base, "_id": fresh, "entity_id": "b", "at": now.replace(microsecond=0)},
    ])
    async with bound_queue(billing, "changed.#") as queue:
        assert await relay_unpublished(ctx, older_than=timedelta(minutes=1)) == 1
        message = await wait_for(lambda: queue.get(fail=False, no_ack=True), what="the relayed BillingChanged")
    event = BillingChanged.model_validate_json(message.body)
    assert message.message_id == event.audit_id == str(stale) and event.entity_id == "a"
    marks = {doc["_id"]: bool(doc["published"]) for doc in await billing.db.audit.find({}).to_list()}
    assert marks == {stale: True, fresh: False}
