"""A Stream attribute's query (seed 002): parameters -> store reads -> OpenTSDB-shaped series."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from twinbill_twin.timeseries import reader
from twinbill_twin.timeseries.domain.aggregators import AGGREGATORS, PERCENTILES, Summary, aggregate
from twinbill_twin.timeseries.domain.downsample import (
    Downsample,
    Fill,
    bucket_boundaries,
    bucket_starts,
    parse_downsample,
    rollup_usable,
)
from twinbill_twin.timeseries.domain.errors import BadParameter
from twinbill_twin.timeseries.domain.series import Points, combine, downsample_summaries, fill
from twinbill_twin.timeseries.domain.timeparse import parse_time, parse_zone

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
    aggregator = (params.get("aggregator") or "none").strip()
    if aggregator not in AGGREGATORS:
        raise BadParameter("aggregator", f"unknown aggregator {aggregator!r} (one of "
                                         f"{', '.join(sorted(AGGREGATORS))})")
    downsample = parse_downsample(params["downsample"]) if params.get("downsample", "").strip() else None
    return StreamQuery(start, end, tz, aggregator, downsample)


async def _summaries(conn: asyncpg.Connection, attribute_id: int, q: StreamQuery, spec: Downsample,
                     bounds: list[int] | None) -> dict[tuple[int, int], Summary]:
    """Bucket summaries: rollups for whole rollup buckets inside the range, raw rows at the edges."""
    bucket: int | list[int] = bounds if bounds is not None else spec.interval_ms
    ends = spec.aggregator in ("first", "last")
    stop = q.end + 1
    pieces: list[tuple[int, int, str]] = [(q.start, stop, "samples")]
    for width, table in reader.ROLLUPS:
        if rollup_usable(spec, bounds, width):
            inner_start = -(-q.start // width) * width
            inner_stop = stop - stop % width
            if inner_start < inner_stop:
                pieces = [(q.start, inner_start, "samples"), (inner_start, inner_stop, table),
                          (inner_stop, stop, "samples")]
            break
    merged: dict[tuple[int, int], Summary] = {}
    for lo, hi, table in pieces:
        if lo >= hi:
            continue
        part = await reader.fetch_summaries(conn, attribute_id, start=lo, stop=hi, bucket=bucket,
                                            table=table, ends=ends)
        for key, summary in part.items():
            held = merged.get(key)
            merged[key] = summary if held is None else held.merge(summary)
    return merged


async def _downsampled(conn: asyncpg.Connection, attribute_id: int, q: StreamQuery,
                       spec: Downsample) -> dict[int, Points]:
    bounds = bucket_boundaries(spec, q.start, q.end, q.tz)
    per_series: dict[int, dict[int, float]] = defaultdict(dict)
    if spec.aggregator in PERCENTILES:
        bucket: int | list[int] = bounds if bounds is not None else spec.interval_ms
        values = await reader.fetch_bucket_values(conn, attribute_id, start=q.start,
                                                  stop=q.end + 1, bucket=bucket)
        for (idx, b), vals in values.items():
            per_series[idx][b] = aggregate(spec.aggregator, vals)
    else:
        summaries = await _summaries(conn, attribute_id, q, spec, bounds)
        grouped: dict[int, dict[int, Summary]] = defaultdict(dict)
        for (idx, b), summary in summaries.items():
            grouped[idx][b] = summary
        for idx, buckets in grouped.items():
            per_series[idx] = downsample_summaries(spec.aggregator, buckets)
    starts = bucket_starts(spec, q.start, q.end, q.tz) if spec.fill is not Fill.NONE else []
    return {idx: fill(values, starts=starts, policy=spec.fill) for idx, values in per_series.items()}


async def stream_series(conn: asyncpg.Connection, attribute: asyncpg.Record, q: StreamQuery
                        ) -> list[dict[str, Any]]:
    """The seed-002 `value` of a Stream attribute: [{"metric", "tags", "dps"}]."""
    attribute_id = attribute["id"]
    textual = attribute["datatype"] in TEXT_DATATYPES
    if q.downsample is not None and textual:
        raise BadParameter("downsample", f"attribute {attribute_id} holds {attribute['datatype']} "
                                         "values, which cannot be downsampled; query raw points")
    series: dict[int, list[tuple[int, Any]]]
    if q.downsample is None:
        series = dict(await reader.fetch_raw(conn, attribute_id, q.start, q.end))
        if sum(len(points) for points in series.values()) > MAX_RAW_POINTS:
            raise BadParameter("start", f"more than {MAX_RAW_POINTS} raw points; narrow the range "
                                        "or add a downsample")
        has_text = any(isinstance(v, str) for points in series.values() for _, v in points)
        if has_text and q.aggregator != "none":
            raise BadParameter("aggregator", f"attribute {attribute_id} holds non-numeric values; "
                                             "use aggregator=none")
    else:
        series = dict(await _downsampled(conn, attribute_id, q, q.downsample))
    tags = {"device_id": attribute["device_key"] or "", "dt_name": attribute["instance_name"]}
    metric = attribute["metric"] or attribute["name"]
    if not series:
        return []
    if q.aggregator != "none":
        policy = q.downsample.fill if q.downsample is not None else None
        combined = combine(q.aggregator, [series[i] for i in sorted(series)], policy=policy or Fill.NONE)
        outputs: list[tuple[dict[str, str], list[tuple[int, Any]]]] = [(tags, combined)]
    else:
        outputs = [({**tags, "index": str(idx)} if idx >= 0 else tags, series[idx])
                   for idx in sorted(series)]
    millis = any(ts % 1000 for _, points in outputs for ts, _ in points)
    return [{"metric": metric, "tags": t, "dps": {_key(ts, millis): _number(v) for ts, v in points}}
            for t, points in outputs]


def _key(ts: int, millis: bool) -> str:
    return str(ts) if millis else str(ts // 1000)


def _number(value: Any) -> Any:
    """Integral doubles are written as integers (the seed's `19`), NaN stays NaN, text stays text."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value

