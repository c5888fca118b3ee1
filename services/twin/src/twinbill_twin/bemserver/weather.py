"""BEMServer's weather of a site: degree days computed from its outdoor air temperature series
(`sites/{id}/degree_days`), and downloading weather into its weather series
(`sites/{id}/download_weather_data`) through a pluggable provider, off unless configured."""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
from aiohttp import web

from twinbill_common.apidocs import JsonSchema, documented
from twinbill_common.errors import HttpError
from twinbill_common.smorest import path_id
from twinbill_twin.api.common import pool_of
from twinbill_twin.bemserver import payloads as p
from twinbill_twin.bemserver.access import Access, access_of
from twinbill_twin.bemserver.aggregates import aggregate_sql
from twinbill_twin.bemserver.data import PARTITIONS, delete_points, write_points
from twinbill_twin.bemserver.query import clean_or_raw, query_error, query_params, time_param
from twinbill_twin.domain.analysis import degree_days
from twinbill_twin.domain.weather import (
    OIKOLAB_PARAMETERS,
    WeatherAnswerError,
    convert_temperature,
    is_temperature,
    oikolab_end,
    read_oikolab,
)
from twinbill_twin.keys import SETTINGS
from twinbill_twin.settings import TwinSettings
from twinbill_twin.store.samples import PartitionManager, SampleRecord

NOT_CONFIGURED = ("Missing weather API settings: weather download is off in this twinbill "
                  "(set TWIN_WEATHER_PROVIDER=oikolab, TWIN_WEATHER_API_URL and TWIN_WEATHER_API_KEY).")


class WeatherProvider(Protocol):
    """Where weather comes from: per BEMServer parameter name, {epoch ms: value} in the
    provider's units (OIKOLAB_PARAMETERS' units) for [start, end)."""

    async def fetch(self, parameters: list[str], *, latitude: float, longitude: float, start: datetime,
                    end: datetime, forecast: bool) -> dict[str, dict[int, float]]: ...


class ProviderError(Exception):
    """The provider refused or failed; `status` is what the API answers (409 as BEMServer for a
    wrong key, 502 for a provider that fails)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class OikolabProvider:
    """Oikolab's weather API as BEMServer's client calls it (ERA5 reanalysis, GFS forecasts)."""

    def __init__(self, url: str, key: str, *, timeout: float) -> None:
        self._url, self._key, self._timeout = url, key, timeout

    async def fetch(self, parameters: list[str], *, latitude: float, longitude: float, start: datetime,
                    end: datetime, forecast: bool) -> dict[str, dict[int, float]]:
        """GET the parameters for the point and period; the answer read by read_oikolab."""
        query: list[tuple[str, str]] = [("param", OIKOLAB_PARAMETERS[name][0]) for name in parameters]
        query += [("lat", str(latitude)), ("lon", str(longitude)), ("start", start.isoformat()),
                  ("end", oikolab_end(end).isoformat()), ("api-key", self._key),
                  ("model", "gfs" if forecast else "era5")]
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout)) as http, \
                    http.get(self._url, params=query) as response:
                text = await response.text()
                if response.status == 401:
                    raise ProviderError(409, "Wrong API key.")
                if response.status != 200:
                    raise ProviderError(502, f"Error while querying weather API: {response.status} {text[:200]}")
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as err:
            raise ProviderError(502, f"Error while connecting to weather API: {type(err).__name__}") from None
        try:
            return read_oikolab(answer, parameters)
        except WeatherAnswerError as err:
            raise ProviderError(502, str(err)) from None


def provider_of(settings: TwinSettings) -> WeatherProvider | None:
    """The configured provider, None when weather download is off (the default)."""
    if settings.weather_provider == "oikolab" and settings.weather_api_url and \
            settings.weather_api_key.get_secret_value():
        return OikolabProvider(settings.weather_api_url, settings.weather_api_key.get_secret_value(),
                               timeout=settings.weather_timeout)
    return None


async def _site(conn: asyncpg.Connection, request: web.Request, access: Access) -> asyncpg.Record:
    ident = path_id(request)  # 404 unless a positive int32 (a larger one was a 500)
    site = await conn.fetchrow("SELECT s.id, s.latitude, s.longitude, s.project_id, pr.timezone FROM sites s "
                               "JOIN projects pr ON pr.id = s.project_id WHERE s.id = $1", ident)
    if site is None:
        raise HttpError(404, "")
    access.campaign(site["project_id"])
    return site


def _date(request: web.Request, name: str) -> date:
    raw = request.query.get(name)
    if raw is None:
        raise query_error(name, "Missing data for required field.")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise query_error(name, "Not a valid date.") from None


def _choice(request: web.Request, name: str, choices: tuple[str, ...], default: str | None) -> str:
    value = request.query.get(name, default)
    if value is None:
        raise query_error(name, "Missing data for required field.")
    if value not in choices:
        raise query_error(name, "Must be one of: " + ", ".join(choices) + ".")
    return value


DAY = {"type": "string", "format": "date"}
DEGREE_DAYS = JsonSchema({"type": "object", "required": ["degree_days"], "properties": {"degree_days": {
    "type": "object", "additionalProperties": {"type": ["number", "null"]}}}}, "bemserver_degree_days")


@documented(summary="Heating or cooling degree days of a site", response=DEGREE_DAYS,
            query=query_params(required=("start_date", "end_date", "period"), more={
                "start_date": DAY, "end_date": DAY, "period": {"type": "string", "enum": ["day", "month", "year"]},
                "type": {"type": "string", "enum": ["heating", "cooling"]},
                "base": {"type": "number", "description": "18 unless given"},
                "unit": {"type": "string", "description": "°C unless given (°C, K, °F)"}}), tags=("bemserver",))
async def get_degree_days(request: web.Request) -> web.Response:
    """GET /sites/{id}/degree_days: heating or cooling degree days per day, month or year over
    [start_date, end_date) in the campaign's zone, from the site's (non-forecast) air temperature
    series averaged per hour (its Clean data, or its Raw data when it has no Clean data there:
    query.clean_or_raw), as BEMServer computes them."""
    access = access_of(request)
    start_day, end_day = _date(request, "start_date"), _date(request, "end_date")
    period = _choice(request, "period", ("day", "month", "year"), None)
    kind = _choice(request, "type", ("heating", "cooling"), "heating")
    try:
        base = float(request.query.get("base", "18"))
    except ValueError:
        raise query_error("base", "Not a valid number.") from None
    unit = request.query.get("unit", "°C")
    if not is_temperature(unit):
        raise HttpError(422, f"Cannot convert to {unit!r}: degree days are in a temperature unit (°C, K, °F).")
    async with pool_of(request).acquire() as conn:
        site = await _site(conn, request, access)
        series = await conn.fetchrow(
            "SELECT t.id, t.clean_key, t.raw_key, t.unit_symbol, t.campaign_id, t.campaign_scope_id "
            "FROM bem_weather_ts_by_sites w JOIN bem_timeseries t ON t.id = w.timeseries_id "
            "WHERE w.site_id = $1 AND w.parameter = 'AIR_TEMPERATURE' AND NOT w.forecast", site["id"])
        if series is None or not access.series(series["campaign_id"], series["campaign_scope_id"]):
            raise HttpError(409, "Air temperature for site undefined or access denied.")
        source = series["unit_symbol"] or "°C"
        if not is_temperature(source):
            raise HttpError(422, f"Cannot convert {source!r} to {unit!r}.")
        zone = ZoneInfo(site["timezone"])
        start = datetime(start_day.year, start_day.month, start_day.day, tzinfo=zone)
        end = datetime(end_day.year, end_day.month, end_day.day, tzinfo=zone)
        grid = p.buckets(start, end, unit="hour", width=1, zone=zone, limit=1_000_000)
        hourly: dict[int, float] = {}
        if grid.starts:
            key = (await clean_or_raw(conn, [(series["clean_key"], series["raw_key"])], grid.starts[0], grid.end))[0]
            rows = await conn.fetch(aggregate_sql("avg", grid), [key], grid.starts[0], grid.end)
            # one row per series: its key, the non-empty hours' numbers (from 1) and their averages
            hourly = {grid.starts[number - 1]: float(value)
                      for _, numbers, averages in rows for number, value in zip(numbers, averages, strict=True)}
    values = [(datetime.fromtimestamp(ts / 1000, zone),
               convert_temperature(hourly[ts], source, unit) if ts in hourly else None) for ts in grid.starts]
    result = degree_days(values, zone=zone, period=period, kind=kind, base=base)
    return web.json_response({"degree_days": {moment.isoformat(): value for moment, value in result.items()}})


@documented(summary="Fill a site's weather series from the provider (off unless configured)", status=204,
            query=query_params("start_time", "end_time", required=("start_time", "end_time"), more={
                "forecast": {"type": "string", "enum": ["true", "false", "1", "0"]}}), tags=("bemserver",))
async def download_weather_data(request: web.Request) -> web.Response:
    """PUT /sites/{id}/download_weather_data: the site's weather series (forecast or not) filled
    from the provider for [start_time, end_time) as Clean data, replacing what they held there.
    409 when no provider is configured, the site has no coordinates or the key is refused."""
    access = access_of(request)
    access.write()
    start, end = time_param(request, "start_time"), time_param(request, "end_time")
    forecast = request.query.get("forecast", "false").lower() in ("true", "1")
    async with pool_of(request).acquire() as conn:
        site = await _site(conn, request, access)
        await download_site_weather(conn, request.app[PARTITIONS], provider_of(request.app[SETTINGS]), site,
                                    start, end, forecast=forecast)
    return web.Response(status=204)


async def download_site_weather(conn: asyncpg.Connection, partitions: PartitionManager,
                                provider: WeatherProvider | None, site: asyncpg.Record, start: datetime,
                                end: datetime, *, forecast: bool) -> int:
    """Fill the site's weather series (forecast or not) from the provider for [start, end) as
    Clean data, replacing what they held there; returns the points stored. HttpError 409 when
    no provider is configured (NOT_CONFIGURED names the settings), the site has no coordinates
    or the key is refused; the API and the scheduled download (twinbill_twin.checks) share it."""
    links = await conn.fetch(
        "SELECT w.parameter, t.id, t.clean_key, t.unit_symbol FROM bem_weather_ts_by_sites w JOIN bem_timeseries t "
        "ON t.id = w.timeseries_id WHERE w.site_id = $1 AND w.forecast = $2 ORDER BY w.id", site["id"], forecast)
    if not links:
        return 0
    if provider is None:
        raise HttpError(409, NOT_CONFIGURED)
    if site["latitude"] is None or site["longitude"] is None:
        raise HttpError(409, "Missing site coordinates.")
    try:
        found = await provider.fetch([link["parameter"] for link in links], latitude=site["latitude"],
                                     longitude=site["longitude"], start=start, end=end, forecast=forecast)
    except ProviderError as err:
        raise HttpError(err.status, str(err)) from None
    records: list[SampleRecord] = []
    for link in links:
        source = OIKOLAB_PARAMETERS[link["parameter"]][1]
        target = link["unit_symbol"] or source
        values = found.get(link["parameter"], {})
        if is_temperature(source) and is_temperature(target):
            values = {ts: convert_temperature(v, source, target) for ts, v in values.items()}
        for ts, value in values.items():
            parsed = p.parse_value(value)
            records.append((link["clean_key"], -1, ts, str(parsed), float(parsed), None, None))
    low, high = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    async with conn.transaction():
        await delete_points(conn, [link["clean_key"] for link in links], low, high)
        await write_points(conn, partitions, records, [])
    return len(records)


def add_weather_routes(app: web.Application, prefix: str) -> None:
    """The two site weather endpoints."""
    app.router.add_get(prefix + "/sites/{id}/degree_days", get_degree_days)
    app.router.add_put(prefix + "/sites/{id}/download_weather_data", download_weather_data)


__all__ = ["NOT_CONFIGURED", "OikolabProvider", "ProviderError", "WeatherProvider", "add_weather_routes",
           "download_site_weather", "provider_of"]
