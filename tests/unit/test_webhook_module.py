"""The example module (modules/ecomet-webhook): signed JSON, retries with a growing delay
through its own queue table against a real HTTP receiver on 127.0.0.1, nothing sent twice once
the receiver said 2xx, its settings and its texts in both languages."""

from __future__ import annotations

import asyncio
import json
import logging
import tomllib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from ecomet_webhook import Webhook, create, queue, sending
from ecomet_webhook.commands import listing
from ecomet_webhook.settings import WebhookSettings
from pydantic import ValidationError
from sqlalchemy import select

from bot.db.engine import Database, migrate
from bot.modules.api import EventKind, ModuleContext, ModuleTexts, TicketEvent, TicketInfo
from tests.fixtures.receiver import Receiver
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "modules" / "ecomet-webhook"
SECRET = "s3cret"
NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def test_the_package_declares_its_entry_point() -> None:
    project = tomllib.loads((MODULE / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["ecomet_support.modules"] == {
        "webhook": "ecomet_webhook:create"
    }
    module = create()
    assert module.adds() == [
        "router (staff)",
        "commands (/webhooks)",
        "settings (OUTGOING_WEBHOOK_*)",
        "migrations",
        "texts",
        "hooks (" + ", ".join(kind.value for kind in EventKind) + ")",
        "tasks (1)",
    ]
    assert module.migrations is not None and (module.migrations / "wh_0001_deliveries.py").exists()


def test_the_signature_is_hmac_sha256_of_the_body() -> None:
    body = sending.body_of({"b": 1, "a": "ж"}).encode()
    assert body == '{"a":"ж","b":1}'.encode()
    header = sending.signature(SECRET, body)
    assert header == "sha256=" + __import__("hmac").new(b"s3cret", body, "sha256").hexdigest()
    assert sending.verify(SECRET, body, header)
    assert not sending.verify("other", body, header)
    assert not sending.verify(SECRET, body + b" ", header)


def test_the_delay_doubles_up_to_its_most_then_the_delivery_is_given_up() -> None:
    def delay(attempts: int, retry_after: float | None = None) -> float | None:
        at = sending.next_try(
            NOW, attempts, base=5, most=60, max_attempts=6, retry_after=retry_after
        )
        return None if at is None else (at - NOW).total_seconds()

    assert [delay(n) for n in range(1, 7)] == [5, 10, 20, 40, 60, None]
    assert delay(1, retry_after=30) == 30  # the receiver asked for longer
    assert delay(1, retry_after=3600) == 60


def test_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTGOING_WEBHOOK_URL", "https://crm.example/hook")
    monkeypatch.delenv("OUTGOING_WEBHOOK_SECRET", raising=False)
    with pytest.raises(ValidationError, match="OUTGOING_WEBHOOK_SECRET is required"):
        WebhookSettings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setenv("OUTGOING_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("OUTGOING_WEBHOOK_EVENTS", "created, closed")
    settings = WebhookSettings(_env_file=None)  # type: ignore[call-arg]
    assert settings.events == frozenset({EventKind.CREATED, EventKind.CLOSED})
    monkeypatch.setenv("OUTGOING_WEBHOOK_URL", "crm.example")
    with pytest.raises(ValidationError, match="http"):
        WebhookSettings(_env_file=None)  # type: ignore[call-arg]


# -- against a receiver --------------------------------------------------------------------------


@pytest_asyncio.fixture
async def database(backend_url: str) -> AsyncIterator[Database]:
    """The desk's schema and the module's table, on SQLite and on PostgreSQL."""
    failed = await asyncio.to_thread(migrate, backend_url, {"webhook": MODULE_MIGRATIONS})
    assert failed == {}
    db = Database(backend_url)
    yield db
    await db.dispose()


MODULE_MIGRATIONS = MODULE / "src" / "ecomet_webhook" / "migrations"


class Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def context_for(db: Database, **settings: Any) -> ModuleContext:
    values: dict[str, Any] = {"secret": SECRET, "retry_base": 0.05, "poll_interval": 0.05}
    values.update(settings)
    return ModuleContext(
        name="webhook",
        settings=WebhookSettings(_env_file=None, **values),  # type: ignore[call-arg]
        texts=ModuleTexts(MODULE_MIGRATIONS.parent / "locales", "ecomet_webhook"),
        sessions=db.writer,
        read_sessions=db.reader,
        clock=Clock(),
        log=logging.getLogger("modules.webhook"),
        single_writer=db.single_writer,
    )


def event(entry: int = 7, kind: EventKind = EventKind.CREATED) -> TicketEvent:
    ticket = TicketInfo(
        number=12,
        status="new",
        priority=2,
        kind="incident",
        topic="Не работает вход",
        account_number="12345678",
        customer_id=1001,
        by_email=False,
        assignee_id=None,
        locale="ru",
        created_at=NOW,
        first_response_at=None,
        resolved_at=None,
        closed_at=None,
        rating=None,
    )
    return TicketEvent(
        id=entry, kind=kind, at=NOW, ticket=ticket, actor_id=1001, actor_role="customer"
    )


async def rows(db: Database) -> list[queue.Delivery]:
    async with db.reader() as session:
        result = await session.execute(select(queue.deliveries).order_by(queue.deliveries.c.id))
        return [queue.Delivery.of(row) for row in result.all()]


async def run_worker(webhook: Webhook, context: ModuleContext) -> asyncio.Task[None]:
    return asyncio.create_task(webhook.deliver(context))


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_event_is_posted_signed_retried_and_never_sent_again(
    database: Database,
) -> None:
    receiver = Receiver(fail=2)
    await receiver.start()
    webhook = Webhook()
    context = context_for(database, url=receiver.url)
    worker = await run_worker(webhook, context)
    try:
        await webhook.queue_event(event(), context)
        await eventually(
            lambda: len(receiver.requests) == 3, lambda: f"got {receiver.requests}", 10
        )
        [delivery] = await eventually(
            lambda: _sent(database), "the delivery is not recorded as sent", 10
        )
        assert delivery.attempts == 3 and delivery.response_status == 204
        headers, body = receiver.requests[-1]
        assert sending.verify(SECRET, body, headers["X-Ecomet-Signature"])
        assert headers["X-Ecomet-Event"] == "created"
        assert headers["X-Ecomet-Delivery"] == "7:created"
        assert {h["X-Ecomet-Delivery"] for h, _b in receiver.requests} == {"7:created"}
        payload = json.loads(body)
        assert payload["id"] == "7:created" and payload["event"] == "created"
        assert payload["ticket"]["number"] == 12
        assert payload["ticket"]["topic"] == "Не работает вход"
        assert payload["ticket"]["priority"] == "P2"
        # The hook run again for the same event (a crash after it): nothing is queued again,
        # and a sent delivery is never claimed again.
        await webhook.queue_event(event(), context)
        assert len(await rows(database)) == 1
        claimed = await queue.claim(
            database.writer,
            now=datetime.now(UTC) + timedelta(days=1),
            lease=timedelta(minutes=1),
            limit=10,
            skip_locked=False,
        )
        assert claimed == []
    finally:
        await stop(worker)
        await receiver.stop()
    assert len(receiver.requests) == 3


async def _sent(db: Database) -> list[queue.Delivery] | None:
    found = await rows(db)
    return found if found and all(row.status == "sent" for row in found) else None


async def test_a_delivery_is_given_up_after_its_tries(database: Database) -> None:
    receiver = Receiver(fail=100)
    await receiver.start()
    webhook = Webhook()
    context = context_for(database, url=receiver.url, max_attempts=3)
    worker = await run_worker(webhook, context)
    try:
        await webhook.queue_event(event(kind=EventKind.RATED), context)

        async def given_up() -> bool:
            return [row.status for row in await rows(database)] == ["failed"]

        await eventually(given_up, "the delivery was not given up", 10)
    finally:
        await stop(worker)
        await receiver.stop()
    assert len(receiver.requests) == 3
    [row] = await rows(database)
    assert row.attempts == 3 and row.error == "HTTP 500 Internal Server Error"


async def test_events_not_chosen_and_an_unset_url_queue_nothing(database: Database) -> None:
    webhook = Webhook()
    await webhook.queue_event(event(), context_for(database, url=""))
    chosen = context_for(database, url="http://127.0.0.1:9/hook", events="closed")
    await webhook.queue_event(event(), chosen)
    assert await rows(database) == []
    await webhook.queue_event(event(kind=EventKind.CLOSED), chosen)
    assert [row.event for row in await rows(database)] == ["closed"]


async def test_the_staff_listing_in_both_languages(database: Database) -> None:
    context = context_for(database, url="http://127.0.0.1:9/hook")
    assert isinstance(context.settings, WebhookSettings)
    assert context.texts is not None
    async with database.reader() as session:
        assert "Отправок вебхука ещё не было" in await listing(
            session, context.settings, context.texts, "ru"
        )
    await Webhook().queue_event(event(), context)
    async with database.reader() as session:
        en = await listing(session, context.settings, context.texts, "en")
        ru = await listing(session, context.settings, context.texts, "ru")
    assert en.startswith("<b>Recent webhook deliveries</b> to http://127.0.0.1:9/hook:")
    assert "#12 · created · ⏳ on its way" in en
    assert ru.startswith("<b>Последние отправки вебхука</b>")
    assert "#12 · created · ⏳ отправляется" in ru
    off = context_for(database, url="")
    assert isinstance(off.settings, WebhookSettings)
    async with database.reader() as session:
        assert "выключен" in await listing(session, off.settings, context.texts, "ru")


def test_the_catalogs_translate_every_text_of_the_module() -> None:
    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po

    found = {
        message
        for _f, _l, message, _c, _ctx in extract_from_dir(
            str(MODULE / "src"), method_map=[("**.py", "python")], keywords={"_": None, "N_": None}
        )
    }
    assert len(found) == 8
    for locale in ("ru", "en"):
        path = MODULE_MIGRATIONS.parent / "locales" / locale / "LC_MESSAGES" / "ecomet_webhook.po"
        with path.open("rb") as handle:
            catalog = read_po(handle, locale=locale)
        assert {m.id for m in catalog if m.id and m.string} == found


async def test_finished_deliveries_are_forgotten_after_a_while(database: Database) -> None:
    context = context_for(database, url="http://127.0.0.1:9/hook")
    webhook = Webhook()
    await webhook.queue_event(event(1), context)
    await webhook.queue_event(event(2), context)
    now = datetime.now(UTC)
    [first, _second] = await queue.claim(
        database.writer, now=now, lease=timedelta(minutes=1), limit=10, skip_locked=False
    )
    await queue.settle(
        database.writer, first, now=now, sent=True, response_status=200, error=None, retry_at=None
    )
    assert await queue.forget_before(database.writer, now - timedelta(days=1)) == 0
    assert await queue.forget_before(database.writer, now + timedelta(days=1)) == 1
    assert [(row.event_key, row.status) for row in await rows(database)] == [
        ("2:created", "pending")
    ]
