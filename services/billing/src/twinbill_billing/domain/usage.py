"""Consumption from two register readings: multiplier, register rollover, backwards readings."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


class BackwardsReading(ValueError):
    """The register went down without a plausible rollover: an exception for a human, never a bill."""


@dataclass(frozen=True)
class Usage:
    """What the register advanced by, the billed consumption, and whether it wrapped."""

    register_delta: Decimal
    consumption: Decimal
    rolled_over: bool


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
