"""`make run`'s demo pieces against the five services as processes (a private Mosquitto, free
ports): the simulator configured as `make run` configures it reports the meters' `reading`
struct, so the README's seed-002 example (`attribute/5`, downsampled) has points; seed 002's own
reverse-control example (PATCH instance 2, attributes 2 and 3) is answered with a set_reply 200
by the simulated gateway, which reports the values, so the console shows them applied."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
from playwright.async_api import Browser, expect

from tests.e2e.clients import Api, poll
from tests.e2e.conftest import Platform
from tests.e2e.test_console import _deadline, browser, pytestmark, shot
from tests.e2e.test_console_pages import signed_in
from twinbill_devstack.run import simulation
from twinbill_simulator import run_simulator
from twinbill_twin.demo import seed_demo

__all__ = ["browser", "pytestmark"]


async def test_demo_meters_report_and_answer_reverse_control(platform: Platform, browser: Browser) -> None:
    async with aiohttp.ClientSession() as http:
        api = Api(http, platform.url("gateway"))
        await api.login()
        demo = await seed_demo(platform.url("twin"))
        broker = platform.broker
        await asyncio.to_thread(broker.add_users, {
            f"{g['product_key']}/{g['device_key']}": g["secret"] for g in demo["gateways"]}, sub_devices={
            f"{g['product_key']}/{g['device_key']}": [f"{s['product_key']}/{s['device_key']}"
                                                      for s in g["sub_devices"]] for g in demo["gateways"]})
        lines: list[str] = []
        stop = asyncio.Event()
        simulator = asyncio.create_task(run_simulator(
            simulation(demo), port=broker.port, rate=20, auth=True, offline_every=None,
            report_every=None, consumption_scale=720.0, stop=stop, log=lines.append))
        try:
            # the README's example: attribute 5 is the first water meter's `reading` struct
            attr = (await api.call("GET", "/dt/open/v1/instance", params={"ids": 2}))["data"][0]["attr"]
            assert [a["name"] for a in attr if a["id"] == 5] == ["reading"]

            async def points(**query: str) -> int:
                body = await api.call("GET", "/dt/open/v1/instance/attribute/5", params=query)
                return sum(len(series["dps"]) for series in body["data"]["value"] or [])
            await poll(lambda: points(start="30m-ago"), until=_deadline(60), what="reading points")
            await poll(lambda: points(start="30m-ago", downsample="1m-last"), until=_deadline(30),
                       what="the README's downsampled query to show data")
            async def five_raw() -> bool:
                return await points(start="30m-ago") >= 5
            await poll(five_raw, until=_deadline(60), what="five reading points")

            # seed 002's reverse-control example, verbatim
            await api.call("PATCH", "/dt/open/v1/instance/2",
                           json=[{"id": 2, "expectvalue": "12.20"}, {"id": 3, "expectvalue": "12.31"}])

            async def applied() -> bool:
                body = await api.call("GET", "/dt/open/v1/instance", params={"ids": 2})
                values = {a["id"]: a["value"] for a in body["data"][0]["attr"]}
                return values.get(2) in ("12.2", "12.20") and values.get(3) == "12.31"
            await poll(applied, until=_deadline(60), what="the device to report the values it was set to")
            replies = await metric(http, f"{platform.url('ingest')}/metrics", "ingest_command_replies_total",
                                   'code="200"')
            assert replies >= 1, lines
            assert any("applied" in line for line in lines), lines

            [device] = [d for d in await api.call("GET", "/api/v1/devices/", params={
                "project_id": demo["project_id"], "device_key": demo["gateways"][0]["sub_devices"][0]["device_key"]})]
            async with signed_in(platform, browser, f"#/meter/{device['id']}") as page:
                for attribute_id in (2, 3):
                    name = next(a["displayname"] for a in attr if a["id"] == attribute_id)
                    row = page.locator("#control-table tbody tr", has_text=name)
                    await expect(row.locator("[data-state]")).to_have_attribute("data-state", "applied")
                await shot(page, "25-demo-control-applied")
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(simulator, 30)


async def metric(http: aiohttp.ClientSession, url: str, name: str, label: str) -> float:
    """A counter's value from a Prometheus text page (0 when absent)."""
    async with http.get(url) as response:
        text = await response.text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and label in line and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total
