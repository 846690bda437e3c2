"""Runs the real bot (``python -m bot``) as a process against the emulated Bot API."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.emulator import FakeTelegram
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
STAFF_CHAT_ID = -1001000000001


class BotProcess:
    """One bot process; ``kill()`` is a kill -9, ``start()`` brings it back on the same DB."""

    def __init__(self, fake: FakeTelegram, workdir: Path, env: Mapping[str, str]) -> None:
        self.fake = fake
        self.workdir = workdir
        self.env = dict(env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "bot.log"
        self.starts = 0
        # What the bot logs once it takes updates: it polls, or it listens for webhooks.
        self.ready = "webhook mode: listening" if self.env.get("WEBHOOK_URL") else "Run polling"

    async def start(self, wait_polling: bool = True) -> None:
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {self.starts} =====\n".encode())
            log.flush()
            # The child keeps its own copy of the descriptor.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if wait_polling:
            await self.wait_polling()

    async def wait_polling(self, timeout: float = 30) -> None:
        """Wait until this start of the process has begun polling (it logs so)."""
        marker = f"===== start {self.starts} ====="

        def polling() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"bot exited with {self.proc.returncode}:\n{self.log()}")
            return self.ready in self.log().rpartition(marker)[2]

        await eventually(
            polling, lambda: f"bot did not start polling in {timeout}s:\n{self.log()}", timeout
        )

    def kill(self) -> None:
        """kill -9: no shutdown, no flush, nothing."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    async def stop(self) -> int | None:
        if self.proc is None:
            return None
        proc = self.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await eventually(lambda: proc.poll() is not None, "no exit on SIGTERM", 10)
            except AssertionError:
                proc.kill()
        return proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- what the desk has recorded: read-only looks at the bot's database ------------------------

    @property
    def database(self) -> Path:
        return Path(self.env["DATABASE_URL"].removeprefix("sqlite+aiosqlite:///"))

    def query(self, statement: str, *params: object) -> list[tuple[Any, ...]]:
        """Rows of the bot's database as they are now (``?`` placeholders on both databases);
        SQLite is opened read-only, so a test only looks."""
        url = self.env["DATABASE_URL"]
        if url.startswith("postgresql"):
            return query_postgres(url, statement, *params)
        uri = f"file:{self.database}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
            return db.execute(statement, params).fetchall()

    def in_hand(self) -> list[str]:
        """What the desk has still to finish, in words; empty once it has finished everything
        it was given. Telegram keeps an update until the bot confirms it, which the bot does
        only once the update is handled and committed; a delivery stays ``pending`` while it
        is held back, due, claimed or in flight, until its outcome is recorded; a failed
        update an operator retried stays ``retried`` until the bot has replayed it."""
        left = [f"update {u['update_id']} not confirmed" for u in self.fake.updates]
        left += [
            f"delivery {row[0]} ({row[2]}) to {row[1]}: {row[3]} attempt(s), last error {row[4]}"
            for row in self.query(
                "SELECT id, chat_id, purpose, attempts, error FROM deliveries"
                " WHERE status = 'pending' ORDER BY id"
            )
        ]
        left += [
            f"failed update #{row[0]} waits for its replay"
            for row in self.query("SELECT id FROM failed_updates WHERE status = 'retried'")
        ]
        return left

    async def settled(self, within: float = 20) -> None:
        """Wait until the desk has finished with all it was given (see :meth:`in_hand`): what
        it sends for it has reached Telegram and is recorded, so a reply to it finds its
        ticket, a kill loses and repeats nothing, and nothing more is on its way. Timers
        (reminders, SLA alerts, summaries) fire with time and are not covered."""
        await eventually(
            lambda: not self.in_hand(),
            lambda: f"the desk did not settle within {within}s: {self.in_hand()}",
            within,
        )

    async def expect_silence(self, *chat_ids: int) -> None:
        """The bot sends these chats nothing more (from this call on) for what it has been
        given: proved by waiting until it has settled, rather than by listening for a while."""
        before = {chat_id: len(self._sent_to(chat_id)) for chat_id in chat_ids}
        await self.settled()
        for chat_id, count in before.items():
            new = self._sent_to(chat_id)[count:]
            assert not new, f"expected silence in chat {chat_id}, but the bot sent: " + "; ".join(
                repr(self.fake.text_of(m) or "(media)") for m in new
            )

    def _sent_to(self, chat_id: int) -> list[dict[str, Any]]:
        """Every message the bot sent to the chat, deleted ones too, in order."""
        state = self.fake.chats.get(chat_id)
        if state is None:
            return []
        stored = (state.messages.get(i) or state.deleted.get(i) for i in state.bot_ids)
        return [message.data for message in stored if message is not None]


def as_utc(value: str | datetime) -> datetime:
    """A timestamp column as :meth:`BotProcess.query` reads it (SQLite gives text, PostgreSQL
    a naive datetime; both UTC)."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC)


def query_postgres(url: str, statement: str, *params: object) -> list[tuple[Any, ...]]:
    """One statement on the bot's PostgreSQL database, from synchronous test code (asyncpg,
    on a loop of its own in a thread: the test's loop is busy awaiting this)."""
    import asyncpg

    counter = itertools.count(1)
    numbered = re.sub(r"\?", lambda _: f"${next(counter)}", statement)

    async def run() -> list[tuple[Any, ...]]:
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return [tuple(row) for row in await connection.fetch(numbered, *params)]
        finally:
            await connection.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result(timeout=30)


def bot_env(fake: FakeTelegram, workdir: Path, **overrides: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BOT_", "STAFF_", "DATABASE_", "TELEGRAM_", "SUPPORT_"))
    }
    assert fake.url is not None
    env.update(
        {
            "BOT_TOKEN": fake.token,
            "STAFF_CHAT_ID": str(STAFF_CHAT_ID),
            "TELEGRAM_API_URL": fake.url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'support.sqlite3'}",
            "TIMEZONE": "Europe/Moscow",
            "SUPPORT_HOURS": "00:00-24:00",
            "DEFAULT_LOCALE": "ru",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            # The emulator does not enforce Telegram's flood limits unless a test asks it to
            # (tests/e2e/test_burst.py, which keeps the bot's own limits at Telegram's): the
            # group's even pace of one message every 3 s, and a private chat's 1.2 s, would only
            # slow the other tests down (and race their timers of a few seconds).
            "DELIVERY_GROUP_PER_MINUTE": "600",
            "DELIVERY_PRIVATE_PER_SECOND": "100",
            # The last second of the day: a managers' test that does not ask for the daily
            # summary never gets it first (started after 21:00, the default, it would).
            "SUMMARY_TIME": "23:59:59",
            # The desk as it ships, whatever modules this venv has installed (README
            # "Modules"); tests/e2e/test_modules.py chooses its own.
            "ENABLED_MODULES": "none",
        }
    )
    env.update(overrides)
    return env
