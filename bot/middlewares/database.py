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
        async with self.session_factory() as session:
            if isinstance(event, Update) and not await UpdateLog(session).first_time(
                event.update_id, self.clock.now()
            ):
                # Redelivered after a restart: its effects are already committed.
                log.info("update %s was already handled; skipped", event.update_id)
                return None
            token = current_session.set(session)
            try:
                data["session"] = session
                result = await handler(event, data)
                await session.commit()
            finally:
                current_session.reset(token)
        self.sender.wake()
        return result
