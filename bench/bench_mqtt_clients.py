"""The MQTT clients' own work per request and reply, without the gateway's: a device client
publishes 8 KiB QoS 1 requests (`--window` in flight) and a gateway client answers each with a
QoS 1 reply, both in this process on uvloop, through a private Mosquitto (project config).
Prints the CPU time of this process per round trip for aiomqtt's client and for the ingest
gateway's `twinbill_ingest.mqttio.BatchedIO`, alternated `--rounds` times (CPU time: it moves
less than wall time on a machine busy with other work).

    .venv/bin/python bench/bench_mqtt_clients.py [--requests 3000] [--window 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
import uuid
from pathlib import Path

import aiomqtt

from twinbill_devstack.broker import SERVICE_USER, DevBroker
from twinbill_ingest.__main__ import event_loop_factory
from twinbill_ingest.mqtt import share_property_tables
from twinbill_ingest.mqttio import BatchedIO

REPLY = b'{"id":"1","code":200,"data":{}}'


async def round_trips(client_class: type[aiomqtt.Client], broker: DevBroker, *, requests: int,
                      window: int) -> tuple[float, float]:
    """(CPU microseconds per round trip, round trips per second) with this client class."""
    log = logging.getLogger("bench.mqtt")
    log.setLevel(logging.ERROR)  # aiomqtt warns while more than 10 publishes await their PUBACK

    def client(name: str) -> aiomqtt.Client:
        return client_class("127.0.0.1", broker.port, identifier=f"{name}-{uuid.uuid4().hex[:8]}",
                            username=SERVICE_USER, password=broker.service_password, logger=log,
                            protocol=aiomqtt.ProtocolVersion.V5, max_queued_outgoing_messages=None)

    base = f"/sys/bench{uuid.uuid4().hex[:6]}/device/thing/measurepoint/post/batch"
    payload = b"x" * 8192
    slots = asyncio.Semaphore(window)
    answered = asyncio.Event()
    count = 0
    async with client("gateway") as gateway, client("device") as device, asyncio.TaskGroup() as tasks:
        await gateway.subscribe(base, qos=1)
        await device.subscribe(f"{base}_reply", qos=1)

        async def serve() -> None:
            async for _ in gateway.messages:
                tasks.create_task(gateway.publish(f"{base}_reply", REPLY, qos=1))

        async def read() -> None:
            nonlocal count
            async for _ in device.messages:
                count += 1
                slots.release()
                if count == requests:
                    answered.set()
                    return

        server = tasks.create_task(serve())
        tasks.create_task(read())
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(requests):
            await slots.acquire()
            tasks.create_task(device.publish(base, payload, qos=1))
        await answered.wait()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        server.cancel()
    return cpu / requests * 1e6, requests / wall


async def run(args: argparse.Namespace) -> None:
    """Alternate the two client classes on one broker."""
    share_property_tables()  # as the gateway and bench_ingest do, for both classes
    broker = DevBroker(Path(tempfile.mkdtemp(prefix="bench-mqtt-"))).start()
    try:
        for _ in range(args.rounds):
            for client_class in (aiomqtt.Client, BatchedIO):
                cpu, rate = await round_trips(client_class, broker, requests=args.requests, window=args.window)
                print(f"{client_class.__name__:10s} {cpu:7.1f} us CPU per round trip ({rate:,.0f}/s)", flush=True)
    finally:
        broker.stop()


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--window", type=int, default=64, help="requests in flight")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(run(args))


if __name__ == "__main__":
    main()
