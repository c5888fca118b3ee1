"""Waiting on a condition with a timeout, never a bare sleep (shared by the integration tests)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

import pytest


async def wait_until(check: Callable[[], Awaitable[bool] | bool], *, timeout: float,
                     what: str) -> None:
    """Poll `check` (sync or async) until it holds, failing the test after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        held = check()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)
