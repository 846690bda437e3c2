"""From resolved onward (SPEC §3): confirm, dispute, reminder, auto-close, ratings — with
durations of seconds instead of days."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from bot.emulator import FakeTelegram, FakeUser
from tests.e2e.driver import Customer
from tests.e2e.harness import STAFF_CHAT_ID, BotProcess, as_utc
from tests.waiting import eventually

FAST = {"CONFIRM_REMINDER_AFTER": "3", "AUTO_CLOSE_AFTER": "6", "SCHEDULER_INTERVAL": "0.3"}


async def staff_post(bot: BotProcess, *fragments: str) -> dict:
    """The next staff-group message containing all fragments (others are skipped), once the
    desk has recorded what it sent: a press on it then finds its ticket."""
    while True:  # each turn waits for the next message
        message = await bot.fake.next_message(STAFF_CHAT_ID)
        if all(f in bot.fake.text_of(message) for f in fragments):
            await bot.settled()
            return message


async def card_shows(fake: FakeTelegram, card: dict, *fragments: str) -> None:
    def text() -> str:
        return fake.text_of(fake.message(STAFF_CHAT_ID, card["message_id"]))

    await eventually(
        lambda: all(f in text() for f in fragments),
        lambda: f"card never showed {fragments}: {text()}",
        within=15,
    )


async def answered_and_resolved(
    bot: BotProcess, c: Customer, anna: FakeUser, *, via_prompt_reply: bool = False
) -> tuple[int, dict]:
    fake = bot.fake
    number = await c.open_request()
    card = await staff_post(bot, f"#{number}")
    if via_prompt_reply:
        fake.press(anna, card, "Решено")
        prompt = await staff_post(bot, "Ответьте на это сообщение")
        fake.send_text(
            anna, "Please update the app to 2.1.", chat_id=STAFF_CHAT_ID, reply_to=prompt
        )
        await c.expect("Please update the app to 2.1.")
    else:
        fake.send_text(anna, "Please update the app to 2.1.", chat_id=STAFF_CHAT_ID, reply_to=card)
        await c.expect("from support", f"#{number}")
        await c.expect("Please update the app to 2.1.")
        fake.press(anna, card, "Решено")
        prompt = await staff_post(bot, "Ответьте на это сообщение")
        fake.press(anna, prompt, "последнее сообщение")
    question = await c.expect("Is the problem solved?", f"#{number}")
    assert fake.buttons(question) == ["👍 Solved", "👎 Not solved"]
    await card_shows(fake, card, "Решено, ждёт подтверждения")
    return number, card


async def test_confirm_then_rate_with_a_comment(
    fake: FakeTelegram, alice: FakeUser, anna: FakeUser, start_bot
) -> None:
    bot = await start_bot(**FAST)
    c = Customer(fake, alice)
    number, card = await answered_and_resolved(bot, c, anna)
    c.press("Solved")
    await c.expect(f"Request #{number} is closed. Thank you!")
    rating = await c.expect("How would you rate")
    await card_shows(fake, card, "Статус: Закрыто")
    c.press("⭐⭐⭐⭐⭐", rating)
    await c.expect("Anything to add?")
    c.say("Fast and clear, thanks!")
    await c.expect("Thank you for your rating!")
    comment = await staff_post(bot, "Комментарий к оценке", f"#{number}")
    assert "Fast and clear, thanks!" in fake.text_of(comment)
    # The confirmation cannot be pressed twice, nor can someone else's be forged.
    fake.press_data(alice, alice.id, rating["message_id"], f"ok:{number}:1")
    await bot.expect_silence(alice.id)


async def test_dispute_reopens_and_a_low_rating_is_flagged(
    fake: FakeTelegram, alice: FakeUser, anna: FakeUser, start_bot
) -> None:
    bot = await start_bot(**FAST)
    c = Customer(fake, alice)
    number, card = await answered_and_resolved(bot, c, anna, via_prompt_reply=True)
    c.press("Not solved")
    await c.expect("what is still wrong")
    c.say("Version 2.1 crashes on start <b>too</b>")
    await c.expect(f"Request #{number} is reopened")
    note = await staff_post(bot, "не решено")
    assert "Version 2.1 crashes on start <b>too</b>" in fake.text_of(note)
    await card_shows(fake, card, "Статус: В работе", "Переоткрыто: 1")
    # A message to a resolved ticket is relayed and answered with the same question.
    fake.press(anna, card, "Решено")
    prompt = await staff_post(bot, "Ответьте на это сообщение")
    fake.press(anna, prompt, "последнее сообщение")
    await c.expect("Is the problem solved?")
    c.say("Still checking...")
    relayed = await staff_post(bot, "Still checking...")
    assert relayed["reply_to_message"]["message_id"] == card["message_id"]
    again = await c.expect("We passed your message on to support", f"#{number}")
    await card_shows(fake, card, "Решено, ждёт подтверждения")  # neither closed nor reopened
    c.press("Solved", again)
    await c.expect("is closed")
    rating = await c.expect("How would you rate")
    c.press("⭐⭐", rating)
    await c.expect("Anything to add?")
    c.press("No comment")
    await c.expect("Thank you for your rating!")
    flag = await staff_post(bot, "Низкая оценка")
    assert f"#{number}: 2/5" in fake.text_of(flag)


async def test_reminder_then_auto_close(
    fake: FakeTelegram, alice: FakeUser, anna: FakeUser, start_bot
) -> None:
    bot = await start_bot(**FAST)
    c = Customer(fake, alice)
    number, card = await answered_and_resolved(bot, c, anna)
    reminder = await c.expect("Is the problem of request", f"#{number}", timeout=10)
    assert fake.buttons(reminder) == ["👍 Solved", "👎 Not solved"]
    await c.expect("closed automatically", f"#{number}", timeout=10)
    await c.expect("How would you rate")
    await card_shows(fake, card, "Статус: Закрыто")
    # One reminder, one close: the timers fire with time, so later sweeps are listened to.
    await fake.expect_silence(alice.id, within=2.0)


async def test_the_customer_closes_a_request_from_my(
    fake: FakeTelegram, alice: FakeUser, start_bot
) -> None:
    bot = await start_bot(**FAST)
    c = Customer(fake, alice)
    number = await c.open_request()
    card = await staff_post(bot, f"#{number}")
    c.command("/my")
    listing = await c.expect("Your requests", "Close it with a button")
    c.press(f"Close #{number}", listing)
    await c.expect("no longer needed")
    c.say("Found the answer myself")
    await c.expect(f"You closed request #{number}")
    await c.expect("How would you rate")
    note = await staff_post(bot, "Клиент закрыл")
    assert "Found the answer myself" in fake.text_of(note)
    await card_shows(fake, card, "Статус: Закрыто")


async def test_two_processes_remind_and_close_once(
    fake: FakeTelegram, alice: FakeUser, anna: FakeUser, start_bot
) -> None:
    bot = await start_bot(**FAST)
    c = Customer(fake, alice)
    number, _card = await answered_and_resolved(bot, c, anna)
    second = await start_bot(**FAST)  # the same database, its own scheduler and sender
    await c.expect("Is the problem of request", f"#{number}", timeout=15)
    await c.expect("closed automatically", f"#{number}", timeout=15)
    await c.expect("How would you rate")
    # The timers fire with time: the sweeps of both processes that follow are listened to.
    await fake.expect_silence(alice.id, within=3.0)
    texts = [fake.text_of(m) for m in fake.bot_messages(alice.id)]
    assert sum("Is the problem of request" in t for t in texts) == 1
    assert sum("closed automatically" in t for t in texts) == 1
    assert second.proc is not None and second.proc.poll() is None


async def test_sla_alerts_once_near_and_once_overdue(
    fake: FakeTelegram, alice: FakeUser, anna: FakeUser, start_bot
) -> None:
    bot = await start_bot(**FAST, SLA_FIRST_RESPONSE="P1=PT5S,P2=PT5S,P3=PT5S,P4=PT5S")
    c = Customer(fake, alice)
    number = await c.open_request()
    card = await staff_post(bot, f"#{number}")
    assert "до первого ответа:" in fake.text_of(card)
    near = await staff_post(bot, f"#{number}: до первого ответа:")
    overdue = await staff_post(bot, f"#{number}: первый ответ просрочен")
    assert near["message_id"] < overdue["message_id"]
    await card_shows(fake, card, "SLA: ❗ просрочка")
    # Time passing is what is tested: five more sweeps (every 0.3 s) must not alert again.
    await asyncio.sleep(1.5)
    alerts = [
        m
        for m in fake.messages(STAFF_CHAT_ID)
        if "первый ответ" in fake.text_of(m)
        or ("до первого ответа:" in fake.text_of(m) and m is not card)
    ]
    assert len([m for m in alerts if "просрочен" in fake.text_of(m)]) == 1
    # The answer stops the clock; the card says how long it took.
    fake.send_text(anna, "Looking now.", chat_id=STAFF_CHAT_ID, reply_to=card)
    await card_shows(fake, card, "SLA: первый ответ —")


async def test_timers_are_not_lost_across_a_kill(
    fake: FakeTelegram, alice: FakeUser, anna: FakeUser, start_bot
) -> None:
    bot = await start_bot(**{**FAST, "AUTO_CLOSE_AFTER": "12"})
    c = Customer(fake, alice)
    number, _card = await answered_and_resolved(bot, c, anna)
    await bot.settled()  # the question is recorded as sent: the restart does not send it again
    bot.kill()  # down while the reminder falls due
    [(resolved_at,)] = bot.query("SELECT resolved_at FROM tickets WHERE number = ?", number)
    due = as_utc(resolved_at) + timedelta(seconds=3)
    await eventually(lambda: datetime.now(UTC) > due, "the reminder never fell due")
    await bot.start()
    await c.expect("Is the problem of request", f"#{number}", timeout=15)  # caught up
    await c.expect("closed automatically", f"#{number}", timeout=15)
    await c.expect("How would you rate")
    # The timers fire with time: later sweeps must not repeat what was caught up.
    await fake.expect_silence(alice.id, within=2.0)
