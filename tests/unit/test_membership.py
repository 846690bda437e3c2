"""Membership changes take effect at once in every process of the desk: the one that gets the
``chat_member`` update believes it, and the others see the new roster version in the database
and ask Telegram again instead of trusting their cached answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiogram.types import Chat, ChatMemberLeft, ChatMemberMember, ChatMemberUpdated, User

from bot.db.engine import Database, migrate
from bot.services.membership import Membership

STAFF = -1001
ANNA = 2001


class FakeBot:
    """getChatMember from a dict: what Telegram would say now."""

    def __init__(self) -> None:
        self.status: dict[int, str] = {ANNA: "member"}
        self.calls = 0

    async def get_chat_member(self, chat_id: int, user_id: int) -> Any:
        self.calls += 1
        user = User(id=user_id, is_bot=False, first_name="x")
        if self.status.get(user_id) == "member":
            return ChatMemberMember(user=user)
        return ChatMemberLeft(user=user)


class Desk:
    staff_chat_id = STAFF


@pytest.fixture
async def database(backend_url: str) -> AsyncIterator[Database]:
    url = backend_url  # an SQLite file, then PostgreSQL (tests/dbserver.py)
    await asyncio.to_thread(migrate, url)
    db = Database(url)
    yield db
    await db.dispose()


def _removed(user_id: int) -> ChatMemberUpdated:
    user = User(id=user_id, is_bot=False, first_name="x")
    return ChatMemberUpdated(
        chat=Chat(id=STAFF, type="supergroup", title="staff"),
        from_user=User(id=1, is_bot=False, first_name="admin"),
        date=datetime.now(UTC),
        old_chat_member=ChatMemberMember(user=user),
        new_chat_member=ChatMemberLeft(user=user),
    )


async def test_a_removal_reaches_every_process_at_once(database: Database) -> None:
    telegram = FakeBot()
    here = Membership(telegram, Desk(), clock=None)  # type: ignore[arg-type]
    there = Membership(telegram, Desk(), clock=None)  # type: ignore[arg-type]
    async with database.writer() as session:
        assert await here.is_member(ANNA, session)
        assert await there.is_member(ANNA, session)
        assert await there.is_member(ANNA, session)  # cached: Telegram asked once each
    assert telegram.calls == 2
    # Telegram removes her and tells one process.
    telegram.status[ANNA] = "left"
    async with database.writer() as session, session.begin():
        await here.changed(session, _removed(ANNA))
    calls = telegram.calls
    async with database.writer() as session:
        assert not await here.is_member(ANNA, session)  # believed without asking
        assert telegram.calls == calls
        assert not await there.is_member(ANNA, session)  # the other process asks again
        assert telegram.calls == calls + 1
        assert not await there.is_member(ANNA, session)
        assert telegram.calls == calls + 1  # and caches the new answer
    # Without a session (no roster to compare with), the cache is used as it was.
    assert not await there.is_member(ANNA)


async def test_a_change_in_another_chat_is_ignored(database: Database) -> None:
    telegram = FakeBot()
    membership = Membership(telegram, Desk(), clock=None)  # type: ignore[arg-type]
    event = _removed(ANNA).model_copy(
        update={"chat": Chat(id=-5, type="supergroup", title="other")}
    )
    async with database.writer() as session, session.begin():
        await membership.changed(session, event)
        assert await membership.is_member(ANNA, session)
