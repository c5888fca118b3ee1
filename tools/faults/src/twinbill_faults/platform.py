"""The five services as processes against the campaign's instances, and a readiness monitor."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from twinbill_common.mongo import free_port

# Services that hold a RabbitMQ connection (the gateway talks HTTP and PostgreSQL only).
BUS_SERVICES = ("twin", "ingest", "scheduler", "billing")
ORDER = ("twin", "gateway", "scheduler", "billing", "ingest")
MODULES = {name: f"twinbill_{name}" for name in ORDER}
PREFIX = {"twin": "TWIN_", "gateway": "GATEWAY_", "scheduler": "SCHEDULER_", "billing": "BILLING_",
          "ingest": "INGEST_"}


@dataclass
class Service:
    """One service process: its port, environment and log."""

    name: str
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        handle = self.log.open("ab")
        env = {**os.environ, **self.env, f"{PREFIX[self.name]}HTTP_PORT": str(self.port)}
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", MODULES[self.name], env=env, stdout=handle, stderr=handle,
            start_new_session=True)
        handle.close()
        self.starts += 1

    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def kill(self) -> None:
        """kill -9."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def ready(session: aiohttp.ClientSession, service: Service) -> tuple[bool, str]:
    """(ready?, why not) from the service's /readyz."""
    try:
        async with session.get(f"{service.url}/readyz", timeout=aiohttp.ClientTimeout(total=3)) as response:
            if response.status == 200:
                return True, ""
            return False, f"{response.status} {(await response.text())[:300]}"
    except (aiohttp.ClientError, TimeoutError, OSError) as err:
        return False, f"no answer ({type(err).__name__})"


async def wait_ready(session: aiohttp.ClientSession, services: list[Service], *, within: float) -> None:
    """Wait until every service answers /readyz 200, or fail naming the ones that do not."""
    deadline = time.monotonic() + within
    pending = {s.name: "not asked yet" for s in services}
    while pending and time.monotonic() < deadline:
        for service in services:
            if service.name in pending:
                if service.process is not None and service.process.returncode is not None:
                    raise RuntimeError(f"{service.name} exited with {service.process.returncode}; see {service.log}")
                ok, why = await ready(session, service)
                if ok:
                    pending.pop(service.name)
                else:
                    pending[service.name] = why
        if pending:
            await asyncio.sleep(0.3)
    if pending:
        raise RuntimeError(f"not ready after {within}s: {pending}")


@dataclass
class ReadinessLog:
    """Every /readyz answer of every service: (monotonic time, ready?)."""

    samples: dict[str, list[tuple[float, bool]]] = field(default_factory=dict)
    # Why each not-ready answer said so (only those: a long run stays small).
    reasons: dict[str, list[tuple[float, str]]] = field(default_factory=dict)

    def add(self, name: str, at: float, ok: bool, why: str = "") -> None:
        self.samples.setdefault(name, []).append((at, ok))
        if not ok:
            self.reasons.setdefault(name, []).append((at, why))

    def first_unready(self, name: str, start: float, end: float) -> tuple[float, str] | None:
        """The first "not ready" answer in [start, end]: (monotonic time, why)."""
        return next(((at, why) for at, why in self.reasons.get(name, []) if start <= at <= end), None)

    def ready_again(self, name: str, since: float) -> float | None:
        """The first ready answer at or after `since` (monotonic), None if none yet."""
        return next((at for at, ok in self.samples.get(name, []) if at >= since and ok), None)

    def unready_between(self, name: str, start: float, end: float) -> bool:
        """Whether the service said "not ready" (or did not answer) at least once in [start, end]."""
        return any(start <= at <= end and not ok for at, ok in self.samples.get(name, []))



async def monitor_readiness(services: list[Service], log: ReadinessLog, stop: asyncio.Event,
                            *, every: float = 0.5) -> None:
    """Poll every service's /readyz until stopped."""
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            answers = await asyncio.gather(*(ready(session, s) for s in services))
            now = time.monotonic()
            for service, (ok, why) in zip(services, answers, strict=True):
                log.add(service.name, now, ok, why)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
