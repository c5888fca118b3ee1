"""Run a service's aiohttp app as a process: serve until SIGINT/SIGTERM (exit 0), or until one of
its background loops stops (exit 1, so that the orchestrator restarts the process)."""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

from twinbill_common.background import BACKGROUND
from twinbill_common.logging import get_logger

log = get_logger(__name__)
EXIT_LOOP_STOPPED = 1


async def serve(app: web.Application, *, host: str, port: int) -> int:
    """Start the app (its lifespan), serve HTTP, and return the process exit status."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    background = app.get(BACKGROUND)
    try:
        await web.TCPSite(runner, host, port).start()
        log.info("serving", host=host, port=port)
        waits = [asyncio.ensure_future(stop.wait())]
        if background is not None:
            waits.append(asyncio.ensure_future(background.failed.wait()))
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiter in pending:
            waiter.cancel()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await runner.cleanup()
    if background is not None and background.failure is not None:
        log.error("exiting: a background task stopped", reason=background.failure,
                  exit_status=EXIT_LOOP_STOPPED)
        return EXIT_LOOP_STOPPED
    return 0


def run_service(app: web.Application, *, host: str, port: int) -> None:
    """Serve `app` in a new event loop; exit non-zero if a background loop stopped."""
    status = asyncio.run(serve(app, host=host, port=port))
    if status:
        raise SystemExit(status)
