"""POST /api/v1/tariffs/preview: a tariff being edited priced by the billing domain, nothing stored."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from twinbill_billing.domain.bills import price_period
from twinbill_billing.domain.periods import Period
from twinbill_billing.tariffs import TariffUpdate, to_document, to_domain

from .conftest import Billing
from .test_tariffs_api import WATER_TIERED, call

PERIOD = {"period_start": "2026-03-01T00:00:00+08:00", "period_end": "2026-04-01T00:00:00+08:00"}


async def test_preview_prices_blocks_as_a_bill_would(billing: Billing) -> None:
    """25 m3 on 10 at 3.50, 10 at 4.55, the rest at 6.10: three lines, 111.00; nothing stored;
    the same answer as the domain's price_period on the same tariff."""
    body = {**WATER_TIERED, **PERIOD, "consumption": "25"}
    body.pop("device_type")
    status, charge, _ = await call(billing, "POST", "/api/v1/tariffs/preview", body)
    assert status == 200, charge
    assert charge["amount"] == "111.00" and charge["consumption"] == "25"
    assert [(line["block"], line["lower"], line["upper"], line["quantity"], line["unit_price"], line["amount"])
            for line in charge["lines"]] == [
        (1, "0", "10", "10", "3.50", "35.00"), (2, "10", "20", "10", "4.55", "45.50"),
        (3, "20", None, "5", "6.10", "30.50")]
    tariff = TariffUpdate.model_validate({k: v for k, v in body.items() if k in TariffUpdate.model_fields})
    period = Period(datetime.fromisoformat(PERIOD["period_start"]), datetime.fromisoformat(PERIOD["period_end"]))
    doc = {"_id": "preview", **to_document(tariff, now=period.start, timezone=None),
           "effective_from": period.start, "effective_to": None}
    domain = price_period(Decimal(25), tariffs=[to_domain(doc)], period=period, accumulated_before=Decimal(0))
    assert charge["lines"] == domain.to_document()["lines"]
    status, listed, _ = await call(billing, "GET", "/api/v1/tariffs/?project_id=7")
    assert status == 200 and listed == []


async def test_preview_names_what_is_wrong(billing: Billing) -> None:
    """Bad blocks are named as the tariff form names them; a negative consumption, an empty
    period and a consumption past a capped last block are named too."""
    base = {k: v for k, v in WATER_TIERED.items() if k != "device_type"} | PERIOD
    status, body, _ = await call(billing, "POST", "/api/v1/tariffs/preview", {
        **base, "consumption": "-1",
        "blocks": [{"up_to": "10", "price": "1"}, {"up_to": "5", "price": "2"}, {"up_to": None, "price": "3"}]})
    assert status == 422
    assert set(body["errors"]["json"]) == {"consumption"}  # field rules first, as for a tariff
    status, body, _ = await call(billing, "POST", "/api/v1/tariffs/preview", {
        **base, "consumption": "5",
        "blocks": [{"up_to": "10", "price": "1"}, {"up_to": "5", "price": "2"}, {"up_to": None, "price": "3"}]})
    assert status == 422 and any(key.startswith("blocks") for key in body["errors"]["json"]), body
    status, body, _ = await call(billing, "POST", "/api/v1/tariffs/preview", {
        **base, "consumption": "5", "period_end": base["period_start"]})
    assert status == 422 and "not after its start" in body["errors"]["json"]["period_end"][0]
    status, body, _ = await call(billing, "POST", "/api/v1/tariffs/preview", {**base, "consumption": "5"} | {
        "project_id": None})
    assert status == 422 and "project_id" in body["errors"]["json"]
