"""Per-chat and per-user state in memory is bounded (SPEC §8): 100,000 distinct chats do not
grow the rate limiter, the membership cache or the update locks without bound. Measured by
the maps' sizes and by tracemalloc, not by time."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from types import SimpleNamespace
from typing import Any

import pytest
from aiogram.fsm.storage.base import StorageKey

from bot.delivery.limiter import MAX_CHATS, Limits, RateLimiter
from bot.services.isolation import KeyedEventIsolation
from bot.services.membership import CACHE_SIZE, Membership

CHATS = 100_000


def _traced(fn: Any) -> tuple[int, int]:
    """(memory held after ``fn(0, CHATS // 10)``, after ``fn(CHATS // 10, CHATS)``) in bytes."""
    gc.collect()
    tracemalloc.start()
    try:
        fn(0, CHATS // 10)
        gc.collect()
        early, _ = tracemalloc.get_traced_memory()
        fn(CHATS // 10, CHATS)
        gc.collect()
        late, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return early, late


def test_the_rate_limiter_forgets_chats_whose_limits_are_fresh_again() -> None:
    limiter = RateLimiter(Limits(margin=0))
    sizes: list[int] = []

    def send(first: int, last: int) -> None:
        # One message to each of many chats, private and group alternately, at the bot's own
        # rate (25/s): every chat is new, none is ever written to again.
        for i in range(first, last):
            now = 1_000.0 + i * 0.04
            chat = i + 1 if i % 2 else -(10**12) - i
            assert limiter.reserve(chat, now=now) == 0.0
            if i % 1000 == 0:
                sizes.append(limiter.tracked_chats())

    early, late = _traced(send)
    # A group's window lasts a minute, a private chat's bucket refills in 3 s: what is kept is
    # the chats of the last minute (30/s × 60 s, half of them groups) — never 100,000.
    assert max(sizes) <= 30 * 60 // 2 + 30 * 3
    assert limiter.tracked_chats() <= 30 * 60 // 2 + 30 * 3
    assert late - early < 1_000_000, (early, late)


def test_the_rate_limiter_has_a_hard_cap_when_every_chat_is_busy() -> None:
    # No time passes at all (the worst case): the cap holds.
    limiter = RateLimiter(Limits(margin=0, global_per_second=10**9), max_chats=1000)
    for i in range(CHATS):
        assert limiter.reserve(-(10**12) - i, now=5.0) == 0.0
    assert limiter.tracked_chats() == 1000
    assert MAX_CHATS >= 30 * 60  # the default cap is above what the rate allows in a minute


def test_a_forgotten_limit_changes_no_decision() -> None:
    """A chat is forgotten only when its limit is as good as new: the group's 20/min holds
    across the moment it would be dropped, and a private chat's burst is not repeated."""
    # A burst as large as the minute, so only the window (not the even pace) holds the 21st.
    limiter = RateLimiter(
        Limits(margin=0, group_per_minute=20, group_burst=20, global_per_second=10**6)
    )
    group = -100
    for k in range(20):
        assert limiter.reserve(group, now=100.0 + k) == 0.0
    assert limiter.reserve(group, now=130.0) > 0  # the 21st within the minute waits
    for i in range(1000):  # others come and go; the group's window is still kept
        limiter.reserve(-(10**12) - i, now=150.0)
    assert limiter.reserve(group, now=159.9) > 0
    assert limiter.reserve(group, now=160.0) == 0.0  # the first send has left the window
    private = 7
    assert [limiter.reserve(private, now=200.0) for _ in range(4)][-1] > 0  # burst of 3 used
    for i in range(1000):
        limiter.reserve(-(10**13) - i, now=200.5)
    assert limiter.reserve(private, now=200.5) > 0


async def test_the_membership_cache_is_bounded() -> None:
    class Bot:
        calls = 0

        async def get_chat_member(self, chat_id: int, user_id: int) -> Any:
            Bot.calls += 1
            return SimpleNamespace(status="member" if user_id % 2 else "left")

    desk = SimpleNamespace(staff_chat_id=-100)
    membership = Membership(Bot(), desk, clock=None)  # type: ignore[arg-type]

    async def ask(first: int, last: int) -> None:
        for user in range(first, last):
            assert await membership.is_member(user + 1) is bool((user + 1) % 2)

    gc.collect()
    tracemalloc.start()
    try:
        await ask(0, CHATS // 10)
        gc.collect()
        early, _ = tracemalloc.get_traced_memory()
        await ask(CHATS // 10, CHATS)
        gc.collect()
        late, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(membership._cache) == CACHE_SIZE
    assert Bot.calls == CHATS
    assert late - early < 1_000_000, (early, late)
    # A recent answer is still served from the cache.
    assert await membership.is_member(CHATS) is bool(CHATS % 2)
    assert Bot.calls == CHATS


async def test_update_locks_live_only_while_in_use() -> None:
    isolation = KeyedEventIsolation()

    def key(i: int) -> StorageKey:
        return StorageKey(bot_id=1, chat_id=i, user_id=i)

    async def handle(first: int, last: int) -> None:
        for i in range(first, last):
            async with isolation.lock(key(i)):
                assert isolation.in_use() == 1

    gc.collect()
    tracemalloc.start()
    try:
        await handle(0, CHATS // 10)
        gc.collect()
        early, _ = tracemalloc.get_traced_memory()
        await handle(CHATS // 10, CHATS)
        gc.collect()
        late, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isolation.in_use() == 0
    assert late - early < 200_000, (early, late)


async def test_update_locks_still_take_one_update_at_a_time_per_chat() -> None:
    isolation = KeyedEventIsolation()
    same = StorageKey(bot_id=1, chat_id=5, user_id=5)
    order: list[str] = []
    first_in, other_in = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with isolation.lock(same):
            order.append("first in")
            first_in.set()
            # Held until another chat got in meanwhile; the same chat's second update has
            # been trying since first_in, as it is woken before the other chat.
            await asyncio.wait_for(other_in.wait(), 5)
            order.append("first out")

    async def second() -> None:
        await first_in.wait()
        async with isolation.lock(same):
            order.append("second in")

    async def other_chat() -> None:
        await first_in.wait()
        async with isolation.lock(StorageKey(bot_id=1, chat_id=6, user_id=6)):
            order.append("other chat")
            other_in.set()

    await asyncio.gather(first(), second(), other_chat())
    assert order == ["first in", "other chat", "first out", "second in"]
    assert isolation.in_use() == 0


async def test_a_failing_update_releases_its_lock() -> None:
    isolation = KeyedEventIsolation()
    key = StorageKey(bot_id=1, chat_id=1, user_id=1)
    with pytest.raises(RuntimeError):
        async with isolation.lock(key):
            raise RuntimeError("handler failed")
    assert isolation.in_use() == 0


async def test_the_dispatcher_keeps_no_lock_per_chat_it_has_seen() -> None:
    """Through aiogram itself: its FSM middleware takes the lock of each update's chat."""
    from aiogram import Bot, Dispatcher
    from aiogram.types import Message, Update

    isolation = KeyedEventIsolation()
    dispatcher = Dispatcher(events_isolation=isolation)
    assert dispatcher.fsm.events_isolation is isolation
    handled: list[int] = []

    @dispatcher.message()
    async def echo(message: Message) -> None:
        assert isolation.in_use() == 1  # this update's chat, held while it is handled
        handled.append(message.chat.id)

    bot = Bot("42:TEST")
    try:
        for i in range(1, 10_001):
            update = Update.model_validate(
                {
                    "update_id": i,
                    "message": {
                        "message_id": 1,
                        "date": 0,
                        "chat": {"id": i, "type": "private", "first_name": "x"},
                        "from": {"id": i, "is_bot": False, "first_name": "x"},
                        "text": "hi",
                    },
                }
            )
            await dispatcher.feed_update(bot, update)
    finally:
        await bot.session.close()
    assert len(handled) == 10_000
    assert isolation.in_use() == 0
