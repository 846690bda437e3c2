"""The emulator's flood limits (SPEC §8): about one request a second in any one chat (a group
too), 20 messages a minute per group, 30 messages a second in all. A real aiogram bot over
HTTP; the limiter's clock is driven by the test, so a minute takes no time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable

import pytest
import pytest_asyncio
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramRetryAfter
from aiogram.types import InputMediaPhoto

from bot.emulator import FakeTelegram, FakeUser
from tests.emulator.test_fake_telegram import close_bot

TOKEN = "123456:TEST-TOKEN"
STAFF = -1001234567890
OTHER_GROUP = -1009876543210


class Clock:
    def __init__(self) -> None:
        self.now = 5_000.0
        self.start = self.now

    def __call__(self) -> float:
        return self.now

    def at(self, seconds: float) -> None:
        """Seconds since the test began."""
        self.now = self.start + seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest_asyncio.fixture
async def fake(clock: Clock) -> AsyncIterator[FakeTelegram]:
    f = FakeTelegram(token=TOKEN, enforce_limits=True)
    f.api.limiter.clock = clock
    await f.start()
    f.add_group(STAFF, "Support staff")
    f.add_group(OTHER_GROUP, "Another group")
    yield f
    await f.stop()


@pytest_asyncio.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    b = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.url or "")))
    yield b
    await close_bot(b)


@pytest.fixture
def alice(fake: FakeTelegram) -> FakeUser:
    user = fake.add_user(1001, "Alice", started=True)
    fake.add_member(STAFF, user)
    return user


async def refused(call: Awaitable[object]) -> int:
    """The ``retry_after`` of the 429 the call gets."""
    with pytest.raises(TelegramRetryAfter) as exc:
        await call
    return exc.value.retry_after


def photos(fake: FakeTelegram, user: FakeUser, n: int) -> list[InputMediaPhoto]:
    album = fake.send_album(user, n=n)
    return [InputMediaPhoto(media=m["photo"][-1]["file_id"]) for m in album]


# ---------------------------------------------------------------- one a second in a group


async def test_two_messages_to_a_group_within_a_second(
    fake: FakeTelegram, bot: Bot, clock: Clock
) -> None:
    await bot.send_message(STAFF, "first")
    clock.at(0.5)
    assert await refused(bot.send_message(STAFF, "too soon")) == 1
    assert await bot.send_message(OTHER_GROUP, "another group is another chat")
    clock.at(1.5)
    await bot.send_message(STAFF, "after retry_after")
    assert [fake.text_of(m) for m in fake.bot_messages(STAFF)] == ["first", "after retry_after"]
    assert fake.rate_limited == fake.rate_limited_in(STAFF) == 1
    assert fake.rate_limited_in(OTHER_GROUP) == 0


async def test_a_request_a_few_milliseconds_early_passes(bot: Bot, clock: Clock) -> None:
    """Telegram's limits are approximate, and a bot spacing its requests a second apart is seen
    a few milliseconds off by the network."""
    await bot.send_message(STAFF, "first")
    clock.at(0.97)
    await bot.send_message(STAFF, "a second later, as the bot measured it")
    clock.at(1.8)
    assert await refused(bot.send_message(STAFF, "too soon")) == 1


async def test_a_flood_wait_holds_even_when_the_limits_would_not(
    fake: FakeTelegram, bot: Bot, clock: Clock
) -> None:
    """After a 429 the chat is closed for ``retry_after``: a bot that does not wait it out is
    refused again."""
    await bot.send_message(STAFF, "first")
    clock.at(0.5)
    assert await refused(bot.send_message(STAFF, "too soon")) == 1
    clock.at(1.2)  # more than a second after "first", but not retry_after after the 429
    assert await refused(bot.send_message(STAFF, "ignoring retry_after")) == 1
    clock.at(2.2)
    await bot.send_message(STAFF, "waited")
    assert fake.rate_limited_in(STAFF) == 2


# ---------------------------------------------------------------- 20 a minute in a group


async def test_twenty_spread_messages_a_minute_then_the_21st_is_refused(
    fake: FakeTelegram, bot: Bot, clock: Clock
) -> None:
    for k in range(20):
        clock.at(3 * k)
        await bot.send_message(STAFF, f"m{k}")
    clock.at(59)
    assert await refused(bot.send_message(STAFF, "the 21st within a minute")) == 1
    clock.at(60)  # the first has left the minute
    await bot.send_message(STAFF, "m20")
    assert len(fake.bot_messages(STAFF)) == 21
    assert fake.rate_limited == 1


async def test_twenty_in_twenty_seconds_close_the_group_for_the_rest_of_the_minute(
    fake: FakeTelegram, bot: Bot, clock: Clock
) -> None:
    for k in range(20):
        clock.at(k)
        await bot.send_message(STAFF, f"m{k}")
    clock.at(20)
    assert await refused(bot.send_message(STAFF, "the 21st")) == 40
    clock.at(59.9)
    assert await refused(bot.send_message(STAFF, "still within the minute")) == 1
    assert fake.rate_limited_in(STAFF) == 2


# ---------------------------------------------------------------- several messages in one request


async def test_an_album_of_ten_to_a_group_passes(
    fake: FakeTelegram, bot: Bot, clock: Clock, alice: FakeUser
) -> None:
    assert len(await bot.send_media_group(STAFF, media=photos(fake, alice, 10))) == 10
    clock.at(1)  # one request a second, however many messages it posts
    assert len(await bot.send_media_group(STAFF, media=photos(fake, alice, 10))) == 10
    clock.at(2)  # but 20 messages are the group's minute
    assert await refused(bot.send_message(STAFF, "one more")) == 58
    assert len(fake.bot_messages(STAFF)) == 20


async def test_copy_messages_of_100_ids_passes_and_fills_the_minute(
    fake: FakeTelegram, bot: Bot, clock: Clock, alice: FakeUser
) -> None:
    ids = [fake.send_text(alice, f"line {k}")["message_id"] for k in range(100)]
    copied = await bot.copy_messages(STAFF, from_chat_id=alice.id, message_ids=ids)
    assert len(copied) == 100
    clock.at(1)
    assert await refused(bot.send_message(STAFF, "after 100")) == 59
    clock.at(61)
    await bot.send_message(STAFF, "a minute later")


async def test_albums_to_a_private_chat_are_one_request_each_but_count_in_all(
    fake: FakeTelegram, bot: Bot, alice: FakeUser
) -> None:
    bob = fake.add_user(1002, "Bob", started=True)
    for _ in range(3):  # a private chat's burst: 3 requests, 30 messages
        assert len(await bot.send_media_group(alice.id, media=photos(fake, alice, 10))) == 10
    # The bot has posted 30 messages this second: even another chat waits.
    assert await refused(bot.send_message(bob.id, "31st this second")) == 1
    assert (fake.rate_limited_in(alice.id), fake.rate_limited_in(bob.id)) == (0, 1)


# ---------------------------------------------------------------- the count


async def test_the_count_is_of_flood_limits_only(
    fake: FakeTelegram, bot: Bot, clock: Clock
) -> None:
    assert fake.rate_limited == 0
    fake.fail_next("sendMessage", error_code=429, retry_after=3)
    assert await refused(bot.send_message(STAFF, "a 429 on demand")) == 3
    assert fake.rate_limited == 0
    await bot.send_message(STAFF, "first")
    assert await refused(bot.send_message(STAFF, "too soon")) == 1
    assert await refused(bot.send_message(STAFF, "too soon again")) == 1
    fake.enforce_limits = False
    await bot.send_message(STAFF, "not enforced")
    assert fake.rate_limited == fake.rate_limited_in(STAFF) == 2
