"""The staff group in a plain (non-forum) supergroup: buttons, answers, notes, commands."""

from __future__ import annotations

from bot.emulator import FakeTelegram, FakeUser
from tests.e2e.driver import Customer
from tests.e2e.harness import STAFF_CHAT_ID
from tests.waiting import eventually


async def _new_ticket(fake: FakeTelegram, customer: Customer, **kwargs) -> tuple[int, dict]:
    number = await customer.open_request(**kwargs)
    card = await fake.next_message(STAFF_CHAT_ID)
    assert f"#{number}" in fake.text_of(card)
    return number, card


def _text_now(fake: FakeTelegram, message: dict) -> str:
    return fake.text_of(fake.message(STAFF_CHAT_ID, message["message_id"]))


async def _card_shows(fake: FakeTelegram, card: dict, *fragments: str) -> str:
    def shown() -> str | None:
        text = _text_now(fake, card)
        return text if all(f in text for f in fragments) else None

    return await eventually(
        shown, lambda: f"card never showed {fragments}:\n{_text_now(fake, card)}"
    )


async def test_card_buttons_change_the_ticket_and_the_card(
    fake: FakeTelegram, alice: FakeUser, anna: FakeUser, boris_staff: FakeUser, start_bot
) -> None:
    bot = await start_bot()
    c = Customer(fake, alice)
    _number, card = await _new_ticket(fake, c)
    assert fake.buttons(card) == [
        "🙋 Взять",
        "👥 Назначить",
        "⚡ Приоритет",
        "🎚 Линия",
        "❔ Запросить данные",
        "✅ Решено",
        "🔒 Закрыть",
        "📜 История",
        "🔗 Привязать к проблеме",
    ]
    # Take: the card shows the assignee and the status; the customer is told.
    take = fake.press(anna, card, "Взять")
    assert "теперь у вас" in (await fake.wait_for_answer(take))["text"]
    await _card_shows(fake, card, "Исполнитель: Anna", "Статус: В работе")
    await c.expect("Anna", "#1")
    # A second Take by someone else: told who has it; nothing changes.
    second = fake.press(boris_staff, card, "Взять")
    answer = await fake.wait_for_answer(second)
    assert "уже взял(а) Anna" in answer["text"] and answer["show_alert"]
    # Priority and line through their menus.
    fake.press(boris_staff, card, "Приоритет")
    await _wait_buttons(fake, card, "P4 низкий")
    fake.press(boris_staff, card, "P4 низкий")
    await _card_shows(fake, card, "P4 низкий")
    fake.press(boris_staff, card, "Линия")
    await _wait_buttons(fake, card, "Линия 2")
    fake.press(boris_staff, card, "Линия 2")
    await _card_shows(fake, card, "Линия: 2")
    # Assign to Boris (an admin of the group).
    fake.press(anna, card, "Назначить")
    await _wait_buttons(fake, card, "Boris")
    fake.press(anna, card, "Boris")
    await _card_shows(fake, card, "Исполнитель: Boris")
    await c.expect("Boris", "#1")
    # Ask info: the customer is asked; their answer brings the ticket back to work.
    asked = fake.press(anna, card, "Запросить данные")
    assert "ответом на карточку" in (await fake.wait_for_answer(asked))["text"]
    await _card_shows(fake, card, "Ждёт ответа клиента")
    await c.expect("more information", "#1")
    c.say("Here is the extra information you asked for.")
    relayed = await fake.next_message(STAFF_CHAT_ID)
    assert fake.text_of(relayed) == "Here is the extra information you asked for."
    await _card_shows(fake, card, "Статус: В работе")
    # History lists who did what.
    fake.press(anna, card, "История")
    history = fake.text_of(await fake.next_message(STAFF_CHAT_ID))
    for fragment in ("История #1", "Anna", "Boris", "приоритет", "линия: 1 → 2", "исполнитель"):
        assert fragment in history, (fragment, history)
    # Resolve: the customer is told; a resolved ticket waits for the customer, so staff
    # cannot close it (the lifecycle of SPEC §3) and are told why.
    fake.press(anna, card, "Решено")  # asks for the answer in the ticket's thread
    prompt = await fake.next_message(STAFF_CHAT_ID)
    assert "Ответьте на это сообщение" in fake.text_of(prompt)
    await bot.settled()  # the prompt is recorded as sent: a reply to it finds the ticket
    fake.send_text(anna, "Fixed on our side.", chat_id=STAFF_CHAT_ID, reply_to=prompt)
    await c.expect("Fixed on our side.")
    await c.expect("Is the problem solved?", "#1")
    await _card_shows(fake, card, "Решено, ждёт подтверждения")
    refused = fake.press(anna, card, "Закрыть")
    assert "сейчас это невозможно" in (await fake.wait_for_answer(refused))["text"]
    # Close a new ticket (a duplicate): a closed card keeps only History.
    second, card_2 = await _new_ticket(fake, c, topic="Duplicate")
    fake.press(anna, card_2, "Закрыть")
    await _card_shows(fake, card_2, "Статус: Закрыто")
    await c.expect("closed by support", f"#{second}")
    await _wait_buttons(fake, card_2, "История")
    assert fake.buttons(fake.message(STAFF_CHAT_ID, card_2["message_id"])) == ["📜 История"]
    # A stale press on the closed ticket changes nothing and says why.
    stale = fake.press_data(anna, STAFF_CHAT_ID, card_2["message_id"], f"st:take:{second}:0")
    assert "закрыто" in (await fake.wait_for_answer(stale))["text"]


async def _wait_buttons(fake: FakeTelegram, card: dict, label: str) -> None:
    def buttons() -> list[str]:
        return fake.buttons(fake.message(STAFF_CHAT_ID, card["message_id"]))

    await eventually(
        lambda: any(label in b for b in buttons()), lambda: f"no button {label!r}: {buttons()}"
    )


async def test_answers_go_to_the_customer_and_notes_stay_inside(
    fake: FakeTelegram, alice: FakeUser, anna: FakeUser, start_bot
) -> None:
    bot = await start_bot()
    c = Customer(fake, alice)
    number, card = await _new_ticket(fake, c)
    # A reply to the card is an answer: copied to the customer, and the ticket is taken.
    answer = fake.send_text(
        anna,
        "Hello! Try clearing the cache <please> & reload.",
        chat_id=STAFF_CHAT_ID,
        reply_to=card,
    )
    await c.expect("Anna", f"#{number}")  # taken by the first answer
    copy = await c.expect("Try clearing the cache <please> & reload.")
    await _card_shows(fake, card, "Исполнитель: Anna")
    # An internal note never leaves the group.
    fake.send_text(
        anna, "!customer seems confused, check logs", chat_id=STAFF_CHAT_ID, reply_to=card
    )
    await bot.expect_silence(alice.id)
    # The customer replies to the answer: it reaches staff as a reply to Anna's message.
    c.say("Did not help", reply_to=copy)
    relayed = await fake.next_message(STAFF_CHAT_ID)
    assert fake.text_of(relayed) == "Did not help"
    await bot.settled()  # the relayed message is recorded: a reply to it finds the ticket
    # Staff reply to that relayed message: the customer gets it as a reply to their own.
    fake.send_text(anna, "Then send a screenshot, please.", chat_id=STAFF_CHAT_ID, reply_to=relayed)
    second = await c.expect("Then send a screenshot, please.")
    assert second["reply_to_message"]["text"] == "Did not help"
    # A photo from staff goes too.
    fake.send_photo(anna, caption="like this", chat_id=STAFF_CHAT_ID, reply_to=card)
    photo = await c.expect("like this")
    assert photo["photo"]
    # An edit of an answer is carried to the customer's copy.
    fake.edit_text(anna, answer, "Hello! Try clearing the cache and reload.")
    await c.edited(copy, "Try clearing the cache and reload.")
    # Staff talking among themselves (no reply) goes nowhere.
    fake.send_text(anna, "coffee?", chat_id=STAFF_CHAT_ID)
    await bot.expect_silence(alice.id)
    # The history has the note, marked as internal.
    fake.send_command(anna, f"/ticket {number}", chat_id=STAFF_CHAT_ID)
    await fake.next_message(STAFF_CHAT_ID)  # the card copy
    history = fake.text_of(await fake.next_message(STAFF_CHAT_ID))
    assert "внутренняя заметка: customer seems confused, check logs" in history


async def test_forged_and_misplaced_presses_change_nothing(
    fake: FakeTelegram, alice: FakeUser, anna: FakeUser, start_bot
) -> None:
    bot = await start_bot()
    c = Customer(fake, alice)
    first, card_1 = await _new_ticket(fake, c, topic="First problem")
    second, card_2 = await _new_ticket(fake, c, topic="Second problem")
    # The customer forges a staff button in their private chat.
    own = fake.messages(alice.id)[-1]
    fake.press_data(alice, alice.id, own["message_id"], f"st:cls:{first}:0")
    # Staff press a button whose data names another ticket than the card it is on.
    forged = fake.press_data(anna, STAFF_CHAT_ID, card_1["message_id"], f"st:cls:{second}:0")
    assert (await fake.wait_for_answer(forged))["show_alert"]
    # Assigning to someone who is not in the staff group.
    outsider = fake.add_user(3001, "Mallory", language_code="en")
    fake.press(anna, card_1, "Назначить")
    await _wait_buttons(fake, card_1, "Назад")
    forged = fake.press_data(
        anna, STAFF_CHAT_ID, card_1["message_id"], f"st:as:{first}:{outsider.id}"
    )
    assert (await fake.wait_for_answer(forged))["show_alert"]
    await bot.expect_silence(alice.id)
    for card in (card_1, card_2):
        text = fake.text_of(fake.message(STAFF_CHAT_ID, card["message_id"]))
        assert "Статус: Новое" in text and "Исполнитель: —" in text


async def test_staff_commands(
    fake: FakeTelegram, alice: FakeUser, anna: FakeUser, start_bot
) -> None:
    await start_bot()
    c = Customer(fake, alice)
    await _new_ticket(fake, c, topic="Low one", kind="new feature")
    number, card = await _new_ticket(fake, c, topic="Urgent one", kind="stopped working")
    fake.send_command(anna, "/queue", chat_id=STAFF_CHAT_ID)
    queue = fake.text_of(await fake.next_message(STAFF_CHAT_ID))
    assert queue.index("Urgent one") < queue.index("Low one")  # P1 before P4
    assert "Открытых обращений: 2" in queue
    assert queue.count("SLA: ⏱ до первого ответа:") == 2  # the SLA state of each
    fake.send_command(anna, "/find urgent", chat_id=STAFF_CHAT_ID)
    found = fake.text_of(await fake.next_message(STAFF_CHAT_ID))
    assert f"#{number}" in found and "Low one" not in found
    fake.send_command(anna, "/find @alice", chat_id=STAFF_CHAT_ID)
    assert "Urgent one" in fake.text_of(await fake.next_message(STAFF_CHAT_ID))
    fake.send_command(anna, "/ticket 999", chat_id=STAFF_CHAT_ID)
    assert "#999" in fake.text_of(await fake.next_message(STAFF_CHAT_ID))
    # Saved answers: add, list, send with placeholders, edit, delete.
    fake.send_command(
        anna,
        "/macro_add Greeting | Hello, {name}! We are on #{number} <now>.",
        chat_id=STAFF_CHAT_ID,
    )
    assert "сохранён" in fake.text_of(await fake.next_message(STAFF_CHAT_ID))
    fake.send_command(anna, "/macros", chat_id=STAFF_CHAT_ID, reply_to=card)
    listing = await fake.next_message(STAFF_CHAT_ID)
    fake.press(anna, listing, "Greeting")
    await c.expect(f"Hello, Alice! We are on #{number} <now>.")
    fake.send_command(anna, "/macro_edit Greeting | Hi {name}", chat_id=STAFF_CHAT_ID)
    assert "обновлён" in fake.text_of(await fake.next_message(STAFF_CHAT_ID))
    fake.send_command(anna, "/macro_add Bad | {password}", chat_id=STAFF_CHAT_ID)
    assert "password" in fake.text_of(await fake.next_message(STAFF_CHAT_ID))
    fake.send_command(anna, "/macro_del Greeting", chat_id=STAFF_CHAT_ID)
    assert "удалён" in fake.text_of(await fake.next_message(STAFF_CHAT_ID))


async def test_albums_edits_and_a_blocked_customer(
    fake: FakeTelegram, alice: FakeUser, anna: FakeUser, boris_staff: FakeUser, start_bot
) -> None:
    bot = await start_bot()
    c = Customer(fake, alice)
    number, card = await _new_ticket(fake, c)
    # Two staff press Take at the same moment: one wins, the other is told who has it.
    first = fake.press(anna, card, "Взять")
    second = fake.press(boris_staff, card, "Взять")
    answers = [(await fake.wait_for_answer(q))["text"] for q in (first, second)]
    assert sum("теперь у вас" in a for a in answers) == 1
    assert sum("уже взял(а)" in a for a in answers) == 1
    await c.expect("from support", f"#{number}")
    # An album from staff reaches the customer as one album.
    fake.send_album(anna, n=3, caption="three steps", chat_id=STAFF_CHAT_ID, reply_to=card)
    parts = [await fake.next_message(alice.id) for _ in range(3)]
    assert len({p.get("media_group_id") for p in parts}) == 1 and parts[0]["media_group_id"]
    assert parts[0]["caption"] == "three steps"
    # The customer edits a relayed message: the staff copy follows.
    sent = c.say("my acount is 1234")
    relayed = await fake.next_message(STAFF_CHAT_ID)
    await bot.settled()  # the staff copy is recorded: an edit of the original finds it
    fake.edit_text(alice, sent, "my account is 1234")
    await eventually(
        lambda: _text_now(fake, relayed) == "my account is 1234",
        lambda: f"the staff copy was not edited: {_text_now(fake, relayed)!r}",
    )
    # The customer blocks the bot: staff are told in the ticket instead of silence.
    fake.block(alice)
    fake.send_text(anna, "Anything else?", chat_id=STAFF_CHAT_ID, reply_to=card)
    note = await fake.next_message(STAFF_CHAT_ID)
    assert "не доставлено" in fake.text_of(note) and "заблокировал" in fake.text_of(note)
    assert note["reply_to_message"]["message_id"] == card["message_id"]


async def test_the_desk_follows_the_group_when_telegram_upgrades_it(
    fake: FakeTelegram, alice: FakeUser, anna: FakeUser, start_bot
) -> None:
    upgraded, again = -1002000000002, -1003000000003
    bot = await start_bot()
    c = Customer(fake, alice)
    await _new_ticket(fake, c, topic="Before the upgrade")
    # Telegram upgrades the group; the bot sees the service message and follows the new id.
    fake.upgrade_group(STAFF_CHAT_ID, upgraded, by=anna)
    await fake.wait_updates_consumed()
    number = await c.open_request(topic="After the upgrade")
    card = await fake.next_message(upgraded)
    assert f"#{number}" in fake.text_of(card)
    await bot.settled()  # the card is recorded in the new group: a press on it finds the ticket
    fake.press(anna, card, "Взять")
    await c.expect("Anna", f"#{number}")
    # A restart keeps following it (STAFF_CHAT_ID still names the old group).
    await bot.stop()
    await bot.start()
    c.say("Still there?", reply_to=c.last)
    # (On PostgreSQL the restarted desk goes on from what its former self's limits remembered
    # of the group, handed over at the stop, rather than waiting for them to be fresh.)
    relayed = await fake.next_message(upgraded)
    assert fake.text_of(relayed) == "Still there?"
    # The stop recorded what had been sent: nothing is sent again after the restart.
    taken = [m for m in fake.bot_messages(alice.id) if "is now working" in fake.text_of(m)]
    assert len(taken) == 1, [fake.text_of(m) for m in taken]
    # An upgrade the bot did not see: the first send that meets it follows it too.
    fake.upgrade_group(upgraded, again, by=anna, notify=False)
    third = await c.open_request(topic="Unseen upgrade")
    moved_card = await fake.next_message(again)
    assert f"#{third}" in fake.text_of(moved_card)
    assert any(
        call.error_code == 400 and "upgraded" in (call.error or "")
        for call in fake.calls
        if call.method == "sendMessage"
    )

    # ... and keeps it for every process of the desk, not only in its own memory.
    def kept() -> list[tuple[object, ...]]:
        return bot.query("SELECT value FROM desk_settings WHERE key = 'staff_chat_id'")

    await eventually(
        lambda: kept() == [(str(again),)], lambda: f"the desk keeps {kept()}, not {again}"
    )
