"""From resolved onward (SPEC §3): confirm, dispute, reminder, auto-close, ratings — with
durations of seconds instead of days."""

from __future__ import annotations

import asyncio

from bot.emulator import FakeTelegram, FakeUser
from tests.e2e.driver import Customer
from tests.e2e.harness import STAFF_CHAT_ID

FAST = {"CONFIRM_REMINDER_AFTER": "3", "AUTO_CLOSE_AFTER": "6", "SCHEDULER_INTERVAL": "0.3"}


async def staff_post(fake: FakeTelegram, *fragments: str) -> dict:
    """The next staff-group message containing all fragments (others are skipped)."""
    while True:
        message = await fake.next_message(STAFF_CHAT_ID)
        if all(f in fake.text_of(message) for f in fragments):
            # A person reads before acting; meanwhile the desk records what it sent, so a
            # press on this message finds its ticket.
            await asyncio.sleep(0.2)
            return message


async def card_shows(fake: FakeTelegram, card: dict, *fragments: str) -> None:
    for _ in range(300):
        text = fake.text_of(fake.message(STAFF_CHAT_ID, card["message_id"]))
        if all(f in text for f in fragments):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"card never showed {fragments}: {text}")


async def answered_and_resolved(
    fake: FakeTelegram, c: Customer, anna: FakeUser, *, via_prompt_reply: bool = False
) -> tuple[int, dict]:
    number = await c.open_request()
    card = await staff_post(fake, f"#{number}")
    if via_prompt_reply:
        fake.press(anna, card, "Решено")
        prompt = await staff_post(fake, "Ответьте на это сообщение")
        fake.send_text(
            anna, "Please update the app to 2.1.", chat_id=STAFF_CHAT_ID, reply_to=prompt
        )
        await c.expect("Please update the app to 2.1.")
    else:
        fake.send_text(anna, "Please update the app to 2.1.", chat_id=STAFF_CHAT_ID, reply_to=card)
        await c.expect("from support", f"#{number}")
        await c.expect("Please update the app to 2.1.")
        fake.press(anna, card, "Решено")
        prompt = await staff_post(fake, "Ответьте на это сообщение")
        fake.press(anna, prompt, "последнее сообщение")
    question = await c.expect("Is the problem solved?", f"#{number}")
    assert fake.buttons(question) == ["👍 Solved", "👎 Not solved"]
    await card_shows(fake, card, "Решено, ждёт подтверждения")
    return number, card


async def test_confirm_then_rate_with_a_comment(
    fake: FakeTelegram, alice: FakeUser, anna: FakeUser, start_bot
) -> None:
    await start_bot(**FAST)
    c = Customer(fake, alice)
    number, card = await answered_and_resolved(fake, c, anna)
    c.press("Solved")
    await c.expect(f"Request #{number} is closed. Thank you!")
    rating = await c.expect("How would you rate")
    await card_shows(fake, card, "Статус: Закрыто")
    c.press("⭐⭐⭐⭐⭐", rating)
    await c.expect("Anything to add?")
    c.say("Fast and clear, thanks!")
    await c.expect("Thank you for your rating!")
    comment = await staff_post(fake, "Комментарий к оценке", f"#{number}")
    assert "Fast and clear, thanks!" in fake.text_of(comment)
    # The confirmation cannot be pressed twice, nor can someone else's be forged.
    fake.press_data(alice, alice.id, rating["message_id"], f"ok:{number}:1")
    await fake.expect_silence(alice.id, within=1.0)


async def test_dispute_reopens_and_a_low_rating_is_flagged(
    fake: FakeTelegram, alice: FakeUser, anna: FakeUser, start_bot
) -> None:
    await start_bot(**FAST)
    c = Customer(fake, alice)
    number, card = await answered_and_resolved(fake, c, anna, via_prompt_reply=True)
    c.press("Not solved")
    await c.expect("what is still wrong")
    c.say("Version 2.1 crashes on start <b>too</b>")
    await c.expect(f"Request #{number} is reopened")
    note = await staff_post(fake, "не решено")
    assert "Version 2.1 crashes on start <b>too</b>" in fake.text_of(note)
    await card_shows(fake, card, "Статус: В работе", "Переоткрыто: 1")
    # A message to a resolved ticket is relayed and answered with the same question.
    fake.press(anna, card, "Решено")
    prompt = await staff_post(fake, "Ответьте на это сообщение")
    fake.press(anna, prompt, "последнее сообщение")
    await c.expect("Is the problem solved?")
    c.say("Still checking...")
    relayed = await staff_post(fake, "Still checking...")
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
    flag = await staff_post(fake, "Низкая оценка")
    assert f"#{number}: 2/5" in fake.text_of(flag)


async def test_reminder_then_auto_close(
    fake: FakeTelegram, alice: FakeUser, anna: FakeUser, start_bot
) -> None:
    await start_bot(**FAST)
    c = Customer(fake, alice)
    number, card = await answered_and_resolved(fake, c, anna)
    reminder = await c.expect("Is the problem of request", f"#{number}", timeout=10)
    assert fake.buttons(reminder) == ["👍 Solved", "👎 Not solved"]
    await c.expect("closed automatically", f"#{number}", timeout=10)
    await c.expect("How would you rate")
    await card_shows(fake, card, "Статус: Закрыто")
    await fake.expect_silence(alice.id, within=2.0)  # one reminder, one close


async def test_the_customer_closes_a_request_from_my(
    fake: FakeTelegram, alice: FakeUser, start_bot
) -> None:
    await start_bot(**FAST)
    c = Customer(fake, alice)
    number = await c.open_request()
    card = await staff_post(fake, f"#{number}")
    c.command("/my")
    listing = await c.expect("Your requests", "Close it with a button")
    c.press(f"Close #{number}", listing)
    await c.expect("no longer needed")
    c.say("Found the answer myself")
    await c.expect(f"You closed request #{number}")
    await c.expect("How would you rate")
    note = await staff_post(fake, "Клиент закрыл")
    assert "Found the answer myself" in fake.text_of(note)
    await card_shows(fake, card, "Статус: Закрыто")


async def test_two_processes_remind_and_close_once(
    fake: FakeTelegram, alice: FakeUser, anna: FakeUser, start_bot
) -> None:
    await start_bot(**FAST)
    c = Customer(fake, alice)
    number, _card = await answered_and_resolved(fake, c, anna)
    second = await start_bot(**FAST)  # the same database, its own scheduler and sender
    await c.expect("Is the problem of request", f"#{number}", timeout=15)
    await c.expect("closed automatically", f"#{number}", timeout=15)
    await c.expect("How would you rate")
    await fake.expect_silence(alice.id, within=3.0)
    texts = [fake.text_of(m) for m in fake.bot_messages(alice.id)]
    assert sum("Is the problem of request" in t for t in texts) == 1
    assert sum("closed automatically" in t for t in texts) == 1
    assert second.proc is not None and second.proc.poll() is None


async def test_sla_alerts_once_near_and_once_overdue(
    fake: FakeTelegram, alice: FakeUser, anna: FakeUser, start_bot
) -> None:
    await start_bot(**FAST, SLA_FIRST_RESPONSE="P1=PT5S,P2=PT5S,P3=PT5S,P4=PT5S")
    c = Customer(fake, alice)
    number = await c.open_request()
    card = await staff_post(fake, f"#{number}")
    assert "до первого ответа:" in fake.text_of(card)
    near = await staff_post(fake, f"#{number}: до первого ответа:")
    overdue = await staff_post(fake, f"#{number}: первый ответ просрочен")
    assert near["message_id"] < overdue["message_id"]
    await card_shows(fake, card, "SLA: ❗ просрочка")
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
    number, _card = await answered_and_resolved(fake, c, anna)
    await asyncio.sleep(0.5)
    bot.kill()  # down while the reminder falls due
    await asyncio.sleep(3.5)
    await bot.start()
    await c.expect("Is the problem of request", f"#{number}", timeout=15)  # caught up
    await c.expect("closed automatically", f"#{number}", timeout=15)
    await c.expect("How would you rate")
    await fake.expect_silence(alice.id, within=2.0)
