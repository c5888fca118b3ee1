"""A Stream attribute's query (seed 002): parameters -> store reads -> OpenTSDB-shaped series."""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from twinbill_twin.api.dps import EncodedJson, dps_from_texts, dps_text
from twinbill_twin.api.dps import key as dps_key
from twinbill_twin.domain.aggregators import (
    AGGREGATORS,
    PERCENTILES,
    Summary,
    percentile_spec,
    summarise,
)
from twinbill_twin.domain.downsample import (
    Downsample,
    Fill,
    bucket_boundaries,
    bucket_starts,
    epoch_bucket,
    parse_downsample,
    rollup_usable,
)
from twinbill_twin.domain.floattext import postgres_text
from twinbill_twin.domain.series import Points, combine, fill
from twinbill_twin.domain.timeparse import parse_time, parse_zone, zone_free
from twinbill_twin.errors import BadParameter
from twinbill_twin.store import sample_hours
from twinbill_twin.store import series as series_store
from twinbill_twin.store.retention import iso
from twinbill_twin.store.series import Columns, Texts

MAX_RAW_POINTS = 2_000_000
TEXT_DATATYPES = ("String", "Boolean")


@dataclass(frozen=True)
class StreamQuery:
    """Validated parameters of a Stream query."""

    start: int
    end: int
    tz: ZoneInfo
    aggregator: str
    downsample: Downsample | None
    quality: bool = False   # raw points: also each struct point's quality (issue 12)
    raw_kept_from: int = 0  # the project's raw horizon: raw-grade data before it was deleted


def _retained(q: StreamQuery, table: str, start: int) -> None:
    """Refuse a read of raw-grade data (raw rows, the 10 s rollup, the hours' values) that
    reaches before the project's raw horizon: what is left there is not the whole answer."""
    if table in series_store.RAW_GRADE and start < q.raw_kept_from:
        what = ("raw points" if q.downsample is None else
                f"downsample {q.downsample.every}{q.downsample.unit}-{q.downsample.aggregator}")
        raise BadParameter(
            "start", f"{what} before {iso(q.raw_kept_from)} are past this project's raw retention "
            "(only the minute and hour rollups are kept there): start at or after it, or downsample "
            "to whole minutes or hours aligned to them (avg, sum, min, max, count, dev, first, last)")


def query_schema() -> dict[str, Any]:
    """The parameters `parse_query` reads, as JSON Schema (OpenAPI)."""
    return {"type": "object", "properties": {
        "start": {"type": "string", "description": "required for a Stream attribute: epoch ms, a date-time, or "
                  "relative (`30m-ago`)"},
        "end": {"type": "string", "description": "like start; now unless given"},
        "timezone": {"type": "string", "description": "IANA zone of dates without one; the project's by default"},
        "aggregator": {"type": "string", "enum": ["none", *sorted(AGGREGATORS)]},
        "downsample": {"type": "string", "description": "`<n><unit>[c]-<aggregator>`, e.g. `1m-last`, `1dc-sum`"},
        "quality": {"type": "string", "enum": ["true", "false"], "description": "raw struct points' quality"}}}


def parse_query(params: Mapping[str, str], *, now_ms: int, default_zone: str) -> StreamQuery:
    """Validate start, end, timezone, aggregator and downsample; BadParameter names the culprit."""
    tz = parse_zone(params.get("timezone") or default_zone)
    if "start" not in params or not params["start"].strip():
        raise BadParameter("start", "is required for a Stream attribute")
    start = parse_time(params["start"], now_ms=now_ms, tz=tz, parameter="start")
    end = parse_time(params["end"], now_ms=now_ms, tz=tz, parameter="end") \
        if params.get("end", "").strip() else now_ms
    if end < start:
        raise BadParameter("end", f"{end} ms is before start ({start} ms)")
    if end == start:
        raise BadParameter("end", f"equals start ({start} ms): a zero-length range")
    aggregator = (params.get("aggregator") or "none").strip()
    if aggregator not in AGGREGATORS:
        raise BadParameter("aggregator", f"unknown aggregator {aggregator!r} (one of "
                                         f"{', '.join(sorted(AGGREGATORS))})")
    downsample = parse_downsample(params["downsample"]) if params.get("downsample", "").strip() else None
    quality = (params.get("quality") or "false").strip().lower()
    if quality not in ("true", "false"):
        raise BadParameter("quality", f"{quality!r} is not true or false")
    if quality == "true" and (downsample is not None or aggregator != "none"):
        raise BadParameter("quality", "qualities come with raw points only (no downsample or aggregator)")
    return StreamQuery(start, end, tz, aggregator, downsample, quality == "true")


async def _summaries(conn: asyncpg.Connection, attribute_id: int, q: StreamQuery, spec: Downsample,
                     bounds: list[int] | None, *, start: int, stop: int
                     ) -> dict[tuple[int, int], Summary]:
    """Bucket summaries of [start, stop): rollups for whole rollup buckets, raw rows at the edges."""
    bucket: int | list[int] = bounds if bounds is not None else spec.interval_ms
    ends = spec.aggregator in ("first", "last")
    pieces: list[tuple[int, int, str]] = [(start, stop, "samples")]
    for width, table in series_store.ROLLUPS:
        if rollup_usable(spec, bounds, width):
            inner_start = -(-start // width) * width
            inner_stop = stop - stop % width
            if inner_start < inner_stop:
                pieces = [(start, inner_start, "samples"), (inner_start, inner_stop, table),
                          (inner_stop, stop, "samples")]
            break
    merged: dict[tuple[int, int], Summary] = {}
    for lo, hi, table in pieces:
        if lo >= hi:
            continue
        _retained(q, table, lo)
        part = await series_store.fetch_summaries(conn, attribute_id, start=lo, stop=hi, bucket=bucket,
                                            table=table, ends=ends)
        for key, summary in part.items():
            held = merged.get(key)
            merged[key] = summary if held is None else held.merge(summary)
    return merged


def _whole_buckets(spec: Downsample, bounds: list[int] | None, start: int, stop: int
                   ) -> tuple[int, int]:
    """[lo, hi): the span of the buckets that lie wholly inside [start, stop)."""
    if bounds is None:
        width = spec.interval_ms
        lo = start if start % width == 0 else epoch_bucket(start, width) + width
        return lo, epoch_bucket(stop, width)
    inside = [b for b in bounds if start <= b <= stop]
    return (inside[0], inside[-1]) if len(inside) >= 2 else (stop, stop)


async def _bucket_values(conn: asyncpg.Connection, attribute_id: int, q: StreamQuery,
                         spec: Downsample, bounds: list[int] | None, *, text: bool, rounded: bool
                         ) -> dict[int, Columns]:
    """Bucket values per series as columns: whole buckets computed by PostgreSQL (from a rollup
    when one fits), the partial first and last buckets from summaries of their rollup and raw
    parts (before and after the whole ones). A short downsample as wide as a rollup reads its
    rows with the edge buckets in one statement (_rows_and_edges), an edge from finer reads only
    where it holds points outside the query. With `text`, a range of whole buckets only may
    come back as Texts (store.series.fetch_values), with `rounded` perhaps rounded to 15
    significant digits (Texts.rounded; the edges are then rounded too)."""
    stop = q.end + 1
    bucket: int | list[int] = bounds if bounds is not None else spec.interval_ms
    lo, hi = (stop, stop) if spec.whole_range else _whole_buckets(spec, bounds, q.start, stop)
    if lo >= hi:
        lo = hi = stop
    whole: dict[int, Columns] = {}
    table = next((t for width, t in series_store.ROLLUPS if rollup_usable(spec, bounds, width)), "samples")
    as_stored = bounds is None and not spec.whole_range and dict(series_store.ROLLUPS).get(spec.interval_ms) == table
    first, last = (epoch_bucket(q.start, spec.interval_ms), epoch_bucket(q.end, spec.interval_ms)) if as_stored \
        else (0, 0)
    if as_stored and (last - first) // spec.interval_ms < SHORT_READ:
        _retained(q, table, first)
        whole, lo, hi = await _rows_and_edges(conn, attribute_id, q, spec, table, first=first, last=last)
    elif lo < hi:
        _retained(q, table, lo)
        whole = await series_store.fetch_values(conn, attribute_id, start=lo, stop=hi, bucket=bucket,
                                                table=table, aggregator=spec.aggregator, text=text,
                                                rounded=rounded)
    edges: list[dict[int, Columns]] = []
    for part_start, part_stop in ((q.start, lo), (hi, stop)):
        edge: dict[int, Columns] = {}
        if part_start < part_stop:
            summaries = await _summaries(conn, attribute_id, q, spec, bounds, start=part_start,
                                         stop=part_stop)
            for (idx, b), summary in sorted(summaries.items()):
                times, values = edge.setdefault(idx, ([], []))
                times.append(b)
                values.append(summarise(spec.aggregator, summary))
        edges.append(edge)
    head, tail = edges
    if not head and not tail:
        return whole
    empty: Columns = ([], [])
    return {idx: (head.get(idx, empty)[0] + whole.get(idx, empty)[0] + tail.get(idx, empty)[0],
                  _joined(head.get(idx, empty)[1], whole.get(idx, empty)[1], tail.get(idx, empty)[1]))
            for idx in sorted({*head, *whole, *tail})}


# Up to this many buckets, a downsample as wide as a rollup reads the rollup's rows with its edge
# buckets in one statement (_rows_and_edges); longer reads go through store.series.fetch_values.
SHORT_READ = 2000

_ROWS_AND_EDGES = """
SELECT array_agg(idx), array_agg(bucket), array_agg(v), min(first_ts) FILTER (WHERE bucket = $2),
       max(last_ts) FILTER (WHERE bucket = $3)
FROM (SELECT idx, bucket, {value} AS v, first_ts, last_ts FROM {table}
      WHERE attribute_id = $1 AND bucket >= $2 AND bucket <= $3 ORDER BY bucket, idx) AS x
"""


async def _rows_and_edges(conn: asyncpg.Connection, attribute_id: int, q: StreamQuery, spec: Downsample,
                          table: str, *, first: int, last: int) -> tuple[dict[int, Columns], int, int]:
    """A downsample as wide as `table`'s buckets, buckets `first`..`last`: every row's value,
    with the partial first and last buckets taken from their rows when those hold no point
    outside the query (first_ts >= start, last_ts <= end: a query up to now, or a range ending
    on a device's last reading). One statement, one snapshot. Returns the columns and the span
    [lo, hi) they cover exactly: an edge bucket with points outside is left to the caller's
    finer reads, as before."""
    row = await conn.fetchrow(_ROWS_AND_EDGES.format(value=series_store.ROW_VALUE[spec.aggregator], table=table),
                              attribute_id, first, last)
    assert row is not None  # an aggregate without GROUP BY: one row
    idxs, times, values, first_ts, last_ts = row
    width = spec.interval_ms
    lo = first + width if first_ts is not None and first_ts < q.start else first
    hi = last if last_ts is not None and last_ts > q.end else last + width
    if lo >= hi:  # one bucket, partly outside: all of it from the finer reads
        return {}, q.end + 1, q.end + 1
    # rows ascend by bucket: the edge rows left out are at either end
    begin, finish = (bisect.bisect_left(times, lo), bisect.bisect_left(times, hi)) if times else (0, 0)
    if begin >= finish:
        return {}, lo, hi
    return series_store.split_series(idxs[begin:finish], times[begin:finish], values[begin:finish]), lo, hi


def _joined(head: list[Any], whole: list[Any], tail: list[Any]) -> list[Any]:
    """The values of the partial first bucket, the whole ones and the partial last one; where the
    whole ones are Texts, the edges' doubles are written as PostgreSQL wrote those."""
    if not isinstance(whole, Texts):
        return head + whole + tail
    if whole.rounded:  # as the whole buckets' values: to 15 significant digits
        head, tail = [float(f"{float(v):.15g}") for v in head], [float(f"{float(v):.15g}") for v in tail]
    first = [postgres_text(float(v)) for v in head]
    last = [postgres_text(float(v)) for v in tail]
    joined = ",".join(part for part in (",".join(first), whole.joined, ",".join(last)) if part)
    return Texts(first + whole + last, joined=joined, rounded=whole.rounded)


async def _percentiles(conn: asyncpg.Connection, attribute_id: int, q: StreamQuery,
                       spec: Downsample, bounds: list[int] | None) -> dict[tuple[int, int], float]:
    """Percentiles per bucket: buckets made of whole hours from the hours' sorted values, the
    partial first and last buckets (and buckets the hour grid doesn't fit) from raw rows."""
    stop = q.end + 1
    bucket: int | list[int] = bounds if bounds is not None else spec.interval_ms
    quantile, method = percentile_spec(spec.aggregator)
    width, table = series_store.HOUR_VALUES
    pieces = [(q.start, stop, "samples")]
    if rollup_usable(spec, bounds, width):
        if spec.whole_range:  # one bucket: its values come whole from one source
            lo, hi = (q.start, stop) if q.start % width == 0 and stop % width == 0 else (stop, stop)
        else:
            lo, hi = _whole_buckets(spec, bounds, q.start, stop)
        if lo < hi:
            pieces = [(q.start, lo, "samples"), (lo, hi, table), (hi, stop, "samples")]
    values: dict[tuple[int, int], float] = {}
    for part_start, part_stop, source in pieces:
        if part_start < part_stop:
            _retained(q, source, part_start)
            values.update(await series_store.fetch_percentiles(
                conn, attribute_id, start=part_start, stop=part_stop, bucket=bucket, quantile=quantile,
                method=method, table=source))
    return values


async def _downsampled(conn: asyncpg.Connection, attribute_id: int, q: StreamQuery, spec: Downsample,
                       bounds: list[int] | None, *, text: bool = False, rounded: bool = False
                       ) -> dict[int, Columns]:
    if spec.aggregator in PERCENTILES:
        per_series: dict[int, Columns] = {}
        for (idx, b), value in sorted((await _percentiles(conn, attribute_id, q, spec, bounds)).items()):
            times, values = per_series.setdefault(idx, ([], []))
            times.append(b)
            values.append(value)
    else:
        per_series = await _bucket_values(conn, attribute_id, q, spec, bounds, text=text and spec.fill is Fill.NONE,
                                          rounded=rounded)
    if spec.fill is Fill.NONE:
        return per_series
    starts = bucket_starts(spec, q.start, q.end, q.tz)
    return {idx: _columns(fill(dict(zip(*columns, strict=True)), starts=starts, policy=spec.fill))
            for idx, columns in per_series.items()}


def _columns(points: Points) -> Columns:
    return [ts for ts, _ in points], [value for _, value in points]


def packed_window(params: Mapping[str, str], *, now_ms: int) -> tuple[int, int] | None:
    """[start, end] of a raw query whose packed hours (store.sample_hours) can be read with the
    attribute, before its project's time zone is known: its times read the same in every zone
    (relative or Unix times, or its own `timezone`). None otherwise, or when the parameters
    are refused (parse_query then says why, with the project's zone)."""
    if params.get("downsample", "").strip():
        return None
    if not params.get("timezone", "").strip() and not all(
            zone_free(params[name]) for name in ("start", "end") if params.get(name, "").strip()):
        return None
    try:
        q = parse_query(params, now_ms=now_ms, default_zone="UTC")
    except BadParameter:
        return None
    return (q.start, q.end) if sample_hours.reads_packed(q.start, q.end) else None


async def fetch_attribute(conn: asyncpg.Connection, attribute_id: int, params: Mapping[str, str], *, now_ms: int
                          ) -> tuple[asyncpg.Record | None, sample_hours.Packed | None]:
    """The attribute (store.series.fetch_attribute) and, for a raw query of packed hours whose
    times read the same in every zone (packed_window), those hours in the same statement: a
    round trip fewer (stream_series takes them as `packed`)."""
    window = packed_window(params, now_ms=now_ms)
    if window is None:
        return await series_store.fetch_attribute(conn, attribute_id), None
    return await sample_hours.fetch_attribute_and_packed(conn, attribute_id, *window, limit=MAX_RAW_POINTS + 1)


async def stream_series(conn: asyncpg.Connection, attribute: asyncpg.Record, q: StreamQuery, *,
                        packed: sample_hours.Packed | None = None) -> list[dict[str, Any]]:
    """The seed-002 `value` of a Stream attribute: [{"metric", "tags", "dps"}], each `dps`
    written ahead as JSON text (EncodedJson: api.dps.answer_response splices it in). `packed`:
    raw packed hours read with the attribute (packed_window)."""
    attribute_id = attribute["id"]
    textual = attribute["datatype"] in TEXT_DATATYPES
    if q.downsample is not None and textual:
        raise BadParameter("downsample", f"attribute {attribute_id} holds {attribute['datatype']} "
                                         "values, which cannot be downsampled; query raw points")
    series: dict[int, Columns]
    if q.downsample is None:
        _retained(q, "samples", q.start)
        has_text = False
        texts = None if textual else await sample_hours.fetch_raw_texts(conn, attribute_id, q.start, q.end,
                                                                          limit=MAX_RAW_POINTS + 1, packed=packed)
        if texts is not None:
            series, millis = texts
        else:
            series, millis, has_text = await series_store.fetch_raw(conn, attribute_id, q.start, q.end,
                                                                    limit=MAX_RAW_POINTS + 1)
        if sum(len(times) for times, _ in series.values()) > MAX_RAW_POINTS:
            raise BadParameter("start", f"more than {MAX_RAW_POINTS} raw points; narrow the range "
                                        "or add a downsample")
        if has_text and q.aggregator != "none":
            raise BadParameter("aggregator", f"attribute {attribute_id} holds non-numeric values; "
                                             "use aggregator=none")
    else:
        bounds = bucket_boundaries(q.downsample, q.start, q.end, q.tz)
        # values written to 15 digits may come so from the store, unless combine needs them exact
        rounded = _arithmetic(q.downsample.aggregator) and q.aggregator not in ("count", "dev")
        series = await _downsampled(conn, attribute_id, q, q.downsample, bounds, text=True, rounded=rounded)
        if rounded and q.aggregator != "none" and _combined(series, q.aggregator):
            series = await _downsampled(conn, attribute_id, q, q.downsample, bounds, text=True)
        # epoch buckets of whole seconds start on whole seconds: no need to look at each
        millis = (bounds is not None or q.downsample.interval_ms % 1000 != 0) and any(
            ts % 1000 for times, _ in series.values() for ts in times)
    tags = {"device_id": attribute["device_key"] or "", "dt_name": attribute["instance_name"]}
    metric = attribute["metric"] or attribute["name"]
    if not series:
        return []
    outputs: list[tuple[dict[str, str], Columns]]
    if q.aggregator != "none":
        if not _combined(series, q.aggregator):
            outputs = [(tags, next(iter(series.values())))]  # what combine gives back for one series
        else:
            policy = q.downsample.fill if q.downsample is not None else None
            combined = combine(q.aggregator, [list(zip(series[i][0], _doubles(series[i][1]), strict=True))
                                              for i in sorted(series)], policy=policy or Fill.NONE)
            outputs = [(tags, _columns(combined))]
    else:
        outputs = [({**tags, "index": str(idx)} if idx >= 0 else tags, series[idx])
                   for idx in sorted(series)]
    # Values computed by arithmetic on doubles (a sum, mean, deviation or interpolated
    # percentile, or a combination across array elements, which interpolates) are written to 15
    # significant digits, so a sum of 0.1-step readings reads 14556.392, not 14556.392000000003.
    # Values picked from the data (min, max, first, last, count, nearest-rank percentiles) and
    # raw points pass through with every digit the device sent.
    computed = (q.downsample is not None and _arithmetic(q.downsample.aggregator)) or (
        q.aggregator != "none" and len(series) > 1)
    answer: list[dict[str, Any]] = [
        {"metric": metric, "tags": t,
         "dps": EncodedJson(dps_from_texts(times, values, millis=millis, computed=computed)
                            if isinstance(values, Texts) else
                            dps_text(times, values, millis=millis, computed=computed), len(times))}
        for t, (times, values) in outputs]
    if q.quality:
        qualities = await series_store.fetch_qualities(conn, attribute_id, q.start, q.end)
        for item, idx in zip(answer, sorted(series), strict=True):
            item["quality"] = {dps_key(ts, millis): _quality(text) for ts, text in qualities.get(idx, [])}
    return answer


def _combined(series: dict[int, Columns], aggregator: str) -> bool:
    """Whether an aggregator across series (not none) runs combine: what it gives back for one
    series is that series, but for count and dev."""
    return len(series) > 1 or aggregator in ("count", "dev")


def _doubles(values: list[Any]) -> list[Any]:
    """A column's values as doubles (Texts read back: shortest-exact texts are exact)."""
    return [float(text) for text in values] if isinstance(values, Texts) else values


def _quality(text: str) -> Any:
    """A struct point's quality as the device sent it: an integer where it is one."""
    return int(text) if text.lstrip("-").isdigit() and len(text) < 19 else text


def _arithmetic(aggregator: str) -> bool:
    """Whether a downsample aggregator computes new values rather than picking stored ones."""
    return aggregator in ("avg", "sum", "zimsum", "dev") or aggregator.endswith("r7") or (
        aggregator.startswith("p") and aggregator[1:].isdigit())
