"""Whether the twin can store what this gateway acknowledges: the twin's time-series store state,
polled from `GET /internal/v1/telemetry/store` (docs/architecture.md, "Fault campaign").

While the twin reports that PostgreSQL refuses its writes (disk full, out of memory), the gateway
answers new measurepoint requests with 500 ("retry later", services/ingest/README.md) instead of
200, so devices keep their points until the twin can store them; points acknowledged before
that stay on the durable `twin.telemetry` queue until they are stored. A twin that does not
answer at all is no reason to refuse: that is the outage the durable queue is there to absorb.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp

from twinbill_common.logging import get_logger
from twinbill_common.servicetokens import ServiceTokens

log = get_logger(__name__)
STORE_PATH = "/internal/v1/telemetry/store"


class TwinStoreGate:
    """The last answer of the twin's store-state endpoint; `refusal` is the reason to refuse."""

    def __init__(self, twin_url: str, *, tokens: ServiceTokens | None = None, interval: float = 1.0,
                 timeout: float = 2.0, on_change: Callable[[str | None], None] | None = None) -> None:
        self.url = f"{twin_url.rstrip('/')}{STORE_PATH}"
        # /internal/ wants a service token for the twin (twinbill_common.servicetokens)
        self.middlewares = (tokens.client_middleware({twin_url.rstrip("/"): "twin"}),) if tokens else ()
        self.interval = interval
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.refusal: str | None = None
        self.on_change = on_change  # called with the new refusal (None: storing again)

    def apply(self, answer: dict[str, Any] | None) -> None:
        """Take one answer of the endpoint (None: the twin did not answer)."""
        refusal: str | None = None
        if answer is not None and answer.get("writable") is False:
            refusal = str(answer.get("reason") or "the time-series store refuses writes")
        if refusal != self.refusal:
            if refusal is None:
                log.info("the twin stores again: acknowledging measurepoints again")
            else:
                log.warning("the twin cannot store: refusing measurepoints with 500", reason=refusal)
            self.refusal = refusal
            if self.on_change is not None:
                self.on_change(refusal)

    async def poll(self, session: aiohttp.ClientSession) -> dict[str, Any] | None:
        """One answer of the endpoint, None when the twin does not answer (or answers an error)."""
        try:
            async with session.get(self.url) as response:
                if response.status != 200:
                    return None
                body = await response.json()
                return body if isinstance(body, dict) else None
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    async def run(self) -> None:
        """Poll every `interval` until cancelled."""
        async with aiohttp.ClientSession(timeout=self.timeout, middlewares=self.middlewares) as session:
            while True:
                self.apply(await self.poll(session))
                await asyncio.sleep(self.interval)
