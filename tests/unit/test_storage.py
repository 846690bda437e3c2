"""Storage on a real SQLite file and a real PostgreSQL (tests/dbserver.py): migrations, ticket
numbers, update log, dialog state. Each test that takes ``db_url`` runs on both backends."""

from __future__ import annotations

import asyncio
import dataclasses
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
from sqlalchemy import delete, event, func, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.clock import ShiftedClock
from bot.db.dialog_storage import DatabaseStorage
from bot.db.engine import create_engine, create_session_factory, migrate
from bot.db.models import Base, Delivery, DialogState, ProcessedUpdate, Ticket, User
from bot.db.repositories import (
    DeliveryRepo,
    DialogRepo,
    ReadAhead,
    TicketRepo,
    UpdateLog,
    UpdatesTakenError,
    UserRepo,
)
from bot.db.uow import transaction
from bot.domain.tickets import Kind, Priority, Status
from tests.waiting import eventually

BOT_ID = 123456
NOW = datetime(2025, 6, 11, 10, 0, tzinfo=UTC)


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def db_url(backend_url: str) -> str:
    migrate(backend_url)  # synchronous: runs its own event loop, so from a sync fixture
    return backend_url


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


def test_the_schema_head_is_alembics_head() -> None:
    """A database at SCHEMA_HEAD is not migrated at all: a new revision must move it."""
    from alembic.script import ScriptDirectory

    from bot.db.engine import MIGRATIONS_DIR, SCHEMA_HEAD, _alembic_config

    assert ScriptDirectory.from_config(_alembic_config("sqlite://")).get_heads() == [SCHEMA_HEAD]
    assert MIGRATIONS_DIR.is_dir()


def test_a_database_behind_the_head_is_migrated_to_it(tmp_path: Path) -> None:
    """The shortcut for a database at the head does not stop one that is behind."""
    import sqlite3

    from alembic import command

    from bot.db.engine import SCHEMA_HEAD, _alembic_config

    path = tmp_path / "old.sqlite3"
    migrate(sqlite_url(path))
    command.downgrade(_alembic_config(sqlite_url(path)), "-1")

    def state() -> tuple[list[str], list[str]]:
        with sqlite3.connect(path) as connection:
            versions = [v for (v,) in connection.execute("SELECT version_num FROM alembic_version")]
            columns = [row[1] for row in connection.execute("PRAGMA table_info(deliveries)")]
        return versions, columns

    versions, columns = state()
    assert versions != [SCHEMA_HEAD]
    assert "_sentinel" not in columns
    migrate(sqlite_url(path))
    versions, columns = state()
    assert versions == [SCHEMA_HEAD]
    assert "_sentinel" in columns


async def test_migrate_from_a_running_event_loop_in_a_thread(backend_url: str) -> None:
    url = backend_url
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


async def test_the_sqlite_database_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    # SQLite's own pragmas (PostgreSQL always checks foreign keys: see the next test).
    url = sqlite_url(tmp_path / "wal.sqlite3")
    await asyncio.to_thread(migrate, url)
    eng = create_engine(url)
    try:
        async with eng.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
    finally:
        await eng.dispose()


async def test_partial_indexes_are_partial(engine: AsyncEngine) -> None:
    """compare_metadata does not compare an index's WHERE: read it back from the database."""
    expected = {
        (table.name, index.name)
        for table in Base.metadata.sorted_tables
        for index in table.indexes
        if index.dialect_kwargs.get("sqlite_where") is not None
        or index.dialect_kwargs.get("postgresql_where") is not None
    }
    assert expected  # the SLA sweep's index at least

    def partial(connection: Any) -> set[tuple[str, str]]:
        found = set()
        if connection.dialect.name == "sqlite":
            rows = connection.exec_driver_sql(
                "SELECT tbl_name, name FROM sqlite_master WHERE type = 'index' AND sql LIKE '%WHERE%'"
            )
        else:
            rows = connection.exec_driver_sql(
                "SELECT tablename, indexname FROM pg_indexes WHERE indexdef LIKE '%WHERE%'"
            )
        for table, name in rows:
            found.add((table, name))
        return found

    async with engine.connect() as conn:
        assert await conn.run_sync(partial) == expected


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


async def test_ticket_numbers_are_unique_under_concurrent_registration(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Many registrations at once, each in its own transaction, some rolled back: every
    committed ticket has its own number, and a rolled-back one's number is not given again
    (gaps are fine, reuse is not)."""
    async with sessions() as session, session.begin():
        await add_user(session)

    class AbandonedError(Exception):
        pass

    async def register(i: int) -> int | None:
        try:
            async with sessions() as session, session.begin():
                ticket = await TicketRepo(session).add(new_ticket(f"c{i}"))
                await asyncio.sleep(0)  # let the others in while this one is open
                if i % 5 == 0:
                    raise AbandonedError
                return ticket.number
        except AbandonedError:
            return None

    got = await asyncio.gather(*(register(i) for i in range(30)))
    committed = [n for n in got if n is not None]
    assert len(committed) == 24
    assert len(set(committed)) == len(committed)
    async with sessions() as session:
        stored = list((await session.execute(select(Ticket.number))).scalars())
    assert sorted(stored) == sorted(committed)
    async with sessions() as session, session.begin():
        later = await TicketRepo(session).add(new_ticket("later"))
    assert later.number > max(committed)


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


# ---------------------------------------------------------------- a batch that reads ahead


class Statements:
    """The statements an engine runs while the block is open."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.seen: list[str] = []

    def _record(self, *args: Any) -> None:
        self.seen.append(args[2])

    def __enter__(self) -> list[str]:
        event.listen(self.engine.sync_engine, "before_cursor_execute", self._record)
        return self.seen

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine.sync_engine, "before_cursor_execute", self._record)


async def test_a_batch_reads_ahead_and_then_reads_nothing_again(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    storage = DatabaseStorage(sessions, ShiftedClock())
    await storage.set_state(key(1001), Intake.topic)
    async with sessions() as session, session.begin():
        await add_user(session, 1001)
        first = await TicketRepo(session).add(new_ticket("a", 1001))
        await TicketRepo(session).add(new_ticket("b", 1001, status=Status.CLOSED))
    async with transaction(sessions, savepoints=False) as batch:
        await batch.read_ahead(
            update_ids=[1, 2],
            user_ids=[1001, 1002],
            customer_ids=[1001, 1002],
            dialog_prefixes=[storage.prefix_of(key(1001)), storage.prefix_of(key(1002))],
        )
        bound = storage.bound(batch.session)
        with Statements(engine) as statements:
            user = await batch.users.get(1001)
            assert user is not None and user.first_name == "Alice"
            assert await batch.users.get(1002) is None
            assert [t.number for t in await TicketRepo(batch.session).open_for_customer(1001)] == [
                first.number
            ]
            assert await TicketRepo(batch.session).open_for_customer(1002) == []
            assert await bound.get_state(key(1001)) == "Intake:topic"
            waiting = dataclasses.replace(key(1002), destiny="waiting")
            assert await bound.get_data(waiting) == {}
            await bound.set_data(waiting, {"items": [1]})
            assert await bound.get_data(waiting) == {"items": [1]}
            await bound.set_state(key(1001), None)  # the row goes...
            assert await bound.get_state(key(1001)) is None
            assert await batch.updates.first_time(1, NOW) is True
            assert await batch.updates.first_time(1, NOW) is False
        assert statements == []  # every answer came from what was read ahead
        # Inside the batch every unit is the batch itself: no savepoint to roll back part of it.
        async with transaction(sessions, within=batch) as unit:
            assert unit is batch
        await batch.finish_read_ahead()
    async with sessions() as session:
        assert await DialogRepo(session).get("fsm:1001:1001:default") is None
        assert (await DialogRepo(session).get("fsm:1002:1002:waiting")) is not None
        assert await UpdateLog(session).first_time(1, NOW) is False  # marked at the end
        assert await UpdateLog(session).first_time(2, NOW) is True  # not handled: not marked


async def test_what_was_read_ahead_follows_the_batch_s_own_writes(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        await add_user(session, 1001)
        ticket = await TicketRepo(session).add(new_ticket("a", 1001))
    async with transaction(sessions, savepoints=False) as batch:
        await batch.read_ahead(update_ids=[], user_ids=[], customer_ids=[1001], dialog_prefixes=[])
        tickets = TicketRepo(batch.session)
        opened = await tickets.get(ticket.number)
        assert opened is not None
        opened.status = Status.CLOSED  # closed by an earlier update of the batch
        assert await tickets.open_for_customer(1001) == []
        new = await tickets.add(new_ticket("b", 1001))  # ... and a new one registered
        assert [t.number for t in await tickets.open_for_customer(1001)] == [new.number]
        # A user the batch did not read ahead is read as usual, and a new one is kept.
        await UserRepo(batch.session).read_ahead([1005])
        created = await add_user(batch.session, 1005)
        assert await batch.users.get(1005) is created


def relay(ticket_number: int, stream: str, text: str, **fields: Any) -> Delivery:
    values: dict[str, Any] = {
        "created_at": NOW,
        "chat_id": -100,
        "stream": stream,
        "rank": 5,
        "method": "SendMessage",
        "payload": {"chat_id": -100, "text": text},
        "status": "pending",
        "attempts": 0,
        "not_before": NOW,
        "purpose": "relay",
        "ticket_number": ticket_number,
        "context": {"coalesced": "text"},
    }
    values.update(fields)
    return Delivery(**values)


async def test_a_batch_knows_each_stream_s_last_pending_delivery_without_reading_it(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A coalesced relay grows message by message (bot/services/tickets.py): in a batch, the
    stream's last pending delivery comes from what the batch added or found, without a read
    (and the flush of everything written so far that a read would cause first)."""
    async with sessions() as session, session.begin():
        await add_user(session, 1001)
        ticket = await TicketRepo(session).add(new_ticket("a", 1001))
        DeliveryRepo(session).add(relay(ticket.number, "-100:1", "queued before the batch"))
        DeliveryRepo(session).add(
            relay(ticket.number, "-100:2", "taken by a sender", claimed_until=NOW, attempts=1)
        )
    async with transaction(sessions, savepoints=False) as batch:
        await batch.read_ahead(update_ids=[], user_ids=[], customer_ids=[], dialog_prefixes=[])
        repo = DeliveryRepo(batch.session)
        found = await repo.last_unclaimed("-100:1")  # read once...
        assert found is not None and found.payload["text"] == "queued before the batch"
        assert await repo.last_unclaimed("-100:2") is None  # a sender has it
        with Statements(engine) as statements:
            assert await repo.last_unclaimed("-100:1") is found  # ... then known
            found.payload = {"chat_id": -100, "text": "grown"}  # written at the commit
            assert await repo.last_unclaimed("-100:2") is None  # still a sender's
            added = relay(ticket.number, "-100:1", "a card edit after it")
            repo.add(added)
            assert await repo.last_unclaimed("-100:1") is added  # the stream's last now
            newer = relay(ticket.number, "-100:2", "a relay of its own")
            repo.add(newer)
            assert await repo.last_unclaimed("-100:2") is newer
        assert statements == []
        await batch.finish_read_ahead()
    async with sessions() as session:
        rows = (await session.execute(select(Delivery).order_by(Delivery.id))).scalars().all()
        assert [row.payload["text"] for row in rows] == [
            "grown",
            "taken by a sender",
            "a card edit after it",
            "a relay of its own",
        ]
    # Outside a batch (a transaction of its own, savepoints possible) it is read each time.
    async with sessions() as session, session.begin():
        with Statements(engine) as statements:
            last = await DeliveryRepo(session).last_unclaimed("-100:1")
        assert last is not None and last.payload["text"] == "a card edit after it"
        assert any("deliveries" in statement for statement in statements)


async def test_a_savepoint_drops_what_was_read_ahead(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with transaction(sessions) as batch:
        with pytest.raises(RuntimeError):
            await batch.read_ahead(update_ids=[1], user_ids=[], customer_ids=[], dialog_prefixes=[])
        ReadAhead.start(batch.session).update_ids.add(1)
        async with transaction(sessions, within=batch) as unit:
            assert unit is not batch
            assert ReadAhead.of(unit.session) is None  # a rollback here could make it wrong


async def test_a_mark_taken_meanwhile_fails_the_batch(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async def batch_of_two() -> None:
        async with transaction(sessions, savepoints=False) as batch:
            await batch.read_ahead(
                update_ids=[5, 6], user_ids=[], customer_ids=[], dialog_prefixes=[]
            )
            assert await batch.updates.first_time(5, NOW) is True
            assert await batch.updates.first_time(6, NOW) is True
            # Another process handled update 6 after the batch looked (PostgreSQL).
            await batch.session.execute(insert(ProcessedUpdate).values(update_id=6, at=NOW))
            await batch.finish_read_ahead()

    with pytest.raises(UpdatesTakenError):
        await batch_of_two()
    async with sessions() as session, session.begin():
        assert await UpdateLog(session).first_time(5, NOW) is True  # rolled back with the batch


async def test_data_changed_in_place_is_written(sessions: async_sessionmaker[AsyncSession]) -> None:
    storage = DatabaseStorage(sessions, ShiftedClock())
    await storage.set_data(key(), {"items": [1]})
    async with transaction(sessions, savepoints=False) as batch:
        prefix = storage.prefix_of(key())
        await batch.read_ahead(
            update_ids=[], user_ids=[], customer_ids=[], dialog_prefixes=[prefix]
        )
        bound = storage.bound(batch.session)  # the row stays loaded for the whole batch
        data = await bound.get_data(key())
        data["items"].append(2)  # changed in place, as the follow-up handler does
        await bound.set_data(key(), data)
        data["items"].append(3)  # ... after it was set: not the stored data any more
    assert await storage.get_data(key()) == {"items": [1, 2]}


async def test_a_dialog_cleared_and_begun_again_in_one_batch(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """/cancel, then /new, in one batch: the row goes and comes back before the one flush."""
    storage = DatabaseStorage(sessions, ShiftedClock())
    await storage.set_state(key(), Intake.topic)
    await storage.set_data(key(), {"topic": "old"})
    async with transaction(sessions, savepoints=False) as batch:
        prefix = storage.prefix_of(key())
        await batch.read_ahead(
            update_ids=[], user_ids=[], customer_ids=[], dialog_prefixes=[prefix]
        )
        bound = storage.bound(batch.session)
        await bound.set_state(key(), None)
        await bound.set_data(key(), {})
        assert await bound.get_state(key()) is None
        await bound.set_state(key(), Intake.description)
        await bound.set_data(key(), {"topic": "new"})
    assert await storage.get_state(key()) == "Intake:description"
    assert await storage.get_data(key()) == {"topic": "new"}


async def test_a_newcomer_seen_by_two_transactions_at_once_is_one_user(pg_url: str) -> None:
    """Two first updates of one person handled at once (two chats, two instances): the second
    insert waits for the first transaction, finds the row and uses it; neither fails."""
    await asyncio.to_thread(migrate, pg_url)
    eng = create_engine(pg_url)
    sessions = create_session_factory(eng)
    now = datetime.now(UTC)
    first_inserted, second_waits = asyncio.Event(), asyncio.Event()

    async def upsert(name: str, *, first: bool) -> int:
        async with transaction(sessions) as uow:
            if not first:
                await first_inserted.wait()
            task = UserRepo(uow.session).upsert(
                user_id=4242,
                first_name=name,
                last_name=None,
                username=None,
                language_code="en",
                now=now,
            )
            if first:
                user = await task
                first_inserted.set()
                await second_waits.wait()  # commits only once the other one is blocked on it
            else:
                user = await task
            return user.id

    async def blocked() -> bool:
        async with eng.connect() as conn:
            waiting = await conn.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            )
        return bool(waiting)

    async def release_when_blocked() -> None:
        await first_inserted.wait()
        await eventually(blocked, "the second insert never waited for the first")
        second_waits.set()

    try:
        ids = await asyncio.gather(
            upsert("Ann", first=True), upsert("Ann", first=False), release_when_blocked()
        )
        assert ids[:2] == [4242, 4242]
        async with sessions() as session:
            assert await session.scalar(select(func.count()).select_from(User)) == 1
    finally:
        await eng.dispose()
