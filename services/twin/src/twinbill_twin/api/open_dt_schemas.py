"""Seed 002's instance answers and query parameters as models for the OpenAPI document (open_dt.py
builds the answers; the reverse-control body is open_dt.ExpectValue, the model that validates it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from twinbill_common.paging import INT32_MAX


class InstanceRow(BaseModel):
    """One instance of the list (times in epoch milliseconds)."""

    model_config = ConfigDict(extra="allow")
    id: int
    tpl: int
    name: str
    desp: str
    ctime: int
    mtime: int
    atime: int
    tplname: str
    attrnum: int


class InstancePage(BaseModel):
    """Seed 002's page: `offset` is the page size, `pageTotal` the number of pages."""

    total: int
    pageTotal: int  # seed 002's name
    page: int
    offset: int
    rows: list[InstanceRow]


class Attribute(BaseModel):
    """An attribute of an instance (State, Description or Stream)."""

    model_config = ConfigDict(extra="allow")
    id: int
    name: str
    attrtype: str
    datatype: str


class InstanceDetail(InstanceRow):
    """An instance with its attributes."""

    attr: list[Attribute]


class Empty(BaseModel):
    """Seed 002's empty data `{}`."""


class InstancesQuery(BaseModel):
    """GET /dt/open/v1/instances."""

    name: str | None = Field(default=None, max_length=128, description="part of the instance's name")
    page: int | None = Field(default=None, ge=1, le=INT32_MAX)
    offset: int | None = Field(default=None, ge=1, le=10_000, description="instances per page")


class InstanceQuery(BaseModel):
    """GET /dt/open/v1/instance."""

    ids: str = Field(pattern=r"^\s*\d+(\s*,\s*\d+)*\s*$", description="instance ids, comma-separated (<= 1,000)")
