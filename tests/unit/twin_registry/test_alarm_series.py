"""The alarm rules' series loop (domain/alarm_series.py) raises what the one-sample reference
(`domain.alarms.evaluate`, fed as the first alarm consumer fed it) raises, in the same order, and
leaves the same state, over random series with repeats, out-of-order samples and states carried
between batches through JSON as PostgreSQL carries them."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from twinbill_twin.domain.alarm_series import evaluate_series, numeric_series, rule_ms
from twinbill_twin.domain.alarms import Alarm, Rule, evaluate

SHANGHAI = ZoneInfo("Asia/Shanghai")
START_MS = 1_764_518_400_000  # 2025-11-30T16:00Z
RULES: list[tuple[str, dict[str, Any], Decimal | None]] = [
    ("threshold", {"measurepoint": "m", "above": 50, "hysteresis": 5}, None),
    ("threshold", {"measurepoint": "m", "below": 10, "hysteresis": "2.5"}, None),
    ("threshold", {"measurepoint": "m", "above": 60, "below": 5}, None),
    ("leak", {"measurepoint": "m", "flow_above": "0.5", "hours": 2}, None),
    ("leak", {"measurepoint": "m", "flow_above": 40, "hours": "0.5", "source": "flow"}, None),
    ("leak", {"measurepoint": "m", "flow_above": "0.2", "night": {"start": "01:00", "end": "05:00"}}, None),
    ("leak", {"measurepoint": "m", "flow_above": "0.2", "night": {"start": "22:00", "end": "06:00"}}, None),
    ("register", {"measurepoint": "m", "max_per_hour": 30}, Decimal(1000)),
    ("register", {"measurepoint": "m"}, None),
]


def reference(rule: Rule, state: dict[str, Any], samples: list[tuple[int, dict[str, Any]]],
              register_max: Decimal | None) -> list[Alarm]:
    """What the first alarm consumer did with one device's samples in a batch."""
    alarms: list[Alarm] = []
    timed = [(datetime.fromtimestamp(published / 1000, UTC), values) for published, values in samples]
    for at, values in sorted(timed, key=lambda sample: sample[0]):
        raw = values.get("m")
        if isinstance(raw, bool) or not isinstance(raw, int | float | Decimal):
            continue
        value = raw if isinstance(raw, Decimal) else Decimal(str(raw))
        alarms.extend(evaluate(rule, state, at, value, zone=SHANGHAI, register_max=register_max))
    return alarms


def random_batches(seed: int) -> list[list[tuple[int, dict[str, Any]]]]:
    """Batches of samples: mostly rising times and values, with repeats, older samples, rollovers,
    drops, jumps, values on the rules' limits, values that are not numbers and times the datetime
    round trip shortens."""
    rng = random.Random(seed)
    published = START_MS + rng.randrange(0, 86_400_000) + rng.choice([0, 411, 472])
    value = Decimal(rng.randrange(0, 900))
    batches = []
    for _ in range(rng.randrange(1, 6)):
        batch: list[tuple[int, dict[str, Any]]] = []
        for _ in range(rng.randrange(0, 40)):
            step = rng.random()
            if step < 0.08 and batch:
                batch.append(rng.choice(batch))  # a repeat
                continue
            if step < 0.14:
                batch.append((published - rng.randrange(1, 3_600_000), {"m": value - 1}))  # older
                continue
            published += rng.choice([1, 999, 60_000, 900_000, 1_800_000, 3_600_000, 7_200_000])
            move = rng.random()
            if move < 0.05:
                value = Decimal(rng.randrange(0, 20))  # a drop, or a rollover from near 1000
            elif move < 0.1:
                value += Decimal(rng.randrange(20, 200))  # a jump
            elif move < 0.2:  # on a limit, or where a rollover starts or ends
                value = Decimal(rng.choice(["45", "50", "10", "12.5", "7.5", "60", "5", "900", "100", "40"]))
            else:
                value += Decimal(rng.randrange(0, 300)) / Decimal(100)
            if value > 990:
                value = Decimal(rng.randrange(0, 50))
            kind = rng.random()
            raw: Any = value
            if kind < 0.05:
                raw = True  # a bool is not a number to the rules
            elif kind < 0.1:
                raw = str(value)
            elif kind < 0.2:
                raw = float(value)
            elif kind < 0.25 and value == value.to_integral_value():
                raw = int(value)
            batch.append((published, {"m": raw} if rng.random() > 0.03 else {"other": 1}))
        batches.append(batch)
    return batches


@pytest.mark.parametrize("seed", range(60))
@pytest.mark.parametrize(("kind", "params", "register_max"), RULES,
                         ids=[f"{kind}-{n}" for n, (kind, _, _) in enumerate(RULES)])
def test_the_series_loop_raises_and_keeps_what_the_reference_does(
        kind: str, params: dict[str, Any], register_max: Decimal | None, seed: int) -> None:
    rule = Rule(7, 1, kind, kind, 30, params)
    expected_state: dict[str, Any] = {}
    state: dict[str, Any] = {}
    for batch in random_batches(seed):
        expected = reference(rule, expected_state, batch, register_max)
        got = evaluate_series(rule, state, numeric_series(batch, "m"), zone=SHANGHAI, register_max=register_max)
        assert got == expected
        assert state == expected_state
        expected_state, state = json.loads(json.dumps(expected_state)), json.loads(json.dumps(state))


def test_some_series_raise_alarms_of_every_kind() -> None:
    """The random series reach each rule's alarm, so the comparison above compares alarms too."""
    for kind, params, register_max in RULES:
        rule = Rule(7, 1, kind, kind, 30, params)
        total = 0
        for seed in range(60):
            state: dict[str, Any] = {}
            for batch in random_batches(seed):
                total += len(evaluate_series(rule, state, numeric_series(batch, "m"), zone=SHANGHAI,
                                             register_max=register_max))
        assert total > 0, (kind, params)


def test_rule_ms_is_the_datetime_round_trip() -> None:
    """The ms a state keeps is what `int(datetime.timestamp() * 1000)` gave, 1 ms less for some
    times (those below among them)."""
    times = [START_MS, START_MS + 1, 1_079_337_347_472, 2_183_226_373_411, 541_169_507_341,
             *random.Random(3).sample(range(0, 4_102_444_800_000), 20_000)]
    shortened = 0
    for published in times:
        assert rule_ms(published) == int(datetime.fromtimestamp(published / 1000, UTC).timestamp() * 1000)
        shortened += rule_ms(published) != published
    assert shortened >= 3
