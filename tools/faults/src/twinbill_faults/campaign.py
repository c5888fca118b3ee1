"""Run the faults one after another against the private stack, measure each, print one line per
fault and the pass criteria, and say whether everything held."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp

from twinbill_faults.checks import BillCheck, PointCheck, Stores, check_bills
from twinbill_faults.faults import Fault, Injected, catalogue
from twinbill_faults.platform import ready
from twinbill_faults.stack import Stack

CRITERIA = (
    "every point acknowledged with 200 is stored exactly once, with the acknowledged value",
    "every meter-period due (an acknowledged reading before the period and one inside it) is billed "
    "exactly once, and no two bills of a meter overlap",
    "every fire time is claimed once and published, none skipped",
    "no manual step: every service is ready again, and a point acknowledged after the repair is stored, "
    "within the fault's recovery limit (120 s; 180 s for the whole cluster)",
    "readiness (/readyz) of the services that lost a dependency says so while it is down, and is ready after",
)


@dataclass
class FaultResult:
    """One fault step's measurements and verdict."""

    name: str
    repetition: int
    injected: Injected
    points: PointCheck
    bills: BillCheck
    recovery: float | None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ack_gap: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        recovery = f"{self.recovery:.1f}s" if self.recovery is not None else "none"
        return (f"{'PASS' if self.ok else 'FAIL'} {self.name} #{self.repetition}: {self.injected.detail} | "
                f"points acked {self.points.acked} stored {self.points.stored} dup {self.points.duplicates} | "
                f"bills due {self.bills.due} made {self.bills.made} dup {self.bills.duplicates} | "
                f"fires {self.bills.fires} | no 200 for {self.ack_gap:.1f}s, recovered {recovery} after the repair"
                + "".join(f"\n     - {p}" for p in self.problems)
                + "".join(f"\n     . {n}" for n in self.notes))


def wall(stack_time: float) -> datetime:
    """A monotonic instant as a UTC datetime."""
    return datetime.now(UTC) - timedelta(seconds=time.monotonic() - stack_time)


class Campaign:
    """The fault steps and their verdicts."""

    def __init__(self, stack: Stack, *, repeat: int, only: list[str] | None, seed: int | None,
                 recover_limit: float | None = None) -> None:
        self.stack = stack
        self.repeat = repeat
        self.recover_limit = recover_limit
        self.rng = random.Random(seed)
        faults = catalogue()
        self.plan: list[tuple[str, int, Fault]] = [
            (name, rep + 1, variants[rep % len(variants)])
            for name, variants in faults.items() if only is None or name in only
            for rep in range(repeat)]
        if only is None:
            self.rng.shuffle(self.plan)
        self.results: list[FaultResult] = []
        self.stores = Stores(twin_dsn=stack.twin_dsn(), scheduler_dsn=stack.scheduler_dsn(),
                             mongo_url=stack.mongo.url, project_id=stack.seeded["project_id"])
        self.log = stack.options.log

    async def run(self) -> bool:
        """Warm up, then every planned fault; then the whole run's check. True when all passed."""
        self.log(f"campaign: {len(self.plan)} fault steps; pass criteria:")
        for criterion in CRITERIA:
            self.log(f"  - {criterion}")
        await self.warm_up()
        for name, repetition, fault in self.plan:
            await self.step(name, repetition, fault)
        await self.overall()
        return all(result.ok for result in self.results)

    def fault(self, name: str) -> Fault:
        """The first variant of a fault by name."""
        return catalogue()[name][0]

    async def warm_up(self) -> None:
        """Load flowing and stored before the first fault."""
        started = time.monotonic()
        while time.monotonic() - started < 120:
            if self.stack.ledger.acked_requests > 5:
                check = await self.stores.check_points(self.stack.ledger.between(started - 600, time.monotonic()))
                if check.stored > 0:
                    return
            await asyncio.sleep(1)
        raise RuntimeError(f"no acknowledged point got stored within 120 s; codes {dict(self.stack.ledger.codes)}")

    async def step(self, name: str, repetition: int, fault: Fault) -> FaultResult:
        """Inject one fault, wait for recovery, check; the result is printed and kept."""
        self.log(f"  .. {name} #{repetition}")
        try:
            result = await self._step(name, repetition, fault)
        except Exception as err:  # noqa: BLE001  # a fault that cannot even be carried out is a failed step
            now = time.monotonic()
            result = FaultResult(name, repetition, Injected(f"could not be carried out: {err!r}", now, now),
                                 PointCheck(), BillCheck(), None, [f"the step raised {err!r}"])
            await self._manual_recovery()
        self.results.append(result)
        self.log(result.line())
        return result

    async def _step(self, name: str, repetition: int, fault: Fault) -> FaultResult:
        begin = time.monotonic()
        problems: list[str] = []
        restarts = (len(self.stack.supervisor_restarts), self.stack.simulator_restarts)
        injected = await fault(self.stack, self.rng)
        if self.recover_limit is not None:
            injected.recover_within = min(injected.recover_within, self.recover_limit)
        problems += injected.problems
        codes = Counter(self.stack.ledger.codes)
        recovery = await self._recover(injected)
        if recovery is None:
            since = {code: n - codes[code] for code, n in self.stack.ledger.codes.items() if n > codes[code]}
            problems.append(f"no recovery within {injected.recover_within:.0f}s without a manual step; "
                            f"not ready: {await self._unready()}; device replies since the repair: {since}")
            await self._manual_recovery()
        for service in injected.expect_unready:
            if not self.stack.readiness.unready_between(service, injected.injected, injected.repaired + 1.0):
                problems.append(f"{service} /readyz never reported the outage while it lasted")
        end = time.monotonic()
        points, catch_up = await self.stores.wait_points(self.stack.ledger.between(begin, end), within=90)
        if not points.ok:
            problems.append(f"points: {points.missing} missing, {points.wrong_value} wrong value, "
                            f"{points.duplicates} duplicated (after waiting {catch_up:.0f}s) {points.examples}")
        bills = await self._bills(wall(begin), wall(end))
        if not bills.ok:
            problems.append(self._bill_problem(bills))
        notes = []
        if exited := self.stack.supervisor_restarts[restarts[0]:]:
            notes.append(f"services that exited by themselves and were started again (liveness restart): {exited}")
        if rebooted := self.stack.simulator_restarts - restarts[1]:
            notes.append(f"the simulator process exited {rebooted} time(s) (see logs/simulator.log) and was "
                         "started again, as a device reboots")
        gap = self.stack.ledger.longest_gap(injected.injected, injected.repaired + (recovery or 0.0))
        return FaultResult(name, repetition, injected, points, bills, recovery, problems, notes, gap)

    async def _recover(self, injected: Injected) -> float | None:
        """Seconds from the repair until every service is ready and a point acknowledged after the
        repair is stored; None when that does not happen within the fault's limit."""
        deadline = injected.repaired + injected.recover_within
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                answers = await asyncio.gather(*(ready(session, s) for s in self.stack.services.values()))
                fresh = self.stack.ledger.between(injected.repaired, time.monotonic())
                if all(ok for ok, _ in answers) and fresh:
                    sample = dict(list(fresh.items())[:50])
                    try:
                        if (await self.stores.check_points(sample)).missing == 0:
                            return time.monotonic() - injected.repaired
                    except Exception:  # noqa: BLE001, S110  # a store still coming back: ask again
                        pass
                await asyncio.sleep(0.5)
        return None

    async def _unready(self) -> dict[str, str]:
        async with aiohttp.ClientSession() as session:
            answers = {s.name: await ready(session, s) for s in self.stack.services.values()}
        return {name: why for name, (ok, why) in answers.items() if not ok}

    async def _manual_recovery(self) -> None:
        """What a person would do: restart every service that is not ready, or, when all say they
        are ready but nothing gets stored, every service (reported as a failure either way)."""
        names = list(await self._unready()) or list(self.stack.services)
        for name in names:
            service = self.stack.services[name]
            self.stack.held_down.add(name)
            self.log(f"  manual step: restarting {name}")
            await service.kill()
            await service.start()
            self.stack.held_down.discard(name)
        await asyncio.sleep(5)

    async def _bills(self, fired_from: datetime, fired_to: datetime, *, within: float = 60) -> BillCheck:
        """Bills and fires for the fires in the window, waiting for runs to finish."""
        deadline = time.monotonic() + within
        while True:
            result = BillCheck()
            try:
                fires = await self.stores.fires(self.stack.seeded["task_keys"])
                bills = await self.stores.bills()
                acked: dict[str, list[int]] = {}
                for device_key, ts in self.stack.ledger.acked:
                    acked.setdefault(device_key, []).append(ts)
                result = check_bills(fires=fires, bills=bills, acked_ts=acked,
                                     device_types=self.stack.seeded["device_types"],
                                     fired_from=fired_from, fired_to=fired_to)
            except Exception as err:  # noqa: BLE001  # a store not answering yet: ask again until the deadline
                result.examples = [f"check failed: {err!r}"]
                result.missing = -1
            if result.ok or time.monotonic() > deadline:
                return result
            await asyncio.sleep(2)

    @staticmethod
    def _bill_problem(bills: BillCheck) -> str:
        return (f"bills: {bills.missing} meter-periods not billed, {bills.duplicates} duplicated; fires: "
                f"{bills.fire_gaps} skipped, {bills.fires_unpublished} unpublished {bills.examples}")

    async def await_due_bills(self, *, within: float = 150.0) -> float:
        """Wait until at least one meter-period is due and billed over the whole run (a short run
        may end before its first due billing run: the bills criterion would then hold vacuously);
        returns the seconds waited."""
        started = time.monotonic()
        begin = started - (time.time() - self.stack.started_wall)
        while time.monotonic() - started < within:
            bills = await self._bills(wall(begin), wall(time.monotonic()) - timedelta(seconds=5), within=0)
            if bills.due > 0 and bills.made >= bills.due:
                break
            await asyncio.sleep(2)
        return time.monotonic() - started

    async def overall(self) -> FaultResult:
        """The whole run's check, printed and kept."""
        result = await self._overall()
        self.results.append(result)
        self.log(result.line())
        return result

    async def _overall(self) -> FaultResult:
        """The whole run: every acknowledged point and every fire since the start."""
        now = time.monotonic()
        begin = now - (time.time() - self.stack.started_wall)
        injected = Injected("whole campaign: all points, bills and fires", begin, now)
        problems: list[str] = []
        points, catch_up = await self.stores.wait_points(self.stack.ledger.between(0, now), within=180)
        if not points.ok:
            problems.append(f"points: {points.missing} missing, {points.wrong_value} wrong value, "
                            f"{points.duplicates} duplicated (after waiting {catch_up:.0f}s) {points.examples}")
        bills = await self._bills(wall(begin), wall(now) - timedelta(seconds=5))
        if not bills.ok:
            problems.append(self._bill_problem(bills))
        if self.stack.supervisor_restarts:
            self.log(f"  note: the supervisor restarted exited services {self.stack.supervisor_restarts}")
        return FaultResult("all", 1, injected, points, bills, 0.0, problems)
