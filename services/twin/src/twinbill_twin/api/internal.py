"""Internal endpoints (plain JSON, no envelope) that the other services code against."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from twinbill_common.apidocs import JsonSchema, documented
from twinbill_common.errors import ValidationFailed
from twinbill_common.http import json_response
from twinbill_common.paging import INT32_MAX, INT64_MAX, Errors, query_int
from twinbill_common.schemas import DeviceRecord, ProductModel
from twinbill_twin.api.common import pool_of, read_model, run_change
from twinbill_twin.keys import DEVICE_SECRETS
from twinbill_twin.store import internal

DEVICES_LIMIT = 5000
BILLING_LIMIT = 1000


class DeviceStatus(BaseModel):
    """A session login or logout seen by the ingest gateway."""

    model_config = ConfigDict(extra="forbid")

    product_key: str = Field(min_length=1)
    device_key: str = Field(min_length=1)
    online: bool
    last_seen: AwareDatetime | None = None


class DeviceStatusBatch(BaseModel):
    """POST /internal/v1/devices/status body."""

    model_config = ConfigDict(extra="forbid")

    devices: list[DeviceStatus] = Field(max_length=10_000)


class ProductsAnswer(BaseModel):
    """GET /internal/v1/products."""

    products: list[ProductModel]


class DevicesAnswer(BaseModel):
    """GET /internal/v1/devices: a keyset page; `next_after_id` null on the last one."""

    devices: list[DeviceRecord]
    next_after_id: int | None


class BillingDevicesAnswer(BaseModel):
    """GET /internal/v1/billing/devices: devices with house address, residents and lifecycle."""

    devices: list[dict[str, Any]]
    next_after_id: int | None


class StatusAnswer(BaseModel):
    """POST /internal/v1/devices/status: how many devices changed."""

    updated: int


def paging_query(default_limit: int) -> JsonSchema:
    """The query `_paging` reads, as JSON Schema."""
    return JsonSchema({"type": "object", "properties": {
        "after_id": {"type": "integer", "minimum": 0, "maximum": INT64_MAX, "description": "keyset: ids after this"},
        "limit": {"type": "integer", "minimum": 1, "maximum": default_limit * 2,
                  "description": f"{default_limit} unless given"},
        "project_id": {"type": "integer", "minimum": 1, "maximum": INT32_MAX},
        "device_type": {"type": "integer", "minimum": 1, "maximum": 2}}})


def _paging(request: web.Request, *, default_limit: int) -> tuple[int, int, int | None, int | None]:
    errors: Errors = {}
    query = request.query
    after_id = query_int(query, "after_id", default=0, minimum=0, maximum=INT64_MAX, errors=errors)
    limit = query_int(query, "limit", default=default_limit, maximum=default_limit * 2, errors=errors)
    project_id = query_int(query, "project_id", errors=errors)
    device_type = query_int(query, "device_type", maximum=2, errors=errors)
    if errors:
        raise ValidationFailed(errors, data={"location": "query"})
    assert after_id is not None and limit is not None
    return after_id, limit, project_id, device_type


@documented(summary="Every product with its measurepoints", response=ProductsAnswer, tags=("internal",))
async def get_products(request: web.Request) -> web.Response:
    """GET /internal/v1/products."""
    async with pool_of(request).acquire() as conn:
        products = await internal.all_products(conn)
    return json_response(ProductsAnswer(products=products).model_dump(mode="json"))


@documented(summary="Devices with their secrets (services only)", query=paging_query(DEVICES_LIMIT),
            response=DevicesAnswer, tags=("internal",))
async def get_devices(request: web.Request) -> web.Response:
    """GET /internal/v1/devices?after_id=&limit=&project_id=&device_type= (keyset paging)."""
    after_id, limit, project_id, device_type = _paging(request, default_limit=DEVICES_LIMIT)
    async with pool_of(request).acquire() as conn:
        records = await internal.device_records(conn, after_id=after_id, limit=limit,
                                                project_id=project_id, device_type=device_type)
    secrets = request.app[DEVICE_SECRETS]  # sealed at rest, opened only for the calling service
    records = [r.model_copy(update={"secret": secrets.open(r.secret)}) if r.secret else r for r in records]
    return json_response(DevicesAnswer(devices=records, next_after_id=records[-1].id if len(records) == limit else None)
                         .model_dump(mode="json"))


@documented(summary="Devices as billing reads them", query=paging_query(BILLING_LIMIT),
            response=BillingDevicesAnswer, tags=("internal",))
async def get_billing_devices(request: web.Request) -> web.Response:
    """GET /internal/v1/billing/devices: devices with house_address and residents."""
    after_id, limit, project_id, device_type = _paging(request, default_limit=BILLING_LIMIT)
    async with pool_of(request).acquire() as conn:
        rows = await internal.billing_devices(conn, after_id=after_id, limit=limit,
                                              project_id=project_id, device_type=device_type)
    return json_response({"devices": rows,
                          "next_after_id": rows[-1]["id"] if len(rows) == limit else None})


@documented(summary="Sessions the ingest gateway saw log in or out", body=DeviceStatusBatch,
            response=StatusAnswer, tags=("internal",))
async def post_device_status(request: web.Request) -> web.Response:
    """POST /internal/v1/devices/status: online/last_seen from the ingest gateway (no event)."""
    batch = await read_model(request, DeviceStatusBatch)
    statuses = [(d.product_key, d.device_key, d.online, d.last_seen) for d in batch.devices]

    async def work(conn: asyncpg.Connection) -> list[Any]:
        return await internal.update_status(conn, statuses)

    # No registry event: online/last_seen is session state the ingest gateway itself reported,
    # and an event per login would make every cache (ingest's included) reload on each batch.
    updated = await run_change(request, work, lambda _: [])
    return json_response({"updated": len(updated)})


def add_internal_routes(app: web.Application) -> None:
    """The internal endpoints of docs/architecture.md."""
    app.router.add_get("/internal/v1/products", get_products)
    app.router.add_get("/internal/v1/devices", get_devices)
    app.router.add_post("/internal/v1/devices/status", post_device_status)
    app.router.add_get("/internal/v1/billing/devices", get_billing_devices)
