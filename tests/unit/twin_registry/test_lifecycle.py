"""Meter lifecycle rules: event order, required readings, register digits, final readings."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from twinbill_twin.domain.lifecycle import Recorded, check_event, digits_of, register_max

D = Decimal
T = [datetime(2024, m, 1, tzinfo=UTC) for m in range(1, 7)]
INSTALLED = [Recorded("installation", T[1])]


def check(kind: str, at: datetime, recorded: list[Recorded] | None = None, *, digits: int | None = 5,
          last: tuple[Decimal, datetime] | None = None, **values: str) -> dict[str, list[str]]:
    return check_event(kind, at=at, values={k: D(v) for k, v in values.items()}, recorded=recorded or [],
                       digits_before=digits, digits_after=digits, last_reading=last)


def test_register_digits_are_read_like_a_person() -> None:
    """5 digits: 99999 rolls to 00000, a modulus of 100000; and back from a stored modulus."""
    assert register_max(5) == D(100000) and register_max(None) is None
    assert digits_of(D("1.0E+5")) == 5 and digits_of(D(99999)) == 5 and digits_of(None) is None
    assert digits_of(D(12345)) is None and digits_of(D("9.5")) is None


@pytest.mark.parametrize(("kind", "at", "recorded", "values", "field"), [
    ("exchange", T[0], INSTALLED, {"final_reading": "1", "initial_reading": "0"}, "at"),
    ("exchange", T[2], INSTALLED, {"initial_reading": "0"}, "final_reading"),
    ("removal", T[2], INSTALLED, {}, "final_reading"),
    ("multiplier_change", T[2], INSTALLED, {"reading": "5"}, "multiplier"),
    ("installation", T[0], INSTALLED, {"initial_reading": "0"}, "kind"),
    ("installation", T[3], [Recorded("exchange", T[2])], {"initial_reading": "0"}, "at"),
    ("exchange", T[3], [*INSTALLED, Recorded("removal", T[2])], {"final_reading": "1", "initial_reading": "0"},
     "kind"),
    ("exchange", T[2], [*INSTALLED, Recorded("exchange", T[3])], {"final_reading": "1", "initial_reading": "0"},
     "at"),
    ("removal", T[2], INSTALLED, {"final_reading": "100000"}, "final_reading"),
])
def test_bad_events_name_the_field(kind: str, at: datetime, recorded: list[Recorded], values: dict[str, str],
                                   field: str) -> None:
    """Each refusal names the field that is wrong."""
    errors = check_event(kind, at=at, values={k: D(v) for k, v in values.items()}, recorded=recorded,
                         digits_before=5, digits_after=5, last_reading=None)
    assert field in errors


def test_final_reading_below_the_last_reading() -> None:
    """A final reading below the meter's last reading is refused, unless it is a plausible rollover."""
    errors = check("exchange", T[2], INSTALLED, last=(D("500"), T[1]), final_reading="499", initial_reading="0")
    assert "below the last reading 500" in errors["final_reading"][0]
    assert check("exchange", T[2], INSTALLED, last=(D("99990"), T[1]), final_reading="5", initial_reading="0") == {}
    assert check("exchange", T[2], INSTALLED, last=(D("10"), T[1]), final_reading="12", initial_reading="0") == {}
