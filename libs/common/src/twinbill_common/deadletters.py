"""Dead letters: why a message was dead-lettered, how many wait, and putting them back.

Every work queue dead-letters to `<queue>.dlq`: a consumer that gives up adds its reason in
`x-twinbill-reason` (Bus.dead_letter), and RabbitMQ adds `x-death` when the delivery limit runs
out. Nothing there is lost, but nothing there is billed or stored either, so:

- each service exports how many messages wait in the dead-letter queues of the queues it
  consumes, as `twinbill_dead_letter_messages{queue="<queue>.dlq"}` (deploy/prometheus/alerts.yml
  alerts on it);
- `twinbill-dlq` lists those queues, shows what is in one (reasons first), and replays it into
  its work queue once the cause is fixed. Every consumer is idempotent (message ids, unique keys),
  so a replayed message that was partly handled does no harm.

    twinbill-dlq [--amqp-url URL] [--namespace NS] list
    twinbill-dlq show twin.telemetry [--limit 5]      (also billing.jobs.parked)
    twinbill-dlq replay twin.telemetry [--limit N]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aio_pika.abc import AbstractIncomingMessage
from prometheus_client import CollectorRegistry, Gauge

from twinbill_common.bus import REASON_HEADER, Bus
from twinbill_common.errors import BusUnavailable
from twinbill_common.logging import configure_logging, get_logger
from twinbill_common.settings import BusToolSettings, load_settings
from twinbill_common.topology import AUXILIARY_QUEUES, WORK_QUEUES

log = get_logger(__name__)

# The queues that dead-letter to `<name>.dlq`: the work queues and the scheduler's event queue.
DEAD_LETTERED = (*(queue.name for queue in WORK_QUEUES),
                 *(name.removesuffix(".dlq") for name in AUXILIARY_QUEUES if name.endswith(".dlq")))
# Where billing parks dead letters that are not BillingJobs: shown, never replayed.
PARKED = tuple(name for name in AUXILIARY_QUEUES if name.endswith(".parked"))
HOLDING = (*(f"{name}.dlq" for name in DEAD_LETTERED), *PARKED)
REPLAYS_HEADER = "x-twinbill-replays"
LAST_REASON_HEADER = "x-twinbill-last-reason"
DEATH_REASONS = {
    "delivery_limit": "delivery limit exceeded",
    "rejected": "rejected by a consumer",
    "expired": "expired",
    "maxlen": "queue length limit",
}


def header_text(value: Any) -> str:
    """A header value as text (AMQP gives long strings as bytes)."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def death_reason(headers: Mapping[str, Any] | None) -> str:
    """Why a message was dead-lettered: our reason header, else what RabbitMQ recorded."""
    headers = headers or {}
    if headers.get(REASON_HEADER):
        return header_text(headers[REASON_HEADER])
    deaths = headers.get("x-death")
    death: Any = deaths[0] if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict) else {}
    code = header_text(headers.get("x-first-death-reason") or death.get("reason") or "")
    if not code:
        return "dead-lettered (no reason recorded)"
    reason = DEATH_REASONS.get(code, code)
    queue = header_text(headers.get("x-first-death-queue") or death.get("queue") or "")
    return f"{reason} ({code}{' in ' + queue if queue else ''})"


def work_queue_of(name: str) -> str:
    """The dead-lettered work queue a user means by `name` (`twin.telemetry` or its `.dlq`)."""
    if name in PARKED:
        raise ValueError(f"{name} holds messages that are no valid job: a replay would park them "
                         "again; `show` them, then fix and republish by hand")
    queue = name.removesuffix(".dlq")
    if queue not in DEAD_LETTERED:
        raise ValueError(f"unknown queue {name!r}: one of {', '.join(DEAD_LETTERED)}")
    return queue


def holding_queue_of(name: str) -> str:
    """The queue of dead letters a user means by `name` (a work queue, its `.dlq`, or a parking
    queue)."""
    if name in PARKED:
        return name
    return f"{work_queue_of(name)}.dlq"


def dead_letter_gauge(registry: CollectorRegistry) -> Gauge:
    """The gauge `watch_dead_letter_depth` keeps current, on a service's own registry."""
    return Gauge("twinbill_dead_letter_messages",
                 "Messages waiting in a dead-letter queue (inspect and replay with twinbill-dlq)",
                 labelnames=("queue",), registry=registry)


async def watch_dead_letter_depth(bus: Bus, queues: Sequence[str], gauge: Gauge, *,
                             interval: float = 15.0) -> None:
    """Set `gauge{queue}` to the depth of each of `queues` (full names, e.g. `x.dlq`), forever.

    A broker that does not answer leaves the last value and is asked again next tick."""
    while True:
        for queue in queues:
            try:
                gauge.labels(queue=queue).set(await bus.queue_depth(queue))
            except BusUnavailable as err:
                log.warning("dead-letter depth unavailable", queue=queue, error=str(err))
        await asyncio.sleep(interval)


async def watch_queue_depth(bus: Bus, queue: str, gauge: Gauge, *, interval: float = 15.0) -> None:
    """Set `gauge` to the ready messages of a work queue (full name), forever: a consumer's
    backlog. A broker that does not answer leaves the last value and is asked again next tick."""
    while True:
        try:
            gauge.set(await bus.queue_depth(queue))
        except BusUnavailable as err:
            log.warning("queue depth unavailable", queue=queue, error=str(err))
        await asyncio.sleep(interval)


@dataclass(frozen=True)
class DeadLetter:
    """One message as `show` prints it."""

    message_id: str
    kind: str
    reason: str
    replays: int
    body: bytes


def _dead_letter(raw: AbstractIncomingMessage) -> DeadLetter:
    headers = raw.headers or {}
    replays = headers.get(REPLAYS_HEADER, 0)
    return DeadLetter(message_id=raw.message_id or "", kind=header_text(headers.get("type", "")),
                      reason=death_reason(headers),
                      replays=replays if isinstance(replays, int) else 0, body=raw.body)


async def peek(bus: Bus, queue: str, *, limit: int) -> list[DeadLetter]:
    """Up to `limit` messages of the dead-letter (or parking) queue `queue`, left in place
    (fetched unacknowledged, then returned to the queue when the channel closes)."""
    await bus.queue_depth(queue)  # BusUnavailable, naming it, if there is no such queue
    channel = await bus.open_channel()
    try:
        dlq = await channel.get_queue(bus.name(queue), ensure=False)
        found = []
        for _ in range(limit):
            raw = await dlq.get(no_ack=False, fail=False)
            if raw is None:
                break
            found.append(_dead_letter(raw))
        return found
    finally:
        await channel.close()


async def replay(bus: Bus, queue: str, *, limit: int | None = None) -> int:
    """Move messages of `<queue>.dlq` back into `queue`; returns how many moved.

    Each one is published to the work queue with publisher confirms and only then acked on the
    dead-letter queue, so a failure leaves it where it was. At most the depth found at the start
    is moved: a message that dead-letters again while the replay runs waits for the next one.
    Its reason moves to `x-twinbill-last-reason` and `x-twinbill-replays` counts the replays.
    """
    dlq_name = f"{queue}.dlq"
    todo = await bus.queue_depth(dlq_name)
    if limit is not None:
        todo = min(todo, limit)
    channel = await bus.open_channel()
    moved = 0
    try:
        dlq = await channel.get_queue(bus.name(dlq_name), ensure=False)
        while moved < todo:
            raw = await dlq.get(no_ack=False, fail=False)
            if raw is None:
                break
            headers = dict(raw.headers or {})
            headers[LAST_REASON_HEADER] = death_reason(headers)[:1000]
            headers.pop(REASON_HEADER, None)
            replays = headers.get(REPLAYS_HEADER, 0)
            headers[REPLAYS_HEADER] = (replays if isinstance(replays, int) else 0) + 1
            try:
                await bus.publish_raw("", bus.name(queue), raw.body,
                                      message_id=raw.message_id or "", headers=headers)
            except BusUnavailable:
                await raw.nack(requeue=True)
                raise
            await raw.ack()
            moved += 1
    finally:
        await channel.close()
    log.info("dead letters replayed", queue=queue, moved=moved)
    return moved


async def _command(args: argparse.Namespace) -> int:
    bus = Bus(args.amqp_url, namespace=args.namespace)
    await bus.connect(declare=False)
    try:
        if args.command == "list":
            print(f"{'queue':<28} dead letters")
            for queue in HOLDING:
                try:
                    depth: int | str = await bus.queue_depth(queue)
                except BusUnavailable:
                    depth = "(not declared)"
                print(f"{queue:<28} {depth}")
        elif args.command == "show":
            letters = await peek(bus, holding_queue_of(args.queue), limit=args.limit)
            for letter in letters:
                body = letter.body[:args.body_bytes].decode(errors="replace")
                print(f"- {letter.message_id} {letter.kind} replays={letter.replays}\n"
                      f"  reason: {letter.reason}\n  body: {body}")
            print(f"{len(letters)} shown")
        else:
            moved = await replay(bus, work_queue_of(args.queue), limit=args.limit)
            print(f"{moved} replayed into {args.queue.removesuffix('.dlq')}")
    finally:
        await bus.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`twinbill-dlq`: list, show or replay dead letters."""
    settings = load_settings(BusToolSettings)  # TWINBILL_AMQP_URL, TWINBILL_BUS_NAMESPACE
    parser = argparse.ArgumentParser(prog="twinbill-dlq", description=__doc__.splitlines()[0])
    parser.add_argument("--amqp-url", default=settings.amqp_url.get_secret_value())
    parser.add_argument("--namespace", default=settings.bus_namespace,
                        help="the services' bus namespace (default: none)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="how many dead letters each dead-letter queue holds")
    show = commands.add_parser("show", help="the first messages of one dead-letter queue")
    show.add_argument("queue", help=f"one of {', '.join(DEAD_LETTERED + PARKED)}")
    show.add_argument("--limit", type=int, default=5)
    show.add_argument("--body-bytes", type=int, default=300)
    again = commands.add_parser("replay", help="move a dead-letter queue back into its work queue")
    again.add_argument("queue", help=f"one of {', '.join(DEAD_LETTERED)}")
    again.add_argument("--limit", type=int, default=None, help="at most this many (default: all)")
    args = parser.parse_args(argv)
    configure_logging(level="WARNING", service="twinbill-dlq")  # to stderr: stdout is the answer
    if getattr(args, "limit", 1) is not None and getattr(args, "limit", 1) < 1:
        parser.error("--limit must be at least 1")
    try:
        if args.command == "show":
            holding_queue_of(args.queue)
        elif args.command == "replay":
            work_queue_of(args.queue)
        return asyncio.run(_command(args))
    except ValueError as err:
        parser.error(str(err))
    except BusUnavailable as err:
        print(f"twinbill-dlq: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
