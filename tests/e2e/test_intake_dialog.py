"""The customer's request dialog, end to end: the real bot process, the emulated Bot API."""

from __future__ import annotations

from bot.emulator import FakeTelegram, FakeUser
from tests.e2e.driver import Customer, number_in
from tests.e2e.harness import STAFF_CHAT_ID


async def test_whole_dialog_in_english(fake: FakeTelegram, alice: FakeUser, start_bot) -> None:
    await start_bot()
    customer = Customer(fake, alice)
    customer.command("/start")
    greeting = await customer.expect("Hello, Alice!", "e-Comet support")
    customer.press("New request", greeting)
    kinds = await customer.expect("What is your request about?")
    assert fake.buttons(kinds)[:4] == [
        "🔥 The service stopped working for me",
        "⚠️ Something works wrong",
        "❓ A question or information",
        "💡 A change or a new feature",
    ]
    customer.press("Something works wrong")
    await customer.expect("what is it about?", "3–100")
    customer.say("  Payment   page is blank  ")
    await customer.expect("Describe it in detail", "10–4000")
    customer.say("When I open the payment page it stays blank.\nChrome 120, Windows 11.")
    account_q = await customer.expect("Your account number")
    assert fake.buttons(account_q) == ["← Back", "✖ Cancel"]  # nothing saved yet to offer
    customer.say("0042-1337")
    await customer.expect("Attach screenshots", "album counts as one answer")
    customer.fake.send_photo(alice)
    summary = await customer.expect(
        "Please check your request",
        "Kind: Incident",
        "Topic: Payment page is blank",
        "Account: 00421337",
        "Screenshots: 1",
        "Chrome 120, Windows 11.",
    )
    assert fake.buttons(summary) == ["✅ Send", "← Back", "✖ Cancel"]
    customer.press("Send", summary)
    notice = await customer.expect("Your request #1 is registered.", "Priority".lower()[1:])
    assert "P2 high" in customer.text(notice)
    assert "a support specialist will answer in this chat" in customer.text(notice)
    assert fake.buttons(fake.message(alice.id, summary["message_id"])) == []

    card = await fake.next_message(STAFF_CHAT_ID)
    text = fake.text_of(card)
    for expected in (
        "#1",
        "Инцидент",
        "P2 высокий",
        "Payment page is blank",
        "00421337",
        "Alice",
        "@alice",
        "1001",
        "Новое",
        "When I open the payment page",
    ):
        assert expected in text, (expected, text)
    photo = await fake.next_message(STAFF_CHAT_ID)
    assert photo["photo"] and photo["reply_to_message"]["message_id"] == card["message_id"]

    customer.command("/my")
    await customer.expect("Your requests", "#1", "Payment page is blank", "New")


async def test_whole_dialog_in_russian(fake: FakeTelegram, boris: FakeUser, start_bot) -> None:
    await start_bot()
    customer = Customer(fake, boris)
    customer.command("/new")
    await customer.expect("С чем связано обращение?")
    customer.press("Вопрос или нужна информация")
    await customer.expect("Коротко, о чём обращение?")
    customer.say("Как сменить тариф")
    await customer.expect("Опишите подробно")
    customer.say("Хочу перейти на годовой тариф, где это сделать?")
    await customer.expect("лицевого счёта")
    customer.say("777777")
    await customer.expect("Приложите скриншоты")
    customer.press("Пропустить")
    summary = await customer.expect(
        "Проверьте обращение", "Запрос на обслуживание", "Скриншотов: 0"
    )
    customer.press("Отправить", summary)
    notice = await customer.expect("Ваше обращение #1 зарегистрировано", "P3 обычный")
    assert "специалист поддержки ответит" in customer.text(notice)
    card = await fake.next_message(STAFF_CHAT_ID)
    assert "Как сменить тариф" in fake.text_of(card)


async def test_every_bad_input_is_answered_and_nothing_is_lost(
    fake: FakeTelegram, alice: FakeUser, start_bot
) -> None:
    bot = await start_bot()
    c = Customer(fake, alice)
    c.command("/new")
    kinds = await c.expect("What is your request about?")
    # Kind: typing or a sticker instead of a button.
    c.say("it is broken")
    await c.expect("Please choose one of the buttons", "What is your request about?")
    fake.send_sticker(alice)
    await c.expect("Please choose one of the buttons")
    c.press("stopped working", kinds)  # the first question's buttons still work at this step
    await c.expect("what is it about?")
    # Topic: sticker, voice, too short, too long, an unknown command.
    fake.send_sticker(alice)
    await c.expect("Stickers, voice messages and files can't be used here", "what is it about?")
    fake.send_voice(alice)
    await c.expect("Stickers, voice messages and files can't be used here")
    c.say("ab")
    await c.expect("too short: at least 3 characters", "what is it about?")
    c.say("x" * 101)
    await c.expect("too long: at most 100 characters")
    c.say("/frobnicate")
    await c.expect("Unknown command", "what is it about?")
    # A stale button (a client that still shows the answered question's keyboard).
    fake.press_data(alice, alice.id, kinds["message_id"], "kind:incident:1")
    await c.expect("what is it about?")
    # Garbage callback data (a forged or outdated client) is answered, and changes nothing.
    fake.press_data(alice, alice.id, kinds["message_id"], "kind:nonsense")
    await bot.expect_silence(alice.id)
    assert fake.answers, "the stale press was not answered"
    c.say("Site is down")
    await c.expect("Describe it in detail")
    # Description: too short, too long, a photo without caption (kept), a non-image file.
    c.say("broken")
    await c.expect("too short: at least 10 characters")
    c.say("y" * 4001)
    await c.expect("too long: at most 4000 characters")
    fake.send_photo(alice)
    await c.expect("Screenshot saved. Now please describe the problem in words.")
    fake.send_document(alice, file_name="report.pdf", mime_type="application/pdf")
    await c.expect("can't be used here")
    c.say("Nothing loads since 10:00, every page times out.")
    await c.expect("Your account number")
    # Account: letters, a sticker, too short.
    c.say("my account")
    await c.expect("doesn't look like an account number", "Your account number")
    fake.send_sticker(alice)
    await c.expect("Please send the account number as text")
    c.say("123")
    await c.expect("doesn't look like an account number")
    c.say("55554444")
    await c.expect("Attach screenshots")
    # Screenshots: text, a PDF, a voice note.
    c.say("no screenshots sorry")
    await c.expect("Please send a screenshot, or press Skip")
    fake.send_document(alice, file_name="report.pdf", mime_type="application/pdf")
    await c.expect("Only images are accepted here")
    fake.send_voice(alice)
    await c.expect("That is not an image")
    fake.send_document(alice, file_name="screen.png", mime_type="image/png")
    summary = await c.expect("Please check your request", "Screenshots: 2")
    # Confirm: typing instead of pressing.
    c.say("ok send it")
    summary = await c.expect("Press Send to register the request", "Please check your request")
    c.press("Send", summary)
    await c.expect("#1 is registered")
    assert len(fake.answers) == len([u for u in fake.update_history if "callback_query" in u])
    card = fake.text_of(await fake.next_message(STAFF_CHAT_ID))
    assert "Site is down" in card and "Nothing loads since 10:00" in card and "55554444" in card
    assert "2 screenshots below" in card or "2 скриншота ниже" in card
    # Both files (the photo from the description step and the PNG) reach staff.
    media = await fake.next_message(STAFF_CHAT_ID)
    second = await fake.next_message(STAFF_CHAT_ID)
    assert {"photo", "document"} <= set(media) | set(second)


async def test_back_cancel_and_stale_summary(
    fake: FakeTelegram, alice: FakeUser, start_bot
) -> None:
    bot = await start_bot()
    c = Customer(fake, alice)
    c.command("/cancel")
    await c.expect("There is nothing to cancel")
    c.command("/new")
    await c.expect("What is your request about?")
    c.press("new feature")
    await c.expect("what is it about?")
    c.press("Back")
    await c.expect("What is your request about?")
    c.press("question or information")
    await c.expect("what is it about?")
    c.say("Dark theme")
    await c.expect("Describe it in detail")
    c.command("/new")  # a second /new does not wipe the answers
    await c.expect("You are already filling in a request", "Describe it in detail")
    c.say("Please add a dark theme to the dashboard.")
    await c.expect("Your account number")
    c.say("12341234")
    await c.expect("Attach screenshots")
    c.press("Skip")
    first_summary = await c.expect("Please check your request", "Dark theme")
    c.press("Back", first_summary)
    await c.expect("Attach screenshots")
    c.press("Skip")
    await c.expect("Please check your request")
    # A client still showing the old summary's button: no longer the current question.
    old_send = first_summary["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    fake.press_data(alice, alice.id, first_summary["message_id"], old_send)
    await c.expect("That button belongs to an earlier question", "Please check your request")
    c.press("Cancel")
    await c.expect("The request is cancelled; nothing was sent.")
    await bot.expect_silence(STAFF_CHAT_ID)
    c.command("/my")
    await c.expect("You have no requests yet")


async def test_user_text_is_escaped_everywhere(
    fake: FakeTelegram, alice: FakeUser, start_bot
) -> None:
    await start_bot()
    c = Customer(fake, alice)
    topic = "<b>Bold</b> & <script>"
    description = 'Error: <div class="x">&amp; 5 < 6 > 4</div> <a href="http://e.vil">click</a>'
    number = await c.open_request(topic=topic, description=description, account="99990000")
    assert number == 1
    card = await fake.next_message(STAFF_CHAT_ID)
    text = fake.text_of(card)
    assert topic in text and description in text
    # Nothing the customer typed became formatting.
    assert all(
        e["type"] != "text_link" or e["url"].startswith("tg://user") for e in card["entities"]
    )
    c.command("/my")
    await c.expect(topic)


async def test_second_request_offers_last_account_and_send_twice_registers_once(
    fake: FakeTelegram, alice: FakeUser, start_bot
) -> None:
    bot = await start_bot()
    c = Customer(fake, alice)
    assert await c.open_request(account="11112222") == 1
    c.command("/new")
    await c.expect("What is your request about?")
    c.press("new feature")
    await c.expect("what is it about?")
    c.say("Export to Excel")
    await c.expect("Describe it in detail")
    c.say("Please add an export of invoices to Excel.")
    account_q = await c.expect("Your account number")
    c.press("Use 11112222", account_q)
    await c.expect("Attach screenshots")
    c.press("Skip")
    summary = await c.expect("Account: 11112222")
    c.press("Send", summary)
    c.press("Send", summary)  # a double tap
    notice = await c.expect("is registered")
    assert number_in(c.text(notice)) == 2
    await bot.expect_silence(alice.id)
    cards = [m for m in fake.messages(STAFF_CHAT_ID) if "#2" in fake.text_of(m)]
    assert len(cards) == 1


async def test_language_can_be_switched(fake: FakeTelegram, alice: FakeUser, start_bot) -> None:
    bot = await start_bot()
    c = Customer(fake, alice)
    c.command("/language")
    menu = await c.expect("Choose the language")
    c.press("Русский", menu)
    await fake.wait_for_call(
        "setMyCommands", lambda call: call.params.get("scope", {}).get("chat_id") == alice.id
    )
    await c.edited(menu, "Язык: Русский")
    c.command("/help")
    await c.expect("Я — служба поддержки e-Comet", "/new")
    c.fake.press_data(alice, alice.id, menu["message_id"], "lang:de")  # forged: no such language
    await bot.expect_silence(alice.id)
    c.command("/help")
    await c.expect("Я — служба поддержки")


async def test_after_hours_customer_is_told_when_we_answer(
    fake: FakeTelegram, alice: FakeUser, start_bot
) -> None:
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    # A one-minute window that is certainly not now.
    now = datetime.now(ZoneInfo("Europe/Moscow"))
    start = (now + timedelta(hours=3)).replace(second=0, microsecond=0)
    window = f"{start:%H:%M}-{(start + timedelta(minutes=1)):%H:%M}"
    if start.hour == 23 and start.minute == 59:
        window = "00:00-00:01"
    await start_bot(SUPPORT_HOURS=window)
    c = Customer(fake, alice)
    await c.open_request()
    notice = c.text()
    assert "Support works" in notice and "We will answer from" in notice
    assert f"{start:%H:%M}" in notice or "00:00" in notice


async def test_an_album_is_one_answer(fake: FakeTelegram, alice: FakeUser, start_bot) -> None:
    bot = await start_bot()
    c = Customer(fake, alice)
    c.command("/new")
    await c.expect("What is your request about?")
    c.press("Something works wrong")
    await c.expect("what is it about?")
    c.say("Broken charts")
    await c.expect("Describe it in detail")
    # An album at the description step: its caption is the text, all its photos are kept.
    fake.send_album(alice, n=2, caption="Charts on the dashboard are empty since the update.")
    await c.expect("Your account number")
    c.say("12345678")
    await c.expect("Attach screenshots")
    fake.send_album(alice, n=3)
    summary = await c.expect("Please check your request")
    await c.edited(summary, "Screenshots: 5")
    await bot.expect_silence(alice.id)  # one answer: one summary, no repeats
    c.press("Send", summary)
    await c.expect("#1 is registered")
    card = await fake.next_message(STAFF_CHAT_ID)
    assert "5 скриншотов ниже" in fake.text_of(card)
    album = [await fake.next_message(STAFF_CHAT_ID) for _ in range(5)]
    assert len({m["media_group_id"] for m in album}) == 1
    assert all(m["reply_to_message"]["message_id"] == card["message_id"] for m in album)
