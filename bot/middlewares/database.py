"""One unit of work per update: a session, committed once after the handler returns."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db.dialog_storage import current_session
from bot.db.repositories import UpdateLog
from bot.services.delivery import Sender

log = logging.getLogger(__name__)


class UnitOfWorkMiddleware(BaseMiddleware):
    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], clock: Clock, sender: Sender
    ) -> None:
        self.session_factory = session_factory
        self.clock = clock
        self.sender = sender

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        batch = current_session.get()
        if batch is not None:
            # Inside a batch of the poller (one transaction for the batch): a savepoint, so a
            # failing update undoes only its own changes. The poller commits.
            async with batch.begin_nested():
                return await self._handle(batch, handler, event, data)
        async with self.session_factory() as session:
            token = current_session.set(session)
            try:
                result = await self._handle(session, handler, event, data)
                await session.commit()
            finally:
                current_session.reset(token)
        self.sender.wake()
        return result

    async def _handle(
        self,
        session: AsyncSession,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if isinstance(event, Update) and not await UpdateLog(session).first_time(
            event.update_id, self.clock.now()
        ):
            # Redelivered after a restart: its effects are already committed.
            log.info("update %s was already handled; skipped", event.update_id)
            return None
        data["session"] = session
        return await handler(event, data)
