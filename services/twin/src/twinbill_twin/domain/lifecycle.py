"""Meter lifecycle rules (pure): which event may follow which, and the readings each needs.

Events are recorded in time order only: each one states the meter parameters in force before and
after it, so billing can cut a period at any of them. Register size is stated the way a person
reads the register: 5 digits means 99999 rolls over to 00000 (a modulus of 10**5).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

NEEDS = {
    "installation": ("initial_reading",),
    "exchange": ("final_reading", "initial_reading"),
    "removal": ("final_reading",),
    "multiplier_change": ("reading", "multiplier"),
}


@dataclass(frozen=True)
class Recorded:
    """An event already recorded for the device (what the next one is checked against)."""

    kind: str
    at: datetime


def register_max(digits: int | None) -> Decimal | None:
    """The register's modulus from its digit count (5 -> 100000), None when unknown."""
    return None if digits is None else Decimal(10) ** digits


def digits_of(modulus: Decimal | None) -> int | None:
    """The digit count of a device's register_max: a power of ten (100000, the modulus) or the
    largest value shown (99999, as some registries state it) both mean 5 digits; else None."""
    if modulus is None or modulus <= 0 or modulus != modulus.to_integral_value():
        return None
    for candidate in (modulus, modulus + 1):
        digits = len(str(int(candidate))) - 1
        if candidate == Decimal(10) ** digits and digits >= 1:
            return digits
    return None


def check_event(
    kind: str, *, at: datetime, values: dict[str, Decimal | None], recorded: list[Recorded],
    digits_before: int | None, digits_after: int | None, last_reading: tuple[Decimal, datetime] | None,
) -> dict[str, list[str]]:
    """Every problem with a new event, by field (empty when it may be recorded)."""
    errors: dict[str, list[str]] = {}
    for name in NEEDS[kind]:
        if values.get(name) is None:
            errors[name] = [f"Missing data for required field (a {kind} needs it)."]
    installation = next((r for r in recorded if r.kind == "installation"), None)
    removal = next((r for r in recorded if r.kind == "removal"), None)
    latest = max((r.at for r in recorded), default=None)
    if kind == "installation" and installation is not None:
        errors.setdefault("kind", []).append(f"the meter was already installed at {installation.at.isoformat()}")
    elif kind == "installation" and latest is not None and at >= latest:
        errors.setdefault("at", []).append(f"an installation must precede the meter's other events "
                                           f"(the first is at {min(r.at for r in recorded).isoformat()})")
    elif kind != "installation":
        if installation is not None and at <= installation.at:
            errors.setdefault("at", []).append(
                f"a {kind} at {at.isoformat()} is not after the installation at {installation.at.isoformat()}")
        elif latest is not None and at <= latest:
            errors.setdefault("at", []).append(
                f"events are recorded in time order: the latest is at {latest.isoformat()}")
        if removal is not None:
            errors.setdefault("kind", []).append(f"the meter was removed at {removal.at.isoformat()}")
    for name, digits in (("final_reading", digits_before), ("reading", digits_before),
                         ("initial_reading", digits_after)):
        value, modulus = values.get(name), register_max(digits)
        if value is not None and modulus is not None and value >= modulus:
            errors.setdefault(name, []).append(f"{value} does not fit a {digits}-digit register")
    top = register_max(digits_before)
    final = values.get("final_reading")
    if final is not None and last_reading is not None:
        last, when = last_reading
        advance = final - last
        if advance < 0 and (top is None or (advance + top) * 2 >= top):
            errors.setdefault("final_reading", []).append(
                f"{final} is below the last reading {last} at {when.isoformat()}")
    return errors
