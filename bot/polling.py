"""Long polling that confirms updates only after they are handled.

aiogram's ``start_polling`` handles updates as tasks and asks for the next batch at once,
which confirms the previous one (Telegram forgets every update below the new ``offset``)
while its handlers may still be running: a kill at that moment loses the customer's message.
Here a batch is handled concurrently and confirmed only when all of it is done; a redelivered
update is then skipped by the unit of work (``processed_updates``), so each takes effect once.

An update whose handler fails is retried and then kept as failed (``bot/failures.py``): it is
confirmed like any other. Only one that could not even be kept leaves its batch unconfirmed;
the :class:`~bot.failures.PoisonGuard` writes it down unhandled after a few deliveries, so one
bad update never holds up the rest for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence

from aiogram import Bot, Dispatcher
from aiogram.dispatcher.middlewares.user_context import UserContextMiddleware
from aiogram.methods import GetUpdates
from aiogram.types import Update
from aiogram.utils.backoff import Backoff, BackoffConfig
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.dialog_storage import DatabaseStorage
from bot.db.uow import UnitOfWork, transaction
from bot.failures import PoisonGuard

log = logging.getLogger(__name__)

BACKOFF = BackoffConfig(min_delay=0.5, max_delay=10.0, factor=1.5, jitter=0.1)


class UpdatesNotKeptError(Exception):
    """Some updates of the batch were neither handled nor kept: the batch is not confirmed."""


class Poller:
    """With ``batch_sessions`` (SQLite: one writer at a time anyway), a batch of updates is
    handled one after another in one transaction, committed once: a commit per batch instead
    of per update. Without it, the updates of a batch are handled concurrently, each in its
    own transaction.

    The first try at a batch reads ahead in a few statements what its updates will look up
    (``UnitOfWork.read_ahead``) and has no savepoint per update, so their writes go out
    together at the commit. If an update fails there, the whole batch is rolled back and
    handled again with a savepoint per update: the failing update is retried and kept as
    failed while the others are kept (a failure costs the batch twice, the common case a
    few statements). A batch whose transaction fails even so is handled once more, one
    transaction per update, so that the one update at fault is found and the others are
    kept."""

    def __init__(
        self,
        bot: Bot,
        dispatcher: Dispatcher,
        *,
        timeout: int = 25,
        batch_sessions: async_sessionmaker[AsyncSession] | None = None,
        after_commit: Callable[[], None] = lambda: None,
        guard: PoisonGuard | None = None,
        before_batch: Callable[[Sequence[Update]], Awaitable[None]] | None = None,
    ) -> None:
        self.bot = bot
        # Called before a batch is handled, outside its transaction (what the batch may wait
        # for must not wait for the batch's locks).
        self.before_batch = before_batch
        self.dispatcher = dispatcher
        self.timeout = timeout
        self.batch_sessions = batch_sessions
        self.after_commit = after_commit
        self.guard = guard
        self.stopping = asyncio.Event()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)

    def stop(self) -> None:
        log.info("stopping: finishing the updates in hand")
        self.stopping.set()

    async def run(self, allowed_updates: list[str]) -> None:
        backoff = Backoff(config=BACKOFF)
        offset: int | None = None
        me = await self.bot.me()
        log.info("Run polling for bot @%s id=%s", me.username, me.id)
        while not self.stopping.is_set():
            request = GetUpdates(
                offset=offset, timeout=self.timeout, allowed_updates=allowed_updates
            )
            try:
                updates = await self._fetch(request)
            except Exception as exc:  # noqa: BLE001 - any failure to poll is retried
                # Right after a kill -9 Telegram may answer 409 while the old long poll lives.
                log.warning("getUpdates failed (%s: %s); retrying", type(exc).__name__, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), next(backoff))
                continue
            if updates is None:
                break  # stopped while waiting
            if updates:
                try:
                    if self.before_batch is not None:
                        await self.before_batch(updates)
                    await self._handle_batch(updates)
                except Exception:  # not confirmed: Telegram sends them again
                    log.exception("a batch of %d updates was not kept; retrying", len(updates))
                    await asyncio.sleep(next(backoff))
                    continue
                offset = updates[-1].update_id + 1
            backoff.reset()
        if offset is not None:
            # Confirm what was handled, so a restart does not receive it again.
            with contextlib.suppress(Exception):
                await self.bot(GetUpdates(offset=offset, timeout=0, limit=1))
        log.info("polling stopped")

    async def _handle_batch(self, updates: list[Update]) -> None:
        outcomes: list[BaseException | None]
        if self.batch_sessions is None:
            outcomes = list(
                await asyncio.gather(
                    *(self._handle(update) for update in updates), return_exceptions=True
                )
            )
        else:
            try:
                await self._in_transaction(updates, savepoints=False)
                outcomes = [None] * len(updates)
            except Exception as exc:  # noqa: BLE001 - handled again, with savepoints
                log.warning(
                    "a batch of %d updates is handled again with a savepoint per update: %s",
                    len(updates),
                    exc,
                )
                outcomes = await self._with_savepoints(updates)
        unkept = 0
        for update, outcome in zip(updates, outcomes, strict=True):
            if outcome is None:
                if self.guard is not None:
                    self.guard.succeeded(update.update_id)
                continue
            if not isinstance(outcome, Exception):
                raise outcome  # cancelled
            if self.guard is None or not await self.guard.failed(self.bot, update, outcome):
                unkept += 1
        if unkept:
            raise UpdatesNotKeptError(f"{unkept} of {len(updates)} updates were not kept")

    async def _with_savepoints(self, updates: list[Update]) -> list[BaseException | None]:
        try:
            await self._in_transaction(updates)
        except Exception as exc:  # noqa: BLE001 - whatever it was, the update is not kept
            if len(updates) == 1:
                return [exc]
            log.warning(
                "a batch of %d updates was not kept (%s); one transaction per update",
                len(updates),
                exc,
            )
            return [await self._alone(update) for update in updates]
        return [None] * len(updates)

    async def _alone(self, update: Update) -> Exception | None:
        try:
            await self._in_transaction([update])
        except Exception as exc:  # noqa: BLE001 - whatever it was, the update is not kept
            return exc
        return None

    async def _in_transaction(self, updates: list[Update], *, savepoints: bool = True) -> None:
        assert self.batch_sessions is not None
        async with transaction(
            self.batch_sessions, after_commit=self.after_commit, savepoints=savepoints
        ) as batch:
            # The database first, the chats' locks (events isolation) second, as the replays of
            # failed updates do (bot/failures.py Replayer): the two never wait for each other.
            await batch.session.connection()
            if not savepoints:
                await self._read_ahead(batch, updates)
            for update in updates:
                await self._handle(update, batch)
            if not savepoints:
                await batch.finish_read_ahead()

    async def _read_ahead(self, batch: UnitOfWork, updates: list[Update]) -> None:
        """What the updates' handlers will look up, read at once: the authors, the private
        chats' open tickets, the dialog rows of each chat and author (under the key the
        dispatcher's FSM gives them, every destiny)."""
        storage = self.dispatcher.storage
        users: set[int] = set()
        customers: set[int] = set()
        prefixes: set[str] = set()
        for update in updates:
            context = UserContextMiddleware.resolve_event_context(update)
            if context.user is None or context.user.is_bot:
                continue
            users.add(context.user.id)
            if context.chat is not None and context.chat.type == "private":
                customers.add(context.user.id)
            fsm = self.dispatcher.fsm.resolve_context(
                self.bot,
                chat_id=context.chat_id,
                user_id=context.user_id,
                thread_id=context.thread_id,
                business_connection_id=context.business_connection_id,
            )
            if fsm is not None and isinstance(storage, DatabaseStorage):
                prefixes.add(storage.prefix_of(fsm.key))
        await batch.read_ahead(
            update_ids=[update.update_id for update in updates],
            user_ids=users,
            customer_ids=customers,
            dialog_prefixes=prefixes,
        )

    async def _fetch(self, request: GetUpdates) -> list[Update] | None:
        fetch = asyncio.ensure_future(self.bot(request, request_timeout=self.timeout + 15))
        stop = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait({fetch, stop}, return_when=asyncio.FIRST_COMPLETED)
        if fetch.done():
            stop.cancel()
            return fetch.result()
        fetch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await fetch
        return None

    async def _handle(self, update: Update, batch: UnitOfWork | None = None) -> None:
        # A failure of the handler is retried and kept by the error router; what comes out
        # here is an update that could not be kept either: its batch stays unconfirmed.
        await self.dispatcher.feed_update(self.bot, update, batch=batch)
