"""The gateway's MQTT client (twinbill_ingest.mqttio.BatchedIO, batched reads and writes) on a real
Mosquitto: many QoS 1 and QoS 0 messages published at once, some larger than the socket takes in
one write, all complete (QoS 1 with its PUBACK) and arrive whole, QoS 1 in the order sent."""

from __future__ import annotations

import asyncio
import logging
import uuid

from twinbill_devstack.broker import SERVICE_USER, DevBroker
from twinbill_ingest.mqtt import create_client

TIMEOUT = 30.0


async def test_concurrent_publishes_of_mixed_sizes_arrive_whole_and_in_order(broker: DevBroker) -> None:
    topic = f"/sys/batched/{uuid.uuid4().hex[:8]}"
    # 600 KiB messages among small ones: the socket takes them in parts (partial writes)
    sizes = [3, 8_000, 120, 600_000, 17, 8_200, 1, 300_000] * 25
    sent = [f"{n:04d}:".encode() + bytes([65 + n % 26]) * size for n, size in enumerate(sizes)]
    log = logging.getLogger("test.batched")
    log.setLevel(logging.ERROR)  # aiomqtt warns on every publish while more than 10 await their PUBACK
    reader = create_client("127.0.0.1", broker.port, identifier=f"r-{uuid.uuid4().hex[:8]}",
                           username=SERVICE_USER, password=broker.service_password, logger=log)
    writer = create_client("127.0.0.1", broker.port, identifier=f"w-{uuid.uuid4().hex[:8]}",
                           username=SERVICE_USER, password=broker.service_password, logger=log)
    async with reader, writer:
        await reader.subscribe(f"{topic}/#", qos=1)
        received: dict[int, list[bytes]] = {0: [], 1: []}

        async def read() -> None:
            async for message in reader.messages:
                assert isinstance(message.payload, bytes)
                received[message.qos].append(message.payload)
                if sum(map(len, received.values())) == len(sent):
                    return

        reading = asyncio.create_task(read())
        # QoS 1 and QoS 0 messages interleaved, all queued in the same loop turns
        await asyncio.wait_for(asyncio.gather(*(
            writer.publish(f"{topic}/q{n % 3 and 1}", payload, qos=n % 3 and 1)
            for n, payload in enumerate(sent)
        )), TIMEOUT)
        await asyncio.wait_for(reading, TIMEOUT)
    assert received[1] == [payload for n, payload in enumerate(sent) if n % 3]
    assert sorted(received[0]) == sorted(payload for n, payload in enumerate(sent) if not n % 3)
