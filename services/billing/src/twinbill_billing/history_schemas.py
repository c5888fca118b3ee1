"""Seed 000's bill history as models for the OpenAPI document: what the two history endpoints
answer and which query parameters they read (history.py builds the answers, in the seed's key
order; its own fields after the seed's are allowed)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from twinbill_common.paging import INT32_MAX

MAX_PAGE_SIZE = 1000


class Resident(BaseModel):
    """A resident of the bill's space (seed 000's `residents`)."""

    name: str
    cellphone: str


class HistoryItem(BaseModel):
    """One bill of GET /api/v1/scheduler/history/ (money and readings as decimal strings)."""

    model_config = ConfigDict(extra="allow")  # bill links after the seed's fields
    id: str
    device_id: str
    device_type: int
    charge: str
    reading_data: str
    from_time: str
    to_time: str
    created_at: str


class HistoryPage(BaseModel):
    """Seed 000's page: `next`/`previous` are true or null, as the seed shows them."""

    count: int
    page_size: int
    next: bool | None
    previous: bool | None
    results: list[HistoryItem]


class TimeItem(BaseModel):
    """One bill of GET /api/v1/scheduler/history/time/ (device_type 0 electricity, 1 water)."""

    model_config = ConfigDict(extra="allow")
    id: str
    house_address: list[str] = Field(min_length=5, max_length=5, description="site, building, storey, zone, space")
    residents: list[Resident]
    device_id: str
    device_type: int
    charge: str
    previous_reading_data: str
    reading_data: str
    from_time: str
    to_time: str
    created_at: str


class HistoryQuery(BaseModel):
    """GET /api/v1/scheduler/history/ (the seed's table says "path"; they are query arguments)."""

    project_id: int = Field(ge=1, le=INT32_MAX)
    device_type: Literal[0, 1, 2] = Field(description="0 every type, 1 water, 2 electricity")
    device_id: str | None = Field(default=None, description="a device id or meter number")
    page_size: int | None = Field(default=None, ge=1, le=MAX_PAGE_SIZE)
    page: int | None = Field(default=None, ge=1, le=INT32_MAX)
    format: Literal["json", "csv"] | None = Field(default=None, description="csv: every match as a CSV file")


class TimeQuery(BaseModel):
    """GET /api/v1/scheduler/history/time/ (its own device-type codes: 10 all, 0 electricity, 1 water)."""

    project_id: int = Field(ge=1, le=INT32_MAX)
    device_type: Literal[10, 0, 1]
    device_id: str | None = None
    wm_type: Literal["自来水表", "纯净水表"] | None = Field(default=None, description="water meter kind")
    start_date: str = Field(description="Y-M-D (the seed writes 2019-9-21)")
    end_date: str = Field(description="Y-M-D, not before start_date")
    format: Literal["json", "csv"] | None = None
