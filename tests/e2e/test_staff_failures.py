"""No staff-side failure lost in silence (SPEC §8): long texts are split, a staff group that
removed the bot keeps its queue until the bot is back (managers are told), and a file
Telegram refuses as too large is reported at once instead of blocking its chat's queue."""

from __future__ import annotations

from bot.emulator import FakeTelegram, FakeUser
from tests.e2e.driver import Customer
from tests.e2e.harness import STAFF_CHAT_ID, BotProcess
from tests.waiting import eventually

MANAGER = 3001


def _failed(bot: BotProcess) -> list[tuple[object, ...]]:
    return bot.query("SELECT id, chat_id, purpose, error FROM deliveries WHERE status = 'failed'")


async def _settled_but_for_the_group(bot: BotProcess) -> None:
    """All the desk was given is done, except what waits for the staff group to take the bot
    back: nothing else is pending, and no update is unconfirmed."""

    def waiting() -> list[str]:
        return [
            item
            for item in bot.in_hand()
            if not item.startswith("delivery") or f" to {STAFF_CHAT_ID}:" not in item
        ]

    await eventually(lambda: not waiting(), lambda: f"still in hand: {waiting()}", 20)


async def test_a_history_longer_than_a_message_arrives_in_parts(
    fake: FakeTelegram, alice: FakeUser, anna: FakeUser, start_bot
) -> None:
    bot = await start_bot()
    c = Customer(fake, alice)
    number = await c.open_request(topic="Long story")
    card = await fake.next_message(STAFF_CHAT_ID)
    # A note of 4000 characters: the history (header, events, the note) is over 4096.
    words = " ".join(f"w{i:04d}<&>" for i in range(500))[:3990]
    fake.send_text(anna, "!" + words, chat_id=STAFF_CHAT_ID, reply_to=card)
    fake.send_text(anna, "A short answer after it", chat_id=STAFF_CHAT_ID, reply_to=card)
    await c.expect("is now working on your request")  # the first answer takes the ticket
    await c.expect("A short answer after it")
    await bot.settled()
    before = len(fake.bot_messages(STAFF_CHAT_ID))
    fake.send_command(anna, f"/ticket {number}", chat_id=STAFF_CHAT_ID)
    await bot.settled()
    posted = fake.bot_messages(STAFF_CHAT_ID)[before:]
    texts = [fake.text_of(message) for message in posted]
    # The card's copy, then the history in as many parts as it takes, none refused.
    assert all(len(text) <= 4096 for text in texts), [len(t) for t in texts]
    joined = "".join(texts)
    assert len(posted) >= 3, texts
    # Whole, in order (Telegram trims the spaces at a part's ends).
    assert "".join(words.split()) in "".join(joined.split()), "the note is not whole"
    # ... and what came after the note, in the last part: nothing cut off.
    assert "ответил(а) клиенту" in texts[-1], texts[-1]
    assert not _failed(bot)


async def test_managers_are_told_when_the_bot_loses_the_staff_group_and_nothing_is_lost(
    fake: FakeTelegram, alice: FakeUser, boris_staff: FakeUser, start_bot
) -> None:
    boss = fake.add_user(MANAGER, "Maria", username="boss", language_code="en", started=True)
    bot = await start_bot(MANAGER_IDS=str(MANAGER))
    manager = Customer(fake, boss)
    c = Customer(fake, alice)
    first = await c.open_request(topic="Before the kick")
    await fake.next_message(STAFF_CHAT_ID)  # its card
    fake.kick_bot(STAFF_CHAT_ID, by=boris_staff)
    # A manager the bot has not met yet is told in DEFAULT_LOCALE.
    await manager.expect("больше не может писать в группу поддержки")
    # Customers go on writing: a follow-up and a new request wait for the group, intact.
    c.say(f"More about #{first}: it fails at the payment step")
    await _settled_but_for_the_group(bot)
    second = await c.open_request(topic="During the kick")
    await _settled_but_for_the_group(bot)
    assert not [m for m in fake.bot_messages(STAFF_CHAT_ID) if "During the kick" in str(m)]
    assert not _failed(bot)
    # Told once, not once per waiting message.
    assert len(fake.bot_messages(MANAGER)) == 1
    fake.add_bot(STAFF_CHAT_ID, by=boris_staff, admin=True)
    await manager.expect("снова в группе поддержки")

    def arrived() -> bool:
        texts = " ".join(fake.text_of(m) for m in fake.bot_messages(STAFF_CHAT_ID))
        return "During the kick" in texts and "payment step" in texts

    await eventually(
        arrived, lambda: f"the queue was not delivered after the bot came back: {bot.in_hand()}", 30
    )
    assert f"#{second}" in " ".join(fake.text_of(m) for m in fake.bot_messages(STAFF_CHAT_ID))
    await bot.settled()
    assert not _failed(bot)


async def test_a_file_too_large_is_reported_at_once_and_blocks_nothing(
    fake: FakeTelegram, alice: FakeUser, start_bot
) -> None:
    boss = fake.add_user(MANAGER, "Maria", username="boss", language_code="en", started=True)
    bot = await start_bot(MANAGER_IDS=str(MANAGER))
    c = Customer(fake, alice)
    await c.open_request(topic="Counted in the export")
    manager = Customer(fake, boss)
    fake.upload_limits.files = 64  # any export is over it now
    manager.command("/export")
    notice = await manager.expect("не отправлен", "Telegram не принимает файлы такого размера")
    assert "document" not in notice
    # The manager's chat is not blocked behind it (the chart is an upload: limits as Telegram's).
    fake.upload_limits.files = 50 * 1024 * 1024
    manager.command("/summary")
    await manager.expect("Support summary for")
    await bot.settled()
    failed = _failed(bot)
    assert len(failed) == 1 and "413" in str(failed[0][3]), failed
