"""The console's billing documents and controls in a real browser, against the five services as
processes: a printable bill with its readings across a meter exchange and its tiered block lines;
screenshots go to test-artifacts/console/ (next to test_console.py's)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
from playwright.async_api import Browser, FilePayload, Page, expect

from tests.e2e.clients import Api, poll
from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Platform
from tests.e2e.test_billing_e2e import report
from tests.e2e.test_console import ARTIFACTS, _deadline, browser, pytestmark, shot, sign_in
from twinbill_billing.demo import seed_demo_tariffs
from twinbill_billing.domain.periods import to_epoch_ms
from twinbill_common.bus import Bus
from twinbill_common.schemas import CommandOutcome
from twinbill_common.schemas.billing import RunBilling
from twinbill_common.topology import BILLING, COMMANDS, TELEMETRY, telemetry_key
from twinbill_devstack.run import seed_demo_recipients
from twinbill_twin.demo import seed_demo

__all__ = ["browser", "pytestmark"]  # the fixture and the chromium check, from test_console


@asynccontextmanager
async def signed_in(platform: Platform, browser: Browser, path: str = "#/overview",
                    **context_args: Any) -> AsyncIterator[Page]:
    """A page of the console signed in as the administrator, at `path`; no script error allowed."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=20_000)
    context = await browser.new_context(**{"locale": "en-US", "viewport": {"width": 1280, "height": 900},
                                           **context_args})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    await page.goto(f"{platform.url('gateway')}/{path}")
    await sign_in(page)
    try:
        yield page
    finally:
        await context.close()
    assert errors == [], errors


async def run_billing(api: Api, bus: Bus, *, project_id: int, device_type: int,
                      start: datetime, end: datetime) -> str:
    """A task of the type, and one run of it over (start, end], finished."""
    created = await api.call("POST", "/api/v1/scheduler/task/", json={
        "name": f"console pages {device_type}", "project_id": project_id, "device_type": device_type,
        "crontab": {"month": "*", "day": "1", "hour": "0", "minute": "0"}, "enabled": True})
    key = created["data"]["natrual_key"]
    run_id = f"{key}:{int(end.timestamp())}"
    await bus.publish(BILLING, "run.requested", RunBilling(
        run_id=run_id, project_id=project_id, device_type=device_type, task_key=key,
        period_start=start, period_end=end, fire_time=end))

    async def finished() -> bool:
        runs = await api.call("GET", "/api/v1/billing/runs/", params={"project_id": project_id})
        return any(r["run_id"] == run_id and r["finished"] for r in runs)
    await poll(finished, until=_deadline(60), what="the billing run to finish")
    return run_id


async def test_printable_bill_across_a_meter_exchange(
    platform: Platform, browser: Browser, amqp_url: str, bus_namespace: str,
) -> None:
    """A tap-water bill whose meter was exchanged mid-period: both reading segments, the three
    tiered blocks (10 at 3.50, 10 at 4.55, 5 at 6.10 = 111.00), address and residents, as the
    bill API has them; reached from the bill list; the print layout drops the console around it."""
    async with aiohttp.ClientSession() as http:
        api = Api(http, platform.url("gateway"))
        await api.login()
        demo = await seed_demo(platform.url("twin"))
        project_id = demo["project_id"]
        await seed_demo_tariffs(platform.url("billing"), project_id=project_id)
        meter = next(s for s in demo["gateways"][0]["sub_devices"]
                     if s["device_type"] == 1 and s.get("water_meter_kind") == "tap")
        [device] = await api.call("GET", "/api/v1/devices/",
                                  params={"project_id": project_id, "device_key": meter["device_key"]})
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        at = [now - timedelta(minutes=100 - 10 * i) for i in range(10)]
        bus = Bus(amqp_url, namespace=bus_namespace)
        await bus.connect()
        try:
            await report(bus, meter["product_key"], meter["device_key"],
                         [(at[0], "100"), (at[2], "106"), (at[4], "110")])

            async def stored(value: str) -> bool:
                body = await api.call("GET", "/dt/open/v1/instance", params={"ids": device["instance_id"]})
                return any(a["name"] == "total" and a["value"] == value for a in body["data"][0]["attr"])
            await poll(lambda: stored("110"), until=_deadline(30), what="the old meter's readings")
            await api.call("POST", f"/api/v1/devices/{device['id']}/lifecycle/", status=201, json={
                "kind": "exchange", "at": at[5].isoformat(), "final_reading": "112", "initial_reading": "0"})
            await report(bus, meter["product_key"], meter["device_key"], [(at[6], "4"), (at[8], "13")])
            await poll(lambda: stored("13"), until=_deadline(30), what="the new meter's readings")
            await run_billing(api, bus, project_id=project_id, device_type=1, start=at[1], end=at[9])
        finally:
            await bus.close()
        history = await api.call("GET", "/api/v1/scheduler/history/time/", params={
            "project_id": project_id, "device_type": 1, "device_id": meter["device_key"],
            "start_date": "2000-01-01", "end_date": "2100-01-01"})
        [row] = history["data"]
        bill = await api.call("GET", f"/api/v1/bills/{row['id']}")
        assert bill["charge"] == "111.00" and len(bill["segments"]) == 2  # what the page must show

        async with signed_in(platform, browser, "#/bills") as page:
            await page.get_by_role("link", name=f"Printable bill of meter {meter['device_key']}").click()
            await expect(page.locator("#bill-charge")).to_have_text("111.00")
            assert page.url.endswith(f"#/bill/{row['id']}")
            await expect(page.locator("#bill-consumption")).to_have_text("25 m³")
            await expect(page.locator("#bill-exchange")).to_contain_text("2 reading segments")
            segments = page.locator("#bill-readings tbody tr")
            await expect(segments).to_have_count(2)
            for segment, (opening, closing, used) in zip(await segments.all(), [
                    ("100", "112", "12"), ("0", "13", "13")], strict=True):
                cells = await segment.locator("td").all_inner_texts()
                assert cells[0].startswith(f"{opening} ") and cells[1].startswith(f"{closing} "), cells
                assert cells[3] == f"{used} m³", cells
            await expect(page.locator("#bill-readings")).to_contain_text("meter exchange")
            rows = await page.locator("#bill-lines tbody tr").all()
            lines = [await line.locator("td").all_inner_texts() for line in rows]
            assert [(c[1], c[2], c[3], c[4], c[5]) for c in lines] == [
                (str(line["block"]), _range(line), f"{line['quantity']} m³", line["unit_price"], line["amount"])
                for line in bill["charge_detail"]["lines"]]
            assert [(c[1], c[4], c[5]) for c in lines] == [
                ("1", "3.50", "35.00"), ("2", "4.55", "45.50"), ("3", "6.10", "30.50")]
            assert sum(Decimal(c[5]) for c in lines) == Decimal(bill["charge"])
            await expect(page.locator("#bill-address")).to_contain_text(" / ".join(
                part for part in bill["house_address"] if part))
            for resident in bill["residents"]:
                await expect(page.locator("#bill-residents")).to_contain_text(resident["name"])
            await expect(page.locator("#bill-period")).to_contain_text(row["from_time"].replace("T", " "))
            await shot(page, "13-bill")
            await page.emulate_media(media="print")
            await expect(page.locator("nav")).to_be_hidden()
            await expect(page.locator("#bill-print")).to_be_hidden()
            await expect(page.locator("#bill-lines")).to_be_visible()
            await shot(page, "14-bill-print")
            pdf = await page.pdf(format="A4")
            assert pdf.startswith(b"%PDF")
            await page.emulate_media(media="screen")
            await page.get_by_label("Language").select_option("zh-CN")  # the bill in Chinese
            await expect(page.locator("#bill-facts")).to_contain_text("住户")
            await expect(page.locator("#bill")).to_contain_text("应付金额")
            await expect(page.locator("#bill-charge")).to_have_text("111.00")
            await expect(page.locator("#bill-readings")).to_contain_text("换表")
            await shot(page, "14b-bill-zh")
            await page.get_by_label("语言").select_option("en")


def _range(line: dict[str, Any]) -> str:
    """The block range as the page writes it."""
    lower = line["lower"] or "0"
    return f"above {lower} m³" if line["upper"] is None else f"{lower} – {line['upper']} m³"


async def report_values(bus: Bus, product_key: str, device_key: str, at: datetime, values: dict[str, str]) -> None:
    """One measurement of several measurepoints, as the ingest gateway publishes it."""
    now = datetime.now(UTC)
    points = ",".join(f'"{name}":{value}' for name, value in values.items())
    body = (f'{{"schema_version":1,"message_id":"{uuid.uuid4().hex}","produced_at":"{now.isoformat()}",'
            f'"product_key":"{product_key}","device_key":"{device_key}","request_id":"1",'
            f'"method":"thing.measurepoint.resume.batch","received_at":{to_epoch_ms(now)},'
            f'"points":[{{"product_key":"{product_key}","device_key":"{device_key}",'
            f'"time":{to_epoch_ms(at)},"measurepoints":{{{points}}}}}]}}')
    await bus.publish_raw(TELEMETRY, telemetry_key(product_key, device_key), body.encode(),
                          message_id=uuid.uuid4().hex, headers={"type": "MeasurementsAccepted"})


async def desired_version(platform: Platform, pg_dsn: str, attribute_id: int) -> int:
    """The version of an attribute's latest desired value: what the ingest gateway's command (and
    so its CommandOutcome) carries. Read from the twin's schema, as the ingest gateway knows it."""
    schema = platform.services["twin"].env["TWIN_SCHEMA_NAME"]
    conn = await asyncpg.connect(pg_dsn, server_settings={"search_path": schema})
    try:
        return int(await conn.fetchval("SELECT expect_version FROM attributes WHERE id = $1", attribute_id))
    finally:
        await conn.close()


async def publish_outcome(bus: Bus, meter: dict[str, Any], instance_id: int, version: int, identifier: str,
                          **fields: Any) -> CommandOutcome:
    """The ingest gateway's CommandOutcome for one command (a set_reply, or its expiry)."""
    outcome = CommandOutcome(product_key=meter["product_key"], device_key=meter["device_key"],
                             request_id=uuid.uuid4().hex, instance_id=instance_id, version=version,
                             identifiers=[identifier], at=datetime.now(UTC), **fields)
    await bus.publish(COMMANDS, f"outcome.{meter['product_key']}.{meter['device_key']}", outcome)
    return outcome


async def test_reverse_control_on_the_meter_page(
    platform: Platform, browser: Browser, amqp_url: str, bus_namespace: str, pg_dsn: str,
) -> None:
    """A water meter's flow limit: a bad value is refused on the page; 12.5 is stored as the
    desired value (seed 002's expectvalue) and shown pending, still pending when the device merely
    reports 12.50; the device refuses it with code 1806 (the ingest gateway's CommandOutcome): the
    page shows refused with the code and message seed 002 reports; 13 is applied by a set_reply 200,
    and 14 expires undelivered. Each state is the API's expectstatus, not inferred."""
    async with aiohttp.ClientSession() as http:
        api = Api(http, platform.url("gateway"))
        await api.login()
        demo = await seed_demo(platform.url("twin"))
        meter = next(s for s in demo["gateways"][0]["sub_devices"] if s["device_type"] == 1)
        [device] = await api.call("GET", "/api/v1/devices/",
                                  params={"project_id": demo["project_id"], "device_key": meter["device_key"]})
        instance = device["instance_id"]

        async def flow_limit() -> dict[str, Any]:
            body = await api.call("GET", "/dt/open/v1/instance", params={"ids": instance})
            attr: dict[str, Any] = next(a for a in body["data"][0]["attr"] if a["name"] == "flow_limit")
            return attr

        limit = await flow_limit()
        identifier = limit.get("measurepoint") or limit["name"]
        label = f"New desired value of {limit['displayname']}"
        bus = Bus(amqp_url, namespace=bus_namespace)
        await bus.connect()
        try:
            async with signed_in(platform, browser, f"#/meter/{device['id']}") as page:
                row = page.locator("#control-table tbody tr", has_text=limit["displayname"])
                await expect(row.locator("[data-state]")).to_have_attribute("data-state", "none")
                await page.get_by_label(label).fill("twelve")
                await row.get_by_role("button", name="Set").click()
                await expect(page.locator("#control-message")).to_contain_text("is not a number")
                assert (await flow_limit())["expectvalue"] in ("", None)
                await page.get_by_label(label).fill("12.5")
                await row.get_by_role("button", name="Set").click()
                await expect(page.locator("#control-message")).to_contain_text("set to 12.5")
                row = page.locator("#control-table tbody tr", has_text=limit["displayname"])
                await expect(row.locator("[data-state]")).to_have_attribute("data-state", "pending")
                attr = await flow_limit()
                assert (attr["expectvalue"], attr["expectstatus"]) == ("12.5", "pending")
                await shot(page, "15-control-pending")

                # the device reports 12.50 without answering the command: still pending (the API says so)
                await report_values(bus, meter["product_key"], meter["device_key"], datetime.now(UTC),
                                    {"flow_limit": "12.50"})

                async def reported() -> bool:
                    return bool((await flow_limit())["value"] not in ("", None))
                await poll(reported, until=_deadline(30), what="the device's report of flow_limit")
                await page.locator("#control-refresh").click()
                current = page.locator("#current-values tbody tr", has_text=limit["displayname"])
                await expect(current).to_contain_text("12.50")  # the current values are read again too
                row = page.locator("#control-table tbody tr", has_text=limit["displayname"])
                await expect(row.locator("[data-state]")).to_have_attribute("data-state", "pending")
                await expect(row).to_contain_text("the device reports this value")
                assert (await flow_limit())["expectstatus"] == "pending"

                # refused by the device, with its code and message
                version = await desired_version(platform, pg_dsn, limit["id"])
                await publish_outcome(bus, meter, instance, version, identifier, outcome="refused", code=1806,
                                      reply_message="flow limit out of range")

                async def status(wanted: str) -> dict[str, Any] | None:
                    attr = await flow_limit()
                    return attr if attr["expectstatus"] == wanted else None
                refused = await poll(lambda: status("refused"), until=_deadline(30), what="the refusal recorded")
                await page.locator("#control-refresh").click()
                row = page.locator("#control-table tbody tr", has_text=limit["displayname"])
                state = row.locator("[data-state]")
                await expect(state).to_have_attribute("data-state", "refused")
                await expect(state).to_contain_text(f"code {refused['expectcode']}: {refused['expectmessage']}")
                assert (refused["expectcode"], refused["expectmessage"]) == (1806, "flow limit out of range")
                zone = ZoneInfo("Asia/Shanghai")  # the demo project's zone
                at = datetime.fromtimestamp(refused["expecttime"] / 1000, zone).strftime("%Y-%m-%d %H:%M:%S")
                await expect(state).to_contain_text(f"at {at}")
                await shot(page, "16-control-refused")

                # a new desired value is pending again; the device applies it
                await page.get_by_label(label).fill("13")
                await row.get_by_role("button", name="Set").click()
                row = page.locator("#control-table tbody tr", has_text=limit["displayname"])
                await expect(row.locator("[data-state]")).to_have_attribute("data-state", "pending")
                version = await desired_version(platform, pg_dsn, limit["id"])
                await publish_outcome(bus, meter, instance, version, identifier, outcome="applied", code=200)
                await poll(lambda: status("applied"), until=_deadline(30), what="the set_reply recorded")
                await page.locator("#control-refresh").click()
                row = page.locator("#control-table tbody tr", has_text=limit["displayname"])
                await expect(row.locator("[data-state]")).to_have_attribute("data-state", "applied")
                await expect(row).to_contain_text("13")
                await shot(page, "16-control-applied")

                # and one that expires undelivered
                await page.get_by_label(label).fill("14")
                await row.get_by_role("button", name="Set").click()
                row = page.locator("#control-table tbody tr", has_text=limit["displayname"])
                await expect(row.locator("[data-state]")).to_have_attribute("data-state", "pending")
                version = await desired_version(platform, pg_dsn, limit["id"])
                await publish_outcome(bus, meter, instance, version, identifier, outcome="expired")
                await poll(lambda: status("expired"), until=_deadline(30), what="the expiry recorded")
                await page.locator("#control-refresh").click()
                row = page.locator("#control-table tbody tr", has_text=limit["displayname"])
                await expect(row.locator("[data-state]")).to_have_attribute("data-state", "expired")
                await expect(row.locator("[data-state]")).to_contain_text("expired: not delivered in time")
        finally:
            await bus.close()


def period_use(readings: list[tuple[datetime, Decimal]], since: datetime) -> Decimal | None:
    """A meter's consumption since `since`, by the rule the overview states: the latest reading
    minus the last one before `since` (or the first one after it when there is none before)."""
    before = [value for at, value in readings if at < since]
    inside = [value for at, value in readings if at >= since]
    if not inside:
        return Decimal(0) if before else None
    return inside[-1] - (before[-1] if before else inside[0])


async def test_overview_consumption_per_energy_type(
    platform: Platform, browser: Browser, amqp_url: str, bus_namespace: str,
) -> None:
    """Readings of two water meters and one electricity meter around the month's and the day's
    start (project zone): the overview's today / this month figures per type are the sums the
    stated rule gives, in m3 and kWh."""
    async with aiohttp.ClientSession() as http:
        api = Api(http, platform.url("gateway"))
        await api.login()
        demo = await seed_demo(platform.url("twin"))
        project_id = demo["project_id"]
        [project] = [p for p in await api.call("GET", "/api/v1/projects/") if p["id"] == project_id]
        zone = ZoneInfo(project["timezone"])
        now = datetime.now(zone).replace(microsecond=0)
        day = now.replace(hour=0, minute=0, second=0)
        month = day.replace(day=1)
        subs = demo["gateways"][0]["sub_devices"]
        water = [s for s in subs if s["device_type"] == 1][:2]
        electricity = next(s for s in subs if s["device_type"] == 2)
        plan = {  # (meter, type, readings)
            electricity["device_key"]: (electricity, 2, [
                (month - timedelta(days=2), "1000"), (day - timedelta(hours=1), "1200.25"),
                (now - timedelta(minutes=30), "1234.5")]),
            water[0]["device_key"]: (water[0], 1, [(month - timedelta(days=1), "50"),
                                                   (now - timedelta(minutes=20), "57.25")]),
            water[1]["device_key"]: (water[1], 1, [(now - timedelta(minutes=15), "10"),
                                                   (now - timedelta(minutes=5), "12.5")]),
        }
        bus = Bus(amqp_url, namespace=bus_namespace)
        await bus.connect()
        try:
            for meter, _, readings in plan.values():
                await report(bus, meter["product_key"], meter["device_key"],
                             [(at.astimezone(UTC), value) for at, value in readings])
        finally:
            await bus.close()
        expected: dict[int, list[Decimal]] = {1: [Decimal(0), Decimal(0)], 2: [Decimal(0), Decimal(0)]}
        for key, (_, device_type, readings) in plan.items():
            [device] = await api.call("GET", "/api/v1/devices/", params={"project_id": project_id, "device_key": key})
            values = [(at, Decimal(v)) for at, v in readings]

            async def stored(device: dict[str, Any] = device, last: str = readings[-1][1]) -> bool:
                body = await api.call("GET", "/dt/open/v1/instance", params={"ids": device["instance_id"]})
                return any(a["name"] == "total" and a["value"] == last for a in body["data"][0]["attr"])
            await poll(stored, until=_deadline(30), what=f"{key}'s readings")
            for slot, since in enumerate((day, month)):
                use = period_use(values, since)
                expected[device_type][slot] += (use or 0) * Decimal(device["multiplier"])
        if day.day != 1:  # the plan's arithmetic (on the 1st the day and the month start together)
            assert expected[1][1] == Decimal("9.75") and expected[2][1] == Decimal("234.5")

        async with signed_in(platform, browser) as page:
            for type_name, device_type, unit in (("water", 1, "m3"), ("electricity", 2, "kWh")):
                for slot, period in enumerate(("today", "month")):
                    text = await page.locator(f"#use-{type_name}-{period}").inner_text(timeout=20_000)
                    value, shown_unit = text.split(" ")
                    assert (Decimal(value), shown_unit) == (expected[device_type][slot], unit), text
            await expect(page.locator("#consumption-days")).to_contain_text(f"Today is {now.date().isoformat()}")
            await shot(page, "17-overview-consumption")


async def test_tariff_editor_with_a_live_block_preview(platform: Platform, browser: Browser) -> None:
    """The demo tap-water tariff: the preview of 37.5 m3 is billing's own pricing (the same lines
    as POST /api/v1/tariffs/preview, 35 + 45.50 + 17.5 x 6.10); a price edit changes it live; a
    limit that does not increase is named beside the blocks; saving stores the new price; a new
    tariff over the same dates as another is refused with the API's reason."""
    async with aiohttp.ClientSession() as http:
        api = Api(http, platform.url("gateway"))
        await api.login()
        demo = await seed_demo(platform.url("twin"))
        project_id = demo["project_id"]
        await seed_demo_tariffs(platform.url("billing"), project_id=project_id)
        [tap] = [x for x in await api.call("GET", "/api/v1/tariffs/", params={"project_id": project_id})
                 if x["water_meter_kind"] == "tap"]
        async with signed_in(platform, browser, "#/tariffs") as page:
            await page.get_by_role("link", name=f"Edit {tap['name']}").click()
            await expect(page.locator("#preview-total")).to_have_text("111.00")  # 25 m3 by default
            await page.get_by_label("Consumption", exact=True).fill("37.5")
            await expect(page.locator("#preview-total")).to_have_text("187.25")
            body = {k: tap[k] for k in ("name", "kind", "blocks", "water_meter_kind", "accumulation_period",
                                        "standing_charge", "effective_from")}
            period = {"period_start": await page.locator("#tariff-period_start").input_value(),
                      "period_end": await page.locator("#tariff-period_end").input_value()}
            expected = await api.call("POST", "/api/v1/tariffs/preview", json={
                **body, "project_id": project_id, "consumption": "37.5", "unit_price": None,
                **{k: f"{v}T00:00:00+08:00" for k, v in period.items()}})
            shown = [await row.locator("td").all_inner_texts()
                     for row in await page.locator("#preview-lines tbody tr").all()]
            assert [(c[0], c[2], c[3], c[4]) for c in shown] == [
                (str(line["block"]), f"{line['quantity']} m³", line["unit_price"], line["amount"])
                for line in expected["lines"]]
            assert expected["amount"] == "187.25"
            await shot(page, "18-tariff-preview")

            await page.get_by_label("Block 2 price").fill("5.00")
            await expect(page.locator("#preview-total")).to_have_text("191.75")  # 35 + 50 + 106.75
            await page.get_by_label("Block 2 up to").fill("5")
            await expect(page.locator("#tariff-blocks-error")).to_contain_text("must increase")
            await shot(page, "19-tariff-bad-blocks")
            await page.get_by_label("Block 2 up to").fill("20")
            await expect(page.locator("#preview-total")).to_have_text("191.75")
            await page.get_by_role("button", name="Save").click()
            await expect(page.locator("#tariff-message")).to_contain_text("Saved")
            stored = await api.call("GET", f"/api/v1/tariffs/{tap['id']}")
            assert [b["price"] for b in stored["blocks"]] == ["3.50", "5.00", "6.10"]

            await page.get_by_role("link", name="Back").click()
            await page.get_by_role("link", name="New tariff").click()
            await page.get_by_label("Name").fill("second tap tariff")
            await page.get_by_label("Block 1 price").fill("3")
            await page.get_by_label("Block 2 price").fill("4")
            await expect(page.locator("#preview-total")).to_have_text(str(Decimal(10 * 3 + 15 * 4) + Decimal("0.00")))
            await page.get_by_role("button", name="Create").click()
            await expect(page.locator("#tariff-message")).to_contain_text("in force over part of the same dates")
            await shot(page, "20-tariff-overlap")
            assert len(await api.call("GET", "/api/v1/tariffs/", params={"project_id": project_id})) == 3


async def test_users_roles_and_api_keys(platform: Platform, browser: Browser) -> None:
    """An administrator creates a project member (a short password named beside the field), makes
    them an administrator and back, makes an API key that works once shown, and deletes the user
    after a confirmation; a member sees no Users page."""
    base = platform.url("gateway")
    async with aiohttp.ClientSession() as http:
        api = Api(http, base)
        await api.login()
        demo = await seed_demo(platform.url("twin"))
        project_id = demo["project_id"]
        async with signed_in(platform, browser, "#/users") as page:
            await expect(page.locator("#user-table")).to_contain_text("e2e-admin@twinbill.test")
            form = page.locator("form", has_text="New user")
            await form.get_by_label("Name").fill("示例物业员")
            await form.get_by_label("Email").fill("member@twinbill.test")
            await form.get_by_label("Password").fill("short")
            await form.get_by_label(f"twinbill demo (#{project_id})").check()
            await form.get_by_role("button", name="Create").click()
            await expect(page.locator("#new-password-error")).to_contain_text("at least 8")
            await form.get_by_label("Password").fill("member-password")
            await form.get_by_role("button", name="Create").click()
            await expect(page.locator("#notice")).to_contain_text("member@twinbill.test created")
            [member] = [u for u in await api.call("GET", "/api/v1/users/") if u["email"] == "member@twinbill.test"]
            assert (member["name"], member["is_admin"], member["projects"]) == ("示例物业员", False, [project_id])
            row = page.locator("#user-table tbody tr", has_text="member@twinbill.test")
            await expect(row).to_contain_text("project member")
            await expect(row).to_contain_text("twinbill demo")
            await shot(page, "21-users")

            await row.get_by_role("link", name="Edit member@twinbill.test").click()
            await page.get_by_label("Role").select_option("true")
            await page.get_by_role("button", name="Save").click()
            await expect(page.locator("#user-message")).to_contain_text("Saved")
            assert (await api.call("GET", f"/api/v1/users/{member['id']}"))["is_admin"] is True
            await page.get_by_label("Role").select_option("false")
            await page.get_by_role("button", name="Save").click()
            await expect(page.locator("#user-message")).to_contain_text("Saved")
            assert (await api.call("GET", f"/api/v1/users/{member['id']}"))["is_admin"] is False

            await page.get_by_role("link", name="Back").click()
            await page.get_by_role("button", name="Make a new API key").click()
            await page.locator("dialog#confirm").get_by_role("button", name="Make a new API key").click()
            header = (await page.locator("#api-key-value").inner_text()).removeprefix("Authorization: ")
            assert header.startswith("token ")
            async with http.get(f"{base}/api/v1/users/me", headers={"Authorization": header}) as response:
                assert response.status == 200 and (await response.json())["email"] == "e2e-admin@twinbill.test"
            await shot(page, "22-api-key")

            # a member: no Users link, and the page says it is for administrators
            member_context = await browser.new_context(locale="en-US")
            member_page = await member_context.new_page()
            await member_page.goto(f"{base}/#/users")
            await member_page.get_by_label("Email").fill("member@twinbill.test")
            await member_page.get_by_label("Password").fill("member-password")
            await member_page.get_by_role("button", name="Sign in").click()
            await expect(member_page.locator("main")).to_contain_text("for administrators")
            await expect(member_page.locator("#nav-users")).to_be_hidden()
            await member_context.close()

            await page.get_by_role("button", name="Delete member@twinbill.test").click()
            await page.locator("dialog#confirm").get_by_role("button", name="Cancel").click()
            await api.call("GET", f"/api/v1/users/{member['id']}")
            await page.get_by_role("button", name="Delete member@twinbill.test").click()
            await page.locator("dialog#confirm").get_by_role("button", name="Delete").click()
            await expect(page.locator("#user-table")).not_to_contain_text("member@twinbill.test")
            await api.call("GET", f"/api/v1/users/{member['id']}", status=404)


SITES_HEADER = ("site,building,storey,space,resident_name,product_key,device_key,device_name,device_type,"
                "water_meter_kind")
GOOD_ROW = "新小区,A栋,1F,A101,示例住户己,demo_water_meter,csv-m1,CSV表1,1,tap"


def csv_file(name: str, text: str) -> FilePayload:
    """A file for the page's file input."""
    return {"name": name, "mimeType": "text/csv", "buffer": text.encode()}


async def test_site_csv_import_with_per_cell_errors(platform: Platform, browser: Browser) -> None:
    """A file with a bad device_type on line 3 and a bad water_meter_kind on line 4: the page lists
    each (line, column, the API's message), marks those cells on their rows, and nothing is
    imported; the corrected file is imported and shows in the tree."""
    base = platform.url("gateway")
    async with aiohttp.ClientSession() as http:
        api = Api(http, base)
        await api.login()
        demo = await seed_demo(platform.url("twin"))
        project_id = demo["project_id"]
        bad = "\r\n".join([SITES_HEADER, GOOD_ROW, "新小区,A栋,1F,A102,,demo_water_meter,csv-m2,CSV表2,7,tap",
                           "新小区,A栋,2F,A201,,demo_water_meter,csv-m3,CSV表3,1,hot", ""])
        form = aiohttp.FormData()
        form.add_field("file", bad.encode(), filename="bad.csv", content_type="text/csv")
        refused = await api.call("POST", "/api/v1/io/sites_csv", status=422, params={"project_id": project_id},
                                 data=form)
        problems = {key: " ".join(reasons) for key, reasons in refused["errors"]["csv"].items()}
        assert set(problems) == {"3.device_type", "4.water_meter_kind"}, problems
        async with signed_in(platform, browser, "#/structure") as page:
            await expect(page.locator("#structure-tree")).to_contain_text("演示小区")
            await page.set_input_files("#csv-upload", files=csv_file("bad.csv", bad))
            await page.get_by_role("button", name="Check and import").click()
            await expect(page.locator("#csv-result")).to_contain_text("nothing was imported")
            listed = [await row.locator("td").all_inner_texts()
                      for row in await page.locator("#csv-errors tbody tr").all()]
            assert sorted(listed) == sorted([key.split(".", 1)[0], key.split(".", 1)[1], message]
                                            for key, message in problems.items())
            for line, column in (("3", "device_type"), ("4", "water_meter_kind")):
                cell = page.locator(f"#csv-file tr[data-line='{line}'] td[data-column='{column}']")
                await expect(cell).to_have_class("bad-cell")
                await expect(cell).to_have_attribute("title", problems[f"{line}.{column}"])
            await expect(page.locator("#csv-file tr[data-line='2'] td.bad-cell")).to_have_count(0)
            await shot(page, "23-csv-errors")
            sites = await api.call("GET", "/api/v1/sites/", params={"project_id": project_id})
            assert [s["name"] for s in sites] == ["演示小区"]  # nothing imported
            assert await api.call("GET", "/api/v1/devices/",
                                  params={"project_id": project_id, "device_key": "csv-m1"}) == []

            good = "\r\n".join([SITES_HEADER, GOOD_ROW, "新小区,A栋,1F,A102,,demo_water_meter,csv-m2,CSV表2,2,", ""])
            await page.set_input_files("#csv-upload", files=csv_file("good.csv", good))
            await page.get_by_role("button", name="Check and import").click()
            await expect(page.locator("#csv-imported")).to_contain_text("Imported")
            await expect(page.locator("#structure-tree")).to_contain_text("新小区")
            await expect(page.locator("#structure-tree")).to_contain_text("CSV表1")
            await shot(page, "24-csv-imported")
            [imported] = await api.call("GET", "/api/v1/devices/",
                                        params={"project_id": project_id, "device_key": "csv-m1"})
            assert imported["water_meter_kind"] == "tap"


async def test_events_and_notifications_inbox(
    platform: Platform, browser: Browser, amqp_url: str, bus_namespace: str, pg_dsn: str,
) -> None:
    """The administrator's group is given the demo project's Alarms scope (as `make run` does); a device refuses a
    command (an ERROR "Reverse control" event) and the first water run skips every meter (WARNING
    "Billing" events, one per meter): the administrator is notified of each. The events page lists
    the notifications and the project's events as the API has them (level filter too), the
    navigation shows the unread count, "Mark all as read" reads them all (the API's count is 0
    after it); the overview's recent events are the API's newest five."""
    async with aiohttp.ClientSession() as http:
        api = Api(http, platform.url("gateway"))
        await api.login()
        demo = await seed_demo(platform.url("twin"))
        project = demo["project_id"]
        await seed_demo_tariffs(platform.url("billing"), project_id=project)
        me = await api.call("GET", "/api/v1/users/me")
        for _ in range(2):  # as `make run` does it, twice: nothing is linked twice
            await seed_demo_recipients(project, gateway_url=platform.url("gateway"), email=ADMIN_EMAIL,
                                       password=ADMIN_PASSWORD)
        [scope] = await api.call("GET", "/bemserver/campaign_scopes/",
                                 params={"campaign_id": project, "name": "Alarms"})
        [group] = await api.call("GET", "/bemserver/user_groups/", params={"name": "demo alarm recipients"})
        assert len(await api.call("GET", "/bemserver/user_groups_by_campaign_scopes/", params={
            "campaign_scope_id": scope["id"], "user_group_id": group["id"]})) == 1
        assert len(await api.call("GET", "/bemserver/users_by_user_groups/", params={
            "user_id": me["id"], "user_group_id": group["id"]})) == 1

        meter = next(s for s in demo["gateways"][0]["sub_devices"] if s["device_type"] == 1)
        [device] = await api.call("GET", "/api/v1/devices/", params={"project_id": project,
                                                                      "device_key": meter["device_key"]})
        detail = await api.call("GET", "/dt/open/v1/instance", params={"ids": device["instance_id"]})
        limit = next(a for a in detail["data"][0]["attr"] if a["name"] == "flow_limit")
        await api.call("PATCH", f"/dt/open/v1/instance/{device['instance_id']}",
                       json=[{"id": limit["id"], "expectvalue": "9"}])
        version = await desired_version(platform, pg_dsn, limit["id"])
        bus = Bus(amqp_url, namespace=bus_namespace)
        await bus.connect()
        try:
            await publish_outcome(bus, meter, device["instance_id"], version, "flow_limit", outcome="refused",
                                  code=1806, reply_message="flow limit out of range")
            end = datetime.now(UTC).replace(microsecond=0)
            run_id = await run_billing(api, bus, project_id=project, device_type=1, start=end - timedelta(days=30),
                                       end=end)
        finally:
            await bus.close()
        run = await api.call("GET", f"/api/v1/billing/runs/{run_id}")
        assert run["skipped"] >= 1, run

        async def all_notified() -> list[dict[str, Any]] | None:
            events = await api.call("GET", "/bemserver/events/", params={
                "campaign_id": project, "level_min": "WARNING", "page_size": 100})
            skipped = [e for e in events if "meter skipped" in e.get("description", "")]
            refused = [e for e in events if "refused by the device with code 1806" in e.get("description", "")]
            mine = await api.call("GET", "/bemserver/notifications/", params={
                "user_id": me["id"], "campaign_id": project, "page_size": 100})
            done = len(skipped) == run["skipped"] and len(refused) == 1 and len(mine) == len(events)
            return mine if done else None
        await poll(all_notified, until=_deadline(60), what="the events and the administrator's notifications")
        counts = await api.call("GET", "/bemserver/notifications/count_by_campaign",
                                params={"user_id": me["id"], "read": "false"})
        unread = counts["total"]
        assert unread == run["skipped"] + 1, counts
        notes = await api.call("GET", "/bemserver/notifications/", params={
            "user_id": me["id"], "campaign_id": project, "sort": "-timestamp", "page_size": 50})
        events = await api.call("GET", "/bemserver/events/", params={
            "campaign_id": project, "sort": "-timestamp", "page_size": 50})
        categories = {c["id"]: c["name"] for c in await api.call("GET", "/bemserver/event_categories/")}

        async with signed_in(platform, browser, "#/events") as page:
            badge = page.locator("#nav-unread")
            await expect(badge).to_have_text(str(unread))
            await expect(badge).to_have_attribute("aria-label", f"{unread} unread notifications")
            await expect(page.locator("#unread-count")).to_have_text(f"Unread: {unread}")
            rows = page.locator("#notifications tbody tr")
            await expect(rows).to_have_count(len(notes))
            for index, note in enumerate(notes):
                row = rows.nth(index)
                await expect(row.locator(".event-description")).to_have_text(note["event"]["description"])
                await expect(row.locator("[data-level]")).to_have_attribute("data-level", note["event"]["level"])
                await expect(row.locator("[data-read]")).to_have_attribute("data-read", "false")
                await expect(row).to_contain_text(categories[note["event"]["category_id"]])
            event_rows = page.locator("#events tbody tr")
            await expect(event_rows).to_have_count(len(events))
            for index, event in enumerate(events):
                await expect(event_rows.nth(index).locator(".event-description")).to_have_text(event["description"])
                await expect(event_rows.nth(index)).to_contain_text(categories[event["category_id"]])
            await expect(page.locator("#events")).to_contain_text("Reverse control")
            await expect(page.locator("#events")).to_contain_text("Billing")
            await shot(page, "17-events-unread")

            # the level filter asks the API for ERROR and above: the refusal only
            errors = await api.call("GET", "/bemserver/events/", params={"campaign_id": project, "level_min": "ERROR"})
            await page.get_by_label("Level").select_option("ERROR")
            await expect(event_rows).to_have_count(len(errors))
            await expect(event_rows.first).to_contain_text("code 1806 (flow limit out of range)")

            # one notification read: the oldest (the refusal); the API and the count follow
            oldest = notes[-1]
            await rows.nth(len(notes) - 1).get_by_role("button", name="Mark the notification").click()
            await expect(page.locator("#notifications-message")).to_contain_text("Notification marked as read")
            await expect(page.locator("#unread-count")).to_have_text(f"Unread: {unread - 1}")
            await expect(badge).to_have_text(str(unread - 1))
            await expect(rows.nth(len(notes) - 1).locator("[data-read]")).to_have_attribute("data-read", "true")
            assert (await api.call("GET", f"/bemserver/notifications/{oldest['id']}"))["read"] is True
            assert (await api.call("GET", f"/bemserver/notifications/{notes[0]['id']}"))["read"] is False

            await page.get_by_role("button", name="Mark all as read").click()
            await expect(page.locator("#notifications-message")).to_contain_text("All notifications of this project")
            await expect(page.locator("#unread-count")).to_have_text("Unread: 0")
            await expect(badge).to_be_hidden()
            await expect(page.locator("#notifications [data-read='true']")).to_have_count(len(notes))
            await expect(page.get_by_role("button", name="Mark all as read")).to_be_disabled()
            counts = await api.call("GET", "/bemserver/notifications/count_by_campaign",
                                    params={"user_id": me["id"], "read": "false"})
            assert counts["total"] == 0, counts
            await shot(page, "18-events-read")

            await page.get_by_label("Language").select_option("zh-CN")
            await expect(page.locator("#notifications-title")).to_have_text("我在此项目的通知")
            await expect(page.locator("#unread-count")).to_have_text("未读：0")
            await page.get_by_label("语言").select_option("en")

            await page.get_by_role("link", name="Overview").click()
            recent = page.locator("#recent-events tbody tr")
            await expect(recent).to_have_count(min(5, len(events)))
            for index, event in enumerate(events[:5]):
                await expect(recent.nth(index).locator(".event-description")).to_have_text(event["description"])
            await expect(page.locator("#consumption-days")).to_be_visible()  # every card loaded
            await shot(page, "19-overview-events")
