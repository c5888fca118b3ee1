"""`make run`'s message: the web console and the demo sign-in come first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twinbill_devstack.run import ServiceProcess, simulation, start_order, where_to_look


def test_console_and_sign_in_come_first() -> None:
    """The first non-blank lines after the greeting are the console URL and the sign-in."""
    running = [ServiceProcess(name, f"twinbill_{name}", port, {})
               for name, port in (("gateway", 8000), ("twin", 8001), ("scheduler", 8002), ("billing", 8003))]
    lines = [line for line in where_to_look(running, {"project_id": 1}, logs=Path(".stack/logs")) if line]
    assert lines[0] == "twinbill is running."
    assert lines[1].split() == ["web", "console", "http://127.0.0.1:8000/"]
    assert lines[2].split() == ["sign", "in", "as", "admin@twinbill.local", "/", "twinbill-admin"]
    assert any("history/?project_id=1" in line for line in lines)
    # the gateway's metrics are on their own port; the public one answers 404 there
    assert "  metrics    http://127.0.0.1:8009/metrics   (gateway)" in lines
    assert "  metrics    http://127.0.0.1:8001/metrics   (twin)" in lines


def test_without_the_gateway_no_console_is_promised() -> None:
    """A gateway not built yet means no console line."""
    lines = where_to_look([ServiceProcess("twin", "twinbill_twin", 8001, {})], None, logs=Path("logs"))
    assert not any("console" in line for line in lines)


def test_the_scheduler_starts_after_the_demo_is_seeded() -> None:
    """No billing task can fire before the demo registry and tariffs exist: the scheduler is the
    only service started after seeding, the others (the seeding needs them) before."""
    running = [ServiceProcess(name, f"twinbill_{name}", port, {}) for name, port in (
        ("gateway", 8000), ("twin", 8001), ("scheduler", 8002), ("billing", 8003), ("ingest", 8004))]
    first, last = start_order(running)
    assert [s.name for s in first] == ["gateway", "twin", "billing", "ingest"]
    assert [s.name for s in last] == ["scheduler"]


def test_demo_meters_report_their_reading_struct() -> None:
    """The simulator config marks the demo meters' `reading` struct, gateways and others untouched."""
    subs: list[dict[str, Any]] = [{"product_key": "demo_water_meter", "device_key": "w"},
                                  {"product_key": "demo_electricity_meter", "device_key": "e"},
                                  {"product_key": "other", "device_key": "o"}]
    demo = {"project_id": 1, "gateways": [{"product_key": "demo_gateway", "device_key": "g", "secret": "s",
                                           "sub_devices": subs}]}
    configured = simulation(demo)["gateways"][0]["sub_devices"]
    assert [s.get("reading_point") for s in configured] == ["reading", "reading", None]
    assert "reading_point" not in subs[0]  # the seeded demo is not changed
