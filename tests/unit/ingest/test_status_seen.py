"""What one accepted request records for the registry's device status: every device it carried,
online only while logged in, and the publishing gateway online."""

from __future__ import annotations

import asyncio

from twinbill_ingest.sessions import StatusReporter
from twinbill_ingest.store import RegistryCache, StaticRegistrySource


def test_seen_all_records_each_device_with_its_session_state() -> None:
    """A logged-in meter online, a meter reported with allowOfflineSubDevice offline, the
    gateway online although it sent no point of its own; each with the request's time."""
    source = StaticRegistrySource([], [])
    cache = RegistryCache()
    cache.set_online(("meter", "m1"), gateway=("meter", "gw"))
    reporter = StatusReporter(source)
    devices = {("meter", "m1"), ("meter", "m2")}
    reporter.seen_all(devices, online=cache.online_among(devices) | {("meter", "gw")}, at_ms=1_000)
    asyncio.run(reporter.flush())
    states = {(r["product_key"], r["device_key"]): (r["online"], r["last_seen"]) for r in source.reported}
    at = "1970-01-01T00:00:01+00:00"
    assert states == {("meter", "m1"): (True, at), ("meter", "m2"): (False, at), ("meter", "gw"): (True, at)}
