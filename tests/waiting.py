"""Tests wait for conditions, never for fixed sleeps: one helper for all of them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def eventually(
    condition: Callable[[], Awaitable[object]] | Callable[[], object],
    what: str = "condition not met in time",
    within: float = 10.0,
) -> None:
    """Return as soon as ``condition()`` (sync or async) is true; fail with ``what`` after
    ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(what)
        await asyncio.sleep(0.02)
