"""Storage on a real SQLite file: migrations, ticket numbers, update log, dialog state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import StorageKey
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import delete, func, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.clock import ShiftedClock
from bot.db.dialog_storage import DatabaseStorage
from bot.db.engine import create_engine, create_session_factory, migrate
from bot.db.models import Base, DialogState, Ticket, User
from bot.db.repositories import TicketRepo, UpdateLog, UserRepo
from bot.domain.tickets import Kind, Priority, Status

BOT_ID = 123456
NOW = datetime(2025, 6, 11, 10, 0, tzinfo=UTC)


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = sqlite_url(tmp_path / "data" / "support.sqlite3")
    migrate(url)  # synchronous: runs its own event loop, so from a sync fixture
    return url


@pytest_asyncio.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_url)
    yield eng
    await eng.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(engine)


async def add_user(session: AsyncSession, user_id: int = 1001) -> User:
    return await UserRepo(session).upsert(
        user_id=user_id,
        first_name="Alice",
        last_name=None,
        username="alice",
        language_code="en",
        now=NOW,
    )


def new_ticket(key: str, customer_id: int = 1001, **fields: Any) -> Ticket:
    values: dict[str, Any] = {
        "intake_key": key,
        "customer_id": customer_id,
        "account_number": "12345678",
        "topic": "No internet",
        "kind": Kind.INCIDENT,
        "description": "Since this morning nothing loads.",
        "priority": Priority.P2,
        "status": Status.NEW,
        "locale": "en",
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(fields)
    return Ticket(**values)


# ---------------------------------------------------------------- migrations


def test_migrate_creates_the_file_and_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "support.sqlite3"
    migrate(sqlite_url(path))
    assert path.exists()


def test_migrate_twice_is_harmless(db_url: str) -> None:
    migrate(db_url)
    migrate(db_url)


async def test_migrate_from_a_running_event_loop_in_a_thread(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "threaded.sqlite3")
    await asyncio.to_thread(migrate, url)
    eng = create_engine(url)
    try:
        async with eng.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await eng.dispose()
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


async def test_the_migrated_schema_equals_the_models(engine: AsyncEngine) -> None:
    def diff(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with engine.connect() as conn:
        differences = await conn.run_sync(diff)
    assert differences == []


async def test_the_database_runs_in_wal_mode_with_foreign_keys(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1


# ---------------------------------------------------------------- ticket numbers


async def test_ticket_numbers_are_unique_and_never_reused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        await add_user(session)
        numbers = [(await TicketRepo(session).add(new_ticket(f"k{i}"))).number for i in range(3)]
    assert numbers == [1, 2, 3]

    async with sessions() as session, session.begin():
        await session.execute(delete(Ticket).where(Ticket.number == 3))

    async with sessions() as session, session.begin():
        fourth = await TicketRepo(session).add(new_ticket("k4"))
    assert fourth.number == 4

    async with sessions() as session:
        stored = (await session.execute(select(Ticket.number).order_by(Ticket.number))).scalars()
        assert list(stored) == [1, 2, 4]


async def test_ticket_numbers_survive_a_restart(db_url: str) -> None:
    first = create_engine(db_url)
    try:
        async with create_session_factory(first)() as session, session.begin():
            await add_user(session)
            for i in range(2):
                await TicketRepo(session).add(new_ticket(f"a{i}"))
            await session.execute(delete(Ticket).where(Ticket.number == 2))
    finally:
        await first.dispose()
    second = create_engine(db_url)
    try:
        async with create_session_factory(second)() as session, session.begin():
            ticket = await TicketRepo(session).add(new_ticket("b0"))
        assert ticket.number == 3
    finally:
        await second.dispose()


async def test_one_intake_key_registers_one_ticket(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        await add_user(session)
        await TicketRepo(session).add(new_ticket("same"))
    with pytest.raises(IntegrityError):
        async with sessions() as session, session.begin():
            await TicketRepo(session).add(new_ticket("same"))
    async with sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Ticket))).scalar() == 1
        assert (await TicketRepo(session).by_intake_key("same")) is not None


async def test_a_ticket_needs_a_known_customer(sessions: async_sessionmaker[AsyncSession]) -> None:
    with pytest.raises(IntegrityError):
        async with sessions() as session, session.begin():
            await TicketRepo(session).add(new_ticket("orphan", customer_id=999))


async def test_times_come_back_aware_utc(sessions: async_sessionmaker[AsyncSession]) -> None:
    moscow_time = datetime(2025, 6, 11, 13, 0, tzinfo=ZoneInfo("Europe/Moscow"))  # 10:00 UTC
    async with sessions() as session, session.begin():
        await add_user(session)
        ticket = await TicketRepo(session).add(new_ticket("t", created_at=moscow_time))
    async with sessions() as session:
        stored = await TicketRepo(session).get(ticket.number)
        assert stored is not None
        assert stored.created_at == datetime(2025, 6, 11, 10, 0, tzinfo=UTC)
        assert stored.created_at.tzinfo is not None
        assert stored.created_at.utcoffset() == timedelta(0)
        assert stored.status == Status.NEW
        assert stored.kind == Kind.INCIDENT
        assert stored.priority == Priority.P2


async def test_naive_datetimes_are_refused(sessions: async_sessionmaker[AsyncSession]) -> None:
    with pytest.raises(Exception, match="naive"):
        async with sessions() as session, session.begin():
            await UserRepo(session).upsert(
                user_id=5,
                first_name="N",
                last_name=None,
                username=None,
                language_code=None,
                now=datetime(2025, 1, 1),
            )


# ---------------------------------------------------------------- update log


async def test_update_log_first_time_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        log = UpdateLog(session)
        assert await log.first_time(700_000_001, NOW) is True
        assert await log.first_time(700_000_001, NOW) is False
        assert await log.first_time(700_000_002, NOW) is True
    async with sessions() as session, session.begin():
        # Committed: a redelivery after a restart is still recognised.
        assert await UpdateLog(session).first_time(700_000_001, NOW) is False
        assert await UpdateLog(session).first_time(700_000_002, NOW) is False


async def test_update_log_rolled_back_update_counts_as_new(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        assert await UpdateLog(session).first_time(42, NOW) is True
        await session.rollback()
    async with sessions() as session, session.begin():
        assert await UpdateLog(session).first_time(42, NOW) is True


async def test_update_log_forgets_old_entries(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        await UpdateLog(session).first_time(1, NOW - timedelta(days=2))
        await UpdateLog(session).first_time(2, NOW)
    async with sessions() as session, session.begin():
        await UpdateLog(session).forget_before(NOW - timedelta(days=1))
    async with sessions() as session, session.begin():
        assert await UpdateLog(session).first_time(1, NOW) is True
        assert await UpdateLog(session).first_time(2, NOW) is False


# ---------------------------------------------------------------- dialog storage


class Intake(StatesGroup):
    topic = State()
    description = State()


def key(user_id: int = 1001, chat_id: int | None = None) -> StorageKey:
    return StorageKey(bot_id=BOT_ID, chat_id=chat_id or user_id, user_id=user_id)


async def test_dialog_state_and_data_round_trip(sessions: async_sessionmaker[AsyncSession]) -> None:
    storage = DatabaseStorage(sessions, ShiftedClock())
    k = key()
    assert await storage.get_state(k) is None
    assert await storage.get_data(k) == {}

    await storage.set_state(k, Intake.topic)
    assert await storage.get_state(k) == "Intake:topic"
    await storage.set_data(k, {"kind": "incident", "topic": "Нет интернета", "photos": ["a", "b"]})
    assert await storage.get_state(k) == "Intake:topic"  # data does not touch the state
    await storage.set_state(k, "Intake:description")
    assert await storage.get_data(k) == {
        "kind": "incident",
        "topic": "Нет интернета",
        "photos": ["a", "b"],
    }  # the state does not touch the data
    assert await storage.get_state(k) == "Intake:description"

    assert await storage.update_data(k, {"account": "1234"}) == {
        "kind": "incident",
        "topic": "Нет интернета",
        "photos": ["a", "b"],
        "account": "1234",
    }
    data = await storage.get_data(k)
    data["mutated"] = True  # a copy: changing it does not change the stored data
    assert "mutated" not in await storage.get_data(k)


async def test_dialog_keys_are_separate(sessions: async_sessionmaker[AsyncSession]) -> None:
    storage = DatabaseStorage(sessions, ShiftedClock())
    await storage.set_state(key(1), Intake.topic)
    await storage.set_data(key(1), {"who": 1})
    await storage.set_data(key(2), {"who": 2})
    group_key = key(1, chat_id=-1001234567890)
    assert await storage.get_state(key(2)) is None
    assert await storage.get_data(key(2)) == {"who": 2}
    assert await storage.get_state(group_key) is None
    assert await storage.get_data(group_key) == {}


async def test_clearing_the_dialog_removes_the_row(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    storage = DatabaseStorage(sessions, ShiftedClock())
    k = key()
    await storage.set_state(k, Intake.topic)
    await storage.set_data(k, {"a": 1})
    await storage.set_state(k, None)
    assert await storage.get_state(k) is None
    assert await storage.get_data(k) == {"a": 1}
    await storage.set_data(k, {})
    assert await storage.get_data(k) == {}
    async with sessions() as session:
        count = (await session.execute(select(func.count()).select_from(DialogState))).scalar()
    assert count == 0


async def test_dialog_survives_a_restart(db_url: str) -> None:
    first = create_engine(db_url)
    try:
        storage = DatabaseStorage(create_session_factory(first), ShiftedClock())
        await storage.set_state(key(), Intake.description)
        await storage.set_data(key(), {"topic": "No internet", "nested": {"n": [1, 2]}})
        await storage.close()
    finally:
        await first.dispose()

    second = create_engine(db_url)
    try:
        storage = DatabaseStorage(create_session_factory(second), ShiftedClock())
        assert await storage.get_state(key()) == "Intake:description"
        assert await storage.get_data(key()) == {"topic": "No internet", "nested": {"n": [1, 2]}}
    finally:
        await second.dispose()
