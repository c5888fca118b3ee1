"""Webhooks on real PostgreSQL: a receiver in the test checks each delivery's HMAC-SHA256 signature
(computed here independently) and processes each notification once by its idempotency key, while
the twin delivering them is stopped mid-delivery and another one takes over; a refusing and a
hanging webhook of the same project never hold the live one back, and the delivery log shows it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import uuid
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, unused_port

from tests.integration.twin_timeseries.conftest import make_device, wait_for
from twinbill_twin.app import create_app
from twinbill_twin.keys import POOL
from twinbill_twin.settings import TwinSettings

SECRET = "webhook-secret-" + uuid.uuid4().hex


class Receiver:
    """The project's live endpoint: hangs on the very first request, answers 200 to the others."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, bool]] = []   # (idempotency key, signature valid)
        self.processed: list[str] = []               # event ids, each key processed once
        self.processed_keys: set[str] = set()
        self.first_arrived = asyncio.Event()
        self._hung = False

    async def live(self, request: web.Request) -> web.Response:
        body = await request.read()
        stamp = request.headers["X-Twinbill-Timestamp"]
        expected = "sha256=" + hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        valid = hmac.compare_digest(expected, request.headers["X-Twinbill-Signature"]) and \
            abs(time.time() - int(stamp)) < 300
        key = request.headers["X-Twinbill-Idempotency-Key"]
        self.requests.append((key, valid))
        if not self._hung:
            self._hung = True
            self.first_arrived.set()
            await asyncio.Event().wait()  # never answers: the twin is stopped meanwhile
        if valid and key not in self.processed_keys:  # a repeated key was processed already
            self.processed_keys.add(key)
            self.processed.append(request.headers["X-Twinbill-Event-Id"])
        return web.Response(status=200 if valid else 401)

    async def hang(self, _: web.Request) -> web.Response:
        await asyncio.Event().wait()
        return web.Response(status=200)


async def test_each_notification_is_processed_once_across_a_restart_and_dead_webhooks_block_nothing(
        alarm_settings: TwinSettings) -> None:
    """Three WARNING events; the live webhook's first delivery hangs, the twin is stopped, a new
    one re-sends it after the lease with the same key: the receiver processes three events once
    each; the refusing and the hanging webhooks' deliveries are pending with their errors."""
    settings = alarm_settings.model_copy(update={
        "schema_name": f"hook_{uuid.uuid4().hex[:10]}", "webhook_lease": 2.0, "webhook_timeout": 1.0,
        "webhook_first_retry": 0.2, "webhook_interval": 0.1, "alarms_enabled": False})
    receiver = Receiver()
    endpoint = web.Application()
    endpoint.router.add_post("/live", receiver.live)
    endpoint.router.add_post("/hang", receiver.hang)
    server = TestServer(endpoint)
    await server.start_server()
    twin: TestClient[Any, Any] = TestClient(TestServer(create_app(settings)))
    await twin.start_server()
    try:
        pool = twin.app[POOL]
        device = await make_device(pool)
        project = int(await pool.fetchval("SELECT project_id FROM devices WHERE id = $1", device.id))
        hooks = {}
        for name, url in (("live", f"http://127.0.0.1:{server.port}/live"),
                          ("refused", f"http://127.0.0.1:{unused_port()}/x"),
                          ("hanging", f"http://127.0.0.1:{server.port}/hang")):
            response = await twin.post("/api/v1/webhooks/", json={"project_id": project, "url": url, "secret": SECRET})
            assert response.status == 201, await response.text()
            created = await response.json()
            assert created["secret"] == SECRET
            hooks[name] = created["id"]
        assert (await (await twin.get(f"/api/v1/webhooks/{hooks['live']}")).json())["secret"] is None
        scope = (await (await twin.post("/bemserver/campaign_scopes/", json={
            "name": "meters", "campaign_id": project})).json())["id"]
        category = (await (await twin.post("/bemserver/event_categories/", json={
            "name": f"Leak-{uuid.uuid4().hex[:6]}"})).json())["id"]
        events = []
        for minute in range(3):
            response = await twin.post("/bemserver/events/", json={
                "campaign_scope_id": scope, "category_id": category, "level": "WARNING",
                "timestamp": f"2026-12-01T08:0{minute}:00+00:00", "source": "meter 1"})
            events.append(str((await response.json())["id"]))
        info = await twin.post("/bemserver/events/", json={  # below the webhooks' level: not sent
            "campaign_scope_id": scope, "category_id": category, "level": "INFO",
            "timestamp": "2026-12-01T09:00:00+00:00", "source": "meter 1"})
        assert info.status == 201

        await asyncio.wait_for(receiver.first_arrived.wait(), timeout=20)

        async def two_others() -> bool:
            return len(receiver.processed) == 2
        await wait_for(two_others)  # delivered while the first hangs and two webhooks are dead
    finally:
        await twin.close()  # mid-delivery: the first delivery never got its answer
    second: TestClient[Any, Any] = TestClient(TestServer(create_app(settings)))
    await second.start_server()
    try:
        async def all_three() -> bool:
            return len(receiver.processed) == 3
        await wait_for(all_three, timeout=30)
        assert sorted(receiver.processed) == sorted(events)  # each notification once
        keys = [key for key, _ in receiver.requests]
        assert all(valid for _, valid in receiver.requests)
        assert len(set(keys)) == 3 and keys.count(keys[0]) == 2  # the hung one was sent again, same key

        async def log_of(name: str) -> list[dict[str, Any]]:
            response = await second.get(f"/api/v1/webhooks/{hooks[name]}/deliveries?page_size=50")
            assert response.status == 200
            found: list[dict[str, Any]] = await response.json()
            return found

        async def settled() -> bool:
            return all(d["status"] == "delivered" for d in await log_of("live"))
        await wait_for(settled)
        live = await log_of("live")
        assert sorted(d["idempotency_key"] for d in live) == sorted(set(keys))
        assert {str(d["event_id"]) for d in live} == set(events)
        for name in ("refused", "hanging"):
            async def failing(name: str = name) -> bool:
                return all(d["attempts"] >= 1 and d["last_error"] for d in await log_of(name))
            await wait_for(failing)  # a send cut by the restart has no error until it is retried
            dead = await log_of(name)
            assert len(dead) == 3 and {d["status"] for d in dead} == {"pending"}
        errors = {d["last_error"].split(":")[0] for d in await log_of("hanging")}
        assert errors == {"TimeoutError"} or errors == {"ServerTimeoutError"}, errors
    finally:
        await second.close()
        await server.close()
