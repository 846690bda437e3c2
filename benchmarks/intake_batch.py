"""The desk's intake alone: polled batches of follow-ups through the poller's batch transaction,
in this process, with no Bot API and no sender. What :mod:`benchmarks.relay_throughput` cannot
separate: the time from a polled update to its committed outbox row.

    python -m benchmarks.intake_batch [--preset many|few] [--repeat 3] [--count]
                                      [--profile PATH] [--no-aiogram-fsm]

A fresh SQLite database gets one open ticket per customer (as in relay_throughput); the updates
are private texts, 100 to a batch (as getUpdates hands them out), fed to
``Poller._handle_batch`` of a dispatcher built by ``bot.app.create_dispatcher``. Printed: CPU
and wall time per update (the best of ``--repeat`` runs, each on a fresh database), and with
``--count`` the statements, transactions and thread hand-offs per update
(:mod:`benchmarks.desk_probe`). ``--no-aiogram-fsm`` builds the dispatcher with
``disable_fsm=True`` (the unit of work then resolves the dialog state itself).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PRESETS = {"many": (200, 5), "few": (3, 334)}
STAFF_CHAT_ID = -1001000000001
FIRST_CUSTOMER_ID = 2_000_001
BATCH = 100


def seed(url: str, customers: int) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from bot.db.models import Ticket, User
    from bot.domain.tickets import Kind, Priority, Status

    now = datetime.now(UTC)
    engine = create_engine(url.replace("+aiosqlite", ""))
    try:
        with Session(engine) as session, session.begin():
            for i in range(customers):
                customer = FIRST_CUSTOMER_ID + i
                session.add(
                    User(
                        id=customer,
                        first_name=f"Customer {i}",
                        username=f"customer_{i}",
                        language_code="en",
                        created_at=now,
                        updated_at=now,
                    )
                )
                session.add(
                    Ticket(
                        number=i + 1,
                        intake_key=f"benchmark-{customer}",
                        customer_id=customer,
                        account_number=f"{10_000_000 + i}",
                        topic="Cannot log in",
                        kind=Kind.INCIDENT,
                        description="The login page shows an error after the update.",
                        priority=Priority.P2,
                        status=Status.IN_PROGRESS,
                        assignee_id=1,
                        line=1,
                        locale="en",
                        created_at=now,
                        updated_at=now,
                        first_response_at=now,
                        reopened_count=0,
                        staff_chat_id=STAFF_CHAT_ID,
                        card_message_id=1000 + i,
                    )
                )
    finally:
        engine.dispose()


async def run(
    customers: int, messages: int, *, count: bool, profile: Path | None, aiogram_fsm: bool
) -> dict[str, Any]:
    from aiogram import Bot, Dispatcher
    from aiogram.types import Update

    from bot.app import create_desk_config, create_dispatcher, create_i18n, create_services
    from bot.clock import SystemClock
    from bot.config import load_settings
    from bot.db.engine import Database, migrate
    from bot.delivery.limiter import Limits, RateLimiter
    from bot.delivery.outcomes import Outcomes
    from bot.delivery.sender import Sender
    from bot.polling import Poller

    workdir = tempfile.TemporaryDirectory(prefix="intake-bench-")
    url = f"sqlite+aiosqlite:///{Path(workdir.name) / 'desk.sqlite3'}"
    os.environ.update(
        BOT_TOKEN="42:TEST",
        STAFF_CHAT_ID=str(STAFF_CHAT_ID),
        DATABASE_URL=url,
        TIMEZONE="Europe/Moscow",
        SUPPORT_HOURS="00:00-24:00",
        DEFAULT_LOCALE="en",
    )
    settings = load_settings(_env_file=None)
    await asyncio.to_thread(migrate, url)
    await asyncio.to_thread(seed, url, customers + 1)
    if not aiogram_fsm:
        init = Dispatcher.__init__

        def without_fsm(self: Dispatcher, *args: Any, **kwargs: Any) -> None:
            init(self, *args, **{**kwargs, "disable_fsm": True})

        Dispatcher.__init__ = without_fsm  # type: ignore[method-assign]
    clock = SystemClock()
    database = Database(url)
    bot = Bot(settings.bot_token.get_secret_value())
    i18n = create_i18n(settings)
    desk = create_desk_config(settings)
    services = create_services(settings, database, clock, i18n, desk, bot)
    sender = Sender(  # never started: it only receives the poller's wake-ups
        bot=bot,
        session_factory=database.writer,
        clock=clock,
        limiter=RateLimiter(Limits(10**6, 10**6, 10**6)),
        outcomes=services.desk_outcomes.register(Outcomes()),
    )
    dispatcher = create_dispatcher(
        settings, database=database, clock=clock, sender=sender, i18n=i18n, services=services
    )
    poller = Poller(bot, dispatcher, batch_sessions=database.writer)
    update_ids = iter(range(1, 10**9))

    def follow_up(customer: int, number: int) -> Update:
        update_id = next(update_ids)
        user = {
            "id": FIRST_CUSTOMER_ID + customer,
            "first_name": f"Customer {customer}",
            "username": f"customer_{customer}",  # as seeded: no profile change to write
        }
        return Update.model_validate(
            {
                "update_id": update_id,
                "message": {
                    "message_id": 10_000 + update_id,
                    "date": int(time.time()),
                    "chat": {**user, "type": "private"},
                    "from": {**user, "is_bot": False, "language_code": "en"},
                    "text": f"Any news on my request? Still no access, ref {customer}:{number}",
                },
            },
            context={"bot": bot},
        )

    try:
        await poller._handle_batch([follow_up(customers, 0)])  # warm-up: a customer of its own
        updates = [follow_up(c, n) for n in range(messages) for c in range(customers)]
        gc.collect()
        gc.freeze()  # as the desk does once started (bot/app.py)
        counts: dict[str, dict[str, int]] = {}
        if count:
            from benchmarks import desk_probe

            desk_probe.COUNTS.clear()
        profiler = cProfile.Profile() if profile is not None else None
        cpu, wall = time.process_time(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        for start in range(0, len(updates), BATCH):
            await poller._handle_batch(updates[start : start + BATCH])
        if profiler is not None and profile is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if count:
            from benchmarks import desk_probe

            counts = {part: dict(c) for part, c in desk_probe.COUNTS.items()}
        return {"updates": len(updates), "cpu_s": cpu, "wall_s": wall, "counts": counts}
    finally:
        await bot.session.close()
        await database.dispose()
        workdir.cleanup()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.intake_batch", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--preset", choices=list(PRESETS), default="many")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best is shown")
    parser.add_argument("--count", action="store_true", help="count statements (slows it)")
    parser.add_argument("--profile", type=Path, help="cProfile stats of the last run here")
    parser.add_argument(
        "--no-aiogram-fsm", action="store_true", help="dispatcher with disable_fsm=True"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    customers, messages = PRESETS[args.preset]
    if args.count:
        from benchmarks import desk_probe

        desk_probe.install()
    runs = [
        asyncio.run(
            run(
                customers,
                messages,
                count=args.count,
                profile=args.profile,
                aiogram_fsm=not args.no_aiogram_fsm,
            )
        )
        for _ in range(args.repeat)
    ]
    best = min(runs, key=lambda r: r["cpu_s"])
    n = best["updates"]
    print(
        f"{customers} customers x {messages} texts = {n} updates in batches of {BATCH}: "
        f"CPU {best['cpu_s'] * 1000 / n:.2f} ms/update, wall {best['wall_s'] * 1000 / n:.2f} "
        f"ms/update (best of {len(runs)}: "
        + ", ".join(f"{r['cpu_s'] * 1000 / n:.2f}" for r in runs)
        + ")"
    )
    for part, counts in best["counts"].items():
        print(f"  {part}, per update:")
        for key, value in sorted(counts.items(), key=lambda kv: -kv[1]):
            print(f"    {key:<36} {value / n:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
