"""BEMServer analysis benchmark (issue 13): completeness and the energy consumption breakdown
over a year of 15-minute register readings of 100 meters, through the real gateway and twin.

Run: .venv/bin/python bench/bench_analysis.py [--runs N]

It creates its own database, starts the twin and the gateway as subprocesses (own schemas, own
bus namespace, ports 18400-18499), registers 100 electricity meters (billing register `total`,
a 7-digit register, multiplier 1), makes each register a BEMServer series (Interval 900 s)
and uploads a year of 15-minute readings (35,040 a meter, one day missing per meter: 3.5 M
points) straight to the twin. BEMServer allows one series per energy and end use on a site, so
the meters are linked to two sites, 50 each (electricity x 6 end uses and 7 other energies
x 6 end uses hold 66). Then it times, p50 and p99 over --runs requests each:

- completeness of the 100 series over the year, daily buckets (365) and monthly (12);
- the breakdown of both sites (50 + 50 meters) over the year, daily and monthly, in kWh,
  each meter's buckets counted from its register with billing's rules.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
from procstats import wait_ready  # bench/ is first on sys.path

from twinbill_devstack.namespaces import delete_namespace
from twinbill_twin.bemserver.meters import BOUNDARY_READINGS

PG_ADMIN = os.environ.get("TWINBILL_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("TWINBILL_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
ROOT = Path(__file__).resolve().parent.parent
ZONE = ZoneInfo("Europe/Paris")
YEAR_START = datetime(2025, 1, 1, tzinfo=ZONE)
YEAR_END = datetime(2026, 1, 1, tzinfo=ZONE)
METERS = 100
QUARTERS = int((YEAR_END - YEAR_START).total_seconds() // 900)
BATCH = 100_000
ADMIN = ("bench@twinbill.test", "bench-password")
PORTS = range(18400, 18500)


def free_port(taken: set[int]) -> int:
    for port in PORTS:
        if port in taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise SystemExit("no free port in 18400-18499")




def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def p50_p99(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return statistics.median(values), values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]


async def post(http: aiohttp.ClientSession, url: str, body: object, **params: str) -> dict[str, object]:
    async with http.post(url, json=body, params=params) as resp:
        if resp.status not in (200, 201):
            raise SystemExit(f"POST {url}: {resp.status} {await resp.text()}")
        return dict(await resp.json()) if resp.content_type == "application/json" else {}


def readings(meter: int) -> dict[str, float]:
    """A year of 15-minute register readings (kWh, stepped in absolute time so DST days have 92
    and 100), a different day's 96 readings missing for each meter."""
    missing = meter % 365
    value = 1000.0 * meter
    out: dict[str, float] = {}
    first = YEAR_START.astimezone(UTC)
    for quarter in range(QUARTERS):
        value += 0.25 + (quarter % 96) / 400
        if quarter // 96 != missing:
            out[(first + timedelta(minutes=15 * quarter)).astimezone(ZONE).isoformat()] = round(value, 4)
    return out


async def setup(twin: str, gateway: str, http: aiohttp.ClientSession,
                dsn: str) -> tuple[list[int], list[int], float]:
    """The campaign, meters, series, links and data; returns (series ids, site ids, and the
    meters' consumption over the year worked out from the readings: last minus first)."""
    campaign = await post(http, f"{gateway}/campaigns/", {"name": "bench", "timezone": "Europe/Paris"})
    scope = await post(http, f"{gateway}/campaign_scopes/", {"name": "all", "campaign_id": campaign["id"]})
    sites = [int(str((await post(http, f"{gateway}/sites/", {"name": f"site {n}",
                                                             "campaign_id": campaign["id"]}))["id"]))
             for n in range(2)]
    product = await post(http, f"{twin}/api/v1/products/", {
        "product_key": f"pk{uuid.uuid4().hex[:8]}", "name": "电表", "is_gateway": False, "billing_register": "total",
        "measurepoints": [{"identifier": "total", "name": "电量", "unit": "kWh", "data_type": {"type": "double"}}]})
    async with http.get(f"{gateway}/timeseries_properties/") as resp:
        interval = next(p for p in await resp.json() if p["name"] == "Interval")
    async with http.get(f"{gateway}/energies/") as resp:
        energies = [e["id"] for e in await resp.json() if e["name"] != "all"]
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "twin"})
    series: list[int] = []
    for meter in range(METERS):
        device = await post(http, f"{twin}/api/v1/devices/", {
            "product_key": product["product_key"], "device_key": f"m{meter:03d}", "name": f"meter {meter}",
            "project_id": campaign["id"], "register_max": "10000000"})
        attribute = await conn.fetchval("SELECT a.id FROM attributes a JOIN instances i ON i.id = a.instance_id "
                                        "WHERE i.device_id = $1 AND a.measurepoint = 'total'", device["id"])
        made = await post(http, f"{gateway}/timeseries/", {"name": f"meter {meter}", "campaign_id": campaign["id"],
                                                          "campaign_scope_id": scope["id"], "attribute_id": attribute})
        series.append(int(str(made["id"])))
        await post(http, f"{gateway}/timeseries_property_data/", {"timeseries_id": made["id"],
                                                                  "property_id": interval["id"], "value": "900"})
        slot = meter // 2
        await post(http, f"{gateway}/energy_consumption_timeseries_by_sites/", {
            "site_id": sites[meter % 2], "energy_id": energies[slot // 6], "end_use_id": slot % 6 + 1,
            "timeseries_id": made["id"]})
    await conn.close()
    print(f"uploading {METERS} x {QUARTERS:,} readings (less a day each) ...", flush=True)
    started = time.perf_counter()
    pending: dict[str, dict[str, float]] = {}
    size = 0
    total = 0
    consumed = 0.0
    for meter, ident in enumerate(series):
        points = readings(meter)
        values = list(points.values())  # in time order
        consumed += values[-1] - values[0]
        pending[str(ident)] = points
        size += len(points)
        total += len(points)
        if size >= BATCH or meter == METERS - 1:
            async with http.post(f"{twin}/bemserver/timeseries_data/", params={"data_state": "1"},
                                 data=json.dumps(pending).encode(), headers={"Content-Type": "application/json"}) as r:
                if r.status != 201:
                    raise SystemExit(f"upload: {r.status} {await r.text()}")
            pending, size = {}, 0
    spent = time.perf_counter() - started
    print(f"uploaded {total:,} points in {spent:.0f} s ({total / spent:,.0f} points/s, straight to the twin)")
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "twin"})
    await conn.execute("ANALYZE")
    await conn.close()
    return series, sites, consumed


async def timed(http: aiohttp.ClientSession, url: str, params: dict[str, str] | list[tuple[str, str]],
                runs: int) -> tuple[float, float, object]:
    """p50 and p99 in ms over `runs` requests after one warm-up, and the last answer."""
    latencies: list[float] = []
    body: object = None
    for _ in range(runs + 1):
        started = time.perf_counter()
        async with http.get(url, params=params) as resp:
            body = await resp.json()
            if resp.status != 200:
                raise SystemExit(f"GET {url}: {resp.status} {body}")
        latencies.append((time.perf_counter() - started) * 1000)
    p50, p99 = p50_p99(latencies[1:])  # the first run warms the caches
    return p50, p99, body


# The breakdown's first version: the boundary readings of one meter per query.
ONE_METER = """
SELECT b.n, s.num, s.ts
FROM unnest($2::bigint[]) WITH ORDINALITY AS b (at, n)
LEFT JOIN LATERAL (
    SELECT num, ts FROM samples
    WHERE attribute_id = $1 AND idx = -1 AND ts <= b.at AND num IS NOT NULL
    ORDER BY ts DESC LIMIT 1
) AS s ON true
ORDER BY b.n
"""


async def compare_boundary_queries(dsn: str, series: list[int], runs: int) -> None:
    """Each meter's last reading at or before each day boundary of the year, the breakdown's
    query (every meter at once) against its first version (one query per meter), timed
    alternately in PostgreSQL so both run under the same conditions."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "twin"})
    try:
        attributes = [int(a) for a in await conn.fetchval(
            "SELECT array_agg(attribute_id ORDER BY id) FROM bem_timeseries WHERE id = ANY($1::int[])", series)]
        bounds, day = [], YEAR_START
        while day <= YEAR_END:
            bounds.append(int(day.timestamp() * 1000))
            day = (day.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=ZONE)
        timings: dict[str, list[float]] = {"one query, every meter": [], "one query per meter": []}
        answers: dict[str, list[tuple[int, int, object]]] = {}
        for _ in range(max(3, runs // 2)):
            started = time.perf_counter()
            rows = await conn.fetch(BOUNDARY_READINGS, attributes, bounds)
            timings["one query, every meter"].append((time.perf_counter() - started) * 1000)
            answers["one query, every meter"] = sorted((r["meter"], r["bound"], r["num"]) for r in rows)
            started = time.perf_counter()
            found = []
            for index, attribute in enumerate(attributes, start=1):
                found += [(index, r["n"], r["num"]) for r in await conn.fetch(ONE_METER, attribute, bounds)]
            timings["one query per meter"].append((time.perf_counter() - started) * 1000)
            answers["one query per meter"] = sorted(found)
        if answers["one query, every meter"] != answers["one query per meter"]:
            raise SystemExit("the two boundary queries disagree")
        for name, values in timings.items():
            print(f"{'boundary readings, 100 meters x ' + str(len(bounds)) + ' days, ' + name:52} "
                  f"{statistics.median(values):8.1f} ms p50 (PostgreSQL and one client; same answer both ways)")
    finally:
        await conn.close()


async def run(runs: int) -> None:
    tag = uuid.uuid4().hex[:8]
    database = f"twinbill_bench_{tag}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    dsn = PG_ADMIN.rsplit("/", 1)[0] + f"/{database}"
    taken: set[int] = set()
    twin_port, gateway_port = free_port(taken), free_port(taken)
    namespace = f"bench{tag}."
    twin_env = {**os.environ, "TWIN_PG_DSN": dsn, "TWIN_SCHEMA_NAME": "twin", "TWIN_BUS_NAMESPACE": namespace,
                "TWIN_HTTP_PORT": str(twin_port), "TWIN_AMQP_URL": AMQP_URL, "TWIN_LOG_LEVEL": "WARNING"}
    gateway_env = {**os.environ, "GATEWAY_PG_DSN": dsn, "GATEWAY_SCHEMA_NAME": "identity",
                   "GATEWAY_HTTP_PORT": str(gateway_port), "GATEWAY_TWIN_URL": f"http://127.0.0.1:{twin_port}",
                   "GATEWAY_ADMIN_EMAIL": ADMIN[0], "GATEWAY_ADMIN_PASSWORD": ADMIN[1],
                   "GATEWAY_LOG_LEVEL": "WARNING", "GATEWAY_UPSTREAM_TIMEOUT": "600"}
    twin = await asyncio.create_subprocess_exec(sys.executable, "-m", "twinbill_twin", env=twin_env, cwd=ROOT)
    gateway = await asyncio.create_subprocess_exec(sys.executable, "-m", "twinbill_gateway", env=gateway_env,
                                                   cwd=ROOT)
    try:
        await wait_ready(twin_port, twin, "twin")
        await wait_ready(gateway_port, gateway, "gateway")
        base = f"http://127.0.0.1:{gateway_port}/bemserver"
        twin_base = f"http://127.0.0.1:{twin_port}"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=900)) as http:
            tokens = await (await http.post(f"{base}/auth/token", json={"email": ADMIN[0],
                                                                       "password": ADMIN[1]})).json()
            http.headers["Authorization"] = f"Bearer {tokens['access_token']}"
            series, sites, consumed = await setup(twin_base, base, http, dsn)
            period = {"start_time": YEAR_START.isoformat(), "end_time": YEAR_END.isoformat(),
                      "timezone": "Europe/Paris"}
            print(f"{'over a year, 100 meters (through the gateway)':52} {'p50 ms':>8} {'p99 ms':>8} "
                  f"{'twin CPU ms':>11}  answer")
            for unit in ("day", "month"):
                params = [*period.items(), ("data_state", "1"), ("bucket_width_value", "1"),
                          ("bucket_width_unit", unit), *(("timeseries", str(s)) for s in series)]
                cpu = cpu_seconds(twin.pid)
                p50, p99, body = await timed(http, f"{base}/analysis/completeness", params, runs)
                cpu_ms = (cpu_seconds(twin.pid) - cpu) * 1000 / (runs + 1)
                first = body["timeseries"][str(series[0])]  # type: ignore[index]  # the answer's shape
                print(f"{'completeness, ' + unit + ' buckets':52} {p50:8.1f} {p99:8.1f} {cpu_ms:11.1f}  "
                      f"{len(body['timestamps'])} buckets; meter 0: {first['total_count']:,} of "  # type: ignore[index]  # the answer's shape
                      f"{sum(first['expected_count']):,.0f}, avg ratio {first['avg_ratio']:.4f}")
            for unit in ("day", "month"):
                query = {**period, "bucket_width_value": "1", "bucket_width_unit": unit, "unit": "kWh"}
                latencies: list[float] = []
                cpu = cpu_seconds(twin.pid)
                total = 0.0
                for _ in range(runs + 1):
                    started = time.perf_counter()
                    total = 0.0
                    for site in sites:
                        async with http.get(f"{base}/analysis/energy_consumption/site/{site}", params=query) as r:
                            body = await r.json()
                            if r.status != 200:
                                raise SystemExit(f"breakdown: {r.status} {body}")
                        total += sum(sum(sum(v) for v in uses.values()) for uses in body["energy"].values())
                    latencies.append((time.perf_counter() - started) * 1000)
                p50, p99 = p50_p99(latencies[1:])
                cpu_ms = (cpu_seconds(twin.pid) - cpu) * 1000 / (runs + 1)
                print(f"{'breakdown of both sites (100 meters), ' + unit + ' buckets, kWh':52} {p50:8.1f} {p99:8.1f} "
                      f"{cpu_ms:11.1f}  "
                      f"{total:,.1f} kWh in all (the readings say {consumed:,.1f})")
                if abs(total - consumed) > 1e-6 * consumed:
                    raise SystemExit(f"breakdown total {total} differs from the readings' {consumed}")
        await compare_boundary_queries(dsn, series, runs)
        print("(twin CPU ms: the twin process's CPU per request, PostgreSQL's not counted; machine: "
              f"{os.cpu_count()} cores, shared with other work; load average {os.getloadavg()[0]:.2f})")
    finally:
        for process in (gateway, twin):
            if process.returncode is None:
                process.send_signal(signal.SIGINT)
                try:
                    await asyncio.wait_for(process.wait(), timeout=20)
                except TimeoutError:
                    process.kill()
                    await process.wait()
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
        try:
            await delete_namespace(AMQP_URL, namespace)
        except (OSError, TimeoutError) as err:  # a broker that does not answer must not keep the database
            print(f"could not delete bus namespace {namespace}: {err!r}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    asyncio.run(run(parser.parse_args().runs))
