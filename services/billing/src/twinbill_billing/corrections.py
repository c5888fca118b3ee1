"""Corrections without rewriting history: void a bill (a credit note is issued and the period may
be billed again) and re-bill it, over the management API (seed-001 style, plain JSON).

- `GET /api/v1/bills/{bill_id}`: one bill or credit note as stored.
- `POST /api/v1/bills/{bill_id}/void` `{"reason"}`: the bill becomes `status: "void"` with
  `void: {reason, by, at}` and `credit_note_id`; a credit note (`kind: "credit_note"`, negative
  consumption and charge, `credits_bill_id`) is issued. Only the meter's latest bill can be voided
  (409 names the later bill to void first), so the chain stays one line; and not while a run of
  its project and device type is in progress (409; a job could be extending the chain from this
  very bill). The voided bill frees
  its chain position: the next run bills the meter again from the previous bill's closing.
- `POST /api/v1/bills/{bill_id}/rebill`: bill the voided bill's period again now (after the
  readings were corrected) with a run of its own, `rebill:<bill id>`; other meters are covered.

The acting user is the gateway's `X-Twinbill-User` header. Each change is recorded (audit.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import web
from bson import ObjectId
from bson.errors import InvalidId

from twinbill_billing.audit import record_change, request_actor
from twinbill_billing.context import CONTEXT
from twinbill_billing.domain.bills import canonical
from twinbill_common.apidocs import JsonSchema, documented
from twinbill_common.errors import Conflict, NotFound, ValidationFailed
from twinbill_common.http import json_response, read_json
from twinbill_common.schemas.billing import RunBilling
from twinbill_common.topology import BILLING

NEGATED = ("consumption", "charge", "register_delta")
RUN_GUARD = timedelta(hours=1)  # a run running longer than this is taken as stuck, not in progress


def _bill_id(request: web.Request) -> ObjectId:
    try:
        return ObjectId(request.match_info["bill_id"])
    except InvalidId:
        raise NotFound(f"bill {request.match_info['bill_id']!r} not found") from None


def render(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored bill as JSON: ids and times as text."""
    def plain(value: Any) -> Any:
        if isinstance(value, ObjectId):
            return str(value)
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value
    return {"id": str(doc["_id"]), **{k: plain(v) for k, v in doc.items() if k != "_id"}}


def credit_note(bill: dict[str, Any], *, reason: str, by: str, now: datetime) -> dict[str, Any]:
    """The credit note of a bill: the same meter, period and readings, negative amounts."""
    doc = {key: value for key, value in bill.items() if key not in ("_id", "void", "credit_note_id")}
    for key in NEGATED:
        doc[key] = canonical(-Decimal(bill[key]))
    doc.update(_id=ObjectId(), charge_minor=-int(bill["charge_minor"]), kind="credit_note", status="issued",
               credits_bill_id=str(bill["_id"]), chain_key=f"credit:{bill['_id']}", reason=reason, issued_by=by,
               created_at=now, run_id=None, job_id=None, flags=["credit_note"])
    return doc


BILL_ID = {"bill_id": str}
VOID = JsonSchema({"type": "object", "required": ["reason"], "properties": {
    "reason": {"type": "string", "minLength": 1, "pattern": "\\S", "description": "why the bill is voided"}}})


@documented(summary="One bill (or credit note) with its segments and lines", response=dict[str, Any],
            path_types=BILL_ID, tags=("billing",))
async def get_bill(request: web.Request) -> web.Response:
    """GET /api/v1/bills/{bill_id}: one bill or credit note as stored (the gateway reads its
    `project_id` to check access)."""
    bill = await request.app[CONTEXT].store.get_bill(_bill_id(request))
    if bill is None:
        raise NotFound(f"bill {request.match_info['bill_id']} not found")
    return json_response(render(bill))


@documented(summary="Void a bill with a reason; its credit note is issued", body=VOID, response=dict[str, Any],
            path_types=BILL_ID, tags=("billing",))
async def void_bill(request: web.Request) -> web.Response:
    """POST /api/v1/bills/{bill_id}/void: void with a reason, issue the credit note (200)."""
    ctx = request.app[CONTEXT]
    bill_id = _bill_id(request)
    body = await read_json(request)
    reason = body.get("reason") if isinstance(body, dict) else None
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationFailed({"reason": ["Missing data for required field: why the bill is voided."]})
    reason = reason.strip()
    bill = await ctx.store.get_bill(bill_id)
    if bill is None:
        raise NotFound(f"bill {bill_id} not found")
    if bill.get("kind", "bill") != "bill":
        raise Conflict(f"{bill_id} is a credit note; only bills can be voided")
    if bill.get("status", "issued") == "void":
        raise Conflict(f"bill {bill_id} is already void (credit note {bill.get('credit_note_id')})")
    ledger = (await ctx.store.ledgers(bill["project_id"], [bill["device_id"]])).get(bill["device_id"], [])
    later = [d for d in ledger if d.get("kind", "bill") == "bill" and d.get("status", "issued") == "issued"
             and d["from_time"] >= bill["to_time"]]
    if later:
        first = min(later, key=lambda d: d["from_time"])
        raise Conflict(f"bill {first['_id']} follows bill {bill_id} on the meter's chain: void it first")
    by, now = request_actor(request), ctx.clock()
    busy = [r["_id"] for r in await ctx.store.running_runs(bill["project_id"], bill["device_type"])
            if not isinstance(r.get("started_at"), datetime) or now - r["started_at"] < RUN_GUARD]
    if busy:  # a job of it may be extending this meter's chain from this very bill
        raise Conflict(f"billing run {busy[0]} of project {bill['project_id']} is in progress; "
                       "void the bill when it has finished")
    note = await ctx.store.insert_credit_note(credit_note(bill, reason=reason, by=by, now=now))
    voided = await ctx.store.void_bill(bill, {"credit_note_id": str(note["_id"]),
                                              "void": {"reason": reason, "by": by, "at": now}})
    if not voided:
        raise Conflict(f"bill {bill_id} was voided meanwhile")
    await record_change(ctx, actor=by, action="voided", entity="bill", entity_id=str(bill_id), reason=reason,
                        data={"project_id": bill["project_id"], "credit_note_id": str(note["_id"]),
                              "charge": bill["charge"]})
    await record_change(ctx, actor=by, action="issued", entity="credit_note", entity_id=str(note["_id"]),
                        reason=reason, data={"project_id": bill["project_id"], "credits_bill_id": str(bill_id),
                                          "charge": note["charge"]})
    fresh = await ctx.store.get_bill(bill_id)
    assert fresh is not None  # voided above
    return json_response({"bill": render(fresh), "credit_note": render(note)})


@documented(summary="Bill a voided bill's period again (202, the run id)", status=202,
            response=dict[str, str], path_types=BILL_ID, tags=("billing",))
async def rebill(request: web.Request) -> web.Response:
    """POST /api/v1/bills/{bill_id}/rebill: bill a voided bill's period again (202, the run id)."""
    ctx = request.app[CONTEXT]
    bill_id = _bill_id(request)
    bill = await ctx.store.get_bill(bill_id)
    if bill is None or bill.get("kind", "bill") != "bill":
        raise NotFound(f"bill {bill_id} not found")
    if bill.get("status", "issued") != "void":
        raise Conflict(f"bill {bill_id} is not void: void it (with a reason) before billing its period again")
    run_id = f"rebill:{bill_id}"
    run = RunBilling(run_id=run_id, message_id=run_id, project_id=bill["project_id"],
                     device_type=bill["device_type"], task_key="rebill",
                     period_start=bill.get("requested_from") or bill["from_time"],
                     period_end=bill.get("requested_to") or bill["to_time"], fire_time=ctx.clock())
    await ctx.bus.publish(BILLING, "run.requested", run)
    by = request_actor(request)
    await record_change(ctx, actor=by, action="rebill_requested", entity="bill", entity_id=str(bill_id),
                        reason=str(bill.get("void", {}).get("reason", "")),
                        data={"project_id": bill["project_id"], "run_id": run_id})
    return json_response({"run_id": run_id}, status=202)


def add_correction_routes(app: web.Application) -> None:
    """Mount the void and re-bill routes."""
    app.router.add_get("/api/v1/bills/{bill_id}", get_bill)
    app.router.add_post("/api/v1/bills/{bill_id}/void", void_bill)
    app.router.add_post("/api/v1/bills/{bill_id}/rebill", rebill)
