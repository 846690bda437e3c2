"""A real Redis (tests/dbserver.py) for what several instances share: the first of it, the
dialog state in aiogram's ``RedisStorage``, as two instances see it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.redis import RedisStorage

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
