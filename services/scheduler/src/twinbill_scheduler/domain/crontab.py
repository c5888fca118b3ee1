"""Seed 000's crontab ({month, day, hour, minute}, all strings) evaluated with cronsim.

Each field is `*`, a number, a range `a-b`, a step (`*/n`, `a/n`, `a-b/n`) or a comma list of
those; `day` also takes `L` (the last day of the month). Day of week is always `*` (the seed has
no such field). Evaluation happens in an IANA zone: a local time that does not exist on a
spring-forward day fires at the next valid instant, a repeated one on a fall-back day fires once
(cronsim's behaviour, checked by the unit tests).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

FIELDS = ("month", "day", "hour", "minute")
_BOUNDS = {"minute": (0, 59), "hour": (0, 23), "day": (1, 31), "month": (1, 12)}
_NUMBER = r"\d{1,2}"
_ELEMENT = rf"(?:\*|{_NUMBER}(?:-{_NUMBER})?)(?:/{_NUMBER})?"
_FIELD = re.compile(rf"^{_ELEMENT}(?:,{_ELEMENT})*$")
_DAY = re.compile(rf"^(?:L|{_ELEMENT})(?:,(?:L|{_ELEMENT}))*$")
# cronsim names the field it refuses; map its wording back to the seed's field names.
_CRONSIM_FIELD = {"minute": "minute", "hour": "hour", "day-of-month": "day", "month": "month"}


class CrontabInvalid(ValueError):
    """A crontab the scheduler refuses; `fields` names each bad field and why."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"crontab.{k}: {', '.join(v)}" for k, v in fields.items()))
        self.fields = fields


@dataclass(frozen=True)
class Crontab:
    """A validated seed-000 crontab."""

    month: str
    day: str
    hour: str
    minute: str

    @property
    def expression(self) -> str:
        """The five-field cron expression (day of week always `*`)."""
        return f"{self.minute} {self.hour} {self.day} {self.month} *"

    def as_dict(self) -> dict[str, str]:
        """The seed's JSON shape, field order as the seed writes it."""
        return {"month": self.month, "day": self.day, "hour": self.hour, "minute": self.minute}


def _check_field(name: str, value: str) -> list[str]:
    pattern = _DAY if name == "day" else _FIELD
    if not pattern.match(value):
        allowed = "*, a number, a range a-b, a step */n or a-b/n, or a comma list"
        return [f"{value!r} is not {allowed}" + (" (or L)" if name == "day" else "")]
    low, high = _BOUNDS[name]
    problems = []
    for element in value.split(","):
        base, _, step = element.partition("/")
        if step and int(step) == 0:
            problems.append(f"step 0 in {element!r}")
        if base in ("*", "L"):
            continue
        first, _, last = base.partition("-")
        for number in (first, last) if last else (first,):
            if not low <= int(number) <= high:
                problems.append(f"{number} is outside {low}-{high}")
        if last and int(first) > int(last):
            problems.append(f"range {base!r} runs backwards")
    return problems


def parse_crontab(raw: Any) -> Crontab:
    """Validate the seed's crontab object; raise CrontabInvalid naming every bad field.

    Numbers are accepted as well as strings ("day": 1 means "1"). A day no month in the
    schedule has (31 in month 2 alone, 30 in February) is refused.
    """
    if not isinstance(raw, dict):
        raise CrontabInvalid({"crontab": ["must be an object with month, day, hour, minute"]})
    problems: dict[str, list[str]] = {}
    values: dict[str, str] = {}
    for name in FIELDS:
        value = raw.get(name)
        if value is None:
            problems[name] = ["Missing data for required field."]
        elif isinstance(value, bool) or not isinstance(value, (str, int)):
            problems[name] = ["must be a string"]
        else:
            text = str(value).strip()
            values[name] = text
            if found := _check_field(name, text):
                problems[name] = found
    for name in sorted(set(raw) - set(FIELDS)):
        problems[name] = ["unknown crontab field (use month, day, hour, minute)"]
    # cronsim judges the fields together (31 in month 2 alone): fields already refused are
    # replaced by `*` so that every remaining problem is named in the same answer.
    probe = Crontab(**{name: "*" if name in problems else values.get(name, "*")
                       for name in FIELDS})
    try:
        CronSim(probe.expression, datetime(2000, 1, 1))  # noqa: DTZ001  # syntax check only
    except CronSimError as err:
        text = str(err)
        field = next((f for k, f in _CRONSIM_FIELD.items() if k in text), "day")
        reason = "no month in the schedule has this day" if field == "day" else text
        problems.setdefault(field, []).append(reason)
    if problems:
        raise CrontabInvalid(problems)
    return Crontab(**values)


def next_fire(after: datetime, *, crontab: Crontab, tz: ZoneInfo) -> datetime:
    """The first fire time strictly after `after` (aware), evaluated in `tz`, returned in UTC.

    UTC because Python compares two datetimes of the same zone by wall time, ignoring `fold`:
    the two 01:00s of a fall-back night would compare equal.
    """
    return next(CronSim(crontab.expression, after.astimezone(tz))).astimezone(UTC)


def previous_fire(before: datetime, *, crontab: Crontab, tz: ZoneInfo) -> datetime:
    """The last fire time strictly before `before` (the start of the period ending there), UTC."""
    return next(CronSim(crontab.expression, before.astimezone(tz), reverse=True)).astimezone(UTC)
