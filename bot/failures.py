"""A failing update loses nothing.

The unit of work (``bot/middlewares/database.py``) handles an update up to ``ATTEMPTS`` times,
each attempt in a transaction (a savepoint in the poller's batch) that is rolled back when it
fails. When every attempt failed, the error handler (``bot/handlers/errors.py``) hands the update
to :class:`FailureKeeper`: its whole JSON, the error and the last frames of the traceback go into
``failed_updates`` in the transaction that confirms the update (the poller's batch, or one of
their own), together with a notice to the person: a customer is told that the message is received
and will be handled, staff in the group that their action is saved and will be redone.

``python -m bot failed retry ID`` only marks the row (``retried``); the running bot's
:class:`Replayer` feeds the stored update through its own dispatcher, with its own services, as
if Telegram had just sent it. The unit of work marks the row ``resolved`` in the replay's own
transaction, and ``processed_updates`` makes the update take effect once whichever way it came
back (a replay, a redelivery). A replay that fails again is kept again (``pending``, its attempts
added up) and tells nobody.

An update that failed and could not even be kept (the database refused that too) is not
confirmed: Telegram delivers it again. :class:`PoisonGuard` counts such deliveries; at the
``GIVE_UP_AFTER``-th it writes the update down as failed without handling it, so that it does
not hold up the updates behind it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import Default
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, Message, Update
from aiogram.utils.i18n import I18n
from pydantic_core import to_jsonable_python
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock, SystemClock
from bot.db.models import FailedUpdate, User
from bot.db.repositories import FailedUpdates, UserRepo
from bot.db.uow import UnitOfWork, transaction
from bot.middlewares.user import locale_of
from bot.services.desk_config import DeskConfig
from bot.services.messaging import Messenger

log = logging.getLogger(__name__)

ATTEMPTS = 3  # tries of an update before it is kept as failed
GIVE_UP_AFTER = 3  # deliveries of an update that could not even be kept
REPLAY_INTERVAL = 1.0  # seconds between the running bot's looks for replays


class UpdateNotKeptError(Exception):
    """The update failed and could not be kept as failed either: it must not be confirmed."""


def describe(update: Update) -> tuple[str, int | None, int | None]:
    """The update's type, its chat and its author."""
    try:
        kind = update.event_type
        event: Any = update.event
    except Exception:  # noqa: BLE001 - a type this aiogram does not know
        return "unknown", None, None
    chat = getattr(event, "chat", None)
    if chat is None and isinstance(getattr(event, "message", None), Message):
        chat = event.message.chat
    author = getattr(event, "from_user", None)
    return kind, getattr(chat, "id", None), getattr(author, "id", None)


def summarize(exc: BaseException) -> tuple[str, str]:
    """``TypeName: message`` and the last frames of the traceback (of the cause, if the update
    could not be kept)."""
    if isinstance(exc, UpdateNotKeptError) and exc.__cause__ is not None:
        exc = exc.__cause__
    error = f"{type(exc).__name__}: {exc}"
    frames = "".join(traceback.format_exception(exc, limit=-12))
    return error[:2000], frames[-8000:]


def as_json(update: Update) -> dict[str, Any]:
    """The update as Telegram sends it (``from``, not ``from_user``), which
    ``Update.model_validate`` reads back. (aiogram fills the options Telegram left out of a
    message, such as its link preview's, with placeholders for the bot's defaults: left out.)"""
    try:
        dumped = _without_placeholders(update.model_dump(by_alias=True, exclude_none=True))
        return dict(to_jsonable_python(dumped))
    except Exception as exc:  # keep the update's id at the very least
        log.exception("update %s could not be written as JSON", update.update_id)
        return {"update_id": update.update_id, "unreadable": f"{type(exc).__name__}: {exc}"}


def _without_placeholders(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: _without_placeholders(item)
            for key, item in value.items()
            if item is not None and not isinstance(item, Default)
        }
    if isinstance(value, list):
        return [_without_placeholders(item) for item in value]
    return value


class FailureKeeper:
    """Keeps failed updates and tells the people concerned."""

    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        clock: Clock,
        messenger: Messenger,
        i18n: I18n,
        desk: DeskConfig,
        after_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self.session_factory = session_factory
        self.clock = clock
        self.messenger = messenger
        self.i18n = i18n
        self.desk = desk
        self.after_commit = after_commit

    async def keep(
        self,
        bot: Bot,
        update: Update,
        exc: BaseException,
        *,
        attempts: int,
        replay: bool,
        batch: UnitOfWork | None = None,
    ) -> FailedUpdate:
        """Keep the update as failed (``batch``: inside the poller's batch, SQLite's one
        writer: kept with the batch's commit)."""
        kind, chat_id, user_id = describe(update)
        error, trace = summarize(exc)
        alerted = False
        if not replay and update.callback_query is not None:
            alerted = await self._answer(update.callback_query)
        async with transaction(
            self.session_factory, within=batch, after_commit=self.after_commit
        ) as uow:
            session = uow.session
            row = await FailedUpdates(session).keep(
                update_id=update.update_id,
                event_type=kind,
                chat_id=chat_id,
                user_id=user_id,
                payload=as_json(update),
                error=error,
                traceback=trace,
                attempts=attempts,
                now=self.clock.now(),
            )
            if not replay:
                await self._tell(session, update, user_id, alerted=alerted)
        log.error(
            "update %s (%s, chat %s) is kept as failed #%s after %d attempt(s): %s",
            update.update_id,
            kind,
            chat_id,
            row.id,
            attempts,
            error,
        )
        return row

    def customer_notice(self, locale: str) -> str:
        return self.i18n.gettext(
            "We have received your message and will handle it. Something went wrong on our "
            "side, but nothing is lost: there is no need to send it again.",
            locale=locale,
        )

    def staff_notice(self) -> str:
        # In the staff group's language (DEFAULT_LOCALE), like everything there.
        return self.i18n.gettext(
            "⚠️ This did not go through because of an error on our side. It is saved and will "
            "be redone once the error is fixed: no need to repeat it.",
            locale=self.desk.default_locale,
        )

    async def _answer(self, callback: CallbackQuery) -> bool:
        """Stop the button's spinner; staff get the notice on it as an alert. True: alerted."""
        message = callback.message
        try:
            if message is not None and self._is_staff_chat(message.chat.id):
                await callback.answer(self.staff_notice(), show_alert=True)
                return True
            await callback.answer()
        except TelegramAPIError as error:
            log.warning("could not answer the failed button press: %s", error)
        return False

    def _is_staff_chat(self, chat_id: int | None) -> bool:
        return chat_id is not None and chat_id == self.desk.staff_chat_id

    async def _tell(
        self, session: AsyncSession, update: Update, user_id: int | None, *, alerted: bool
    ) -> None:
        message = update.message or update.edited_message
        callback = update.callback_query
        if message is None and callback is not None and isinstance(callback.message, Message):
            message, reply_to = callback.message, callback.message.message_id
        elif message is not None:
            reply_to = message.message_id
        else:
            return  # nobody to tell (a membership change, ...)
        if message.chat.type == "private":
            text = self.customer_notice(await self._locale_of(session, user_id, update))
            await self.messenger.send(
                session, message.chat.id, text, reply_to_message_id=reply_to, purpose="notice"
            )
        elif self._is_staff_chat(message.chat.id) and not alerted:
            await self.messenger.send(
                session,
                message.chat.id,
                self.staff_notice(),
                reply_to_message_id=reply_to,
                thread_id=message.message_thread_id if message.is_topic_message else None,
                purpose="notice",
            )

    async def _locale_of(self, session: AsyncSession, user_id: int | None, update: Update) -> str:
        user = await UserRepo(session).get(user_id) if user_id is not None else None
        if user is None:
            # The user's row went with the rollback: their Telegram language, or the default.
            author = update.message or update.edited_message or update.callback_query
            language = getattr(getattr(author, "from_user", None), "language_code", None)
            user = User(locale=None, language_code=language)
        return locale_of(user, self.i18n.available_locales, self.i18n.default_locale)


class PoisonGuard:
    """Counts the deliveries of updates that could not be kept (see the module's docstring)."""

    def __init__(self, keeper: FailureKeeper, give_up_after: int = GIVE_UP_AFTER) -> None:
        self.keeper = keeper
        self.give_up_after = give_up_after
        self.unkept: dict[int, int] = {}

    def succeeded(self, update_id: int) -> None:
        self.unkept.pop(update_id, None)

    async def failed(self, bot: Bot, update: Update, exc: BaseException) -> bool:
        """True: the update is now kept as failed (confirm it); False: leave it unconfirmed."""
        if len(self.unkept) > 10_000:
            self.unkept.clear()
        count = self.unkept[update.update_id] = self.unkept.get(update.update_id, 0) + 1
        if count < self.give_up_after:
            log.warning(
                "update %s was not kept (%d of %d): %s",
                update.update_id,
                count,
                self.give_up_after,
                exc,
            )
            return False
        try:
            await self.keeper.keep(bot, update, exc, attempts=count, replay=False)
        except Exception:
            log.exception("update %s cannot be kept as failed either", update.update_id)
            return False
        self.unkept.pop(update.update_id, None)
        return True


class Replayer:
    """In the running bot: replays the failed updates an operator asked for (``retried``).

    Replays go through the dispatcher like the updates of the poller, and in the same order of
    locks: with ``batch_sessions`` (SQLite's one writer) the replay takes the database first and
    the chat's lock second, as the poller's batches do; otherwise the other way round, as every
    update does. Either way the two cannot wait for each other.
    """

    def __init__(
        self,
        *,
        bot: Bot,
        dispatcher: Dispatcher,
        sessions: async_sessionmaker[AsyncSession],
        read_sessions: async_sessionmaker[AsyncSession] | None = None,
        batch_sessions: async_sessionmaker[AsyncSession] | None = None,
        after_commit: Callable[[], None] = lambda: None,
        interval: float = REPLAY_INTERVAL,
    ) -> None:
        self.bot = bot
        self.dispatcher = dispatcher
        self.sessions = sessions
        self.read_sessions = read_sessions or sessions
        self.batch_sessions = batch_sessions
        self.after_commit = after_commit
        self.interval = interval

    async def run(self) -> None:
        while True:
            try:
                await self.replay_due()
            except Exception:
                log.exception("looking for failed updates to replay failed; trying again")
            await asyncio.sleep(self.interval)

    async def replay_due(self) -> int:
        async with self.read_sessions() as session:
            due = [(row.id, row.payload) for row in await FailedUpdates(session).due_for_replay()]
        for row_id, payload in due:
            await self.replay(row_id, payload)
        return len(due)

    async def replay(self, row_id: int, payload: dict[str, Any]) -> None:
        log.info("replaying failed update #%s (update %s)", row_id, payload.get("update_id"))
        try:
            update = Update.model_validate(payload, context={"bot": self.bot})
            if self.batch_sessions is None:
                await self.dispatcher.feed_update(self.bot, update, replay_of=row_id)
                return
            async with transaction(self.batch_sessions, after_commit=self.after_commit) as batch:
                await batch.session.connection()  # the database first, then the chat's lock
                await self.dispatcher.feed_update(self.bot, update, replay_of=row_id, batch=batch)
        except Exception:
            # Not even kept as failed again: back to pending rather than replayed in a loop.
            log.exception("the replay of failed update #%s was not kept", row_id)
            async with transaction(self.sessions) as uow:
                session = uow.session
                await FailedUpdates(session).back_to_pending(row_id)


# ---------------------------------------------------------------------------------------- CLI

USAGE = """usage: python -m bot failed list [--all]
       python -m bot failed show ID
       python -m bot failed retry [ID ...] [--wait SECONDS]
       python -m bot failed resolve ID [--note TEXT]"""


class DatabaseOnly(BaseSettings):
    """What the ``failed`` commands need: only the database, read like the bot reads it."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    database_url: str = "sqlite+aiosqlite:///data/support.sqlite3"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot failed",
        description="Updates whose handling failed: list them, and replay them in the running bot.",
    )
    commands = parser.add_subparsers(dest="action", required=True)
    listing = commands.add_parser("list", help="the pending ones (and being retried)")
    listing.add_argument("--all", action="store_true", help="resolved ones too")
    show = commands.add_parser("show", help="one of them in full: the update and the traceback")
    show.add_argument("id", type=int)
    retry = commands.add_parser(
        "retry", help="replay them (all pending without IDs) in the running bot"
    )
    retry.add_argument("ids", type=int, nargs="*", metavar="ID")
    retry.add_argument(
        "--wait",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long to wait for the running bot's outcome (0: do not wait; default 30)",
    )
    resolve = commands.add_parser("resolve", help="close one by hand, without replaying it")
    resolve.add_argument("id", type=int)
    resolve.add_argument("--note", default="closed by hand")
    return parser


def main(argv: Sequence[str], database_url: str | None = None) -> int:
    if not argv:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as exit_:
        return int(exit_.code or 0)
    url = database_url or DatabaseOnly().database_url
    return asyncio.run(_main(args, url))


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def _line(row: FailedUpdate) -> str:
    error = row.error.replace("\n", " ")
    if len(error) > 70:
        error = error[:69] + "…"
    return (
        f"{row.id:<5} {row.status:<8} {row.attempts:>5}  {_when(row.first_failed_at)}  "
        f"{_when(row.last_failed_at)}  {row.update_id:<11} {row.event_type:<15} "
        f"{row.chat_id if row.chat_id is not None else '-':<15} {error}"
    )


HEADER = (
    f"{'ID':<5} {'STATUS':<8} {'TRIES':>5}  {'FIRST FAILED (UTC)':<19}  {'LAST FAILED (UTC)':<19}  "
    f"{'UPDATE':<11} {'TYPE':<15} {'CHAT':<15} ERROR"
)


async def _main(args: argparse.Namespace, url: str) -> int:
    from sqlalchemy import inspect

    from bot.db.engine import Database

    database = Database(url)
    try:
        async with database.engine.connect() as connection:
            tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
        if "failed_updates" not in tables:
            print(
                "This database has no failed_updates table yet: run `python -m bot migrate`.",
                file=sys.stderr,
            )
            return 2
        action: Callable[[argparse.Namespace, Any], Any] = {
            "list": _list,
            "show": _show,
            "retry": _retry,
            "resolve": _resolve,
        }[args.action]
        return int(await action(args, database))
    finally:
        await database.dispose()


async def _list(args: argparse.Namespace, database: Any) -> int:
    async with database.reader() as session:
        rows = await FailedUpdates(session).listing(
            None if args.all else ("pending", "retried"), limit=1000
        )
    if not rows:
        print("No failed updates." if args.all else "No failed updates waiting.")
        return 0
    print(HEADER)
    for row in rows:
        print(_line(row))
    if any(row.status == "pending" for row in rows):
        print(
            "\n`python -m bot failed show ID` shows one in full; "
            "`python -m bot failed retry ID` replays it in the running bot."
        )
    return 0


async def _show(args: argparse.Namespace, database: Any) -> int:
    import json

    async with database.reader() as session:
        row = await FailedUpdates(session).get(args.id)
    if row is None:
        print(f"No failed update #{args.id}.", file=sys.stderr)
        return 1
    print(HEADER)
    print(_line(row))
    if row.retry_requested_at is not None:
        print(f"retry asked for at {_when(row.retry_requested_at)} UTC")
    if row.resolved_at is not None:
        print(f"resolved at {_when(row.resolved_at)} UTC: {row.resolution}")
    print("\nupdate:")
    print(json.dumps(row.payload, ensure_ascii=False, indent=2))
    print("\nerror:")
    print(row.error)
    print("\ntraceback (last frames):")
    print(row.traceback)
    return 0


async def _retry(args: argparse.Namespace, database: Any) -> int:
    clock = SystemClock()
    ids: list[int] | None = args.ids or None
    asked_at = clock.now()
    missing = False
    async with transaction(database.writer) as uow:
        session = uow.session
        repo = FailedUpdates(session)
        waiting = set(await repo.request_retry(ids, asked_at))
        for row_id in ids or ():
            if row_id in waiting:
                continue
            row = await repo.get(row_id)
            if row is None:
                missing = True
                print(f"No failed update #{row_id}.", file=sys.stderr)
            elif row.status == "retried":
                waiting.add(row_id)  # asked for before; still waiting for the bot
            else:
                print(f"#{row_id} is already resolved ({row.resolution}).")
    if not waiting:
        if ids is None:
            print("No pending failed updates.")
        return 1 if missing else 0
    print(f"Asked the running bot to replay {', '.join(f'#{i}' for i in sorted(waiting))}.")
    if args.wait <= 0:
        return 1 if missing else 0
    outcome = await _wait_for(database, waiting, args.wait)
    failed_again = False
    for row_id in sorted(waiting):
        row = outcome.get(row_id)
        if row is None:
            continue
        if row.status == "resolved":
            print(f"#{row_id}: replayed ({row.resolution}).")
        elif row.status == "pending":
            failed_again = True
            print(f"#{row_id}: failed again: {row.error}")
        else:
            print(
                f"#{row_id}: not replayed yet (is the bot running?); it will be when the bot runs."
            )
    return 1 if failed_again or missing else 0


async def _wait_for(database: Any, ids: set[int], timeout: float) -> dict[int, FailedUpdate]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    rows: dict[int, FailedUpdate] = {}
    while True:
        async with database.reader() as session:
            repo = FailedUpdates(session)
            for row_id in ids:
                row = await repo.get(row_id)
                if row is not None:
                    rows[row_id] = row
        if all(row.status != "retried" for row in rows.values()) or loop.time() >= deadline:
            return rows
        await asyncio.sleep(0.25)


async def _resolve(args: argparse.Namespace, database: Any) -> int:
    async with transaction(database.writer) as uow:
        session = uow.session
        done = await FailedUpdates(session).resolve(SystemClock().now(), args.note, row_id=args.id)
    if not done:
        print(f"No unresolved failed update #{args.id}.", file=sys.stderr)
        return 1
    print(f"#{args.id} resolved: {args.note}")
    return 0
