"""Fixtures on the real services: a fresh PostgreSQL database, a bus namespace per test,
an embedded MongoDB server per session (or TWINBILL_TEST_MONGO_URL), Mosquitto on 1883."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from twinbill_common.mongo import free_port, start_embedded_mongo
from twinbill_devstack.namespaces import delete_namespace
from twinbill_devstack.rabbitmq import PrivateRabbitMQ
from twinbill_devstack.stack import ensure_services, sweep_test_namespaces

AMQP_URL = os.environ.get("TWINBILL_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PG_ADMIN = os.environ.get("TWINBILL_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
MQTT_HOST = "127.0.0.1"
# Every bus namespace of this session starts with t<SESSION_TAG>, so the session can sweep its own.
SESSION_TAG = uuid.uuid4().hex[:6]
MQTT_PORT = 1883


@pytest.fixture(scope="session")
def stack() -> None:
    """PostgreSQL, RabbitMQ and Mosquitto answer (started if installed but stopped)."""
    problems = ensure_services()
    if problems:
        pytest.fail("local services unavailable: " + "; ".join(problems))


@pytest.fixture(scope="session")
async def pg_dsn(stack: None) -> AsyncIterator[str]:
    """A PostgreSQL database of this test session's own, dropped at the end."""
    name = f"twinbill_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest.fixture(scope="session")
def amqp_url(stack: None) -> str:
    """RabbitMQ on this machine."""
    return AMQP_URL


@pytest.fixture
async def bus_namespace(amqp_url: str) -> AsyncIterator[str]:
    """A namespace for exchange and queue names that no other test uses, deleted afterwards."""
    namespace = f"t{SESSION_TAG}{uuid.uuid4().hex[:6]}."
    yield namespace
    await delete_namespace(amqp_url, namespace)


@pytest.fixture(scope="session", autouse=True)
def sweep_session_namespaces() -> Iterator[None]:
    """At the end, delete whatever this session's namespaces still hold (probe queues, say)."""
    yield
    try:
        sweep_test_namespaces(url=AMQP_URL, pattern=re.compile(rf"^t{SESSION_TAG}[0-9a-f]*\."))
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as err:  # a unit-only run may have no broker
        warnings.warn(f"could not sweep this session's bus namespaces: {err}", stacklevel=1)


@pytest.fixture
def private_rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRabbitMQ]:
    """A RabbitMQ node of this test's own (free ports, data in a temporary directory) that the
    test may stop, kill and restart; the shared broker on 5672 is never touched."""
    node = PrivateRabbitMQ(tmp_path_factory.mktemp("rabbitmq")).start()
    yield node
    node.kill()


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A MongoDB for the session: TWINBILL_TEST_MONGO_URL if set, else a fresh nx-27017."""
    if url := os.environ.get("TWINBILL_TEST_MONGO_URL"):
        yield url
        return
    state: Path = tmp_path_factory.mktemp("mongo")
    port = free_port()
    process: subprocess.Popen[bytes] = start_embedded_mongo(
        data_dir=state / "data", port=port, log_file=state / "mongo.log"
    )
    yield f"mongodb://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def mongo_db_name() -> str:
    """A MongoDB database name no other test uses."""
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def mqtt_addr(stack: None) -> tuple[str, int]:
    """Mosquitto on this machine."""
    return MQTT_HOST, MQTT_PORT
