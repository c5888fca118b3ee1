"""Load: a project seeded through the services' own APIs, the simulator's meters reporting, an
MQTT observer that writes down every point a device got a 200 for, and a trickle of queries."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import uuid
from array import array
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
import aiomqtt

from twinbill_billing.demo import seed_demo_tariffs
from twinbill_twin.demo import ELECTRICITY, GATEWAY, PRODUCTS, WATER

TASKS = ({"name": "faults: water every minute", "device_type": 1},
         {"name": "faults: electricity every minute", "device_type": 2})


async def _post(session: aiohttp.ClientSession, url: str, body: dict[str, Any], *, ok: tuple[int, ...] = (200, 201)
                ) -> Any:
    async with session.post(url, json=body) as response:
        if response.status not in ok:
            raise RuntimeError(f"POST {url}: {response.status} {await response.text()}")
        return await response.json()


async def seed(*, twin_url: str, billing_url: str, scheduler_url: str, gateways: int, meters: int,
               tag: str) -> dict[str, Any]:
    """Project, products, gateways x meters (alternating water tap/purified and electricity),
    tariffs, and one billing task per device type firing every minute. Returns the simulator's
    device list plus project_id, task keys and {device_key: device_type}."""
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        api = f"{twin_url}/api/v1"
        project = await _post(session, f"{api}/projects/", {"name": f"faults {tag}", "timezone": "UTC",
                                                            "description": "fault campaign"})
        pid = int(project["id"])
        for product in PRODUCTS:
            await _post(session, f"{api}/products/", product)
        result: dict[str, Any] = {"project_id": pid, "gateways": [], "device_types": {}}
        for g in range(gateways):
            gw_key = f"{tag}-gw{g}"
            secret = uuid.uuid4().hex
            gateway = await _post(session, f"{api}/devices/", {
                "product_key": GATEWAY, "device_key": gw_key, "name": gw_key, "project_id": pid, "secret": secret})
            subs = []
            for m in range(meters):
                kind = m % 3
                product_key, device_type, water_kind = ((WATER, 1, "tap"), (WATER, 1, "purified"),
                                                        (ELECTRICITY, 2, None))[kind]
                key = f"{tag}-g{g}-m{m}"
                sub_secret = uuid.uuid4().hex
                await _post(session, f"{api}/devices/", {
                    "product_key": product_key, "device_key": key, "name": key, "project_id": pid,
                    "secret": sub_secret, "device_type": device_type, "water_meter_kind": water_kind,
                    "gateway_id": gateway["id"], "multiplier": "1", "register_max": "99999999"})
                subs.append({"product_key": product_key, "device_key": key, "secret": sub_secret,
                             "device_type": device_type, "water_meter_kind": water_kind, "register": "total"})
                result["device_types"][key] = device_type
            result["gateways"].append({"product_key": GATEWAY, "device_key": gw_key, "secret": secret,
                                       "sub_devices": subs})
        await seed_demo_tariffs(billing_url, project_id=pid)
        keys = []
        for spec in TASKS:
            answer = await _post(session, f"{scheduler_url}/api/v1/scheduler/task/", {
                **spec, "project_id": pid, "enabled": True, "description": "fault campaign",
                "crontab": {"month": "*", "day": "*", "hour": "*", "minute": "*"}})
            keys.append(answer["data"]["natrual_key"])
        result["task_keys"] = keys
        return result


@dataclass
class AckLedger:
    """Every point a device got a 200 for: (device_key, ts) -> (value text, monotonic ack time)."""

    acked: dict[tuple[str, int], tuple[str, float]] = field(default_factory=dict)
    requests: dict[str, list[tuple[str, int, str]]] = field(default_factory=dict)
    codes: Counter[int] = field(default_factory=Counter)
    early_replies: dict[str, int] = field(default_factory=dict)
    acked_requests: int = 0
    last_ack: float = 0.0
    # The highest register each meter has sent (acknowledged or not): where a restarted device resumes.
    highest: dict[str, Decimal] = field(default_factory=dict)
    # False: count acknowledged points and keep each meter's newest time only (a long soak).
    keep_points: bool = True
    points_acked: int = 0
    newest: dict[str, int] = field(default_factory=dict)
    # With keep_points False: each meter's acknowledged times, 8 bytes a point (the soak's loss check).
    keep_times: bool = False
    times: dict[str, array[int]] = field(default_factory=dict)

    def request(self, request_id: str, entries: list[tuple[str, int, str]]) -> None:
        self.requests[request_id] = entries
        for device_key, _, value in entries:
            with contextlib.suppress(InvalidOperation):
                number = Decimal(value)
                if number > self.highest.get(device_key, number - 1):
                    self.highest[device_key] = number
        if (code := self.early_replies.pop(request_id, None)) is not None:
            self.reply(request_id, code)

    def reply(self, request_id: str, code: int) -> None:
        self.codes[code] += 1
        entries = self.requests.get(request_id)
        if entries is None:
            self.early_replies[request_id] = code
            return
        if code != 200:
            return
        now = time.monotonic()
        self.acked_requests += 1
        self.last_ack = now
        self.points_acked += len(entries)
        for device_key, ts, value in entries:
            if self.keep_points:
                self.acked.setdefault((device_key, ts), (value, now))
            elif self.keep_times:
                self.times.setdefault(device_key, array("q")).append(ts)
            if ts > self.newest.get(device_key, 0):
                self.newest[device_key] = ts
        del self.requests[request_id]

    def between(self, start: float, end: float) -> dict[tuple[str, int], str]:
        """The points acknowledged in [start, end] (monotonic)."""
        return {key: value for key, (value, at) in self.acked.items() if start <= at <= end}

    def longest_gap(self, start: float, end: float) -> float:
        """The longest time in [start, end] with no 200 for any device (an outage as devices saw it)."""
        times = sorted({at for _, at in self.acked.values() if start <= at <= end})
        edges = [start, *times, end]
        return max(b - a for a, b in itertools.pairwise(edges))

    def since(self, start: float) -> int:
        return sum(1 for _, at in self.acked.values() if at >= start)


def _entries(payload: bytes) -> tuple[str, list[tuple[str, int, str]]] | None:
    try:
        body = json.loads(payload, parse_float=str, parse_int=str)
        entries = []
        for point in body["params"]:
            for value in point["measurepoints"].values():
                entries.append((str(point["deviceKey"]), int(point["time"]), str(value)))
        return str(body["id"]), entries
    except (ValueError, KeyError, TypeError):
        return None


async def observe(ledger: AckLedger, *, port: int, stop: asyncio.Event) -> None:
    """Subscribe to every device request and reply on the campaign's Mosquitto; reconnect after a
    broker restart (what passes while the observer is away is not recorded: the check then covers
    fewer points, never more)."""
    while not stop.is_set():
        try:
            async with aiomqtt.Client("127.0.0.1", port, identifier=f"faults-observer-{uuid.uuid4().hex[:6]}",
                                      protocol=aiomqtt.ProtocolVersion.V5, max_queued_incoming_messages=None
                                      ) as client:
                await client.subscribe("/sys/+/+/thing/measurepoint/#", qos=1)
                async for message in client.messages:
                    if stop.is_set():
                        return
                    topic = message.topic.value
                    payload = message.payload if isinstance(message.payload, bytes) else b""
                    if topic.endswith("_reply"):
                        with contextlib.suppress(ValueError, KeyError, TypeError):
                            reply = json.loads(payload)
                            ledger.reply(str(reply["id"]), int(reply["code"]))
                    elif topic.endswith(("post/batch", "resume/batch")) and (parsed := _entries(payload)):
                        ledger.request(*parsed)
        except aiomqtt.MqttError:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)


@dataclass
class QueryStats:
    """Answers to the campaign's background queries, by status (0: no answer)."""

    codes: Counter[int] = field(default_factory=Counter)


async def query(urls: dict[str, str], *, project_id: int, stats: QueryStats, stop: asyncio.Event,
                every: float = 2.0) -> None:
    """Read twins, a time series and bill history the way users do, through the API gateway."""
    paths = (f"{urls['twin']}/dt/open/v1/instances?page=1&offset=10",
             f"{urls['gateway']}/api/v1/scheduler/history/?project_id={project_id}&device_type=0",
             f"{urls['billing']}/api/v1/scheduler/history/?project_id={project_id}&device_type=0")
    token = ""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while not stop.is_set():
            if not token:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError, KeyError, ValueError):
                    async with session.post(f"{urls['gateway']}/api/v1/auth/token", json={
                            "email": "admin@twinbill.local", "password": "twinbill-admin"}) as response:
                        token = (await response.json())["access_token"]
            for url in paths:
                try:
                    async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
                        await response.read()
                        stats.codes[response.status] += 1
                        if response.status == 401:
                            token = ""  # expired (15 min): log in again, as a client does
                except (aiohttp.ClientError, TimeoutError):
                    stats.codes[0] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
