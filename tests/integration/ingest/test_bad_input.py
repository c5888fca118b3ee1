"""A few hundred malformed payloads over real MQTT: each is answered with a documented code, none
reaches the bus, and the gateway keeps serving valid requests afterwards."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

from tests.integration.ingest.conftest import FIXTURES, TIMEOUT, RunningGateway, TelemetryReader
from twinbill_ingest.domain.codes import Code

DOCUMENTED = {
    Code.MODEL_INVALID,
    Code.DATA_FORMAT,
    Code.NO_SUB_DEVICE_PERMISSION,
    Code.PAYLOAD_FORMAT,
    Code.PAYLOAD_EMPTY,
    Code.METHOD_MISMATCH,
    Code.TOO_LARGE,
}


def malformed(rng: random.Random, seed: bytes) -> bytes:
    """One broken request: truncated, byte-flipped, re-typed or junk."""
    choice = rng.randrange(5)
    if choice == 0:
        return seed[: rng.randrange(len(seed))]
    if choice == 1:
        data = bytearray(seed)
        for _ in range(rng.randint(1, 5)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if choice == 2:
        body: dict[str, Any] = json.loads(seed)
        body["skipInvalidMeasurepoints"] = False
        entry = body["params"][rng.randrange(3)]
        entry["measurepoints"][rng.choice(["temp", "Power", "branchCurr", "x"])] = rng.choice(
            [None, "s", [1, [2]], {"a": 1}, -1, True]
        )
        return json.dumps(body).encode()
    if choice == 3:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    return json.dumps(rng.choice([[], {}, 1, "x", {"method": 5}, {"params": None}])).encode()


async def test_hundreds_of_malformed_payloads_get_documented_codes(
    running: RunningGateway, connect: Any, telemetry: TelemetryReader
) -> None:
    """300 bad requests, one reply each with a documented code; then the seed still gets 200."""
    gateway = await connect("gateway")
    seed = (FIXTURES / "seed003_resume_batch_request.json").read_bytes()
    rng = random.Random(3)
    topic = gateway.topic("resume/batch")
    codes: dict[int, int] = {}
    accepted = 0
    for _ in range(6):  # 6 pipelined bursts of 50
        for _ in range(50):
            await gateway.client.publish(topic, malformed(rng, seed), qos=1)
        for _ in range(50):
            reply_topic, reply = await asyncio.wait_for(gateway.replies.get(), TIMEOUT)
            assert reply_topic == f"{topic}_reply"
            if reply["code"] == 200:
                accepted += 1  # a flip inside a string value can still be a valid request
                continue
            assert reply["code"] in DOCUMENTED, reply
            codes[reply["code"]] = codes.get(reply["code"], 0) + 1
    # Junk and cut requests are 1206 (not valid JSON), JSON that is not an object 1220.
    assert {Code.DATA_FORMAT, Code.PAYLOAD_FORMAT, Code.MODEL_INVALID} <= set(codes)
    assert (await gateway.request_raw(topic, seed))["code"] == 200
    assert len(await telemetry.take(accepted + 1)) == accepted + 1
    assert await telemetry.count() == 0
