"""Alarm rules, evaluated one sample at a time against a rule's state for one device (pure: time
is the sample's, the state a JSON-able dict the caller keeps in PostgreSQL).

- offline: no data for `minutes` (the sweeper decides it: `offline_due`);
- leak: flow above `flow_above` (units per hour, from a cumulative register, or a flow
  measurepoint with `source: "flow"`) continuously for `hours`, or, with a `night` window
  ("01:00"-"05:00" in the project's zone), any such flow at night (once per night);
- threshold: `above` and/or `below` with `hysteresis`: raised on crossing, cleared only once the
  value is back past the limit by the hysteresis, so a value hovering at the limit raises once;
- register: a cumulative register going backwards (a rollover at `register_max` is not), or
  rising faster than `max_per_hour`.
A sample older than the last one the rule saw is ignored (out-of-order delivery): those rules
compare neighbours in device time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

KINDS = ("offline", "leak", "threshold", "register")
ZERO = Decimal(0)
CATEGORIES = {"offline": "Device offline", "leak": "Leak", "threshold": "Threshold crossed",
              "register": "Register implausible"}


class RuleInvalid(ValueError):
    """A rule's parameters are wrong; `fields` names each and why."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in fields.items()))
        self.fields = fields


@dataclass(frozen=True)
class Rule:
    """One configured rule."""

    id: int
    project_id: int
    kind: str
    name: str
    level: int
    params: dict[str, Any]
    device_type: int | None = None

    @cached_property
    def limits(self) -> dict[str, Decimal]:
        """The rule's numeric parameters as Decimals, parsed once (evaluation runs per point)."""
        return {name: Decimal(str(value)) for name, value in self.params.items()
                if name in ("above", "below", "hysteresis", "flow_above", "hours", "max_per_hour")
                and value is not None}

    @property
    def measurepoint(self) -> str | None:
        """The measurepoint the rule reads (offline reads none)."""
        value = self.params.get("measurepoint")
        return str(value) if value is not None else None


@dataclass(frozen=True)
class Alarm:
    """A rule fired: `episode` (epoch ms) tells this occurrence from the next one."""

    rule: Rule
    at: datetime
    episode: int
    description: str
    level: int | None = None  # None: the rule's own

    def key(self, device_id: int) -> str:
        """The event's dedup key: the same alarm recorded twice is one event."""
        return f"alarm:{self.rule.id}:{device_id}:{self.episode}"


def _number(params: dict[str, Any], name: str, errors: dict[str, list[str]], *, required: bool,
            positive: bool = False) -> None:
    if name not in params or params[name] is None:
        if required:
            errors[name] = ["Missing data for required field."]
        return
    value = params[name]
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        errors[name] = ["Not a valid number."]
        return
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        errors[name] = ["Not a valid number."]
        return
    if not number.is_finite() or (positive and number <= 0) or number < 0:
        errors[name] = ["Must be greater than 0." if positive else "Must be at least 0."]


def _clock(text: Any) -> time | None:
    try:
        return time.fromisoformat(str(text))
    except ValueError:
        return None


def check_params(kind: str, params: Any) -> dict[str, Any]:
    """The parameters of a rule of `kind`, or RuleInvalid naming every bad one."""
    if kind not in KINDS:
        raise RuleInvalid({"kind": [f"Must be one of: {', '.join(KINDS)}."]})
    if not isinstance(params, dict):
        raise RuleInvalid({"params": ["Not a valid object."]})
    errors: dict[str, list[str]] = {}
    known = {"offline": {"minutes"}, "leak": {"measurepoint", "flow_above", "hours", "night", "source"},
             "threshold": {"measurepoint", "above", "below", "hysteresis"},
             "register": {"measurepoint", "max_per_hour"}}[kind]
    for name in params:
        if name not in known:
            errors[name] = ["Unknown field."]
    if kind != "offline" and not (isinstance(params.get("measurepoint"), str) and params["measurepoint"]):
        errors["measurepoint"] = ["Missing data for required field."]
    match kind:
        case "offline":
            _number(params, "minutes", errors, required=True, positive=True)
        case "leak":
            _number(params, "flow_above", errors, required=True)
            night = params.get("night")
            if night is None:
                _number(params, "hours", errors, required=True, positive=True)
            elif not (isinstance(night, dict) and set(night) == {"start", "end"}
                      and _clock(night["start"]) and _clock(night["end"])):
                errors["night"] = ['Must be {"start": "HH:MM", "end": "HH:MM"}.']
            if params.get("source", "register") not in ("register", "flow"):
                errors["source"] = ["Must be one of: register, flow."]
        case "threshold":
            _number(params, "above", errors, required=False)
            _number(params, "below", errors, required=False)
            _number(params, "hysteresis", errors, required=False)
            if params.get("above") is None and params.get("below") is None:
                errors["above"] = ["Give above, below or both."]
        case "register":
            _number(params, "max_per_hour", errors, required=False, positive=True)
    if errors:
        raise RuleInvalid(errors)
    return params


def offline_due(last_seen: datetime, now: datetime, *, minutes: float) -> bool:
    """Whether a device last seen at `last_seen` has been silent for `minutes` at `now`."""
    return now - last_seen >= timedelta(minutes=minutes)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _in_window(local: time, start: time, end: time) -> bool:
    return start <= local < end if start <= end else (local >= start or local < end)


def evaluate(rule: Rule, state: dict[str, Any], at: datetime, value: Decimal, *, zone: ZoneInfo,
             register_max: Decimal | None = None) -> list[Alarm]:
    """Alarms raised by one sample of the rule's measurepoint; updates `state` in place."""
    ms = _ms(at)
    last_ms = state.get("t")
    if last_ms is not None and ms <= last_ms:
        return []  # out of order or repeated
    last_value = Decimal(state["v"]) if "v" in state else None
    state["t"], state["v"] = ms, str(value)
    match rule.kind:
        case "threshold":
            return _threshold(rule, state, at, value)
        case "leak":
            return _leak(rule, state, at, value, last_ms, last_value, zone)
        case "register":
            return _register(rule, at, value, last_ms, last_value, register_max)
    return []


def _threshold(rule: Rule, state: dict[str, Any], at: datetime, value: Decimal) -> list[Alarm]:
    limits = rule.limits
    above, below = limits.get("above"), limits.get("below")
    band = limits.get("hysteresis", ZERO)
    active = state.get("active")
    if active == "above" and above is not None and value <= above - band:
        state["active"] = active = None
    if active == "below" and below is not None and value >= below + band:
        state["active"] = active = None
    if active is None:
        if above is not None and value > above:
            state["active"] = "above"
            return [Alarm(rule, at, _ms(at), f"{rule.measurepoint} = {value}, above {above}")]
        if below is not None and value < below:
            state["active"] = "below"
            return [Alarm(rule, at, _ms(at), f"{rule.measurepoint} = {value}, below {below}")]
    return []


def _leak(rule: Rule, state: dict[str, Any], at: datetime, value: Decimal, last_ms: int | None,
          last_value: Decimal | None, zone: ZoneInfo) -> list[Alarm]:
    limit = rule.limits["flow_above"]
    if rule.params.get("source", "register") == "flow":
        flow, since = value, _ms(at)
    else:
        if last_ms is None or last_value is None:
            return []
        hours = Decimal(_ms(at) - last_ms) / Decimal(3_600_000)
        flow, since = (value - last_value) / hours, last_ms
    if flow <= limit:
        state.pop("since", None)
        state.pop("raised", None)
        return []
    night = rule.params.get("night")
    if night is not None:
        local = at.astimezone(zone)
        start, end = time.fromisoformat(night["start"]), time.fromisoformat(night["end"])
        if not _in_window(local.time().replace(tzinfo=None), start, end):
            return []
        wrapped = start > end and local.time() < end  # after midnight: the night began the day before
        night_of = (local.date() - timedelta(days=1) if wrapped else local.date()).isoformat()
        if state.get("night") == night_of:
            return []
        state["night"] = night_of
        return [Alarm(rule, at, _ms(at), f"{rule.measurepoint}: flow {flow:.3f}/h at night ({night_of}), "
                                         f"above {limit}/h")]
    state.setdefault("since", since)
    if state.get("raised"):
        return []
    lasted = Decimal(_ms(at) - state["since"]) / Decimal(3_600_000)
    if lasted >= rule.limits["hours"]:
        state["raised"] = True
        return [Alarm(rule, at, state["since"], f"{rule.measurepoint}: flow above {limit}/h for {lasted:.2f} h "
                                                f"since {_at(state['since']).isoformat()}")]
    return []


def _register(rule: Rule, at: datetime, value: Decimal, last_ms: int | None, last_value: Decimal | None,
              register_max: Decimal | None) -> list[Alarm]:
    if last_ms is None or last_value is None:
        return []
    if value < last_value:
        if register_max is not None and last_value >= register_max * Decimal("0.9") \
                and value <= register_max * Decimal("0.1"):
            return []  # rolled over
        return [Alarm(rule, at, _ms(at), f"{rule.measurepoint} went backwards: {last_value} -> {value}")]
    limit = rule.limits.get("max_per_hour")
    if limit is not None:
        hours = Decimal(_ms(at) - last_ms) / Decimal(3_600_000)
        rate = (value - last_value) / hours
        if rate > limit:
            return [Alarm(rule, at, _ms(at), f"{rule.measurepoint} jumped {value - last_value} in "
                                             f"{hours:.3f} h ({rate:.3f}/h, plausible at most {limit}/h)")]
    return []
