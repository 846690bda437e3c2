"""After registration: follow-ups reach staff; delivery survives errors and restarts."""

from __future__ import annotations

from bot.emulator import FakeTelegram, FakeUser
from tests.e2e.driver import Customer, next_relayed
from tests.e2e.harness import STAFF_CHAT_ID


async def _card(fake: FakeTelegram, number: int) -> dict:
    while True:  # each turn waits for the next message
        message = await fake.next_message(STAFF_CHAT_ID)
        if fake.text_of(message).split("\n", 1)[0].find(f"#{number} ") >= 0:
            return message


async def test_followups_go_to_the_right_ticket(
    fake: FakeTelegram, alice: FakeUser, start_bot
) -> None:
    boris = fake.add_user(1003, "Boris", username="boris_en", language_code="en")
    bot = await start_bot()
    c = Customer(fake, alice)
    c.say("hello?")
    await c.expect("You have no open requests", "/new")

    assert await c.open_request(topic="Cannot log in") == 1
    notice_1 = c.last
    card_1 = await _card(fake, 1)

    # With one open ticket, a text goes there: copied to staff as a reply to the card.
    c.say("I also tried another browser <i>Firefox</i> & it fails too")
    relayed = await fake.next_message(STAFF_CHAT_ID)
    assert fake.text_of(relayed) == "I also tried another browser <i>Firefox</i> & it fails too"
    assert relayed["reply_to_message"]["message_id"] == card_1["message_id"]

    # A photo and a document go too.
    fake.send_photo(alice, caption="see this")
    photo = await fake.next_message(STAFF_CHAT_ID)
    assert photo["photo"] and photo["caption"] == "see this"
    fake.send_document(alice, file_name="har.txt", mime_type="text/plain")
    document = await fake.next_message(STAFF_CHAT_ID)
    assert document["document"]["file_name"] == "har.txt"

    # An album arrives together, as one album, replying to the card.
    fake.send_album(alice, n=3, caption="three screens")
    parts = [await fake.next_message(STAFF_CHAT_ID) for _ in range(3)]
    assert len({p.get("media_group_id") for p in parts}) == 1 and parts[0]["media_group_id"]
    assert parts[0]["reply_to_message"]["message_id"] == card_1["message_id"]

    # A second ticket: now the bot asks which one, unless the customer replies to a message.
    assert await c.open_request(topic="Invoice is wrong", kind="question") == 2
    card_2 = await _card(fake, 2)
    c.say("Which one will you pick?")
    question = await c.expect("several open requests", "Which one")
    assert fake.buttons(question) == ["#1 · Cannot log in", "#2 · Invoice is wrong"]
    c.press("#2", question)
    relayed = await fake.next_message(STAFF_CHAT_ID)
    assert fake.text_of(relayed) == "Which one will you pick?"
    assert relayed["reply_to_message"]["message_id"] == card_2["message_id"]
    await c.edited(question, "Added to request #2")

    c.say("Back to the login problem", reply_to=notice_1)
    relayed = await fake.next_message(STAFF_CHAT_ID)
    assert fake.text_of(relayed) == "Back to the login problem"
    assert relayed["reply_to_message"]["message_id"] == card_1["message_id"]

    # Another customer cannot push messages into Alice's ticket with forged callback data.
    b = Customer(fake, boris)
    assert await b.open_request(topic="Other customer", account="55556666") == 3
    await _card(fake, 3)
    assert await b.open_request(topic="Second of Boris", account="55556666") == 4
    await _card(fake, 4)
    b.say("secret of boris")
    pick = await b.expect("several open requests")
    fake.press_data(boris, boris.id, pick["message_id"], "pick:1")
    await bot.expect_silence(STAFF_CHAT_ID)
    assert all("secret of boris" not in fake.text_of(m) for m in fake.messages(STAFF_CHAT_ID))
    assert any(a.get("show_alert") for a in fake.answers.values())


async def test_errors_while_sending_deliver_everything_exactly_once(
    fake: FakeTelegram, alice: FakeUser, start_bot
) -> None:
    bot = await start_bot()
    c = Customer(fake, alice)
    # The card fails with 429, then 500, then a dropped connection; the notice with 429.
    fake.fail_next("sendMessage", chat_id=STAFF_CHAT_ID, error_code=429, retry_after=1)
    fake.fail_next("sendMessage", chat_id=STAFF_CHAT_ID, error_code=500)
    fake.drop_connection_next("sendMessage", chat_id=STAFF_CHAT_ID)
    await c.open_request(topic="Flaky network")
    card = await fake.next_message(STAFF_CHAT_ID, timeout=20)
    assert "Flaky network" in fake.text_of(card)
    # The follow-ups leave as a copy, or joined into one text (SPEC §8): either call fails.
    for method in ("copyMessage", "sendMessage"):
        fake.fail_next(method, chat_id=STAFF_CHAT_ID, error_code=502)
        fake.fail_next(method, chat_id=STAFF_CHAT_ID, error_code=429, retry_after=2)
    for n in range(5):
        c.say(f"follow-up {n}")
    texts = await next_relayed(fake, STAFF_CHAT_ID, 5, timeout=20)
    assert texts == [f"follow-up {n}" for n in range(5)]  # in order, each once
    await bot.expect_silence(STAFF_CHAT_ID)
    failures = [call for call in fake.calls if not call.ok and call.error_code in (429, 500, 502)]
    assert len(failures) >= 4


async def test_deliveries_survive_a_kill_and_are_sent_once(
    fake: FakeTelegram, alice: FakeUser, start_bot
) -> None:
    bot = await start_bot()
    c = Customer(fake, alice)
    # Telegram keeps failing the staff group while the bot dies.
    fake.fail_next("sendMessage", chat_id=STAFF_CHAT_ID, error_code=500, times=1000)
    await c.open_request(topic="Survives restart")
    await fake.wait_for_call("sendMessage", lambda call: not call.ok)
    bot.kill()
    fake.faults.clear()
    await bot.start()
    card = await fake.next_message(STAFF_CHAT_ID, timeout=20)
    assert "Survives restart" in fake.text_of(card)
    await bot.expect_silence(STAFF_CHAT_ID)
    assert fake.text_of(c.last).count("#1") == 1


async def test_kill_in_the_middle_of_the_dialog_loses_nothing(
    fake: FakeTelegram, alice: FakeUser, start_bot
) -> None:
    bot = await start_bot()
    c = Customer(fake, alice)
    c.command("/new")
    await c.expect("What is your request about?")
    c.press("Something works wrong")
    await c.expect("what is it about?")
    c.say("Reports are empty")
    await c.expect("Describe it in detail")
    c.say("The monthly report shows no rows since Monday.")
    await c.expect("Your account number")
    await bot.settled()  # the question's delivery is recorded as sent (see delivery.py)
    bot.kill()  # kill -9 in the middle of the dialog
    c.say("31415926")  # written while the bot is down: Telegram keeps it until it is back
    await bot.start()
    await c.expect("Attach screenshots")
    fake.send_photo(alice)
    summary = await c.expect(
        "Reports are empty", "The monthly report shows no rows since Monday.", "31415926"
    )
    await bot.settled()  # the summary is recorded as sent: the restart does not repeat it
    bot.kill()
    await bot.start()
    c.press("Send", summary)
    await c.expect("#1 is registered")
    card = fake.text_of(await _card(fake, 1))
    assert "Reports are empty" in card and "31415926" in card


async def test_a_redelivered_update_is_not_applied_twice(
    fake: FakeTelegram, alice: FakeUser, start_bot
) -> None:
    """Killed after handling an update but before confirming it, the bot gets it again after
    the restart: it must not register or relay anything twice."""
    bot = await start_bot()
    c = Customer(fake, alice)
    await c.open_request(topic="Only once")
    await _card(fake, 1)
    c.say("relay me once")
    await fake.next_message(STAFF_CHAT_ID)
    send = next(
        u
        for u in fake.update_history
        if u.get("callback_query", {}).get("data", "").startswith("dlg:send")
    )
    relay = next(
        u for u in fake.update_history if u.get("message", {}).get("text") == "relay me once"
    )
    await bot.settled()  # the relay is recorded as sent: only a redelivery could repeat it
    told = len(fake.bot_messages(alice.id))
    bot.kill()
    fake.redeliver(send)
    fake.redeliver(relay)
    await bot.start()
    await bot.settled()  # both redelivered updates are handled, and their effects sent
    assert len(fake.bot_messages(alice.id)) == told, fake.bot_messages(alice.id)[told:]
    relays = [m for m in fake.messages(STAFF_CHAT_ID) if fake.text_of(m) == "relay me once"]
    assert len(relays) == 1
    assert len([m for m in fake.messages(STAFF_CHAT_ID) if "Only once" in fake.text_of(m)]) == 1
