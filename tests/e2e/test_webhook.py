"""Webhook mode end to end: the emulated Telegram POSTs updates to the bot as Telegram does,
retries while the bot is down, and the bot refuses requests without the secret."""

from __future__ import annotations

import socket

import aiohttp

from bot.emulator import FakeTelegram, FakeUser
from tests.e2e.driver import Customer
from tests.e2e.harness import STAFF_CHAT_ID
from tests.waiting import eventually


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def webhook_env(port: int) -> dict[str, str]:
    """An instance in webhook mode on ``port`` of 127.0.0.1."""
    return {
        "WEBHOOK_URL": f"http://127.0.0.1:{port}",
        "WEBHOOK_SECRET": "s3cret-token",
        "WEB_HOST": "127.0.0.1",
        "WEB_PORT": str(port),
    }


async def test_webhook_mode_takes_updates_survives_a_kill_and_checks_the_secret(
    fake: FakeTelegram, alice: FakeUser, start_bot
) -> None:
    fake.allow_http_webhooks = True  # Telegram itself would insist on HTTPS
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    bot = await start_bot(**webhook_env(port))
    assert fake.webhook is not None
    assert fake.webhook["url"] == f"{base}/webhook"
    c = Customer(fake, alice)
    number = await c.open_request(topic="Over a webhook")
    card = await fake.next_message(STAFF_CHAT_ID)
    assert f"#{number}" in fake.text_of(card)

    async with aiohttp.ClientSession() as client:
        async with client.get(f"{base}/healthz") as health:
            assert health.status == 200
        async with client.get(f"{base}/readyz") as ready:
            assert ready.status == 200
            assert await ready.json() == {"ready": True, "database": "ok", "telegram": "ok"}
        forged = {
            "update_id": 1,
            "message": {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"}},
        }
        async with client.post(f"{base}/webhook", json=forged) as no_secret:
            assert no_secret.status == 401
        async with client.post(
            f"{base}/webhook", json=forged, headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"}
        ) as wrong:
            assert wrong.status == 401

    # The bot dies (once what it sent is recorded: the one window where a kill repeats a
    # message is between Telegram's answer and that commit); Telegram keeps the update and
    # retries until the bot is back.
    await bot.settled()
    bot.kill()
    c.say("Are you still there?")
    await eventually(lambda: fake.webhook_errors, "Telegram never tried the dead webhook")
    assert fake.webhook_errors[-1].startswith("Connection failed")
    await bot.start()
    relayed = await fake.next_message(STAFF_CHAT_ID, timeout=20)
    assert fake.text_of(relayed) == "Are you still there?"
    await fake.wait_updates_consumed()


async def test_a_webhook_instance_stopped_mid_send_sends_nothing_twice(
    fake: FakeTelegram, alice: FakeUser, start_bot
) -> None:
    """SIGTERM while a relay is on its way to Telegram: the web app shuts down first, and the
    call still gets its answer (aiogram's handler would close the bot's session with the app,
    the answer would be lost, and the message taken as failed and sent again)."""
    fake.allow_http_webhooks = True
    bot = await start_bot(**webhook_env(free_port()))
    c = Customer(fake, alice)
    await c.open_request(topic="Stopped mid-send")
    await fake.next_message(STAFF_CHAT_ID)  # the card
    await bot.settled()

    fake.answer_late("copyMessage", 3.0, chat_id=STAFF_CHAT_ID)
    fake.answer_late("sendMessage", 3.0, chat_id=STAFF_CHAT_ID)
    c.say("Sent while the desk stops")
    relayed = await fake.next_message(STAFF_CHAT_ID, timeout=20)
    assert fake.text_of(relayed) == "Sent while the desk stops"
    assert await bot.stop() == 0
    await bot.start()
    await bot.settled()
    words = [fake.text_of(m) for m in fake.messages(STAFF_CHAT_ID)]
    assert words.count("Sent while the desk stops") == 1, words
