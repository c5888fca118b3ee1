"""Issue 17: while the twin reports that PostgreSQL refuses its time-series writes (disk full), the
ingest gateway answers new measurepoint requests with 500 ("retry later") and publishes nothing;
once the twin stores again it answers 200 again. The real twin app (its own schema), Mosquitto
and RabbitMQ; the refusal is recorded in the twin exactly as its consumer records a DiskFullError
(the full fault campaign, `make faults`, fills a real disk: tools/faults)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
from aiohttp.test_utils import TestClient

from tests.integration.ingest.conftest import open_device, start_gateway
from twinbill_common.servicetokens import ServiceTokens
from twinbill_common.settings import DEV_SERVICE_KEY
from twinbill_devstack.broker import DevBroker
from twinbill_ingest.domain.codes import Code
from twinbill_ingest.twinstore import TwinStoreGate
from twinbill_twin.keys import REFUSALS


def _post(index: int) -> bytes:
    return json.dumps({"id": f"r{index}", "version": "1.0", "method": "thing.measurepoint.post",
                       "params": {"measurepoints": {"temp": index + 0.5}, "time": 1_000 + index}}).encode()


async def _metrics(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return await response.text()


async def _until(condition: Callable[[], Awaitable[bool]], *, within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await condition():
        assert loop.time() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.1)


async def test_ingest_refuses_with_500_while_the_twin_cannot_store_and_resumes_after(
    broker: DevBroker, amqp_url: str, bus_namespace: str, twin: TestClient[Any, Any]
) -> None:
    refusals = twin.app[REFUSALS]
    # as the ingest app makes it: the twin's /internal/ path wants a service token
    gate = TwinStoreGate(str(twin.make_url("")), interval=0.1,
                         tokens=ServiceTokens(DEV_SERVICE_KEY, issuer="ingest"))
    async with (start_gateway(broker, amqp_url, bus_namespace, store_gate=gate) as running,
                open_device(broker.port, running.world.creds["gateway"]) as gateway):
        reply = await gateway.request_raw(gateway.topic("post"), _post(1))
        assert reply["code"] == Code.OK

        # What the twin's telemetry consumer records when PostgreSQL answers SQLSTATE 53100.
        refusals.refused(asyncpg.DiskFullError('could not extend file "base/16384/2619": No space left on device'))
        ready = await twin.get("/readyz")
        body = await ready.json()
        assert ready.status == 503
        assert "disk full (SQLSTATE 53100)" in body["failures"]["timeseries_store"]
        metrics = await (await twin.get("/metrics")).text()
        assert "twin_store_refusing_writes 1.0" in metrics

        async def refused() -> bool:
            return gate.refusal is not None

        await _until(refused)
        for index in (2, 3):
            reply = await gateway.request_raw(gateway.topic("post"), _post(index))
            assert reply["code"] == Code.SERVER_ERROR, reply
            assert reply["id"] == f"r{index}"
            assert "the twin cannot store measurepoints now" in reply["message"]
            assert "disk full" in reply["message"]
        assert "ingest_twin_store_refusing 1.0" in await _metrics(str(running.server.make_url("/metrics")))

        # Room again: the next successful write clears it, and ingest acknowledges again.
        refusals.stored()
        assert (await twin.get("/readyz")).status == 200

        async def accepted() -> bool:
            return gate.refusal is None

        await _until(accepted)
        reply = await gateway.request_raw(gateway.topic("post"), _post(4))
        assert reply["code"] == Code.OK

        # Only the two acknowledged requests were published (and confirmed); the refused ones
        # never reached the bus (the in-process twin consumes the namespace's queue itself).
        text = await _metrics(str(running.server.make_url("/metrics")))
        assert "ingest_points_accepted_total 2.0" in text
        assert 'ingest_requests_total{code="500",kind="post"} 2.0' in text
        assert "ingest_twin_store_refusing 0.0" in text
