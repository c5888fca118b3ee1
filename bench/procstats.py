"""What the benches read of their processes (Linux /proc): CPU seconds, RSS, and a sampler that
records each process's RSS while a bench runs, so a bench can show that none grows with time;
and the wait for a service process the bench started to answer /readyz."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import aiohttp
    import asyncpg

PG_ADMIN = os.environ.get("TWINBILL_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


async def bench_database(tag: str) -> tuple[str, str]:
    """(database, dsn): the database an earlier BENCH_KEEP_DB run kept, named by BENCH_REUSE_DB,
    or a new one for this run."""
    import asyncpg  # only the benches with a database need it

    reuse = os.environ.get("BENCH_REUSE_DB", "")
    database = reuse or f"twinbill_bench_{tag}"
    if not reuse:
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'CREATE DATABASE "{database}"')
        await admin.close()
    return database, PG_ADMIN.rsplit("/", 1)[0] + f"/{database}"


async def wait_ready(port: int, process: asyncio.subprocess.Process, name: str = "twin service",
                     *, attempts: int = 600) -> None:
    """Poll http://127.0.0.1:<port>/readyz every 0.1 s until it answers 200; SystemExit naming
    the service when its process exits first or it never does."""
    import aiohttp

    async with aiohttp.ClientSession() as http:
        for _ in range(attempts):
            if process.returncode is not None:
                raise SystemExit(f"{name} exited with {process.returncode}")
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"{name} did not become ready")


async def samples_written(http: aiohttp.ClientSession, port: int) -> int:
    """A twin service's `twin_samples_written_total`: samples its consumer committed so far."""
    async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith("twin_samples_written_total "):
                return int(float(line.split()[1]))
    return 0


async def wait_sealed(conn: asyncpg.Connection, *, within: float = 180.0) -> float:
    """Seconds until the twin's seal loop has built every hour the load marked (hour_values_dirty
    empty: the hours' sorted values and packed minutes in place, as they are for any hour a
    minute or two after it ends), so queries are timed on the store's steady state."""
    started = time.monotonic()
    while await conn.fetchval("SELECT count(*) FROM hour_values_dirty"):
        if time.monotonic() - started > within:
            raise SystemExit(f"the twin did not seal the loaded hours within {within:.0f} s")
        await asyncio.sleep(0.5)
    return time.monotonic() - started


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """Resident set size of a process, MiB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def find_pid(name: str) -> int | None:
    """The first process whose command name is `name` (RabbitMQ's beam.smp)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    return int(entry.name)
            except OSError:
                continue
    return None


def find_shared_rabbitmq() -> int | None:
    """The machine's RabbitMQ (beam.smp with its home in /var/lib/rabbitmq), not a private node a
    test or the fault campaign started."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "beam.smp" and \
                        b"/var/lib/rabbitmq" in (entry / "cmdline").read_bytes():
                    return int(entry.name)
            except OSError:
                continue
    return find_pid("beam.smp")


def find_rabbitmq_home(home: Path) -> int | None:
    """The beam.smp of a private RabbitMQ node (twinbill_devstack.rabbitmq) by its home
    directory (its HOME is the node's directory)."""
    wanted = f"-home {home}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "beam.smp" and \
                        wanted in (entry / "cmdline").read_bytes().replace(b"\0", b" "):
                    return int(entry.name)
            except OSError:
                continue
    return None


def slope(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) samples (0 with fewer than two)."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mean_x = sum(x for x, _ in samples) / n
    mean_y = sum(y for _, y in samples) / n
    var = sum((x - mean_x) ** 2 for x, _ in samples)
    return sum((x - mean_x) * (y - mean_y) for x, y in samples) / var if var else 0.0


class RssSampler:
    """Samples the RSS of named processes every `every` seconds in a thread of its own."""

    def __init__(self, pids: dict[str, int], *, every: float = 1.0) -> None:
        self.pids = pids
        self.every = every
        self.samples: dict[str, list[tuple[float, float]]] = {name: [] for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = 0.0

    def __enter__(self) -> RssSampler:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            at = time.monotonic() - self._started
            for name, pid in self.pids.items():
                self.samples[name].append((at, rss_mib(pid)))
            if self._stop.wait(self.every):
                return

    def report(self, *, warmup_fraction: float = 0.2) -> list[str]:
        """One line per process: RSS at the start, quarter points and end, and the least-squares
        growth after the warm-up (the first `warmup_fraction` of the run), MiB per minute."""
        lines = []
        for name, series in self.samples.items():
            if not series:
                continue
            end = series[-1][0]
            marks = [_nearest(series, q * end) for q in (0, 0.25, 0.5, 0.75, 1)]
            settled = [(at / 60, mib) for at, mib in series if at >= warmup_fraction * end]
            lines.append(
                f"  {name:28s} " + " ".join(f"{m:7.1f}" for m in marks)
                + f"   {slope(settled):+7.2f} MiB/min"
            )
        return lines


def _nearest(series: list[tuple[float, float]], at: float) -> float:
    """The sample value taken closest to `at`."""
    return min(series, key=lambda sample: abs(sample[0] - at))[1]
