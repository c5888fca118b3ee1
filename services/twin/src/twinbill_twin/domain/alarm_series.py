"""The alarm rules over one device's series of samples in one loop: the same alarms, in the same
order, and the same final state as `twinbill_twin.domain.alarms.evaluate` called sample after
sample (tests/unit/twin_registry/test_alarm_series.py checks it against that reference).

What the loop saves per point and rule (docs/architecture.md, "Alarm rules: speed"): a datetime
(made only for an alarm or a night window), the state's last value parsed from text and written
back as text (kept as a Decimal between samples, written once per series), and a call.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from operator import itemgetter
from typing import Any
from zoneinfo import ZoneInfo

from twinbill_twin.domain.alarms import ZERO, Alarm, Rule, evaluate

Sample = tuple[int, Decimal]  # (time as published, epoch ms; value)
HOUR_MS = Decimal(3_600_000)
_BY_TIME = itemgetter(0)


def rule_ms(published: int) -> int:
    """The epoch ms a rule keeps for a sample published at `published` ms: what the round trip
    through a datetime gives (`datetime.fromtimestamp(ms / 1000).timestamp() * 1000`, truncated),
    which is 1 ms less for some times. States in PostgreSQL and events' episodes hold it."""
    return int(published / 1000 * 1000)


def sample_at(published: int) -> datetime:
    """A sample's time as a datetime (UTC)."""
    return datetime.fromtimestamp(published / 1000, UTC)


def numeric_series(samples: Iterable[tuple[int, dict[str, Any]]], measurepoint: str) -> list[Sample]:
    """The numeric values of one measurepoint among a device's samples, as Decimals, in time
    order (stable: samples of the same time keep their order); bools and other types are not
    numbers to the rules."""
    series: list[Sample] = []
    for published, values in samples:
        raw = values.get(measurepoint)
        if type(raw) is Decimal:  # a JSON number with a fraction: the common case first
            series.append((published, raw))
        elif raw is None or isinstance(raw, bool) or not isinstance(raw, int | float | Decimal):
            continue
        else:
            series.append((published, raw if isinstance(raw, Decimal) else Decimal(str(raw))))
    series.sort(key=_BY_TIME)
    return series


def evaluate_series(rule: Rule, state: dict[str, Any], series: Sequence[Sample], *, zone: ZoneInfo,
                    register_max: Decimal | None = None) -> list[Alarm]:
    """Alarms raised by a device's samples of the rule's measurepoint, in time order; updates
    `state` in place."""
    match rule.kind:
        case "threshold":
            return _threshold(rule, state, series)
        case "leak":
            return _leak(rule, state, series, zone)
        case "register":
            return _register(rule, state, series, register_max)
    return [alarm for published, value in series
            for alarm in evaluate(rule, state, sample_at(published), value, zone=zone, register_max=register_max)]


def _threshold(rule: Rule, state: dict[str, Any], series: Sequence[Sample]) -> list[Alarm]:
    limits = rule.limits
    above, below = limits.get("above"), limits.get("below")
    band = limits.get("hysteresis", ZERO)
    back_under = above - band if above is not None else None
    back_over = below + band if below is not None else None
    last_ms: int | None = state.get("t")
    newest: Decimal | None = None
    active = state.get("active")
    moved = False
    alarms: list[Alarm] = []
    for published, value in series:
        ms = int(published / 1000 * 1000)  # rule_ms, inlined
        if last_ms is not None and ms <= last_ms:
            continue  # out of order or repeated
        last_ms, newest = ms, value
        if active == "above" and back_under is not None and value <= back_under:
            active, moved = None, True
        if active == "below" and back_over is not None and value >= back_over:
            active, moved = None, True
        if active is None:
            if above is not None and value > above:
                active, moved = "above", True
                alarms.append(Alarm(rule, sample_at(published), ms, f"{rule.measurepoint} = {value}, above {above}"))
            elif below is not None and value < below:
                active, moved = "below", True
                alarms.append(Alarm(rule, sample_at(published), ms, f"{rule.measurepoint} = {value}, below {below}"))
    if newest is not None:
        state["t"], state["v"] = last_ms, str(newest)
    if moved:
        state["active"] = active
    return alarms


def _leak(rule: Rule, state: dict[str, Any], series: Sequence[Sample], zone: ZoneInfo) -> list[Alarm]:
    limit = rule.limits["flow_above"]
    from_flow = rule.params.get("source", "register") == "flow"
    night = rule.params.get("night")
    start = end = None
    if night is not None:
        start, end = time.fromisoformat(night["start"]), time.fromisoformat(night["end"])
    last_ms: int | None = state.get("t")
    last_value = Decimal(state["v"]) if "v" in state else None
    newest: Decimal | None = None
    alarms: list[Alarm] = []
    for published, value in series:
        ms = int(published / 1000 * 1000)  # rule_ms, inlined
        if last_ms is not None and ms <= last_ms:
            continue  # out of order or repeated
        previous_ms, previous = last_ms, last_value
        last_ms, last_value, newest = ms, value, value
        if from_flow:
            flow, since = value, ms
        else:
            if previous_ms is None or previous is None:
                continue
            flow, since = (value - previous) / (Decimal(ms - previous_ms) / HOUR_MS), previous_ms
        if flow <= limit:
            state.pop("since", None)
            state.pop("raised", None)
            continue
        at = sample_at(published)
        if start is not None and end is not None:
            local = at.astimezone(zone)
            clock = local.time().replace(tzinfo=None)
            if not (start <= clock < end if start <= end else (clock >= start or clock < end)):
                continue
            wrapped = start > end and local.time() < end  # after midnight: the night began the day before
            night_of = (local.date() - timedelta(days=1) if wrapped else local.date()).isoformat()
            if state.get("night") == night_of:
                continue
            state["night"] = night_of
            alarms.append(Alarm(rule, at, ms, f"{rule.measurepoint}: flow {flow:.3f}/h at night ({night_of}), "
                                              f"above {limit}/h"))
            continue
        began = state.setdefault("since", since)
        if state.get("raised"):
            continue
        lasted = Decimal(ms - began) / HOUR_MS
        if lasted >= rule.limits["hours"]:
            state["raised"] = True
            alarms.append(Alarm(rule, at, began, f"{rule.measurepoint}: flow above {limit}/h for {lasted:.2f} h "
                                                 f"since {sample_at(began).isoformat()}"))
    if newest is not None:
        state["t"], state["v"] = last_ms, str(newest)
    return alarms


def _register(rule: Rule, state: dict[str, Any], series: Sequence[Sample],
              register_max: Decimal | None) -> list[Alarm]:
    limit = rule.limits.get("max_per_hour")
    high = register_max * Decimal("0.9") if register_max is not None else None
    low = register_max * Decimal("0.1") if register_max is not None else None
    last_ms: int | None = state.get("t")
    last_value = Decimal(state["v"]) if "v" in state else None
    newest: Decimal | None = None
    alarms: list[Alarm] = []
    for published, value in series:
        ms = int(published / 1000 * 1000)  # rule_ms, inlined
        if last_ms is not None and ms <= last_ms:
            continue  # out of order or repeated
        previous_ms, previous = last_ms, last_value
        last_ms, last_value, newest = ms, value, value
        if previous_ms is None or previous is None:
            continue
        if value < previous:
            if high is not None and low is not None and previous >= high and value <= low:
                continue  # rolled over
            alarms.append(Alarm(rule, sample_at(published), ms,
                                f"{rule.measurepoint} went backwards: {previous} -> {value}"))
            continue
        if limit is not None:
            hours = Decimal(ms - previous_ms) / HOUR_MS
            rate = (value - previous) / hours
            if rate > limit:
                alarms.append(Alarm(rule, sample_at(published), ms,
                                    f"{rule.measurepoint} jumped {value - previous} in "
                                    f"{hours:.3f} h ({rate:.3f}/h, plausible at most {limit}/h)"))
    if newest is not None:
        state["t"], state["v"] = last_ms, str(newest)
    return alarms
