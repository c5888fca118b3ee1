"""The catch-all route: authenticate, check the project, forward to the owning service.

Policy: administrators reach everything. Other users reach requests that name a project they are
a member of (`project_id` in the query or JSON body), and seed 000's task-by-key paths, whose
project the gateway reads from the task first. A request that names no project (the whole
instance list of seed 002, say) is for administrators only.
"""

from __future__ import annotations

import json
import re

import aiohttp
from aiohttp import web

from twinbill_common.errors import HttpError, NotFound
from twinbill_gateway.api import SETTINGS, STORE
from twinbill_gateway.auth import Forbidden, authenticate
from twinbill_gateway.domain.routing import Upstream, named_project, upstream_for
from twinbill_gateway.store import User

CLIENT = web.AppKey("upstream_client", aiohttp.ClientSession)
TASK_BY_KEY = re.compile(r"^/api/v1/scheduler/tasks/([^/]+)/")
PASSED_HEADERS = ("Content-Type", "X-Pagination", "X-Request-Id", "Location")


def _base(request: web.Request, upstream: Upstream) -> str:
    settings = request.app[SETTINGS]
    return {"twin": settings.twin_url, "scheduler": settings.scheduler_url,
            "billing": settings.billing_url}[upstream]


async def _task_project(request: web.Request, key: str) -> int | None:
    """The project of a scheduler task, read from the scheduler."""
    url = f"{_base(request, 'scheduler')}/api/v1/scheduler/tasks/{key}/"
    async with request.app[CLIENT].get(url) as response:
        if response.status != 200:
            return None
        body = await response.json()
    data = body.get("data") if isinstance(body, dict) else None
    project = data.get("project_id") if isinstance(data, dict) else None
    return int(project) if isinstance(project, int) else None


async def authorize(request: web.Request, user: User, body: bytes) -> None:
    """Raise Forbidden unless the user may make this request."""
    if user.is_admin:
        return
    parsed: object = None
    if body and request.content_type == "application/json":
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None  # the owning service answers the malformed body itself
    project = named_project(request.query, parsed)
    if project is None and (found := TASK_BY_KEY.match(request.path)):
        project = await _task_project(request, found.group(1))
        if project is None:
            raise NotFound("task not found")
    if project == "invalid":
        raise HttpError(400, "project_id is not an integer", fields={"project_id": ["Not a valid integer."]})
    if project is None:
        raise Forbidden("name a project_id you are a member of (requests across projects are for administrators)")
    if project not in user.projects:
        raise Forbidden(f"not a member of project {project}")


async def forward(request: web.Request) -> web.StreamResponse:
    """Proxy one request to the service that owns its path."""
    upstream = upstream_for(request.path)
    if upstream is None:
        raise NotFound(f"no route for {request.path}")
    settings = request.app[SETTINGS]
    user = await authenticate(request, store=request.app[STORE], secret=settings.jwt_secret.get_secret_value())
    body = await request.read()
    await authorize(request, user, body)
    headers = {k: v for k, v in request.headers.items() if k in ("Content-Type", "Accept", "X-Request-Id")}
    headers["X-Twinbill-User"] = str(user.id)
    url = f"{_base(request, upstream)}{request.rel_url}"
    try:
        async with request.app[CLIENT].request(request.method, url, data=body or None,
                                               headers=headers, allow_redirects=False) as response:
            payload = await response.read()
            passed = {k: v for k, v in response.headers.items() if k in PASSED_HEADERS}
            return web.Response(status=response.status, body=payload, headers=passed)
    except (aiohttp.ClientError, TimeoutError) as err:
        raise HttpError(502, f"{upstream} service did not answer: {type(err).__name__}") from None
