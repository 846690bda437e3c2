"""What only PostgreSQL can show: several instances' transactions at once on one database.

SQLite has one writer at a time (``BEGIN IMMEDIATE``), so these races cannot happen there; on
PostgreSQL two senders or two pollers really do run side by side, and these tests hold one
transaction open while another runs, on a real server (tests/dbserver.py).
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.db.engine import Database, create_engine, create_session_factory, migrate
from bot.db.models import Delivery
from bot.db.repositories import DeliveryRepo, UpdateLog

NOW = datetime(2025, 6, 11, 10, 0, tzinfo=UTC)
LEASE = timedelta(minutes=1)
GROUP = -1001234567890


@pytest.fixture
def url(pg_url: str) -> str:
    migrate(pg_url)
    return pg_url


@pytest_asyncio.fixture
async def engine(url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(url, pool_size=10)
    yield eng
    await eng.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(engine)


def delivery(i: int, *, chat_id: int = GROUP, purpose: str = "relay") -> Delivery:
    return Delivery(
        created_at=NOW,
        chat_id=chat_id,
        stream=f"s{i}",
        rank=1,
        method="SendMessage",
        payload={"chat_id": chat_id, "text": f"message {i}"},
        not_before=NOW,
        purpose=purpose,
    )


async def add_deliveries(sessions: async_sessionmaker[AsyncSession], count: int) -> list[int]:
    async with sessions() as session, session.begin():
        rows = [delivery(i) for i in range(count)]
        session.add_all(rows)
        await session.flush()
        return [row.id for row in rows]


async def test_the_database_is_postgresql(url: str) -> None:
    database = Database(url)
    try:
        assert not database.single_writer
        assert database.engine.dialect.name == "postgresql"
    finally:
        await database.dispose()


async def test_a_claim_waits_for_the_other_and_then_gets_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The second sender's claim of the same rows, made while the first one's is uncommitted,
    finds them leased once the first commits (PostgreSQL re-reads a row it waited for)."""
    ids = await add_deliveries(sessions, 5)
    async with sessions() as first, first.begin():
        got_first = await DeliveryRepo(first).claim_many(
            ids, now=NOW, until=NOW + LEASE, owner="first"
        )
        assert set(got_first) == set(ids)
        assert {row.attempts for row in got_first.values()} == {1}  # read as leased

        async def second_claims() -> set[int]:
            async with sessions() as second, second.begin():
                got = await DeliveryRepo(second).claim_many(
                    ids, now=NOW, until=NOW + LEASE + timedelta(seconds=1), owner="second"
                )
                return set(got)

        second = asyncio.create_task(second_claims())
        await asyncio.sleep(0.3)
        assert not second.done()  # held by the first one's row locks
    assert await second == set()
    async with sessions() as session:
        rows = (await session.execute(select(Delivery).where(Delivery.id.in_(ids)))).scalars()
        assert {(row.claimed_by, row.attempts) for row in rows} == {("first", 1)}


async def test_senders_claiming_at_once_never_claim_one_row_twice(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    ids = await add_deliveries(sessions, 60)
    rng = random.Random(14)
    claims: dict[str, set[int]] = {}

    async def sender(name: str) -> None:
        wanted = rng.sample(ids, 30)  # overlapping choices, as several instances' heads do
        async with sessions() as session, session.begin():
            got = await DeliveryRepo(session).claim_many(
                wanted, now=NOW, until=NOW + LEASE, owner=name
            )
            await asyncio.sleep(rng.random() / 20)  # hold the rows a while, as a sender does
        claims[name] = set(got)

    await asyncio.gather(*(sender(f"sender-{n}") for n in range(6)))
    everything = [i for got in claims.values() for i in got]
    assert len(everything) == len(set(everything)), "a row was claimed twice"
    async with sessions() as session:
        rows = {
            row.id: row
            for row in (await session.execute(select(Delivery).where(Delivery.id.in_(ids))))
            .scalars()
            .all()
        }
    for name, got in claims.items():
        for i in got:
            assert rows[i].claimed_by == name
            assert rows[i].attempts == 1
    unclaimed = set(ids) - set(everything)
    assert all(rows[i].claimed_by is None and rows[i].attempts == 0 for i in unclaimed)


async def test_an_expired_lease_is_taken_over_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    ids = await add_deliveries(sessions, 10)
    async with sessions() as session, session.begin():
        await DeliveryRepo(session).claim_many(ids, now=NOW, until=NOW + LEASE, owner="dead")
    later = NOW + 2 * LEASE

    async def take_over(name: str) -> set[int]:
        async with sessions() as session, session.begin():
            got = await DeliveryRepo(session).claim_many(
                ids, now=later, until=later + LEASE, owner=name
            )
            await asyncio.sleep(0.05)
            return set(got)

    first, second = await asyncio.gather(take_over("a"), take_over("b"))
    assert first.isdisjoint(second)
    assert first | second == set(ids)


async def test_a_digest_passes_by_rows_another_digest_holds(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """``unseen_for_chat`` locks with SKIP LOCKED: a second instance's digest does not wait
    for the first one's, nor sums up the same messages."""
    await add_deliveries(sessions, 8)
    async with sessions() as first, first.begin():
        held = await DeliveryRepo(first).unseen_for_chat(GROUP, purposes=["relay"])
        assert len(held) == 8
        async with sessions() as second, second.begin():
            seen = await asyncio.wait_for(
                DeliveryRepo(second).unseen_for_chat(GROUP, purposes=["relay"]), 5
            )
        assert seen == []
    async with sessions() as third, third.begin():
        assert len(await DeliveryRepo(third).unseen_for_chat(GROUP, purposes=["relay"])) == 8


async def test_one_update_is_taken_by_one_instance(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Telegram's redelivery reaching two instances at once: one handles it, one skips it."""
    for update_id in range(100, 110):

        async def take(update_id: int = update_id) -> bool:
            async with sessions() as session, session.begin():
                first = await UpdateLog(session).first_time(update_id, NOW)
                await asyncio.sleep(0.01)
                return first

        outcomes = await asyncio.gather(*(take() for _ in range(3)))
        assert sorted(outcomes) == [False, False, True]


async def test_instances_starting_at_once_migrate_one_after_the_other(pg_url: str) -> None:
    """Three instances started together each migrate on start: on PostgreSQL they take turns
    (migrations/env.py), so none fails on a table another has just created."""
    # All three past their imports first, then at one moment: a real race.
    start = time.time() + 3
    script = (
        "import time; from bot.db.engine import migrate; "
        f"time.sleep(max(0, {start} - time.time())); migrate({pg_url!r})"
    )
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(3)
    ]
    outcomes = [(await p.wait(), (await p.stderr.read()).decode()) for p in processes if p.stderr]
    assert [code for code, _ in outcomes] == [0, 0, 0], [err[-2000:] for _, err in outcomes]
    engine = create_engine(pg_url)
    async with engine.connect() as connection:
        versions = (
            await connection.exec_driver_sql("SELECT version_num FROM alembic_version")
        ).all()
    await engine.dispose()
    assert len(versions) == 1
