"""Managers: /summary with its chart, /export, the refusal, and the daily send done once."""

from __future__ import annotations

import csv
import io

from bot.emulator import FakeTelegram, FakeUser
from tests.e2e.driver import Customer

MANAGER = 3001


async def test_summary_chart_export_and_refusal(
    fake: FakeTelegram, alice: FakeUser, start_bot
) -> None:
    boss = fake.add_user(MANAGER, "Maria", username="boss", language_code="en")
    await start_bot(MANAGER_IDS=str(MANAGER), SUMMARY_TIME="23:59:59")
    c = Customer(fake, alice)
    await c.open_request(topic="Counted in the summary")
    # A customer asking for a summary is refused politely.
    c.command("/summary")
    await c.expect("for the service's managers only")
    manager = Customer(fake, boss)
    manager.command("/summary")
    text = await manager.expect(
        "Support summary for", "Opened: 1", "Backlog at the end of the day: 1"
    )
    assert "First response (support hours)" in fake.text_of(text)
    chart = await fake.next_message(MANAGER)
    png = fake.file_bytes(chart["photo"][-1]["file_id"])
    assert png.startswith(b"\x89PNG")
    manager.command("/summary 2020-01-01")
    await manager.expect("Opened: 0")
    await fake.next_message(MANAGER)  # its chart
    manager.command("/summary yesterday")
    await manager.expect("Usage: /summary")
    manager.command("/export")
    document = await fake.next_message(MANAGER)
    data = fake.file_bytes(document["document"]["file_id"])
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0][0] == "Number" and rows[1][0] == "1" and len(rows) == 2


async def test_the_daily_summary_goes_out_once_with_two_processes(
    fake: FakeTelegram, start_bot
) -> None:
    boss = fake.add_user(MANAGER, "Maria", username="boss", language_code="en", started=True)
    env = {"MANAGER_IDS": str(MANAGER), "SUMMARY_TIME": "00:00", "SCHEDULER_INTERVAL": "0.3"}
    await start_bot(**env)
    await start_bot(**env)
    manager = Customer(fake, boss)
    # A manager the bot has not met yet gets it in DEFAULT_LOCALE.
    await manager.expect("Сводка поддержки за", timeout=15)
    await fake.next_message(MANAGER)  # the chart
    # The summary is a timer: the later sweeps of both processes are listened to.
    await fake.expect_silence(MANAGER, within=3.0)


async def test_each_audience_has_its_own_command_menu(
    fake: FakeTelegram, alice: FakeUser, start_bot
) -> None:
    from tests.e2e.harness import STAFF_CHAT_ID

    boss = fake.add_user(MANAGER, "Maria", username="boss", language_code="en")
    agent = fake.add_user(2001, "Анна", language_code="ru")
    fake.add_member(STAFF_CHAT_ID, agent)
    fake.add_member(STAFF_CHAT_ID, boss)
    await start_bot(MANAGER_IDS=str(MANAGER), SUMMARY_TIME="23:59:59")

    def menu(user: FakeUser, chat: int | None = None) -> list[str]:
        return [c["command"] for c in fake.commands_for(user.id, chat)]

    assert menu(alice) == ["new", "my", "cancel", "language", "help"]
    assert menu(boss) == ["new", "my", "cancel", "language", "help", "summary", "export"]
    assert menu(agent, STAFF_CHAT_ID) == [
        "queue",
        "ticket",
        "find",
        "note",
        "macros",
        "link",
        "unlink",
        "broadcast",
    ]
    assert menu(boss, STAFF_CHAT_ID)[-2:] == ["summary", "export"]
    assert fake.commands_for(agent.id, STAFF_CHAT_ID)[0]["description"].startswith("Открытые")
    # The manager's own language choice keeps the manager's commands.
    manager = Customer(fake, boss)
    manager.command("/language")
    while "Choose the language" not in fake.text_of(choice := await fake.next_message(MANAGER)):
        pass  # yesterday's summary, due since this manager has written to the bot
    since = len(fake.calls)
    manager.press("Русский", choice)
    await fake.wait_for_call(
        "setMyCommands",
        lambda call: (
            call.params.get("scope", {}).get("chat_id") == MANAGER
            and call.params.get("language_code") is None
            and call.ok
            and any(c["command"] == "summary" for c in call.params["commands"])
            and call.params["commands"][0]["description"] == "Новое обращение"
        ),
        since=since,
    )
