"""What the task API answers and which query parameters it reads, as models for its OpenAPI
document (seed 000; the bodies it validates are TaskCreate / TaskUpdate / TaskStatus in api.py)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from twinbill_common.paging import INT32_MAX


class CrontabRead(BaseModel):
    """Seed 000's crontab: each field a crontab expression, `*` for every."""

    month: str
    day: str
    hour: str
    minute: str


class TaskRead(BaseModel):
    """A task as seed 000 shows it (the key keeps the seed's spelling `natrual_key`)."""

    name: str
    crontab: CrontabRead
    natrual_key: str = Field(description="32 hex characters (the seed abbreviates them)")
    project_id: int
    device_type: int
    last_run_at: str | None
    enabled: bool
    update_time: str
    create_time: str
    description: str


class TaskPage(BaseModel):
    """Seed 000's page of tasks."""

    count: int
    page_size: int
    next: bool
    previous: bool
    results: list[TaskRead]


class CrontabPreview(BaseModel):
    """The next fire times of a crontab in the project's zone."""

    timezone: str
    crontab: CrontabRead
    fire_times: list[str]


class Empty(BaseModel):
    """Seed 000's empty data `{}`."""


class TaskListQuery(BaseModel):
    """GET /api/v1/scheduler/tasks/ (the seed's table says "path"; they are query arguments)."""

    project_id: int = Field(ge=-(2**31), le=INT32_MAX, description="the project")
    device_type: int = Field(ge=0, le=2, description="0 every type, 1 water, 2 electricity")
    page_size: int | None = Field(default=None, ge=1, le=100, description="tasks per page")
    page: int | None = Field(default=None, ge=1, le=INT32_MAX, description="page number, from 1")


class PreviewQuery(BaseModel):
    """GET /api/v1/scheduler/crontab/preview/."""

    project_id: int = Field(ge=-(2**31), le=INT32_MAX)
    month: str | None = None
    day: str | None = None
    hour: str | None = None
    minute: str | None = None
    count: int | None = Field(default=None, ge=1, le=50)
