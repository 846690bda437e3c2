"""The bot's command menu, in the current locale."""

from __future__ import annotations

from aiogram.types import BotCommand
from aiogram.utils.i18n import gettext as _


def customer_commands() -> list[BotCommand]:
    return [
        BotCommand(command="new", description=_("New request")),
        BotCommand(command="my", description=_("My requests")),
        BotCommand(command="cancel", description=_("Stop filling in a request")),
        BotCommand(command="language", description=_("Change the language")),
        BotCommand(command="help", description=_("How it works")),
    ]
