"""The alarm rules' pure evaluation: table-driven, no clock (times are the samples')."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from twinbill_twin.domain.alarms import Rule, RuleInvalid, check_params, evaluate, offline_due
from twinbill_twin.domain.levels import notified

T0 = datetime(2026, 12, 1, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")


def run(kind: str, params: dict[str, Any], values: Sequence[tuple[float, str]], *,
        register_max: Decimal | None = None) -> list[int]:
    """Feed (hours after T0, value) samples; the indexes of the samples that raised an alarm."""
    rule = Rule(1, 1, kind, kind, 30, params)
    state: dict[str, Any] = {}
    raised = []
    for index, (hours, value) in enumerate(values):
        if evaluate(rule, state, T0 + timedelta(hours=hours), Decimal(value), zone=PARIS, register_max=register_max):
            raised.append(index)
    return raised


@pytest.mark.parametrize(("params", "values", "expected"), [
    ({"measurepoint": "m", "above": 10, "hysteresis": 2}, [(0, "9"), (1, "11"), (2, "9"), (3, "11"), (4, "7"),
                                                           (5, "11")], [1, 5]),
    ({"measurepoint": "m", "below": 0}, [(0, "1"), (1, "-1"), (2, "-2"), (3, "0"), (4, "-1")], [1, 4]),
    # (0, 5) is older than (1, 11): ignored, so 9 clears and 11 raises again
    ({"measurepoint": "m", "above": 10}, [(1, "11"), (0, "5"), (2, "9"), (3, "11")], [0, 3]),
])
def test_threshold(params: dict[str, Any], values: list[tuple[float, str]], expected: list[int]) -> None:
    """Raised on crossing, cleared only past the hysteresis band, older samples ignored."""
    assert run("threshold", params, values) == expected


def test_register_backwards_jump_and_rollover() -> None:
    """Backwards raises; a rise beyond max_per_hour raises; a wrap at register_max does not."""
    values = [(0, "100"), (1, "99"), (2, "200"), (3, "950"), (3.5, "2"), (4, "3")]
    assert run("register", {"measurepoint": "m", "max_per_hour": 500}, values, register_max=Decimal(1000)) == [1, 3]
    assert run("register", {"measurepoint": "m"}, [(0, "950"), (1, "2")]) == [1]  # no register_max: backwards


def test_leak_continuous_and_at_night() -> None:
    """Continuous: raised once when the flow has lasted `hours`; night: once per night, in the zone."""
    rising = [(h / 4, str(Decimal("0.1") * h)) for h in range(13)]  # 0.4/h for 3 h
    assert run("leak", {"measurepoint": "m", "flow_above": "0.2", "hours": 2}, rising) == [8]
    # T0 is 01:00 in Paris: 01:00-05:00 flows, 12:00 flows, next night 02:00 flows
    night = {"measurepoint": "m", "flow_above": 0, "night": {"start": "00:30", "end": "05:00"}}
    values = [(0, "1"), (1, "2"), (2, "3"), (11, "4"), (12, "5"), (25, "6")]
    assert run("leak", night, values) == [1, 5]


def test_parameters_are_checked() -> None:
    """Every bad parameter is named."""
    with pytest.raises(RuleInvalid) as bad:
        check_params("leak", {"measurepoint": "", "flow_above": "x", "night": {"start": "25:00", "end": "01:00"}})
    assert set(bad.value.fields) == {"measurepoint", "flow_above", "night"}
    with pytest.raises(RuleInvalid):
        check_params("offline", {"minutes": 0})
    assert check_params("offline", {"minutes": 15}) == {"minutes": 15}


def test_offline_and_notification_levels() -> None:
    """Silent for the minutes -> offline; WARNING and above without a subscription."""
    assert offline_due(T0, T0 + timedelta(minutes=15), minutes=15)
    assert not offline_due(T0, T0 + timedelta(minutes=14), minutes=15)
    assert notified(30, None) and not notified(20, None) and notified(20, 20) and not notified(10, 20)
