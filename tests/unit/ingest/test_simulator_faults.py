"""The simulator's played faults (issue 13): a leaking meter keeps flowing at night, a dead meter
stops reporting once its time is up while the gateway's other meters go on."""

from __future__ import annotations

import random
import time
from decimal import Decimal

from twinbill_simulator.gateway import GatewaySim
from twinbill_simulator.meters import Meter
from twinbill_simulator.stats import SimulatorStats

NIGHT_MS = 1_764_612_000_000  # 02:00 in Asia/Shanghai (UTC+8)


def test_a_leak_flows_at_least_its_rate_even_at_night() -> None:
    """An hour at 02:00 with a 5/h leak adds at least 5 on top of the meter's own use."""
    quiet = Meter("water", Decimal(0), daily_mean=0.4, rng=random.Random(1))
    leaking = Meter("water", Decimal(0), daily_mean=0.4, rng=random.Random(1), leak_per_hour=5.0)
    assert quiet.advance(at_ms=NIGHT_MS, seconds=3600) < Decimal("0.1")
    assert leaking.advance(at_ms=NIGHT_MS, seconds=3600) >= Decimal("5")


def _gateway(dead_after: float) -> GatewaySim:
    subs = [{"product_key": "pk", "device_key": f"m{n}", "secret": "s", "device_type": 1} for n in (1, 2)]
    subs[1].update(fault="dead", dead_after_seconds=dead_after)
    spec = {"product_key": "gw", "device_key": "gw1", "secret": "s", "sub_devices": subs}
    return GatewaySim(spec, stats=SimulatorStats(), rng=random.Random(2),
                      options={"consumption_scale": 1.0, "window": 1})


def test_a_dead_meter_stops_reporting_and_the_others_go_on() -> None:
    """Before its time both meters report; after it only m1 does."""
    alive = _gateway(3600)._entries(4, end_ms=int(time.time() * 1000), seconds_per_entry=1)
    assert sum('"m2"' in e for e in alive) == 2
    dead = _gateway(0)._entries(4, end_ms=int(time.time() * 1000), seconds_per_entry=1)
    assert len(dead) == 4 and not any('"m2"' in e for e in dead)
