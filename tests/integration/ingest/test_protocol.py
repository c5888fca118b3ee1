"""The EnOS measurement-point protocol over the real Mosquitto (project config) and RabbitMQ:
seed 003's sample verbatim, every documented error code, the two flags, sub-device topology."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import aiohttp

from tests.integration.ingest.conftest import FIXTURES, RunningGateway, TelemetryReader, decode, load_fixture
from twinbill_common.schemas import MeasurementsAccepted
from twinbill_common.topology import telemetry_key
from twinbill_ingest.domain.codes import Code


def _points(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "product_key": p["productKey"],
            "device_key": p["deviceKey"],
            "time": p["time"],
            "measurepoints": p["measurepoints"],
        }
        for p in body["params"]
    ]


async def test_seed_sample_verbatim_is_answered_200_and_its_points_reach_the_bus(
    running: RunningGateway, connect: Any, telemetry: TelemetryReader
) -> None:
    """Seed 003's resume/batch request, byte for byte, gets the seed's reply and lands on the bus
    with every value exactly as sent (decimal text kept)."""
    gateway = await connect("gateway")
    raw = (FIXTURES / "seed003_resume_batch_request.json").read_bytes()
    reply = await gateway.request_raw(gateway.topic("resume/batch"), raw)
    expected = load_fixture("seed003_resume_batch_reply.json")
    assert reply == expected
    [message] = await telemetry.take(1)
    body = decode(message.body)
    MeasurementsAccepted.model_validate(body)
    request = json.loads(raw, parse_float=Decimal)
    assert body["points"] == _points(request)
    assert body["points"][0]["measurepoints"]["temp"] == Decimal("1.02")
    assert b'"temp":1.02' in message.body
    assert body["product_key"] == gateway.creds.product_key
    assert body["device_key"] == gateway.creds.device_key
    assert body["request_id"] == "123"
    assert body["method"] == "thing.measurepoint.resume.batch"
    assert message.message_id == body["message_id"]
    assert message.routing_key == telemetry_key(gateway.creds.product_key, gateway.creds.device_key)
    assert message.delivery_mode == 2  # persistent


async def test_a_retry_carries_the_same_message_id(
    running: RunningGateway, connect: Any, telemetry: TelemetryReader
) -> None:
    """The same request sent twice is two messages with one id, so downstream stores it once."""
    gateway = await connect("gateway")
    raw = (FIXTURES / "seed003_resume_batch_request.json").read_bytes()
    assert (await gateway.request_raw(gateway.topic("resume/batch"), raw))["code"] == 200
    assert (await gateway.request_raw(gateway.topic("resume/batch"), raw))["code"] == 200
    first, second = await telemetry.take(2)
    assert first.message_id == second.message_id
    changed = raw.replace(b'"id":"123"', b'"id":"124"')
    assert (await gateway.request_raw(gateway.topic("resume/batch"), changed))["code"] == 200
    [third] = await telemetry.take(1)
    assert third.message_id != first.message_id


async def test_post_without_time_is_stamped_with_the_time_of_receipt(
    running: RunningGateway, connect: Any, telemetry: TelemetryReader
) -> None:
    """thing.measurepoint.post on the device's own topic; a missing time is the receipt time."""
    gateway = await connect("gateway")
    before = time.time_ns() // 1_000_000
    reply = await gateway.request_raw(
        gateway.topic("post"),
        (
            b'{"id": "7", "version": "1.0", "params": {"measurepoints": {"temp": 21.50}},'
            b' "method": "thing.measurepoint.post"}'
        ),
    )
    after = time.time_ns() // 1_000_000
    assert reply == {"id": "7", "code": 200, "data": {}}
    [message] = await telemetry.take(1)
    [point] = decode(message.body)["points"]
    assert before <= point["time"] <= after
    assert b'"temp":21.50' in message.body


async def test_every_error_code_is_answered_and_nothing_is_published(
    running: RunningGateway, connect: Any, telemetry: TelemetryReader
) -> None:
    """1251, 1008, 1220, 1260, 1206, 1204 and 1212, each for a request that deserves it."""
    gateway = await connect("gateway")
    topic = gateway.topic("resume/batch")
    seed = load_fixture("seed003_resume_batch_request.json")

    def variant(**changes: Any) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(json.dumps(seed))
        body.update(changes)
        return body

    async def code_of(body: dict[str, Any] | bytes, on: str = topic) -> tuple[int, str]:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        reply = await gateway.request_raw(on, payload)
        assert isinstance(reply.get("message"), str) and reply["message"]
        return reply["code"], reply["message"]

    assert (await code_of(b""))[0] == Code.PAYLOAD_EMPTY
    assert (await code_of(b"x" * (64 * 1024 + 1)))[0] == Code.TOO_LARGE
    assert (await code_of(b"{not json")) == (
        Code.DATA_FORMAT,
        "Measurepoint post data format error: not valid JSON: "
        "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
    )
    assert (await code_of(b"[1, 2]"))[0] == Code.PAYLOAD_FORMAT
    assert (await code_of(variant(allowOfflineSubDevice="yes")))[0] == Code.PAYLOAD_FORMAT
    code, message = await code_of(variant(method="thing.measurepoint.post"))
    assert code == Code.METHOD_MISMATCH and "thing.measurepoint.resume.batch" in message
    assert (await code_of(variant(params={"measurepoints": {}})))[0] == Code.DATA_FORMAT
    bad_shape = variant()
    bad_shape["params"][1]["measurepoints"] = [1, 2]
    assert (await code_of(bad_shape))[0] == Code.DATA_FORMAT
    bad_time = variant()
    bad_time["params"][0]["time"] = "123456"
    assert (await code_of(bad_time))[0] == Code.DATA_FORMAT

    strict = variant(skipInvalidMeasurepoints=False)
    strict["params"][2]["measurepoints"]["humidity"] = 3
    code, message = await code_of(strict)
    assert code == Code.MODEL_INVALID and "humidity" in message and "params[2]" in message
    wrong_type = variant(skipInvalidMeasurepoints=False)
    wrong_type["params"][0]["measurepoints"]["temp"] = "warm"
    assert (await code_of(wrong_type))[0] == Code.MODEL_INVALID
    struct_field = variant(skipInvalidMeasurepoints=False)
    struct_field["params"][0]["measurepoints"]["Power"] = {"value": 1, "volts": 9}
    assert (await code_of(struct_field))[0] == Code.MODEL_INVALID
    element = variant(skipInvalidMeasurepoints=False)
    element["params"][0]["measurepoints"]["branchCurr"] = ["1.02", 2.02]
    code, message = await code_of(element)
    assert code == Code.MODEL_INVALID and "branchCurr[1]" in message

    offline = variant(allowOfflineSubDevice=False)
    code, message = await code_of(offline)
    assert code == Code.NO_SUB_DEVICE_PERMISSION and "offline" in message
    foreign = variant()
    foreign["params"][0]["deviceKey"] = running.world.creds["device9"].device_key
    code, message = await code_of(foreign)
    assert code == Code.NO_SUB_DEVICE_PERMISSION and "not a sub-device" in message

    wrong_kind = await gateway.request_raw(gateway.topic("post"), json.dumps(seed).encode())
    assert wrong_kind["code"] == Code.METHOD_MISMATCH and wrong_kind["id"] == "123"
    assert await telemetry.count() == 0


async def test_skip_invalid_measurepoints_drops_only_the_invalid_points(
    running: RunningGateway, connect: Any, telemetry: TelemetryReader
) -> None:
    """skipInvalidMeasurepoints=true: the valid points are published, invalid ones dropped."""
    gateway = await connect("gateway")
    body = load_fixture("seed003_resume_batch_request.json")
    body["params"][0]["measurepoints"]["humidity"] = 3
    body["params"][1]["measurepoints"]["temp"] = "warm"
    reply = await gateway.request(gateway.topic("resume/batch"), body)
    assert reply["code"] == 200
    [message] = await telemetry.take(1)
    points = decode(message.body)["points"]
    assert "humidity" not in points[0]["measurepoints"]
    assert "temp" not in points[1]["measurepoints"]
    assert points[1]["measurepoints"]["Power"] == {"value": 2, "quality": 9}
    assert points[2]["measurepoints"]["temp"] == Decimal("1.02")


async def test_sub_device_login_makes_it_online_and_logout_offline(
    running: RunningGateway, connect: Any, telemetry: TelemetryReader
) -> None:
    """With allowOfflineSubDevice false, a sub-device's data needs its login; logout ends it.
    Both reach the registry's device status."""
    gateway = await connect("gateway")
    device1, device2 = running.world.creds["device1"], running.world.creds["device2"]
    body = load_fixture("seed003_resume_batch_request.json")
    body["allowOfflineSubDevice"] = False
    assert (await gateway.request(gateway.topic("resume/batch"), body))["code"] == 1212

    for sub in (device1, device2):
        reply = await gateway.login(sub)
        assert reply["code"] == 200, reply
        assert reply["data"]["productKey"] == sub.product_key
    assert (await gateway.request(gateway.topic("resume/batch"), body))["code"] == 200
    assert len(await telemetry.take(1)) == 1

    reply = await gateway.request(
        gateway.session_topic("logout"),
        {
            "id": "9",
            "params": {"productKey": device2.product_key, "deviceKey": device2.device_key},
            "method": "combine.logout",
        },
    )
    assert reply["code"] == 200
    assert (await gateway.request(gateway.topic("resume/batch"), body))["code"] == 1212
    await running.gateway.status.flush() if running.gateway.status else None
    reported = {(r["product_key"], r["device_key"], r["online"]) for r in running.source.reported}
    assert ("product1", "device1", True) in reported
    assert ("product2", "device2", False) in reported
    # the gateway reported only its sub-devices' points, and is online itself (issue 13)
    gateway_creds = running.world.creds["gateway"]
    assert (gateway_creds.product_key, gateway_creds.device_key, True) in reported


async def test_login_is_refused_with_a_bad_signature_or_through_another_gateway(
    running: RunningGateway, connect: Any
) -> None:
    """A wrong secret gets 1214; another gateway's sub-device gets 1212; batch login is partial."""
    gateway = await connect("gateway")
    device1 = running.world.creds["device1"]
    forged = type(device1)(device1.product_key, device1.device_key, "not-the-secret")
    assert (await gateway.login(forged))["code"] == Code.SIGN_INVALID
    assert (await gateway.login(running.world.creds["device9"]))["code"] == Code.NO_SUB_DEVICE_PERMISSION
    assert not running.cache.is_online("product1", "device1")
    assert (await gateway.login(device1, method="hmacsha256"))["code"] == 200

    from twinbill_ingest.domain.signing import sign

    subs = []
    for creds in (running.world.creds["device2"], running.world.creds["device9"]):
        signed = {
            "clientId": "gw",
            "deviceKey": creds.device_key,
            "productKey": creds.product_key,
            "timestamp": "1564988853275",
        }
        subs.append(
            {
                "productKey": creds.product_key,
                "deviceKey": creds.device_key,
                "sign": sign(signed, secret=creds.secret, method="sha256"),
            }
        )
    reply = await gateway.request(
        gateway.session_topic("login/batch"),
        {
            "id": "b1",
            "version": "1.1",
            "method": "combine.login.batch",
            "params": {"clientId": "gw", "timestamp": "1564988853275", "signMethod": "sha256", "subDevices": subs},
        },
    )
    assert reply["code"] == Code.PARTIAL_LOGIN
    assert [d["deviceKey"] for d in reply["data"]["loginedSubDevices"]] == ["device2"]
    assert [d["deviceKey"] for d in reply["data"]["failedSubDevices"]] == [running.world.creds["device9"].device_key]


async def test_health_and_metrics(running: RunningGateway, connect: Any, telemetry: TelemetryReader) -> None:
    """/healthz, /readyz (RabbitMQ, registry, MQTT) and the Prometheus metrics on the app's port."""
    gateway = await connect("gateway")
    raw = (FIXTURES / "seed003_resume_batch_request.json").read_bytes()
    assert (await gateway.request_raw(gateway.topic("resume/batch"), raw))["code"] == 200
    assert (await gateway.request_raw(gateway.topic("post"), b"{"))["code"] == 1206
    assert (await gateway.request_raw(gateway.topic("post"), b"[]"))["code"] == 1220
    assert (await gateway.login(running.world.creds["device1"]))["code"] == 200
    await telemetry.take(1)
    async with aiohttp.ClientSession() as http:
        base = running.server.make_url("")
        async with http.get(base / "healthz") as response:
            assert response.status == 200
        async with http.get(base / "readyz") as response:
            assert response.status == 200
            assert (await response.json())["checks"] == [
                "command_relay",
                "dead_letter_depth",
                "ingest_serve",
                "mqtt",
                "mqtt_gateway",
                "rabbitmq",
                "registry",
                "registry_listener",
                "status_reporter",
            ]
        async with http.get(base / "metrics") as response:
            text = await response.text()
    assert 'ingest_requests_total{code="200",kind="resume/batch"} 1.0' in text
    assert 'ingest_requests_total{code="1206",kind="post"} 1.0' in text
    assert 'ingest_requests_total{code="1220",kind="post"} 1.0' in text
    assert "ingest_points_accepted_total 9.0" in text
    assert "ingest_publish_confirm_seconds_count 1.0" in text
    assert 'twinbill_dead_letter_messages{queue="ingest.commands.dlq"} 0.0' in text
    assert "ingest_online_sub_devices 1.0" in text
