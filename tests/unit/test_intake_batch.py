"""The poller's batch on a real SQLite file (and on PostgreSQL), through a real aiogram
dispatcher: read ahead, without a savepoint per update, each update once; and the dialog step
read in the update's transaction when the dispatcher's own FSM middleware is off."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import pytest_asyncio
from aiogram import Bot, Dispatcher, Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import Message, Update
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import ShiftedClock
from bot.db.dialog_storage import DatabaseStorage
from bot.db.engine import Database, migrate
from bot.db.models import ProcessedUpdate
from bot.middlewares.database import UnitOfWorkMiddleware
from bot.middlewares.user import UserMiddleware
from bot.polling import Poller


class Sender:
    def wake(self) -> None:
        pass


class Desk:
    """A dispatcher wired as the desk's (storage, unit of work, user), with a handler that
    counts and records what it sees."""

    def __init__(self, database: Database, *, aiogram_fsm: bool = True) -> None:
        self.database = database
        clock = ShiftedClock()
        self.dispatcher = Dispatcher(
            storage=DatabaseStorage(database.writer, clock, database.reader),
            disable_fsm=not aiogram_fsm,
        )
        self.dispatcher.update.outer_middleware(
            UnitOfWorkMiddleware(database.writer, clock, Sender(), pause=0)  # type: ignore[arg-type]
        )
        self.dispatcher.update.outer_middleware(UserMiddleware(clock))
        self.calls: list[tuple[str | None, str | None]] = []
        router = Router(name="test")

        @router.message(StateFilter("Talk:second"))
        async def second(message: Message, state: FSMContext, raw_state: str | None) -> None:
            self.calls.append((message.text, raw_state))
            await state.clear()

        @router.message()
        async def first(message: Message, state: FSMContext, raw_state: str | None) -> None:
            self.calls.append((message.text, raw_state))
            await state.set_state("Talk:second")

        self.dispatcher.include_router(router)
        self.bot = Bot("42:TEST")

    def poller(self) -> Poller:
        return Poller(self.bot, self.dispatcher, batch_sessions=self.database.writer)

    async def marks(self) -> int:
        async with self.database.reader() as session:
            return int(await session.scalar(select(func.count()).select_from(ProcessedUpdate)))


def message(update_id: int, text: str, user_id: int = 1001) -> Update:
    return Update.model_validate(
        {
            "update_id": update_id,
            "message": {
                "message_id": update_id * 10,
                "date": 1764666000,
                "chat": {"id": user_id, "type": "private", "first_name": "Alice"},
                "from": {"id": user_id, "is_bot": False, "first_name": "Alice"},
                "text": text,
            },
        }
    )


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]).split()[0].upper())

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


@pytest.fixture
def url(backend_url: str) -> str:
    url = backend_url  # an SQLite file, then PostgreSQL (tests/dbserver.py)
    migrate(url)  # synchronous: runs its own event loop, so from a sync fixture
    return url


@pytest_asyncio.fixture
async def database(url: str) -> AsyncIterator[Database]:
    database = Database(url)
    yield database
    await database.dispose()


@pytest.mark.parametrize("aiogram_fsm", [True, False])
async def test_a_batch_is_one_transaction_and_each_update_takes_effect_once(
    database: Database, aiogram_fsm: bool
) -> None:
    desk = Desk(database, aiogram_fsm=aiogram_fsm)
    batch = [message(1, "hello", 1001), message(2, "hi", 1002), message(3, "again", 1001)]
    with statements(database.engine) as written, statements(database.read_engine) as read:
        await desk.poller()._handle_batch(batch)
    # Each update saw the dialog step the one before it left, uncommitted yet.
    assert desk.calls == [("hello", None), ("hi", None), ("again", "Talk:second")]
    if database.single_writer:
        # The statements, on SQLite: the desk batches only there (its one writer; bot/app.py).
        # On PostgreSQL the reader is the writer's engine and asyncpg's BEGIN is implicit, so
        # there the batch is checked by what it does alone.
        assert written.count("BEGIN") == 1 and "SAVEPOINT" not in written
        # Read ahead: the marks, the users, the open tickets, the dialog rows; then writes only.
        assert written.count("SELECT") == 4
        # aiogram's FSM middleware reads the step first, on the reader; without it, nothing does.
        assert read.count("SELECT") == (3 if aiogram_fsm else 0)
    else:
        assert "SAVEPOINT" not in written
    assert await desk.marks() == 3
    # Telegram sends the batch again (say, its confirmation was lost): nothing happens twice.
    await desk.poller()._handle_batch(batch)
    assert len(desk.calls) == 3
    assert await desk.marks() == 3
    await desk.bot.session.close()


async def test_without_aiogram_s_fsm_the_chat_is_still_one_update_at_a_time(
    database: Database,
) -> None:
    desk = Desk(database, aiogram_fsm=False)
    isolation = desk.dispatcher.fsm.events_isolation
    held: list[bool] = []

    original = isolation.lock

    def lock(key: Any) -> Any:
        held.append(True)
        return original(key)

    isolation.lock = lock  # type: ignore[method-assign]
    await desk.dispatcher.feed_update(desk.bot, message(1, "hello"))
    await desk.dispatcher.feed_update(desk.bot, message(2, "again"))
    assert held == [True, True]
    assert desk.calls == [("hello", None), ("again", "Talk:second")]
    await desk.bot.session.close()
