"""Every change to bills and tariffs recorded: who, when, why (an `audit` collection entry).

A minimal stand-in with the agreed signature: the export engineer's module replaces it (it also
publishes a `BillingChanged` event on the bus).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twinbill_billing.context import BillingContext


async def record_change(ctx: BillingContext, *, actor: str, action: str, entity: str, entity_id: str,
                        reason: str, data: Mapping[str, Any]) -> None:
    """Write the audit entry of one change."""
    await ctx.store.db["audit"].insert_one({
        "actor": actor, "action": action, "entity": entity, "entity_id": entity_id, "reason": reason,
        "data": dict(data), "at": ctx.clock(),
    })
