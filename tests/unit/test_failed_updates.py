"""Failed updates on a real SQLite file, through a real aiogram dispatcher: retried, kept with
their error, the customer told, replayed once; and one that cannot even be kept does not hold
up the others for good. The fault lives in a test-only router, never in the bot's handlers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from aiogram import Bot, Dispatcher, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.methods import AnswerCallbackQuery, Response, SendMessage
from aiogram.types import Message, Update
from aiogram.utils.i18n import I18n
from sqlalchemy import func, select

from bot.app import LOCALES_DIR
from bot.clock import ShiftedClock
from bot.db.dialog_storage import DatabaseStorage
from bot.db.engine import Database, migrate
from bot.db.models import Delivery, DeskSetting, FailedUpdate, ProcessedUpdate
from bot.db.repositories import DeskSettings, FailedUpdates, UpdateLog
from bot.db.uow import UnitOfWork, transaction
from bot.delivery.client import StaleCallbackAnswers
from bot.delivery.outbox import Outbox
from bot.domain.hours import SupportHours
from bot.failures import FailureKeeper, PoisonGuard, Replayer, as_json
from bot.failures import main as failed_cli
from bot.handlers.errors import unexpected_error
from bot.middlewares.database import UnitOfWorkMiddleware
from bot.middlewares.user import LocaleMiddleware, UserMiddleware
from bot.polling import Poller, UpdatesNotKeptError
from bot.services.desk_config import DeskConfig
from bot.services.messaging import Messenger

STAFF = -1001000000001
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


class Sender:
    def wake(self) -> None:
        pass


class Desk:
    """What the test dispatcher does: a handler that records an effect, failing on demand."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.clock = ShiftedClock()
        self.fail_times = 0  # the next this-many calls fail
        self.calls = 0
        i18n = I18n(path=LOCALES_DIR, default_locale="ru", domain="messages")
        desk = DeskConfig(
            staff_chat_id=STAFF,
            hours=SupportHours.parse("00:00-24:00", ZoneInfo("Europe/Moscow")),
            hours_text="",
            default_locale="ru",
        )
        self.keeper = FailureKeeper(
            session_factory=database.writer,
            clock=self.clock,
            messenger=Messenger(Outbox(self.clock)),
            i18n=i18n,
            desk=desk,
        )
        self.dispatcher = Dispatcher(
            storage=DatabaseStorage(database.writer, self.clock, database.reader),
            failures=self.keeper,
        )
        self.dispatcher.update.outer_middleware(
            UnitOfWorkMiddleware(database.writer, self.clock, Sender(), pause=0)  # type: ignore[arg-type]
        )
        self.dispatcher.update.outer_middleware(UserMiddleware(self.clock))
        LocaleMiddleware(i18n).setup(self.dispatcher)
        router = Router(name="faulty")

        @router.message()
        async def effect(message: Message, session: Any) -> None:
            self.calls += 1
            await DeskSettings(session).put(f"seen:{message.message_id}", message.text or "")
            if self.fail_times > 0:
                self.fail_times -= 1
                raise RuntimeError(f"injected fault in message {message.message_id}")

        errors = Router(name="errors")
        errors.errors.register(unexpected_error)
        self.dispatcher.include_routers(router, errors)
        self.bot = Bot("42:TEST")

    async def feed(self, update: Update, **kwargs: Any) -> Any:
        return await self.dispatcher.feed_update(self.bot, update, **kwargs)

    async def scalar(self, query: Any) -> Any:
        async with self.database.reader() as session:
            return await session.scalar(query)

    async def seen(self, message_id: int) -> str | None:
        async with self.database.reader() as session:
            return await DeskSettings(session).get(f"seen:{message_id}")

    async def rows(self) -> list[FailedUpdate]:
        async with self.database.reader() as session:
            return list(await FailedUpdates(session).listing())

    async def notices(self) -> list[dict[str, Any]]:
        async with self.database.reader() as session:
            query = select(Delivery).where(Delivery.purpose == "notice").order_by(Delivery.id)
            return [d.payload for d in await session.scalars(query)]


def private_message(update_id: int, message_id: int, text: str, user_id: int = 1001) -> Update:
    return Update.model_validate(
        {
            "update_id": update_id,
            "message": {
                "message_id": message_id,
                "date": 1764666000,
                "chat": {"id": user_id, "type": "private", "first_name": "Alice"},
                "from": {
                    "id": user_id,
                    "is_bot": False,
                    "first_name": "Alice",
                    "language_code": "en",
                },
                "text": text,
                "link_preview_options": {"is_disabled": True},
            },
        }
    )


def db_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'support.sqlite3'}"
    migrate(url)
    return url


@pytest.fixture
def url(backend_url: str) -> str:
    migrate(backend_url)  # an SQLite file, then PostgreSQL (tests/dbserver.py)
    return backend_url


@pytest_asyncio.fixture
async def desk(url: str) -> AsyncIterator[Desk]:
    database = Database(url)
    desk = Desk(database)
    yield desk
    await desk.bot.session.close()
    await database.dispose()


# ------------------------------------------------------------------------ retries and keeping


async def test_a_transient_failure_is_retried_and_takes_effect_once(desk: Desk) -> None:
    desk.fail_times = 2
    await desk.feed(private_message(1, 10, "hello"))
    assert desk.calls == 3
    assert await desk.seen(10) == "hello"
    assert await desk.scalar(select(func.count()).select_from(ProcessedUpdate)) == 1
    assert await desk.rows() == []
    assert await desk.notices() == []


async def test_a_permanent_failure_is_kept_and_the_customer_told(desk: Desk) -> None:
    desk.fail_times = 99
    update = private_message(7, 10, "my follow-up")
    await desk.feed(update)  # handled: the error handler kept it
    assert desk.calls == 3
    assert await desk.seen(10) is None  # every attempt rolled back
    assert await desk.scalar(select(func.count()).select_from(ProcessedUpdate)) == 0
    [row] = await desk.rows()
    assert (row.update_id, row.status, row.attempts) == (7, "pending", 3)
    assert (row.event_type, row.chat_id, row.user_id) == ("message", 1001, 1001)
    assert row.error == "RuntimeError: injected fault in message 10"
    assert "Traceback" in row.traceback and "injected fault" in row.traceback
    assert row.first_failed_at == row.last_failed_at
    # The whole update, as Telegram sent it, and it reads back.
    assert row.payload == as_json(update)
    assert row.payload["message"]["from"]["language_code"] == "en"
    assert Update.model_validate(row.payload) == update
    [notice] = await desk.notices()
    assert notice["chat_id"] == 1001
    assert notice["text"].startswith("We have received your message and will handle it.")
    assert notice["reply_parameters"]["message_id"] == 10


async def test_failures_in_a_batch_undo_only_their_own_update(desk: Desk) -> None:
    """The poller on SQLite: one transaction for the batch; when an update fails in it, the
    batch again with a savepoint per update."""
    poller = Poller(desk.bot, desk.dispatcher, batch_sessions=desk.database.writer)
    # The first update fails in the batch's first try and then every attempt; the second passes.
    desk.fail_times = 1 + 3
    await poller._handle_batch([private_message(1, 10, "first"), private_message(2, 11, "next")])
    assert await desk.seen(10) is None
    assert await desk.seen(11) == "next"
    [row] = await desk.rows()
    assert (row.update_id, row.attempts) == (1, 3)
    assert len(await desk.notices()) == 1


# ------------------------------------------------------------------------ replays


async def test_a_replay_takes_effect_once_and_resolves_the_row(desk: Desk) -> None:
    desk.fail_times = 99
    await desk.feed(private_message(7, 10, "my follow-up"))
    [row] = await desk.rows()
    desk.fail_times = 0  # the fault is fixed
    replayer = Replayer(
        bot=desk.bot,
        dispatcher=desk.dispatcher,
        sessions=desk.database.writer,
        read_sessions=desk.database.reader,
    )
    assert await replayer.replay_due() == 0  # nothing asked for yet
    async with desk.database.writer.begin() as session:
        assert await FailedUpdates(session).request_retry([row.id], desk.clock.now()) == [row.id]
    assert (await desk.rows())[0].status == "retried"
    calls = desk.calls
    assert await replayer.replay_due() == 1
    assert desk.calls == calls + 1
    assert await desk.seen(10) == "my follow-up"
    [row] = await desk.rows()
    assert (row.status, row.resolution) == ("resolved", "replayed")
    assert row.resolved_at is not None
    assert len(await desk.notices()) == 1  # the replay tells nobody again
    # Asked again: nothing to do; Telegram redelivering the update: skipped.
    async with desk.database.writer.begin() as session:
        assert await FailedUpdates(session).request_retry([row.id], desk.clock.now()) == []
    assert await replayer.replay_due() == 0
    await desk.feed(private_message(7, 10, "my follow-up"))
    assert desk.calls == calls + 1


async def test_a_replay_in_batch_mode_and_a_replay_of_an_applied_update(desk: Desk) -> None:
    desk.fail_times = 99
    await desk.feed(private_message(7, 10, "kept"))
    await desk.feed(private_message(8, 11, "kept too"))
    first, second = await desk.rows()
    # The second one took effect meanwhile (say, Telegram delivered it again and it passed).
    desk.fail_times = 0
    await desk.feed(private_message(8, 11, "kept too"))
    calls = desk.calls
    async with desk.database.writer.begin() as session:
        await FailedUpdates(session).request_retry(None, desk.clock.now())
    replayer = Replayer(
        bot=desk.bot,
        dispatcher=desk.dispatcher,
        sessions=desk.database.writer,
        read_sessions=desk.database.reader,
        batch_sessions=desk.database.writer,
    )
    assert await replayer.replay_due() == 2
    assert desk.calls == calls + 1  # only the first one ran
    first, second = await desk.rows()
    assert (first.status, first.resolution) == ("resolved", "replayed")
    assert (second.status, second.resolution) == ("resolved", "already applied")


async def test_a_replay_that_fails_again_goes_back_to_pending(desk: Desk) -> None:
    desk.fail_times = 99
    await desk.feed(private_message(7, 10, "kept"))
    [row] = await desk.rows()
    async with desk.database.writer.begin() as session:
        await FailedUpdates(session).request_retry([row.id], desk.clock.now())
    replayer = Replayer(bot=desk.bot, dispatcher=desk.dispatcher, sessions=desk.database.writer)
    await replayer.replay_due()
    [row] = await desk.rows()
    assert (row.status, row.attempts) == ("pending", 6)
    assert row.retry_requested_at is not None
    assert len(await desk.notices()) == 1
    assert await replayer.replay_due() == 0  # not replayed in a loop


async def test_processed_ids_of_failed_updates_are_not_forgotten(desk: Desk) -> None:
    desk.fail_times = 99
    await desk.feed(private_message(7, 10, "kept"))
    desk.fail_times = 0
    await desk.feed(private_message(7, 10, "kept"))  # redelivered, and passed
    await desk.feed(private_message(9, 12, "other"))
    async with desk.database.writer.begin() as session:
        await UpdateLog(session).forget_before(desk.clock.now() + timedelta(days=1))
    async with desk.database.reader() as session:
        ids = list(await session.scalars(select(ProcessedUpdate.update_id)))
    assert ids == [7]


# ------------------------------------------------------------------------ poison updates


class Unkeepable:
    """A dispatcher for which one update fails beyond keeping (the database refused even the
    failed row, say); the others record their effect in the current session."""

    def __init__(self, desk: Desk, poison: int) -> None:
        self.desk = desk
        self.poison = poison

    async def feed_update(
        self, bot: Bot, update: Update, batch: UnitOfWork | None = None, **kwargs: Any
    ) -> None:
        if update.update_id == self.poison:
            raise RuntimeError("cannot keep this one")
        # As the dispatcher's unit of work does: inside the poller's batch, in its transaction.
        async with transaction(self.desk.database.writer, within=batch) as uow:
            await DeskSettings(uow.session).put(f"seen:{update.update_id}", "ok")


@pytest.mark.parametrize("batch", [True, False])
async def test_an_update_that_cannot_be_kept_holds_up_the_others_only_briefly(
    desk: Desk, batch: bool
) -> None:
    guard = PoisonGuard(desk.keeper)
    poller = Poller(
        desk.bot,
        Unkeepable(desk, poison=2),  # type: ignore[arg-type]
        batch_sessions=desk.database.writer if batch else None,
        guard=guard,
    )
    updates = [
        private_message(1, 10, "a"),
        private_message(2, 11, "b"),
        private_message(3, 12, "c"),
    ]
    for _ in range(2):  # not confirmed: Telegram delivers the batch again
        with pytest.raises(UpdatesNotKeptError):
            await poller._handle_batch(updates)
        # ... but the others are kept meanwhile, each once (a redelivery is skipped by the
        # unit of work in the real dispatcher).
        assert await desk.seen(1) == "ok" and await desk.seen(3) == "ok"
    await poller._handle_batch(updates)  # the third time it is written down unhandled
    [row] = await desk.rows()
    assert (row.update_id, row.status, row.attempts) == (2, "pending", 3)
    assert row.error == "RuntimeError: cannot keep this one"
    assert len(await desk.notices()) == 1
    assert guard.unkept == {}


async def test_the_webhook_answers_500_until_the_unkeepable_update_is_written_down(
    desk: Desk,
) -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from bot.app import KeepingRequestHandler

    class Refusing:
        async def feed_webhook_update(self, bot: Bot, update: Update, **kwargs: Any) -> None:
            if update.update_id == 2:
                raise RuntimeError("cannot keep this one")

    app = web.Application()
    KeepingRequestHandler(
        guard=PoisonGuard(desk.keeper),
        dispatcher=Refusing(),  # type: ignore[arg-type]
        bot=desk.bot,
        handle_in_background=False,
    ).register(app, path="/webhook")
    async with TestClient(TestServer(app)) as client:
        payload = as_json(private_message(2, 11, "b"))
        statuses = []
        for _ in range(3):  # Telegram sends it again and again, and the others wait behind
            async with client.post("/webhook", json=payload) as response:
                statuses.append(response.status)
        async with client.post("/webhook", json=as_json(private_message(3, 12, "c"))) as ok:
            statuses.append(ok.status)
    assert statuses == [500, 500, 200, 200]
    [row] = await desk.rows()
    assert (row.update_id, row.attempts) == (2, 3)


# ------------------------------------------------------------------------ late button answers


async def test_a_too_late_answer_to_a_button_does_not_fail_the_update() -> None:
    middleware = StaleCallbackAnswers()
    bot = Bot("42:TEST")
    too_old = "Bad Request: query is too old and response timeout expired or query ID is invalid"

    async def refuse(bot: Bot, method: Any) -> Any:
        raise TelegramBadRequest(method=method, message=too_old)

    answer = AnswerCallbackQuery(callback_query_id="1")
    response = await middleware(refuse, bot, answer)
    assert isinstance(response, Response) and response.result is True
    with pytest.raises(TelegramBadRequest):
        await middleware(refuse, bot, SendMessage(chat_id=1, text="x"))

    async def other(bot: Bot, method: Any) -> Any:
        raise TelegramBadRequest(method=method, message="Bad Request: something else")

    with pytest.raises(TelegramBadRequest):
        await middleware(other, bot, answer)
    await bot.session.close()


# ------------------------------------------------------------------------ the CLI


def test_the_cli_lists_shows_retries_and_resolves(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def keep() -> None:
        database = Database(url)
        desk = Desk(database)
        desk.fail_times = 99
        await desk.feed(private_message(7, 10, "kept one"))
        await desk.feed(private_message(8, 11, "kept two"))
        await desk.bot.session.close()
        await database.dispose()

    asyncio.run(keep())
    assert failed_cli(["list"], url) == 0
    out = capsys.readouterr().out
    assert "STATUS" in out and "pending" in out and "RuntimeError: injected fault" in out
    assert failed_cli(["show", "1"], url) == 0
    out = capsys.readouterr().out
    assert '"text": "kept one"' in out and "Traceback" in out
    # No bot runs here: the rows wait for it.
    assert failed_cli(["retry", "1", "--wait", "0.3"], url) == 0
    out = capsys.readouterr().out
    assert "Asked the running bot to replay #1." in out and "not replayed yet" in out
    assert failed_cli(["resolve", "2", "--note", "answered by phone"], url) == 0
    assert "#2 resolved: answered by phone" in capsys.readouterr().out
    assert failed_cli(["list"], url) == 0
    out = capsys.readouterr().out
    assert "retried" in out and "\n2 " not in out
    assert failed_cli(["list", "--all"], url) == 0
    assert "resolved" in capsys.readouterr().out
    assert failed_cli(["show", "99"], url) == 1
    assert failed_cli(["retry", "99", "--wait", "0"], url) == 1
    assert failed_cli(["frobnicate"], url) == 2
    assert failed_cli([], url) == 2


def test_the_cli_on_a_database_without_the_table(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}"
    assert failed_cli(["list"], url) == 2


async def test_the_record_is_one_row_per_update(url: str) -> None:
    database = Database(url)
    try:
        values: dict[str, Any] = {
            "update_id": 5,
            "event_type": "message",
            "chat_id": 1,
            "user_id": 1,
            "payload": {"update_id": 5},
            "traceback": "...",
        }
        async with database.writer.begin() as session:
            repo = FailedUpdates(session)
            first = await repo.keep(**values, error="A: one", attempts=3, now=NOW)
            await repo.resolve(NOW, "replayed", row_id=first.id)
        async with database.writer.begin() as session:
            again = await FailedUpdates(session).keep(
                **values, error="B: two", attempts=3, now=NOW + timedelta(hours=1)
            )
        assert again.id == first.id
        assert (again.status, again.attempts, again.error) == ("pending", 6, "B: two")
        assert again.first_failed_at == NOW and again.last_failed_at == NOW + timedelta(hours=1)
        assert again.resolved_at is None and again.resolution is None
        async with database.writer.begin() as session:
            with pytest.raises(ValueError, match="which row"):
                await FailedUpdates(session).resolve(NOW, "x")
        async with database.reader() as session:
            assert await session.scalar(select(func.count()).select_from(DeskSetting)) == 0
    finally:
        await database.dispose()
