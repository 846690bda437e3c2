"""The last line: log what no handler expected, with the update id, and tell the user."""

from __future__ import annotations

import contextlib
import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import ErrorEvent
from aiogram.utils.i18n import gettext as _

log = logging.getLogger(__name__)
router = Router(name=__name__)


@router.errors()
async def unexpected_error(event: ErrorEvent, bot: Bot) -> None:
    update = event.update
    log.error("update %s failed: %r", update.update_id, event.exception, exc_info=event.exception)
    chat = None
    if update.message is not None and update.message.chat.type == "private":
        chat = update.message.chat.id
    elif update.callback_query is not None:
        with contextlib.suppress(TelegramAPIError):
            await update.callback_query.answer()
        message = update.callback_query.message
        if message is not None and message.chat.type == "private":
            chat = message.chat.id
    if chat is not None:
        with contextlib.suppress(TelegramAPIError):
            await bot.send_message(
                chat, _("Sorry, something went wrong on our side. Please try again in a minute.")
            )
