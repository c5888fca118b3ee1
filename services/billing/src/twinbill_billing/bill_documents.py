"""The stored shape of a bill: registry snapshot, chain position, segments, periods, charge."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId

from twinbill_billing.domain.bills import BillDraft, canonical
from twinbill_billing.domain.pricing import CENT, Charge
from twinbill_billing.store import chain_key
from twinbill_billing.twin import BillingDevice
from twinbill_common.schemas.billing import BillingJob


def tariff_snapshot(doc: dict[str, Any]) -> dict[str, Any]:
    """What a bill keeps of a tariff it used."""
    return {
        "id": str(doc["_id"]),
        "name": doc.get("name", ""),
        "kind": doc["kind"],
        "unit_price": doc.get("unit_price"),
        "blocks": doc.get("blocks", []),
        "water_meter_kind": doc.get("water_meter_kind"),
        "effective_from": doc["effective_from"],
        "effective_to": doc.get("effective_to"),
    }


def charge_parts(charge: Charge, tariffs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each tariff's part of a charge, with the tariff snapshot."""
    return [
        {
            **tariffs[part.tariff_id],
            "share": f"{part.share.numerator}/{part.share.denominator}",
            "from": part.start,
            "to": part.end,
            "consumption": canonical(part.consumption),
            "amount": canonical(part.amount),
        }
        for part in charge.parts
    ]


def bill_document(
    device: BillingDevice,
    draft: BillDraft,
    *,
    job: BillingJob,
    timezone: str,
    tariffs: dict[str, dict[str, Any]],
    now: datetime,
) -> dict[str, Any]:
    """The stored bill. `from_time`/`to_time` are its chain position (the requested period,
    shortened or extended to the chain: `requested_from`/`requested_to` keep what was asked)."""
    run = job.run
    raw = device.raw
    span = draft.span
    return {
        "_id": ObjectId(),
        "project_id": run.project_id,
        "device_id": device.id,
        "device_key": device.device_key,
        "product_key": raw.get("product_key"),
        "device_name": raw.get("name"),
        "device_type": int(run.device_type),
        "water_meter_kind": device.water_meter_kind,
        "house_address": list(raw.get("house_address") or ["", "", "", "", ""]),
        "residents": list(raw.get("residents") or []),
        "multiplier": canonical(device.multiplier),
        "register_max": None if device.register_max is None else canonical(device.register_max),
        "opening_reading": canonical(draft.opening.value),
        "opening_time": draft.opening.time,
        "opening_source": draft.opening.source,
        "closing_reading": canonical(draft.closing.value),
        "closing_time": draft.closing.time,
        "closing_source": draft.closing.source,
        "register_delta": canonical(draft.usage.register_delta),
        "rolled_over": draft.usage.rolled_over,
        "consumption": canonical(draft.usage.consumption),
        "charge": canonical(draft.charge.amount),
        "charge_minor": int(draft.charge.amount / CENT),
        "tariff": charge_parts(draft.charge, tariffs),
        "charge_detail": draft.charge.to_document(),  # block lines, charges, snapshot, year-to-date
        "segments": [
            {
                "opening_reading": canonical(s.opening.value), "opening_time": s.opening.time,
                "opening_source": s.opening.source, "closing_reading": canonical(s.closing.value),
                "closing_time": s.closing.time, "closing_source": s.closing.source,
                "multiplier": canonical(s.multiplier),
                "register_max": None if s.register_max is None else canonical(s.register_max),
                "register_delta": canonical(s.usage.register_delta), "rolled_over": s.usage.rolled_over,
                "consumption": canonical(s.usage.consumption),
            }
            for s in draft.segments
        ],
        "periods": [
            {
                "from": p.piece.start, "to": p.piece.end, "consumption": canonical(p.piece.consumption),
                "accumulated_before": canonical(p.accumulated_before),
                "window": None if p.window is None else {"from": p.window[0], "to": p.window[1]},
                "charge": canonical(p.charge.amount),
            }
            for p in draft.priced
        ],
        "estimated": draft.estimated,
        "true_up": draft.true_up,
        "catch_up": draft.catch_up,
        "flags": list(draft.flags),
        "status": "issued",
        "kind": "bill",
        "chain_key": chain_key(run.project_id, device.id, span.from_time),
        "timezone": timezone,
        "from_time": span.from_time,
        "to_time": span.to_time,
        "requested_from": run.period_start,
        "requested_to": run.period_end,
        "created_at": now,
        "run_id": run.run_id,
        "job_id": job.job_id,
    }
