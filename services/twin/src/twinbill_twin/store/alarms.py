"""The alarm rules' side of PostgreSQL: rules per project, devices by key, per-device state (locked
in id order, so two replicas never deadlock on it), and alarms recorded as events in the project's
"Alarms" campaign scope, under one category per rule kind."""

from __future__ import annotations

import json
import time
import zoneinfo
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec

from twinbill_twin.domain.alarms import CATEGORIES, Alarm, Rule
from twinbill_twin.store.events import NewEvent, category_id, record_event

ALARM_SCOPE = "Alarms"
_RULES_JSON = msgspec.json.Encoder()  # the rules' states: str keys, ints, strings, bools


@dataclass(frozen=True)
class Device:
    """What the rules need of a device."""

    id: int
    project_id: int
    name: str
    device_type: int | None
    register_max: Decimal | None
    space_id: int | None


@dataclass
class DeviceState:
    """One device's row of alarm_device_state; `xmin` is the row version it was read or written
    as (PostgreSQL's system column: every write of the row, by anyone, changes it)."""

    device_id: int
    project_id: int
    last_seen: datetime
    offline_since: datetime | None
    rules: dict[str, Any]
    stored: bool = True
    xmin: int | None = None

    def copy(self) -> DeviceState:
        """A copy to evaluate on (the rules' states are flat dicts)."""
        return DeviceState(self.device_id, self.project_id, self.last_seen, self.offline_since,
                           {rule: dict(state) for rule, state in self.rules.items()}, self.stored, self.xmin)


def rule_of(row: Any) -> Rule:
    """A rule from its row."""
    params = row["params"]
    return Rule(id=row["id"], project_id=row["project_id"], kind=row["kind"], name=row["name"], level=row["level"],
                params=json.loads(params) if isinstance(params, str) else params, device_type=row["device_type"])


class RuleCache:
    """Enabled rules by project, re-read at most every `ttl` seconds (a change applies within it)."""

    def __init__(self, *, ttl: float = 5.0) -> None:
        self.ttl = ttl
        self._rules: dict[int, list[Rule]] = {}
        self._read_at = float("-inf")

    async def get(self, conn: asyncpg.Connection) -> dict[int, list[Rule]]:
        """The rules, fresh within the ttl."""
        if time.monotonic() - self._read_at >= self.ttl:
            rows = await conn.fetch("SELECT * FROM alarm_rules WHERE enabled ORDER BY id")
            rules: dict[int, list[Rule]] = {}
            for row in rows:
                rules.setdefault(row["project_id"], []).append(rule_of(row))
            self._rules, self._read_at = rules, time.monotonic()
        return self._rules


class DeviceCache:
    """Devices by (product key, device key), and project zones; forgotten every `ttl` seconds."""

    def __init__(self, *, ttl: float = 60.0) -> None:
        self.ttl = ttl
        self._devices: dict[tuple[str, str], Device | None] = {}
        self._zones: dict[int, zoneinfo.ZoneInfo] = {}
        self._since = time.monotonic()

    async def resolve(self, conn: asyncpg.Connection, keys: set[tuple[str, str]]) -> dict[tuple[str, str], Device]:
        """The known devices among `keys` (unknown ones are left out)."""
        if time.monotonic() - self._since >= self.ttl:
            self._devices.clear()
            self._zones.clear()
            self._since = time.monotonic()
        missing = [key for key in keys if key not in self._devices]
        if missing:
            for key in missing:
                self._devices[key] = None
            rows = await conn.fetch(
                "SELECT q.pk, q.dk, d.id, d.project_id, d.name, d.device_type, d.register_max, d.space_id "
                "FROM unnest($1::text[], $2::text[]) AS q(pk, dk) JOIN products p ON p.product_key = q.pk "
                "JOIN devices d ON d.product_id = p.id AND d.device_key = q.dk",
                [k[0] for k in missing], [k[1] for k in missing])
            for row in rows:
                self._devices[(row["pk"], row["dk"])] = Device(
                    row["id"], row["project_id"], row["name"], row["device_type"], row["register_max"], row["space_id"])
        return {key: device for key in keys if (device := self._devices.get(key)) is not None}

    async def zone(self, conn: asyncpg.Connection, project_id: int, *, default: str) -> zoneinfo.ZoneInfo:
        """The project's IANA zone (the default when unknown or invalid)."""
        if project_id not in self._zones:
            name = await conn.fetchval("SELECT timezone FROM projects WHERE id = $1", project_id) or default
            try:
                self._zones[project_id] = zoneinfo.ZoneInfo(name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                self._zones[project_id] = zoneinfo.ZoneInfo(default)
        return self._zones[project_id]


class StateCache:
    """The devices' rule states as this replica last read or wrote them, with their row versions:
    a batch evaluates from here and writes back with `save_if_unchanged`, one statement, instead
    of reading and locking every row first. Only a hint: a row written by anyone else since
    (another shard's batch, the offline sweep, another replica) fails the version check and is
    read again, locked. At most `size` devices (the oldest entries go first), each for at most
    `ttl` seconds (xmin is a 32-bit transaction counter: an entry never lives to see it wrap)."""

    def __init__(self, *, size: int = 50_000, ttl: float = 600.0) -> None:
        self.size = size
        self.ttl = ttl
        self._states: dict[int, tuple[float, DeviceState]] = {}

    def get(self, device_id: int) -> DeviceState | None:
        """The cached state (not a copy: evaluate on `copy()`), if fresh."""
        found = self._states.get(device_id)
        if found is None:
            return None
        if time.monotonic() - found[0] >= self.ttl:
            del self._states[device_id]
            return None
        return found[1]

    def put(self, state: DeviceState) -> None:
        """Keep a state as committed (with its new xmin)."""
        self._states.pop(state.device_id, None)
        self._states[state.device_id] = (time.monotonic(), state)
        while len(self._states) > self.size:
            del self._states[next(iter(self._states))]

    def forget(self, device_id: int) -> None:
        """Drop a device's entry."""
        self._states.pop(device_id, None)

    def clear(self) -> None:
        """Drop everything."""
        self._states.clear()

    def __len__(self) -> int:
        return len(self._states)


async def lock_states(conn: asyncpg.Connection, devices: list[tuple[int, int, datetime]]) -> dict[int, DeviceState]:
    """The states of devices [(id, project, seen at)], locked (in id order) until the transaction
    ends. A device without one gets an empty row first: FOR UPDATE locks only rows that exist, and
    two batches creating the same device's state would both start from nothing (the second
    waits on the first's insert instead, then reads what it committed)."""
    ordered = sorted(devices)
    await conn.execute(
        "INSERT INTO alarm_device_state (device_id, project_id, last_seen) "
        "SELECT * FROM unnest($1::bigint[], $2::int[], $3::timestamptz[]) ON CONFLICT (device_id) DO NOTHING",
        [d[0] for d in ordered], [d[1] for d in ordered], [d[2] for d in ordered])
    rows = await conn.fetch("SELECT *, xmin FROM alarm_device_state WHERE device_id = ANY($1::bigint[]) "
                            "ORDER BY device_id FOR UPDATE", [d[0] for d in ordered])
    return {row["device_id"]: DeviceState(row["device_id"], row["project_id"], row["last_seen"], row["offline_since"],
                                          json.loads(row["rules"]) if isinstance(row["rules"], str) else row["rules"],
                                          xmin=row["xmin"])
            for row in rows}


async def save_states(conn: asyncpg.Connection, states: list[DeviceState]) -> dict[int, int]:
    """Write the states back (insert the new ones); their new row versions (xmin) by device."""
    if not states:
        return {}
    rows = await conn.fetch(
        "INSERT INTO alarm_device_state (device_id, project_id, last_seen, offline_since, rules) "
        "SELECT * FROM unnest($1::bigint[], $2::int[], $3::timestamptz[], $4::timestamptz[], $5::jsonb[]) "
        "ON CONFLICT (device_id) DO UPDATE SET last_seen = EXCLUDED.last_seen, "
        "offline_since = EXCLUDED.offline_since, rules = EXCLUDED.rules RETURNING device_id, xmin",
        [s.device_id for s in states], [s.project_id for s in states], [s.last_seen for s in states],
        [s.offline_since for s in states], [_RULES_JSON.encode(s.rules).decode() for s in states])
    return {row["device_id"]: row["xmin"] for row in rows}


# One statement: lock the rows in id order (as lock_states does, so writers never deadlock on
# them), then write only the rows still at the version the states were evaluated from.
_SAVE_IF_UNCHANGED = """
WITH q AS MATERIALIZED (
    SELECT * FROM unnest($1::bigint[], $2::xid[], $3::timestamptz[], $4::jsonb[])
        AS q(device_id, seen_as, last_seen, rules)),
locked AS MATERIALIZED (
    SELECT st.device_id FROM alarm_device_state st JOIN q ON q.device_id = st.device_id
    WHERE st.xmin = q.seen_as ORDER BY st.device_id FOR UPDATE OF st)
UPDATE alarm_device_state st SET last_seen = q.last_seen, rules = q.rules
FROM q WHERE q.device_id = st.device_id AND st.xmin = q.seen_as
    AND st.device_id IN (SELECT device_id FROM locked)
RETURNING st.device_id, st.xmin
"""


async def save_if_unchanged(conn: asyncpg.Connection, states: list[DeviceState]) -> dict[int, int]:
    """Write back states evaluated from a cached copy, each only if its row is still the version
    cached (`xmin`) and so holds what was evaluated from; the new versions of those written, by
    device. A row someone else wrote meanwhile (another shard's batch, the offline sweep) is left
    alone: its device is evaluated again from the row, locked."""
    if not states:
        return {}
    ordered = sorted(states, key=lambda state: state.device_id)
    rows = await conn.fetch(_SAVE_IF_UNCHANGED, [s.device_id for s in ordered], [s.xmin for s in ordered],
                            [s.last_seen for s in ordered], [_RULES_JSON.encode(s.rules).decode() for s in ordered])
    return {row["device_id"]: row["xmin"] for row in rows}


async def alarm_scope(conn: asyncpg.Connection, project_id: int) -> int:
    """The project's "Alarms" campaign scope, created on first use."""
    found: int | None = await conn.fetchval(
        "SELECT id FROM bem_campaign_scopes WHERE campaign_id = $1 AND name = $2", project_id, ALARM_SCOPE)
    if found is not None:
        return found
    created: int = await conn.fetchval(
        "INSERT INTO bem_campaign_scopes (campaign_id, name, description) VALUES ($1, $2, $3) "
        "ON CONFLICT (campaign_id, name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
        project_id, ALARM_SCOPE, "events raised by twinbill's alarm rules")
    return created


async def record_alarm(conn: asyncpg.Connection, alarm: Alarm, device: Device) -> int | None:
    """The alarm as an event of the project's Alarms scope, linked to the device's space (once per
    episode: its dedup key)."""
    return await record_device_event(
        conn, device, category=CATEGORIES[alarm.rule.kind],
        level=alarm.level if alarm.level is not None else alarm.rule.level, at=alarm.at,
        description=f"{alarm.rule.name}: {alarm.description}", dedup_key=alarm.key(device.id))


async def record_device_event(conn: asyncpg.Connection, device: Device, *, category: str, level: int,
                              at: datetime, description: str, dedup_key: str) -> int | None:
    """An event about a device in its project's Alarms scope, linked to its space; None when the
    dedup key was recorded already."""
    return await record_event(conn, NewEvent(
        campaign_scope_id=await alarm_scope(conn, device.project_id),
        category_id=await category_id(conn, category, f"twinbill: {category.lower()}"),
        level=level, timestamp=at, source=f"{device.name} (device {device.id})", description=description,
        dedup_key=dedup_key, links={"space": (device.space_id,)} if device.space_id is not None else {}))


async def device_by_key(conn: asyncpg.Connection, product_key: str, device_key: str) -> Device | None:
    """A device by its keys."""
    row = await conn.fetchrow(
        "SELECT d.id, d.project_id, d.name, d.device_type, d.register_max, d.space_id FROM devices d "
        "JOIN products p ON p.id = d.product_id WHERE p.product_key = $1 AND d.device_key = $2",
        product_key, device_key)
    if row is None:
        return None
    return Device(row["id"], row["project_id"], row["name"], row["device_type"], row["register_max"],
                  row["space_id"])


async def device_by_id(conn: asyncpg.Connection, device_id: int) -> Device | None:
    """A device by its id."""
    row = await conn.fetchrow("SELECT id, project_id, name, device_type, register_max, space_id FROM devices "
                              "WHERE id = $1", device_id)
    if row is None:
        return None
    return Device(row["id"], row["project_id"], row["name"], row["device_type"], row["register_max"],
                  row["space_id"])
