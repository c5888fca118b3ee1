"""Seed 002's aggregators with OpenTSDB's semantics: mergeable partial summaries (what rollups
store), the bucket value of each aggregator, and Hyndman-Fan quantile estimators R-3, R-6, R-7."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from enum import Enum
from typing import NamedTuple


class Interpolation(Enum):
    """How a series missing at a timestamp takes part in a cross-series aggregation."""

    LERP = "lerp"     # linear interpolation between its neighbours
    ZIM = "zim"       # zero if missing
    MAX = "max"       # the largest value if missing (never wins a min)
    MIN = "min"       # the smallest value if missing (never wins a max)
    EXACT = "exact"   # only series with a real point at that timestamp (first, last)


_PERCENTILE = re.compile(r"^(e?)p(50|75|90|95|99|999)(?:r([37]))?$")

# Summaries suffice (rollups can answer); percentiles need the raw values.
SUMMARY_AGGREGATORS = frozenset({"avg", "sum", "zimsum", "min", "max", "mimmin", "mimmax",
                                 "dev", "count", "first", "last"})
PERCENTILES = frozenset({f"p{q}" for q in ("50", "75", "90", "95", "99", "999")}
                        | {f"ep{q}r{m}" for q in ("50", "75", "90", "95", "99", "999") for m in "37"})
DOWNSAMPLERS = SUMMARY_AGGREGATORS | PERCENTILES
AGGREGATORS = DOWNSAMPLERS | {"none"}


def interpolation(name: str) -> Interpolation:
    """The interpolation OpenTSDB (and seed 002's table) pairs with an aggregator."""
    if name in ("zimsum", "count"):
        return Interpolation.ZIM
    if name == "mimmin":
        return Interpolation.MAX
    if name == "mimmax":
        return Interpolation.MIN
    if name in ("first", "last"):
        return Interpolation.EXACT
    return Interpolation.LERP


def percentile_spec(name: str) -> tuple[float, int]:
    """(quantile, Hyndman-Fan method) of p95 (R-6, OpenTSDB's default), ep95r3 (R-3), ep95r7 (R-7).

    OpenTSDB silently computes ep<q>r3/ep<q>r7 with R-6 as well; we compute what the names
    (and seed 002's table) promise.
    """
    match = _PERCENTILE.match(name)
    if match is None:
        raise ValueError(f"not a percentile aggregator: {name}")
    estimated, digits, method = match.groups()
    quantile = int(digits) / (1000 if digits == "999" else 100)
    if estimated and method:
        return quantile, int(method)
    if not estimated and not method:
        return quantile, 6
    raise ValueError(f"not a percentile aggregator: {name}")


def quantile(ordered: Sequence[float], q: float, *, method: int) -> float:
    """Hyndman-Fan sample quantile R-3, R-6 or R-7 of sorted values (1-based order statistics)."""
    n = len(ordered)
    if n == 0:
        return math.nan
    if method == 3:
        h = n * q - 0.5
        j = math.floor(h)
        g = h - j
        take_upper = not (g == 0 and j % 2 == 0)
        k = j + 1 if take_upper else j
        return float(ordered[min(max(k, 1), n) - 1])
    if method == 6:
        h = (n + 1) * q
    elif method == 7:
        h = (n - 1) * q + 1
    else:
        raise ValueError(f"unsupported quantile method R-{method}")
    j = math.floor(h)
    g = h - j
    lower = ordered[min(max(j, 1), n) - 1]
    upper = ordered[min(max(j + 1, 1), n) - 1]
    return float(lower + g * (upper - lower))


class Summary(NamedTuple):
    """A mergeable summary of a run of points: count, sum, M2 (for dev), min, max, first, last.

    A NamedTuple: thousands are built per query, and tuples are the cheapest to build.
    """

    n: int
    sum: float
    m2: float
    min: float
    max: float
    first_ts: int
    first_v: float
    last_ts: int
    last_v: float

    @classmethod
    def of(cls, points: Sequence[tuple[int, float]]) -> Summary:
        """The summary of (timestamp, value) points (at least one)."""
        values = [v for _, v in points]
        n = len(values)
        mean = math.fsum(values) / n
        first = min(points, key=lambda p: p[0])
        last = max(points, key=lambda p: p[0])
        return cls(n, math.fsum(values), math.fsum((v - mean) ** 2 for v in values),
                   min(values), max(values), first[0], first[1], last[0], last[1])

    def merge(self, other: Summary) -> Summary:
        """The summary of both runs (Chan et al.'s parallel variance for M2)."""
        n = self.n + other.n
        delta = other.sum / other.n - self.sum / self.n
        m2 = self.m2 + other.m2 + delta * delta * self.n * other.n / n
        first = (self.first_ts, self.first_v) if self.first_ts <= other.first_ts else (other.first_ts, other.first_v)
        last = (self.last_ts, self.last_v) if self.last_ts >= other.last_ts else (other.last_ts, other.last_v)
        return Summary(n, self.sum + other.sum, m2, min(self.min, other.min),
                       max(self.max, other.max), first[0], first[1], last[0], last[1])


def summarise(name: str, summary: Summary) -> float:
    """The value of a summary-friendly aggregator over one bucket."""
    if name == "count":
        return float(summary.n)
    if name in ("sum", "zimsum"):
        return summary.sum
    if name == "avg":
        return summary.sum / summary.n
    if name in ("min", "mimmin"):
        return summary.min
    if name in ("max", "mimmax"):
        return summary.max
    if name == "dev":
        return math.sqrt(max(summary.m2, 0.0) / summary.n)
    if name == "first":
        return summary.first_v
    if name == "last":
        return summary.last_v
    raise ValueError(f"{name} needs the raw values")


def aggregate(name: str, values: Sequence[float]) -> float:
    """One aggregator over a list of values (in time or series order; at least one value)."""
    if name in PERCENTILES:
        q, method = percentile_spec(name)
        return quantile(sorted(values), q, method=method)
    if name == "count":
        return float(len(values))
    if name == "first":
        return float(values[0])
    if name == "last":
        return float(values[-1])
    if name in ("min", "mimmin"):
        return float(min(values))
    if name in ("max", "mimmax"):
        return float(max(values))
    if name in ("sum", "zimsum"):
        return math.fsum(values)
    if name == "avg":
        return math.fsum(values) / len(values)
    return summarise(name, Summary.of(list(enumerate(values))))
