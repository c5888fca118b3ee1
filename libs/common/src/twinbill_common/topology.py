"""The bus layout of ARCHITECTURE.md in one place: exchanges, work queues, bindings, dead letters.

Every name is prefixed by the settings' bus namespace, so a test or a second stack on the same
broker never sees another's messages. Declaring is idempotent: a publisher declares the queues it
relies on too, so a message it publishes is never unroutable because its consumer has not started.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

TELEMETRY = "telemetry"
COMMANDS = "commands"
REGISTRY = "registry"
BILLING = "billing"
DEAD_LETTER = "dlx"

EXCHANGES = (TELEMETRY, COMMANDS, REGISTRY, BILLING)

# Telemetry routing keys carry a slot of the publishing device: `mp.{slot}.{pk}.{dk}`, the slot a
# hash of the device's keys. A queue bound to `mp.#` sees every message; the alarm shards each bind
# a fixed share of the slots, so one device's messages always reach the same shard, in order.
TELEMETRY_SLOTS = 64
ALARM_SHARDS = 4  # divides TELEMETRY_SLOTS; changing it re-binds the shard queues (docs/architecture.md)


def telemetry_slot(product_key: str, device_key: str) -> int:
    """The slot of a device's telemetry (stable across processes and releases)."""
    return zlib.crc32(f"{product_key}/{device_key}".encode()) % TELEMETRY_SLOTS


def telemetry_key(product_key: str, device_key: str) -> str:
    """The routing key of a device's MeasurementsAccepted on the telemetry exchange."""
    return f"mp.{telemetry_slot(product_key, device_key)}.{product_key}.{device_key}"


@dataclass(frozen=True)
class WorkQueue:
    """A durable quorum queue bound to one exchange, with a delivery limit and a dead-letter queue."""

    name: str
    exchange: str
    routing_keys: tuple[str, ...]
    delivery_limit: int = 5
    extra_arguments: dict[str, object] = field(default_factory=dict)


TWIN_TELEMETRY = WorkQueue("twin.telemetry", TELEMETRY, ("mp.#",))
INGEST_COMMANDS = WorkQueue("ingest.commands", COMMANDS, ("set.#",))
BILLING_RUNS = WorkQueue("billing.runs", BILLING, ("run.requested",))
BILLING_JOBS = WorkQueue("billing.jobs", BILLING, ("job.created",))
# Devices' answers to commands (set_reply, or expiry), from the ingest gateway to the twin.
TWIN_COMMAND_OUTCOMES = WorkQueue("twin.command_outcomes", COMMANDS, ("outcome.#",))

# Meters a billing job skipped, failed or estimated, from billing to the twin's events.
TWIN_BILLING_OUTCOMES = WorkQueue("twin.billing_outcomes", BILLING, ("job.finished",))

WORK_QUEUES = (TWIN_TELEMETRY, INGEST_COMMANDS, BILLING_RUNS, BILLING_JOBS, TWIN_COMMAND_OUTCOMES,
               TWIN_BILLING_OUTCOMES)

# The alarm rules' shards: `twin.alarms.{n}`, each bound to every ALARM_SHARDS-th slot, with a
# single active consumer (one replica evaluates a shard at a time, in queue order; the others wait
# as standbys). Declared by the twin only where alarms run.
ALARM_QUEUES = tuple(
    WorkQueue(f"twin.alarms.{shard}", TELEMETRY,
              tuple(f"mp.{slot}.#" for slot in range(shard, TELEMETRY_SLOTS, ALARM_SHARDS)),
              extra_arguments={"x-single-active-consumer": True})
    for shard in range(ALARM_SHARDS))

# Queues services declare beyond the work queues: journals that keep `mandatory` publishes
# routable, a service's own event queue, parked dead letters. Listed here so a namespace can be
# deleted whole.
AUXILIARY_QUEUES = (
    "twin.registry.journal",
    "scheduler.registry",
    "scheduler.registry.dlq",
    "billing.issued.journal",
    "billing.jobs.parked",
    *(queue.name for queue in ALARM_QUEUES),
    *(f"{queue.name}.dlq" for queue in ALARM_QUEUES),
)


def named(namespace: str, name: str) -> str:
    """The broker-side name of an exchange or queue in a namespace."""
    return f"{namespace}{name}"


def queue_arguments(namespace: str, queue: WorkQueue) -> dict[str, object]:
    """Quorum queue, delivery limit, and at-least-once dead-lettering to `<queue>.dlq`."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": queue.delivery_limit,
        "x-dead-letter-exchange": named(namespace, DEAD_LETTER),
        "x-dead-letter-routing-key": named(namespace, queue.name),
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        **queue.extra_arguments,
    }
