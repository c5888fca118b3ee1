"""Annual blocks priced monthly through the real billing worker (RabbitMQ, the MongoDB wire
server): each monthly bill continues the year's ladder from the meter's earlier bills, and the
year's bills add up to the annual tariff applied to the year's total."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from itertools import pairwise

from .conftest import Billing
from .fake_twin import TwinData
from .test_billing_run import PROJECT, create_tariff
from .test_ledger import assert_chain, bills_of, daily_meter, local, publish_and_finish, run

D = Decimal
# Beijing's residential water ladder (per year, reset 1 January): 0-180 at 5, 180-260 at 7, above at 9.
LADDER = [{"up_to": "180", "price": "5"}, {"up_to": "260", "price": "7"}, {"up_to": None, "price": "9"}]


def annual_price(total: Decimal) -> Decimal:
    """The annual tariff applied once to a year's total consumption."""
    return (min(total, D(180)) * 5 + max(D(0), min(total, D(260)) - 180) * 7
            + max(D(0), total - 260) * 9)


async def annual_ladder(billing: Billing, data: TwinData) -> None:
    """The project in Asia/Shanghai, its electricity on LADDER per calendar year (reset 1 January)."""
    data.timezones[PROJECT] = "Asia/Shanghai"
    await create_tariff(billing, {
        "project_id": PROJECT, "device_type": 2, "kind": "tiered", "blocks": LADDER,
        "effective_from": "2023-01-01T00:00:00+08:00", "accumulation_period": "year",
        "reset_month": 1, "reset_day": 1, "timezone": "Asia/Shanghai"})


async def test_monthly_bills_carry_the_year_to_date_and_add_up_to_the_annual_tariff(
        billing: Billing, twin: tuple[TwinData, str]) -> None:
    """Six monthly runs of a meter using 2 units a day: the ladder's first block is used up in
    March and the second in May; every bill states the year-to-date it continued from (the sum of
    the earlier bills), and the six charges add up to the annual price of the six months' total."""
    data, _ = twin
    await annual_ladder(billing, data)
    daily_meter(data, 1, first=local(2023, 12, 20), days=200, per_day="2")
    months = [local(2024, month) for month in range(1, 8)]
    for number, (start, end) in enumerate(pairwise(months), start=1):
        await publish_and_finish(billing, run(f"annual:{number}", start, end))

    bills = await bills_of(billing, 1)
    assert len(bills) == 6
    assert_chain(bills)
    so_far = D(0)
    for bill in bills:
        detail = bill["charge_detail"]
        assert D(detail["accumulated_before"]) == so_far, (bill["from_time"], detail["accumulated_before"])
        so_far += D(bill["consumption"])
    total = sum((D(b["consumption"]) for b in bills), D(0))
    assert total == D(2) * ((months[-1] - months[0]) // timedelta(days=1))
    assert total > 260  # the ladder's third block was reached within the half year
    assert sum((D(b["charge"]) for b in bills), D(0)) == annual_price(total)
    # March's bill straddles the first block's limit: two lines, at 5 and at 7.
    march = bills[2]["charge_detail"]["lines"]
    assert [line["unit_price"] for line in march] == ["5", "7"]


async def test_a_bill_across_the_reset_date_counts_its_new_year_part_for_the_next_bills(
        billing: Billing, twin: tuple[TwinData, str]) -> None:
    """Bills from the 15th to the 15th of a meter using 4 units a day: the first (15 Dec - 15 Jan)
    puts 14 of its 31 days into the new year's window, so the next bill continues the ladder from
    those 56 units, the one after from 56 + 124; the charges add up to the old year's part at the
    first block plus the annual tariff on the new year's 296 units."""
    data, _ = twin
    await annual_ladder(billing, data)
    daily_meter(data, 2, first=local(2023, 12, 1), days=120, per_day="4")
    bounds = [local(2023, 12, 15), local(2024, 1, 15), local(2024, 2, 15), local(2024, 3, 15)]
    for number, (start, end) in enumerate(pairwise(bounds), start=1):
        await publish_and_finish(billing, run(f"reset:{number}", start, end))

    bills = await bills_of(billing, 2)
    assert [D(b["consumption"]) for b in bills] == [D(124), D(124), D(116)]  # 31, 31 and 29 days
    new_year_part = D(124) * 14 / 31  # 1-15 January of the first bill
    assert new_year_part == D(56)
    assert [D(b["charge_detail"]["accumulated_before"]) for b in bills[1:]] == [D(56), D(56 + 124)]
    old_year_part = D(124) - new_year_part
    assert sum((D(b["charge"]) for b in bills), D(0)) == old_year_part * 5 + annual_price(D(56 + 124 + 116))
