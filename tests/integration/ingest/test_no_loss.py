"""No loss: RabbitMQ refuses publishing mid-stream (memory alarm) and recovers; every request
answered 200 is on the bus exactly as sent, and devices that heard anything else retry."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from typing import Any

import pytest

from tests.integration.ingest.conftest import RunningGateway, TelemetryReader, decode

REQUESTS = 45


def _rabbitmqctl(*args: str) -> str:
    return subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, text=True, timeout=30).stdout.strip()


def _watermark() -> str:
    return _rabbitmqctl("eval", "vm_memory_monitor:get_vm_memory_high_watermark().").splitlines()[-1]


@pytest.fixture
def short_publish_timeout(running: RunningGateway) -> None:
    """Confirms that do not come within a second are answered "retry later"."""
    running.gateway.bus.publish_timeout = 1.0


async def test_points_acknowledged_200_survive_a_publishing_block(
    running: RunningGateway, short_publish_timeout: None, connect: Any, telemetry: TelemetryReader
) -> None:
    """Block publishers with `set_vm_memory_high_watermark 0` (the broker keeps running for the
    other users), keep sending, restore it; then every 200 is on the bus with its exact body."""
    gateway = await connect("gateway")
    original = _watermark()
    sent: dict[str, bytes] = {}
    codes: dict[str, list[int]] = {}

    async def send(index: int) -> None:
        request_id = f"r{index}-{uuid.uuid4().hex[:6]}"
        payload = (
            f'{{"id":"{request_id}","version":"1.0","method":"thing.measurepoint.post",'
            f'"params":{{"measurepoints":{{"temp":{index}.{index:03d}}},"time":{1_000 + index}}}}}'
        )
        sent[request_id] = payload.encode()
        while True:  # a device retries until it hears 200
            try:
                reply = await gateway.request_raw(gateway.topic("post"), payload.encode(), timeout=20)
            except TimeoutError:
                codes.setdefault(request_id, []).append(0)
                continue
            codes.setdefault(request_id, []).append(reply["code"])
            if reply["code"] == 200:
                return
            await asyncio.sleep(0.2)  # the device's retry back-off

    try:
        for index in range(REQUESTS // 3):
            await send(index)
        _rabbitmqctl("set_vm_memory_high_watermark", "0")
        blocked = [asyncio.create_task(send(index)) for index in range(REQUESTS // 3, 2 * REQUESTS // 3)]
        done, _ = await asyncio.wait(blocked, timeout=2)
        assert not done, "publishing was not blocked"
    finally:
        _rabbitmqctl("set_vm_memory_high_watermark", original)
    await asyncio.wait_for(asyncio.gather(*blocked), 60)
    for index in range(2 * REQUESTS // 3, REQUESTS):
        await send(index)

    assert any(code != 200 for history in codes.values() for code in history), "the block never refused a request"
    waiting = await telemetry.count()
    messages = await telemetry.take(waiting)
    assert len(messages) == waiting >= REQUESTS
    on_bus: dict[str, bytes] = {}
    for message in messages:
        body = decode(message.body)
        assert message.message_id == body["message_id"]
        on_bus.setdefault(body["request_id"], message.body)
        same = json.loads(on_bus[body["request_id"]])
        assert same["message_id"] == body["message_id"]  # a retry is recognisable
    assert set(on_bus) == set(sent)
    for request_id, payload in sent.items():
        request = json.loads(payload)
        [point] = json.loads(on_bus[request_id])["points"]
        assert point["time"] == request["params"]["time"]
        expected = payload.split(b'"temp":')[1].split(b"}")[0]
        assert b'"temp":' + expected + b"}" in on_bus[request_id]
