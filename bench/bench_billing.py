"""Billing throughput: 100,000 meters with readings, one run, with 1, 2 and 4 worker processes.

Self-contained: starts its own embedded MongoDB (nx-27017), serves the twin service's billing
contract from memory in a separate process (tests/integration/billing/fake_twin.py), uses its own
bus namespace on the local RabbitMQ, and runs `python -m twinbill_billing` workers.
Prints, per worker count, the time to finish the run, bills per second, the CPU seconds each
component used (workers, MongoDB server, twin), which shows what bounds the run, and the store's
operations per bill (the workers' `billing_store_operations_total`: every MongoDB command is one
round trip). The CPU figures are taken when the run finishes, before the bench counts the bills.

    .venv/bin/python bench/bench_billing.py [--meters 100000] [--workers 1,2,4]
        [--mongo-url mongodb://host:port --mongo-pid PID]   # a server already running, e.g. real MongoDB
        [--private]   # a RabbitMQ node of its own
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aio_pika.exceptions import AMQPException
from aiohttp import web
from pymongo import AsyncMongoClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from procstats import cpu_seconds  # noqa: E402  # bench/ is first on sys.path

from tests.integration.billing.fake_twin import TwinData, create_fake_twin, meter  # noqa: E402  # after sys.path
from twinbill_billing.domain.periods import to_epoch_ms  # noqa: E402
from twinbill_common.bus import Bus  # noqa: E402
from twinbill_common.schemas.billing import RunBilling  # noqa: E402
from twinbill_common.topology import BILLING  # noqa: E402
from twinbill_devstack.mongo import start_embedded_mongo  # noqa: E402
from twinbill_devstack.namespaces import delete_namespace  # noqa: E402  # after the path set-up above
from twinbill_devstack.ports import free_port  # noqa: E402
from twinbill_devstack.rabbitmq import PrivateRabbitMQ  # noqa: E402

AMQP_URL = os.environ.get("TWINBILL_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PROJECT = 1
START = datetime(2024, 5, 31, 16, tzinfo=UTC)
END = datetime(2024, 6, 30, 16, tzinfo=UTC)
TICKS = os.sysconf("SC_CLK_TCK")




def serve_twin(port: int, meters: int) -> None:
    """Child mode: the twin contract for `meters` electricity meters on `port`."""
    data = TwinData(timezones={PROJECT: "Asia/Shanghai"})
    for i in range(1, meters + 1):
        data.add_device(PROJECT, meter(i))
        data.add_reading(i, to_epoch_ms(START - timedelta(hours=1)), f"{i}.5")
        data.add_reading(i, to_epoch_ms(END - timedelta(hours=1)), f"{i + i % 97}.75")
    web.run_app(create_fake_twin(data), host="127.0.0.1", port=port, print=None, access_log=None)


async def wait_http(url: str, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer in {limit}s")
            await asyncio.sleep(0.2)


async def store_operations(ports: list[int]) -> dict[str, float]:
    """The workers' MongoDB commands so far (billing_store_operations_total), summed by command."""
    totals: dict[str, float] = {}
    async with aiohttp.ClientSession() as http:
        for port in ports:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                text = await response.text()
            for line in text.splitlines():
                if line.startswith("billing_store_operations_total{"):
                    labels, value = line.rsplit(" ", 1)
                    command = labels.split('command="', 1)[1].split('"', 1)[0]
                    totals[command] = totals.get(command, 0.0) + float(value)
    return totals


async def one_run(workers: int, *, meters: int, mongo_url: str, twin_url: str, mongo_pid: int,
                  twin_pid: int, amqp_url: str) -> dict[str, Any]:
    namespace = f"bench{uuid.uuid4().hex[:8]}."
    db_name = f"bench_{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "BILLING_MONGO_URL": mongo_url, "BILLING_MONGO_DB": db_name,
           "BILLING_AMQP_URL": amqp_url, "BILLING_BUS_NAMESPACE": namespace,
           "BILLING_TWIN_URL": twin_url, "BILLING_LOG_LEVEL": "WARNING",
           "BILLING_CHUNK_SIZE": "500", "BILLING_JOB_PREFETCH": "2"}
    ports = [free_port() for _ in range(workers)]
    procs = [subprocess.Popen([sys.executable, "-m", "twinbill_billing"],  # noqa: ASYNC220  # setup, not the measured path
                              env={**env, "BILLING_HTTP_PORT": str(port)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for port in ports]
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    bus = Bus(amqp_url, namespace=namespace)
    try:
        for port in ports:
            await wait_http(f"http://127.0.0.1:{port}/readyz")
        async with aiohttp.ClientSession() as http, http.post(
                f"http://127.0.0.1:{ports[0]}/api/v1/tariffs/", json={
                    "project_id": PROJECT, "device_type": 2, "kind": "flat", "unit_price": "0.61",
                    "effective_from": "2000-01-01T00:00:00Z"}) as response:
                assert response.status == 201, await response.text()
        await bus.connect()
        db = client[db_name]
        ops_before = await store_operations(ports)
        cpu_before = {"workers": sum(cpu_seconds(p.pid) for p in procs),
                      "mongodb": cpu_seconds(mongo_pid), "twin": cpu_seconds(twin_pid)}
        started = time.monotonic()
        await bus.publish(BILLING, "run.requested", RunBilling(
            run_id=f"bench:{workers}", project_id=PROJECT, device_type=2, task_key="bench",
            period_start=START, period_end=END, fire_time=END))
        split_at = None
        while True:
            run = await db.runs.find_one({"_id": f"bench:{workers}"})
            if split_at is None and run and run.get("jobs_published"):
                split_at = time.monotonic() - started
            if run and run.get("status") == "finished":
                break
            if time.monotonic() - started > 1800:
                raise RuntimeError("run did not finish in 30 minutes")
            await asyncio.sleep(0.25)
        elapsed = time.monotonic() - started
        # CPU first: counting the bills below costs nx-27017 ~0.2 ms each (it decodes every
        # document), which earlier figures wrongly put on the run.
        cpu = {"workers": sum(cpu_seconds(p.pid) for p in procs) - cpu_before["workers"],
               "mongodb": cpu_seconds(mongo_pid) - cpu_before["mongodb"],
               "twin": cpu_seconds(twin_pid) - cpu_before["twin"]}
        ops_after = await store_operations(ports)
        ops = {name: ops_after[name] - ops_before.get(name, 0.0) for name in ops_after}
        bills = await db.bills.count_documents({})
        if bills != meters or run["summary"]["newly_billed"] != meters:
            raise RuntimeError(f"{bills} bills stored, {run['summary']['newly_billed']} newly billed, "
                               f"for {meters} meters")
        await client.drop_database(db_name)
        return {"workers": workers, "bills": bills, "seconds": elapsed, "split": split_at or 0.0,
                "rate": bills / elapsed, "cpu": cpu, "summary": run["summary"],
                "ops": {name: count for name, count in ops.items() if count}}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        await bus.close()
        try:
            await delete_namespace(amqp_url, namespace)  # 100,000 bill.issued events sit in its journal
        except (OSError, TimeoutError, AMQPException) as err:  # a slow broker must not lose the run's figures
            print(f"  could not delete bus namespace {namespace} ({err!r}); delete it by hand", flush=True)
        await client.drop_database(db_name)
        await client.close()


async def main(meters: int, counts: list[int], *, mongo_url: str, mongo_pid: int, amqp_url: str) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-billing-") as tmp:
        twin_port = free_port()
        mongo = None
        if not mongo_url:
            mongo_port = free_port()
            mongo = start_embedded_mongo(data_dir=Path(tmp) / "data", port=mongo_port,
                                         log_file=Path(tmp) / "mongo.log")
            mongo_url, mongo_pid = f"mongodb://127.0.0.1:{mongo_port}", mongo.pid
        twin = subprocess.Popen([sys.executable, __file__, "--serve-twin", str(twin_port),  # noqa: ASYNC220  # setup only
                                 "--meters", str(meters)])
        try:
            twin_url = f"http://127.0.0.1:{twin_port}"
            await wait_http(f"{twin_url}/api/v1/projects/{PROJECT}")
            print(f"billing bench: {meters} meters, one run, chunks of 500, on {os.cpu_count()} cores")
            for workers in counts:
                r = await one_run(workers, meters=meters, mongo_url=mongo_url,
                                  twin_url=twin_url, mongo_pid=mongo_pid, twin_pid=twin.pid, amqp_url=amqp_url)
                cpu = r["cpu"]
                print(f"  {workers} worker(s): {r['bills']} bills in {r['seconds']:.1f} s "
                      f"(split {r['split']:.1f} s) = {r['rate']:.0f} bills/s; CPU s: workers "
                      f"{cpu['workers']:.1f}, mongodb {cpu['mongodb']:.1f}, twin {cpu['twin']:.1f}; "
                      f"summary billed={r['summary']['billed']} jobs={r['summary']['jobs_done']}")
                per_bill = {name: count / r["bills"] for name, count in sorted(r["ops"].items())}
                print(f"    store operations per bill: {sum(per_bill.values()):.4f} ("
                      + ", ".join(f"{name} {value:.4f}" for name, value in per_bill.items())
                      + f"); CPU ms per bill: workers {1000 * cpu['workers'] / r['bills']:.3f}, "
                      f"mongodb {1000 * cpu['mongodb'] / r['bills']:.3f}")
            print("  bound: the component whose CPU seconds approach (wall time x its processes) "
                  "is saturated; nx-27017 is one process, so 'mongodb' near the wall time means "
                  "the MongoDB server bounds the run.")
        finally:
            twin.terminate()
            twin.wait(timeout=10)
            if mongo is not None:
                mongo.terminate()
                mongo.wait(timeout=10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=100_000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--mongo-url", default="", help="a MongoDB already running (real, or nx-27017 under "
                        "a profiler) instead of the embedded one the bench starts")
    parser.add_argument("--mongo-pid", type=int, default=0, help="its server's pid, for its CPU seconds "
                        "(0: not measured, e.g. a remote server)")
    parser.add_argument("--private", action="store_true", help="a RabbitMQ node of the bench's own (free "
                        "ports in TWINBILL_PORT_RANGE) instead of the machine's shared one")
    parser.add_argument("--serve-twin", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    if args.serve_twin:
        serve_twin(args.serve_twin, args.meters)
    elif args.private:
        with tempfile.TemporaryDirectory(prefix="bench-billing-rabbit-") as directory:
            broker = PrivateRabbitMQ(Path(directory)).start(timeout=120)
            try:
                asyncio.run(main(args.meters, counts, mongo_url=args.mongo_url, mongo_pid=args.mongo_pid,
                                 amqp_url=broker.url))
            finally:
                broker.stop()
    else:
        asyncio.run(main(args.meters, counts, mongo_url=args.mongo_url, mongo_pid=args.mongo_pid,
                         amqp_url=AMQP_URL))
