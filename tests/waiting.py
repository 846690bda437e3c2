"""Tests wait for conditions, never for fixed sleeps: the helpers for all of them.

``eventually`` is for asyncio tests; ``eventually_sync`` for tests that run in a plain thread
(the sandbox's HTTP API, the browser). Both return what the condition found, so a test can
wait for a value ("the card's text once it shows X") and use it.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")

# How often a condition is looked at again: short, as the waits are for work on this machine.
POLL = 0.02

Describe = str | Callable[[], str]


def _message(what: Describe) -> str:
    # A callable is asked at the end, so the failure shows the state it gave up on.
    return what() if callable(what) else what


@overload
async def eventually(
    condition: Callable[[], Awaitable[T]],
    what: Describe = ...,
    within: float = ...,
    every: float = ...,
) -> T: ...
@overload
async def eventually(
    condition: Callable[[], T], what: Describe = ..., within: float = ..., every: float = ...
) -> T: ...
async def eventually(
    condition: Callable[[], object],
    what: Describe = "condition not met in time",
    within: float = 10.0,
    every: float = POLL,
) -> object:
    """Return the first true value of ``condition()`` (sync or async), looked at every
    ``every`` seconds; fail with ``what`` after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(_message(what))
        await asyncio.sleep(every)


def eventually_sync(
    condition: Callable[[], T],
    what: Describe = "condition not met in time",
    within: float = 10.0,
    every: float = POLL,
) -> T:
    """:func:`eventually` for a test without an event loop (it blocks its thread)."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(_message(what))
        time.sleep(every)
