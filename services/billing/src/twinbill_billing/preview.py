"""POST /api/v1/tariffs/preview: what a consumption would cost under a tariff being edited.

The body is a tariff as PUT takes it (same fields, same checks, the same field names in errors)
plus `project_id`, `consumption`, `period_start`, `period_end` and `accumulated_before`. It is
priced by the domain's one pricing call (`domain.bills.price_period`), exactly as a bill would
be, over the period as if the tariff were in force for all of it (its effective dates are the
editor's business, not the preview's). Nothing is stored. The answer is the charge document a
bill keeps (`charge_detail`): block lines, standing charges, accumulation windows, the total.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from aiohttp import web
from pydantic import AwareDatetime, Field

from twinbill_billing.api import CLOCK, _timezone
from twinbill_billing.domain.bills import price_period
from twinbill_billing.domain.periods import Period, PeriodError
from twinbill_billing.domain.pricing import TariffError
from twinbill_billing.tariffs import TariffUpdate, parse_tariff, to_document, to_domain
from twinbill_common.apidocs import documented
from twinbill_common.errors import ValidationFailed
from twinbill_common.http import INT32_MAX, json_response, read_json

MAX_CONSUMPTION = Decimal("1e12")


class TariffPreview(TariffUpdate):
    """A tariff's definition and the consumption to price under it."""

    project_id: int = Field(ge=1, le=INT32_MAX)
    consumption: Decimal = Field(ge=0, le=MAX_CONSUMPTION)
    period_start: AwareDatetime
    period_end: AwareDatetime
    accumulated_before: Decimal = Field(default=Decimal(0), ge=0, le=MAX_CONSUMPTION)


def price_preview(body: TariffPreview, *, timezone: str | None, now: datetime) -> dict[str, Any]:
    """The charge document for `body` (ValidationFailed naming the field when it cannot be priced)."""
    try:
        period = Period(body.period_start, body.period_end)
    except PeriodError as err:
        raise ValidationFailed({"period_end": [str(err)]}, data={"location": "json"}) from None
    doc = {"_id": "preview", **to_document(body, now=now, timezone=timezone),
           "effective_from": period.start, "effective_to": None}
    try:
        charge = price_period(body.consumption, tariffs=[to_domain(doc)], period=period,
                              accumulated_before=body.accumulated_before)
    except TariffError as err:
        raise ValidationFailed({"consumption": [str(err)]}, data={"location": "json"}) from None
    return charge.to_document()


@documented(summary="Price a consumption under a tariff (nothing stored)", body=TariffPreview,
            response=dict[str, Any], tags=("billing",))
async def preview_tariff(request: web.Request) -> web.Response:
    """Price `consumption` over the period under the tariff in the body; nothing is stored."""
    body = parse_tariff(TariffPreview, await read_json(request))
    timezone = await _timezone(request, body, body.project_id, current=None)
    return json_response(price_preview(body, timezone=timezone, now=request.app[CLOCK]()))


def add_preview_route(app: web.Application) -> None:
    """Mount POST /api/v1/tariffs/preview."""
    app.router.add_post("/api/v1/tariffs/preview", preview_tariff)
