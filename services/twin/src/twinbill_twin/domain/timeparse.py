"""Seed 002's (OpenTSDB's) time formats: `<n><unit>-ago`, Unix seconds or milliseconds, and
`yyyy/MM/dd[-| ]HH:mm[:ss]` / `yyyy/MM/dd` read in a time zone. `now` is passed in."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from twinbill_twin.errors import BadParameter

# Fixed lengths of OpenTSDB's units (n = 30 days, y = 365 days): relative times and epoch buckets.
UNIT_MS: dict[str, int] = {
    "ms": 1,
    "s": 1_000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 7 * 86_400_000,
    "n": 30 * 86_400_000,
    "y": 365 * 86_400_000,
}

# At most 18 digits: more is no time a store holds, and int() of thousands of digits raises.
_RELATIVE = re.compile(r"^(\d{1,18})(ms|s|m|h|d|w|n|y)-ago$")
_NUMBER = re.compile(r"^\d+$")
_ABSOLUTE = re.compile(
    r"^(\d{4})/(\d{2})/(\d{2})(?:[- ](\d{2}):(\d{2})(?::(\d{2}))?)?$"
)
FORMATS = ("<n><unit>-ago (units ms s m h d w n y), Unix seconds or milliseconds, "
           "yyyy/MM/dd-HH:mm:ss, yyyy/MM/dd HH:mm:ss, yyyy/MM/dd-HH:mm, yyyy/MM/dd HH:mm, "
           "yyyy/MM/dd")


def shown(text: str, limit: int = 40) -> str:
    """A parameter as an error message quotes it: cut short, so a huge one stays readable."""
    return repr(text if len(text) <= limit else text[:limit - 3] + "...")


def parse_zone(name: str) -> ZoneInfo:
    """An IANA zone, or BadParameter naming `timezone`."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise BadParameter("timezone", f"unknown time zone {name!r} (use an IANA name such as "
                                       "Asia/Shanghai)") from err


def zone_free(text: str) -> bool:
    """Whether a time reads the same in every time zone (a relative time or a Unix time)."""
    value = text.strip()
    return bool(_RELATIVE.match(value) or _NUMBER.match(value))


def parse_time(text: str, *, now_ms: int, tz: ZoneInfo, parameter: str = "start") -> int:
    """Epoch milliseconds of a seed-002 time; 10 digits or fewer are seconds, more are ms."""
    value = text.strip()
    if not value:
        raise BadParameter(parameter, "is empty; expected " + FORMATS)
    if match := _RELATIVE.match(value):
        if parameter == "start" and int(match.group(1)) == 0:
            raise BadParameter(parameter, f"{shown(value)} is now: a zero-length range (use 1{match.group(2)}-ago "
                                          "or more)")
        # Nothing is stored before 1970, so a span reaching further back means "from 1970"
        # (and keeps the SQL bound inside a bigint however many digits the client sent).
        return max(0, now_ms - int(match.group(1)) * UNIT_MS[match.group(2)])
    if _NUMBER.match(value):
        if len(value) > 13:
            raise BadParameter(parameter, f"{shown(value)} is too large for a Unix time")
        number = int(value)
        return number * 1000 if len(value) <= 10 else number
    if match := _ABSOLUTE.match(value):
        year, month, day, hour, minute, second = (int(part) if part else 0 for part in match.groups())
        try:
            local = datetime(year, month, day, hour, minute, second, tzinfo=tz)
        except ValueError as err:
            raise BadParameter(parameter, f"{value!r} is not a valid date: {err}") from err
        return round(local.timestamp() * 1000)
    raise BadParameter(parameter, f"{shown(value)} is not a time; expected " + FORMATS)
