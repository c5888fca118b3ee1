"""The campaign's whole private stack: instances, proxies, services, load, and their teardown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from twinbill_devstack.broker import DevBroker
from twinbill_faults.infra import Mongo, Postgres, RabbitCluster, SmallDisk
from twinbill_faults.load import AckLedger, QueryStats, observe, query, seed
from twinbill_faults.platform import BUS_SERVICES, ORDER, ReadinessLog, Service, monitor_readiness, wait_ready
from twinbill_faults.proxy import Proxy


@dataclass(frozen=True)
class Pace:
    """How long the campaign waits before a fault and how long a fault lasts (seconds; a range
    is drawn from at random). `stack.options.pace`: the full campaign's by default; twinbill_faults.faults.QUICK
    in the short one, where each fault is still real but briefer."""

    moment: tuple[float, float] = (2.0, 12.0)  # load flowing, before the fault
    rabbit_down: tuple[float, float] = (5.0, 15.0)
    postgres_down: tuple[float, float] = (3.0, 8.0)
    mongo_down: tuple[float, float] = (3.0, 8.0)
    mosquitto_down: tuple[float, float] = (3.0, 10.0)
    killed_for: tuple[float, float] = (1.0, 3.0)
    disk_full_for: float = 20.0
    partition_for: float = 30.0


@dataclass
class Options:
    """How big the campaign is."""

    workdir: Path
    gateways: int = 4
    meters: int = 6
    rate: float = 200.0
    start_load: bool = True  # False: the caller starts the simulator (start_simulator) when it wants
    batch: int = 20
    disk_mb: int = 512
    keep: bool = False
    log: Any = print
    pace: Pace = field(default_factory=Pace)
    reply_timeout: float = 30.0  # the simulator's wait for a reply before it sends a request again


@dataclass
class Stack:
    """Everything the campaign started, so that `stop()` can end exactly that."""

    options: Options
    pg: Postgres
    rabbit: RabbitCluster
    mongo: Mongo
    broker: DevBroker
    disk: SmallDisk
    proxies: dict[str, Proxy] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    ledger: AckLedger = field(default_factory=AckLedger)
    readiness: ReadinessLog = field(default_factory=ReadinessLog)
    queries: QueryStats = field(default_factory=QueryStats)
    seeded: dict[str, Any] = field(default_factory=dict)
    simulator: asyncio.subprocess.Process | None = None
    held_down: set[str] = field(default_factory=set)
    supervisor_restarts: list[str] = field(default_factory=list)
    simulator_restarts: int = 0
    _simulator_started: float = 0.0
    stop_load: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    started_wall: float = field(default_factory=time.time)
    pg_root: Path | None = None

    @classmethod
    def create(cls, options: Options) -> Stack:
        work = options.workdir
        tag = os.urandom(3).hex()
        # PostgreSQL runs as its own user, who must reach its directories: they get a temporary
        # directory of their own (a pytest tmp_path is private to root).
        pg_root = Path(tempfile.mkdtemp(prefix="twinbill-faults-pg-"))
        return cls(options=options, pg=Postgres(pg_root / "postgres"),
                   rabbit=RabbitCluster(work / "rabbit", tag=tag), mongo=Mongo(work / "mongo"),
                   broker=DevBroker(_mkdir(work / "mosquitto"), auth=False),
                   disk=SmallDisk(pg_root / "tsdisk", size_mb=options.disk_mb), pg_root=pg_root)

    @property
    def urls(self) -> dict[str, str]:
        return {name: service.url for name, service in self.services.items()}

    def twin_dsn(self) -> str:
        return self.pg.dsn("twin")

    def scheduler_dsn(self) -> str:
        return self.pg.dsn("twinbill")

    async def start(self) -> None:
        """Instances, then services, then seed and load."""
        log = self.options.log
        started = time.monotonic()
        (self.options.workdir / "logs").mkdir(parents=True, exist_ok=True)
        # All four at once (the RabbitMQ cluster's boot is the longest); every one is awaited
        # before an error is raised, so that stop() finds each in a known state.
        took: dict[str, float] = {}

        def timed(name: str, step: Callable[[], object]) -> Callable[[], None]:
            def run() -> None:
                began = time.monotonic()
                step()
                took[name] = time.monotonic() - began
            return run

        done = await asyncio.gather(*(asyncio.to_thread(timed(name, step)) for name, step in (
            ("rabbitmq", self.rabbit.start), ("postgres", self._start_postgres), ("nx-27017", self.mongo.start),
            ("mosquitto", self.broker.start))), return_exceptions=True)
        for outcome in done:
            if isinstance(outcome, BaseException):
                raise outcome
        nodes = ",".join(str(n.amqp_port) for n in self.rabbit.nodes)
        log(f"stack: postgres :{self.pg.port}, rabbitmq 3 nodes :{nodes}"
            f", mosquitto :{self.broker.port}, nx-27017 :{self.mongo.port}, time-series disk "
            f"{self.disk.size_mb} MB tmpfs ({time.monotonic() - started:.0f}s: "
            f"{', '.join(f'{name} {seconds:.0f}s' for name, seconds in took.items())})")
        upstreams = [node.amqp_port for node in self.rabbit.nodes]
        for name in BUS_SERVICES:
            self.proxies[name] = Proxy(name, upstreams)
            await self.proxies[name].start()
        self._make_services()
        # All five at once (their start-up is mostly imports): the ingest gateway loads the
        # registry from the twin when it answers and is ready only then, so it already listens
        # for the registry's events when the project is seeded below.
        for name in ORDER:
            await self.services[name].start()
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, [self.services[name] for name in ORDER], within=120)
        tag = f"f{os.urandom(2).hex()}"
        self.seeded = await seed(twin_url=self.services["twin"].url, billing_url=self.services["billing"].url,
                                 scheduler_url=self.services["scheduler"].url, gateways=self.options.gateways,
                                 meters=self.options.meters, tag=tag)
        self.tasks.append(asyncio.create_task(observe(self.ledger, port=self.broker.port, stop=self.stop_load)))
        self.tasks.append(asyncio.create_task(monitor_readiness(list(self.services.values()), self.readiness,
                                                                self.stop_load)))
        self.tasks.append(asyncio.create_task(self._supervise()))
        self.tasks.append(asyncio.create_task(query(self.urls, project_id=self.seeded["project_id"],
                                                    stats=self.queries, stop=self.stop_load)))
        await asyncio.sleep(0.5)  # the observer subscribes before the first request
        if self.options.start_load:
            await self.start_simulator()
        log(f"stack: services ready, {self.options.gateways} gateways x {self.options.meters} meters reporting "
            f"{self.options.rate if self.options.start_load else 0:.0f} points/s, billing every minute "
            f"({time.monotonic() - started:.0f}s)")

    def _start_postgres(self) -> None:
        if self.pg_root is not None:
            self.pg.make_tablespace_dir(self.pg_root)  # owned by postgres
        self.pg.init()
        self.pg.start()
        self.disk.mount()
        self.pg.make_tablespace_dir(self.disk.path / "pg")
        asyncio.run(self._create_databases())

    async def _create_databases(self) -> None:
        admin = await asyncpg.connect(self.pg.dsn("postgres"))
        try:
            await admin.execute(f"CREATE TABLESPACE tsdisk LOCATION '{self.disk.path / 'pg'}'")
            # The twin's database (registry and time series) lives on the small disk; the scheduler
            # and the API gateway share another on the data directory's disk.
            await admin.execute("CREATE DATABASE twin TABLESPACE tsdisk")
            await admin.execute("CREATE DATABASE twinbill")
        finally:
            await admin.close()

    def _make_services(self) -> None:
        logs = self.options.workdir / "logs"
        ports = {name: Service(name, {}, logs / f"{name}.log") for name in ORDER}
        twin_url = ports["twin"].url

        def amqp(name: str) -> str:
            return f"amqp://guest:guest@127.0.0.1:{self.proxies[name].port}/"

        # The twin's notifier asks the API gateway who an event's recipients are: this stack's
        # gateway. Left at its default (127.0.0.1:8000) it asked whatever listened there on the
        # machine, or, refused, postponed every event and retried (1,482 warnings in a 9-minute
        # soak, each failure cyclic garbage: docs/architecture.md, "Fault campaign").
        ports["twin"].env = {"TWIN_PG_DSN": self.twin_dsn(), "TWIN_AMQP_URL": amqp("twin"),
                             "TWIN_GATEWAY_URL": ports["gateway"].url}
        ports["gateway"].env = {"GATEWAY_PG_DSN": self.scheduler_dsn(), "GATEWAY_TWIN_URL": twin_url,
                                "GATEWAY_SCHEDULER_URL": ports["scheduler"].url,
                                "GATEWAY_BILLING_URL": ports["billing"].url}
        ports["scheduler"].env = {"SCHEDULER_PG_DSN": self.scheduler_dsn(), "SCHEDULER_AMQP_URL": amqp("scheduler"),
                                  "SCHEDULER_TWIN_URL": twin_url}
        ports["billing"].env = {"BILLING_MONGO_URL": self.mongo.url, "BILLING_AMQP_URL": amqp("billing"),
                                "BILLING_TWIN_URL": twin_url}
        ports["ingest"].env = {"INGEST_AMQP_URL": amqp("ingest"), "INGEST_TWIN_URL": twin_url,
                               "INGEST_MQTT_HOST": "127.0.0.1", "INGEST_MQTT_PORT": str(self.broker.port)}
        self.services = ports

    def _device_list(self) -> Path:
        # A restarted device resumes from the highest register it sent, as a real meter's register
        # persists (a lower reading later in time would be a register going backwards).
        gateways = [{**gateway, "sub_devices": [
            {**sub, **({"start_register": str(self.ledger.highest[sub["device_key"]])}
                       if sub["device_key"] in self.ledger.highest else {})}
            for sub in gateway["sub_devices"]]} for gateway in self.seeded["gateways"]]
        config = self.options.workdir / "devices.json"
        config.write_text(json.dumps({"gateways": gateways}))
        return config

    async def start_simulator(self) -> None:
        """The simulator at `options.rate` points/s, in a process of its own, until the stack stops."""
        config = self._device_list()
        self._simulator_started = time.monotonic()
        handle = (self.options.workdir / "logs" / "simulator.log").open("ab")
        self.simulator = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "twinbill_simulator", "--config", str(config), "--port", str(self.broker.port),
            "--rate", str(self.options.rate), "--batch", str(self.options.batch), "--offline-every", "0",
            "--reply-timeout", str(self.options.reply_timeout), stdout=handle, stderr=handle, start_new_session=True)
        handle.close()

    async def _supervise(self) -> None:
        """An orchestrator's restart policy: a service process that exits by itself is started
        again (counted: a liveness restart is no manual step, but the report shows it)."""
        while not self.stop_load.is_set():
            for name, service in self.services.items():
                if name not in self.held_down and service.process is not None and not service.running():
                    self.supervisor_restarts.append(name)
                    self.options.log(f"  supervisor: {name} exited ({service.process.returncode}); starting it again")
                    await service.start()
            if (self.simulator is not None and self.simulator.returncode is not None and not self.stop_load.is_set()
                    and time.monotonic() - self._simulator_started > 3.0):
                # A device whose firmware gives up is rebooted: the campaign starts the simulator
                # again (the line says so), resuming each meter's register.
                self.simulator_restarts += 1
                self.options.log(f"  devices: the simulator exited ({self.simulator.returncode}); starting it again")
                await self.start_simulator()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_load.wait(), 0.5)

    async def probe_capacity(self, *, seconds: float, window: int = 16) -> float:
        """Points per second acknowledged with 200 by a simulator sending as fast as replies allow."""
        config = self._device_list()
        probe = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "twinbill_simulator", "--config", str(config), "--port", str(self.broker.port),
            "--rate", "0", "--batch", "100", "--window", str(window), "--offline-every", "0",
            "--duration", str(seconds), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True)
        output, _ = await probe.communicate()
        counts = re.findall(r"acked\(200\)=(\d+)", output.decode(errors="replace"))
        if not counts:
            raise RuntimeError(f"the capacity probe printed no count: {output.decode(errors='replace')[-2000:]}")
        return int(counts[-1]) / seconds

    def simulator_acked(self) -> int | None:
        """The simulator's own count of points acknowledged with 200 (its last summary line)."""
        text = (self.options.workdir / "logs" / "simulator.log").read_text(errors="replace")
        counts = [int(n) for n in re.findall(r"acked\(200\)=(\d+)", text)]
        if not counts:
            return None
        # Each (re)start counts from zero: add the last count of every run.
        return sum(count for count, following in zip(counts, [*counts[1:], -1], strict=True) if following < count)

    async def stop_simulator(self, *, grace: float = 10.0) -> None:
        if self.simulator is not None and self.simulator.returncode is None:
            self.simulator.terminate()  # it finishes and prints its last summary
            try:
                await asyncio.wait_for(self.simulator.wait(), grace)
            except TimeoutError:
                self.simulator.kill()
                await self.simulator.wait()

    async def stop(self) -> None:
        """End everything started here, whatever state it is in. A step that takes more than 2 s
        says so (the short campaign's teardown is part of `make test`'s time)."""
        self.stop_load.set()
        stopping = time.monotonic()

        async def timed(name: str, step: Awaitable[object]) -> None:
            began = time.monotonic()
            with contextlib.suppress(Exception):
                await step
            if time.monotonic() - began > 2:
                self.options.log(f"teardown: {name} took {time.monotonic() - began:.0f}s")

        async def end_tasks() -> None:
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

        async def end_proxies() -> None:
            for proxy in self.proxies.values():
                with contextlib.suppress(Exception):
                    await proxy.stop()

        # Nothing is checked after this: the simulator gets a moment for its last summary, no more.
        await timed("the simulator", self.stop_simulator(grace=3.0))
        await timed("the campaign's own tasks", end_tasks())
        await timed("the services", asyncio.gather(*(s.stop() for s in self.services.values()),
                                                   return_exceptions=True))
        await timed("the proxies", end_proxies())

        async def end(name: str, step: Callable[[], None]) -> None:
            began = time.monotonic()
            try:
                await asyncio.to_thread(step)
            except Exception as err:  # noqa: BLE001  # teardown goes on; every step is tried
                self.options.log(f"teardown: {name}: {err!r}")
            if time.monotonic() - began > 2:
                self.options.log(f"teardown: {name} took {time.monotonic() - began:.0f}s")

        # The instances are independent of each other: stopped at once.
        await asyncio.gather(end("mosquitto", self.broker.stop), end("nx-27017", self.mongo.stop),
                             end("rabbitmq", self.rabbit.stop), end("postgres", lambda: self.pg.stop("immediate")))
        await end("time-series disk", self.disk.unmount)
        if self.pg_root is not None:
            with contextlib.suppress(OSError):  # the server log is worth keeping with the others
                shutil.copy(self.pg_root / "postgres" / "postgres.log", self.options.workdir / "logs")
            shutil.rmtree(self.pg_root, ignore_errors=True)
        if not self.options.keep:
            shutil.rmtree(self.options.workdir, ignore_errors=True)
        self.options.log(f"teardown: {time.monotonic() - stopping:.0f}s")


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
