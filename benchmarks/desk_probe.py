"""The desk (``python -m bot``) with counters of its database work, for
:mod:`benchmarks.relay_throughput` ``--count``.

    python -m benchmarks.desk_probe [bot arguments]

It runs the bot unchanged, with SQLAlchemy event hooks and a wrapper around aiosqlite's hand-off
to its worker thread. Each statement, transaction, savepoint and thread round trip is counted
under the part of the desk that caused it: ``intake`` (the poller, from a polled batch to its
commit), ``sender`` (its steps apart: ``sender: claim`` ...), ``scheduler``, ``replayer`` or
``other``; so is the main thread's CPU (each callback the event loop runs, charged to the part
of its task). ``SIGUSR1`` writes the counters so far to the file named by ``BENCH_PROBE_OUT``
(and so does the exit), so the benchmark can take the difference over its burst. The hooks
cost CPU: the figures of a counted run are not the throughput of the desk.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import os
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from functools import wraps
from typing import Any

PART: contextvars.ContextVar[str] = contextvars.ContextVar("bench_part", default="other")
COUNTS: dict[str, Counter[str]] = {}
_TABLE = re.compile(r'(?:FROM|INTO|UPDATE)\s+"?(\w+)', re.IGNORECASE)


def count(key: str, n: int = 1) -> None:
    COUNTS.setdefault(PART.get(), Counter())[key] += n


def statement_kind(sql: str) -> str:
    """``SELECT tickets``, ``INSERT deliveries``, ``BEGIN IMMEDIATE``, ``SAVEPOINT``..."""
    words = sql.split(None, 2)
    verb = words[0].upper() if words else "?"
    if verb in {"SAVEPOINT", "RELEASE", "ROLLBACK", "PRAGMA"}:
        return verb
    if verb == "BEGIN":
        return " ".join(words[:2]).upper()
    match = _TABLE.search(sql)
    return f"{verb} {match.group(1)}" if match else verb


def in_part(
    part: str, method: Callable[..., Coroutine[Any, Any, Any]]
) -> Callable[..., Coroutine[Any, Any, Any]]:
    @wraps(method)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = PART.set(part)
        try:
            return await method(*args, **kwargs)
        finally:
            PART.reset(token)

    return wrapper


def install() -> None:
    import aiosqlite.core
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.sql.compiler import SQLCompiler

    from bot.db.repositories import DeliveryRepo
    from bot.delivery.sender import Sender
    from bot.failures import Replayer
    from bot.polling import Poller
    from bot.services.scheduler import Scheduler

    @event.listens_for(Engine, "before_cursor_execute")
    def _statement(*args: Any) -> None:
        count("statements")
        count("sql: " + statement_kind(args[2]))

    @event.listens_for(Engine, "commit")
    def _commit(_connection: Any) -> None:
        count("commits")

    @event.listens_for(Engine, "rollback")
    def _rollback(_connection: Any) -> None:
        count("rollbacks")

    @event.listens_for(Engine, "savepoint")
    def _savepoint(*_args: Any) -> None:
        count("savepoints")

    # A statement compiled again rather than taken from SQLAlchemy's cache shows here.
    compiler_init: Any = SQLCompiler.__init__

    def _compiler_init(self: Any, *args: Any, **kwargs: Any) -> None:
        compiler_init(self, *args, **kwargs)
        count("compiled: " + statement_kind(self.string))

    SQLCompiler.__init__ = _compiler_init  # type: ignore[method-assign]

    original: Any = aiosqlite.core.Connection._execute

    async def _execute(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        count("thread round trips")
        return await original(self, fn, *args, **kwargs)

    aiosqlite.core.Connection._execute = _execute  # type: ignore[method-assign]

    # aiogram runs a filter or handler that is not a coroutine function (a magic filter's
    # ``resolve``, say) in the default thread pool: a thread hop of its own each time.
    to_thread: Any = asyncio.to_thread

    async def _to_thread(function: Any, *args: Any, **kwargs: Any) -> Any:
        count("asyncio.to_thread calls")
        return await to_thread(function, *args, **kwargs)

    asyncio.to_thread = _to_thread  # type: ignore[assignment]

    # The main thread's CPU per part: every callback the event loop runs (a task's step, the
    # greenlets SQLAlchemy runs inside it included) is charged to the part in its context.
    run_handle: Any = asyncio.events.Handle._run

    def _run(self: Any) -> None:
        started = time.thread_time_ns()
        try:
            run_handle(self)
        finally:
            part = self._context.get(PART, "other")
            spent = (time.thread_time_ns() - started) // 1000
            COUNTS.setdefault(part, Counter())["main thread CPU, µs"] += spent

    asyncio.events.Handle._run = _run  # type: ignore[method-assign]

    # Garbage collections: a full one over a heap of ORM objects and parsed updates can cost
    # more than the work that triggered it; charged to the part that was running.
    collecting: list[int] = []

    def _gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collecting.append(time.thread_time_ns())
        elif collecting:
            spent = (time.thread_time_ns() - collecting.pop()) // 1000
            count(f"gc: generation {info['generation']}")
            count("gc CPU, µs", spent)

    gc.callbacks.append(_gc)

    handle_batch = Poller._handle_batch

    async def _batch(self: Poller, updates: list[Any]) -> None:
        token = PART.set("intake")
        try:
            count("batches")
            count("updates", len(updates))
            await handle_batch(self, updates)
        finally:
            PART.reset(token)

    Poller._handle_batch = _batch  # type: ignore[method-assign]
    Sender.run = in_part("sender", Sender.run)  # type: ignore[method-assign]
    claim = Sender._claim

    async def _claim(self: Sender, chosen: Any, *args: Any) -> Any:
        count("heads claimed", len(chosen))
        return await claim(self, chosen, *args)

    Sender._claim = _claim  # type: ignore[method-assign]
    # The sender's steps apart, each with its own figures: where its work per message goes.
    DeliveryRepo.due_heads = in_part("sender: due heads", DeliveryRepo.due_heads)  # type: ignore[method-assign]
    for step in ("_weigh_queues", "_claim", "_join", "_deliver", "_record_outcomes"):
        name = "sender: " + step.strip("_").replace("_", " ")
        setattr(Sender, step, in_part(name, getattr(Sender, step)))
    Scheduler.run = in_part("scheduler", Scheduler.run)  # type: ignore[method-assign]
    Replayer.run = in_part("replayer", Replayer.run)  # type: ignore[method-assign]

    out = os.environ.get("BENCH_PROBE_OUT")
    if out:

        def dump(*_args: Any) -> None:
            snapshot = {part: dict(counter) for part, counter in COUNTS.items()}
            with open(out + ".tmp", "w") as file:
                json.dump(snapshot, file)
            os.replace(out + ".tmp", out)

        signal.signal(signal.SIGUSR1, dump)
        import atexit

        atexit.register(dump)


def main() -> int:
    install()
    from bot.__main__ import main as bot_main

    return bot_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
