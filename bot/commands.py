"""The bot's command menus, in the current locale: customers' in private chats, staff's in the
staff group, and the managers' own commands added where a manager is."""

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


def staff_commands() -> list[BotCommand]:
    return [
        BotCommand(command="queue", description=_("Open tickets by priority and SLA deadline")),
        BotCommand(command="ticket", description=_("A ticket's card and history: /ticket N")),
        BotCommand(command="find", description=_("Find tickets: /find text")),
        BotCommand(command="note", description=_("An internal note in a ticket's topic")),
        BotCommand(command="macros", description=_("Saved answers")),
        BotCommand(command="link", description=_("Link requests to a problem: /link 12 34 35-40")),
        BotCommand(command="unlink", description=_("Unlink requests from their problem")),
        BotCommand(
            command="broadcast", description=_("In a problem's topic: tell all linked customers")
        ),
    ]


def manager_commands() -> list[BotCommand]:
    return [
        BotCommand(command="summary", description=_("Daily summary: /summary [YYYY-MM-DD]")),
        BotCommand(command="export", description=_("Tickets as CSV: /export [from] [to]")),
    ]


def private_commands(*, manager: bool) -> list[BotCommand]:
    """The menu of a private chat: a manager has a customer's commands and their own."""
    return customer_commands() + (manager_commands() if manager else [])
