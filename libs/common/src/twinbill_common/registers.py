"""Cumulative meter registers, one rule for every service that reads them (billing's bills, the
twin's energy consumption breakdown): consumption between two readings with the multiplier,
register rollover and lifecycle events (installation, exchange, multiplier change, removal).

Pure: readings and effective-dated events come in as arguments."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

ReadingSource = Literal[
    "previous_bill", "period_start_reading", "reading", "installation", "exchange", "removal",
    "multiplier_change", "estimate",
]
EventKind = Literal["installation", "exchange", "removal", "multiplier_change"]


class BackwardsReading(ValueError):
    """The register went down without a plausible rollover: an exception for a human, never a bill."""


@dataclass(frozen=True)
class Usage:
    """What the register advanced by, the billed consumption, and whether it wrapped."""

    register_delta: Decimal
    consumption: Decimal
    rolled_over: bool


@dataclass(frozen=True)
class Reading:
    """A register value at an instant; `source` says where it came from."""

    value: Decimal
    time: datetime
    source: ReadingSource = "reading"


@dataclass(frozen=True)
class MeterEvent:
    """A lifecycle event from the registry, with the meter parameters before and after it.

    `reading_before`: the old meter's final reading (exchange, removal) or the register at a
    multiplier change; `reading_after`: the new meter's initial reading (installation, exchange)
    or the register at a multiplier change.
    """

    kind: EventKind
    at: datetime
    reading_before: Decimal | None
    reading_after: Decimal | None
    multiplier: Decimal
    multiplier_before: Decimal
    register_max: Decimal | None
    register_max_before: Decimal | None


@dataclass(frozen=True)
class RegisterPiece:
    """One stretch of one meter under one multiplier and register size, between two readings.

    `field` names the closing reading for an error message ("reading", "final_reading")."""

    opening: Reading
    closing: Reading
    multiplier: Decimal
    register_max: Decimal | None
    field: str


def compute_usage(opening: Decimal, closing: Decimal, *, multiplier: Decimal, register_max: Decimal | None) -> Usage:
    """(closing - opening) x multiplier, counting a wrap past `register_max` as a rollover.

    `register_max` is the register's modulus: after it the register restarts at 0, so a wrapped
    advance is closing + register_max - opening. A drop is taken as a rollover only when that
    wrapped advance is under half the register's range; any other drop (a replaced meter, a glitch
    such as 500.0 -> 499.9) raises BackwardsReading, because billing almost a whole register turn
    for it would be a wrong bill.
    """
    if multiplier <= 0:
        raise ValueError(f"multiplier must be positive, got {multiplier}")
    if closing >= opening:
        delta = closing - opening
        return Usage(delta, delta * multiplier, rolled_over=False)
    if register_max is None:
        raise BackwardsReading(
            f"reading went backwards from {opening} to {closing} and the meter has no register maximum"
        )
    if opening > register_max or closing > register_max:
        raise BackwardsReading(
            f"reading went backwards from {opening} to {closing}, beyond the register maximum {register_max}"
        )
    wrapped = closing + register_max - opening
    if wrapped * 2 >= register_max:
        raise BackwardsReading(
            f"reading went backwards from {opening} to {closing}; a rollover "
            f"past {register_max} would mean {wrapped}, over half the register"
        )
    return Usage(wrapped, wrapped * multiplier, rolled_over=True)


def params_at(events: Sequence[MeterEvent], at: datetime, *, multiplier: Decimal,
              register_max: Decimal | None) -> tuple[Decimal, Decimal | None]:
    """The multiplier and register size in force just after `at`, from the effective-dated events
    (sorted by time); without events, the meter's current ones."""
    before = [e for e in events if e.at <= at]
    if before:
        return before[-1].multiplier, before[-1].register_max
    after = [e for e in events if e.at > at]
    if after:
        return after[0].multiplier_before, after[0].register_max_before
    return multiplier, register_max


def register_pieces(opening: Reading, closing: Reading, *, from_time: datetime, to_time: datetime,
                    events: Sequence[MeterEvent], multiplier: Decimal,
                    register_max: Decimal | None) -> list[RegisterPiece]:
    """The stretch from `opening` to `closing`, over (from_time, to_time], cut at its lifecycle
    events: an exchange ends the old meter at its final reading and starts the new one at its
    initial reading; a multiplier change cuts at its reading; a removal ends it."""
    ordered = sorted(events, key=lambda e: e.at)
    result: list[RegisterPiece] = []
    current = opening
    for event in (e for e in ordered if from_time < e.at <= to_time):
        mult, reg = params_at(ordered, current.time, multiplier=multiplier, register_max=register_max)
        if event.reading_before is None:
            continue
        end = Reading(event.reading_before, event.at, event.kind)
        result.append(RegisterPiece(current, end, mult, reg,
                            "reading" if event.kind == "multiplier_change" else "final_reading"))
        if event.kind == "removal":
            return result
        current = Reading(event.reading_after if event.reading_after is not None else event.reading_before,
                          event.at, event.kind)
    if closing.time > current.time or (closing.time == current.time and closing.value != current.value):
        mult, reg = params_at(ordered, current.time, multiplier=multiplier, register_max=register_max)
        result.append(RegisterPiece(current, closing, mult, reg, "reading"))
    return result


def closing_in(from_time: datetime, to_time: datetime, *, reading: Reading | None,
               events: Sequence[MeterEvent]) -> Reading | None:
    """The last known register value in (from_time, to_time]: the last reading there, or a later
    lifecycle event's reading (an exchange's initial reading, a removal's final one)."""
    inside = [e for e in sorted(events, key=lambda e: e.at) if from_time < e.at <= to_time]
    candidate = reading if reading is not None and from_time < reading.time <= to_time else None
    if inside:
        last = inside[-1]
        value = last.reading_before if last.kind == "removal" else last.reading_after
        if value is not None and (candidate is None or candidate.time < last.at):
            return Reading(value, last.at, last.kind)
    return candidate


def period_consumption(bounds: Sequence[datetime], last_readings: Sequence[Reading | None], *,
                       events: Sequence[MeterEvent], multiplier: Decimal, register_max: Decimal | None,
                       first: Reading | None = None) -> list[Decimal]:
    """Consumption in each period (bounds[k], bounds[k+1]] counted as consecutive bills would:
    `last_readings[k]` is the last reading at or before bounds[k]; each period opens at the
    previous one's closing (the first at its last reading, or at the installation reading; a
    meter read for the first time inside the bounds opens at `first`, its first reading), closes
    at its last reading or lifecycle event, and is cut at lifecycle events.

    A period without a new reading counts 0 (the next reading carries it). Where the register
    went down without a plausible rollover billing refuses the bill (a human records an exchange);
    here that period counts 0 and the chain goes on from the lower reading."""
    ordered = sorted(events, key=lambda e: e.at)
    installation = next((e for e in ordered if e.kind == "installation" and e.reading_after is not None), None)
    opening = last_readings[0] if last_readings else None
    if installation is not None and (opening is None or opening.time < installation.at):
        opening = None if installation.at > bounds[0] else Reading(installation.reading_after or Decimal(0),
                                                                    installation.at, "installation")
    result: list[Decimal] = []
    for index in range(len(bounds) - 1):
        start, end = bounds[index], bounds[index + 1]
        closing = closing_in(start, end, reading=last_readings[index + 1], events=ordered)
        if opening is None:
            # no reading before: the chain starts at the installation inside, or at the first reading
            if installation is not None and start < installation.at <= end:
                opening = Reading(installation.reading_after or Decimal(0), installation.at, "installation")
            elif first is not None and start < first.time <= end:
                opening = first
            else:
                result.append(Decimal(0))
                continue
        if closing is None or closing.time <= opening.time:
            result.append(Decimal(0))
            continue
        total = Decimal(0)
        try:
            for piece in register_pieces(opening, closing, from_time=max(start, opening.time), to_time=end,
                                         events=ordered, multiplier=multiplier, register_max=register_max):
                total += compute_usage(piece.opening.value, piece.closing.value, multiplier=piece.multiplier,
                                       register_max=piece.register_max).consumption
        except BackwardsReading:
            total = Decimal(0)
        result.append(total)
        opening = closing
    return result
