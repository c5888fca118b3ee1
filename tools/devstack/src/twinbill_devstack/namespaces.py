"""Deleting a test's or benchmark's bus namespace: its work queues, dead-letter queues, auxiliary
queues and exchanges. Tests and benches each run in a namespace of their own on a shared broker,
and quorum queues left behind hold file handles on it until it can no longer accept connections.
Production code never deletes broker objects, so this lives with the development tools."""

from __future__ import annotations

from collections.abc import Sequence

import aio_pika

from twinbill_common.topology import AUXILIARY_QUEUES, DEAD_LETTER, EXCHANGES, WORK_QUEUES, named


async def delete_namespace(url: str, namespace: str, *, extra_queues: Sequence[str] = ()) -> None:
    """Delete every queue and exchange the platform declares in `namespace` (plus `extra_queues`)."""
    if not namespace:
        raise ValueError("refusing to delete the production (empty) namespace")
    queues = [q.name for q in WORK_QUEUES] + [f"{q.name}.dlq" for q in WORK_QUEUES]
    queues += [*AUXILIARY_QUEUES, *extra_queues]
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        for name in queues:
            await channel.queue_delete(named(namespace, name))
        for exchange in (*EXCHANGES, DEAD_LETTER):
            await channel.exchange_delete(named(namespace, exchange))
