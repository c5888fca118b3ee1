"""Mosquitto's passwd and acl rendered from the registry (twinbill-broker-auth), on a real broker:
a gateway reads its own sub-devices' commands and nobody else's."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conditions import wait_until
from tests.integration.ingest.test_identity_and_scale import _connack_code, _publish_as
from twinbill_common.schemas import DeviceRecord
from twinbill_devstack.broker import SERVICE_USER, DevBroker
from twinbill_ingest.brokerauth import hash_password, render_passwd, sub_devices_of, write_broker_files

SET = "thing/service/measurepoint/set"
LAST = b'{"id": "last"}'
ACCEPTED = (0, 16)  # PUBACK success, or "no matching subscribers" (accepted, nobody listening)


def device(n: int, product_key: str, *, gateway: DeviceRecord | None = None, secret: str | None = None) -> DeviceRecord:
    return DeviceRecord(id=n, product_key=product_key, device_key=f"d{n}{uuid.uuid4().hex[:6]}", name=f"device {n}",
                        project_id=1, secret=secret,
                        gateway_product_key=gateway.product_key if gateway else None,
                        gateway_device_key=gateway.device_key if gateway else None)


def name(record: DeviceRecord) -> str:
    return f"{record.product_key}/{record.device_key}"


@pytest.fixture
def registry() -> list[DeviceRecord]:
    """Two gateways with one meter each, and a directly connected sensor."""
    gw_a = device(1, "gwProd", secret=uuid.uuid4().hex)
    gw_b = device(2, "gwProd", secret=uuid.uuid4().hex)
    return [gw_a, gw_b, device(3, "meterProd", gateway=gw_a), device(4, "meterProd", gateway=gw_b),
            device(5, "sensorProd", secret=uuid.uuid4().hex)]


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[DevBroker]:
    (tmp_path / "mosquitto").mkdir()
    dev = await asyncio.to_thread(DevBroker(tmp_path / "mosquitto").start)
    yield dev
    await asyncio.to_thread(dev.stop)


async def reload(broker: DevBroker, devices: list[DeviceRecord]) -> None:
    """Render the registry into the broker's own files and make it reload them."""
    await asyncio.to_thread(write_broker_files, broker.directory, devices,
                            service_password=broker.service_password)
    broker.reload()
    await until_reloaded(broker, devices)


async def until_reloaded(broker: DevBroker, devices: list[DeviceRecord]) -> None:
    """Wait until Mosquitto has read the new files: a device they add connects (passwd and acl
    are read again together, on the same SIGHUP). The tests' brokers start with neither."""
    record = next(d for d in devices if d.secret is not None)
    assert record.secret is not None

    async def connects() -> bool:
        code = await asyncio.to_thread(_connack_code, broker.port, name(record), str(record.secret))
        return code == 0

    await wait_until(connects, timeout=10, what=f"mosquitto to accept {name(record)}")


async def test_rendered_passwords_are_mosquittos_own_format(broker: DevBroker, registry: list[DeviceRecord]) -> None:
    await reload(broker, registry)
    gw_a, sensor = registry[0], registry[4]
    for record in (gw_a, sensor):
        assert record.secret is not None
        assert await asyncio.to_thread(_connack_code, broker.port, name(record), record.secret) == 0
        assert await asyncio.to_thread(_connack_code, broker.port, name(record), "wrong") in (134, 135)
    meter = registry[2]  # no secret of its own: it logs in through its gateway, never to the broker
    assert await asyncio.to_thread(_connack_code, broker.port, name(meter), "") in (134, 135)


async def test_a_gateway_reads_its_own_sub_devices_commands_and_no_one_elses(
    broker: DevBroker, registry: list[DeviceRecord]
) -> None:
    """Mosquitto grants any subscription and checks read access per message: every device
    subscribes to every set topic, the service sends a command to each device, and each one
    receives only its own and its sub-devices'."""
    await reload(broker, registry)
    gw_a, gw_b, meter_a, meter_b, sensor = registry
    listeners = [gw_a, gw_b, sensor]
    received: dict[str, set[str]] = {name(who): set() for who in listeners}
    async with contextlib.AsyncExitStack() as stack:
        clients = {}
        for who in listeners:
            client = aiomqtt.Client("127.0.0.1", broker.port, username=name(who), password=who.secret,
                                    protocol=aiomqtt.ProtocolVersion.V5)
            clients[name(who)] = await stack.enter_async_context(client)
            await client.subscribe(f"/sys/+/+/{SET}", qos=1)
        service = await stack.enter_async_context(aiomqtt.Client(
            "127.0.0.1", broker.port, username=SERVICE_USER, password=broker.service_password))
        for target in registry:
            await service.publish(f"/sys/{name(target)}/{SET}", b'{"id": "1"}', qos=1)
        # Then one more to each listener's own topic: one publisher's messages reach a subscriber
        # in order, so a listener that sees its last one has seen every command it may read.
        for username in clients:
            await service.publish(f"/sys/{username}/{SET}", LAST, qos=1)

        async def collect(who: str, client: aiomqtt.Client) -> None:
            async for message in client.messages:
                device = message.topic.value.split("/thing/")[0].removeprefix("/sys/")
                received[who].add(device)
                if device == who and message.payload == LAST:
                    return

        await asyncio.wait_for(asyncio.gather(*(collect(who, client) for who, client in clients.items())),
                               timeout=10)
    assert received == {
        name(gw_a): {name(gw_a), name(meter_a)},
        name(gw_b): {name(gw_b), name(meter_b)},
        name(sensor): {name(sensor)},
    }

    assert gw_a.secret is not None and gw_b.secret is not None
    reply = b'{"id": "1", "code": 200, "data": {}}'
    assert await asyncio.to_thread(_publish_as, broker.port, name(gw_a), gw_a.secret,
                                   f"/sys/{name(meter_a)}/{SET}_reply", reply) in ACCEPTED
    assert await asyncio.to_thread(_publish_as, broker.port, name(gw_b), gw_b.secret,
                                   f"/sys/{name(meter_a)}/{SET}_reply", reply) == 135  # a forgery


def test_a_key_that_could_widen_the_acl_is_left_out(registry: list[DeviceRecord]) -> None:
    gw_a = registry[0]
    sneaky = [device(8, "meterProd", gateway=gw_a), device(9, "x", secret="s")]
    sneaky[0] = sneaky[0].model_copy(update={"device_key": "#"})
    sneaky[1] = sneaky[1].model_copy(update={"device_key": "d\ntopic readwrite #"})
    sneaky.append(device(10, "x", secret="s").model_copy(update={"device_key": "g1\n"}))
    topology = sub_devices_of([*registry, *sneaky])
    assert topology[name(gw_a)] == [name(registry[2])]
    rendered = render_passwd([*registry, *sneaky], service_password="p")
    assert "readwrite #" not in rendered and "\n:" not in rendered and "g1\n" not in rendered


def test_an_unchanged_registry_writes_nothing(registry: list[DeviceRecord], tmp_path: Path) -> None:
    """Hashes that still verify are kept: a second pass finds both files as they are (no reload);
    a changed secret rewrites that entry; the files are 0640 from creation."""
    assert write_broker_files(tmp_path, registry, service_password="p")
    first = (tmp_path / "passwd").read_text()
    assert oct((tmp_path / "passwd").stat().st_mode & 0o777) == "0o640"
    assert not write_broker_files(tmp_path, registry, service_password="p")
    assert (tmp_path / "passwd").read_text() == first
    changed = [registry[0].model_copy(update={"secret": "new"}), *registry[1:]]
    assert write_broker_files(tmp_path, changed, service_password="p")
    second = (tmp_path / "passwd").read_text().splitlines()
    assert [line for line in second if line not in first.splitlines()] == [
        line for line in second if line.startswith(f"{name(registry[0])}:")]


def test_topology_and_hash_form(registry: list[DeviceRecord]) -> None:
    gw_a, gw_b, meter_a, meter_b, _ = registry
    assert sub_devices_of(registry) == {name(gw_a): [name(meter_a)], name(gw_b): [name(meter_b)]}
    prefix, iterations, salt, digest = hash_password("s3cret", salt=b"0123456789ab").split("$")[1:]
    assert (prefix, iterations, salt) == ("7", "101", "MDEyMzQ1Njc4OWFi")
    assert len(digest) == 88  # 64 bytes, base64


async def test_the_command_renders_from_the_twin_and_reloads_the_broker(
    broker: DevBroker, registry: list[DeviceRecord], tmp_path: Path
) -> None:
    """twinbill-broker-auth reads the twin's internal device list (keyset pages), writes both
    files where the broker reads them, and SIGHUPs it: the gateway's secret now connects."""
    async def devices(request: web.Request) -> web.Response:
        after = int(request.query["after_id"])
        page = [d.model_dump(mode="json") for d in registry if d.id > after][:2]
        return web.json_response({"devices": page, "next_after_id": page[-1]["id"] if page else None})

    app = web.Application()
    app.router.add_get("/internal/v1/devices", devices)
    async with TestServer(app) as twin:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "twinbill_ingest.brokerauth", "--twin-url", str(twin.make_url("")),
            "--out", str(broker.directory), "--hup-pid", str(broker.pid),
            env={**os.environ, "TWINBILL_MQTT_SERVICE_PASSWORD": broker.service_password},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await process.communicate()
    assert process.returncode == 0, out
    # the last line is the report (a development-defaults warning comes first on stderr)
    assert out.decode().splitlines()[-1].startswith("5 devices -> ")
    await until_reloaded(broker, registry)  # the SIGHUP it sent
    gw_a = registry[0]
    assert gw_a.secret is not None
    assert await asyncio.to_thread(_connack_code, broker.port, name(gw_a), gw_a.secret) == 0
    assert await asyncio.to_thread(_publish_as, broker.port, name(gw_a), gw_a.secret,
                                   f"/sys/{name(registry[2])}/{SET}_reply", b"{}") in ACCEPTED


async def test_the_command_names_what_is_missing(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "TWINBILL_MQTT_SERVICE_PASSWORD"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "twinbill_ingest.brokerauth", "--out", str(tmp_path), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate()
    assert process.returncode == 2
    assert b"TWINBILL_MQTT_SERVICE_PASSWORD is not set" in out
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "twinbill_ingest.brokerauth", "--out", str(tmp_path),
        "--twin-url", "http://127.0.0.1:9", env={**env, "TWINBILL_MQTT_SERVICE_PASSWORD": "x"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate()
    assert process.returncode == 1
    assert b"twinbill-broker-auth: GET /internal/v1/devices failed" in out
