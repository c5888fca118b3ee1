"""The end-to-end test's clients: the API gateway with a token, and a gateway device over MQTT."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import aiomqtt

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD


class Api:
    """The API gateway with a Bearer token: every call asserts its expected status."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.headers: dict[str, str] = {}

    async def login(self) -> None:
        async with self.http.post(f"{self.base}/api/v1/auth/token",
                                  json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}) as response:
            body = await response.json()
        assert body["status"] == "success", body
        self.headers = {"Authorization": f"Bearer {body['access_token']}"}

    async def call(self, method: str, path: str, *, status: int = 200, **kwargs: Any) -> Any:
        async with self.http.request(method, f"{self.base}{path}", headers=self.headers, **kwargs) as response:
            text = await response.text()
            assert response.status == status, f"{method} {path}: {response.status} {text}"
            return json.loads(text) if text else None

    async def create(self, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = await self.call("POST", f"/api/v1/{resource}/", status=201, json=body)
        return created


async def poll(check: Callable[[], Awaitable[Any]], *, until: float, what: str) -> Any:
    """Call `check` every 0.5 s until it returns something truthy, or fail at loop time `until`."""
    loop = asyncio.get_running_loop()
    while not (result := await check()):
        if loop.time() > until:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)
    return result


def sign_sha256(params: dict[str, str], *, secret: str) -> str:
    """EnOS login signature, written here from the protocol (sorted name+value, secret, sha256)."""
    content = "".join(f"{key}{params[key]}" for key in sorted(params))
    return hashlib.sha256(f"{content}{secret}".encode()).hexdigest()


class GatewayDevice:
    """An MQTT v5 client of the gateway device: requests answered by id on `_reply` topics."""

    def __init__(self, client: aiomqtt.Client, product_key: str, device_key: str) -> None:
        self.client = client
        self.pk, self.dk = product_key, device_key
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.replies: list[tuple[str, dict[str, Any]]] = []

    async def read(self) -> None:
        async for message in self.client.messages:
            if not message.topic.value.endswith("_reply") or not isinstance(message.payload, bytes):
                continue
            reply = json.loads(message.payload)
            self.replies.append((message.topic.value, reply))
            future = self.pending.get(str(reply.get("id")))
            if future is not None and not future.done():
                future.set_result(reply)

    async def request(self, topic: str, payload: str, request_id: str) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        await self.client.publish(topic, payload.encode(), qos=1)
        return await asyncio.wait_for(future, 15)

    async def login_batch(self, subs: list[dict[str, Any]]) -> dict[str, Any]:
        request_id = uuid.uuid4().hex[:12]
        timestamp = str(int(datetime.now(UTC).timestamp() * 1000))
        signed = [{"productKey": s["product_key"], "deviceKey": s["device_key"],
                   "sign": sign_sha256({"clientId": self.dk, "deviceKey": s["device_key"],
                                        "productKey": s["product_key"], "timestamp": timestamp},
                                       secret=s["secret"])} for s in subs]
        body = {"id": request_id, "version": "1.1", "method": "combine.login.batch",
                "params": {"clientId": self.dk, "timestamp": timestamp, "signMethod": "sha256",
                           "subDevices": signed}}
        return await self.request(f"/ext/session/{self.pk}/{self.dk}/combine/login/batch",
                                  json.dumps(body), request_id)

    async def resume_batch(self, points: list[tuple[dict[str, Any], datetime, str]]) -> dict[str, Any]:
        """Historical readings of sub-devices; values keep their decimal text."""
        request_id = uuid.uuid4().hex[:12]
        entries = ",".join(
            f'{{"productKey":"{sub["product_key"]}","deviceKey":"{sub["device_key"]}",'
            f'"measurepoints":{{"total":{value}}},"time":{epoch_ms(at)}}}' for sub, at, value in points)
        payload = (f'{{"id":"{request_id}","version":"1.0","method":"thing.measurepoint.resume.batch",'
                   f'"params":[{entries}]}}')
        return await self.request(f"/sys/{self.pk}/{self.dk}/thing/measurepoint/resume/batch", payload, request_id)


def epoch_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)
