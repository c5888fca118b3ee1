"""Pure meter models: registers that only grow, driven by a daily consumption profile."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from decimal import Decimal

# Share of the daily mean consumed in each hour of the day (residential: a morning and an evening
# peak, a low night); the 24 values average 1.0.
_HOURLY = (
    0.35,
    0.3,
    0.25,
    0.25,
    0.3,
    0.5,
    1.1,
    1.6,
    1.4,
    1.0,
    0.9,
    1.0,
    1.2,
    1.0,
    0.9,
    0.9,
    1.1,
    1.5,
    1.9,
    2.0,
    1.7,
    1.3,
    0.8,
    0.55,
)
_NORM = sum(_HOURLY) / 24


def profile(hour_of_day: float) -> float:
    """The consumption factor at a (fractional) hour of the day, interpolated, mean 1.0."""
    hour = hour_of_day % 24
    low = math.floor(hour)
    frac = hour - low
    return (_HOURLY[low] * (1 - frac) + _HOURLY[(low + 1) % 24] * frac) / _NORM


# Decimal places of a register by meter kind: water in cubic metres, electricity in kWh.
_PLACES = {"water": 3, "electricity": 2}


@dataclass
class Meter:
    """One meter: its register and how much it consumes on an average day.

    Water registers count cubic metres with 3 decimals, electricity registers kWh with 2.
    """

    kind: str  # "water" | "electricity"
    register: Decimal
    daily_mean: float
    rng: random.Random = field(default_factory=random.Random, repr=False)
    leak_per_hour: float = 0.0  # a leak: this much more flows all the time, day and night

    def __post_init__(self) -> None:
        places = _PLACES.get(self.kind, 2)
        self._scale = 10.0**places
        self._places = places
        # The register carries the quantum's places from the start (as adding a zero step did).
        self.register += Decimal((0, (0,), -places))
        self._text_of: Decimal | None = None
        self._text = ""

    @property
    def reading(self) -> str:
        """The register as JSON number text (its Decimal digits), formatted again only after
        it changed: most steps of a bench's fast reporting are below one unit."""
        if self._text_of is not self.register:
            self._text_of, self._text = self.register, f"{self.register}"
        return self._text

    @property
    def quantum(self) -> Decimal:
        """The register's resolution."""
        return Decimal((0, (1,), -self._places))

    def advance(self, *, at_ms: int, seconds: float, utc_offset_hours: float = 8.0) -> Decimal:
        """Consume for `seconds` ending at `at_ms`; return the new register (never lower).

        The step is rounded to the register's resolution in integer units: most steps of a
        bench's fast reporting are below one unit, and they cost no Decimal arithmetic then (the
        simulator shares the cores with the gateway it drives; services/ingest/README.md).
        """
        hour = ((at_ms / 3_600_000) + utc_offset_hours) % 24
        expected = self.daily_mean * profile(hour) * seconds / 86_400
        used = self.rng.gauss(expected, expected * 0.2)
        used = used if used > 0.0 else 0.0  # max(0.0, used), without the call
        if self.leak_per_hour:  # adding 0.0 would change nothing
            used += self.leak_per_hour * seconds / 3600
        units = round(used * self._scale)
        if units:
            self.register += Decimal(units).scaleb(-self._places)
        return self.register
