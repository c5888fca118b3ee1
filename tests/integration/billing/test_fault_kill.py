"""Faults: three worker processes share a 10,000-meter run; one is SIGKILLed mid-run.

Afterwards there is exactly one bill per meter and the run summary is complete: the killed
worker's unacknowledged jobs are redelivered to the others, and the meters' chains (a bill's
unique chain position; a redone job finds its meters covered) plus the once-per-job outcome
documents make the redone work harmless.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from pymongo import AsyncMongoClient

from twinbill_billing.domain.periods import to_epoch_ms
from twinbill_common.bus import Bus
from twinbill_common.mongo import free_port
from twinbill_common.schemas.billing import RunBilling
from twinbill_common.topology import BILLING

from .conftest import serve, wait_for
from .fake_twin import TwinData, create_fake_twin, meter

METERS = 10_000
PROJECT = 5
START = datetime(2024, 5, 31, 16, tzinfo=UTC)
END = datetime(2024, 6, 30, 16, tzinfo=UTC)


def start_worker(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # our own module with a fixed argv
        [sys.executable, "-m", "twinbill_billing"],
        env={**env, "BILLING_HTTP_PORT": str(port)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
async def test_sigkill_one_of_three_workers_mid_run(mongo_url: str, mongo_db_name: str, amqp_url: str,
                                                    bus_namespace: str) -> None:
    """Exactly one bill per meter and a complete summary after a worker is killed mid-run."""
    data = TwinData(timezones={PROJECT: "Asia/Shanghai"})
    for i in range(1, METERS + 1):
        data.add_device(PROJECT, meter(i))
        data.add_reading(i, to_epoch_ms(START - timedelta(hours=1)), f"{i}.5")
        data.add_reading(i, to_epoch_ms(END - timedelta(hours=1)), f"{i + i % 97}.75")
    twin_runner, twin_url = await serve(create_fake_twin(data))
    env = {**os.environ, "BILLING_MONGO_URL": mongo_url, "BILLING_MONGO_DB": mongo_db_name,
           "BILLING_AMQP_URL": amqp_url, "BILLING_BUS_NAMESPACE": bus_namespace,
           "BILLING_TWIN_URL": twin_url, "BILLING_CHUNK_SIZE": "100", "BILLING_JOB_PREFETCH": "2",
           "BILLING_LOG_LEVEL": "WARNING"}
    ports = [free_port() for _ in range(3)]
    workers = [start_worker(env, port) for port in ports]
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    db = client[mongo_db_name]
    bus = Bus(amqp_url, namespace=bus_namespace)
    try:
        async with aiohttp.ClientSession() as http:
            async def all_ready() -> bool:
                for port in ports:
                    try:
                        async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                            if response.status != 200:
                                return False
                    except aiohttp.ClientError:
                        return False
                return True
            await wait_for(all_ready, timeout=60, what="three workers ready")
            async with http.post(f"http://127.0.0.1:{ports[0]}/api/v1/tariffs/", json={
                    "project_id": PROJECT, "device_type": 2, "kind": "flat", "unit_price": "0.61",
                    "effective_from": "2000-01-01T00:00:00Z"}) as response:
                assert response.status == 201
        await bus.connect()
        await bus.publish(BILLING, "run.requested", RunBilling(
            run_id="fault:1", project_id=PROJECT, device_type=2, task_key="fault",
            period_start=START, period_end=END, fire_time=END))

        async def some_billed() -> bool:
            return await db.bills.count_documents({"run_id": "fault:1"}) >= METERS // 5
        await wait_for(some_billed, timeout=60, what="a fifth of the run billed")
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(timeout=10)
        at_kill = await db.runs.find_one({"_id": "fault:1"})
        assert at_kill is not None and at_kill.get("status") != "finished", "killed too late"

        async def finished() -> dict[str, Any] | None:
            run = await db.runs.find_one({"_id": "fault:1"})
            return run if run and run.get("status") == "finished" else None
        run = await wait_for(finished, timeout=100, what="run to finish after the kill")
        assert await db.bills.count_documents({"run_id": "fault:1"}) == METERS
        device_ids = await db.bills.distinct("device_id", {"run_id": "fault:1"})
        assert len(device_ids) == METERS
        summary = run["summary"]
        assert summary["devices_expected"] == METERS and summary["billed"] == METERS
        assert summary["jobs_done"] == summary["jobs_total"] == METERS // 100
        assert summary["skipped"] == summary["failed"] == summary["exceptions"] == 0
        sample = await db.bills.find_one({"device_id": 150})  # 150.5 -> 203.75 at 0.61
        assert sample is not None
        assert (sample["consumption"], sample["charge"]) == ("53.25", "32.48")
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
        for worker in workers:
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
        await bus.close()
        await client.close()
        await twin_runner.cleanup()
