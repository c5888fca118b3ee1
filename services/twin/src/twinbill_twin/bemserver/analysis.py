"""BEMServer's /analysis/: completeness of series per bucket, and the energy consumption
breakdown of a site or building. A consumption series that is a meter's billing register is
read as the consumption the register shows, counted per bucket with billing's own rules
(twinbill_common.registers), so a breakdown and the bills agree."""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise
from typing import Any

import asyncpg
from aiohttp import web

from twinbill_common.apidocs import JsonSchema, documented
from twinbill_common.errors import HttpError
from twinbill_common.smorest import path_id, respond
from twinbill_twin.api.common import pool_of
from twinbill_twin.bemserver import payloads as p
from twinbill_twin.bemserver.access import access_of
from twinbill_twin.bemserver.aggregates import aggregate_sql
from twinbill_twin.bemserver.meters import meter_consumption
from twinbill_twin.bemserver.query import (
    bucket_width,
    clean_or_raw,
    data_state,
    find_series,
    labels_of,
    query_error,
    query_params,
    time_param,
    zone_param,
)
from twinbill_twin.domain.analysis import ENERGY_WH, VOLUME_M3, completeness, conversion, unit_family


def _grid(request: web.Request) -> tuple[p.Buckets, Any]:
    start_at, end_at = time_param(request, "start_time"), time_param(request, "end_time")
    zone = zone_param(request)
    unit, width = bucket_width(request)
    try:
        return p.buckets(start_at, end_at, unit=unit, width=width, zone=zone, limit=100_000), zone
    except ValueError as err:
        raise query_error("bucket_width_value", f"Too many buckets: {err}.") from None


async def _bucket_values(conn: asyncpg.Connection, keys: list[int], grid: p.Buckets,
                         aggregation: str) -> dict[int, list[float]]:
    """Per sample key, each bucket's count or sum (0 where empty)."""
    values: dict[int, list[float]] = {key: [0.0] * len(grid.starts) for key in keys}
    if not grid.starts or not keys:
        return values
    args: list[Any] = [keys, grid.starts[0], grid.end]
    if grid.width is None:
        args.append(grid.starts)
    # one row per series: its key, the non-empty buckets' numbers (from 1) and their values
    for key, numbers, sums in await conn.fetch(aggregate_sql(aggregation, grid), *args):
        for number, value in zip(numbers, sums, strict=True):
            values[key][number - 1] = float(value)
    return values


GRID = ("start_time", "end_time", "bucket_width_unit")
COMPLETENESS = JsonSchema({"type": "object", "required": ["timestamps", "timeseries"], "properties": {
    "timestamps": {"type": "array", "items": {"type": "string"}},
    "timeseries": {"type": "object", "additionalProperties": {"type": "object", "properties": {
        "name": {"type": "string"}, "count": {"type": "array", "items": {"type": "integer"}},
        "ratio": {"type": "array", "items": {"type": ["number", "null"]}}, "total_count": {"type": "integer"},
        "avg_count": {"type": ["number", "null"]}, "avg_ratio": {"type": ["number", "null"]},
        "interval": {"type": ["number", "null"]}, "undefined_interval": {"type": "boolean"},
        "expected_count": {"type": "array", "items": {"type": ["number", "null"]}}}}}}}, "bemserver_completeness")
CONSUMPTION = JsonSchema({"type": "object", "required": ["timestamps", "energy"], "properties": {
    "timestamps": {"type": "array", "items": {"type": "string"}},
    "energy": {"type": "object", "description": "energy -> end use -> one value per bucket"}}},
    "bemserver_energy_consumption")


@documented(summary="Data completeness per series and bucket", response=COMPLETENESS,
            query=query_params("data_state", "timeseries", *GRID, "bucket_width_value", "timezone",
                               required=("data_state", "timeseries", *GRID)), tags=("bemserver",))
async def get_completeness(request: web.Request) -> web.Response:
    """GET /analysis/completeness: per series and bucket, values received against the expected
    count from the series' "Interval" property (seconds), inferred when it is not defined."""
    access = access_of(request)
    state = data_state(request)
    grid, zone = _grid(request)
    labels = labels_of(request)
    async with pool_of(request).acquire() as conn:
        series = await find_series(conn, request, labels, state=state, access=access)
        counts = await _bucket_values(conn, [s.key for s in series], grid, "count")
        rows = await conn.fetch(
            "SELECT t.id, t.name, d.value FROM bem_timeseries t LEFT JOIN (bem_ts_property_data d JOIN "
            "bem_ts_properties pr ON pr.id = d.property_id AND pr.name = 'Interval') ON d.timeseries_id = t.id "
            "WHERE t.id = ANY($1::int[])", [int(s.label) for s in series])
    by_id = {str(r["id"]): r for r in rows}
    bounds = [*grid.starts, grid.end]
    seconds = [(b - a) / 1000 for a, b in pairwise(bounds)]
    body: dict[str, Any] = {"timestamps": [p.json_time(ts, zone) for ts in grid.starts], "timeseries": {}}
    for item in series:
        row = by_id[item.label]
        interval = None if row["value"] is None else int(float(row["value"]))  # BEMServer: int(value)
        result = completeness([int(c) for c in counts[item.key]], seconds, interval)
        body["timeseries"][item.label] = {
            "name": row["name"], "count": result.count, "ratio": result.ratio, "total_count": result.total_count,
            "avg_count": result.avg_count, "avg_ratio": result.avg_ratio, "interval": result.interval,
            "undefined_interval": result.undefined_interval, "expected_count": result.expected_count}
    return respond(request, body)  # BEMServer answers both with an ETag


LEVELS = {"site": "sites", "building": "buildings"}


@documented(summary="Energy consumption breakdown of a site or building, per energy and end use",
            response=CONSUMPTION, path_types={"level": str},
            query=query_params(*GRID, "bucket_width_value", "timezone", required=GRID, more={
                "unit": {"type": "string", "description": "Wh unless given (an energy or volume unit)"},
                "ratio_property": {"type": "string", "description": "divide by this property of the element"}}),
            tags=("bemserver",))
async def get_energy_consumption(request: web.Request) -> web.Response:
    """GET /analysis/energy_consumption/{site|building}/{id}: each linked consumption series'
    sum per bucket (its Clean data, or Raw where it has no Clean data in the period), in `unit`
    (Wh by default), divided by the element's `ratio_property`, grouped by energy and end use;
    empty buckets are 0."""
    level = request.match_info["level"]
    if level not in LEVELS:
        raise HttpError(404, "")
    ident = path_id(request)  # 404 unless a positive int32 (a larger one was a 500)
    access = access_of(request)
    grid, zone = _grid(request)
    unit = request.query.get("unit", "Wh")
    if unit_family(unit) is None:
        raise query_error("unit", f"Unknown unit: {unit} (known: {', '.join([*ENERGY_WH, *VOLUME_M3])}).")
    async with pool_of(request).acquire() as conn:
        campaign = await conn.fetchval(
            f"SELECT {'project_id' if level == 'site' else '(SELECT project_id FROM sites s WHERE s.id = e.site_id)'} "
            f"FROM {LEVELS[level]} e WHERE e.id = $1", ident)
        if campaign is None:
            raise HttpError(404, "")
        access.campaign(campaign)
        ratio = await _ratio(conn, level, ident, request.query.get("ratio_property"))
        links = await conn.fetch(
            f"SELECT l.timeseries_id, e.name AS energy, u.name AS end_use, t.unit_symbol, t.clean_key, t.raw_key, "
            f"t.campaign_id, t.campaign_scope_id FROM bem_energy_cons_ts_by_{level}s l "
            "JOIN bem_energies e ON e.id = l.energy_id JOIN bem_energy_end_uses u ON u.id = l.end_use_id "
            f"JOIN bem_timeseries t ON t.id = l.timeseries_id WHERE l.{level}_id = $1 ORDER BY l.id", ident)
        links = [r for r in links if access.series(r["campaign_id"], r["campaign_scope_id"])]
        meters = await meter_consumption(conn, [r["timeseries_id"] for r in links], grid)
        summed = [r for r in links if r["timeseries_id"] not in meters]
        keys = await clean_or_raw(conn, [(r["clean_key"], r["raw_key"]) for r in summed],
                                  grid.starts[0] if grid.starts else 0, grid.end)
        key_of = {r["timeseries_id"]: key for r, key in zip(summed, keys, strict=True)}
        sums = await _bucket_values(conn, keys, grid, "sum")
    energy: dict[str, dict[str, list[float]]] = {}
    for link in links:
        target = unit
        if unit_family(link["unit_symbol"] or "") == "volume" and unit_family(unit) == "energy":
            target = "m3"  # twinbill: water (a volume) stays a volume, in m3, beside energies in `unit`
        factor = conversion(link["unit_symbol"] or "", target)
        if factor is None:
            raise HttpError(409, "Incompatible unit in input timeseries.")
        values = meters.get(link["timeseries_id"])
        raw = [float(v) for v in values] if values is not None else sums[key_of[link["timeseries_id"]]]
        energy.setdefault(link["energy"], {})[link["end_use"]] = [v * factor / ratio for v in raw]
    return respond(request, {"timestamps": [p.json_time(ts, zone) for ts in grid.starts], "energy": energy})


async def _ratio(conn: asyncpg.Connection, level: str, ident: int, name: str | None) -> float:
    """The element's value of the property named `ratio_property` (1 without one); 409 when the
    element has no such property, as BEMServer; 409 when it is 0 (BEMServer fails dividing)."""
    if not name:
        return 1.0
    value = await conn.fetchval(
        f"SELECT d.value FROM bem_{level}_property_data d JOIN bem_{level}_properties lp "
        f"ON lp.id = d.{level}_property_id JOIN bem_se_properties sp ON sp.id = lp.structural_element_property_id "
        f"WHERE d.{level}_id = $1 AND sp.name = $2", ident, name)
    if value is None:
        raise HttpError(409, f'{level.capitalize()} has no "{name}" property.')
    try:
        ratio = float(Decimal(value))
    except ArithmeticError:
        raise HttpError(409, f'{level.capitalize()} property "{name}" is not a number.') from None
    if ratio == 0:
        raise HttpError(409, "Dividing by ratio with value 0")
    return ratio


def add_analysis_routes(app: web.Application, prefix: str) -> None:
    """The two analysis endpoints."""
    app.router.add_get(f"{prefix}/analysis/completeness", get_completeness)
    app.router.add_get(prefix + "/analysis/energy_consumption/{level}/{id}", get_energy_consumption)
