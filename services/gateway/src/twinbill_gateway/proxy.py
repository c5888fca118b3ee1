"""The catch-all route: authenticate, check the project, forward to the owning service.

Policy (administrators reach everything; `domain.access` classifies the path):
- a request naming different projects in its query and JSON body is refused (403);
- task-by-key paths: the task's project is always read from the scheduler (unknown: 404);
- item paths of managed resources: the owner is always read by GETting the item from its service
  (unknown: 404; an item without a project, a product say, is for administrators);
- `/dt/open/...` and unlisted paths: administrators only;
- collection paths: the project named in the query or body must be one of the user's.
Any project the request names must also be one of the user's.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web

from twinbill_common.errors import HttpError, NotFound
from twinbill_common.logging import get_logger
from twinbill_gateway.auth import authenticate
from twinbill_gateway.bemserver.auth import readable_projects
from twinbill_gateway.domain.access import (
    AdminOnly,
    Collection,
    InvalidProject,
    Item,
    OpenDt,
    ProjectConflict,
    TaskKey,
    access_for,
    item_owner,
    named_projects,
    parse_body,
)
from twinbill_gateway.domain.routing import Upstream, upstream_for
from twinbill_gateway.errors import Forbidden
from twinbill_gateway.keys import CLIENT, SETTINGS, STORE
from twinbill_gateway.store import User

PASSED_HEADERS = ("Content-Type", "Content-Disposition", "X-Pagination", "X-Request-Id", "Location")
FORWARDED_HEADERS = ("Content-Type", "Accept", "X-Request-Id", "X-Twinbill-Reason")
STREAMED_TYPES = frozenset({"text/csv"})  # exports: relayed chunk by chunk, never held whole
STREAM_CHUNK = 64 * 1024
log = get_logger(__name__)


def _base(request: web.Request, upstream: Upstream) -> str:
    settings = request.app[SETTINGS]
    return {"twin": settings.twin_url, "scheduler": settings.scheduler_url,
            "billing": settings.billing_url}[upstream]


async def _lookup(request: web.Request, upstream: Upstream, path: str, what: str) -> Any:
    """GET `path` from `upstream` for its owner: the JSON body, 404 when unknown, 502 when down."""
    try:
        async with request.app[CLIENT].get(f"{_base(request, upstream)}{path}") as response:
            if response.status == 404:
                raise NotFound(f"{what} not found")
            if response.status >= 500:
                raise HttpError(502, f"{upstream} service failed reading the owner of {what}")
            if response.status != 200:
                raise Forbidden(f"cannot read the project of {what} ({upstream} answered {response.status})")
            return await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as err:
        raise HttpError(502, f"{upstream} service did not answer the owner of {what}: "
                             f"{type(err).__name__}") from None


async def _owner(request: web.Request, access: TaskKey | Item) -> int:
    """The project that owns a task or an item, read from its service."""
    if isinstance(access, TaskKey):
        what = f"task {access.key!r}"
        body = await _lookup(request, "scheduler", f"/api/v1/scheduler/tasks/{access.key}/", what)
        data = body.get("data") if isinstance(body, dict) else None
        owner = item_owner("tasks", data)
    else:
        what = f"{access.resource} item {access.lookup.rsplit('/', 1)[-1]!r}"
        owner = item_owner(access.resource, await _lookup(request, access.upstream, access.lookup, what))
    if owner is None:
        raise Forbidden(f"{what} belongs to no project: administrators only")
    return owner


async def authorize(request: web.Request, user: User, body: bytes) -> None:
    """Raise Forbidden (or 400/404) unless the user may make this request."""
    if user.is_admin:
        return
    access = access_for(request.rel_url.raw_path)
    if isinstance(access, AdminOnly):
        raise Forbidden(access.reason)
    if isinstance(access, OpenDt):
        return  # the twin shows only the projects named in X-Twinbill-Projects (see forward)
    try:
        named = named_projects(request.query.getall("project_id", []), parse_body(body))
    except ProjectConflict as err:
        raise Forbidden(str(err)) from None
    except InvalidProject as err:
        raise HttpError(400, str(err), fields={"project_id": ["Not a valid integer."]}) from None
    if named is not None and named not in user.projects:
        raise Forbidden(f"not a member of project {named}")
    if isinstance(access, Collection):
        if named is None:
            raise Forbidden("name a project_id you are a member of (requests across projects are for administrators)")
        return
    owner = await _owner(request, access)
    if owner not in user.projects:
        raise Forbidden(f"not a member of project {owner}")


async def forward(request: web.Request) -> web.StreamResponse:
    """Proxy one request to the service that owns its path."""
    upstream = upstream_for(request.path)
    if upstream is None:
        raise NotFound(f"no route for {request.path}")
    settings = request.app[SETTINGS]
    user = await authenticate(request, store=request.app[STORE], secret=settings.jwt_secret.get_secret_value())
    body = await request.read()
    await authorize(request, user, body)
    # looked up case-insensitively: a client may send `x-twinbill-reason` (HTTP/2 proxies lower-case)
    headers = {name: value for name in FORWARDED_HEADERS if (value := request.headers.get(name)) is not None}
    headers["X-Twinbill-User"] = str(user.id)
    if not user.is_admin and isinstance(access_for(request.rel_url.raw_path), OpenDt):
        headers["X-Twinbill-Projects"] = ",".join(map(str, sorted(await readable_projects(request, user))))
    url = f"{_base(request, upstream)}{request.rel_url}"
    try:
        async with request.app[CLIENT].request(request.method, url, data=body or None,
                                               headers=headers, allow_redirects=False) as response:
            passed = {k: v for k, v in response.headers.items() if k in PASSED_HEADERS}
            if response.status == 200 and response.content_type in STREAMED_TYPES:
                return await _relay(request, response, passed)
            payload = await response.read()
            return web.Response(status=response.status, body=payload, headers=passed)
    except (aiohttp.ClientError, TimeoutError) as err:
        raise HttpError(502, f"{upstream} service did not answer: {type(err).__name__}") from None


async def _relay(request: web.Request, response: aiohttp.ClientResponse, headers: dict[str, str]) -> web.StreamResponse:
    """Stream an export to the client as it arrives (constant memory). Once the answer has started,
    an upstream failure can only end it early: the chunked body is left unterminated, so the client
    sees a broken transfer rather than a file that looks complete."""
    relayed = web.StreamResponse(status=response.status, headers=headers)
    await relayed.prepare(request)
    try:
        async for chunk in response.content.iter_chunked(STREAM_CHUNK):
            await relayed.write(chunk)
    except (aiohttp.ClientError, TimeoutError) as err:
        log.warning("upstream export broke off", path=request.path, error=type(err).__name__)
        if request.transport is not None:
            request.transport.close()
        return relayed
    await relayed.write_eof()
    return relayed
