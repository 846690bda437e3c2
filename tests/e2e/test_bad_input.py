"""Bad input found by reading the code (issue 10, item 7): HTML in a macro title, forged
callback data with numbers beyond the database's integers, formulas in the CSV export, and a
daily summary for a day before the desk existed."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from babel.dates import format_date

from bot.emulator import FakeTelegram, FakeUser
from tests.e2e.driver import Customer
from tests.e2e.harness import STAFF_CHAT_ID

MANAGER = 3001
HUGE = "9" * 20  # beyond 2**63 - 1: SQLite raised OverflowError for it


async def _staff_text(fake: FakeTelegram) -> str:
    return fake.text_of(await fake.next_message(STAFF_CHAT_ID))


def _no_failures(log: str) -> None:
    for marker in ("OverflowError", "Traceback", "can't parse entities"):
        assert marker not in log, f"{marker!r} in the bot's log:\n{log[-3000:]}"


async def test_a_macro_title_with_html_is_shown_as_written(
    fake: FakeTelegram, alice: FakeUser, anna: FakeUser, start_bot
) -> None:
    bot = await start_bot()
    c = Customer(fake, alice)
    number = await c.open_request()
    card = await fake.next_message(STAFF_CHAT_ID)
    title = '<b>Promo</b> & "VIP" <i'
    fake.send_command(anna, f"/macro_add {title} | Hello, {{name}}!", chat_id=STAFF_CHAT_ID)
    saved = await _staff_text(fake)
    assert "сохранён" in saved and title in saved
    fake.send_command(anna, "/macros", chat_id=STAFF_CHAT_ID, reply_to=card)
    listing = await fake.next_message(STAFF_CHAT_ID)
    assert title in fake.text_of(listing)
    # The same title again: the refusal names it (it used to break the message's HTML, so
    # staff got nothing at all).
    fake.send_command(anna, f"/macro_add {title} | Other", chat_id=STAFF_CHAT_ID)
    refusal = await _staff_text(fake)
    assert title in refusal and "/macro_edit" in refusal, refusal
    # Sent with one press: the press is answered with the title, the customer gets the text.
    press = fake.press(anna, listing, "Promo")
    assert title in (await fake.wait_for_answer(press))["text"]
    await c.expect("Hello, Alice!")
    fake.send_command(anna, f"/macro_edit {title} | Hi", chat_id=STAFF_CHAT_ID)
    assert title in await _staff_text(fake)
    fake.send_command(anna, f"/macro_del {title}", chat_id=STAFF_CHAT_ID)
    assert title in await _staff_text(fake)
    fake.send_command(anna, f"/macro_del {title}", chat_id=STAFF_CHAT_ID)
    assert title in await _staff_text(fake)  # "there is no saved answer …"
    assert f"#{number}" in fake.text_of(card)
    _no_failures(bot.log())


async def test_forged_callbacks_with_huge_numbers_are_refused(
    fake: FakeTelegram, alice: FakeUser, anna: FakeUser, start_bot
) -> None:
    bot = await start_bot()
    c = Customer(fake, alice)
    number = await c.open_request()
    card = await fake.next_message(STAFF_CHAT_ID)
    own = fake.messages(alice.id)[-1]
    # The customer's buttons: confirm, rate, close, pick a ticket — with forged numbers.
    for data in (
        f"ok:{HUGE}:1",
        f"ok:{HUGE}:0",
        f"rate:{HUGE}:5",
        f"rate:{number}:{HUGE}",
        f"cm:{HUGE}",
        f"pick:{HUGE}",
        "ok:-1:1",
        f"dlg:new:{HUGE}",
    ):
        press = fake.press_data(alice, alice.id, own["message_id"], data)
        answer = await fake.wait_for_answer(press)
        assert answer["text"] == "This button is no longer active.", (data, answer)
    # Staff buttons on the card: a macro, an assignee, a ticket, a queue page.
    for data in (
        f"mc:{HUGE}:{number}",
        f"mc:1:{HUGE}",
        f"st:as:{number}:{HUGE}",
        f"st:take:{HUGE}:0",
        f"q:{HUGE}",
    ):
        press = fake.press_data(anna, STAFF_CHAT_ID, card["message_id"], data)
        answer = await fake.wait_for_answer(press)
        assert answer["text"] == "Эта кнопка уже неактивна.", (data, answer)
    # Commands with numbers that are too big (or not ASCII digits) are usage errors.
    fake.send_command(anna, f"/ticket {HUGE}", chat_id=STAFF_CHAT_ID)
    assert "Использование: /ticket 123" in await _staff_text(fake)
    fake.send_command(anna, f"/find {HUGE}", chat_id=STAFF_CHAT_ID)
    assert "ничего не найдено" in await _staff_text(fake)
    fake.send_command(anna, "/ticket ²", chat_id=STAFF_CHAT_ID)
    assert "Использование: /ticket 123" in await _staff_text(fake)
    fake.send_command(anna, "/queue ²", chat_id=STAFF_CHAT_ID)
    assert "Открытых обращений: 1" in await _staff_text(fake)
    # Nothing changed, nothing failed.
    assert "Статус: Новое" in fake.text_of(fake.message(STAFF_CHAT_ID, card["message_id"]))
    await bot.expect_silence(alice.id)
    _no_failures(bot.log())


async def test_the_export_neutralises_formulas(
    fake: FakeTelegram, alice: FakeUser, start_bot
) -> None:
    boss = fake.add_user(MANAGER, "Maria", username="boss", language_code="en")
    # A staff member whose name a spreadsheet would run, too.
    agent = fake.add_user(2002, "@SUM(1+1)", last_name="+x", language_code="ru")
    fake.add_member(STAFF_CHAT_ID, agent)
    await start_bot(MANAGER_IDS=str(MANAGER), SUMMARY_TIME="23:59:59")
    c = Customer(fake, alice)
    topic = "=cmd|' /C calc'!A0"
    await c.open_request(topic=topic)
    card = await fake.next_message(STAFF_CHAT_ID)
    take = fake.press(agent, card, "Взять")
    await fake.wait_for_answer(take)
    await c.expect("@SUM(1+1) +x", "#1")
    await c.open_request(topic="-2+3 and a plain one")
    manager = Customer(fake, boss)
    manager.command("/export")
    while "document" not in (document := await fake.next_message(MANAGER)):
        pass  # a summary may come first
    data = fake.file_bytes(document["document"]["file_id"])
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    header, first, second = rows
    topic_at, assignee_at = header.index("Topic"), header.index("Assignee")
    assert first[topic_at] == "'" + topic
    assert first[assignee_at] == "'@SUM(1+1) +x"
    assert second[topic_at] == "'-2+3 and a plain one"
    assert first[0] == "1" and first[assignee_at + 1] == "1"  # numbers stay numbers
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (cell, row)


def _midday_zone() -> tuple[str, datetime]:
    """A zone (UTC+k) where it is about noon now, far from midnight on either side: the test
    does not depend on when it runs."""
    utc = datetime.now(UTC)
    k = 12 - utc.hour
    if k < -12:
        k += 24
    if k > 14:
        k -= 24
    # Etc/GMT-k is UTC+k (POSIX signs).
    name = "UTC" if k == 0 else f"Etc/GMT{-k:+d}"
    return name, utc + timedelta(hours=k)


async def test_a_fresh_desk_sends_no_summary_for_the_day_before_it_existed(
    fake: FakeTelegram, start_bot
) -> None:
    boss = fake.add_user(MANAGER, "Maria", username="boss", language_code="en", started=True)
    zone, local = _midday_zone()
    # The summary is due some seconds after start: until then, the day due is yesterday — a
    # day this desk did not exist. It used to get "Support summary for yesterday: 0" at once.
    summary_at = (local + timedelta(seconds=15)).strftime("%H:%M:%S")
    await start_bot(
        MANAGER_IDS=str(MANAGER),
        TIMEZONE=zone,
        SUMMARY_TIME=summary_at,
        SCHEDULER_INTERVAL="0.3",
    )
    # The summary is a timer: the sweeps of the first seconds are listened to, not awaited.
    await fake.expect_silence(MANAGER, within=3.0)
    manager = Customer(fake, boss)
    # A manager the bot has not met yet gets it in DEFAULT_LOCALE (ru).
    today = format_date(local.date(), "d MMMM y", locale="ru")
    await manager.expect(f"Сводка поддержки за {today}", timeout=30)
    await fake.next_message(MANAGER)  # the chart
    await fake.expect_silence(MANAGER, within=1.5)  # later sweeps send it no second time
