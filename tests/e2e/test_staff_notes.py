"""Notes are decided per unit staff sent, and only what the customer can be the addressee of
carries an answer (SPEC §5): albums marked as notes, replies to staff-side posts, edits."""

from __future__ import annotations

import pytest

from bot.emulator import FakeTelegram, FakeUser
from tests.e2e.driver import Customer
from tests.e2e.harness import STAFF_CHAT_ID, BotProcess
from tests.e2e.test_webhook import free_port
from tests.waiting import eventually

KEPT = "Оставлено внутри как заметка"  # the hint to a writer whose reply stayed inside


async def _nothing_reaches(bot: BotProcess, customer: FakeUser, before: int) -> None:
    """Nothing more reaches the customer: once the desk has settled, an album held back for
    its parts has gone or been taken back, so whatever was to reach them has."""
    await bot.settled()
    sent = bot.fake.bot_messages(customer.id)[before:]
    assert not sent, [bot.fake.text_of(m) or "(media)" for m in sent]


async def _marked(fake: FakeTelegram, message: dict) -> None:
    key = (STAFF_CHAT_ID, message["message_id"])
    await eventually(lambda: fake.reactions.get(key) == ["✍"], f"{key} not marked as a note")


def _card(fake: FakeTelegram, card: dict) -> str:
    return fake.text_of(fake.message(STAFF_CHAT_ID, card["message_id"]))


async def _post(fake: FakeTelegram) -> dict:
    """The bot's next message in the staff group, past forum service messages."""
    while True:  # each turn waits for the next message
        message = await fake.next_message(STAFF_CHAT_ID)
        if not any(key.startswith("forum_topic") for key in message):
            return message


async def _hint_to(fake: FakeTelegram, message: dict) -> dict:
    hint = await _post(fake)
    assert KEPT in fake.text_of(hint), fake.text_of(hint)
    assert hint["reply_to_message"]["message_id"] == message["message_id"]
    return hint


async def test_note_albums_and_replies_to_staff_posts_stay_in_the_topic(
    fake: FakeTelegram, alice: FakeUser, anna: FakeUser, boris_staff: FakeUser, start_bot
) -> None:
    fake.groups[STAFF_CHAT_ID].is_forum = True
    bot = await start_bot()
    c = Customer(fake, alice)
    number = await c.open_request(topic="Cannot pay")
    card = await _post(fake)
    thread = card["message_thread_id"]
    await bot.settled()  # the topic is recorded as the ticket's: a message in it finds it
    before = len(fake.bot_messages(alice.id))
    # An album whose caption starts with "!": a note as a whole, every photo of it.
    album = fake.send_album(
        anna, n=3, caption="!what the customer sees", chat_id=STAFF_CHAT_ID, thread_id=thread
    )
    await _marked(fake, album[0])
    # An album sent with /note whose caption is on its last part, which arrives last.
    later = fake.send_album(
        anna,
        n=3,
        caption="/note the same in the admin panel",
        chat_id=STAFF_CHAT_ID,
        thread_id=thread,
        caption_on=2,
    )
    await _marked(fake, later[2])
    await _nothing_reaches(bot, alice, before)
    # Nobody answered: the ticket is not taken.
    await eventually(
        lambda: "Статус: Новое" in _card(fake, card) and "Исполнитель: —" in _card(fake, card),
        f"the card shows the ticket taken:\n{_card(fake, card)}",
    )
    # The history keeps both notes, and what the late caption took back, in order.
    fake.press(anna, card, "История")
    history = await _post(fake)
    text = fake.text_of(history)
    assert "внутренняя заметка: what the customer sees" in text, text
    assert "внутренняя заметка: the same in the admin panel" in text, text
    withdrawn = text.index("сделал(а) альбом заметкой: клиенту ничего не ушло")
    assert text.index("ответил(а) клиенту") < withdrawn, text
    assert text.index("статус: В работе → Новое") > withdrawn, text
    # In the topic, a reply to a note or to the history is staff talking among themselves.
    reply = fake.send_text(
        boris_staff, "Seen it, the gateway is down", chat_id=STAFF_CHAT_ID, reply_to=album[0]
    )
    await _marked(fake, reply)
    to_history = fake.send_text(
        anna, "Thanks, I will tell them.", chat_id=STAFF_CHAT_ID, reply_to=history
    )
    await _hint_to(fake, to_history)  # it may have been meant for the customer: she is told
    assert not fake.bot_messages(alice.id)[before:]
    # A message written in the topic afterwards still reaches the customer.
    fake.send_text(anna, "We are looking into it.", chat_id=STAFF_CHAT_ID, thread_id=thread)
    await c.expect("Anna", f"#{number}")
    await c.expect("We are looking into it.")
    # ... and so does an album without a note's caption, as one album.
    fake.send_album(anna, n=2, caption="like this", chat_id=STAFF_CHAT_ID, thread_id=thread)
    parts = [await fake.next_message(alice.id) for _ in range(2)]
    assert parts[0]["caption"] == "like this" and parts[0]["media_group_id"]


async def test_replies_to_the_card_carry_answers_and_replies_to_staff_posts_do_not(
    fake: FakeTelegram, alice: FakeUser, anna: FakeUser, boris_staff: FakeUser, start_bot
) -> None:
    bot = await start_bot()
    c = Customer(fake, alice)
    number = await c.open_request()
    card = await fake.next_message(STAFF_CHAT_ID)
    before = len(fake.bot_messages(alice.id))
    # A "!" album as a reply to the card, its caption on the last part: the parts that came
    # first were held with the album, and are taken back with it.
    album = fake.send_album(
        anna, n=3, caption="!screens of the bug", chat_id=STAFF_CHAT_ID, reply_to=card, caption_on=2
    )
    await _marked(fake, album[2])
    notes = fake.send_album(
        anna, n=2, caption="/note and the logs", chat_id=STAFF_CHAT_ID, reply_to=card
    )
    await _marked(fake, notes[0])
    await _nothing_reaches(bot, alice, before)
    await eventually(
        lambda: "Статус: Новое" in _card(fake, card) and "Исполнитель: —" in _card(fake, card),
        f"the card shows the ticket taken:\n{_card(fake, card)}",
    )
    # A colleague's reply to a note is staff talking: kept as a note, nobody is told.
    note = fake.send_text(anna, "!ask the bank", chat_id=STAFF_CHAT_ID, reply_to=card)
    await _marked(fake, note)
    reply = fake.send_text(boris_staff, "I did, no answer", chat_id=STAFF_CHAT_ID, reply_to=note)
    await _marked(fake, reply)
    # A reply to the history stays inside too, and its writer is told where answers go.
    fake.press(anna, card, "История")
    history = await fake.next_message(STAFF_CHAT_ID)
    assert f"История #{number}" in fake.text_of(history)
    await bot.settled()  # the history is recorded as sent: a reply to it finds the ticket
    to_history = fake.send_text(anna, "Dear customer, hi", chat_id=STAFF_CHAT_ID, reply_to=history)
    await _hint_to(fake, to_history)
    await _nothing_reaches(bot, alice, before)
    # A reply to the card still answers: it takes the ticket.
    answer = fake.send_text(anna, "We are on it.", chat_id=STAFF_CHAT_ID, reply_to=card)
    await c.expect("Anna", f"#{number}")
    copy = await c.expect("We are on it.")
    before = len(fake.bot_messages(alice.id))
    await bot.settled()  # the answer is recorded: a reply to it finds the ticket
    # A reply to an answer is not one: the customer is not the addressee of staff's reply.
    follow = fake.send_text(boris_staff, "Too vague?", chat_id=STAFF_CHAT_ID, reply_to=answer)
    await _hint_to(fake, follow)
    # An answer edited into a note is refused: the customer's copy stays as it was.
    fake.edit_text(anna, answer, "!We are on it (the bank is slow)")
    hint = await fake.next_message(STAFF_CHAT_ID)
    assert "правка не превращает его в заметку" in fake.text_of(hint), fake.text_of(hint)
    assert hint["reply_to_message"]["message_id"] == answer["message_id"]
    # A note edited without its mark stays a note.
    fake.edit_text(anna, note, "ask the bank again")
    await _nothing_reaches(bot, alice, before)
    assert c.text(copy) == "We are on it."
    assert not [
        call
        for call in fake.calls
        if call.method.startswith("edit")
        and str(call.params.get("chat_id")) == str(alice.id)
        and call.params.get("message_id") == copy["message_id"]
    ]
    # And the replies kept inside are in the history as notes.
    fake.press(anna, card, "История")
    text = fake.text_of(await fake.next_message(STAFF_CHAT_ID))
    for kept in ("screens of the bug", "and the logs", "I did, no answer", "Dear customer, hi"):
        assert f"внутренняя заметка: {kept}" in text, (kept, text)


async def test_a_note_caption_that_comes_after_the_album_went_is_kept_and_said(
    fake: FakeTelegram, alice: FakeUser, anna: FakeUser, start_bot
) -> None:
    bot = await start_bot()
    c = Customer(fake, alice)
    await c.open_request()
    card = await fake.next_message(STAFF_CHAT_ID)
    group = "13000000000000042"
    for _ in range(2):
        fake.send_photo(anna, media_group_id=group, chat_id=STAFF_CHAT_ID, reply_to=card)
    await c.expect("Anna")  # the album is an answer: the ticket is taken
    parts = [await fake.next_message(alice.id) for _ in range(2)]
    assert parts[0]["media_group_id"] == parts[1]["media_group_id"]
    late = fake.send_photo(
        anna, "!only for us", media_group_id=group, chat_id=STAFF_CHAT_ID, reply_to=card
    )
    told = await fake.next_message(STAFF_CHAT_ID)
    assert "уже ушла клиенту" in fake.text_of(told), fake.text_of(told)
    assert told["reply_to_message"]["message_id"] == late["message_id"]
    await _marked(fake, late)
    await bot.expect_silence(alice.id)


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_an_answer_to_a_card_telegram_has_not_answered_for_yet_reaches_the_customer(
    fake: FakeTelegram, alice: FakeUser, anna: FakeUser, start_bot, mode: str
) -> None:
    """Telegram shows the card to staff before the bot hears back about it (a busy moment):
    an answer to it in that moment is not taken for staff talking among themselves."""
    if mode == "webhook":
        fake.allow_http_webhooks = True
        port = free_port()
        await start_bot(
            WEBHOOK_URL=f"http://127.0.0.1:{port}",
            WEBHOOK_SECRET="s3cret-token",
            WEB_HOST="127.0.0.1",
            WEB_PORT=str(port),
        )
    else:
        await start_bot()
    c = Customer(fake, alice)
    fake.answer_late("sendMessage", 2.0, chat_id=STAFF_CHAT_ID)
    number = await c.open_request(topic="Slow moment")
    card = await _post(fake)  # there, while the bot still waits for Telegram's answer
    assert f"#{number}" in fake.text_of(card)
    fake.send_text(anna, "We are on it.", chat_id=STAFF_CHAT_ID, reply_to=card)
    await c.expect("is now working on your request", timeout=15)  # the answer takes it
    await c.expect("We are on it.")
