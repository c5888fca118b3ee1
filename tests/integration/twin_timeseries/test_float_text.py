"""What domain.floattext and api.dps.dps_from_texts rely on, held against PostgreSQL: its float
text (extra_float_digits 1, as create_pool sets it), fixed up, gives the very texts the answers
wrote from Python doubles before."""

from __future__ import annotations

import json
import math
import random
import struct
from collections.abc import Callable

import pytest

from twinbill_common.postgres import create_pool
from twinbill_twin.api.dps import dps, dps_from_texts
from twinbill_twin.bemserver.aggregates import json_number
from twinbill_twin.domain.floattext import repr_texts, rounded_texts, split_values
from twinbill_twin.store.samples import ROUND15
from twinbill_twin.store.series import Texts

EDGES = [0.0, -0.0, 1.0, -1.0, 100.0, 1e-05, 0.0001, 0.1, 1e15, 1e16, 9999999999999998.0, 2.0**53, 2.0**53 + 2,
         123456789012345.6, 1234567890123456.7, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
         1e-30, 1e22, 0.30000000000000004, float("nan"), float("inf"), float("-inf")]


def doubles(seed: int) -> list[float]:
    """Random bit patterns (every exponent), meter-like readings, integers around 2**53, edges."""
    rng = random.Random(seed)
    found = [x for x in (struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
                         for _ in range(60_000)) if math.isfinite(x)]
    found += [rng.randint(1, 10**7) / 10 ** rng.randint(0, 12) for _ in range(30_000)]
    found += [float(rng.randint(-10**17, 10**17)) for _ in range(10_000)]
    found += [rng.uniform(-1e6, 1e6) for _ in range(10_000)]
    return found + EDGES


@pytest.mark.parametrize("write", [float.__repr__, json_number])
async def test_shortest_texts_become_repr(pg_dsn: str, write: Callable[[float], str]) -> None:
    """BEMServer's aggregate values: PostgreSQL's text of each double, fixed up, equals what
    repr (CSV) or json_number (JSON) writes of it."""
    values = doubles(16)
    pool = await create_pool(pg_dsn, schema="public", max_size=1)
    try:
        joined = await pool.fetchval("SELECT array_to_string($1::float8[], ',')", values)
    finally:
        await pool.close()
    parts = split_values(joined, len(values))
    assert parts is not None
    assert repr_texts(parts, joined=joined, write=write) == [write(v) for v in values]


async def test_integral_texts_get_a_point(pg_dsn: str) -> None:
    """The fix-up path alone: integral values and -0 get repr's ".0", "1e-05" stays as it is."""
    values = [100.0, -0.0, 1e-05, 2.5, 3.0]
    pool = await create_pool(pg_dsn, schema="public", max_size=1)
    try:
        joined = await pool.fetchval("SELECT array_to_string($1::float8[], ',')", values)
    finally:
        await pool.close()
    assert joined == "100,-0,1e-05,2.5,3"
    parts = split_values(joined, len(values))
    assert parts is not None
    assert repr_texts(parts, joined=joined) == ["100.0", "-0.0", "1e-05", "2.5", "3.0"]
    assert split_values(joined, len(values) + 1) is None


@pytest.mark.parametrize("computed", [False, True])
async def test_dps_from_texts_equals_dps(pg_dsn: str, computed: bool) -> None:
    """Seed 002's dps written from PostgreSQL's texts (picked values as they stand; computed
    ones, and edge values, read back) is byte-identical to json.dumps of dps() over the doubles."""
    values = doubles(2)
    times = [1_793_145_600_000 + 1000 * i for i in range(len(values))]
    pool = await create_pool(pg_dsn, schema="public", max_size=1)
    try:
        joined = await pool.fetchval("SELECT array_to_string($1::float8[], ',')", values)
        rng = random.Random(7)
        plain = [rng.randint(0, 10**6) / 10 for _ in range(5000)] + [100.0, 7.0]
        plain_joined = await pool.fetchval("SELECT array_to_string($1::float8[], ',')", plain)
    finally:
        await pool.close()
    for millis in (False, True):
        want = json.dumps(dps(times, values, millis=millis, computed=computed), ensure_ascii=False)
        assert dps_from_texts(times, Texts(joined.split(","), joined=joined), millis=millis, computed=computed) == want
    # ordinary readings: no edge value, so picked ones take the one-format path
    assert "N" not in plain_joined and "e" not in plain_joined
    texts = Texts(plain_joined.split(","), joined=plain_joined)
    assert "-0" not in texts
    want = json.dumps(dps(times[:len(plain)], plain, millis=False, computed=computed), ensure_ascii=False)
    assert dps_from_texts(times[:len(plain)], texts, millis=False, computed=computed) == want


async def test_doubles_rounded_by_postgresql_give_the_computed_texts(pg_dsn: str) -> None:
    """ROUND15 (the packed minutes' mean15) is Python's float(f"{v:.15g}") wherever it rounds,
    its texts are what floattext.rounded_texts makes of the exact doubles' texts (how the minute
    rows around the packed hours are rounded), and dps_from_texts of them taken as they stand
    (Texts.rounded: no fix-up per value) equals json.dumps of dps() over the exact doubles, edge
    values, the top of the double range and subnormals included."""
    values = doubles(15)
    times = [1_793_145_600_000 + 60_000 * i for i in range(len(values))]
    rounding = ROUND15.format(v="v")
    pool = await create_pool(pg_dsn, schema="public", max_size=1)
    try:
        rounded = await pool.fetchval(f"SELECT array_agg({rounding} ORDER BY o) FROM unnest($1::float8[]) "
                                      "WITH ORDINALITY AS u(v, o)", values)
        joined = await pool.fetchval("SELECT array_to_string($1::float8[], ',')", rounded)
        exact = await pool.fetchval("SELECT array_to_string($1::float8[], ',')", values)
    finally:
        await pool.close()
    for value, got in zip(values, rounded, strict=True):
        if 1e-300 <= abs(value) <= 1e300:
            assert got == float(f"{value:.15g}"), value
        else:
            assert got == value or (math.isnan(got) and math.isnan(value)), value
    texts = Texts(joined.split(","), joined=joined, rounded=True)
    # the same texts, but from 1e15 (PostgreSQL writes an integral double there with every digit;
    # both read back as the same double, which dps_from_texts then writes: "e+" falls back)
    in_range = [i for i, v in enumerate(values) if 1e-300 <= abs(v) < 1e15]
    by_python = rounded_texts(exact.split(","))
    assert [by_python[i] for i in in_range] == [texts[i] for i in in_range]
    large = [i for i, v in enumerate(values) if 1e15 <= abs(v) <= 1e300]
    assert [float(by_python[i]) for i in large] == [float(texts[i]) for i in large]
    for millis in (False, True):
        want = json.dumps(dps(times, values, millis=millis, computed=True), ensure_ascii=False)
        assert dps_from_texts(times, texts, millis=millis, computed=True) == want
    ordinary = [i for i, v in enumerate(values) if 1e-4 < abs(v) < 1e14]  # no fall-back: the joins' path
    texts = Texts([texts[i] for i in ordinary], joined=",".join(texts[i] for i in ordinary), rounded=True)
    steady = times[:len(ordinary)]
    want = json.dumps(dps(steady, [values[i] for i in ordinary], millis=False, computed=True), ensure_ascii=False)
    assert dps_from_texts(steady, texts, millis=False, computed=True) == want
