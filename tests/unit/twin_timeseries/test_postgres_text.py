"""Python-computed edge buckets written as PostgreSQL writes doubles (domain.floattext.postgres_text)
join PostgreSQL's texts; dps_from_texts must write them exactly as dps() writes the doubles."""

from __future__ import annotations

import json
import math
import random
import struct

import pytest

from twinbill_twin.api.dps import dps, dps_from_texts
from twinbill_twin.domain.floattext import postgres_text
from twinbill_twin.store.series import Texts

EDGES = [0.0, -0.0, 1.0, 100.0, 1e-05, 1e15, 1e16, 2.0**53, 2.0**53 + 2, 9007199254740994.0, 1234567890123456.5,
         5e-324, 1.7976931348623157e308, 1e-30, float("nan"), float("inf"), float("-inf")]


def values(seed: int) -> list[float]:
    rng = random.Random(seed)
    found = [x for x in (struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
                         for _ in range(20_000)) if math.isfinite(x)]
    return found + [rng.randint(0, 10**6) / 10 for _ in range(20_000)] + EDGES


@pytest.mark.parametrize("computed", [False, True])
def test_edge_texts_write_as_dps(computed: bool) -> None:
    """Every value, edges included, through postgres_text and dps_from_texts gives json.dumps(dps())."""
    found = values(17)
    times = [1_793_145_600_000 + 60_000 * i for i in range(len(found))]
    texts = [postgres_text(v) for v in found]
    got = dps_from_texts(times, Texts(texts, joined=",".join(texts)), millis=False, computed=computed)
    assert got == json.dumps(dps(times, found, millis=False, computed=computed), ensure_ascii=False)


@pytest.mark.parametrize("computed", [False, True])
def test_plain_values_take_the_format(computed: bool) -> None:
    """Readings without edge values stay on the one-format path (no "e+", "N", "-0") and equal dps()."""
    rng = random.Random(3)
    found = [rng.randint(0, 10**6) / 10 for _ in range(3000)] + [7.0, 123456789012.0]
    times = [1_793_145_600_000 + 10_000 * i for i in range(len(found))]
    texts = [postgres_text(v) for v in found]
    joined = ",".join(texts)
    assert "e" not in joined and "N" not in joined and "-0" not in texts
    got = dps_from_texts(times, Texts(texts, joined=joined), millis=True, computed=computed)
    assert got == json.dumps(dps(times, found, millis=True, computed=computed), ensure_ascii=False)


def test_postgres_text_forms() -> None:
    """PostgreSQL's forms: integral doubles without a point below 2**53, NaN and Infinity spelled out."""
    assert [postgres_text(v) for v in (100.0, 0.1, -0.0, 2.0**53, float("nan"), float("-inf"), 1e-05)] == \
        ["100", "0.1", "-0", "9007199254740992.0", "NaN", "-Infinity", "1e-05"]


def test_long_computed_texts_are_rounded_to_15_digits() -> None:
    """Averages whose shortest text is longer than 15 characters (17 digits) are written to 15
    digits from the double, the short ones as they stand, on the one-format path: equal to dps()."""
    rng = random.Random(11)
    found = [sum(rng.randint(0, 10**6) / 10 for _ in range(6)) / 6 for _ in range(5000)] + [1.5, 3.0]
    times = [1_793_145_600_000 + 60_000 * i for i in range(len(found))]
    texts = [postgres_text(v) for v in found]
    assert sum(len(t) > 15 for t in texts) > 100 and sum(len(t) <= 15 for t in texts) > 100  # both kinds
    joined = ",".join(texts)
    assert "e" not in joined and "N" not in joined
    got = dps_from_texts(times, Texts(texts, joined=joined), millis=False, computed=True)
    assert got == json.dumps(dps(times, found, millis=False, computed=True), ensure_ascii=False)
