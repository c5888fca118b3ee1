"""Every aggregator against an independent reference: numpy's percentile methods (weibull = R-6,
closest_observation = R-3, linear = R-7), numpy.std for dev, plain sums for the rest."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twinbill_twin.domain.aggregators import (
    AGGREGATORS,
    PERCENTILES,
    Summary,
    aggregate,
    percentile_spec,
    quantile,
    summarise,
)

NUMPY_METHOD = {3: "closest_observation", 6: "weibull", 7: "linear"}
values_lists = st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1,
                        max_size=60)


def test_seed_table_is_complete() -> None:
    """Every aggregator of seed 002's table is known."""
    seed = {"avg", "count", "dev", "ep50r3", "ep50r7", "ep75r3", "ep75r7", "ep90r3", "ep90r7",
            "ep95r3", "ep95r7", "ep99r3", "ep99r7", "ep999r3", "ep999r7", "first", "last",
            "mimmin", "mimmax", "min", "max", "none", "p50", "p75", "p90", "p95", "p99",
            "p999", "sum", "zimsum"}
    assert seed == set(AGGREGATORS)


@pytest.mark.parametrize(("name", "q", "method"), [
    ("p50", 0.5, 6), ("p999", 0.999, 6), ("ep50r3", 0.5, 3), ("ep50r7", 0.5, 7),
    ("ep999r3", 0.999, 3), ("ep95r7", 0.95, 7),
])
def test_percentile_names(name: str, q: float, method: int) -> None:
    assert percentile_spec(name) == (q, method)


@settings(max_examples=300, deadline=None)
@given(values=values_lists, name=st.sampled_from(sorted(PERCENTILES)))
def test_percentiles_match_numpy(values: list[float], name: str) -> None:
    q, method = percentile_spec(name)
    expected = float(np.percentile(np.array(values), q * 100,
                                   method=NUMPY_METHOD[method]))  # type: ignore[call-overload]  # method is one of numpy's literals
    assert aggregate(name, values) == pytest.approx(expected, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(("values", "q", "method", "expected"), [
    ([1, 2, 3, 4], 0.5, 6, 2.5),
    ([1, 2, 3, 4], 0.5, 7, 2.5),
    ([1, 2, 3, 4], 0.5, 3, 2.0),      # the nearest even order statistic on a tie
    ([10, 20, 30, 40, 50], 0.95, 6, 50.0),
    ([10, 20, 30, 40, 50], 0.95, 7, 48.0),
    ([10, 20, 30, 40, 50], 0.95, 3, 50.0),
    ([7], 0.99, 6, 7.0),
])
def test_percentile_table(values: list[float], q: float, method: int, expected: float) -> None:
    assert quantile(sorted(values), q, method=method) == pytest.approx(expected)


@settings(max_examples=200, deadline=None)
@given(values=values_lists)
def test_summary_aggregators_match_numpy(values: list[float]) -> None:
    array = np.array(values)
    reference = {
        "avg": float(array.mean()), "sum": float(array.sum()), "zimsum": float(array.sum()),
        "min": float(array.min()), "mimmin": float(array.min()), "max": float(array.max()),
        "mimmax": float(array.max()), "dev": float(np.std(array)), "count": float(len(values)),
        "first": values[0], "last": values[-1],
    }
    for name, expected in reference.items():
        assert aggregate(name, values) == pytest.approx(expected, rel=1e-9, abs=1e-6), name


@settings(max_examples=200, deadline=None)
@given(values=values_lists, cut=st.integers(min_value=1, max_value=59), offset=st.floats(0, 1e9))
def test_merged_summaries_equal_the_whole(values: list[float], cut: int, offset: float) -> None:
    """What rollups rely on: merging two runs' summaries equals summarising both at once."""
    points = [(i, v + offset) for i, v in enumerate(values)]
    if cut >= len(points):
        cut = len(points) // 2 or 1
    if cut >= len(points):
        return
    whole = Summary.of(points)
    merged = Summary.of(points[cut:]).merge(Summary.of(points[:cut]))
    for name in ("avg", "sum", "min", "max", "count", "first", "last"):
        assert summarise(name, merged) == pytest.approx(summarise(name, whole), rel=1e-12), name
    reference_dev = float(np.std(np.array([v for _, v in points])))
    assert summarise("dev", merged) == pytest.approx(reference_dev, rel=1e-6, abs=1e-3)


def test_dev_is_population_std() -> None:
    assert aggregate("dev", [2, 4, 4, 4, 5, 5, 7, 9]) == 2.0
    assert aggregate("dev", [5]) == 0.0


def test_percentile_of_nothing_is_nan() -> None:
    assert math.isnan(quantile([], 0.5, method=6))
