"""BEMServer's service resources (seed 001's `st_*` entry points; bemserver-api 0.25 routes and
schemas, bemserver-core 0.20 `scheduled_tasks`): per campaign, whether the missing-data check,
the outlier check and the cleanup run (`is_enabled`); per series, where the cleanup got to
(read only); per site, whether weather and forecasts are downloaded. Each has BEMServer's
`/full` listing: every campaign (series, site) with its state, `id` and `is_enabled` null where
the service was never set for it. What runs them is twinbill_twin.checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from twinbill_common.apidocs import JsonSchema, describe, smorest_query
from twinbill_common.errors import HttpError
from twinbill_common.smorest import Field, add_collection_routes, load_query, respond
from twinbill_twin.api.common import pool_of
from twinbill_twin.bemserver.access import access_of
from twinbill_twin.bemserver.resources import (
    PARENT_FILTERS,
    REF,
    Resource,
    _creator,
    _deleter,
    _getter,
    _lister,
    _updater,
)

ENABLED = {"is_enabled": Field("bool", nullable=False)}


def _campaign_service(path: str, table: str) -> Resource:
    return Resource(path, table, {"id": "id", "campaign_id": "campaign_id", "is_enabled": "is_enabled"},
                    {"campaign_id": REF, **ENABLED}, ENABLED, {"campaign_id": Field("int")},
                    campaign="campaign_id", defaults={"is_enabled": True})


def _site_service(path: str, table: str) -> Resource:
    return Resource(path, table, {"id": "id", "site_id": "site_id", "is_enabled": "is_enabled"},
                    {"site_id": REF, **ENABLED}, ENABLED, {"site_id": Field("int")},
                    campaign="(SELECT s.project_id FROM sites s WHERE s.id = site_id)", defaults={"is_enabled": True})


CHECK_MISSING = _campaign_service("st_check_missings_by_campaigns", "bem_st_check_missings")
CHECK_OUTLIERS = _campaign_service("st_check_outliers_by_campaigns", "bem_st_check_outliers")
CLEANUP = _campaign_service("st_cleanups_by_campaigns", "bem_st_cleanups_by_campaigns")
WEATHER = _site_service("st_download_weather_data_by_sites", "bem_st_download_weather")
FORECAST = _site_service("st_download_weather_forecast_data_by_sites", "bem_st_download_weather_forecast")
CLEANUP_BY_SERIES = Resource(
    "st_cleanups_by_timeseries", "bem_st_cleanups_by_timeseries",
    {"id": "id", "timeseries_id": "timeseries_id", "last_timestamp": "last_timestamp"}, {}, {},
    {"campaign_id": Field("int"), "timeseries_id": Field("int")},
    campaign="(SELECT t.campaign_id FROM bem_timeseries t WHERE t.id = timeseries_id)")
PARENT_FILTERS[("st_cleanups_by_timeseries", "campaign_id")] = \
    "timeseries_id IN (SELECT id FROM bem_timeseries WHERE campaign_id = {})"


@dataclass(frozen=True)
class Full:
    """One `/full` listing: the base rows (campaigns, series or sites) left-joined to the service."""

    base: str                         # FROM ... of the base rows, aliased b
    service: str                      # the service table, aliased st, joined on `join`
    join: str
    columns: str
    filters: dict[str, str]           # query parameter -> SQL with {} for its placeholder
    sorts: dict[str, str]             # sort field -> SQL expression
    campaign: str                     # the base row's campaign
    scope: str | None = None          # the base row's campaign scope (a series)
    enabled: bool = True              # has is_enabled


def _campaign_full(table: str) -> Full:
    return Full("projects b", table, "st.campaign_id = b.id",
                "st.id, b.id AS campaign_id, b.name AS campaign_name, st.is_enabled",
                {"campaign_id": "b.id = {}", "in_campaign_name": "b.name ILIKE {}"},
                {"campaign_name": "b.name"}, campaign="b.id")


def _site_full(table: str) -> Full:
    return Full("sites b", table, "st.site_id = b.id",
                "st.id, b.id AS site_id, b.name AS site_name, st.is_enabled",
                {"campaign_id": "b.project_id = {}", "site_id": "b.id = {}", "in_site_name": "b.name ILIKE {}"},
                {"campaign_id": "b.project_id", "site_name": "b.name"}, campaign="b.project_id")


FULLS = {
    CHECK_MISSING.path: _campaign_full(CHECK_MISSING.table),
    CHECK_OUTLIERS.path: _campaign_full(CHECK_OUTLIERS.table),
    CLEANUP.path: _campaign_full(CLEANUP.table),
    WEATHER.path: _site_full(WEATHER.table),
    FORECAST.path: _site_full(FORECAST.table),
    CLEANUP_BY_SERIES.path: Full(
        "bem_timeseries b", CLEANUP_BY_SERIES.table, "st.timeseries_id = b.id",
        "st.id, b.id AS timeseries_id, b.name AS timeseries_name, b.unit_symbol AS timeseries_unit_symbol, "
        "st.last_timestamp",
        {"campaign_id": "b.campaign_id = {}", "timeseries_id": "b.id = {}", "in_timeseries_name": "b.name ILIKE {}"},
        {"timeseries_name": "b.name", "last_timestamp": "st.last_timestamp"},
        campaign="b.campaign_id", scope="b.campaign_scope_id", enabled=False),
}


def _order(full: Full, sort: str | None) -> str:
    """BEMServer's SortField: comma-separated fields, each with an optional +/-; a null
    last_timestamp stays last whichever the direction (bemserver-core's nulls_last)."""
    if not sort:
        return "b.id"
    terms: list[str] = []
    for part in sort.split(","):
        name = part.strip().lstrip("+-")
        if name not in full.sorts:
            choices = ", ".join(f"{sign}{field}" for field in full.sorts for sign in ("", "+", "-"))
            raise HttpError(422, "", fields={"sort": [f"Must be one of: {choices}."]}, data={"location": "query"})
        direction = " DESC" if part.strip().startswith("-") else ""
        nulls = " NULLS LAST" if name == "last_timestamp" else ""
        terms.append(f"{full.sorts[name]}{direction}{nulls}")
    return ", ".join([*terms, "b.id"])


def _full_lister(full: Full) -> Any:
    fields = {name: Field("str" if name.startswith("in_") else "int") for name in full.filters}
    fields["sort"] = Field("str")
    if full.enabled:
        fields["is_enabled"] = Field("bool")

    async def handler(request: web.Request) -> web.Response:
        access = access_of(request)
        query = load_query(request.query, fields)
        clauses: list[str] = []
        args: list[Any] = []
        for name, template in full.filters.items():
            if name in query:
                args.append(f"%{query[name]}%" if name.startswith("in_") else query[name])
                clauses.append(template.format(f"${len(args)}"))
        if "is_enabled" in query:  # bemserver-core: a missing row counts as not enabled
            clauses.append("coalesce(st.is_enabled, false)" if query["is_enabled"] else
                           "NOT coalesce(st.is_enabled, false)")
        if not access.admin:
            args.append(sorted(access.campaigns))
            visible = f"{full.campaign} = ANY(${len(args)}::int[])"
            if full.scope is not None:
                args.append(sorted(access.scopes))
                visible = f"({visible} OR {full.scope} = ANY(${len(args)}::int[]))"
            clauses.append(visible)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        rows = await pool_of(request).fetch(
            f"SELECT {full.columns} FROM {full.base} LEFT JOIN {full.service} st ON {full.join}{where} "
            f"ORDER BY {_order(full, query.get('sort'))}", *args)
        return respond(request, [{name: value.isoformat() if hasattr(value, "isoformat") else value
                                  for name, value in dict(row).items()} for row in rows])
    return describe(handler, summary="Each item with its service state (BEMServer's /full)",
                    query=smorest_query(fields), response=JsonSchema({"type": "object"}).many(), tags=("bemserver",))


def add_service_routes(app: web.Application, prefix: str) -> None:
    """`/<service>/full` first (before `/{id}` takes it), then each service's collection routes;
    the per-series cleanup state is read only, as in bemserver-api (written by the cleanup)."""
    for path, full in FULLS.items():
        app.router.add_get(f"{prefix}/{path}/full", _full_lister(full))
    for resource in (CHECK_MISSING, CHECK_OUTLIERS, CLEANUP, WEATHER, FORECAST):
        add_collection_routes(app, f"{prefix}/{resource.path}", lister=_lister(resource), creator=_creator(resource),
                              getter=_getter(resource), updater=_updater(resource), deleter=_deleter(resource))
    app.router.add_get(f"{prefix}/{CLEANUP_BY_SERIES.path}/", _lister(CLEANUP_BY_SERIES))
    app.router.add_get(prefix + f"/{CLEANUP_BY_SERIES.path}/" + "{id}", _getter(CLEANUP_BY_SERIES))


__all__ = ["CHECK_MISSING", "CHECK_OUTLIERS", "CLEANUP", "CLEANUP_BY_SERIES", "FORECAST", "WEATHER",
           "add_service_routes"]
