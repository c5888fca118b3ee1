"""What the run and job handlers share, built once by the app's lifespan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from twinbill_billing.metrics import BillingMetrics
from twinbill_billing.store import BillStore
from twinbill_billing.twin import TwinClient
from twinbill_common.bus import Bus


@dataclass
class BillingContext:
    """The stores, the twin client, the bus, metrics and the clock of one billing service."""

    store: BillStore
    twin: TwinClient
    bus: Bus
    metrics: BillingMetrics
    chunk_size: int
    delivery_limit: int
    clock: Callable[[], datetime]
    publish_issued: bool = True  # a BillIssued per new bill (events.py)


CONTEXT = web.AppKey("billing_context", BillingContext)
