"""The bus's AsyncAPI document: valid AsyncAPI 3.0, every exchange, queue and message type in it,
and docs/asyncapi.json is what the generator writes today."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema_rs

from twinbill_common.asyncapi import asyncapi_document
from twinbill_common.schemas.base import Message
from twinbill_common.topology import AUXILIARY_QUEUES, DEAD_LETTER, EXCHANGES, WORK_QUEUES

ROOT = Path(__file__).resolve().parents[3]
# the AsyncAPI initiative's own schema, installed from the npm registry by `make install`
SPEC = ROOT / "node_modules/@asyncapi/specs/schemas/3.0.0-without-$id.json"


def test_the_document_is_valid_asyncapi_3() -> None:
    """No error against the specification's JSON schema."""
    validator = jsonschema_rs.validator_for(json.loads(SPEC.read_text()))
    errors = [f"{list(e.instance_path)}: {e.message[:200]}" for e in validator.iter_errors(asyncapi_document())]
    assert errors == []


def test_every_exchange_queue_and_message_is_described() -> None:
    """Each exchange of the topology, each work queue with its dead-letter queue, each auxiliary
    queue and each message class appear, with the message's JSON schema."""
    document = asyncapi_document()
    channels = document["channels"].values()
    exchanges = {c["bindings"]["amqp"]["exchange"]["name"] for c in channels}
    assert exchanges == {*EXCHANGES, DEAD_LETTER}
    queues = {q["name"] for c in channels for q in c["x-queues"]}
    expected = {q.name for q in WORK_QUEUES} | {f"{q.name}.dlq" for q in WORK_QUEUES} | set(AUXILIARY_QUEUES)
    assert not expected - queues
    models = {cls.__name__ for cls in _subclasses(Message)}
    assert models <= set(document["components"]["messages"]), models - set(document["components"]["messages"])
    assert document["components"]["schemas"]["MeasurementsAccepted"]["properties"]["points"]


def test_the_committed_document_is_current() -> None:
    """docs/asyncapi.json equals the generator's output (`twinbill-asyncapi > docs/asyncapi.json`)."""
    committed = json.loads((ROOT / "docs/asyncapi.json").read_text())
    assert committed == json.loads(json.dumps(asyncapi_document()))


def _subclasses(cls: type[Message]) -> set[type[Message]]:
    found: set[type[Message]] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found
