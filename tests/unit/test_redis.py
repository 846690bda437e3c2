"""A real Redis (tests/dbserver.py) for what several instances share: the first of it, the
dialog state in aiogram's ``RedisStorage``, as two instances see it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio
from aiogram.fsm.storage.base import BaseEventIsolation, StorageKey
from aiogram.fsm.storage.redis import RedisEventIsolation, RedisStorage

from bot.app import create_events_isolation
from bot.config import Settings

KEY = StorageKey(bot_id=42, chat_id=1001, user_id=1001)


@pytest_asyncio.fixture
async def two_instances(redis_url: str) -> AsyncIterator[tuple[RedisStorage, RedisStorage]]:
    first, second = RedisStorage.from_url(redis_url), RedisStorage.from_url(redis_url)
    yield first, second
    await first.close()
    await second.close()


async def test_a_dialog_step_taken_on_one_instance_is_seen_on_the_other(
    two_instances: tuple[RedisStorage, RedisStorage],
) -> None:
    first, second = two_instances
    assert await second.get_state(KEY) is None  # each test has an empty database of its own
    await first.set_state(KEY, "Intake:topic")
    await first.set_data(KEY, {"topic": "Нет интернета", "photos": ["a"]})
    assert await second.get_state(KEY) == "Intake:topic"
    assert await second.get_data(KEY) == {"topic": "Нет интернета", "photos": ["a"]}
    await second.set_state(KEY, None)
    assert await first.get_state(KEY) is None


async def test_each_test_starts_from_an_empty_database(
    two_instances: tuple[RedisStorage, RedisStorage],
) -> None:
    first, _ = two_instances
    # The test above left its data behind in its own database number, not in this one.
    await first.set_data(KEY, {"left": "behind"})
    assert await first.redis.dbsize() == 1


async def test_two_instances_handle_one_chat_one_update_at_a_time(redis_url: str) -> None:
    """With REDIS_URL the instances share the per-chat lock (bot/app.py): while one handles
    a chat's update, another instance's update of that chat waits; other chats do not."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        bot_token="123456:TEST",
        staff_chat_id=-1001,
        redis_url=redis_url,
    )
    first, second = create_events_isolation(settings), create_events_isolation(settings)
    other = StorageKey(bot_id=42, chat_id=1002, user_id=1002)
    order: list[str] = []
    async with first.lock(KEY):
        waiting = asyncio.create_task(_hold(second, KEY, order, "second"))
        async with second.lock(other):  # another chat: not held up
            order.append("other chat")
        await asyncio.sleep(0.3)  # the second instance has had time to try, and must wait
        order.append("first done")
    await asyncio.wait_for(waiting, 10)
    await first.close()
    await second.close()
    assert order == ["other chat", "first done", "second"]
    assert isinstance(first, RedisEventIsolation)


async def _hold(
    isolation: BaseEventIsolation, key: StorageKey, order: list[str], name: str
) -> None:
    async with isolation.lock(key):
        order.append(name)
