"""A failing handler loses nothing: the update is retried, then kept as failed with its error,
the person is told, and ``python -m bot failed retry ID`` replays it in the running bot, once.

Faults are injected from outside the bot, never by editing it: the emulated Bot API fails a
method a few times (``fake.fail_next``), or a trigger in the bot's own database (SQLite or PostgreSQL) refuses
one kind of row (a relay to staff, an answer to a customer) until the test drops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import sqlite3
import subprocess
import sys
from typing import Any

import pytest

from bot.emulator import FakeTelegram, FakeUser
from tests.e2e.conftest import BotFactory
from tests.e2e.driver import Customer, number_in
from tests.e2e.harness import ROOT, STAFF_CHAT_ID, BotProcess, query_postgres


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _sql(bot: BotProcess, statement: str, *params: object) -> list[tuple[Any, ...]]:
    """A statement on the bot's database, writes included (the faults below are injected)."""
    url = bot.env["DATABASE_URL"]
    if url.startswith("postgresql"):
        return query_postgres(url, statement, *params)
    with contextlib.closing(sqlite3.connect(bot.database, timeout=30)) as db, db:
        return db.execute(statement, params).fetchall()


def _refuse(bot: BotProcess, purpose: str) -> None:
    """From now on the bot cannot write a delivery of ``purpose``: its handler fails."""
    if bot.env["DATABASE_URL"].startswith("postgresql"):
        _sql(
            bot,
            "CREATE FUNCTION injected_fault() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            f" RAISE EXCEPTION 'injected fault: no {purpose}'; END $$",
        )
        _sql(
            bot,
            "CREATE TRIGGER injected_fault BEFORE INSERT ON deliveries FOR EACH ROW"
            f" WHEN (NEW.purpose = '{purpose}') EXECUTE FUNCTION injected_fault()",
        )
        return
    _sql(
        bot,
        f"CREATE TRIGGER injected_fault BEFORE INSERT ON deliveries "
        f"WHEN NEW.purpose = '{purpose}' "
        f"BEGIN SELECT RAISE(ABORT, 'injected fault: no {purpose}'); END",
    )


def _heal(bot: BotProcess) -> None:
    if bot.env["DATABASE_URL"].startswith("postgresql"):
        _sql(bot, "DROP TRIGGER injected_fault ON deliveries")
        _sql(bot, "DROP FUNCTION injected_fault()")
        return
    _sql(bot, "DROP TRIGGER injected_fault")


async def _cli(bot: BotProcess, *args: str) -> tuple[int, str]:
    """``python -m bot failed ...`` as an operator runs it: another process, the same DB."""
    env = {key: value for key, value in bot.env.items() if key != "BOT_TOKEN"}
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot", "failed", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode, proc.stdout + proc.stderr


def _texts(fake: FakeTelegram, chat_id: int) -> list[str]:
    return [fake.text_of(m) for m in fake.messages(chat_id)]


async def _start(start_bot: BotFactory, fake: FakeTelegram, mode: str) -> BotProcess:
    if mode == "polling":
        return await start_bot()
    fake.allow_http_webhooks = True
    port = _free_port()
    return await start_bot(
        WEBHOOK_URL=f"http://127.0.0.1:{port}",
        WEBHOOK_SECRET="s3cret",
        WEB_HOST="127.0.0.1",
        WEB_PORT=str(port),
    )


async def test_a_transient_fault_is_retried_and_takes_effect_once(
    fake: FakeTelegram, alice: FakeUser, start_bot: BotFactory
) -> None:
    bot = await start_bot()
    c = Customer(fake, alice)
    c.command("/new")
    await c.expect("What is your request about?")
    c.press("stopped working")
    await c.expect("what is it about?")
    c.say("Cannot log in")
    await c.expect("Describe it in detail")
    c.say("The login page shows an error.")
    await c.expect("account number")
    c.say("12345678")
    await c.expect("Attach screenshots")
    c.press("Skip")
    summary = await c.expect("Please check your request")
    # Pressing Send registers the ticket and then answers the press: the answer fails once.
    fake.fail_next(
        "answerCallbackQuery", times=1, error_code=400, description="Bad Request: injected"
    )
    press = c.press("Send", summary)
    registered = await c.expect("is registered")
    # The number the first, rolled-back attempt drew is not reused on PostgreSQL (a sequence
    # is not rolled back): numbers are unique, not gapless.
    number = number_in(fake.text_of(registered))
    assert (await fake.wait_for_answer(press))["text"] == "Sent"
    card = await fake.next_message(STAFF_CHAT_ID)
    assert f"#{number} " in fake.text_of(card)
    # Once: one ticket, one card, one confirmation; nothing kept as failed.
    await bot.expect_silence(STAFF_CHAT_ID)
    assert sum("is registered" in t for t in _texts(fake, alice.id)) == 1
    assert _sql(bot, "SELECT count(*) FROM tickets") == [(1,)]
    assert _sql(bot, "SELECT count(*) FROM failed_updates") == [(0,)]
    # Retried: on SQLite in the poller's batch, which was handled again with a savepoint per
    # update (on PostgreSQL each update has its own transaction: retried alone).
    if bot.env["DATABASE_URL"].startswith("sqlite"):
        assert "handled again with a savepoint per update" in bot.log()
    else:
        assert "rolled back, trying again" in bot.log()
    code, out = await _cli(bot, "list")
    assert code == 0 and "No failed updates waiting." in out, out


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_a_permanent_fault_is_kept_and_replayed_once(
    fake: FakeTelegram, alice: FakeUser, boris: FakeUser, start_bot: BotFactory, mode: str
) -> None:
    bot = await _start(start_bot, fake, mode)
    c = Customer(fake, alice)
    await c.open_request(topic="Cannot log in")
    card = await fake.next_message(STAFF_CHAT_ID)

    _refuse(bot, "relay")
    webhook_errors = len(fake.webhook_errors)
    follow_up = c.say("Here is one more detail: it fails in Firefox too.")
    notice = await c.expect("We have received your message and will handle it")
    assert "no need to send it again" in fake.text_of(notice)
    assert notice["reply_to_message"]["message_id"] == follow_up["message_id"]
    assert "Sorry" not in fake.text_of(notice) and "try again" not in fake.text_of(notice)
    assert "is kept as failed #1 after 3 attempt(s)" in bot.log()

    # The failed update does not hold up the others: Boris (another chat) is answered, and
    # Telegram got its confirmation (no redelivery, no webhook errors).
    b = Customer(fake, boris)
    b.say("привет")
    await b.expect("/new")
    await fake.wait_updates_consumed()
    assert len(fake.webhook_errors) == webhook_errors

    code, out = await _cli(bot, "list")
    assert code == 0, out
    row = next(line for line in out.splitlines() if re.match(r"^\d+\s+pending", line))
    failed_id = int(row.split()[0])
    assert failed_id == 1
    assert " 3  " in row and "message" in row and str(alice.id) in row
    assert "injected f" in row  # the error, cut to the column
    code, out = await _cli(bot, "show", str(failed_id))
    assert code == 0 and "it fails in Firefox too" in out and "Traceback" in out, out
    assert "injected fault: no relay" in out, out
    assert _sql(bot, "SELECT status, attempts FROM failed_updates WHERE id = ?", failed_id) == [
        ("pending", 3)
    ]
    # Staff got nothing of it yet.
    assert not any("Firefox" in t for t in _texts(fake, STAFF_CHAT_ID))

    _heal(bot)
    code, out = await _cli(bot, "retry", str(failed_id))
    assert code == 0 and f"#{failed_id}: replayed (replayed)" in out, out
    relayed = await fake.next_message(STAFF_CHAT_ID)
    assert fake.text_of(relayed) == "Here is one more detail: it fails in Firefox too."
    # Exactly once, to the ticket's card; and the customer is not told anything again.
    await bot.expect_silence(STAFF_CHAT_ID)
    assert sum("Firefox" in t for t in _texts(fake, STAFF_CHAT_ID)) == 1
    assert sum("We have received" in t for t in _texts(fake, alice.id)) == 1
    assert relayed["reply_to_message"]["message_id"] == card["message_id"]

    code, out = await _cli(bot, "list")
    assert code == 0 and "No failed updates waiting." in out, out
    code, out = await _cli(bot, "list", "--all")
    assert code == 0 and re.search(rf"^{failed_id}\s+resolved", out, re.M), out
    # A second retry of the same row does nothing.
    code, out = await _cli(bot, "retry", str(failed_id))
    assert code == 0 and "already resolved" in out, out
    await bot.expect_silence(STAFF_CHAT_ID)

    # After a restart the update is neither redelivered nor replayed again.
    await bot.stop()
    await bot.start()
    c.say("and a third message")
    relayed = await fake.next_message(STAFF_CHAT_ID)
    assert fake.text_of(relayed) == "and a third message"
    assert sum("Firefox" in t for t in _texts(fake, STAFF_CHAT_ID)) == 1


async def test_a_failed_staff_answer_is_told_in_the_group_and_replayed_after_a_restart(
    fake: FakeTelegram, alice: FakeUser, anna: FakeUser, start_bot: BotFactory
) -> None:
    bot = await start_bot()
    c = Customer(fake, alice)
    number = await c.open_request(topic="Cannot log in")
    card = await fake.next_message(STAFF_CHAT_ID)

    _refuse(bot, "answer")
    answer = fake.send_text(
        anna, "Please clear the cache and reload.", chat_id=STAFF_CHAT_ID, reply_to=card
    )
    # Anna is told, in a short reply to her message (the staff group's language: ru).
    told = await fake.next_message(STAFF_CHAT_ID)
    assert told["reply_to_message"]["message_id"] == answer["message_id"]
    assert fake.text_of(told).startswith("⚠️") and "повторять" in fake.text_of(told)
    await bot.expect_silence(alice.id)

    # The operator retries while the bot is down: it is replayed when the bot is back.
    await bot.stop()
    _heal(bot)
    code, out = await _cli(bot, "retry", "--wait", "1")
    assert code == 0 and "Asked the running bot to replay #1" in out, out
    assert "not replayed yet" in out, out
    await bot.start()
    while "Please clear the cache and reload." not in fake.text_of(
        await fake.next_message(alice.id, timeout=20)
    ):
        pass  # first the notice that Anna took the ticket
    await bot.expect_silence(alice.id)
    assert sum("clear the cache" in t for t in _texts(fake, alice.id)) == 1
    assert _sql(bot, "SELECT status, resolution FROM failed_updates") == [("resolved", "replayed")]
    assert _sql(bot, "SELECT assignee_id FROM tickets WHERE number = ?", number) == [(anna.id,)]
