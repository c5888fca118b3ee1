"""The short fault campaign (issue 17) inside `make test`: a private stack (its own PostgreSQL,
3-node RabbitMQ cluster, Mosquitto, nx-27017), small load, one test per fault, each asserting
every pass criterion of the full campaign (`make faults`), then one test over the whole run.

Quick by pace, not by proving less: the instances start once for the module and at once, each
fault starts 0.5-2 s into steady load and lasts seconds (QUICK), recovery is polled, and the
simulator waits 12 s for a reply instead of 30 (after a kill -9 of the ingest gateway the
requests it had in flight are never answered: the devices send them again after that wait)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from twinbill_faults.campaign import Campaign
from twinbill_faults.faults import QUICK, SHORT_RECOVERY, SHORT_REPLY_TIMEOUT, partition
from twinbill_faults.infra import RABBIT_BIN
from twinbill_faults.stack import Options, Stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (a tmpfs for the time-series disk, PostgreSQL run as its own user)"
    for tool in ("mosquitto", "runuser", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not (RABBIT_BIN / "rabbitmq-server").exists() or not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        return "rabbitmq-server or PostgreSQL server binaries are not installed"
    return None


@pytest.fixture(scope="module")
async def campaign(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Campaign]:
    """The private stack under load, warmed up; stopped at the end whatever happened."""
    if (why := _missing()) is not None:
        pytest.skip(why)
    stack = Stack.create(Options(workdir=tmp_path_factory.mktemp("faults"), gateways=2, meters=6, rate=60.0,
                                 keep=True, pace=QUICK, reply_timeout=SHORT_REPLY_TIMEOUT))
    try:
        await stack.start()
        campaign = Campaign(stack, repeat=1, only=[], seed=17, recover_limit=SHORT_RECOVERY)
        await campaign.warm_up()
        yield campaign
    finally:
        await stack.stop()


@pytest.mark.parametrize("fault", [
    "rabbit-node-kill-ingest",
    "postgres-restart-twin-writes",
    # Not here (the full campaign and `--short` have it): mosquitto-restart-ingest, whose seam
    # (the gateway subscribing again, devices resending) tests/integration/ingest/test_reconnect.py
    # and test_simulator_relogin.py cover against a real Mosquitto restart.
    "kill-ingest",  # issue 17 defect 4: sessions restored, the simulator logs in again
    # Not here either: disk-full. At this small load the twin's write path (since the hour arrays
    # are sealed, not rewritten per batch) may not need new space within the fault's 14 s, so
    # PostgreSQL stores everything and nothing is refused: the step then fails for want of a full
    # disk (one fresh-clone run of two). The full campaign keeps it at its load; the refusal path
    # itself is tested deterministically in tests/integration (class-53 errors -> ingest 500).
])
async def test_fault_loses_nothing_and_recovers_by_itself(campaign: Campaign, fault: str) -> None:
    """Every point acknowledged around the fault is stored once with its value, bills and fires in
    its window are complete and single, readiness showed the outage, and the platform recovered
    without a manual step."""
    result = await campaign.step(fault, 1, campaign.fault(fault))
    assert result.ok, result.line()


async def test_a_service_cut_off_from_rabbitmq_is_not_ready_while_it_lasts(campaign: Campaign) -> None:
    """Issue 17: the ingest gateway's link to the cluster drops everything for 8 s (the full
    campaign: 30 s, each bus service); its /readyz says so within seconds (a round trip to the
    broker) and is ready again after, with nothing acknowledged lost."""
    result = await campaign.step("partition", 1, partition("ingest"))
    assert result.ok, result.line()


async def test_whole_short_run_is_exact(campaign: Campaign) -> None:
    """Over the whole run: every acknowledged point stored exactly once, every meter-period due
    billed exactly once, every fire time claimed once; at least one billing run had meter-periods
    due (so that the billing criterion is not met by having nothing to bill)."""
    await campaign.await_due_bills()
    result = await campaign.overall()
    assert result.points.acked > 0, "no load reached the platform"
    assert result.bills.due > 0, f"no meter-period came due during the run: {result.line()}"
    assert result.ok, result.line()
