"""What domain.floattext and api.dps.dps_from_texts rely on, held against PostgreSQL: its float
text (extra_float_digits 1, as create_pool sets it) turned into repr's text, and its `%.15g`
(extra_float_digits 0), give the very texts the answers wrote from Python doubles before."""

from __future__ import annotations

import json
import math
import random
import struct

import pytest

from twinbill_common.postgres import create_pool
from twinbill_twin.api.dps import dps, dps_from_texts
from twinbill_twin.bemserver.aggregates import json_number
from twinbill_twin.domain.floattext import repr_texts, split_values
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
async def test_shortest_texts_become_repr(pg_dsn: str, write: object) -> None:
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
    assert repr_texts(parts, joined=joined, write=write) == [write(v) for v in values]  # type: ignore[operator]  # a writer


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


@pytest.mark.parametrize(("digits", "computed"), [(15, True), (17, False), (17, True)])
async def test_dps_from_texts_equals_dps(pg_dsn: str, digits: int, computed: bool) -> None:
    """Seed 002's dps written from PostgreSQL's texts (`%.15g` for computed values, shortest for
    picked ones, and shortest where computed values were asked, which reads them back) is
    byte-identical to json.dumps of dps() over the doubles, edge values included."""
    values = doubles(2) + EDGES
    times = [1_793_145_600_000 + 1000 * i for i in range(len(values))]
    pool = await create_pool(pg_dsn, schema="public", max_size=1)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(f"SET LOCAL extra_float_digits = {1 if digits == 17 else 0}")
            joined = await conn.fetchval("SELECT array_to_string($1::float8[], ',')", values)
    finally:
        await pool.close()
    texts = Texts(joined.split(","), digits=digits, joined=joined)
    for millis in (False, True):
        want = json.dumps(dps(times, values, millis=millis, computed=computed), ensure_ascii=False)
        assert dps_from_texts(times, texts, millis=millis, computed=computed) == want


async def test_dps_from_texts_fast_path(pg_dsn: str) -> None:
    """Ordinary readings (no edge value) go through the one-format path and still equal dps()."""
    rng = random.Random(7)
    values = [rng.randint(0, 10**6) / 10 for _ in range(5000)] + [100.0, 7.0]
    times = [1_793_145_600_000 + 10_000 * i for i in range(len(values))]
    pool = await create_pool(pg_dsn, schema="public", max_size=1)
    try:
        for digits, computed in ((15, True), (17, False)):
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(f"SET LOCAL extra_float_digits = {1 if digits == 17 else 0}")
                joined = await conn.fetchval("SELECT array_to_string($1::float8[], ',')", values)
            texts = Texts(joined.split(","), digits=digits, joined=joined)
            assert "N" not in joined and "e" not in joined and "-0" not in texts  # the fast path's condition
            want = json.dumps(dps(times, values, millis=False, computed=computed), ensure_ascii=False)
            assert dps_from_texts(times, texts, millis=False, computed=computed) == want
    finally:
        await pool.close()
