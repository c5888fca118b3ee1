"""BEMServer's energy reference lists (energies, end uses, production technologies: read-only,
BEMServer's own rows and ids, plus twinbill's "water") and the links of energy consumption and
production series to sites and buildings, and of weather series to sites."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from twinbill_common.apidocs import JsonSchema, describe
from twinbill_common.smorest import Field, respond
from twinbill_twin.api.common import pool_of
from twinbill_twin.bemserver.properties import Linked, add_linked_routes

REF = Field("int", required=True, nullable=False)
# BEMServer's WeatherParameterEnum, by name as its API writes them
WEATHER_PARAMETERS = (
    "AIR_TEMPERATURE", "DEWPOINT_TEMPERATURE", "WETBULB_TEMPERATURE", "WIND_SPEED", "WIND_DIRECTION",
    "SURFACE_SOLAR_RADIATION", "SURFACE_DIRECT_SOLAR_RADIATION", "SURFACE_DIFFUSE_SOLAR_RADIATION",
    "DIRECT_NORMAL_SOLAR_RADIATION", "RELATIVE_HUMIDITY", "SURFACE_PRESSURE", "TOTAL_PRECIPITATION",
)
_SERIES = "(SELECT {col} FROM bem_timeseries s WHERE s.id = t.timeseries_id)"
# BEMServer's TimeseriesSchema without its id, nested in each link
_NESTED_SERIES = ("(SELECT jsonb_strip_nulls(jsonb_build_object('name', s.name, 'description', s.description, "
                  "'unit_symbol', s.unit_symbol, 'campaign_id', s.campaign_id, 'campaign_scope_id', "
                  "s.campaign_scope_id)) FROM bem_timeseries s WHERE s.id = t.timeseries_id)")
REFERENCE_LISTS = {"energies": "bem_energies", "energy_end_uses": "bem_energy_end_uses",
                   "energy_production_technologies": "bem_energy_prod_techs"}


def _link(path: str, table: str, level: str, fields: dict[str, Field], refs: dict[str, str]) -> Linked:
    body = {f"{level}_id": REF, **fields, "timeseries_id": REF}
    filters = {name: (Field("bool") if name == "forecast" else
                      Field("str") if name == "parameter" else Field("int")) for name in body}
    return Linked(path, table, body, body, filters, campaign=_SERIES.format(col="campaign_id"),
                  scope=_SERIES.format(col="campaign_scope_id"), nested={"timeseries": _NESTED_SERIES},
                  refs={f"{level}_id": f"{level}s", "timeseries_id": "bem_timeseries", **refs},
                  same_campaign=(f"{level}_id", f"{level}s"))


def _links() -> tuple[Linked, ...]:
    found = []
    for level in ("site", "building"):
        found.append(_link(f"energy_consumption_timeseries_by_{level}s", f"bem_energy_cons_ts_by_{level}s", level,
                           {"energy_id": REF, "end_use_id": REF},
                           {"energy_id": "bem_energies", "end_use_id": "bem_energy_end_uses"}))
        found.append(_link(f"energy_production_timeseries_by_{level}s", f"bem_energy_prod_ts_by_{level}s", level,
                           {"energy_id": REF, "prod_tech_id": REF},
                           {"energy_id": "bem_energies", "prod_tech_id": "bem_energy_prod_techs"}))
    found.append(_link("weather_timeseries_by_sites", "bem_weather_ts_by_sites", "site",
                       {"parameter": Field("choice", required=True, nullable=False, choices=WEATHER_PARAMETERS),
                        "forecast": Field("bool", required=True, nullable=False)}, {}))
    return tuple(found)


LINKS = _links()


def _reference(table: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        rows = await pool_of(request).fetch(f"SELECT id, name FROM {table} ORDER BY id")
        return respond(request, [dict(r) for r in rows])
    return describe(handler, summary=f"BEMServer's reference list {table}", tags=("bemserver",),
                    response=JsonSchema({"type": "object", "required": ["id", "name"], "properties": {
                        "id": {"type": "integer"}, "name": {"type": "string"}}}).many())


def add_energy_routes(app: web.Application, prefix: str) -> None:
    """GET the reference lists; the link collections (GET/POST, GET/PUT/DELETE by id)."""
    for path, table in REFERENCE_LISTS.items():
        app.router.add_get(f"{prefix}/{path}/", _reference(table))
    add_linked_routes(app, prefix, LINKS)
