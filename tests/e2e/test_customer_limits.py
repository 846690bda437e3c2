"""Limits per customer (SPEC §4): open tickets at once, screenshots per ticket, and the pace
above which a customer is asked to slow down, with nothing dropped and other customers not
held up by one customer's flood."""

from __future__ import annotations

import asyncio
import re

from bot.emulator import FakeTelegram, FakeUser
from tests.e2e.driver import Customer
from tests.e2e.harness import STAFF_CHAT_ID
from tests.waiting import eventually

FAST_PRIVATE = {"DELIVERY_PRIVATE_PER_SECOND": "100"}


async def _card(fake: FakeTelegram, number: int) -> dict:
    while True:  # each turn waits for the next message
        message = await fake.next_message(STAFF_CHAT_ID)
        if f"#{number} " in fake.text_of(message).split("\n", 1)[0]:
            return message


async def test_the_next_new_beyond_max_open_tickets_explains_and_lists_them(
    fake: FakeTelegram, alice: FakeUser, start_bot
) -> None:
    await start_bot(MAX_OPEN_TICKETS="2", **FAST_PRIVATE)
    c = Customer(fake, alice)
    assert await c.open_request(topic="Cannot log in") == 1
    assert await c.open_request(topic="Invoice is wrong", kind="question") == 2

    c.command("/new")
    refusal = await c.expect(
        "You have 2 open requests", "at most 2 open requests", "#1", "Cannot log in", "#2"
    )
    assert fake.buttons(refusal) == ["Close #1", "Close #2"]
    # No dialog started: a text is a follow-up, not a topic.
    c.say("hello")
    await c.expect("several open requests")

    # Closing one makes room.
    c.press("Close #1", refusal)
    await c.expect("no longer needed")
    c.say("Solved by myself")
    await c.expect("closed request #1")
    await c.expect("rate the answer")
    assert await c.open_request(topic="Third one") == 3


async def test_at_most_ten_screenshots_per_ticket(
    fake: FakeTelegram, alice: FakeUser, start_bot
) -> None:
    bot = await start_bot(**FAST_PRIVATE)
    c = Customer(fake, alice)
    c.command("/new")
    await c.expect("What is your request about?")
    c.press("stopped working")
    await c.expect("what is it about?")
    c.say("Screens everywhere")
    await c.expect("Describe it in detail")
    # Three photos with the description, then an album of ten: thirteen in all.
    fake.send_album(alice, n=3, caption="The page breaks on every screen I open.")
    await c.expect("account number")
    c.say("12345678")
    await c.expect("Attach screenshots")
    fake.send_album(alice, n=10)
    summary = await c.expect("Please check your request")
    text = await c.edited(summary, "3 screenshots were not taken")
    assert "Screenshots: 10" in text and "at most 10" in text
    c.press("Send", summary)
    await c.expect("is registered")

    card = await _card(fake, 1)
    assert "10 скриншотов ниже" in fake.text_of(card)  # staff read DEFAULT_LOCALE=ru
    album = [await fake.next_message(STAFF_CHAT_ID) for _ in range(10)]
    assert all(part.get("photo") for part in album)
    assert len({part.get("media_group_id") for part in album}) == 1
    await bot.expect_silence(STAFF_CHAT_ID)

    # In the description step, a photo beyond the ten is refused with the reason.
    c.command("/new")
    await c.expect("What is your request about?")
    c.press("stopped working")
    await c.expect("what is it about?")
    c.say("Even more screens")
    await c.expect("Describe it in detail")
    fake.send_album(alice, n=10)
    await c.expect("Screenshot saved")
    fake.send_photo(alice)
    await c.expect("at most 10 screenshots: this one was not taken", "describe the problem")


async def test_a_flood_is_coalesced_and_does_not_hold_up_another_customer(
    fake: FakeTelegram, alice: FakeUser, start_bot
) -> None:
    """200 messages from Alice at once, spread over her three P1 tickets: she is told once to
    slow down, every text reaches staff (joined, not one message each), and Boris's one
    message about his own P1 ticket is not queued behind her backlog. The bot sends at most
    3 messages a second in all here, so Alice's three tickets alone could fill every slot."""
    boris = fake.add_user(1003, "Boris", username="boris_en", language_code="en")
    bot = await start_bot(
        DELIVERY_GLOBAL_PER_SECOND="3",
        DELIVERY_PRIVATE_PER_SECOND="100",
        DELIVERY_GROUP_PER_MINUTE="100000",
    )
    a, b = Customer(fake, alice), Customer(fake, boris)
    notices = []
    for n in range(3):
        await a.open_request(topic=f"Flood of details {n}")
        notices.append(a.last)
    assert await b.open_request(topic="Payment fails", account="87654321") == 4
    cards: set[str] = set()
    while len(cards) < 4:  # in any order: customers take turns
        first_line = fake.text_of(await fake.next_message(STAFF_CHAT_ID)).split("\n", 1)[0]
        cards.update(re.findall(r"#(\d+) ", first_line))

    loop = asyncio.get_running_loop()
    sent = [
        # Replies to each ticket's notice in turn: every message goes straight to a ticket.
        a.say(f"flood #{n:03d} from Alice", reply_to=notices[n % 3])
        for n in range(200)
    ]
    b.say("Boris: one short question")
    boris_update = fake.updates[-1]["update_id"]
    started = loop.time()

    # When the desk has taken Boris's message in (Telegram then stops offering the update):
    # how soon it reaches staff after that is the outbox's fairness. Taking it in comes after
    # Alice's 200 updates before it, in order, and that wait depends on the database.
    boris_taken: list[float] = []

    async def watch_boris() -> None:
        await eventually(
            lambda: all(u["update_id"] != boris_update for u in fake.updates),
            "Boris's message not taken in",
            within=60,
            every=0.01,
        )
        boris_taken.append(loop.time() - started)

    watcher = asyncio.create_task(watch_boris())

    arrivals: list[tuple[float, str]] = []
    seen: set[str] = set()
    boris_at: float | None = None
    while len(seen) < 200 or boris_at is None:
        message = await fake.next_message(STAFF_CHAT_ID, timeout=60)
        text = fake.text_of(message)
        arrivals.append((loop.time() - started, text))
        if "Boris: one short question" in text:
            boris_at = loop.time() - started
        for token in re.findall(r"flood #(\d{3}) from Alice", text):
            assert token not in seen, f"flood #{token} reached staff twice"
            seen.add(token)
    await watcher
    flood_end = max(t for t, text in arrivals if "flood #" in text)

    # Every text reached staff once, coalesced: far fewer messages than 200.
    assert seen == {f"{n:03d}" for n in range(200)}
    alice_messages = [text for _, text in arrivals if "flood #" in text]
    assert len(alice_messages) <= 30, len(alice_messages)
    joined = [text for text in alice_messages if text.count("flood #") > 1]
    assert joined and all(text.startswith("💬 Alice") for text in joined)
    # Boris did not wait for Alice's backlog: he came well before its end.
    # Counted in Alice's texts, not messages: how many go joined in one message depends on
    # how fast the database takes them in.
    after_boris = [
        token
        for t, text in arrivals
        if t > boris_at
        for token in re.findall(r"flood #(\d{3}) from Alice", text)
    ]
    assert len(after_boris) >= 50, arrivals
    # At 3 messages a second, within a few slots of being taken in, not at the backlog's end.
    assert boris_at - boris_taken[0] < 1.5, (boris_taken, arrivals)
    assert flood_end - boris_at > 1.0, arrivals

    # Alice was told exactly once to slow down.
    await bot.expect_silence(STAFF_CHAT_ID)
    notices = [m for m in fake.bot_messages(alice.id) if "🐢" in fake.text_of(m)]
    assert len(notices) == 1
    assert "faster than 20 messages a minute" in fake.text_of(notices[0])

    # An edit of a message that went joined with others follows as its own message.
    fake.edit_text(alice, sent[150], "flood #150, corrected")
    edited = await fake.next_message(STAFF_CHAT_ID)
    assert fake.text_of(edited).endswith("flood #150, corrected")
    assert "Alice" in fake.text_of(edited)
