"""`make run`: the whole platform as local processes, with a live demo, in the foreground.

Starts the local stack (PostgreSQL, RabbitMQ, Mosquitto, the embedded MongoDB), then each service
as its own process, waits until each answers /readyz, seeds a demo project through the services'
own HTTP APIs, runs the meter simulator, and prints where to look. Ctrl-C stops everything it
started. A service whose package is not built yet is reported and skipped.

The scheduler starts last, after the registry and the tariffs are seeded: billing tasks kept in
PostgreSQL from an earlier run (or made by the seeding) can fire as soon as it is up, and a fire
before the demo tariffs exist bills nothing (every meter failed "no tariff"). The simulator's
periodic status goes to .stack/logs/simulator.log, so the console URL stays on the terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from twinbill_common.servicetokens import ServiceTokens
from twinbill_common.settings import load_settings
from twinbill_devstack.settings import DevstackSettings
from twinbill_devstack.stack import ensure_mongo, ensure_services


@dataclass
class ServiceProcess:
    """One service: its module, port, environment, and the process once started."""

    name: str
    module: str
    port: int
    env: dict[str, str]
    process: asyncio.subprocess.Process | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def available(self) -> bool:
        return importlib.util.find_spec(f"{self.module}.__main__") is not None


def services(mongo_url: str, settings: DevstackSettings) -> list[ServiceProcess]:
    """The platform's services with their local settings (see each service's README)."""
    twin_url = "http://127.0.0.1:8001"
    pg_dsn, amqp_url = settings.pg_dsn, settings.amqp_url
    return [
        ServiceProcess("gateway", "twinbill_gateway", 8000, {
            "GATEWAY_PG_DSN": pg_dsn, "GATEWAY_HTTP_PORT": "8000",
            "GATEWAY_METRICS_PORT": str(GATEWAY_METRICS_PORT)}),
        ServiceProcess("twin", "twinbill_twin", 8001, {
            "TWIN_PG_DSN": pg_dsn, "TWIN_AMQP_URL": amqp_url, "TWIN_HTTP_PORT": "8001",
            # the twin asks the gateway which users a campaign scope holds (event notifications)
            "TWIN_GATEWAY_URL": "http://127.0.0.1:8000", "TWIN_CHECKS_PERIOD": "hour"}),
        ServiceProcess("scheduler", "twinbill_scheduler", 8002, {
            "SCHEDULER_PG_DSN": pg_dsn, "SCHEDULER_AMQP_URL": amqp_url,
            "SCHEDULER_HTTP_PORT": "8002", "SCHEDULER_TWIN_URL": twin_url}),
        ServiceProcess("billing", "twinbill_billing", 8003, {
            "BILLING_MONGO_URL": mongo_url, "BILLING_AMQP_URL": amqp_url,
            "BILLING_HTTP_PORT": "8003", "BILLING_TWIN_URL": twin_url}),
        *ingest_processes(settings.ingest_processes, amqp_url=amqp_url, twin_url=twin_url),
    ]


def ingest_processes(count: int, *, amqp_url: str, twin_url: str) -> list[ServiceProcess]:
    """`count` ingest gateways in one share group (services/ingest/README.md): "ingest" on 8004,
    then "ingest-2" on 8104, "ingest-3" on 8204, ..."""
    processes = []
    for number in range(1, count + 1):
        port = 8004 + 100 * (number - 1)
        processes.append(ServiceProcess("ingest" if number == 1 else f"ingest-{number}", "twinbill_ingest", port, {
            "INGEST_AMQP_URL": amqp_url, "INGEST_HTTP_PORT": str(port), "INGEST_TWIN_URL": twin_url,
            "INGEST_MQTT_HOST": "127.0.0.1", "INGEST_MQTT_PORT": "1883"}))
    return processes


async def start(service: ServiceProcess, logs: Path) -> None:
    """Start one service process with its output going to .stack/logs/<name>.log."""
    log = (logs / f"{service.name}.log").open("ab")
    service.process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", service.module,
        env={**os.environ, **service.env}, stdout=log, stderr=log,
    )


async def wait_ready(session: aiohttp.ClientSession, service: ServiceProcess, *, logs: Path,
                     within: float = 180) -> None:
    """Poll /readyz until 200, or fail naming the service and pointing at its log (a busy
    machine can take a minute to import and migrate a service: three are allowed)."""
    deadline = asyncio.get_running_loop().time() + within
    last = "no answer"
    while asyncio.get_running_loop().time() < deadline:
        if service.process is not None and service.process.returncode is not None:
            raise RuntimeError(f"{service.name} exited with {service.process.returncode}; "
                               f"see {logs}/{service.name}.log")
        try:
            async with session.get(f"{service.url}/readyz") as response:
                if response.status == 200:
                    return
                last = await response.text()
        except aiohttp.ClientError as err:
            last = repr(err)
        await asyncio.sleep(0.5)
    raise RuntimeError(f"{service.name} not ready after {within}s ({last}); "
                       f"see {logs}/{service.name}.log")


async def call_demo(module: str, function: str, *args: Any, **kwargs: Any) -> Any:
    """Call a service's demo seeding function if it exists; None when it does not."""
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    seed: Callable[..., Awaitable[Any]] | None = getattr(mod, function, None)
    if seed is None:
        return None
    return await seed(*args, **kwargs)


async def main_async(settings: DevstackSettings) -> None:
    """Bring everything up, seed the demo, simulate, and wait for Ctrl-C."""
    problems = await asyncio.to_thread(ensure_services)
    if problems:
        raise SystemExit("stack: " + "; ".join(problems))
    state = settings.state_dir
    logs = state / "logs"
    mongo_url, mongo = await asyncio.to_thread(ensure_mongo, state_dir=state, url=settings.mongo_url)
    platform = services(mongo_url, settings)
    running = [s for s in platform if s.available()]
    for missing in (s for s in platform if not s.available()):
        print(f"run: {missing.name} is not built yet; skipped")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    tasks: list[asyncio.Task[Any]] = []
    first, last = start_order(running)
    try:
        await start_all(first, logs)
        demo = await seed_demo(state)
        await start_all(last, logs)
        if demo is not None:
            await seed_demo_tasks(demo)
            if any(s.name == "gateway" for s in running):
                await seed_demo_recipients(demo["project_id"])
            await resume_registers(demo, tokens=ServiceTokens(settings.service_key, issuer="devstack"))
            tasks.append(asyncio.create_task(simulate(demo, log_file=logs / "simulator.log")))
        print_where_to_look(running, demo, logs=logs)
        await stop.wait()
    finally:
        print("\nrun: stopping")
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for service in running:
            if service.process is not None and service.process.returncode is None:
                service.process.terminate()
        for service in running:
            if service.process is not None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(service.process.wait(), timeout=10)
                if service.process.returncode is None:
                    service.process.kill()
        if mongo is not None:  # the embedded MongoDB this run started
            mongo.terminate()
            await asyncio.to_thread(mongo.wait, 10)


# Started after the demo is seeded: what can act on the demo by itself (the scheduler's fires).
STARTED_AFTER_SEEDING = ("scheduler",)


def start_order(running: list[ServiceProcess]) -> tuple[list[ServiceProcess], list[ServiceProcess]]:
    """(started before seeding, started after): the scheduler waits for the demo's registry and
    tariffs, so no billing task can fire before them."""
    return ([s for s in running if s.name not in STARTED_AFTER_SEEDING],
            [s for s in running if s.name in STARTED_AFTER_SEEDING])


async def start_all(group: list[ServiceProcess], logs: Path) -> None:
    """Start the services and wait until each answers /readyz."""
    for service in group:
        await start(service, logs)
    async with aiohttp.ClientSession() as session:
        for service in group:
            await wait_ready(session, service, logs=logs)
            print(f"run: {service.name:<9} ready at {service.url}")


async def seed_demo(state_dir: Path) -> dict[str, Any] | None:
    """Seed the registry and the tariffs through the services' HTTP APIs (tasks: seed_demo_tasks,
    once the scheduler is up)."""
    demo: dict[str, Any] | None = await call_demo("twinbill_twin.demo", "seed_demo", "http://127.0.0.1:8001")
    if demo is None:
        print("run: no registry demo yet (twinbill_twin.demo.seed_demo)")
        return None
    await asyncio.to_thread((state_dir / "demo.json").write_text, json.dumps(demo, indent=2))
    project_id = demo["project_id"]
    await call_demo("twinbill_billing.demo", "seed_demo_tariffs", "http://127.0.0.1:8003",
                    project_id=project_id)
    # BEMServer's missing-data and outlier checks over the meters' registers, hourly here
    # (TWIN_CHECKS_PERIOD=hour), so a meter that stopped is named within the hour (issue 13)
    await call_demo("twinbill_twin.demo", "seed_demo_checks", "http://127.0.0.1:8001", project_id=project_id)
    return demo


ALARM_SCOPE, ALARM_GROUP = "Alarms", "demo alarm recipients"
CHECKS_SCOPE = "Meters"  # twinbill_twin.demo.seed_demo_checks


async def seed_demo_recipients(project_id: int, *, gateway_url: str = "http://127.0.0.1:8000",
                               email: str | None = None, password: str | None = None) -> None:
    """The console's administrator hears of the demo's alarms: a user group holding them, linked
    to the project (a BEMServer campaign) and to its "Alarms" campaign scope, where the alarm rules
    record their events; notifications reach only users whose group is linked to an event's scope.
    Through the gateway's BEMServer API, idempotently."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        async with http.post(f"{gateway_url}/api/v1/auth/token",
                             json={"email": email or DEMO_EMAIL, "password": password or DEMO_PASSWORD}) as response:
            tokens = await response.json()
        if tokens.get("status") != "success":
            raise RuntimeError(f"demo: the administrator could not sign in at {gateway_url}: {tokens}")
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}

        async def ensure(path: str, body: dict[str, Any], **match: Any) -> dict[str, Any]:
            async with http.get(f"{gateway_url}/bemserver/{path}/", params=match, headers=headers) as response:
                response.raise_for_status()
                found: list[dict[str, Any]] = await response.json()
            if found:
                return found[0]
            async with http.post(f"{gateway_url}/bemserver/{path}/", json=body, headers=headers) as response:
                if response.status != 201:
                    raise RuntimeError(f"demo: POST /bemserver/{path}/ answered {response.status}: "
                                       f"{await response.text()}")
                created: dict[str, Any] = await response.json()
                return created

        async with http.get(f"{gateway_url}/bemserver/users/", params={"email": email or DEMO_EMAIL},
                            headers=headers) as response:
            response.raise_for_status()
            user_id = (await response.json())[0]["id"]
        # the same scope the alarm rules create on their first event (twinbill_twin.store.alarms)
        scope = await ensure("campaign_scopes", {"name": ALARM_SCOPE, "campaign_id": project_id,
                                                 "description": "events raised by twinbill's alarm rules"},
                             campaign_id=project_id, name=ALARM_SCOPE)
        group = await ensure("user_groups", {"name": ALARM_GROUP}, name=ALARM_GROUP)
        link = {"user_group_id": group["id"]}
        await ensure("users_by_user_groups", {"user_id": user_id, **link}, user_id=user_id, **link)
        await ensure("user_groups_by_campaigns", {"campaign_id": project_id, **link}, campaign_id=project_id, **link)
        await ensure("user_groups_by_campaign_scopes", {"campaign_scope_id": scope["id"], **link},
                     campaign_scope_id=scope["id"], **link)
        # and of BEMServer's missing-data and outlier checks, when the demo has them (seed_demo_checks)
        async with http.get(f"{gateway_url}/bemserver/campaign_scopes/", headers=headers,
                            params={"campaign_id": project_id, "name": CHECKS_SCOPE}) as response:
            response.raise_for_status()
            for checked in await response.json():
                await ensure("user_groups_by_campaign_scopes", {"campaign_scope_id": checked["id"], **link},
                             campaign_scope_id=checked["id"], **link)


async def seed_demo_tasks(demo: dict[str, Any]) -> None:
    """The demo's billing tasks, through the scheduler's API (after the registry and tariffs)."""
    await call_demo("twinbill_scheduler.demo", "seed_demo_tasks", "http://127.0.0.1:8002",
                    project_id=demo["project_id"])


async def resume_registers(demo: dict[str, Any], *, tokens: ServiceTokens,
                           twin_url: str = "http://127.0.0.1:8001") -> None:
    """Start each simulated meter from its last reading in the twin, so registers never go back
    when the demo is restarted on the same database."""
    async with aiohttp.ClientSession(middlewares=(tokens.client_middleware({twin_url: "twin"}),)) as session:
        async with session.get(f"{twin_url}/internal/v1/devices",
                               params={"project_id": demo["project_id"], "limit": 5000}) as response:
            response.raise_for_status()
            ids = {d["device_key"]: d["id"] for d in (await response.json())["devices"]}
        now_ms = int(time.time() * 1000)
        async with session.post(f"{twin_url}/internal/v1/readings/last",
                                json={"device_ids": list(ids.values()), "at": now_ms}) as response:
            response.raise_for_status()
            last = {r["device_id"]: r["value"] for r in (await response.json())["readings"]}
    for gateway in demo["gateways"]:
        for sub in gateway["sub_devices"]:
            value = last.get(ids.get(sub["device_key"], -1))
            if value is not None:
                sub["start_register"] = value


def simulation(demo: dict[str, Any]) -> dict[str, Any]:
    """The simulator's config for the demo: its meters also report the `reading` struct
    {value, quality} that their thing model has (seed 002's attribute examples read it)."""
    from twinbill_twin.demo import ELECTRICITY, WATER

    return {**demo, "gateways": [
        {**gateway, "sub_devices": [
            {**sub, "reading_point": "reading"} if sub["product_key"] in (WATER, ELECTRICITY) else sub
            for sub in gateway["sub_devices"]]}
        for gateway in demo["gateways"]]}


async def simulate(demo: dict[str, Any], *, log_file: Path) -> None:
    """Run the meter simulator against the local Mosquitto, if it is built; its status lines go
    to `log_file`, not the terminal."""
    try:
        from twinbill_simulator import run_simulator
    except ImportError:
        print("run: simulator not built yet (twinbill_simulator.run_simulator)")
        return
    with log_file.open("a", encoding="utf-8", buffering=1) as out:
        def log(line: str) -> None:
            out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")
        # The demo's tasks bill every two minutes: meters consume a day's worth in that time (x720).
        await run_simulator(simulation(demo), host="127.0.0.1", port=1883, rate=2.0, duration=None,
                            consumption_scale=720.0, log=log)


CONSOLE_URL = "http://127.0.0.1:8000/"
GATEWAY_METRICS_PORT = 8009  # the gateway serves /metrics only here, not on the port clients reach
DEMO_EMAIL, DEMO_PASSWORD = "admin@twinbill.local", "twinbill-admin"  # the gateway's default administrator


def metrics_url(service: ServiceProcess) -> str:
    """Where a service's /metrics answers: the gateway's on a port of its own (never the port
    clients reach), every other service's on its HTTP port."""
    if service.name == "gateway":
        return f"http://127.0.0.1:{GATEWAY_METRICS_PORT}/metrics"
    return f"{service.url}/metrics"


def where_to_look(running: list[ServiceProcess], demo: dict[str, Any] | None, *, logs: Path) -> list[str]:
    """What a new user should open, the web console and its sign-in first."""
    names = {s.name for s in running}
    lines = ["", "twinbill is running."]
    if "gateway" in names:
        lines += ["", f"  web console  {CONSOLE_URL}",
                  f"  sign in as   {DEMO_EMAIL} / {DEMO_PASSWORD}", ""]
    lines.append("Also:")
    if "gateway" in names:
        lines += ["  gateway    http://127.0.0.1:8000  (POST /api/v1/auth/token with"
                  f' {{"email": "{DEMO_EMAIL}", "password": "{DEMO_PASSWORD}"}})',
                  "  API docs   http://127.0.0.1:8000/docs  (the merged OpenAPI: /openapi.json)"]
    if "twin" in names:
        lines += ["  twins      http://127.0.0.1:8001/dt/open/v1/instances?page=1&offset=10",
                  "  registry   http://127.0.0.1:8001/api/v1/devices/",
                  "  one twin   http://127.0.0.1:8001/dt/open/v1/instance?ids=1",
                  "  readings   http://127.0.0.1:8001/dt/open/v1/instance/attribute/5?start=30m-ago&downsample=1m-last"]
    if "scheduler" in names and demo is not None:
        lines.append(f"  tasks      http://127.0.0.1:8002/api/v1/scheduler/tasks/"
                     f"?project_id={demo['project_id']}&device_type=0")
    if "billing" in names and demo is not None:
        lines.append(f"  bills      http://127.0.0.1:8003/api/v1/scheduler/history/"
                     f"?project_id={demo['project_id']}&device_type=0")
    lines += [f"  metrics    {metrics_url(s)}   ({s.name})" for s in running]
    lines += [f"  logs       {logs}/  (the simulator's status: simulator.log)",
              "Ctrl-C stops everything started here.", ""]
    return lines


def print_where_to_look(running: list[ServiceProcess], demo: dict[str, Any] | None, *,
                        logs: Path) -> None:
    """Tell a new user where the data shows up."""
    print("\n".join(where_to_look(running, demo, logs=logs)), flush=True)


def main() -> None:
    """Entry point of `python -m twinbill_devstack.run`."""
    settings = load_settings(DevstackSettings)
    (settings.state_dir / "logs").mkdir(parents=True, exist_ok=True)
    asyncio.run(main_async(settings))


if __name__ == "__main__":
    main()
