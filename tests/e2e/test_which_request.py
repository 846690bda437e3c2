"""SPEC §4: while the bot asks "which request?", every further message waits with the first,
in order, and all of them go to the ticket chosen; nothing is dropped or silently replaced."""

from __future__ import annotations

from bot.emulator import FakeTelegram, FakeUser
from tests.e2e.driver import Customer, next_relayed, relayed_lines
from tests.e2e.harness import STAFF_CHAT_ID

# The dialog is many private messages: let them go without Telegram's 1/s pacing.
FAST_PRIVATE = {"DELIVERY_PRIVATE_PER_SECOND": "100"}


async def _card(fake: FakeTelegram, number: int) -> dict:
    while True:  # each turn waits for the next message
        message = await fake.next_message(STAFF_CHAT_ID)
        if f"#{number} " in fake.text_of(message).split("\n", 1)[0]:
            return message


async def _two_open_tickets(fake: FakeTelegram, c: Customer) -> tuple[dict, dict, dict]:
    assert await c.open_request(topic="Cannot log in") == 1
    notice_1 = c.last
    assert notice_1 is not None
    card_1 = await _card(fake, 1)
    assert await c.open_request(topic="Invoice is wrong", kind="question") == 2
    card_2 = await _card(fake, 2)
    return notice_1, card_1, card_2


async def test_every_message_written_during_the_question_goes_to_the_chosen_ticket(
    fake: FakeTelegram, alice: FakeUser, start_bot
) -> None:
    bot = await start_bot(**FAST_PRIVATE)
    c = Customer(fake, alice)
    notice_1, card_1, card_2 = await _two_open_tickets(fake, c)

    c.say("A: the invoice total is wrong")
    question = await c.expect("several open requests", "Which one")
    # Written before answering: B, a photo and an album of three wait with A.
    c.say("B: it counts the same month twice")
    waits = await c.expect("waits with the previous one")
    assert fake.buttons(waits) == ["#1 · Cannot log in", "#2 · Invoice is wrong"]
    fake.send_photo(alice, caption="C: the invoice")
    fake.send_album(alice, n=3, caption="D: last three invoices")
    # A reply to a message of ticket #1 goes there at once, question or not.
    c.say("About the login: it works again", reply_to=notice_1)
    relayed = await fake.next_message(STAFF_CHAT_ID)
    assert fake.text_of(relayed) == "About the login: it works again"
    assert relayed["reply_to_message"]["message_id"] == card_1["message_id"]
    # Nothing else reached staff, and the customer was told only once that messages wait.
    await bot.expect_silence(STAFF_CHAT_ID, alice.id)

    # A /new and a /cancel in between do not drop what waits.
    c.command("/new")
    await c.expect("What is your request about?")
    c.command("/cancel")
    await c.expect("cancelled")

    # The first question's button sends everything, in order, to #2.
    c.press("#2", question)
    # A and B leave joined (queued texts of one ticket), the photo as its own copy.
    texts = await next_relayed(fake, STAFF_CHAT_ID, 3)
    assert texts == [
        "A: the invoice total is wrong",
        "B: it counts the same month twice",
        "C: the invoice",
    ]
    album = [await fake.next_message(STAFF_CHAT_ID) for _ in range(3)]
    assert len({part.get("media_group_id") for part in album}) == 1
    assert album[0]["media_group_id"] and fake.text_of(album[0]) == "D: last three invoices"
    staff = fake.messages(STAFF_CHAT_ID)
    relays = [m for m in staff if m["message_id"] > relayed["message_id"]]
    assert len(relays) == 5  # A+B joined, C, the album's three parts
    assert all(
        m["reply_to_message"]["message_id"] == card_2["message_id"]
        for m in relays
        if "reply_to_message" in m
    )
    assert "reply_to_message" in relays[0] and "reply_to_message" in relays[2]
    await c.edited(question, "4 messages added to request #2")
    await bot.expect_silence(STAFF_CHAT_ID)

    # The second question's buttons have nothing left to send.
    callback = c.press("#1", waits)
    answer = await fake.wait_for_answer(callback)
    assert answer.get("show_alert") and "no longer active" in answer.get("text", "")
    await bot.expect_silence(STAFF_CHAT_ID)

    # Next time the question starts afresh.
    c.say("E: a new question")
    await c.expect("several open requests", "Which one")
    c.press("#1")
    relayed = await fake.next_message(STAFF_CHAT_ID)
    assert fake.text_of(relayed) == "E: a new question"
    assert relayed["reply_to_message"]["message_id"] == card_1["message_id"]
    await c.edited(c.last or {}, "Added to request #1")


async def test_a_question_whose_ticket_closed_is_asked_again(
    fake: FakeTelegram, alice: FakeUser, start_bot
) -> None:
    """The customer closes #2 while messages wait; pressing #2 then sends nothing anywhere and
    asks again with the requests open now."""
    await start_bot(**FAST_PRIVATE)
    c = Customer(fake, alice)
    await _two_open_tickets(fake, c)
    c.say("F: which one?")
    question = await c.expect("several open requests")
    c.say("G: still waiting")
    await c.expect("waits with the previous one")

    c.command("/my")
    mine = await c.expect("Your requests")
    c.press("Close #2", mine)
    await c.expect("#2")  # why close it?
    c.say("Not needed any more")
    await c.expect("closed request #2")
    await c.expect("rate the answer")

    callback = c.press("#2", question)
    answer = await fake.wait_for_answer(callback)
    assert answer.get("show_alert")
    again = await c.expect("2 messages wait for your choice")
    assert fake.buttons(again) == ["#1 · Cannot log in"]
    c.press("#1", again)
    texts: list[str] = []
    while len(texts) < 2:
        lines = relayed_lines(fake, await fake.next_message(STAFF_CHAT_ID))
        texts += [line for line in lines if line.startswith(("F:", "G:"))]
    assert texts == ["F: which one?", "G: still waiting"]
