"""Management routes of products (thing models + templates) and devices (+ instances)."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from twinbill_common.apidocs import documented
from twinbill_common.schemas import RegistryChanged
from twinbill_twin import schemas as s
from twinbill_twin.api.common import (
    changes,
    delete_handler,
    get_handler,
    list_handler,
    one,
    path_id,
    read_model,
    run_change,
)
from twinbill_twin.events import change
from twinbill_twin.keys import DEVICE_SECRETS
from twinbill_twin.store import devices, products

PRODUCT_FILTERS: dict[str, type] = {"product_key": str, "name": str, "is_gateway": bool}
DEVICE_FILTERS: dict[str, type | range] = {
    "project_id": int, "product_key": str, "device_key": str, "device_type": range(1, 3),  # smallint 1, 2
    "gateway_id": int, "space_id": int, "online": bool, "name": str}


def _product_events(action: str) -> Any:
    def build(row: dict[str, Any]) -> list[RegistryChanged]:
        data = s.ProductRead.model_validate(row).model_dump(mode="json")
        events = [change("product", action, row["id"], data=data)]
        if row.get("template_id") is not None:
            events.append(change("template", action, row["template_id"],
                                 data={"product_id": row["id"], "name": row["name"]}))
        return events
    return build


def device_events(action: str, row: dict[str, Any]) -> list[RegistryChanged]:
    """device.<action> (and instance.<action>) for one device row."""
    data = s.DeviceRead.model_validate(row).model_dump(mode="json")
    events = [change("device", action, row["id"], project_id=row["project_id"], data=data)]
    if row.get("instance_id") is not None:
        events.append(change("instance", action, row["instance_id"], project_id=row["project_id"],
                             data={"device_id": row["id"], "name": row["name"]}))
    return events


@documented(summary="Create a product", body=s.ProductCreate, response=s.ProductRead, status=201,
            tags=("management",))
async def create_product(request: web.Request) -> web.Response:
    """POST /api/v1/products/: the product, its measurepoints and its template."""
    body = await read_model(request, s.ProductCreate)
    s.check_points(body.measurepoints, body.billing_register)
    values = {**body.model_dump(exclude={"measurepoints"}), "measurepoints": body.measurepoints}

    async def work(conn: asyncpg.Connection) -> dict[str, Any]:
        return await products.create_product(conn, values)

    return one(await run_change(request, work, _product_events("created")), s.ProductRead, status=201)


@documented(summary="Change a product", body=s.ProductUpdate, response=s.ProductRead, tags=("management",))
async def update_product(request: web.Request) -> web.Response:
    """PUT /api/v1/products/{id}: new measurepoints re-sync the product's instances."""
    ident = path_id(request)
    body = await read_model(request, s.ProductUpdate)
    s.check_points(body.measurepoints, body.billing_register)
    values = changes(body)
    if body.measurepoints is not None:
        values["measurepoints"] = body.measurepoints

    async def work(conn: asyncpg.Connection) -> dict[str, Any]:
        return await products.update_product(conn, ident, values)

    return one(await run_change(request, work, _product_events("updated")), s.ProductRead)


@documented(summary="Create a device (its secret answered this once)", body=s.DeviceCreate,
            response=s.DeviceCreated, status=201, tags=("management",))
async def create_device(request: web.Request) -> web.Response:
    """POST /api/v1/devices/: the device and its instance; the secret is returned this once."""
    body = await read_model(request, s.DeviceCreate)
    s.check_kind(body.device_type, body.water_meter_kind)
    values = body.model_dump()
    secret = values.get("secret") or devices.new_secret()
    values["secret"] = request.app[DEVICE_SECRETS].seal(secret)  # stored sealed, answered plain

    async def work(conn: asyncpg.Connection) -> dict[str, Any]:
        return await devices.create_device(conn, values)

    row = await run_change(request, work, lambda row: device_events("created", row))
    return one({**row, "secret": secret}, s.DeviceCreated, status=201)


@documented(summary="Change a device", body=s.DeviceUpdate, response=s.DeviceRead, tags=("management",))
async def update_device(request: web.Request) -> web.Response:
    """PUT /api/v1/devices/{id}."""
    ident = path_id(request)
    values = changes(await read_model(request, s.DeviceUpdate))
    if values.get("secret"):
        values["secret"] = request.app[DEVICE_SECRETS].seal(values["secret"])

    async def work(conn: asyncpg.Connection) -> dict[str, Any]:
        return await devices.update_device(conn, ident, values)

    return one(await run_change(request, work, lambda row: device_events("updated", row)), s.DeviceRead)


def add_thing_routes(app: web.Application) -> None:
    """Products and devices under /api/v1/ (a product in use is a 409 to delete; a device's
    instance goes with it; secrets are never listed)."""
    for name, lister, creator, getter, updater, deleter in (
        ("products", list_handler(products.list_products, filters=PRODUCT_FILTERS, read=s.ProductRead),
         create_product, get_handler(products.get_product, read=s.ProductRead), update_product,
         delete_handler(products.delete_product, events=_product_events("deleted"))),
        ("devices", list_handler(devices.list_devices, filters=DEVICE_FILTERS, read=s.DeviceRead),
         create_device, get_handler(devices.get_device, read=s.DeviceRead), update_device,
         delete_handler(devices.delete_device, events=lambda row: device_events("deleted", row))),
    ):
        app.router.add_get(f"/api/v1/{name}/", lister)
        app.router.add_post(f"/api/v1/{name}/", creator)
        app.router.add_get(f"/api/v1/{name}/{{id}}", getter)
        app.router.add_put(f"/api/v1/{name}/{{id}}", updater)
        app.router.add_delete(f"/api/v1/{name}/{{id}}", deleter)
