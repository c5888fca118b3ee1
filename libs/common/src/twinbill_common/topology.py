"""The bus layout of ARCHITECTURE.md in one place: exchanges, work queues, bindings, dead letters.

Every name is prefixed by the settings' bus namespace, so a test or a second stack on the same
broker never sees another's messages. Declaring is idempotent: a publisher declares the queues it
relies on too, so a message it publishes is never unroutable because its consumer has not started.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TELEMETRY = "telemetry"
COMMANDS = "commands"
REGISTRY = "registry"
BILLING = "billing"
DEAD_LETTER = "dlx"

EXCHANGES = (TELEMETRY, COMMANDS, REGISTRY, BILLING)


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

# Queues services declare beyond the work queues: journals that keep `mandatory` publishes
# routable, a service's own event queue, parked dead letters. Listed here so a namespace can be
# deleted whole.
AUXILIARY_QUEUES = (
    "twin.registry.journal",
    "scheduler.registry",
    "scheduler.registry.dlq",
    "billing.issued.journal",
    "billing.jobs.parked",
    "twin.alarms",
    "twin.alarms.dlq",
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
