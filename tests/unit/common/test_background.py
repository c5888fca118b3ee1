"""Background loops: one that ends (by an error or by returning) stops the others, names itself in
/readyz, and ends the service process with a non-zero status and the reason in the log."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap

from twinbill_common.background import BackgroundLoops
from twinbill_common.health import Check


async def test_a_loop_that_returns_is_a_failure_and_stops_the_others() -> None:
    checks: dict[str, Check] = {}
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Future()
        finally:
            cancelled.set()

    async def returns() -> None:
        return None

    loops = BackgroundLoops(checks)
    async with loops:
        loops.start("relay", forever())
        loops.start("consumer", returns())
        await asyncio.wait_for(loops.failed.wait(), timeout=10)
        await asyncio.wait_for(cancelled.wait(), timeout=10)
    assert loops.failure == "consumer: returned"
    assert set(checks) == {"relay", "consumer"}


async def test_closing_cancels_loops_without_a_failure() -> None:
    loops = BackgroundLoops()
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Future()

    async with loops:
        loops.start("relay", forever())
        await asyncio.wait_for(started.wait(), timeout=10)
    assert loops.failure is None
    assert not loops.failed.is_set()


SERVICE = textwrap.dedent("""
    import asyncio, sys
    from aiohttp import web
    from twinbill_common.background import add_background_loops
    from twinbill_common.health import add_health_routes
    from twinbill_common.logging import configure_logging
    from twinbill_common.metrics import new_registry
    from twinbill_common.service import run_service

    configure_logging(level="INFO", json=True, service="probe")
    app = web.Application()
    add_health_routes(app, registry=new_registry())
    background = add_background_loops(app)

    async def consumer():
        await asyncio.sleep(0.2)
        raise ConnectionError("channel closed by the broker")

    async def lifespan(app):
        async with background:
            background.start("telemetry_consumer", consumer())
            yield

    app.cleanup_ctx.append(lifespan)
    run_service(app, host="127.0.0.1", port=int(sys.argv[1]))
""")


def test_the_process_exits_non_zero_when_a_loop_dies() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = subprocess.run([sys.executable, "-c", SERVICE, str(port)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert "telemetry_consumer" in output
    assert "channel closed by the broker" in output
    assert "exiting: a background task stopped" in output


async def test_closing_cancels_again_a_loop_that_swallowed_its_cancellation() -> None:
    loops = BackgroundLoops()
    swallowed = asyncio.Event()
    started = asyncio.Event()

    async def stubborn() -> None:
        started.set()
        try:
            await asyncio.Future()
        except asyncio.CancelledError:  # as a library that turned it into its own error would
            swallowed.set()
        await asyncio.Future()  # the second cancellation ends it

    async with loops:
        loops.start("depth", stubborn())
        await asyncio.wait_for(started.wait(), timeout=10)
    assert swallowed.is_set()
    assert loops.failure is None
