"""Webhooks per project (/api/v1/webhooks/) and each one's delivery log
(/api/v1/webhooks/{id}/deliveries). The secret is shown once, when the webhook is created (given
or generated); reads show only that one is set."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from twinbill_common.apidocs import documented
from twinbill_common.errors import NotFound, ValidationFailed
from twinbill_twin.api.common import filters_query, listed, one, parse_list_query, path_id, pool_of, read_model
from twinbill_twin.domain.levels import LEVELS, NAMES

Level = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def _http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return url


class WebhookCreate(BaseModel):
    """A webhook: where to POST a project's events, at or above which level, signed with `secret`."""

    model_config = ConfigDict(extra="forbid")
    project_id: int = Field(ge=1, le=2**31 - 1)
    url: str = Field(min_length=1, max_length=2000)
    secret: str | None = Field(default=None, min_length=16, max_length=200)
    min_level: Level = "WARNING"
    enabled: bool = True

    _url = field_validator("url")(_http_url)


class WebhookUpdate(BaseModel):
    """What an update may change."""

    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(default=None, min_length=1, max_length=2000)
    min_level: Level | None = None
    enabled: bool | None = None

    @field_validator("url")
    @classmethod
    def _check(cls, url: str | None) -> str | None:
        return None if url is None else _http_url(url)


class WebhookRead(BaseModel):
    """A webhook as stored (`secret` only in the answer to its creation)."""

    id: int
    project_id: int
    url: str
    min_level: str
    enabled: bool
    created_at: datetime
    secret: str | None = None


class DeliveryRead(BaseModel):
    """One delivery: its event, key, status, attempts and last outcome."""

    id: int
    webhook_id: int
    event_id: int
    idempotency_key: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


def _row(row: Any, *, secret: bool = False) -> dict[str, Any]:
    out = {k: v for k, v in dict(row).items() if k != "secret" or secret}
    out["min_level"] = NAMES.get(out["min_level"], str(out["min_level"]))
    return out


async def _one(conn: asyncpg.Connection, ident: int) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM webhooks WHERE id = $1", ident)
    if row is None:
        raise NotFound(f"no webhook {ident}")
    return row


HOOK_FILTERS: dict[str, type] = {"project_id": int}
DELIVERY_FILTERS: dict[str, type] = {"status": str}
DELIVERY_STATES = ("pending", "delivered", "failed")


@documented(summary="A page of webhooks", query=filters_query(HOOK_FILTERS), response=list[WebhookRead],
            tags=("management",))
async def list_webhooks(request: web.Request) -> web.Response:
    """GET /api/v1/webhooks/?project_id=."""
    page, size, chosen = parse_list_query(request, HOOK_FILTERS)
    where = " WHERE project_id = $1" if chosen else ""
    async with pool_of(request).acquire() as conn:
        total = await conn.fetchval(f"SELECT count(*) FROM webhooks{where}", *chosen.values())
        rows = await conn.fetch(f"SELECT * FROM webhooks{where} ORDER BY id LIMIT {size} OFFSET {(page - 1) * size}",
                                *chosen.values())
    return listed([_row(r) for r in rows], WebhookRead, total=int(total), page=page, page_size=size)


@documented(summary="Create a webhook (its signing secret answered this once)", body=WebhookCreate,
            response=WebhookRead, status=201, tags=("management",))
async def create_webhook(request: web.Request) -> web.Response:
    """POST /api/v1/webhooks/: the answer carries the secret (generated when not given), once."""
    body = await read_model(request, WebhookCreate)
    async with pool_of(request).acquire() as conn:
        if not await conn.fetchval("SELECT 1 FROM projects WHERE id = $1", body.project_id):
            raise ValidationFailed({"project_id": [f"no project {body.project_id}"]})
        row = await conn.fetchrow(
            "INSERT INTO webhooks (project_id, url, secret, min_level, enabled) VALUES ($1, $2, $3, $4, $5) "
            "RETURNING *", body.project_id, body.url, body.secret or secrets.token_urlsafe(32),
            LEVELS[body.min_level], body.enabled)
    return one(_row(row, secret=True), WebhookRead, status=201)


@documented(summary="One webhook", response=WebhookRead, tags=("management",))
async def get_webhook(request: web.Request) -> web.Response:
    """GET /api/v1/webhooks/{id}."""
    async with pool_of(request).acquire() as conn:
        return one(_row(await _one(conn, path_id(request))), WebhookRead)


@documented(summary="Change a webhook", body=WebhookUpdate, response=WebhookRead, tags=("management",))
async def update_webhook(request: web.Request) -> web.Response:
    """PUT /api/v1/webhooks/{id}: url, min_level, enabled."""
    body = await read_model(request, WebhookUpdate)
    values = {k: v for k, v in body.model_dump(exclude_unset=True).items()}
    if any(v is None for v in values.values()):
        raise ValidationFailed({k: ["Field may not be null."] for k, v in values.items() if v is None})
    if "min_level" in values:
        values["min_level"] = LEVELS[values["min_level"]]
    async with pool_of(request).acquire() as conn:
        current = await _one(conn, path_id(request))
        if values:
            sets = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(values))
            await conn.execute(f"UPDATE webhooks SET {sets} WHERE id = $1", current["id"], *values.values())
        return one(_row(await _one(conn, current["id"])), WebhookRead)


@documented(summary="Delete a webhook", status=204, tags=("management",))
async def delete_webhook(request: web.Request) -> web.Response:
    """DELETE /api/v1/webhooks/{id} (its log goes with it)."""
    async with pool_of(request).acquire() as conn:
        current = await _one(conn, path_id(request))
        await conn.execute("DELETE FROM webhooks WHERE id = $1", current["id"])
    return web.Response(status=204)


@documented(summary="A webhook's delivery log, newest first",
            query=filters_query(DELIVERY_FILTERS,
                                enums={"status": DELIVERY_STATES}), response=list[DeliveryRead], tags=("management",))
async def list_deliveries(request: web.Request) -> web.Response:
    """GET /api/v1/webhooks/{id}/deliveries?status=&page=&page_size=: the delivery log, newest first."""
    page, size, chosen = parse_list_query(request, DELIVERY_FILTERS)
    if chosen.get("status", "pending") not in DELIVERY_STATES:
        raise ValidationFailed({"status": [f"Must be one of: {', '.join(DELIVERY_STATES)}."]},
                               data={"location": "query"})
    async with pool_of(request).acquire() as conn:
        hook = await _one(conn, path_id(request))
        args: list[Any] = [hook["id"]]
        where = "webhook_id = $1"
        if "status" in chosen:
            args.append(chosen["status"])
            where += " AND status = $2"
        total = await conn.fetchval(f"SELECT count(*) FROM webhook_deliveries WHERE {where}", *args)
        rows = await conn.fetch(f"SELECT *, idempotency_key::text AS idempotency_key FROM webhook_deliveries "
                                f"WHERE {where} ORDER BY id DESC LIMIT {size} OFFSET {(page - 1) * size}", *args)
    return listed([dict(r) for r in rows], DeliveryRead, total=int(total), page=page, page_size=size)


def add_webhook_routes(app: web.Application) -> None:
    """/api/v1/webhooks/, /api/v1/webhooks/{id}, /api/v1/webhooks/{id}/deliveries."""
    app.router.add_get("/api/v1/webhooks/", list_webhooks)
    app.router.add_post("/api/v1/webhooks/", create_webhook)
    app.router.add_get("/api/v1/webhooks/{id}", get_webhook)
    app.router.add_put("/api/v1/webhooks/{id}", update_webhook)
    app.router.add_delete("/api/v1/webhooks/{id}", delete_webhook)
    app.router.add_get("/api/v1/webhooks/{id}/deliveries", list_deliveries)
