"""MQTT over TLS as deploy/compose/tls.yml runs it: certificates from deploy/mosquitto/make-certs.sh,
the broker configured with mosquitto.conf plus tls.conf (a private Mosquitto, as tests start it).
A device that trusts the CA connects on the TLS port with its own account and is held to its own
topics; a client that does not trust the CA, or has the wrong password, is refused."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
import yaml

from twinbill_devstack.broker import DevBroker

from .tools import DEPLOY, VENV_BIN, run

DEVICE, SECRET = "pkTLS/meter-1", "device-secret-1"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("certs")
    subprocess.run([str(DEPLOY / "mosquitto" / "make-certs.sh")], check=True, capture_output=True,
                   env={"CERTS_DIR": str(directory), "PATH": "/usr/bin:/bin"})
    return directory


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, certs: Path) -> Iterator[DevBroker]:
    running = DevBroker(tmp_path_factory.mktemp("mosquitto"), certs=certs).start()
    running.add_users({DEVICE: SECRET})
    try:
        yield running
    finally:
        running.stop()


def client(broker: DevBroker, context: ssl.SSLContext, password: str = SECRET) -> aiomqtt.Client:
    assert broker.tls_port is not None
    return aiomqtt.Client("localhost", broker.tls_port, username=DEVICE, password=password,
                          protocol=aiomqtt.ProtocolVersion.V5, tls_context=context, timeout=5)


def trusting(certs: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certs / "ca.crt"))


async def test_a_device_that_trusts_the_ca_reports_over_tls_on_its_own_topics(broker: DevBroker, certs: Path) -> None:
    await asyncio.sleep(0.3)  # the SIGHUP that loaded the device's account
    own, foreign = "/sys/pkTLS/meter-1/thing/measurepoint/post", "/sys/pkTLS/meter-2/thing/measurepoint/post"
    async with client(broker, trusting(certs)) as device:
        await device.subscribe([(own, 1), (foreign, 1)])
        await device.publish(foreign, b"{}", qos=1)  # the ACL drops it
        await device.publish(own, b'{"id": "1"}', qos=1)
        async with asyncio.timeout(5):
            message = await anext(aiter(device.messages))
    assert (message.topic.value, message.payload) == (own, b'{"id": "1"}')


async def test_an_untrusted_certificate_or_a_wrong_password_is_refused(broker: DevBroker, certs: Path) -> None:
    with pytest.raises(aiomqtt.MqttError):  # the system's CAs do not know the private CA
        async with client(broker, ssl.create_default_context()):
            pass
    with pytest.raises(aiomqtt.MqttError):
        async with client(broker, trusting(certs), password="wrong"):
            pass


def test_the_compose_overlay_is_valid_and_runs_both_configuration_files() -> None:
    overlay = DEPLOY / "compose" / "tls.yml"
    out = run(str(VENV_BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(overlay))
    assert "ok" in out
    mosquitto = yaml.safe_load(overlay.read_text())["services"]["mosquitto"]
    script = mosquitto["command"][-1]
    assert "cat /mosquitto/config/mosquitto.conf /mosquitto/config/tls.conf" in script
    assert mosquitto["ports"] == ["8883:8883"]
    assert "./deploy/mosquitto/certs:/mosquitto/certs:ro" in mosquitto["volumes"]
