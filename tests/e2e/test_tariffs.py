"""Tariffs end to end (SPEC §12): accounts imported with ``python -m bot accounts import``, the
dialog recognising a known account, and requests opened at 23:00: a premium customer's deadline
counts in 24/7 hours, a standard customer's waits for 09:00. Cards, /ticket and /queue show it.

The bot runs on the real clock; "23:00" is made by its time zone: a fixed-offset zone in which
it is now between 23:00 and midnight (or just past it: the standard deadlines are the same)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.emulator import FakeTelegram, FakeUser
from bot.views.formatting import day_time
from tests.e2e.driver import Customer
from tests.e2e.harness import ROOT, STAFF_CHAT_ID, as_utc
from tests.waiting import eventually

TARIFFS = """
default = "standard"

[tariffs.standard]
name = { ru = "Стандарт", en = "Standard" }
hours = "09:00-21:00"
first_response = { P1 = "PT30M", P2 = "PT2H", P3 = "PT8H", P4 = "P1D" }

[tariffs.premium]
name = { ru = "Премиум", en = "Premium" }
hours = "24/7"
boost = 1
kinds = ["problem", "incident", "service"]
first_response = { P1 = "PT30M", P2 = "PT1H", P3 = "PT4H", P4 = "PT8H" }
"""

ACCOUNTS = """account_number,organisation,tariff
10000001,Romashka LLC,premium
20000001,Vasilek JSC,standard
"""


def zone_at_23() -> ZoneInfo:
    """A zone in which the local time is now 23:xx (Etc/GMT+N is N hours behind UTC)."""
    offset = (23 - datetime.now(UTC).hour + 12) % 24 - 12  # local = UTC + offset, -12..11
    return ZoneInfo(f"Etc/GMT{-offset:+d}")


def created_at(bot, number: int) -> datetime:  # type: ignore[no-untyped-def]
    (value,) = bot.query("SELECT created_at FROM tickets WHERE number = ?", number)[0]
    return as_utc(value)


def next_nine(moment: datetime, tz: ZoneInfo) -> datetime:
    """When a 09:00-21:00 desk opens after ``moment`` (which is out of its hours)."""
    local = moment.astimezone(tz)
    day = local.date() if local.time() < time(9) else local.date() + timedelta(days=1)
    return datetime.combine(day, time(9), tz)


async def card_shows(fake: FakeTelegram, card: dict, *fragments: str, within: float = 10) -> str:
    def shown() -> str | None:
        text = fake.text_of(fake.message(STAFF_CHAT_ID, card["message_id"]))
        return text if all(f in text for f in fragments) else None

    return await eventually(
        shown,
        lambda: (
            f"the card never showed {fragments}:\n"
            + fake.text_of(fake.message(STAFF_CHAT_ID, card["message_id"]))
        ),
        within,
    )


async def walk(c: Customer, kind: str, topic: str, account: str, *recognised: str) -> None:
    """The dialog in the customer's language, up to the summary; ``recognised``: what the
    screenshot question starts with once the account is entered."""
    ru = c.user.language_code == "ru"
    c.command("/new")
    await c.expect("С чем связано обращение?" if ru else "What is your request about?")
    c.press(kind)
    await c.expect("Коротко, о чём обращение?" if ru else "what is it about?")
    c.say(topic)
    await c.expect("Опишите подробно" if ru else "Describe it in detail")
    c.say("Everything was fine yesterday; since tonight's update it is broken.")
    await c.expect("лицевого счёта" if ru else "account number")
    c.say(account)
    question = await c.expect("Приложите скриншоты" if ru else "Attach screenshots", *recognised)
    if not recognised:
        assert "✅" not in c.text(question)  # an unknown account is taken silently
    c.press("Пропустить" if ru else "Skip")
    summary = await c.expect("Проверьте обращение" if ru else "Please check your request")
    c.press("Отправить" if ru else "Send", summary)


async def test_premium_and_standard_requests_at_23_00(
    fake: FakeTelegram,
    alice: FakeUser,
    boris: FakeUser,
    anna: FakeUser,
    start_bot,
    tmp_path: Path,
) -> None:
    tz = zone_at_23()
    tariffs = tmp_path / "tariffs.toml"
    tariffs.write_text(TARIFFS, encoding="utf-8")
    bot = await start_bot(TARIFFS_FILE=str(tariffs), TIMEZONE=tz.key)
    accounts = tmp_path / "accounts.csv"
    accounts.write_text(ACCOUNTS, encoding="utf-8")
    imported = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot", "accounts", "import", str(accounts)],
        cwd=ROOT,
        env=bot.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert imported.returncode == 0, imported.stderr
    assert "accounts: 2 added, 0 updated, 0 unchanged" in imported.stdout

    # Carol's account is unknown: the default (standard) tariff; a problem is P1 anyway.
    carol = Customer(fake, fake.add_user(1003, "Carol", language_code="en"))
    await walk(carol, "stopped working", "Nothing loads", "55555555")
    told = await carol.expect("is registered", "P1 critical")
    assert "Support works 09:00–21:00" in carol.text(told)  # closed at 23:00
    carol_card = await fake.next_message(STAFF_CHAT_ID)

    # Alice is premium: her account is recognised, her incident boosted to P1, and support
    # is open at 23:00 for her (no "we will answer from").
    alice_c = Customer(fake, alice)
    await walk(
        alice_c,
        "works wrong",
        "Reports are empty",
        "1000-0001",
        "✅ Account 10000001 — Romashka LLC, tariff Premium.",
    )
    told = await alice_c.expect("is registered", "P1 critical")
    assert "Support works" not in alice_c.text(told)
    alice_card = await fake.next_message(STAFF_CHAT_ID)

    # Boris is standard, in Russian: recognised too; his incident stays P2 and waits for 09:00.
    boris_c = Customer(fake, boris)
    await walk(
        boris_c,
        "Что-то работает неправильно",
        "Отчёты пустые",
        "20000001",
        "✅ Лицевой счёт 20000001 — Vasilek JSC, тариф Стандарт.",
    )
    told = await boris_c.expect("зарегистрировано", "P2 высокий")
    assert "Поддержка работает 09:00–21:00" in boris_c.text(told)
    boris_card = await fake.next_message(STAFF_CHAT_ID)

    # A development request is outside Alice's tariff: it opens, on the default terms.
    await walk(alice_c, "new feature", "Export to XLSX", "10000001", "Romashka LLC")
    await alice_c.expect("is registered", "P4 low")
    outside_card = await fake.next_message(STAFF_CHAT_ID)

    assert bot.query("SELECT number, tariff, priority FROM tickets ORDER BY number") == [
        (1, "standard", 1),
        (2, "premium", 1),
        (3, "standard", 2),
        (4, "premium", 4),
    ]
    # The deadlines: premium in 24/7 hours from its opening, standard from 09:00.
    due = {
        1: next_nine(created_at(bot, 1), tz) + timedelta(minutes=30),
        2: created_at(bot, 2) + timedelta(minutes=30),
        3: next_nine(created_at(bot, 3), tz) + timedelta(hours=2),
        4: next_nine(created_at(bot, 4), tz) + timedelta(days=1, hours=12),  # P1D of 12h days
    }
    shown = {number: f"срок — {day_time(moment, tz, 'ru')}" for number, moment in due.items()}
    await card_shows(fake, carol_card, "Тариф: Стандарт · поддержка 09:00–21:00", shown[1])
    await card_shows(
        fake,
        alice_card,
        "Лицевой счёт: 10000001 · Romashka LLC",
        "Тариф: Премиум · поддержка 24/7",
        shown[2],
    )
    await card_shows(fake, boris_card, "Тариф: Стандарт · поддержка 09:00–21:00", shown[3])
    await card_shows(fake, outside_card, "Вне тарифа: Премиум", shown[4])
    assert due[2] < due[1]  # Alice's later request is due first

    # /queue: by priority, then by the tariff-aware deadline (Alice's #2 before Carol's older
    # #1), then age; each row with its tariff and deadline.
    fake.send_command(anna, "/queue", chat_id=STAFF_CHAT_ID)
    queue = fake.text_of(await fake.next_message(STAFF_CHAT_ID))
    assert [int(n) for n in re.findall(r"#(\d+) P\d", queue)] == [2, 1, 3, 4], queue
    rows = queue.split("\n\n", 1)[1].split("\n")
    for number, tariff in ((2, "Премиум"), (1, "Стандарт"), (3, "Стандарт"), (4, "Премиум")):
        (first,) = [i for i, line in enumerate(rows) if re.search(rf"#{number} P\d", line)]
        assert f"тариф {tariff}" in rows[first], queue
        assert shown[number] in rows[first + 2], queue

    # /ticket shows the card with the tariff.
    fake.send_command(anna, "/ticket 2", chat_id=STAFF_CHAT_ID)
    ticket = fake.text_of(await fake.next_message(STAFF_CHAT_ID))
    assert "Тариф: Премиум · поддержка 24/7" in ticket and shown[2] in ticket


async def test_sla_alerts_follow_each_tariffs_hours(
    fake: FakeTelegram, alice: FakeUser, start_bot, tmp_path: Path
) -> None:
    """Five-second targets at 23:00: the premium (24/7) request is overdue in seconds and
    alerted; the standard one, opened earlier, has not started its clock yet."""
    tz = zone_at_23()
    tariffs = tmp_path / "tariffs.toml"
    tariffs.write_text(
        TARIFFS.replace('"PT30M"', '"PT5S"')
        .replace('"PT2H"', '"PT5S"')
        .replace('"PT1H"', '"PT5S"'),
        encoding="utf-8",
    )
    bot = await start_bot(TARIFFS_FILE=str(tariffs), TIMEZONE=tz.key, SCHEDULER_INTERVAL="0.3")
    accounts = tmp_path / "accounts.csv"
    accounts.write_text(ACCOUNTS, encoding="utf-8")
    imported = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot", "accounts", "import", str(accounts)],
        cwd=ROOT,
        env=bot.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert imported.returncode == 0, imported.stderr

    dave = Customer(fake, fake.add_user(1004, "Dave", language_code="en"))
    standard = await dave.open_request(kind="works wrong", account="20000001")
    standard_card = await fake.next_message(STAFF_CHAT_ID)
    premium = await Customer(fake, alice).open_request(kind="works wrong", account="10000001")
    premium_card = await fake.next_message(STAFF_CHAT_ID)

    await card_shows(fake, premium_card, "SLA: ❗ просрочка", within=30)  # a 5 s target

    def alerted() -> bool:
        return any(
            f"#{premium}: первый ответ просрочен" in fake.text_of(m)
            for m in fake.messages(STAFF_CHAT_ID)
        )

    await eventually(alerted, "no overdue alert for the premium request")
    # The standard request is older, so with the same hours it would have been alerted first.
    assert bot.query(
        "SELECT number FROM tickets WHERE sla_breached_at IS NOT NULL OR sla_warned_at IS NOT NULL"
    ) == [(premium,)]
    assert not any(f"#{standard}:" in fake.text_of(m) for m in fake.messages(STAFF_CHAT_ID))
    text = fake.text_of(fake.message(STAFF_CHAT_ID, standard_card["message_id"]))
    due = next_nine(created_at(bot, standard), tz) + timedelta(seconds=5)
    assert f"срок — {day_time(due, tz, 'ru')}" in text
