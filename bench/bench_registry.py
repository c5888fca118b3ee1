"""Registry bench: import 10,000 devices by CSV through the twin's HTTP API, then measure the seed-002
instance list. Self-contained: its own PostgreSQL database, bus namespace and local port.

    .venv/bin/python bench/bench_registry.py [--devices 10000] [--requests 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
import uuid

import aiohttp
import asyncpg
from aiohttp import web

from twinbill_common.mongo import free_port
from twinbill_devstack.namespaces import delete_namespace
from twinbill_twin.app import create_app
from twinbill_twin.settings import TwinSettings

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
AMQP = os.environ.get("TWINBILL_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def build_csv(product_key: str, devices: int) -> str:
    """One meter per flat: 10 buildings x 10 storeys x flats, one made-up resident per flat."""
    lines = ["site,building,storey,zone,space,resident_name,resident_cellphone,product_key,"
             "device_key,device_name,device_type,water_meter_kind,multiplier,register_max"]
    for n in range(devices):
        building, storey, flat = n % 10 + 1, (n // 10) % 10 + 1, n // 100 + 1
        lines.append(f"基准小区,{building}栋,{storey}F,Z{building},{storey}{flat:03d},住户{n},100-{n:07d},"
                     f"{product_key},bench-{n:06d},表{n},1,tap,1,99999999")
    return "\n".join(lines) + "\n"


def quantile(samples: list[float], q: float) -> float:
    """The q-quantile of the samples (nearest rank)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(devices: int, requests: int) -> None:
    """Start a twin, import, list, report."""
    tag = uuid.uuid4().hex[:8]
    database, namespace = f"twinbill_bench_{tag}", f"bench{tag}."
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    port = free_port()
    settings = TwinSettings(pg_dsn=f"postgresql://postgres@127.0.0.1:5432/{database}", amqp_url=AMQP,
                            bus_namespace=namespace, http_port=port, log_level="WARNING")
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
            async with http.post(f"{base}/api/v1/projects/", json={"name": "bench"}) as resp:
                project = (await resp.json())["id"]
            async with http.post(f"{base}/api/v1/products/", json={
                    "product_key": "bench_meter", "name": "基准水表", "billing_register": "total",
                    "measurepoints": [
                        {"identifier": "total", "unit": "m3", "data_type": {"type": "double"}},
                        {"identifier": "flow", "unit": "m3/h", "data_type": {"type": "double"}},
                        {"identifier": "valve", "data_type": {"type": "bool"}, "settable": True}]}) as resp:
                assert resp.status == 201, await resp.text()
            text = build_csv("bench_meter", devices)
            started = time.perf_counter()
            async with http.post(f"{base}/api/v1/io/sites_csv?project_id={project}", data=text.encode(),
                                 headers={"Content-Type": "text/csv"}) as resp:
                body = await resp.json()
                assert resp.status == 201, body
            imported = time.perf_counter() - started
            print(f"import: {body['devices']} devices, {body['spaces']} spaces, {body['residents']} "
                  f"residents in {imported:.2f} s ({body['devices'] / imported:.0f} devices/s, "
                  "registry events published with confirms included)")

            pages = devices // 10
            for label, params in (("page", None), ("name filter", "表12")):
                samples = []
                for _ in range(requests):
                    query = {"page": str(random.randint(1, pages)), "offset": "10"}
                    if params:
                        query = {"name": params, "page": "1", "offset": "10"}
                    t0 = time.perf_counter()
                    async with http.get(f"{base}/dt/open/v1/instances", params=query) as resp:
                        await resp.read()
                        assert resp.status == 200
                    samples.append((time.perf_counter() - t0) * 1000)
                print(f"GET /dt/open/v1/instances ({label}, offset=10, {requests} requests over "
                      f"{devices} instances): p50 {quantile(samples, 0.5):.2f} ms, "
                      f"p99 {quantile(samples, 0.99):.2f} ms, mean {statistics.fmean(samples):.2f} ms")
            samples = []
            for _ in range(requests // 5):
                ids = ",".join(str(random.randint(1, devices)) for _ in range(10))
                t0 = time.perf_counter()
                async with http.get(f"{base}/dt/open/v1/instance", params={"ids": ids}) as resp:
                    await resp.read()
                samples.append((time.perf_counter() - t0) * 1000)
            print(f"GET /dt/open/v1/instance?ids=<10 ids>: p50 {quantile(samples, 0.5):.2f} ms, "
                  f"p99 {quantile(samples, 0.99):.2f} ms")
    finally:
        await runner.cleanup()
        await delete_namespace(AMQP, namespace)
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    """Parse arguments and run the bench."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(run(args.devices, args.requests))


if __name__ == "__main__":
    main()
