"""Fill policies and cross-series aggregation with OpenTSDB's interpolation rules, checked
against numpy.interp as the reference for linear interpolation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twinbill_twin.domain.downsample import Fill
from twinbill_twin.domain.series import combine, fill

A = [(0, 1.0), (10, 3.0), (20, 5.0)]
B = [(5, 10.0), (15, 20.0)]


def test_fill_policies() -> None:
    values = {0: 1.0, 20: 3.0}
    starts = [0, 10, 20, 30]
    assert fill(values, starts=starts, policy=Fill.NONE) == [(0, 1.0), (20, 3.0)]
    assert fill(values, starts=starts, policy=Fill.ZERO) == [(0, 1.0), (10, 0.0), (20, 3.0), (30, 0.0)]
    assert fill(values, starts=starts, policy=Fill.NULL) == [(0, 1.0), (10, None), (20, 3.0), (30, None)]
    nan = fill(values, starts=starts, policy=Fill.NAN)
    assert [ts for ts, _ in nan] == starts and math.isnan(float(nan[1][1] or 0.0)) and nan[2][1] == 3.0


@pytest.mark.parametrize(("name", "expected"), [
    # at 0 and 20 only A takes part (B's range is 5..15); at 5 and 15 A is interpolated (2.0, 4.0)
    ("sum", [(0, 1.0), (5, 12.0), (10, 18.0), (15, 24.0), (20, 5.0)]),
    ("avg", [(0, 1.0), (5, 6.0), (10, 9.0), (15, 12.0), (20, 5.0)]),
    ("min", [(0, 1.0), (5, 2.0), (10, 3.0), (15, 4.0), (20, 5.0)]),
    ("max", [(0, 1.0), (5, 10.0), (10, 15.0), (15, 20.0), (20, 5.0)]),
    ("dev", [(0, 0.0), (5, 4.0), (10, 6.0), (15, 8.0), (20, 0.0)]),
    # zimsum: a series missing inside its range counts as 0
    ("zimsum", [(0, 1.0), (5, 10.0), (10, 3.0), (15, 20.0), (20, 5.0)]),
    ("count", [(0, 1.0), (5, 2.0), (10, 2.0), (15, 2.0), (20, 1.0)]),
    # mimmin: missing counts as the largest value; mimmax: as the smallest
    ("mimmin", [(0, 1.0), (5, 10.0), (10, 3.0), (15, 20.0), (20, 5.0)]),
    ("mimmax", [(0, 1.0), (5, 10.0), (10, 3.0), (15, 20.0), (20, 5.0)]),
    ("first", [(0, 1.0), (5, 10.0), (10, 3.0), (15, 20.0), (20, 5.0)]),
    ("last", [(0, 1.0), (5, 10.0), (10, 3.0), (15, 20.0), (20, 5.0)]),
    ("p50", [(0, 1.0), (5, 6.0), (10, 9.0), (15, 12.0), (20, 5.0)]),
])
def test_combine_interpolates_as_opentsdb(name: str, expected: list[tuple[int, float]]) -> None:
    result = combine(name, [A, B])
    assert [ts for ts, _ in result] == [ts for ts, _ in expected]
    assert [v for _, v in result] == pytest.approx([v for _, v in expected])


series_strategy = st.lists(
    st.dictionaries(st.integers(0, 100), st.floats(-1000, 1000, allow_nan=False), min_size=1,
                    max_size=12),
    min_size=1, max_size=5)


@settings(max_examples=200, deadline=None)
@given(raw=series_strategy)
def test_lerp_sum_matches_numpy_interp(raw: list[dict[int, float]]) -> None:
    """Reference: at every timestamp, numpy.interp of each series whose range covers it."""
    series = [sorted(d.items()) for d in raw]
    result = dict(combine("sum", series))
    for ts in sorted({t for d in raw for t in d}):
        parts = []
        for points in series:
            xs = [p[0] for p in points]
            if xs[0] <= ts <= xs[-1]:
                parts.append(float(np.interp(ts, xs, [p[1] for p in points])))
        assert result[ts] == pytest.approx(sum(parts), rel=1e-9, abs=1e-6)


def test_fill_markers_are_skipped_or_kept() -> None:
    nan = math.nan
    left = [(0, 1.0), (10, nan)]
    right = [(0, 3.0), (10, nan)]
    combined = combine("avg", [left, right], policy=Fill.NAN)
    assert combined[0] == (0, 2.0) and math.isnan(float(combined[1][1] or 0.0))
    assert combine("avg", [[(0, 1.0), (10, None)]], policy=Fill.NULL) == [(0, 1.0), (10, None)]
    zero = combine("sum", [[(0, 1.0), (10, 0.0)], [(0, 2.0), (10, 0.0)]], policy=Fill.ZERO)
    assert zero == [(0, 3.0), (10, 0.0)]


def test_markers_are_points_not_gaps_to_interpolate() -> None:
    """With fill nan/null each series has a marker in an empty bucket: no lerp across it."""
    left = [(0, 1.0), (60, None), (120, 3.0)]
    right = [(0, 10.0), (60, None), (120, 30.0)]
    assert combine("sum", [left, right], policy=Fill.NULL) == [(0, 11.0), (60, None), (120, 33.0)]
    mixed = combine("sum", [left, [(0, 10.0), (60, 20.0), (120, 30.0)]], policy=Fill.NULL)
    assert mixed == [(0, 11.0), (60, 20.0), (120, 33.0)]


@settings(max_examples=100, deadline=None)
@given(raw=st.dictionaries(st.integers(0, 100), st.floats(-1000, 1000, allow_nan=False), min_size=1,
                           max_size=12),
       name=st.sampled_from(["avg", "sum", "min", "max", "dev", "count", "zimsum", "mimmin",
                             "mimmax", "first", "last", "p95", "ep90r3", "ep90r7"]))
def test_one_series_fast_path_equals_the_general_rule(raw: dict[int, float], name: str) -> None:
    """One series aggregated alone: each value through the aggregator (count 1, dev 0)."""
    from twinbill_twin.domain.aggregators import aggregate
    points = sorted(raw.items())
    result = combine(name, [points])
    assert [ts for ts, _ in result] == [ts for ts, _ in points]
    assert [v for _, v in result] == pytest.approx([aggregate(name, [v]) for _, v in points])
