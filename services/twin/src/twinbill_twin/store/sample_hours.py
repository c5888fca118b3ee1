"""Sealed hours' raw points packed one row per series and hour (sample_hours, migration 0107):
how the seal and a delete pack them, and the raw read that takes the sealed hours from them and
the rest of the range (its edges, hours marked or never packed) from the samples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from twinbill_twin.store import series as series_store
from twinbill_twin.store.series import Columns, Texts

_HOUR = 3_600_000
# How far a range may start into an hour or end before its end for the packed rows to be read
# first: a meter's last point of an hour is a few seconds before its end (a query up to :59:59).
_REACH = 60_000

# An hour's points packed from its samples ({hours}: rows of attribute_id and bucket, the hour's
# start), as migration 0107 describes the columns: the times as a step where they lie one step
# apart (n points spanning (n - 1) times the smallest gap), else as an array. Only hours whose
# every point (every series) is a number; the texts as every reader writes doubles, so the
# statement runs with extra_float_digits 1.
PACK_SAMPLES = """
    INSERT INTO sample_hours AS h (attribute_id, idx, bucket, first_ts, last_ts, n, step, ts, dbl, millis)
    SELECT attribute_id, idx, bucket, first_ts, last_ts, n, step, CASE WHEN step IS NULL THEN ts END, dbl, millis
    FROM (SELECT attribute_id, idx, bucket, min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS n,
                 CASE WHEN count(*) = 1 THEN 1 WHEN (count(*) - 1) * min(gap) = max(ts) - min(ts) THEN min(gap) END
                     AS step,
                 array_agg(ts) AS ts, string_agg(dbl::text, ',') AS dbl, bool_or(ts % 1000 <> 0) AS millis,
                 bool_and(bool_and(dbl IS NOT NULL)) OVER (PARTITION BY attribute_id, bucket) AS numbers
          FROM (SELECT s.attribute_id, hours.bucket, s.idx, s.ts, s.dbl, s.ts - lag(s.ts) OVER w AS gap
                FROM {hours} JOIN samples AS s ON s.attribute_id = hours.attribute_id
                     AND s.ts >= hours.bucket AND s.ts < hours.bucket + 3600000
                WINDOW w AS (PARTITION BY s.attribute_id, hours.bucket, s.idx ORDER BY s.ts)
                -- one sort, the window's: the grouping, the aggregates' order and the hour's
                -- window (over the packed rows) follow it
                ORDER BY s.attribute_id, hours.bucket, s.idx, s.ts) AS points
          GROUP BY attribute_id, bucket, idx) AS hour_rows
    WHERE numbers
    ON CONFLICT (attribute_id, bucket, idx) DO UPDATE SET
        first_ts = EXCLUDED.first_ts, last_ts = EXCLUDED.last_ts, n = EXCLUDED.n, step = EXCLUDED.step,
        ts = EXCLUDED.ts, dbl = EXCLUDED.dbl, millis = EXCLUDED.millis
    RETURNING h.attribute_id, h.bucket, h.idx"""

# $1 the series key, [$2, $3] the points asked for, [$4, $5) the hours they touch, $6 the row
# limit: the packed rows of the hours not marked, in (bucket, idx) order, until their points pass
# the limit; an hour with a point outside [$2, $3] (one at either end of the range) brings its
# times only, to say so.
_PACKED = """
SELECT bucket, idx, first_ts, last_ts, n, step, CASE WHEN inside THEN ts END AS ts,
       CASE WHEN inside THEN dbl END AS dbl, millis
FROM (SELECT h.*, h.first_ts >= $2::bigint AND h.last_ts <= $3::bigint AS inside,
             sum(h.n) OVER (ORDER BY h.bucket, h.idx) - h.n AS before
      FROM sample_hours AS h
      WHERE h.attribute_id = $1 AND h.bucket >= $4::bigint AND h.bucket < $5::bigint
        AND NOT EXISTS (SELECT FROM hour_values_dirty AS d WHERE d.attribute_id = $1 AND d.bucket = h.bucket)
     ) AS hours
WHERE before <= $6
"""

# At most this many runs of hours not packed (the range's edges, the hour being written) are read
# from the samples one statement each; more (hours amid packed ones not packed) and the whole
# range is read from the samples in one, as before the packed hours. (One statement over the runs
# got a generic plan that took 60-160 ms: asyncpg's prepared statements.)
_RUNS = 2


# The attribute (store.series.ATTRIBUTE) with _PACKED's rows: a raw query's first round trip.
_ATTRIBUTE_AND_PACKED = f"""
SELECT a.*, p.* FROM ({series_store.ATTRIBUTE}) AS a LEFT JOIN LATERAL ({_PACKED}) AS p ON true
"""
_PACKED_COLUMNS = 9


@dataclass(frozen=True)
class Packed:
    """_PACKED's rows for the points in [start, end] (read with the attribute)."""

    start: int
    end: int
    rows: list[tuple[Any, ...]]


def reads_packed(start: int, end: int) -> bool:
    """Whether fetch_raw_texts reads packed hours for [start, end]: some hour lies in it but for a
    minute at most at either end (its hours are seldom packed inside a range that cuts more)."""
    covered = -(-(start - _REACH) // _HOUR) * _HOUR  # the first hour starting at most _REACH before start
    return covered + _HOUR - _REACH <= end + 1


async def fetch_attribute_and_packed(conn: asyncpg.Connection, attribute_id: int, start: int, end: int, *,
                                     limit: int) -> tuple[asyncpg.Record | None, Packed]:
    """store.series.fetch_attribute's row and the packed hours fetch_raw_texts reads for a raw
    query of [start, end] (reads_packed), in one statement: a round trip fewer for a raw query.
    The row carries _PACKED's columns too (attribute_body and stream_series read it by name)."""
    records = await conn.fetch(_ATTRIBUTE_AND_PACKED, attribute_id, start, end, start - start % _HOUR,
                               end - end % _HOUR + _HOUR, limit)
    rows = [tuple(record)[-_PACKED_COLUMNS:] for record in records if record["bucket"] is not None]
    return (records[0] if records else None), Packed(start, end, rows)


# (start, series index, times, texts, texts comma-joined): one series' points over one span of time
Piece = tuple[int, int, list[int], list[str], str]


async def fetch_raw_texts(conn: asyncpg.Connection, attribute_id: int, start: int, end: int, *, limit: int,
                          packed: Packed | None = None) -> tuple[dict[int, Columns], bool] | None:
    """store.series.fetch_raw_texts's answer (the same columns, texts and millisecond flag), the
    sealed hours from their packed rows (one row, no time formatted, instead of 3,600 samples for
    an hour at 1 Hz) and the rest from the samples, one statement per run of hours not packed
    whole inside the range (its cut edges, the hour being written; see _RUNS). Each hour is read
    in one snapshot (statements apart: a point written between them shows in an hour read by a
    later one, as it would a moment later). A range that reads_packed says no to reads the
    samples as before. `packed`: the packed rows already read with the attribute
    (fetch_attribute_and_packed), if for this range. None when some point is text."""
    if not reads_packed(start, end):
        return await series_store.fetch_raw_texts(conn, attribute_id, start, end, limit=limit)
    first, stop = start - start % _HOUR, end - end % _HOUR + _HOUR
    rows: list[Any] = packed.rows if packed is not None and (packed.start, packed.end) == (start, end) else \
        await conn.fetch(_PACKED, attribute_id, start, end, first, stop, limit)
    outside = {row[0] for row in rows if row[7] is None}  # hours with a point outside the range
    pieces: list[Piece] = []
    points = 0
    millis = False
    for bucket, idx, first_ts, last_ts, n, step, ts, dbl, ms in rows:
        if bucket in outside:
            continue
        times = list(range(first_ts, last_ts + 1, step)) if step is not None else ts
        pieces.append((bucket, idx, times, dbl.split(","), dbl))
        points += n
        millis = millis or ms
    if points <= limit:
        read = {piece[0] for piece in pieces}
        runs = _runs([hour for hour in range(first, stop, _HOUR) if hour not in read], start=start, end=end)
        if len(runs) > _RUNS:
            return await series_store.fetch_raw_texts(conn, attribute_id, start, end, limit=limit)
        for lo, hi in runs:
            found = await series_store.fetch_raw_texts(conn, attribute_id, lo, hi - 1, limit=limit)
            if found is None:
                return None
            millis = millis or found[1]
            pieces += [(lo, idx, times, texts, _joined(texts)) for idx, (times, texts) in found[0].items()]
    return _columns(pieces), millis


def _runs(hours: list[int], *, start: int, end: int) -> list[tuple[int, int]]:
    """[lo, hi) of each run of consecutive hours (ascending starts), cut to [start, end]."""
    runs: list[tuple[int, int]] = []
    for hour in hours:
        if runs and runs[-1][1] == hour:
            runs[-1] = (runs[-1][0], hour + _HOUR)
        else:
            runs.append((hour, hour + _HOUR))
    return [(max(lo, start), min(hi, end + 1)) for lo, hi in runs]


def _columns(pieces: list[Piece]) -> dict[int, Columns]:
    """Each series' pieces joined in time order (the pieces' spans do not overlap)."""
    times: dict[int, list[int]] = {}
    parts: dict[int, list[str]] = {}
    joined: dict[int, list[str]] = {}
    for _, idx, piece_times, piece_parts, piece_joined in sorted(pieces, key=lambda piece: (piece[0], piece[1])):
        if idx in times:
            times[idx] += piece_times
            parts[idx] += piece_parts
            joined[idx].append(piece_joined)
        else:
            times[idx], parts[idx], joined[idx] = piece_times, piece_parts, [piece_joined]
    return {idx: (times[idx], Texts(parts[idx], joined=",".join(joined[idx]))) for idx in sorted(times)}


def _joined(texts: list[str]) -> str:
    """The texts comma-joined (texts_by_series gives Texts, which carry them so)."""
    return texts.joined if isinstance(texts, Texts) else ",".join(texts)
