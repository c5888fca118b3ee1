"""The bus as an AsyncAPI 3.0 document, generated from topology.py and schemas/: every exchange,
routing key, queue and message schema (`twinbill-asyncapi` prints it; docs/asyncapi.json is its
committed output, kept equal by tests/unit/common/test_asyncapi.py).

CHANNELS is the one table of who publishes what with which routing key: a new message type or
queue is added there, next to the model it carries.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from twinbill_common.schemas import (
    BillingJob,
    BillingJobFinished,
    BillIssued,
    CommandOutcome,
    MeasurementsAccepted,
    RegistryChanged,
    RunBilling,
    SetMeasurepoints,
)
from twinbill_common.schemas.billing import BillingChanged
from twinbill_common.topology import (
    ALARM_QUEUES,
    ALARM_SHARDS,
    AUXILIARY_QUEUES,
    BILLING,
    BILLING_JOBS,
    BILLING_RUNS,
    COMMANDS,
    DEAD_LETTER,
    EXCHANGES,
    INGEST_COMMANDS,
    REGISTRY,
    TELEMETRY,
    TELEMETRY_SLOTS,
    TWIN_BILLING_OUTCOMES,
    TWIN_COMMAND_OUTCOMES,
    TWIN_TELEMETRY,
    WORK_QUEUES,
    WorkQueue,
    queue_arguments,
)

REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Channel:
    """Messages of one type on one exchange under one routing key pattern."""

    name: str
    exchange: str
    routing_key: str  # `{pk}`-style parts are parameters
    message: type[BaseModel]
    producer: str
    queues: tuple[str, ...]  # the queues bound to it (a work queue, a journal, a service's own)
    consumers: tuple[str, ...]
    description: str


CHANNELS = (
    Channel("telemetry", TELEMETRY, "mp.{slot}.{productKey}.{deviceKey}", MeasurementsAccepted, "ingest",
            (TWIN_TELEMETRY.name, *(queue.name for queue in ALARM_QUEUES)), ("twin",),
            "Measure points a device reported and the ingest gateway acknowledged (seed 003). The slot is "
            f"crc32('{{productKey}}/{{deviceKey}}') mod {TELEMETRY_SLOTS}; the alarm shards twin.alarms.0-"
            f"{ALARM_SHARDS - 1} each bind every {ALARM_SHARDS}th slot and feed the twin's alarm rules."),
    Channel("commands", COMMANDS, "set.{productKey}.{deviceKey}", SetMeasurepoints, "twin",
            (INGEST_COMMANDS.name,), ("ingest",),
            "Reverse control: desired values the twin sends to a device through the ingest gateway."),
    Channel("commandOutcomes", COMMANDS, "outcome.{productKey}.{deviceKey}", CommandOutcome, "ingest",
            (TWIN_COMMAND_OUTCOMES.name,), ("twin",),
            "A device's answer to reverse control (set_reply: applied or refused with its code), or its "
            "expiry, recorded on the desired value and as an event."),
    Channel("registry", REGISTRY, "{entity}.{action}", RegistryChanged, "twin",
            ("twin.registry.journal", "scheduler.registry"), ("ingest", "scheduler", "billing"),
            "A registry entity was created, updated or deleted (published from the twin's outbox); "
            "the ingest gateway binds an exclusive queue of its own."),
    Channel("billingRuns", BILLING, "run.requested", RunBilling, "scheduler", (BILLING_RUNS.name,),
            ("billing",), "A billing task fired: bill this project's devices of this type for the period."),
    Channel("billingJobs", BILLING, "job.created", BillingJob, "billing", (BILLING_JOBS.name,), ("billing",),
            "One chunk of a run's devices, for any billing worker."),
    Channel("billingJobFinished", BILLING, "job.finished", BillingJobFinished, "billing",
            (TWIN_BILLING_OUTCOMES.name,), ("twin",),
            "A billing job's meters skipped, failed or estimated, made events by the twin."),
    Channel("billIssued", BILLING, "bill.issued", BillIssued, "billing", ("billing.issued.journal",), (),
            "A bill was issued (for anyone; the journal keeps it routable)."),
    Channel("billingChanged", BILLING, "changed.{entity}.{action}", BillingChanged, "billing",
            ("billing.changed.journal",), (), "An audited change (a void, a credit note); message id = entry id."),
)


def _parameters(routing_key: str) -> dict[str, Any]:
    names = [part[1:-1] for part in routing_key.split(".") if part.startswith("{")]
    return {name: {"description": f"the {name} part of the routing key"} for name in names}


def _queue(name: str) -> dict[str, Any]:
    work: WorkQueue | None = next((q for q in WORK_QUEUES if q.name == name), None)
    if work is None:
        return {"name": name, "durable": True, "exclusive": False, "autoDelete": False}
    return {"name": name, "durable": True, "exclusive": False, "autoDelete": False,
            "x-arguments": {k: v for k, v in queue_arguments("", work).items() if k != "x-dead-letter-exchange"},
            "x-dead-letter-queue": f"{name}.dlq", "x-delivery-limit": work.delivery_limit}


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the bus (names without a namespace, as in production)."""
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for channel in CHANNELS:
        model = channel.message
        schema = model.model_json_schema(ref_template=REF, mode="serialization")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        messages[model.__name__] = {
            "name": model.__name__, "title": model.__name__, "summary": (model.__doc__ or "").strip().split("\n")[0],
            "contentType": "application/json",
            "payload": {"$ref": REF.format(model=model.__name__)},
            "bindings": {"amqp": {"messageType": model.__name__, "bindingVersion": "0.3.0"}},
        }
        channels[channel.name] = {
            "address": channel.routing_key,
            "description": channel.description,
            "parameters": _parameters(channel.routing_key),
            "messages": {model.__name__: {"$ref": f"#/components/messages/{model.__name__}"}},
            "bindings": {"amqp": {"is": "routingKey", "bindingVersion": "0.3.0", "exchange": {
                "name": channel.exchange, "type": "topic", "durable": True, "autoDelete": False, "vhost": "/"}}},
            "x-queues": [_queue(name) for name in channel.queues],
        }
        ref = {"$ref": f"#/channels/{channel.name}"}
        operations[f"{channel.producer}Publishes{channel.name[0].upper()}{channel.name[1:]}"] = {
            "action": "send", "channel": ref, "summary": f"{channel.producer} publishes (mandatory, confirmed)",
            "bindings": {"amqp": {"deliveryMode": 2, "mandatory": True, "bindingVersion": "0.3.0"}},
            "messages": [{"$ref": f"#/channels/{channel.name}/messages/{model.__name__}"}]}
        for consumer in channel.consumers:
            operations[f"{consumer}Consumes{channel.name[0].upper()}{channel.name[1:]}"] = {
                "action": "receive", "channel": ref, "summary": f"{consumer} consumes",
                "messages": [{"$ref": f"#/channels/{channel.name}/messages/{model.__name__}"}]}
    channels["deadLetters"] = {
        "address": "{queue}", "description": "Messages a consumer gave up on, with the reason in the "
        "x-twinbill-reason header, routed by the work queue's name to `<queue>.dlq` (twinbill-dlq).",
        "parameters": {"queue": {"enum": [q.name for q in WORK_QUEUES]}},
        "bindings": {"amqp": {"is": "routingKey", "bindingVersion": "0.3.0", "exchange": {
            "name": DEAD_LETTER, "type": "direct", "durable": True, "autoDelete": False, "vhost": "/"}}},
        "x-queues": [_queue(f"{q.name}.dlq") for q in WORK_QUEUES]
        + [_queue(q) for q in AUXILIARY_QUEUES if q.endswith((".dlq", ".parked"))],
    }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "twinbill bus", "version": "1",
                 "description": "RabbitMQ topic exchanges "
                 f"{', '.join(EXCHANGES)} and the dead-letter exchange {DEAD_LETTER}; every name is "
                 "prefixed by the stack's bus namespace (empty in production). Queues: "
                 f"{', '.join(q.name for q in WORK_QUEUES)} (quorum work queues) and "
                 f"{', '.join(AUXILIARY_QUEUES)}."},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": dict(sorted(schemas.items()))},
    }


def main() -> None:
    """`twinbill-asyncapi`: print the document."""
    sys.stdout.write(json.dumps(asyncapi_document(), indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
