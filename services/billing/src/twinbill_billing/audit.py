"""The billing audit: who changed what, when and why, stored and announced as `BillingChanged`.

`record_change` writes one document to the `audit` collection (its ObjectId is the entry id), then
publishes a `BillingChanged` whose `message_id` is that id on the `billing` exchange with routing
key `changed.{entity}.{action}` (e.g. `changed.bill.voided`, `changed.tariff.created`), confirmed.
Publishing is `mandatory`, so a bounded journal queue bound to `changed.#` keeps the event routable
while no consumer exists (as `billing.issued.journal` does for `bill.issued`); a consumer binds its
own queue to `changed.#` or a narrower pattern. The entry is the source of truth: it is written
before the publish, and marked `published` once RabbitMQ confirmed. A refused or unconfirmed publish
raises BusUnavailable (a TransientError) after the entry is stored, unmarked; every replica's relay
(`watch_unpublished`) publishes such entries later with the same message id (at-least-once).

The entry's project is `data["project_id"]` when the caller gives one (the audit read API is
project-scoped on it); entries without a project are visible to administrators only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import web
from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from twinbill_billing.context import CONTEXT, BillingContext
from twinbill_common.bus import Bus
from twinbill_common.errors import TransientError
from twinbill_common.logging import get_logger
from twinbill_common.schemas.billing import BillingChanged
from twinbill_common.topology import BILLING

log = get_logger(__name__)
USER_HEADER = "X-Twinbill-User"  # the gateway's authenticated user id, forwarded with each request
REASON_HEADER = "X-Twinbill-Reason"  # an optional why for management changes (the gateway forwards it)
AUDIT_COLLECTION = "audit"
CHANGED_JOURNAL = "billing.changed.journal"
CHANGED_JOURNAL_LENGTH = 100_000  # oldest dropped beyond this (a recent-history buffer, not a store)
CHANGED_PATTERN = "changed.#"
RELAY_BATCH = 500  # unpublished entries looked at per relay pass
SYSTEM_ACTOR = "system"  # the actor of a change made without a gateway user (X-Twinbill-User absent)


def changed_event(entry: Mapping[str, Any]) -> BillingChanged:
    """The event of a stored audit entry; its message id is the entry id."""
    entry_id = str(entry["_id"])
    return BillingChanged(
        message_id=entry_id,
        audit_id=entry_id,
        project_id=entry.get("project_id"),
        actor=entry["actor"],
        action=entry["action"],
        entity=entry["entity"],
        entity_id=entry["entity_id"],
        reason=entry.get("reason", ""),
        data=dict(entry.get("data") or {}),
        changed_at=entry["at"],
    )


def request_actor(request: web.Request) -> str:
    """Who makes an HTTP change: `user:{id}` from the gateway's X-Twinbill-User header, else
    `system` (a direct call to the service, inside the trust boundary: the demo seeding, scripts)."""
    user = request.headers.get(USER_HEADER, "").strip()
    return f"user:{user}" if user else SYSTEM_ACTOR


def changed_key(entity: str, action: str) -> str:
    """The routing key of a change: `changed.{entity}.{action}`."""
    return f"changed.{entity}.{action}"


def audit_collection(ctx_or_db: Any) -> AsyncCollection[dict[str, Any]]:
    """The `audit` collection of a BillingContext's store (or of a database handle)."""
    db = ctx_or_db if isinstance(ctx_or_db, AsyncDatabase) else ctx_or_db.store.db
    collection: AsyncCollection[dict[str, Any]] = db[AUDIT_COLLECTION]
    return collection


async def ensure_audit_indexes(collection: AsyncCollection[dict[str, Any]]) -> None:
    """The read API's index: a project's entries of one entity, newest first (idempotent)."""
    await collection.create_index(
        [("project_id", ASCENDING), ("entity", ASCENDING), ("entity_id", ASCENDING), ("at", DESCENDING)],
        name="audit_of_entity",
    )


async def declare_changed_journal(bus: Bus) -> None:
    """The bounded quorum queue that keeps `changed.*` events routable (idempotent declare)."""
    queue = await bus.channel.declare_queue(
        bus.name(CHANGED_JOURNAL),
        durable=True,
        arguments={"x-queue-type": "quorum", "x-max-length": CHANGED_JOURNAL_LENGTH},
    )
    await queue.bind(bus.name(BILLING), routing_key=CHANGED_PATTERN)


def plain(value: Any) -> Any:
    """`data` as both MongoDB and JSON hold it: Decimals as canonical text, ObjectIds as hex,
    mappings and sequences copied; aware datetimes, text, numbers, bools and None unchanged."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(item) for item in value]
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, ObjectId):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool | datetime):
        return value
    return str(value)


def _project_of(data: Mapping[str, Any]) -> int | None:
    raw = data.get("project_id")
    if isinstance(raw, bool):
        return None
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


async def record_change(
    ctx: BillingContext,
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: str,
    reason: str,
    data: Mapping[str, Any],
) -> None:
    """Write one audit entry (who, when by the ctx clock, action, entity, id, reason, data) and
    publish its `BillingChanged` (confirmed). Raises BusUnavailable if the event is not confirmed;
    the entry is stored either way (`published` false)."""
    if not action or not entity:
        raise ValueError("record_change needs an action and an entity")
    entry_id = ObjectId()
    body = plain(data)
    project_id = _project_of(body)
    now = ctx.clock()
    at = now.replace(microsecond=now.microsecond // 1000 * 1000)  # what BSON keeps: the event agrees
    entry = {
        "_id": entry_id,
        "project_id": project_id,
        "actor": actor or SYSTEM_ACTOR,
        "action": action,
        "entity": entity,
        "entity_id": str(entity_id),
        "reason": reason,
        "data": body,
        "at": at,
        "published": False,
    }
    collection = audit_collection(ctx)
    await collection.insert_one(dict(entry))
    event = changed_event(entry)
    await declare_changed_journal(ctx.bus)  # cheap and idempotent; changes are rare operator actions
    await ctx.bus.publish(BILLING, changed_key(entity, action), event)
    await collection.update_one({"_id": entry_id}, {"$set": {"published": True}})


async def record_request_change(request: web.Request, *, action: str, entity: str, entity_id: str,
                                data: Mapping[str, Any]) -> None:
    """Audit a change made over HTTP (actor and reason from the request's headers). The change is
    already stored: an event the broker did not confirm is logged, not turned into a failed request
    (the entry stays with `published` false)."""
    try:
        await record_change(request.app[CONTEXT], actor=request_actor(request), action=action,
                            entity=entity, entity_id=entity_id,
                            reason=request.headers.get(REASON_HEADER, "").strip(), data=data)
    except TransientError as err:
        log.warning("audit event not confirmed", entity=entity, entity_id=entity_id, action=action, error=str(err))


async def relay_unpublished(ctx: BillingContext, *, older_than: timedelta) -> int:
    """Publish the events of entries still unmarked `older_than` after they were written (their
    publish failed, or the process died before the confirm): at-least-once, same message ids.
    Returns how many were published."""
    collection = audit_collection(ctx)
    cutoff = ctx.clock() - older_than
    published = 0
    # Filter on the flag only, the time in Python: nx-27017 evaluates datetime ranges row by row anyway.
    async for entry in collection.find({"published": False}).limit(RELAY_BATCH):
        if entry["at"] > cutoff:
            continue
        await declare_changed_journal(ctx.bus)
        await ctx.bus.publish(BILLING, changed_key(entry["entity"], entry["action"]), changed_event(entry))
        await collection.update_one({"_id": entry["_id"]}, {"$set": {"published": True}})
        published += 1
    if published:
        log.info("audit events relayed", count=published)
    return published


async def watch_unpublished(ctx: BillingContext, *, interval: float, older_than: timedelta) -> None:
    """Relay unpublished audit events every `interval` seconds, forever (a failed pass is retried)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await relay_unpublished(ctx, older_than=older_than)
        except (TransientError, PyMongoError) as err:
            log.warning("audit relay pass failed", error=str(err))
