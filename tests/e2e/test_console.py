"""The web console in a real browser (Debian's chromium driven by Playwright) against the five
services as processes: sign in, a meter's chart with the points the twin stored, a task's next fire
times before saving, bills exported as CSV, a confirmation before deleting, the language switch, an
expired session, sign out (which revokes the session's tokens). Screenshots of the main pages go
to test-artifacts/console/."""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.e2e.clients import Api, poll
from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Platform
from tests.e2e.test_billing_e2e import report
from twinbill_billing.demo import seed_demo_tariffs
from twinbill_common.bus import Bus
from twinbill_common.schemas.billing import RunBilling
from twinbill_common.topology import BILLING
from twinbill_twin.demo import seed_demo

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts" / "console"
POINTS = 18  # readings every 10 minutes over the last three hours
MONTHLY = {"month": "*", "day": "1", "hour": "0", "minute": "0"}

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed "
                                "(`make install` installs it)")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless chromium from the distribution (Playwright never downloads a browser here)."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


async def seed(platform: Platform, api: Api, *, amqp_url: str, namespace: str) -> dict[str, Any]:
    """The demo registry and tariffs, one electricity meter's readings, two tasks and a billing run."""
    demo = await seed_demo(platform.url("twin"))
    project_id = demo["project_id"]
    await seed_demo_tariffs(platform.url("billing"), project_id=project_id)
    meter = next(s for s in demo["gateways"][0]["sub_devices"] if s["device_type"] == 2)
    [device] = await api.call("GET", "/api/v1/devices/",
                              params={"project_id": project_id, "device_key": meter["device_key"]})
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    times = [now - timedelta(minutes=180 - 10 * i) for i in range(POINTS)]
    readings = [(at, str(Decimal(100) + Decimal("1.5") * i)) for i, at in enumerate(times)]
    bus = Bus(amqp_url, namespace=namespace)
    await bus.connect()
    try:
        await report(bus, meter["product_key"], meter["device_key"], readings)

        async def stored() -> bool:
            body = await api.call("GET", "/dt/open/v1/instance", params={"ids": device["instance_id"]})
            total = next(a for a in body["data"][0]["attr"] if a["name"] == "total")
            return bool(total["value"] == readings[-1][1])
        await poll(stored, until=_deadline(30), what="the twin to store the readings")
        tasks = []
        # one enabled task per project and device type (issue 11): the spare one is disabled
        for name, enabled in (("console monthly electricity", True), ("console spare task", False)):
            created = await api.call("POST", "/api/v1/scheduler/task/", json={
                "name": name, "project_id": project_id, "device_type": 2, "crontab": MONTHLY,
                "enabled": enabled, "description": "made by the console test"})
            tasks.append(created["data"])
        # (times[3], times[15]]: opening 104.5, closing 122.5, 18 kWh at the flat 0.55 = 9.90
        run_id = f"{tasks[0]['natrual_key']}:{int(times[15].timestamp())}"
        await bus.publish(BILLING, "run.requested", RunBilling(
            run_id=run_id, project_id=project_id, device_type=2, task_key=tasks[0]["natrual_key"],
            period_start=times[3], period_end=times[15], fire_time=times[15]))

        async def finished() -> bool:
            runs = await api.call("GET", "/api/v1/billing/runs/", params={"project_id": project_id})
            return any(r["run_id"] == run_id and r["finished"] for r in runs)
        await poll(finished, until=_deadline(60), what="the billing run to finish")
    finally:
        await bus.close()
    return {"project_id": project_id, "device": device, "tasks": tasks, "run_id": run_id,
            "readings": readings}


def _deadline(seconds: float) -> float:
    """A deadline on the running loop's clock, as tests.e2e.clients.poll expects."""
    return asyncio.get_running_loop().time() + seconds


async def shot(page: Page, name: str) -> None:
    """Keep a full-page screenshot of what the user sees now."""
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def sign_in(page: Page) -> None:
    await page.get_by_label("Email").fill(ADMIN_EMAIL)
    await page.get_by_label("Password").fill(ADMIN_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()


async def test_console_in_a_real_browser(
    platform: Platform, browser: Browser, amqp_url: str, bus_namespace: str, tmp_path: Path,
) -> None:
    """A property manager's round through the console, every page fed by the running services."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    expect.set_options(timeout=20_000)
    base = platform.url("gateway")
    async with aiohttp.ClientSession() as http:
        api = Api(http, base)
        await api.login()
        data = await seed(platform, api, amqp_url=amqp_url, namespace=bus_namespace)
        device, (task, spare) = data["device"], data["tasks"]
        context = await browser.new_context(locale="en-US", accept_downloads=True,
                                            viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))

        # Sign in: a wrong password is said on the page; then the overview of the demo project.
        await page.goto(f"{base}/")
        await page.get_by_label("Email").fill(ADMIN_EMAIL)
        await page.get_by_label("Password").fill("not-the-password")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.locator("#signin-error")).to_contain_text("Wrong email or password")
        await shot(page, "01-signin-error")
        await sign_in(page)
        await expect(page.locator("#last-run")).to_contain_text("1 billed")
        await expect(page.locator("#meters-online")).to_contain_text("offline")
        await expect(page.locator("#next-fires")).to_contain_text("console monthly electricity")
        await expect(page.locator("#next-fires")).to_contain_text("00:00:00")
        assert await page.locator("#project").input_value() == str(data["project_id"])
        await shot(page, "02-overview")

        # Structure: site -> building -> storey -> space, with the meter in its space.
        await page.get_by_role("link", name="Structure").click()
        await expect(page.locator("#structure-tree")).to_contain_text("演示小区")
        await expect(page.locator("#structure-tree")).to_contain_text("1栋")
        await shot(page, "03-structure")

        # A meter: current value with its time, the chart of the stored points, raw table, CSV.
        await page.get_by_role("link", name="Meters").click()
        await page.get_by_role("link", name=device["name"]).click()
        await expect(page.locator("#current-values")).to_contain_text(data["readings"][-1][1])
        await expect(page.locator("#chart canvas").first).to_be_visible()
        for box in await page.locator(".checks input").all():
            await box.set_checked(await box.get_attribute("data-name") == "total")
        await page.get_by_label("Downsample").select_option("")
        await page.get_by_role("button", name="Show").click()
        await expect(page.locator("#point-count")).to_have_attribute("data-points", str(POINTS))
        await expect(page.locator("#raw-table tbody tr")).to_have_count(POINTS)
        await expect(page.locator("#raw-table tbody tr").first).to_contain_text(data["readings"][-1][1])
        async with page.expect_download() as meter_download:
            await page.get_by_role("button", name="Download CSV").click()
        meter_csv = await (await meter_download.value).path()
        rows = list(csv.reader(io.StringIO(Path(meter_csv).read_text(encoding="utf-8-sig"))))
        assert rows[0] == ["time", "epoch_seconds", next(
            a for a in await meter_attrs(api, device) if a["name"] == "total")["displayname"]]
        assert [Decimal(r[2]) for r in rows[1:]] == [Decimal(v) for _, v in data["readings"]]
        await shot(page, "04-meter")

        # A task: the next five fire times before saving; an invalid crontab named on the page.
        await page.get_by_role("link", name="Billing tasks").click()
        await page.locator("#task-table").get_by_role("link", name="Edit").first.click()
        await expect(page.locator("#fire-times li")).to_have_count(5)
        await page.get_by_label("Hour").fill("25")
        await expect(page.locator("[id='task-crontab.hour-error']")).to_contain_text("outside 0-23")
        await expect(page.locator("#preview")).to_contain_text("not valid")
        await shot(page, "05-task-invalid")
        await page.get_by_label("Hour").fill("2")
        await page.get_by_label("Minute").fill("30")
        await expect(page.locator("#fire-times li")).to_have_count(5)
        for item in await page.locator("#fire-times li").all_inner_texts():
            assert item.endswith("02:30:00"), item
        await expect(page.locator("#preview")).to_contain_text("Asia/Shanghai")
        await page.get_by_role("button", name="Save").click()
        await expect(page.locator("#task-message")).to_contain_text("Saved")
        stored = await api.call("GET", f"/api/v1/scheduler/tasks/{task['natrual_key']}/")
        assert stored["data"]["crontab"] == {"month": "*", "day": "1", "hour": "2", "minute": "30"}
        await shot(page, "06-task-editor")

        # Deleting asks first: Cancel keeps the task, confirming deletes it.
        await page.get_by_role("link", name="Back").click()
        await page.get_by_role("button", name=f"Delete {spare['name']}").click()
        dialog = page.locator("dialog#confirm")
        await expect(dialog).to_be_visible()
        await expect(dialog).to_contain_text(spare["name"])
        await shot(page, "07-confirm-delete")
        await dialog.get_by_role("button", name="Cancel").click()
        await expect(dialog).to_be_hidden()
        await api.call("GET", f"/api/v1/scheduler/tasks/{spare['natrual_key']}/")  # still there
        await page.get_by_role("button", name=f"Delete {spare['name']}").click()
        await dialog.get_by_role("button", name="Delete").click()
        await expect(page.locator("#notice")).to_contain_text("deleted")
        await expect(page.locator("#task-table")).not_to_contain_text(spare["name"])
        await api.call("GET", f"/api/v1/scheduler/tasks/{spare['natrual_key']}/", status=404)

        # Runs: the run and the meters it skipped, with the reason.
        await page.get_by_role("link", name="Runs").click()
        await page.locator("#run-table a").first.click()
        await expect(page.locator("#run-devices")).to_contain_text("skipped")
        await expect(page.locator("#run-devices")).to_contain_text("no opening reading")
        await shot(page, "08-run")

        # Bills: the meter's bill in the table, and the CSV export holds the same row.
        await page.get_by_role("link", name="Bills").click()
        await expect(page.locator("#bills-table")).to_contain_text(device["device_key"])
        await expect(page.locator("#bills-table")).to_contain_text("9.90")
        await shot(page, "09-bills")
        async with page.expect_download() as bills_download:
            await page.get_by_role("button", name="Export CSV").click()
        download = await bills_download.value
        assert download.suggested_filename.startswith(f"twinbill-bills-project{data['project_id']}-")
        exported = Path(await download.path()).read_text(encoding="utf-8-sig")
        [bill] = [r for r in csv.DictReader(io.StringIO(exported)) if r["device_key"] == device["device_key"]]
        assert (bill["opening_reading"], bill["closing_reading"]) == ("104.5", "122.5")
        assert Decimal(bill["consumption"]) == Decimal("18.0") and Decimal(bill["charge"]) == Decimal("9.90")
        assert bill["status"] == "issued" and bill["house_address"].startswith("演示小区 / 1栋")
        # a bad date range is said on the page, next to the field
        await page.get_by_label("Period ends until").fill("2000-01-01")
        await page.get_by_role("button", name="Apply filters").click()
        await expect(page.locator("[id='bills-end_date-error']")).to_contain_text("before the start")

        await page.get_by_role("link", name="Tariffs").click()
        await expect(page.locator("#tariff-table")).to_contain_text("0.55")
        await shot(page, "10-tariffs")
        await page.get_by_role("link", name="Events").click()
        await expect(page.locator("#events-title")).to_have_text("Recent events of the project")

        # Chinese and back: the shell and the page follow, <html lang> too.
        await page.get_by_label("Language").select_option("zh-CN")
        await expect(page.get_by_role("link", name="概览")).to_be_visible()
        await expect(page.locator("#events-title")).to_have_text("项目近期事件")
        assert await page.evaluate("document.documentElement.lang") == "zh-CN"
        await page.get_by_role("link", name="概览").click()
        await expect(page.locator("#last-run")).to_contain_text("已计费 1")
        # every card loaded before the screenshot (the events card says none or lists them)
        await expect(page.locator("#consumption-days")).to_be_visible()
        await expect(page.locator("#next-fires")).to_be_visible()
        await expect(page.locator("#recent-events, #recent-events-none")).to_be_visible()
        await shot(page, "11-overview-zh")
        await page.get_by_label("语言").select_option("en")
        await expect(page.get_by_role("link", name="Overview")).to_be_visible()

        # An expired session goes to sign-in, and back to the page afterwards.
        await page.get_by_role("link", name="Bills").click()
        await expect(page.locator("#bills-table")).to_be_visible()
        await page.evaluate("""() => sessionStorage.setItem('twinbill.session', JSON.stringify(
            {...JSON.parse(sessionStorage.getItem('twinbill.session')), access: 'expired', refresh: 'expired'}))""")
        # By address, not the nav link: a background poll may find the session expired first and
        # show the sign-in (the nav hidden) before a click could land.
        await page.evaluate("() => { location.hash = '#/tariffs'; }")
        await expect(page.locator("#notice")).to_contain_text("session has expired")
        await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        # by keyboard alone: the email field has the focus, Tab to the password, Enter submits
        await expect(page.get_by_label("Email")).to_be_focused()
        await page.keyboard.type(ADMIN_EMAIL)
        await page.keyboard.press("Tab")
        await page.keyboard.type(ADMIN_PASSWORD)
        await page.keyboard.press("Enter")
        await expect(page.locator("#tariff-table")).to_be_visible()
        assert page.url.endswith("#/tariffs")

        # A phone in the plant room: the meter page at 390 px wide.
        phone = await browser.new_context(viewport={"width": 390, "height": 844}, locale="en-US")
        phone_page = await phone.new_page()
        await phone_page.goto(f"{base}/#/meter/{device['id']}")
        await sign_in(phone_page)
        await expect(phone_page.locator("#point-count")).to_have_attribute("data-points", str(POINTS))
        assert await phone_page.evaluate("document.documentElement.scrollWidth") <= 390 + 1
        await shot(phone_page, "12-meter-phone")
        await phone.close()

        # Sign out revokes the session: its tokens stop working anywhere, not only in this browser.
        tokens = await page.evaluate("JSON.parse(sessionStorage.getItem('twinbill.session'))")
        me = {"Authorization": f"Bearer {tokens['access']}"}
        async with http.get(f"{base}/api/v1/users/me", headers=me) as response:
            assert response.status == 200
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        await expect(page.locator("#notice")).to_contain_text("Signed out")
        assert await page.evaluate("sessionStorage.getItem('twinbill.session')") is None
        async with http.get(f"{base}/api/v1/users/me", headers=me) as response:
            assert response.status == 401
        async with http.post(f"{base}/api/v1/auth/token/refresh",
                             headers={"Authorization": f"Bearer {tokens['refresh']}"}) as response:
            assert response.status == 401
        await page.goto(f"{base}/#/bills")
        await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        await context.close()
        assert errors == [], errors


async def meter_attrs(api: Api, device: dict[str, Any]) -> list[dict[str, Any]]:
    body = await api.call("GET", "/dt/open/v1/instance", params={"ids": device["instance_id"]})
    attrs: list[dict[str, Any]] = body["data"][0]["attr"]
    return attrs
