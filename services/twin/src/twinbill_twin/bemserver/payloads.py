"""BEMServer's time-series data formats, pure (no I/O): reading JSON and CSV uploads into points,
bucket boundaries for download_aggregate, and how timestamps and values are written out.

JSON: `{"<series id or name>": {"<aware ISO timestamp>": number, ...}, ...}`.
CSV: a `Datetime,<series>,...` header, then one line per timestamp, an empty cell for no value.
An upload is read whole before anything is stored: one bad line refuses all of it.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

PERIODS = ("second", "minute", "hour", "day", "week", "month", "year")
FIXED_PERIODS = {"second": 1, "minute": 60, "hour": 3600}
AGGREGATIONS = ("avg", "sum", "min", "max", "count")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class PayloadError(ValueError):
    """An upload that cannot be stored; the message says where (line, series, timestamp)."""

    def __init__(self, message: str, *, where: tuple[str, str] | None = None) -> None:
        super().__init__(message)
        self.where = where


Points = dict[str, dict[int, Decimal]]  # series label -> {epoch ms: value}


def parse_time(text: str) -> int:
    """An ISO timestamp as epoch milliseconds; naive means UTC (as BEMServer's reader does)."""
    when = datetime.fromisoformat(text.strip())
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - EPOCH) // timedelta(milliseconds=1)


def parse_value(raw: Any) -> Decimal:
    """A storable number: finite, within PostgreSQL numeric's and a double's range."""
    if isinstance(raw, bool):
        raise ValueError("not a number")
    try:
        value = Decimal(raw) if isinstance(raw, str | int | Decimal) else Decimal(repr(float(raw)))
    except (InvalidOperation, TypeError, ValueError) as err:
        raise ValueError("not a number") from err
    if not value.is_finite() or (value and not -300 < value.adjusted() < 300):
        raise ValueError("not a storable number")
    return value


def read_json_points(document: Any) -> Points:
    """A parsed JSON upload as points; PayloadError names the series and timestamp at fault."""
    if not isinstance(document, dict):
        raise PayloadError("Wrong JSON file: expected an object of series")
    points: Points = {}
    for label, values in document.items():
        if not isinstance(values, dict):
            raise PayloadError(f"Wrong JSON file: series {label!r} is not an object of timestamps",
                               where=(str(label), "_series"))
        series = points.setdefault(str(label), {})
        for stamp, raw in values.items():
            if raw is None:
                continue
            try:
                ts = parse_time(stamp)
            except ValueError:
                raise PayloadError(f"Invalid timestamp {stamp!r} in series {label!r}",
                                   where=(str(label), stamp)) from None
            try:
                series[ts] = parse_value(raw)
            except ValueError as err:
                raise PayloadError(f"Invalid value {raw!r} at {stamp} in series {label!r}: {err}",
                                   where=(str(label), stamp)) from None
    return points


def read_csv_points(text: str) -> Points:
    """A CSV upload as points; PayloadError names the line (1 is the header) and column."""
    rows = csv.reader(io.StringIO(text))
    try:
        header = next(rows)
    except StopIteration:
        raise PayloadError("Missing headers") from None
    if not header:
        raise PayloadError("Missing headers")
    if "" in header:
        raise PayloadError("Empty timeseries name or trailing comma")
    if header[0] != "Datetime":
        raise PayloadError("Invalid file: the first column must be Datetime")
    labels = header[1:]
    if len(set(labels)) != len(labels):
        raise PayloadError("Invalid file: a series appears twice in the header")
    points: Points = {label: {} for label in labels}
    for number, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise PayloadError(f"Bad CSV file: line {number} has {len(row)} fields, the header {len(header)}")
        try:
            ts = parse_time(row[0])
        except ValueError:
            raise PayloadError(f"Invalid timestamp {row[0]!r} on line {number}") from None
        for label, cell in zip(labels, row[1:], strict=True):
            if cell.strip() == "":
                continue
            try:
                points[label][ts] = parse_value(cell.strip())
            except ValueError as err:
                raise PayloadError(f"Invalid value {cell!r} on line {number}, column {label!r}: {err}") from None
    return points


def json_time(ts: int, zone: ZoneInfo) -> str:
    """A timestamp as BEMServer's JSON writes it (isoformat in the asked zone)."""
    return datetime.fromtimestamp(ts / 1000, zone).isoformat()


def csv_time(ts: int, zone: ZoneInfo) -> str:
    """A timestamp as BEMServer's CSV writes it (`%Y-%m-%dT%H:%M:%S%z`)."""
    return datetime.fromtimestamp(ts / 1000, zone).strftime("%Y-%m-%dT%H:%M:%S%z")


def number_text(value: float | int | None) -> str:
    """A value as pandas writes it in CSV: repr of the float, an empty cell for none."""
    return "" if value is None else repr(value)


@dataclass(frozen=True)
class Buckets:
    """download_aggregate's buckets: starts (epoch ms) from floor(start) to ceil(end), aligned in
    the zone (week buckets start on Monday; multiples only for second, minute and hour).
    `width` is the fixed width in ms (second, minute, hour), None for calendar units."""

    starts: list[int]
    end: int
    width: int | None = None


def _floor(moment: datetime, unit: str, width: int) -> datetime:
    if unit in FIXED_PERIODS:
        # pandas floors aware timestamps on the local wall clock, multiples counted from 1970
        seconds = FIXED_PERIODS[unit] * width
        local = moment.replace(tzinfo=None)
        epoch = datetime(1970, 1, 1)  # noqa: DTZ001 -- wall-clock arithmetic, zone reattached below
        floored = epoch + timedelta(seconds=(local - epoch) // timedelta(seconds=seconds) * seconds)
        return floored.replace(tzinfo=moment.tzinfo, fold=moment.fold)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    match unit:
        case "year":
            return day.replace(month=1, day=1)
        case "month":
            return day.replace(day=1)
        case "week":
            return day - timedelta(days=moment.weekday())
    return day


def _step(moment: datetime, unit: str, width: int) -> datetime:
    if unit in FIXED_PERIODS:
        # fixed widths step in absolute time
        return (moment.astimezone(UTC) + timedelta(seconds=FIXED_PERIODS[unit] * width)).astimezone(moment.tzinfo)
    if unit == "year":
        return moment.replace(year=moment.year + 1)
    if unit == "month":
        return moment.replace(year=moment.year + moment.month // 12, month=moment.month % 12 + 1)
    # day and week keep the wall clock across DST (midnight to midnight)
    return moment + timedelta(days=7 if unit == "week" else 1)


def buckets(start: datetime, end: datetime, *, unit: str, width: int, zone: ZoneInfo,
            limit: int = 1_000_000) -> Buckets:
    """Every bucket start between floor(start) and ceil(end) in the zone; ValueError past `limit`."""
    first = _floor(start.astimezone(zone), unit, width)
    stop = end.astimezone(zone)
    if unit in FIXED_PERIODS:
        # fixed widths step in absolute time: the starts are arithmetic
        step = FIXED_PERIODS[unit] * width * 1000
        low, high = int(first.timestamp() * 1000), int(stop.timestamp() * 1000)
        count = max(0, -(-(high - low) // step))
        if count > limit:
            raise ValueError(f"more than {limit} buckets")
        return Buckets(list(range(low, low + count * step, step)), low + count * step, step)
    starts: list[int] = []
    moment = first
    while moment < stop:
        starts.append(int(moment.timestamp() * 1000))
        if len(starts) > limit:
            raise ValueError(f"more than {limit} buckets")
        moment = _step(moment, unit, width)
    return Buckets(starts, int(moment.timestamp() * 1000))


@functools.lru_cache(maxsize=1 << 16)
def _hour_offset(zone: ZoneInfo, hour: int, csv: bool) -> tuple[int, str] | None:
    """(offset ms, suffix) of a zone through one UTC hour, or None where it changes inside the
    hour or has seconds; kept across requests (a week of buckets looks up 168 hours)."""
    first = datetime.fromtimestamp(hour * 3600, zone).utcoffset()
    last = datetime.fromtimestamp(hour * 3600 + 3599, zone).utcoffset()
    if first is None or first != last or first.seconds % 60 or first.microseconds:
        return None
    minutes = int(first.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hh, mm = divmod(abs(minutes), 60)
    suffix = f"{sign}{hh:02d}{mm:02d}" if csv else f"{sign}{hh:02d}:{mm:02d}"
    return minutes * 60_000, suffix


class TimeFormatter:
    """json_time / csv_time for many timestamps, by integer arithmetic: each UTC hour's offset is
    looked up once (and checked to hold through the hour), each local day's date text once.
    Where an offset changes inside an hour or has seconds (a few zones before 1972), each point
    is formatted by datetime instead."""

    def __init__(self, zone: ZoneInfo, *, csv: bool) -> None:
        self._zone = zone
        self._csv = csv
        self._hours: dict[int, tuple[int, str] | None] = {}
        self._days: dict[int, str] = {}

    def _offset(self, hour: int) -> tuple[int, str] | None:
        return _hour_offset(self._zone, hour, self._csv)

    def _day(self, day: int) -> str:
        text = self._days.get(day)
        if text is None:
            text = self._days[day] = (EPOCH + timedelta(days=day)).strftime("%Y-%m-%d")
        return text

    def hour_offset(self, hour: int) -> tuple[int, str] | None:
        """(offset ms, zone suffix) through a UTC hour (hours since the epoch); None where the
        offset changes inside it or has seconds."""
        if hour in self._hours:
            return self._hours[hour]
        found = self._hours[hour] = self._offset(hour)
        return found

    def day_text(self, day: int) -> str:
        """The `%Y-%m-%d` of a day number since the epoch."""
        return self._day(day)

    def parts(self, minute: int) -> tuple[str, str] | None:
        """(text up to the seconds, zone suffix) of a UTC minute; None where arithmetic won't do."""
        hour = minute // 60
        if hour in self._hours:
            found = self._hours[hour]
        else:
            found = self._hours[hour] = self._offset(hour)
        if found is None:
            return None
        offset, suffix = found
        day, rest = divmod(minute * 60_000 + offset, 86_400_000)
        hh, rest = divmod(rest, 3_600_000)
        return f"{self._day(day)}T{hh:02d}:{rest // 60_000:02d}:", suffix

    def __call__(self, ts: int) -> str:
        minute, rest = divmod(ts, 60_000)
        parts = self.parts(minute)
        if parts is None:
            return csv_time(ts, self._zone) if self._csv else json_time(ts, self._zone)
        seconds, millis = divmod(rest, 1000)
        if millis and not self._csv:
            return f"{parts[0]}{seconds:02d}.{millis:03d}000{parts[1]}"
        return f"{parts[0]}{seconds:02d}{parts[1]}"


SECONDS = [f"{second:02d}" for second in range(60)]


MINUTE_SECONDS = [f"{m:02d}:{s:02d}" for m in range(60) for s in range(60)]
HOURS = [f"{hour:02d}:" for hour in range(24)]


def starts_pattern(starts: Iterable[int], when: TimeFormatter, *, before: str, after: str, slot: str) -> str:
    """`before + when(ts) + after + slot` for each of many ascending times, as one string (hour
    buckets and calendar ones, where grid_pattern's runs hold one time each): the zone's offset
    looked up per UTC hour, the date's text once per local day, the time of day from two tables."""
    out: list[str] = []
    append = out.append
    current_day = None
    head = ""
    for ts in starts:
        found = when.hour_offset(ts // 3_600_000)
        if found is None or ts % 1000:
            append(before + when(ts) + after + slot)
            continue
        offset, suffix = found
        day, second = divmod((ts + offset) // 1000, 86_400)
        if day != current_day:
            current_day = day
            head = before + when.day_text(day) + "T"
        append(head + HOURS[second // 3600] + MINUTE_SECONDS[second % 3600] + suffix + after + slot)
    return "".join(out)


def grid_texts(first: int, count: int, step: int, when: TimeFormatter, *, before: str = "",
               after: str = "") -> list[str]:
    """`before + when(ts) + after` for `count` times `step` ms apart from `first` (a fixed-width
    bucket grid): each run of times inside one UTC hour and one local hour is one slice of a
    minute:second table, so a week of 10 s buckets costs a few hundred slices, not 60,480
    formattings. Times off whole seconds, and hours whose offset changes, go one by one."""
    return [head + text for head, texts in _grid_runs(first, count, step, when, before=before, after=after)
            for text in texts]


def grid_pattern(first: int, count: int, step: int, when: TimeFormatter, *, before: str, after: str,
                 slot: str) -> str:
    """grid_texts with `slot` (a %-format: "%s,") after each, as one string: each run is one C
    join of its table slice, so no Python string per time is made. Time texts hold no `%`."""
    return "".join([head + (slot + head).join(texts) + slot
                    for head, texts in _grid_runs(first, count, step, when, before=before, after=after)])


@functools.lru_cache(maxsize=64)
def _table(suffix: str, after: str) -> list[str]:
    """Every minute:second of an hour with a zone suffix and `after` (3,600 texts; kept across
    requests: a zone has a few suffixes)."""
    return [text + suffix + after for text in MINUTE_SECONDS]


def _grid_runs(first: int, count: int, step: int, when: TimeFormatter, *, before: str, after: str
               ) -> list[tuple[str, list[str]]]:
    """The grid's times as runs (head, tails): each time's text is head + tail."""
    runs: list[tuple[str, list[str]]] = []
    index = 0
    while index < count:
        ts = first + index * step
        hour = ts // 3_600_000
        found = when.hour_offset(hour)
        if found is None or ts % 1000 or step % 1000:
            runs.append(("", [before + when(ts) + after]))
            index += 1
            continue
        offset, suffix = found
        local_hour, second = divmod((ts + offset) // 1000, 3600)
        run_end = min((hour + 1) * 3_600_000, (local_hour + 1) * 3_600_000 - offset)
        run = min(count - index, -(-(run_end - ts) // step))
        head = f"{before}{when.day_text(local_hour // 24)}T{local_hour % 24:02d}:"
        if run < 16:  # hour buckets and wider: not worth a table
            runs.append((head, [MINUTE_SECONDS[second + k * step // 1000] + suffix + after for k in range(run)]))
            index += run
            continue
        table = _table(suffix, after)
        step_s = step // 1000
        runs.append((head, table[second:second + run * step_s:step_s]))
        index += run
    return runs


def _points(rows: Iterable[tuple[int, float]], when: TimeFormatter, *, quote: str, sep: str, end: str,
            whole_seconds: bool) -> list[str]:
    """`<quote><time><sep><value><end>` for each (ts, value) row: the minute's text is looked up
    only when the minute changes (the hot loop of a download). With `whole_seconds` a time with
    milliseconds is written in full, else the second's text stands for it."""
    out: list[str] = []
    append = out.append
    current = -1
    head = tail = ""
    exact = True
    for ts, value in rows:
        minute, rest = divmod(ts, 60_000)
        if minute != current:
            current = minute
            parts = when.parts(minute)
            exact = parts is not None
            if parts is not None:
                head, tail = quote + parts[0], parts[1] + sep
        if exact and not (whole_seconds and rest % 1000):
            append(head + SECONDS[rest // 1000] + tail + repr(value) + end)
        else:
            append(f"{quote}{when(ts)}{sep}{value!r}{end}")
    return out


def json_points(rows: Iterable[tuple[int, float]], when: TimeFormatter) -> list[str]:
    """`"<time>":<value>` for each (ts, value) row."""
    return _points(rows, when, quote='"', sep='":', end="", whole_seconds=True)


def csv_points(rows: Iterable[tuple[int, float]], when: TimeFormatter) -> list[str]:
    """`<time>,<value>\\n` for each (ts, value) row of a one-series CSV download."""
    return _points(rows, when, quote="", sep=",", end="\n", whole_seconds=False)
