"""The simulator against the gateway over the project's Mosquitto: sub-devices log in, post/batch
and an offline period's resume/batch back-fill are all answered 200, and registers only grow."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from tests.integration.ingest.conftest import TIMEOUT, TelemetryReader, decode
from twinbill_common.schemas import DeviceRecord, ProductModel
from twinbill_devstack.namespaces import delete_namespace
from twinbill_ingest.app import GATEWAY, create_app
from twinbill_ingest.devbroker import SERVICE_USER, DevBroker
from twinbill_ingest.registry import StaticRegistrySource
from twinbill_ingest.settings import IngestSettings
from twinbill_simulator import run_simulator
from twinbill_simulator.config import generate_config, registry_for


@pytest.fixture
async def simulated(broker: DevBroker, amqp_url: str, bus_namespace: str) -> AsyncIterator[dict[str, Any]]:
    """A generated device list (2 gateways x 4 meters) and a gateway that knows it."""
    config = generate_config(2, 4, prefix=f"s{uuid.uuid4().hex[:5]}")
    registry = registry_for(config)
    broker.add_users({f"{g['product_key']}/{g['device_key']}": g["secret"] for g in config["gateways"]})
    settings = IngestSettings(
        amqp_url=amqp_url,
        bus_namespace=bus_namespace,
        mqtt_port=broker.port,
        mqtt_username=SERVICE_USER,
        mqtt_password=broker.service_password,
        share_group=f"g{uuid.uuid4().hex[:8]}",
    )
    source = StaticRegistrySource(
        [ProductModel.model_validate(p) for p in registry["products"]],
        [DeviceRecord.model_validate(d) for d in registry["devices"]],
    )
    app = create_app(settings, source=source)
    server = TestServer(app, port=0)
    await server.start_server()
    try:
        await asyncio.wait_for(app[GATEWAY].ready.wait(), TIMEOUT)
        yield config
    finally:
        await server.close()
        await delete_namespace(amqp_url, bus_namespace)


async def test_simulator_reports_and_back_fills_with_every_reply_200(
    simulated: dict[str, Any], broker: DevBroker, telemetry: TelemetryReader
) -> None:
    """Two seconds of simulation with frequent offline periods: only 200s, all points on the bus,
    resume/batch among them, and each meter's register never decreases over time."""
    lines: list[str] = []
    stats = await run_simulator(
        simulated,
        port=broker.port,
        rate=400,
        duration=2.0,
        batch=20,
        window=4,
        auth=True,
        offline_every=0.2,
        offline_seconds=0.3,
        sample_interval=0.05,
        report_every=None,
        seed=7,
        log=lines.append,
    )
    assert stats.points_sent > 0 and stats.points_acked == stats.points_sent, lines
    assert set(stats.codes) == {200}, lines
    messages = await telemetry.take(stats.requests)
    assert len(messages) == stats.requests
    bodies = [decode(m.body) for m in messages]
    assert {b["method"] for b in bodies} == {"thing.measurepoint.post.batch", "thing.measurepoint.resume.batch"}
    series: dict[str, list[tuple[int, Decimal]]] = defaultdict(list)
    for body in bodies:
        for point in body["points"]:
            series[point["device_key"]].append((point["time"], point["measurepoints"]["total"]))
    assert sum(len(s) for s in series.values()) == stats.points_acked
    for readings in series.values():
        values = [value for _, value in sorted(readings)]
        assert values == sorted(values)
