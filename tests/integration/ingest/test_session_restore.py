"""An ingest gateway that starts restores the sub-device sessions the registry records (the
status the gateways reported before the restart), so its gateways need not log in again; a
sub-device the registry has offline still needs its login."""

from __future__ import annotations

from typing import Any

from tests.integration.ingest.conftest import (
    TelemetryReader,
    load_fixture,
    open_device,
    seed_world,
    start_gateway,
)
from twinbill_ingest.devbroker import DevBroker


async def test_sessions_recorded_online_survive_an_ingest_gateway_restart(
        broker: DevBroker, amqp_url: str, bus_namespace: str, telemetry: TelemetryReader) -> None:
    world = seed_world()
    online = {("product1", "device1"), ("product2", "device2")}
    world.devices = [d.model_copy(update={"online": (d.product_key, d.device_key) in online})
                     for d in world.devices]
    body: dict[str, Any] = load_fixture("seed003_resume_batch_request.json")
    body["allowOfflineSubDevice"] = False
    async with start_gateway(broker, amqp_url, bus_namespace, world=world) as running:
        assert running.cache.is_online("product1", "device1")
        assert not running.cache.is_online("product1", world.creds["device9"].device_key)
        async with open_device(broker.port, world.creds["gateway"]) as gateway:
            reply = await gateway.request(gateway.topic("resume/batch"), body)
            assert reply["code"] == 200, reply
        assert len(await telemetry.take(1)) == 1
