"""Modules end to end (SPEC §12): the real bot with the example module installed beside two
broken ones. A new ticket's event reaches a local HTTP receiver signed; staff see it with
/webhooks; the module that fails to import and the one whose hook fails are each reported to
managers once, and the desk and the other module keep working. Three instances on PostgreSQL
send each event once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ecomet_webhook import sending

from bot.emulator import FakeTelegram, FakeUser
from tests.balancer import Balancer
from tests.e2e.driver import Customer
from tests.e2e.harness import ROOT, STAFF_CHAT_ID, BotProcess
from tests.e2e.test_instances import behind_balancer
from tests.fixtures.modules import BROKEN, WEBHOOK, install
from tests.fixtures.receiver import Receiver
from tests.waiting import eventually

MANAGER = 3001
SECRET = "e2e-secret"


def installed(tmp_path: Path) -> str:
    """The three modules as ``pip install`` would leave them (their metadata and entry
    points), for the bot process: its PYTHONPATH."""
    site = tmp_path / "site"
    install(site, "ecomet-webhook", "0.1.0", {"webhook": "ecomet_webhook:create"})
    install(site, "ecomet-broken-import", "0.0.1", {"broken": "ecomet_broken_import:module"})
    install(site, "ecomet-broken-hook", "0.0.2", {"broken_hook": "ecomet_broken_hook:module"})
    return os.pathsep.join(str(path) for path in (site, WEBHOOK, BROKEN))


def staff_message_with(fake: FakeTelegram, fragment: str) -> str | None:
    state = fake.chats.get(STAFF_CHAT_ID)
    if state is None:
        return None
    for message_id in state.bot_ids:
        stored = state.messages.get(message_id)
        text = fake.text_of(stored.data) if stored is not None else ""
        if fragment in text:
            return text
    return None


async def test_the_example_module_posts_signed_events_and_broken_ones_are_reported(
    fake: FakeTelegram, alice: FakeUser, anna: FakeUser, start_bot, tmp_path: Path
) -> None:
    receiver = Receiver()
    await receiver.start()
    boss = fake.add_user(MANAGER, "Maria", username="boss", language_code="en", started=True)
    env = {
        "PYTHONPATH": installed(tmp_path),
        "ENABLED_MODULES": "",  # every one installed
        "MANAGER_IDS": str(MANAGER),
        "SUMMARY_TIME": "23:59:59",
        "OUTGOING_WEBHOOK_URL": receiver.url,
        "OUTGOING_WEBHOOK_SECRET": SECRET,
        "OUTGOING_WEBHOOK_POLL_INTERVAL": "0.1",
        "MODULE_HOOK_RETRY_DELAYS": "0.1,0.1",
    }
    listing_process: subprocess.Popen[str] | None = None
    try:
        bot = await start_bot(**env)
        # `python -m bot modules` lists them as an administrator sees them (meanwhile: it
        # imports aiogram, seconds on a slow machine).
        listing_process = subprocess.Popen(
            [sys.executable, "-m", "bot", "modules"],
            cwd=ROOT,
            env=bot.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        manager = Customer(fake, boss)
        # A manager the bot has not met yet is told in DEFAULT_LOCALE.
        told = await manager.expect("Модуль broken не удалось загрузить, он отключён")
        assert "RuntimeError: this module is broken on purpose" in fake.text_of(told)

        # The desk works: a customer's request is registered and reaches staff.
        number = await Customer(fake, alice).open_request(topic="Modules are watching")
        await eventually(lambda: receiver.requests, "the webhook received nothing", 15)
        headers, body = receiver.requests[0]
        assert sending.verify(SECRET, body, headers["X-Ecomet-Signature"])
        assert headers["X-Ecomet-Event"] == "created"
        payload = json.loads(body)
        assert payload["event"] == "created"
        assert payload["ticket"]["number"] == number
        assert payload["ticket"]["topic"] == "Modules are watching"

        # The broken hook: tried three times, then skipped for that module and reported.
        skipped = await manager.expect("Модуль broken_hook 3 раз(а)", timeout=15)
        assert f"заявки #{number} (created)" in fake.text_of(skipped)

        # Staff see the delivery with the module's own command (in their menu), in their
        # language.
        menu = fake.commands_for(anna.id, STAFF_CHAT_ID)
        assert [c["command"] for c in menu][-1] == "webhooks"
        assert menu[-1]["description"] == "Последние отправки вебхука"
        fake.send_command(anna, "/webhooks", chat_id=STAFF_CHAT_ID)
        listing = await eventually(
            lambda: staff_message_with(fake, "Последние отправки вебхука"),
            "no /webhooks answer in the staff group",
        )
        assert f"#{number} · created · ✅ доставлено (204)" in listing

        # A restart: nothing is reported again, nothing is sent again.
        await bot.settled()
        await bot.stop()
        await bot.start()
        await bot.expect_silence(MANAGER)
        assert bot.query("SELECT status FROM webhook_deliveries") == [("sent",)]
        assert len(receiver.requests) == 1
        stdout, stderr = listing_process.communicate(timeout=60)
    finally:
        await receiver.stop()
        if listing_process is not None and listing_process.poll() is None:
            listing_process.kill()
            listing_process.communicate()

    assert listing_process.returncode == 1, stderr  # a module failed to load
    assert (
        "webhook 0.1.0: enabled; adds router (staff), commands (/webhooks), "
        "settings (OUTGOING_WEBHOOK_*)"
    ) in stdout
    assert "broken_hook 0.0.2: enabled; adds hooks (created)" in stdout
    assert "broken 0.0.1: FAILED to load (import): RuntimeError" in stdout


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def module_instances(
    fake: FakeTelegram,
    pg_url: str,
    redis_url: str,
    balancer: Balancer,
    receiver: Receiver,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> AsyncIterator[list[BotProcess]]:
    """Three instances in webhook mode behind HAProxy on one PostgreSQL database (as
    tests/e2e/test_instances.py), each with the webhook module installed."""
    async with behind_balancer(
        fake,
        pg_url=pg_url,
        redis_url=redis_url,
        balancer=balancer,
        tmp_path=tmp_path,
        request=request,
        PYTHONPATH=installed(tmp_path),
        ENABLED_MODULES="webhook",
        OUTGOING_WEBHOOK_URL=receiver.url,
        OUTGOING_WEBHOOK_SECRET=SECRET,
        OUTGOING_WEBHOOK_POLL_INTERVAL="0.1",
    ) as bots:
        yield bots


async def test_several_instances_on_postgresql_send_each_event_once(
    fake: FakeTelegram, alice: FakeUser, module_instances: list[BotProcess], receiver: Receiver
) -> None:
    """Every instance runs the module's hooks and its queue; each event reaches the receiver
    once (one instance at a time holds the module's cursor; deliveries are claimed SKIP
    LOCKED)."""
    carol = fake.add_user(1003, "Carol", username="carol", language_code="en")
    numbers = [
        await Customer(fake, alice).open_request(topic="First"),
        await Customer(fake, carol).open_request(topic="Second"),
        await Customer(fake, alice).open_request(topic="Third"),
    ]
    first = module_instances[0]

    def sent() -> bool:
        rows = first.query("SELECT status FROM webhook_deliveries")
        return len(rows) == 3 and all(row == ("sent",) for row in rows)

    await eventually(sent, lambda: f"deliveries: {receiver.requests}", 15)
    for bot in module_instances:
        await bot.settled()
        assert "module webhook 0.1.0 loaded" in bot.log()
    keys = [headers["X-Ecomet-Delivery"] for headers, _body in receiver.requests]
    assert len(keys) == len(set(keys)) == 3
    tickets = sorted(json.loads(body)["ticket"]["number"] for _h, body in receiver.requests)
    assert tickets == sorted(numbers)
