"""E2E fixtures: the platform's five services as processes (what `make run` starts), each with its
own PostgreSQL schema or MongoDB database, the test's bus namespace, free ports and a private
Mosquitto; and a hook that keeps each test's phase reports so a fixture can print the services'
logs when the test failed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pymongo import AsyncMongoClient

from twinbill_devstack.broker import SERVICE_USER, DevBroker
from twinbill_devstack.ports import free_port

MQTT_HOST = "127.0.0.1"
ZONE = "Asia/Shanghai"
ADMIN_EMAIL, ADMIN_PASSWORD = "e2e-admin@twinbill.test", "e2e-admin-password"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Store the report of each phase on the item as `rep_setup` / `rep_call` / `rep_teardown`."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@dataclass
class Service:
    """One service process: module, port, environment, log file."""

    name: str
    port: int
    env: dict[str, str]
    log: Path
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Platform:
    """The running services, addressed by name."""

    broker: DevBroker
    services: dict[str, Service] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return self.services[name].url

    def logs(self) -> str:
        """The tail of every service's log, for a failure report."""
        parts = []
        for service in self.services.values():
            text = service.log.read_text(errors="replace") if service.log.exists() else "(no log)"
            parts.append(f"----- {service.name} ({service.log}) -----\n{text[-6000:]}")
        return "\n".join(parts)


def platform_env(
    *, pg_dsn: str, amqp_url: str, namespace: str, mongo_url: str, mongo_db: str, ports: dict[str, int],
    broker: DevBroker,
) -> dict[str, dict[str, str]]:
    """Each service's settings: own schema / Mongo db, the test's namespace, free ports."""
    tag = uuid.uuid4().hex[:8]
    twin_url = f"http://127.0.0.1:{ports['twin']}"
    common = {"AMQP_URL": amqp_url, "BUS_NAMESPACE": namespace, "HTTP_HOST": "127.0.0.1"}
    envs = {
        "gateway": {"PG_DSN": pg_dsn, "SCHEMA_NAME": f"e2e_identity_{tag}", "PG_POOL_MAX": "3",
                    "TWIN_URL": twin_url, "SCHEDULER_URL": f"http://127.0.0.1:{ports['scheduler']}",
                    "BILLING_URL": f"http://127.0.0.1:{ports['billing']}",
                    "ADMIN_EMAIL": ADMIN_EMAIL, "ADMIN_PASSWORD": ADMIN_PASSWORD},
        "twin": {"PG_DSN": pg_dsn, "SCHEMA_NAME": f"e2e_twin_{tag}", "PG_POOL_MAX": "4",
                 "DEFAULT_TIMEZONE": ZONE,
                 # who a campaign scope's users are: this test's gateway, not one on the default port
                 "GATEWAY_URL": f"http://127.0.0.1:{ports['gateway']}"},
        "scheduler": {"PG_DSN": pg_dsn, "SCHEMA_NAME": f"e2e_scheduler_{tag}", "PG_POOL_MAX": "3",
                      "TWIN_URL": twin_url, "DEFAULT_TIMEZONE": ZONE},
        "billing": {"MONGO_URL": mongo_url, "MONGO_DB": mongo_db, "TWIN_URL": twin_url},
        "ingest": {"TWIN_URL": twin_url, "MQTT_HOST": MQTT_HOST, "MQTT_PORT": str(broker.port),
                   "MQTT_USERNAME": SERVICE_USER, "MQTT_PASSWORD": broker.service_password,
                   "SHARE_GROUP": f"e2e{tag}", "MQTT_CLIENT_ID": f"e2e-ingest-{tag}", "STATUS_INTERVAL": "0.5",
                   "REGISTRY_RELOAD_DELAY": "0.2"},
    }
    envs = {name: {**common, **env, "HTTP_PORT": str(ports[name])} for name, env in envs.items()}
    return {name: {f"{name.upper()}_{key}": value for key, value in env.items()} for name, env in envs.items()}


async def stop_all(platform: Platform) -> None:
    """SIGTERM every process, SIGKILL what has not exited after 10 s."""
    running = [s.process for s in platform.services.values() if s.process and s.process.returncode is None]
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
    for process in running:
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


async def wait_ready(http: aiohttp.ClientSession, service: Service, *, within: float = 180) -> None:
    """Poll /readyz every 0.5 s until 200; fail if the process exits or the deadline passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last = "no answer"
    while loop.time() < deadline:
        assert service.process is not None
        if service.process.returncode is not None:
            raise AssertionError(f"{service.name} exited with {service.process.returncode}")
        try:
            async with http.get(f"{service.url}/readyz") as response:
                if response.status == 200:
                    return
                last = f"{response.status} {await response.text()}"
        except (aiohttp.ClientError, TimeoutError) as err:  # a loaded machine: a probe may time out
            last = repr(err)
        await asyncio.sleep(0.5)
    raise AssertionError(f"{service.name} not ready after {within} s: {last}")


@pytest.fixture
async def platform(
    pg_dsn: str, amqp_url: str, bus_namespace: str, mongo_url: str, mongo_db_name: str, tmp_path: Path,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Platform]:
    """The five services as processes, ready; stopped (and killed if need be) afterwards.

    Their logs go to files in the test's tmp_path, printed when the test (or the start) fails.
    """
    (tmp_path / "mosquitto").mkdir()
    broker = await asyncio.to_thread(DevBroker(tmp_path / "mosquitto").start)
    ports = {name: free_port() for name in ("gateway", "twin", "scheduler", "billing", "ingest")}
    envs = platform_env(pg_dsn=pg_dsn, amqp_url=amqp_url, namespace=bus_namespace, mongo_url=mongo_url,
                        mongo_db=mongo_db_name, ports=ports, broker=broker)
    platform = Platform(broker, {name: Service(name, ports[name], envs[name], tmp_path / f"{name}.log")
                                 for name in ports})
    try:
        for service in platform.services.values():
            with service.log.open("wb") as log:
                service.process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", f"twinbill_{service.name}",
                    env={**os.environ, **service.env}, stdout=log, stderr=log,
                )
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            await asyncio.gather(*(wait_ready(http, s) for s in platform.services.values()))
        yield platform
    except BaseException:
        print(platform.logs())
        raise
    finally:
        await stop_all(platform)
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(platform.logs())
        await asyncio.to_thread(broker.stop)
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
        with contextlib.suppress(Exception):
            await client.drop_database(mongo_db_name)
        await client.close()

