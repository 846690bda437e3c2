"""One unit of work per update: a session, committed once after the handler returns.

An attempt that raises is rolled back whole and the update is handled again, up to
``attempts`` times (a lock, a hiccup of Telegram's on a direct call: the next try usually
passes). Only then does the exception go on to the error handler, which keeps the update as
failed (``bot/failures.py``), with ``update_attempts`` telling it how many tries were made.

In the poller's first try at a batch (one transaction, no savepoint per update) an update
cannot be rolled back alone: one that raises stops the batch instead (:class:`BatchAbortedError`),
the poller rolls all of it back and hands it in again with a savepoint per update, where the
update gets its attempts and, failing them, is kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Dispatcher
from aiogram.dispatcher.event.bases import CancelHandler, SkipHandler
from aiogram.fsm.context import FSMContext
from aiogram.types import TelegramObject, Update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db.dialog_storage import DatabaseStorage
from bot.db.uow import UnitOfWork, transaction
from bot.delivery.sender import Sender

log = logging.getLogger(__name__)


class BatchAbortedError(CancelHandler):
    """An update failed in a batch without savepoints: the batch is to be rolled back and
    handled again with a savepoint per update. (A ``CancelHandler``, so that aiogram's error
    middleware passes it on rather than calling the error handler, which would keep the
    update as failed.)"""


ATTEMPTS = 3
PAUSE = 0.2  # seconds before the second try; twice that before the third


class UnitOfWorkMiddleware(BaseMiddleware):
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        clock: Clock,
        sender: Sender,
        *,
        attempts: int = ATTEMPTS,
        pause: float = PAUSE,
    ) -> None:
        self.session_factory = session_factory
        self.clock = clock
        self.sender = sender
        self.attempts = attempts
        self.pause = pause

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        dispatcher = data.get("dispatcher")
        if "fsm_storage" in data or not isinstance(dispatcher, Dispatcher):
            return await self._attempts(handler, event, data)
        # The dispatcher's FSM middleware is off (``disable_fsm``): its part is done here, so
        # that the dialog step is read once, in the update's transaction (aiogram's own reads
        # it before the transaction begins, on a connection of its own). The same context and
        # the same lock of the chat (events isolation) as aiogram's.
        fsm = dispatcher.fsm
        data["fsm_storage"] = fsm.storage
        context = fsm.resolve_event_context(data["bot"], data)
        if context is None:
            return await self._attempts(handler, event, data)
        async with fsm.events_isolation.lock(key=context.key):
            data["state"] = context
            return await self._attempts(handler, event, data)

    async def _attempts(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        batch: UnitOfWork | None = data.get("batch")
        if batch is not None and not batch.savepoints:
            try:
                return await self._attempt(handler, event, dict(data))
            except (SkipHandler, CancelHandler):
                raise
            except Exception as exc:
                raise BatchAbortedError(
                    f"update {getattr(event, 'update_id', '?')}: {type(exc).__name__}: {exc}"
                ) from exc
        attempt = 1
        while True:
            try:
                # A fresh copy each time: nothing an attempt put in the data (its session,
                # the user row it loaded) leaks into the next one.
                return await self._attempt(handler, event, dict(data))
            except (SkipHandler, CancelHandler):
                raise
            except Exception as exc:
                data["update_attempts"] = attempt
                if attempt >= self.attempts:
                    raise
                log.warning(
                    "update %s failed (attempt %d of %d: %s: %s); rolled back, trying again",
                    getattr(event, "update_id", "?"),
                    attempt,
                    self.attempts,
                    type(exc).__name__,
                    exc,
                )
            await asyncio.sleep(self.pause * attempt)
            attempt += 1

    async def _attempt(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        # Inside a batch of the poller (one transaction for the batch) the poller passes its
        # unit of work as ``batch``: this update is a savepoint of it and the poller commits.
        batch: UnitOfWork | None = data.get("batch")
        async with transaction(
            self.session_factory,
            within=batch,
            after_commit=self.sender.wake if batch is None else None,
        ) as uow:
            return await self._handle(uow, handler, event, data)

    async def _handle(
        self,
        uow: UnitOfWork,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        session = uow.session
        # A failed update replayed by the running bot (bot/failures.py): its row is resolved
        # in the same transaction as its effects.
        replay_of: int | None = data.get("replay_of")
        if isinstance(event, Update) and not await uow.updates.first_time(
            event.update_id, self.clock.now()
        ):
            # Redelivered after a restart: its effects are already committed.
            log.info("update %s was already handled; skipped", event.update_id)
            if replay_of is not None:
                await uow.failed_updates.resolve(
                    self.clock.now(), "already applied", row_id=replay_of
                )
            return None
        data["session"] = session
        data["uow"] = uow
        state = data.get("state")
        if isinstance(state, FSMContext) and isinstance(state.storage, DatabaseStorage):
            # The dialog step commits with the change it causes: the storage writes through
            # this unit's session (aiogram made the context before the unit began).
            state = FSMContext(storage=state.storage.bound(session), key=state.key)
            data["state"] = state
            # ... and read the step again in it: inside the poller's batch an earlier update of
            # this chat may have moved the dialog on, which only this session sees yet.
            data["raw_state"] = await state.get_state()
        elif isinstance(state, FSMContext) and "raw_state" not in data:
            data["raw_state"] = await state.get_state()
        result = await handler(event, data)
        if replay_of is not None:
            await uow.failed_updates.resolve(self.clock.now(), "replayed", row_id=replay_of)
            log.info("failed update #%s replayed", replay_of)
        return result
