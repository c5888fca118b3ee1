"""A service's long-lived background loops (consumers, relays, watchers) in one TaskGroup.

A loop handles its own transient failures (the bus reconnects, stores are retried). One that
still ends, by an error or by returning, is a fault the process cannot repair in place: the
group stops the other loops, /readyz names the loop and the reason, the log says why, and
`run_service` (twinbill_common.service) ends the process with exit status 1 so the orchestrator
restarts it (docs/architecture.md, "Background loops").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from types import TracebackType
from typing import Any

from aiohttp import web

from twinbill_common.health import LIVENESS, READINESS, Check
from twinbill_common.logging import get_logger

log = get_logger(__name__)
Loop = Coroutine[Any, Any, None]
STOP_TIMEOUT_SECONDS = 10.0


class LoopStopped(Exception):  # it is a fact, not an error class of ours to catch
    """A long-lived loop returned; it must run for the life of the service."""


class BackgroundLoops:
    """Runs named loops in one TaskGroup of its own task; each loop is a readiness check.

    `async with loops:` starts the group, leaving cancels every loop and waits for them.
    `start()` may be called before or inside the `async with`. `failed` is set when a loop ends
    while the group is open; `failure` says which loop and why.
    """

    def __init__(self, checks: dict[str, Check] | None = None, *, group_check: str | None = None,
                 task_prefix: str = "", stop_timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """`group_check`: also a readiness check under this name for the group as a whole;
        `task_prefix`: the asyncio task of loop `name` is called `{task_prefix}{name}`;
        `stop_timeout`: how long `close` waits for the loops to end."""
        self._checks = checks if checks is not None else {}
        self._stop_timeout = stop_timeout
        self._task_prefix = task_prefix
        if group_check is not None:
            self._checks[group_check] = self._group_running
        self._pending: list[tuple[str, Loop]] = []
        self._group: asyncio.TaskGroup | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._opened = asyncio.Event()
        self._closing = False
        self._stopped: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.failed = asyncio.Event()
        self.failure: str | None = None

    def start(self, name: str, loop: Loop) -> None:
        """Run `loop` for the life of the group under `name` (its /readyz check)."""
        self._checks[name] = self._check(name)
        if self.failure is not None or self._closing:
            loop.close()  # the group is stopping: nothing more starts
            self._stopped.setdefault(name, f"not started: {self.failure or 'shutting down'}")
            return
        if self._group is None:
            self._pending.append((name, loop))
        else:
            self._tasks.add(self._group.create_task(self._run(name, loop), name=self._task_prefix + name))

    async def _group_running(self) -> None:
        if self.failure is not None:
            raise RuntimeError(f"background tasks stopped: {self.failure}")

    def _check(self, name: str) -> Check:
        async def still_running() -> None:
            if name in self._stopped:
                reason = self._stopped[name]
                raise RuntimeError(f"background task {name} stopped" + (f": {reason}" if reason else ""))

        return still_running

    async def _run(self, name: str, loop: Loop) -> None:
        try:
            await loop
        except asyncio.CancelledError:
            if self._closing:
                raise
            if self.failure is None:  # cancelled from outside the group: it stopped all the same
                self._fail(name, "", None)
            else:  # the group stops the others after a failure
                self._stopped.setdefault(name, f"stopped with {self.failure}")
            raise
        except Exception as err:
            self._fail(name, f"{type(err).__name__}: {err}", err)
            raise
        self._fail(name, "returned", None)
        raise LoopStopped(name)

    def _fail(self, name: str, reason: str, error: BaseException | None) -> None:
        self._stopped[name] = reason
        if self._closing:
            return
        if self.failure is None:
            self.failure = f"{name}: {reason or 'cancelled'}"
        log.error("background task stopped", task=name, reason=reason or "cancelled", exc_info=error)
        self.failed.set()

    async def _supervise(self) -> None:
        with contextlib.suppress(BaseExceptionGroup):  # each failure was recorded and logged
            async with asyncio.TaskGroup() as group:
                self._group = group
                for name, loop in self._pending:
                    self._tasks.add(group.create_task(self._run(name, loop), name=self._task_prefix + name))
                self._pending.clear()
                self._opened.set()
                await asyncio.Future()  # until cancelled (closing) or a loop fails
        self._opened.set()

    async def __aenter__(self) -> BackgroundLoops:
        self._supervisor = asyncio.create_task(self._supervise(), name="background-loops")
        await self._opened.wait()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Cancel every loop and wait until all have ended, at most `stop_timeout` seconds.

        A loop still running half a second after its cancellation is cancelled again: a
        cancellation can be lost inside a library (Python 3.11's wait_for drops one that arrives
        as the awaited call completes; see twinbill_ingest.mqtt), and a loop that catches the
        error its library made of it would go on forever. Past the timeout the shutdown goes on
        without it, logged.
        """
        self._closing = True
        for _, loop in self._pending:
            loop.close()
        self._pending.clear()
        if self._supervisor is None:
            return
        self._supervisor.cancel()
        deadline = asyncio.get_running_loop().time() + self._stop_timeout
        while not self._supervisor.done():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                still = sorted(task.get_name() for task in self._tasks if not task.done())
                log.error("background tasks did not stop; shutting down without them", tasks=still,
                          timeout=self._stop_timeout)
                return
            await asyncio.wait({self._supervisor}, timeout=min(0.5, remaining))
            for task in self._tasks:
                if not task.done():
                    task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._supervisor


BACKGROUND = web.AppKey("background_loops", BackgroundLoops)


def add_background_loops(app: web.Application, *, group_check: str | None = None,
                         task_prefix: str = "") -> BackgroundLoops:
    """The app's background loops, watched by its /readyz (add_health_routes first); the
    lifespan runs them with `async with app[BACKGROUND]:`."""
    loops = BackgroundLoops(app[READINESS], group_check=group_check, task_prefix=task_prefix)
    app[BACKGROUND] = loops
    app[LIVENESS].append(lambda: loops.failure)  # /healthz fails from the moment a loop stops
    return loops
