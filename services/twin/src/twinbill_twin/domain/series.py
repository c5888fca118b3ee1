"""Series maths after the store has answered: bucket values, fill policies, and the aggregation
of several series (an array attribute's elements) with OpenTSDB's interpolation rules."""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence

from twinbill_twin.domain.aggregators import (
    Interpolation,
    aggregate,
    interpolation,
)
from twinbill_twin.domain.downsample import Fill

Value = float | None          # None is the `null` fill marker; NaN the `nan` one
Points = list[tuple[int, Value]]


def fill(values: Mapping[int, float], *, starts: Sequence[int], policy: Fill) -> Points:
    """Bucketed values in time order; with a fill policy every bucket start is present."""
    if policy is Fill.NONE:
        return sorted(values.items())
    marker: Value = {Fill.NAN: math.nan, Fill.NULL: None, Fill.ZERO: 0.0}[policy]
    return [(start, values.get(start, marker)) for start in starts]


def _alone(name: str, value: Value) -> Value:
    """An aggregator over one series' single value at a timestamp (what combine would compute)."""
    if value is None or math.isnan(value):
        return value
    if name == "count":
        return 1.0
    if name == "dev":
        return 0.0
    return value


def _is_marker(value: Value) -> bool:
    return value is None or math.isnan(value)


def _value_at(ts: int, times: list[int], values: list[float], mode: Interpolation) -> float | None:
    """A series' contribution at `ts`; None when it does not take part (outside its range)."""
    if not times or ts < times[0] or ts > times[-1]:
        return None
    at = bisect.bisect_left(times, ts)
    if times[at] == ts:
        return values[at]
    if mode is Interpolation.EXACT:
        return None
    if mode is Interpolation.ZIM:
        return 0.0
    if mode is Interpolation.MAX:
        return math.inf
    if mode is Interpolation.MIN:
        return -math.inf
    x0, x1 = times[at - 1], times[at]
    y0, y1 = values[at - 1], values[at]
    return y0 + (ts - x0) * (y1 - y0) / (x1 - x0)


def combine(name: str, series: Sequence[Sequence[tuple[int, Value]]], *,
            policy: Fill = Fill.NONE) -> Points:
    """Aggregate several series into one, at the union of their timestamps.

    A series takes part at a timestamp between its first and last point (OpenTSDB's
    AggregationIterator); where it has no point there, it is interpolated as the aggregator
    says (lerp, zero, largest, smallest). Fill markers (NaN, null) are left out; a timestamp
    where only markers remain gets the marker.
    """
    if len(series) == 1:
        if name not in ("count", "dev"):  # _alone gives these values back unchanged
            return list(series[0])
        return [(ts, _alone(name, v)) for ts, v in series[0]]
    mode = interpolation(name)
    cleaned: list[tuple[list[int], list[float], set[int]]] = []
    stamps: set[int] = set()
    for points in series:
        times = [ts for ts, v in points if not _is_marker(v)]
        values = [float(v) for _, v in points if not _is_marker(v)]  # type: ignore[arg-type]  # markers removed
        markers = {ts for ts, v in points if _is_marker(v)}
        cleaned.append((times, values, markers))
        stamps.update(times)
        stamps.update(markers)
    marker: Value = None if policy is Fill.NULL else math.nan
    result: Points = []
    for ts in sorted(stamps):
        # a fill marker is a point of its own: the series is not interpolated through it
        taking_part = [v for times, values, markers in cleaned if ts not in markers
                       and (v := _value_at(ts, times, values, mode)) is not None]
        if not taking_part:
            result.append((ts, marker))
            continue
        result.append((ts, aggregate(name, taking_part)))
    return result
