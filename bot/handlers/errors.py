"""The last line: an update that failed every attempt (the unit of work retries it) is kept
with its error, and the person is told that nothing is lost (``bot/failures.py``)."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.types import ErrorEvent

from bot.db.uow import UnitOfWork
from bot.failures import FailureKeeper, UpdateNotKeptError
from bot.handlers.routing import DeskRouter

log = logging.getLogger(__name__)


async def unexpected_error(
    event: ErrorEvent,
    bot: Bot,
    failures: FailureKeeper,
    update_attempts: int = 1,
    replay_of: int | None = None,
    batch: UnitOfWork | None = None,
) -> None:
    update = event.update
    log.error(
        "update %s failed after %d attempt(s): %r",
        update.update_id,
        update_attempts,
        event.exception,
        exc_info=event.exception,
    )
    try:
        await failures.keep(
            bot,
            update,
            event.exception,
            attempts=update_attempts,
            replay=replay_of is not None,
            batch=batch,
        )
    except Exception as exc:
        # Not confirmed, then: Telegram delivers the update again (bot/polling.py, webhook).
        raise UpdateNotKeptError(f"update {update.update_id} could not be kept") from exc


def create_router() -> Router:
    router = DeskRouter(name=__name__)
    router.errors.register(unexpected_error)
    return router
