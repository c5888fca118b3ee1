"""Seed 000's task endpoints, its envelope {"meta": {"code", "message"}, "data"}."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from twinbill_common.apidocs import documented
from twinbill_common.errors import HttpError, NotFound, RegistryUnavailable, ValidationFailed
from twinbill_common.http import meta_ok, read_json, validation_fields
from twinbill_common.logging import get_logger
from twinbill_common.paging import INT32_MAX, Errors, query_int, query_page
from twinbill_scheduler.domain.crontab import FIELDS, Crontab, CrontabInvalid, next_fire, parse_crontab
from twinbill_scheduler.domain.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, page_links
from twinbill_scheduler.domain.tasks import Task, render_task
from twinbill_scheduler.keys import STORE, ZONES
from twinbill_scheduler.schemas import CrontabPreview, Empty, PreviewQuery, TaskListQuery, TaskPage, TaskRead

log = get_logger(__name__)

M = TypeVar("M", bound=BaseModel)
_KEY = re.compile(r"^[0-9a-fA-F]{32}$")
Name = Annotated[str, Field(min_length=1, max_length=200)]


class TaskCreate(BaseModel):
    """POST /api/v1/scheduler/task/ body (seed 000)."""

    model_config = ConfigDict(extra="ignore")

    name: Name
    project_id: StrictInt = Field(ge=1, le=INT32_MAX)
    crontab: dict[str, Any]
    device_type: Literal[1, 2]
    enabled: StrictBool = True
    description: str = ""


class TaskUpdate(BaseModel):
    """PUT /api/v1/scheduler/tasks/{natrual_key}/ body: every field required, as the seed says."""

    model_config = ConfigDict(extra="ignore")

    name: Name
    crontab: dict[str, Any]
    enabled: StrictBool
    description: str


class TaskStatus(BaseModel):
    """PUT .../status/ body."""

    model_config = ConfigDict(extra="ignore")

    enabled: StrictBool


def _now() -> datetime:
    return datetime.now(UTC)


def _validate(model: type[M], data: object) -> tuple[M | None, dict[str, list[str]]]:
    try:
        return model.model_validate(data), {}
    except ValidationError as err:
        return None, validation_fields(err)


def _body_with_crontab(model: type[M], data: object) -> tuple[M, Crontab]:
    """Validate a body and its crontab together, so one answer names every bad field."""
    parsed, problems = _validate(model, data)
    crontab: Crontab | None = None
    raw = data.get("crontab") if isinstance(data, dict) else None
    if raw is not None:
        try:
            crontab = parse_crontab(raw)
        except CrontabInvalid as err:
            problems.pop("crontab", None)
            problems.update({f"crontab.{k}" if k != "crontab" else k: v
                             for k, v in err.fields.items()})
    if problems or parsed is None or crontab is None:
        raise ValidationFailed(problems or {"crontab": ["Missing data for required field."]})
    return parsed, crontab


def _key(request: web.Request) -> str:
    key = request.match_info["natrual_key"]
    if not _KEY.match(key):
        raise NotFound(f"task {key!r} not found (natrual_key is 32 hex characters)")
    return key.lower()


async def _existing(request: web.Request) -> Task:
    key = _key(request)
    task = await request.app[STORE].get(key)
    if task is None:
        raise NotFound(f"task {key!r} not found")
    return task


async def _project_zone(request: web.Request, project_id: int) -> str:
    """The project's zone as the registry says it; 503 (nothing written) when it cannot say."""
    try:
        return await request.app[ZONES].zone_of(project_id)
    except RegistryUnavailable as err:
        # the cause (an address, a client library's exception) goes to the log, not the client
        log.warning("project registry unavailable", project_id=project_id, error=str(err))
        raise HttpError(503, f"project registry unavailable: GET /api/v1/projects/{project_id} "
                             "got no answer from the twin service; retry") from err


def _next_from_now(crontab: Crontab, zone: str) -> datetime:
    return next_fire(_now(), crontab=crontab, tz=ZoneInfo(zone))


@documented(summary="Create a task (seed 000)", body=TaskCreate, response=TaskRead, envelope="meta", tags=("tasks",))
async def create_task(request: web.Request) -> web.Response:
    """POST /api/v1/scheduler/task/: "create crontab ok."."""
    body, crontab = _body_with_crontab(TaskCreate, await read_json(request))
    zone = await _project_zone(request, body.project_id)
    now = _now()
    task = Task(
        natrual_key=uuid.uuid4().hex, name=body.name, project_id=body.project_id,
        device_type=body.device_type, crontab=crontab, enabled=body.enabled,
        description=body.description, timezone=zone,
        next_fire_at=next_fire(now, crontab=crontab, tz=ZoneInfo(zone)) if body.enabled else None,
        last_run_at=None, create_time=now, update_time=now,
    )
    stored = await request.app[STORE].insert(task)
    return meta_ok(render_task(stored), "create crontab ok.")


@documented(summary="List a project's tasks (seed 000)", query=TaskListQuery, response=TaskPage, envelope="meta",
            tags=("tasks",))
async def list_tasks(request: web.Request) -> web.Response:
    """GET /api/v1/scheduler/tasks/: "task list info"; device_type 0 means every type."""
    # The seed's table says "path"; they are query arguments. device_type 0 is every type.
    errors: Errors = {}
    project_id = query_int(request.query, "project_id", required=True, errors=errors)
    device_type = query_int(request.query, "device_type", required=True, minimum=0, maximum=2,
                            errors=errors)
    window = query_page(request.query, default_size=DEFAULT_PAGE_SIZE, max_size=MAX_PAGE_SIZE,
                        errors=errors)
    if errors or project_id is None:
        raise ValidationFailed(errors, data={"location": "query"})
    count, tasks = await request.app[STORE].page(
        project_id=project_id, device_type=device_type or None,
        limit=window.page_size, offset=window.offset)
    has_next, has_previous = page_links(count=count, window=window)
    return meta_ok({"count": count, "page_size": window.page_size, "next": has_next,
                    "previous": has_previous, "results": [render_task(t) for t in tasks]},
                   "task list info")


@documented(summary="One task (seed 000)", response=TaskRead, envelope="meta", tags=("tasks",))
async def get_task(request: web.Request) -> web.Response:
    """GET /api/v1/scheduler/tasks/{natrual_key}/: "task info"."""
    return meta_ok(render_task(await _existing(request)), "task info")


@documented(summary="Replace a task's fields (seed 000)", body=TaskUpdate, response=TaskRead, envelope="meta",
            tags=("tasks",))
async def update_task(request: web.Request) -> web.Response:
    """PUT /api/v1/scheduler/tasks/{natrual_key}/: "task update ok.".

    A changed crontab, or a task switched on, gets its next fire computed from now: editing
    never fires retroactively. Otherwise the pending fire time is kept.
    """
    key = _key(request)
    task = await _existing(request)
    body, crontab = _body_with_crontab(TaskUpdate, await read_json(request))
    zone = await _project_zone(request, task.project_id)
    reschedule = crontab != task.crontab or zone != task.timezone or not task.enabled
    if not body.enabled:
        next_at = None
    elif reschedule or task.next_fire_at is None:
        next_at = _next_from_now(crontab, zone)
    else:
        next_at = task.next_fire_at
    changed = Task(**{**task.__dict__, "name": body.name, "crontab": crontab,
                      "enabled": body.enabled, "description": body.description,
                      "timezone": zone, "next_fire_at": next_at, "update_time": _now()})
    stored = await request.app[STORE].replace(changed)
    if stored is None:
        raise NotFound(f"task {key!r} not found")
    return meta_ok(render_task(stored), "task update ok.")


@documented(summary="Enable or disable a task (seed 000)", body=TaskStatus, response=Empty, envelope="meta",
            tags=("tasks",))
async def set_task_status(request: web.Request) -> web.Response:
    """PUT /api/v1/scheduler/tasks/{natrual_key}/status/: "update ok."."""
    key = _key(request)
    task = await _existing(request)
    body, problems = _validate(TaskStatus, await read_json(request))
    if body is None:
        raise ValidationFailed(problems)
    if body.enabled != task.enabled:
        next_at = _next_from_now(task.crontab, task.timezone) if body.enabled else None
        changed = Task(**{**task.__dict__, "enabled": body.enabled, "next_fire_at": next_at,
                          "update_time": _now()})
        if await request.app[STORE].replace(changed) is None:
            raise NotFound(f"task {key!r} not found")
    return meta_ok({}, "update ok.")


@documented(summary="Delete a task (seed 000)", response=Empty, envelope="meta", tags=("tasks",))
async def delete_task(request: web.Request) -> web.Response:
    """DELETE /api/v1/scheduler/tasks/{natrual_key}/: "delete ok."."""
    key = _key(request)
    if not await request.app[STORE].delete(key):
        raise NotFound(f"task {key!r} not found")
    return meta_ok({}, "delete ok.")


def fire_times(after: datetime, *, crontab: Crontab, zone: str, count: int) -> list[str]:
    """The next `count` fire times strictly after `after`, as naive local ISO in `zone`."""
    tz = ZoneInfo(zone)
    times: list[str] = []
    moment = after
    for _ in range(count):
        moment = next_fire(moment, crontab=crontab, tz=tz)
        times.append(moment.astimezone(tz).replace(tzinfo=None).isoformat(timespec="seconds"))
    return times


@documented(summary="The next fire times of a crontab", query=PreviewQuery, response=CrontabPreview,
            envelope="meta", tags=("tasks",))
async def preview_crontab(request: web.Request) -> web.Response:
    """GET /api/v1/scheduler/crontab/preview/?project_id=&month=&day=&hour=&minute=&count=:
    the next fire times of a crontab in the project's zone, before saving it (nothing stored)."""
    errors: Errors = {}
    project_id = query_int(request.query, "project_id", required=True, errors=errors)
    count = query_int(request.query, "count", default=5, maximum=50, errors=errors)
    crontab: Crontab | None = None
    try:
        crontab = parse_crontab({name: request.query[name] for name in FIELDS if name in request.query})
    except CrontabInvalid as err:
        errors.update({f"crontab.{k}" if k != "crontab" else k: v for k, v in err.fields.items()})
    if errors or project_id is None or crontab is None:
        raise ValidationFailed(errors, data={"location": "query"})
    zone = await _project_zone(request, project_id)
    return meta_ok({"timezone": zone, "crontab": crontab.as_dict(),
                    "fire_times": fire_times(_now(), crontab=crontab, zone=zone, count=count)},
                   "crontab preview")


def add_task_routes(app: web.Application) -> None:
    """Mount seed 000's paths, trailing slashes as documented."""
    app.router.add_post("/api/v1/scheduler/task/", create_task)
    app.router.add_get("/api/v1/scheduler/tasks/", list_tasks)
    app.router.add_get("/api/v1/scheduler/tasks/{natrual_key}/", get_task)
    app.router.add_put("/api/v1/scheduler/tasks/{natrual_key}/", update_task)
    app.router.add_delete("/api/v1/scheduler/tasks/{natrual_key}/", delete_task)
    app.router.add_put("/api/v1/scheduler/tasks/{natrual_key}/status/", set_task_status)
    app.router.add_get("/api/v1/scheduler/crontab/preview/", preview_crontab)
