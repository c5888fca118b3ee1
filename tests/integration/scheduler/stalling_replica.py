"""A scheduler replica that stalls for ten minutes after each claim it wins, before publishing:
fault injection for the exactly-once test, kept out of the service's settings.

    python -m tests.integration.scheduler.stalling_replica   (settings from SCHEDULER_*)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from twinbill_scheduler.__main__ import main
from twinbill_scheduler.domain.tasks import Claim, Fire
from twinbill_scheduler.store import TaskStore

STALL_SECONDS = 600.0
_claim = TaskStore.claim


async def claim_then_stall(self: TaskStore, claims: Sequence[Claim], *, replica: str) -> list[Fire]:
    """Claim as usual; when something was won, stall before the firing loop can publish it."""
    fires = await _claim(self, claims, replica=replica)
    if fires:
        await asyncio.sleep(STALL_SECONDS)
    return fires


if __name__ == "__main__":
    TaskStore.claim = claim_then_stall  # type: ignore[method-assign]  # the fault this replica injects
    main()
