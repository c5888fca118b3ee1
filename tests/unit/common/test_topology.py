"""The telemetry routing key's slot and the alarm shards' bindings: every slot reaches exactly
one shard, and a device's slot is the same in every process and release (the publishers and the
twin's shard queues must agree)."""

from __future__ import annotations

import zlib

from twinbill_common.topology import (
    ALARM_QUEUES,
    ALARM_SHARDS,
    TELEMETRY_SLOTS,
    telemetry_key,
    telemetry_slot,
)


def test_the_slot_is_crc32_of_the_keys_so_every_process_agrees() -> None:
    assert telemetry_slot("pk1", "dev1") == zlib.crc32(b"pk1/dev1") % TELEMETRY_SLOTS == 46
    assert telemetry_key("pk1", "dev1") == "mp.46.pk1.dev1"


def test_every_slot_is_bound_to_exactly_one_alarm_shard() -> None:
    assert TELEMETRY_SLOTS % ALARM_SHARDS == 0
    bound = [key for queue in ALARM_QUEUES for key in queue.routing_keys]
    assert sorted(bound) == sorted(f"mp.{slot}.#" for slot in range(TELEMETRY_SLOTS))
    for shard, queue in enumerate(ALARM_QUEUES):
        assert queue.name == f"twin.alarms.{shard}"
        assert queue.extra_arguments == {"x-single-active-consumer": True}
        assert all(int(key.split(".")[1]) % ALARM_SHARDS == shard for key in queue.routing_keys)
