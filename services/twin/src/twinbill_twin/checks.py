"""BEMServer's scheduled services, run inside the twin (bemserver-core 0.20 `scheduled_tasks`):
the missing-data check, the outlier check, the cleanup (Raw -> Clean) and the weather downloads,
for the campaigns (sites) whose `st_*` row is enabled (twinbill_twin.bemserver.services).

Each twin replica runs the loop; nothing needs a leader. A check of one campaign for one period
claims its row in `bem_check_runs` (primary key: service, campaign, period start) inside the
transaction that writes its events, so whichever replica inserts it first runs the check and a
second insert waits for that transaction and then finds the row (the check ran) or not (it
rolled back: this replica runs it). A run asked for twice, by two replicas, by the schedule and
by hand, or after a restart, writes its events once. The cleanup needs no period: each series'
row in `bem_st_cleanups_by_timeseries` is locked (SKIP LOCKED) while its new Raw points are
copied, and its `last_timestamp` moves in the same transaction.

What a check decides follows bemserver-core: per campaign scope, the series whose completeness
over the period (values received against the period over the series' "Interval" property) is at
or below the ratio, or that have no value at all, are missing; one WARNING event of category
"Data missing" names the newly missing ones, one INFO event those still missing, one INFO "Data
present" event those no longer missing, each linked to its series (`timeseries_by_events`).
Outliers: the share of a series' values inside its "Min"/"Max" properties below the ratio, with
"Data outliers" / "No data outliers" the same way. Departures: the period is the campaign's (its
time zone's days), the event's timestamp is the end of the period checked (core: the run's
clock; a repeated run must give the same event), and each description adds one line per series
with its figures after core's sentence."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
from aiohttp import web

from twinbill_common.apidocs import JsonSchema, documented
from twinbill_common.errors import HttpError
from twinbill_common.http import read_json
from twinbill_common.logging import get_logger
from twinbill_common.postgres import TRANSIENT_ERRORS as POSTGRES_TRANSIENT
from twinbill_twin.bemserver.data import write_points
from twinbill_twin.bemserver.weather import NOT_CONFIGURED, WeatherProvider, download_site_weather
from twinbill_twin.domain.analysis import completeness
from twinbill_twin.domain.checks import (
    SERVICES,
    TASKS,
    UNITS,
    Period,
    SeriesFigures,
    Service,
    bound,
    describe,
    interval_seconds,
    last_period,
    task_period,
    task_ratio,
)
from twinbill_twin.domain.levels import LEVELS
from twinbill_twin.store.events import NewEvent, category_id, record_event
from twinbill_twin.store.samples import PartitionManager, SampleRecord

log = get_logger(__name__)

SOURCES = {"check_missing": "BEMServer - Check missing data", "check_outliers": "BEMServer - Check outliers"}
TABLES = {"check_missing": "bem_st_check_missings", "check_outliers": "bem_st_check_outliers",
          "cleanup": "bem_st_cleanups_by_campaigns"}
CLEANUP_CHUNK = 50_000  # Raw points copied per series and transaction


@dataclass
class RunResult:
    """One service's run for one campaign (or site) and period."""

    service: Service
    target_id: int
    start: datetime
    end: datetime
    ran: bool                         # False: this period was run before (or is being run)
    events: list[int] = field(default_factory=list)
    series: list[SeriesFigures] = field(default_factory=list)
    outcome: str = ""

    def as_json(self) -> dict[str, Any]:
        """For the internal endpoint."""
        return {"service": self.service, "target_id": self.target_id, "start": self.start.isoformat(),
                "end": self.end.isoformat(), "ran": self.ran, "events": self.events, "outcome": self.outcome,
                "series": [{"id": s.id, "name": s.name, "count": s.count, "expected": s.expected, "ratio": s.ratio,
                            "flagged": s.flagged} for s in self.series]}


class CheckRunner:
    """Runs the services on a schedule (`run`) or when asked (`run_now`)."""

    def __init__(self, pool: asyncpg.Pool, partitions: PartitionManager, *, provider: WeatherProvider | None,
                 period: Period = "day", min_completeness: float = 0.9, min_correctness: float = 0.9,
                 default_zone: str = "UTC") -> None:
        self.pool = pool
        self.partitions = partitions
        self.provider = provider
        self.period: Period = period
        self.min_completeness = min_completeness
        self.min_correctness = min_correctness
        self.default_zone = default_zone
        self._told: set[tuple[int, datetime]] = set()   # weather not configured: said once per site and period

    async def run(self, *, interval: float) -> None:
        """Every `interval` seconds, run whatever is due (a store that does not answer: next time)."""
        while True:
            try:
                await self.run_now()
            except POSTGRES_TRANSIENT as err:
                log.warning("check services: store did not answer, retrying", error=repr(err))
            await asyncio.sleep(interval)

    async def run_now(self, *, now: datetime | None = None, services: tuple[Service, ...] = SERVICES,
                      campaign_id: int | None = None) -> list[RunResult]:
        """Run the services for the period before `now` (default: the clock) for every enabled
        campaign (or only `campaign_id`); a period run already is skipped (`ran` False)."""
        moment = now or datetime.now(UTC)
        results: list[RunResult] = []
        for service in services:
            if service in ("weather", "weather_forecast"):
                results += await self._weather(moment, forecast=service == "weather_forecast",
                                               campaign_id=campaign_id)
                continue
            rows = await self.pool.fetch(
                f"SELECT p.id, p.timezone FROM {TABLES[service]} st JOIN projects p ON p.id = st.campaign_id "
                "WHERE st.is_enabled AND ($1::int IS NULL OR p.id = $1) ORDER BY p.id", campaign_id)
            tasks = await self._task_rows(service, campaign_id)
            if service == "cleanup":
                for ident in sorted({row["id"] for row in rows}):
                    results.append(await self.cleanup(ident, moment))
                for row in tasks:  # a Cleanup task cleans its interval (bemserver-core 0.22)
                    start, end = task_period(moment, self._zone(row["timezone"]), row["offset_unit"],
                                             row["start_offset"], row["end_offset"])
                    results.append(await self.cleanupinterval_seconds(row["campaign_id"], start, end))
                continue
            runs: dict[tuple[int, datetime], tuple[datetime, float | None]] = {}
            for row in rows:
                start, end = last_period(moment, self._zone(row["timezone"]), self.period)
                runs[(row["id"], start)] = (end, None)
            for row in tasks:
                start, end = task_period(moment, self._zone(row["timezone"]), row["offset_unit"],
                                         row["start_offset"], row["end_offset"])
                runs.setdefault((row["campaign_id"], start), (end, task_ratio(row["parameters"], service)))
            for (ident, start), (end, ratio) in sorted(runs.items()):
                results.append(await self.check(service, ident, start, end, ratio=ratio))
        return results

    async def _task_rows(self, service: Service, campaign_id: int | None) -> list[asyncpg.Record]:
        names = [name for name, (services, _) in TASKS.items() if service in services]
        return list(await self.pool.fetch(
            "SELECT t.campaign_id, t.parameters, t.offset_unit, t.start_offset, t.end_offset, p.timezone "
            "FROM bem_tasks_by_campaigns t JOIN projects p ON p.id = t.campaign_id WHERE t.is_enabled "
            "AND t.task_name = ANY($1::text[]) AND ($2::int IS NULL OR t.campaign_id = $2) ORDER BY t.id",
            names, campaign_id))

    async def run_task(self, name: str, campaign_id: int, start: datetime, end: datetime,
                       parameters: dict[str, Any]) -> list[RunResult]:
        """POST /bemserver/tasks/run: one task for one campaign over [start, end), now. Not
        claimed (asked on purpose); the events' dedup keys still write an identical event once."""
        services, _ = TASKS[name]
        if name == "Cleanup":
            return [await self.cleanupinterval_seconds(campaign_id, start, end)]
        if name == "DownloadWeatherData":
            return await self._weather_task(campaign_id, start, end, parameters)
        return [await self.check(services[0], campaign_id, start, end, claim=False,
                                 ratio=task_ratio(parameters, services[0]))]

    def _zone(self, name: str | None) -> ZoneInfo:
        try:
            return ZoneInfo(name or self.default_zone)
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo(self.default_zone)

    # -- missing data and outliers ---------------------------------------------------------------

    async def check(self, service: Service, campaign_id: int, start: datetime, end: datetime, *,
                    claim: bool = True, ratio: float | None = None) -> RunResult:
        """One check of one campaign for [start, end), once (the claim in bem_check_runs);
        `ratio` replaces the configured threshold (a task's parameter)."""
        result = RunResult(service, campaign_id, start, end, ran=False)
        async with self.pool.acquire() as conn, conn.transaction():
            claimed = not claim or await conn.fetchval(
                "INSERT INTO bem_check_runs (service, target_id, period_start, period_end, outcome) "
                "VALUES ($1, $2, $3, $4, '') ON CONFLICT DO NOTHING RETURNING true", service, campaign_id, start, end)
            if not claimed:
                return result
            result.ran = True
            series = await conn.fetch(
                "SELECT t.id, t.name, t.campaign_scope_id, t.raw_key, "
                "max(d.value) FILTER (WHERE pr.name = 'Interval') AS interval, "
                "max(d.value) FILTER (WHERE pr.name = 'Min') AS lo, max(d.value) FILTER (WHERE pr.name = 'Max') AS hi "
                "FROM bem_timeseries t LEFT JOIN bem_ts_property_data d ON d.timeseries_id = t.id "
                "LEFT JOIN bem_ts_properties pr ON pr.id = d.property_id "
                "WHERE t.campaign_id = $1 GROUP BY t.id ORDER BY t.campaign_scope_id, t.id", campaign_id)
            low, high = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
            if service == "check_missing":
                figures = await self._missing(conn, series, low, high,
                                              self.min_completeness if ratio is None else ratio)
            else:
                figures = await self._outliers(conn, series, low, high,
                                               self.min_correctness if ratio is None else ratio)
            result.series = figures
            for scope in sorted({row["campaign_scope_id"] for row in series}):
                result.events += await self._scope_events(conn, service, scope,
                                                          [f for f in figures if f.scope_id == scope], end)
            result.outcome = f"{sum(f.flagged for f in figures)} of {len(figures)} series flagged"
            await conn.execute("UPDATE bem_check_runs SET outcome = $4 WHERE service = $1 AND target_id = $2 "
                               "AND period_start = $3", service, campaign_id, start, result.outcome)
        log.info("check ran", service=service, campaign=campaign_id, start=start.isoformat(), outcome=result.outcome,
                 events=len(result.events))
        return result

    async def _missing(self, conn: asyncpg.Connection, series: list[asyncpg.Record], low: int,
                       high: int, threshold: float) -> list[SeriesFigures]:
        counts = dict(await conn.fetch(
            "SELECT attribute_id, count(*) FROM samples WHERE attribute_id = ANY($1::bigint[]) AND idx = -1 "
            "AND ts >= $2 AND ts < $3 GROUP BY attribute_id", [row["raw_key"] for row in series], low, high))
        out: list[SeriesFigures] = []
        for row in series:
            interval = interval_seconds(row["interval"])
            figures = completeness([counts.get(row["raw_key"], 0)], [(high - low) / 1000], interval)
            ratio = figures.avg_ratio
            # bemserver-core: at or below the ratio, or no value at all whatever the interval
            flagged = (ratio is not None and ratio <= threshold) or figures.avg_count == 0
            out.append(SeriesFigures(row["id"], row["name"], row["campaign_scope_id"], figures.total_count,
                                     figures.expected_count[0], ratio, flagged))
        return out

    async def _outliers(self, conn: asyncpg.Connection, series: list[asyncpg.Record], low: int,
                        high: int, threshold: float) -> list[SeriesFigures]:
        rows = await conn.fetch(
            "SELECT q.key, count(s.dbl) AS total, count(s.dbl) FILTER (WHERE (q.lo IS NULL OR s.dbl >= q.lo) "
            "AND (q.hi IS NULL OR s.dbl <= q.hi)) AS inside "
            "FROM unnest($1::bigint[], $2::float8[], $3::float8[]) AS q(key, lo, hi) "
            "JOIN samples s ON s.attribute_id = q.key AND s.idx = -1 AND s.ts >= $4 AND s.ts < $5 GROUP BY q.key",
            [row["raw_key"] for row in series], [bound(row["lo"]) for row in series],
            [bound(row["hi"]) for row in series], low, high)
        found = {row["key"]: (row["total"], row["inside"]) for row in rows}
        out: list[SeriesFigures] = []
        for row in series:
            total, inside = found.get(row["raw_key"], (0, 0))
            if not total:  # bemserver-core counts only series with values in the period
                out.append(SeriesFigures(row["id"], row["name"], row["campaign_scope_id"], 0))
                continue
            ratio = inside / total
            out.append(SeriesFigures(row["id"], row["name"], row["campaign_scope_id"], total, None, ratio,
                                     ratio < threshold))
        return out

    async def _scope_events(self, conn: asyncpg.Connection, service: Service, scope: int,
                            figures: list[SeriesFigures], at: datetime) -> list[int]:
        """bemserver-core's three events of a scope: newly flagged (WARNING), still flagged (INFO),
        no longer flagged (INFO), from each series' latest event of the two categories before `at`."""
        bad, good = (("Data missing", "Data present") if service == "check_missing"
                     else ("Data outliers", "No data outliers"))
        bad_id = await category_id(conn, bad, bad)
        good_id = await category_id(conn, good, good)
        latest = dict(await conn.fetch(
            "SELECT DISTINCT ON (l.timeseries_id) l.timeseries_id, e.category_id FROM bem_timeseries_by_events l "
            "JOIN bem_events e ON e.id = l.event_id WHERE l.timeseries_id = ANY($1::int[]) "
            "AND e.category_id = ANY($2::int[]) AND e.timestamp < $3 "
            "ORDER BY l.timeseries_id, e.timestamp DESC, e.id DESC",
            [f.id for f in figures], [bad_id, good_id], at))
        was = {f.id for f in figures if latest.get(f.id) == bad_id}
        flagged = [f for f in figures if f.flagged]
        new = [f for f in flagged if f.id not in was]
        still = [f for f in flagged if f.id in was]
        cleared = [f for f in figures if f.id in was and not f.flagged]
        if service == "check_missing":
            texts = ("The following timeseries are missing: ", "The following timeseries are still missing: ",
                     "The following timeseries are not missing anymore: ")
        else:
            texts = ("The following timeseries have outliers: ", "The following timeseries still have outliers: ",
                     "The following timeseries don't have outliers anymore: ")
        events: list[int] = []
        for kind, group, category, level, text in (
                ("new", new, bad_id, LEVELS["WARNING"], texts[0]), ("still", still, bad_id, LEVELS["INFO"], texts[1]),
                ("cleared", cleared, good_id, LEVELS["INFO"], texts[2])):
            if not group:
                continue
            description = text + ",".join(f.name for f in group) + "".join(
                "\n" + describe(service, f) for f in group)
            ident = await record_event(conn, NewEvent(
                campaign_scope_id=scope, category_id=category, level=level, timestamp=at, source=SOURCES[service],
                description=description, dedup_key=f"{service}:{scope}:{at.isoformat()}:{kind}",
                timeseries_ids=tuple(f.id for f in group)))
            if ident is not None:
                events.append(ident)
        return events

    # -- cleanup ---------------------------------------------------------------------------------

    async def cleanup(self, campaign_id: int, now: datetime) -> RunResult:
        """Copy each series' Raw points newer than its `last_timestamp` to Clean, leaving out values
        outside its Min/Max properties (bemserver-core's cleanup), and move `last_timestamp` to
        the newest Raw point read. A series another replica is cleaning is skipped this time."""
        result = RunResult("cleanup", campaign_id, now, now, ran=True)
        series = await self.pool.fetch("SELECT id FROM bem_timeseries WHERE campaign_id = $1 ORDER BY id", campaign_id)
        copied = 0
        for row in series:
            copied += await self._cleanup_series(row["id"], result)
        result.outcome = f"{copied} points copied to Clean"
        return result

    async def _cleanup_series(self, series_id: int, result: RunResult) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("INSERT INTO bem_st_cleanups_by_timeseries (timeseries_id) VALUES ($1) "
                               "ON CONFLICT (timeseries_id) DO NOTHING", series_id)
            state = await conn.fetchrow(
                "SELECT c.last_timestamp, t.name, t.campaign_scope_id, t.raw_key, t.clean_key, "
                "(SELECT d.value FROM bem_ts_property_data d JOIN bem_ts_properties pr ON pr.id = d.property_id "
                " WHERE d.timeseries_id = t.id AND pr.name = 'Min') AS lo, "
                "(SELECT d.value FROM bem_ts_property_data d JOIN bem_ts_properties pr ON pr.id = d.property_id "
                " WHERE d.timeseries_id = t.id AND pr.name = 'Max') AS hi "
                "FROM bem_st_cleanups_by_timeseries c JOIN bem_timeseries t ON t.id = c.timeseries_id "
                "WHERE c.timeseries_id = $1 FOR UPDATE OF c SKIP LOCKED", series_id)
            if state is None:
                return 0
            after = -1 if state["last_timestamp"] is None else int(state["last_timestamp"].timestamp() * 1000)
            rows = await conn.fetch(
                "SELECT ts, num::text AS num, dbl FROM samples WHERE attribute_id = $1 AND idx = -1 AND ts > $2 "
                "ORDER BY ts LIMIT $3", state["raw_key"], after, CLEANUP_CHUNK)
            if not rows:
                return 0
            lo, hi = bound(state["lo"]), bound(state["hi"])
            records: list[SampleRecord] = [
                (state["clean_key"], -1, row["ts"], row["num"], row["dbl"], None, None) for row in rows
                if row["dbl"] is not None and (lo is None or row["dbl"] >= lo) and (hi is None or row["dbl"] <= hi)]
            await write_points(conn, self.partitions, records, [])
            await conn.execute("UPDATE bem_st_cleanups_by_timeseries SET last_timestamp = $2 WHERE timeseries_id = $1",
                               series_id, datetime.fromtimestamp(rows[-1]["ts"] / 1000, UTC))
            result.series.append(SeriesFigures(series_id, state["name"], state["campaign_scope_id"], len(records),
                                               flagged=len(records) < len(rows)))
            return len(records)

    async def cleanupinterval_seconds(self, campaign_id: int, start: datetime, end: datetime) -> RunResult:
        """bemserver-core 0.22's Cleanup task: each series' Raw points in [start, end) inside its
        Min/Max written to Clean (a point already there keeps its value, so a repeat adds nothing)."""
        result = RunResult("cleanup", campaign_id, start, end, ran=True)
        low, high = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        copied = 0
        async with self.pool.acquire() as conn, conn.transaction():
            series = await conn.fetch(
                "SELECT t.id, t.name, t.campaign_scope_id, t.raw_key, t.clean_key, "
                "max(d.value) FILTER (WHERE pr.name = 'Min') AS lo, max(d.value) FILTER (WHERE pr.name = 'Max') AS hi "
                "FROM bem_timeseries t LEFT JOIN bem_ts_property_data d ON d.timeseries_id = t.id "
                "LEFT JOIN bem_ts_properties pr ON pr.id = d.property_id "
                "WHERE t.campaign_id = $1 GROUP BY t.id ORDER BY t.id", campaign_id)
            for row in series:
                lo, hi = bound(row["lo"]), bound(row["hi"])
                points = await conn.fetch(
                    "SELECT ts, num::text AS num, dbl FROM samples WHERE attribute_id = $1 AND idx = -1 "
                    "AND ts >= $2 AND ts < $3 AND dbl IS NOT NULL AND ($4::float8 IS NULL OR dbl >= $4) "
                    "AND ($5::float8 IS NULL OR dbl <= $5) ORDER BY ts", row["raw_key"], low, high, lo, hi)
                records: list[SampleRecord] = [(row["clean_key"], -1, p["ts"], p["num"], p["dbl"], None, None)
                                               for p in points]
                await write_points(conn, self.partitions, records, [])
                copied += len(records)
                result.series.append(SeriesFigures(row["id"], row["name"], row["campaign_scope_id"], len(records)))
        result.outcome = f"{copied} points copied to Clean"
        return result

    async def _weather_task(self, campaign_id: int, start: datetime, end: datetime,
                            parameters: dict[str, Any]) -> list[RunResult]:
        """bemserver-core 0.22's DownloadWeatherData: the named sites of the campaign (all its
        sites when none is named), forecast or not, over [start, end)."""
        forecast = bool(parameters.get("forecast", False))
        names = parameters.get("sites") or []
        sites = await self.pool.fetch(
            "SELECT s.id, s.name, s.latitude, s.longitude, s.project_id FROM sites s WHERE s.project_id = $1 "
            "AND (cardinality($2::text[]) = 0 OR s.name = ANY($2::text[])) ORDER BY s.id", campaign_id,
            [str(n) for n in names])
        unknown = set(map(str, names)) - {site["name"] for site in sites}
        if unknown:
            raise HttpError(422, f"Can't find site {sorted(unknown)[0]} in campaign {campaign_id}")
        results: list[RunResult] = []
        service: Service = "weather_forecast" if forecast else "weather"
        for site in sites:
            result = RunResult(service, site["id"], start, end, ran=True)
            async with self.pool.acquire() as conn:
                stored = await download_site_weather(conn, self.partitions, self.provider, site, start, end,
                                                     forecast=forecast)
            result.outcome = f"{stored} points stored"
            results.append(result)
        return results

    # -- weather ---------------------------------------------------------------------------------

    async def _weather(self, now: datetime, *, forecast: bool, campaign_id: int | None) -> list[RunResult]:
        """Yesterday's weather (or the next two days' forecast) for each enabled site, once a
        period; and the sites of enabled DownloadWeatherData tasks over their intervals."""
        service: Service = "weather_forecast" if forecast else "weather"
        table = "bem_st_download_weather_forecast" if forecast else "bem_st_download_weather"
        sites = await self.pool.fetch(
            f"SELECT s.id, s.latitude, s.longitude, s.project_id, p.timezone FROM {table} st "
            "JOIN sites s ON s.id = st.site_id JOIN projects p ON p.id = s.project_id "
            "WHERE st.is_enabled AND ($1::int IS NULL OR s.project_id = $1) ORDER BY s.id", campaign_id)
        due: list[tuple[asyncpg.Record, datetime, datetime]] = []
        for site in sites:
            start, end = last_period(now, self._zone(site["timezone"]), "day")
            if forecast:
                start, end = end, (end.replace(tzinfo=None) + timedelta(days=2)).replace(tzinfo=end.tzinfo)
            due.append((site, start, end))
        for task in await self._task_rows(service, campaign_id):
            parameters = json.loads(task["parameters"])
            if not isinstance(parameters, dict) or bool(parameters.get("forecast", False)) != forecast:
                continue
            start, end = task_period(now, self._zone(task["timezone"]), task["offset_unit"], task["start_offset"],
                                     task["end_offset"])
            names = [str(n) for n in parameters.get("sites") or []]
            for site in await self.pool.fetch(
                    "SELECT s.id, s.latitude, s.longitude, s.project_id FROM sites s WHERE s.project_id = $1 "
                    "AND (cardinality($2::text[]) = 0 OR s.name = ANY($2::text[])) ORDER BY s.id",
                    task["campaign_id"], names):
                due.append((site, start, end))
        return [await self._weather_site(service, site, start, end) for site, start, end in due]

    async def _weather_site(self, service: Service, site: asyncpg.Record, start: datetime,
                            end: datetime) -> RunResult:
        forecast = service == "weather_forecast"
        result = RunResult(service, site["id"], start, end, ran=False)
        if self.provider is None:  # said once per site and period, nothing claimed
            if (site["id"], start) not in self._told:
                self._told.add((site["id"], start))
                log.error("weather download enabled for a site but no provider is configured",
                          site=site["id"], forecast=forecast, reason=NOT_CONFIGURED)
            result.outcome = NOT_CONFIGURED
            return result
        async with self.pool.acquire() as conn, conn.transaction():
            claimed = await conn.fetchval(
                "INSERT INTO bem_check_runs (service, target_id, period_start, period_end, outcome) "
                "VALUES ($1, $2, $3, $4, '') ON CONFLICT DO NOTHING RETURNING true",
                service, site["id"], start, end)
            if not claimed:
                return result
            try:
                stored = await download_site_weather(conn, self.partitions, self.provider, site, start, end,
                                                     forecast=forecast)
                result.outcome = f"{stored} points stored"
            except HttpError as err:  # the provider failed: recorded, tried again next period
                result.outcome = f"failed: {err}"
                log.warning("weather download failed", site=site["id"], forecast=forecast, reason=str(err))
            result.ran = True
            await conn.execute("UPDATE bem_check_runs SET outcome = $4 WHERE service = $1 AND target_id = $2 "
                               "AND period_start = $3", service, site["id"], start, result.outcome)
        return result


CHECKS = web.AppKey("check_runner", CheckRunner)


@documented(summary="Run the check services now (the period before `at`)", tags=("internal",),
            response=dict[str, Any], body=JsonSchema({"type": "object", "properties": {
                "services": {"type": "array", "items": {"type": "string", "enum": list(SERVICES)}},
                "at": {"type": ["string", "null"], "format": "date-time"},
                "campaign_id": {"type": ["integer", "null"]}}}))
async def run_checks(request: web.Request) -> web.Response:
    """POST /internal/v1/checks/run `{"services": [...]?, "at": ISO-8601?, "campaign_id": int?}`:
    run now, for the period before `at` (default: now); each run's figures. A period run before
    is not run again (`ran` false)."""
    if CHECKS not in request.app:
        raise HttpError(503, "The check services are not running in this twin (starting, or stopped).")
    body = await read_json(request)
    if not isinstance(body, dict):
        raise HttpError(400, "The body must be a JSON object.")
    errors: dict[str, list[str]] = {}
    services = body.get("services", list(SERVICES))
    if not isinstance(services, list) or any(s not in SERVICES for s in services):
        errors["services"] = [f"A list of: {', '.join(SERVICES)}."]
    at = None
    if body.get("at") is not None:
        try:
            at = datetime.fromisoformat(str(body["at"]))
        except ValueError:
            at = None
        if at is None or at.tzinfo is None or not 1971 <= at.year <= 9998:
            errors["at"] = ["An ISO-8601 time with an offset, between the years 1971 and 9998."]
    campaign = body.get("campaign_id")
    if campaign is not None and (isinstance(campaign, bool) or not isinstance(campaign, int)
                                 or not -(2**31) <= campaign < 2**31):
        errors["campaign_id"] = ["Not a valid integer."]
    if errors:
        raise HttpError(400, "Bad check run request.", fields=errors)
    results = await request.app[CHECKS].run_now(now=at, services=tuple(services), campaign_id=campaign)
    return web.json_response({"results": [r.as_json() for r in results]})


def add_check_routes(app: web.Application) -> None:
    """The internal trigger (wants a service token, as every /internal/ path)."""
    app.router.add_post("/internal/v1/checks/run", run_checks)


__all__ = ["CHECKS", "SERVICES", "TASKS", "UNITS", "CheckRunner", "RunResult", "SeriesFigures", "add_check_routes",
           "last_period", "task_period"]
