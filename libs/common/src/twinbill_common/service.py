"""A service's entry point, the same in every service: settings -> logging -> app -> run.

The app is served until SIGINT/SIGTERM (exit 0), or until one of its background loops stops
(exit 1, so that the orchestrator restarts the process)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import TypeVar

from aiohttp import web

from twinbill_common.access import runner_options
from twinbill_common.background import BACKGROUND
from twinbill_common.logging import configure_logging, get_logger
from twinbill_common.memdebug import start_from_environment
from twinbill_common.settings import CommonSettings, EnvironmentSettings, load_settings

S = TypeVar("S", bound=CommonSettings)
log = get_logger(__name__)
EXIT_LOOP_STOPPED = 1


async def serve_app(app: web.Application, *, host: str, port: int, access_log: bool = True) -> int:
    """Start the app (its lifespan), serve HTTP, and return the process exit status. With
    `access_log`, each request writes one line to the log (twinbill_common.access)."""
    runner = web.AppRunner(app, handle_signals=False, **runner_options(enabled=access_log))
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


def run_service(app: web.Application, *, host: str, port: int, access_log: bool = True,
                loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None) -> None:
    """Serve `app` in a new event loop (asyncio's, or one from `loop_factory`); exit non-zero if
    a background loop stopped."""
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        status = runner.run(serve_app(app, host=host, port=port, access_log=access_log))
    if status:
        raise SystemExit(status)


def warn_development_defaults(settings: EnvironmentSettings) -> None:
    """In development, name each setting still at its development default (production refuses
    them in load_settings)."""
    defaults = settings.development_defaults()
    if defaults:
        log.warning("development defaults in use: this process must not face a real network",
                    env=settings.env, settings=defaults)


def serve(settings_class: type[S], create_app: Callable[[S], web.Application], *, service: str,
          loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None) -> None:
    """Build the settings from the environment (exit 2 listing every problem), configure logging,
    and run the app on the configured host and port (run_service, in a loop from `loop_factory`
    if given)."""
    settings = load_settings(settings_class)
    configure_logging(level=settings.log_level, json=settings.log_json, service=service)
    warn_development_defaults(settings)
    start_from_environment(service)  # off unless TWINBILL_MEMDEBUG is set (the soak's diagnosis)
    run_service(create_app(settings), host=settings.http_host, port=settings.http_port,
                access_log=settings.access_log, loop_factory=loop_factory)
