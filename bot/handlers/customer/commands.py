"""/start, /help, /my and /language in the customer's private chat."""

from __future__ import annotations

import contextlib

from aiogram import Bot, Router, html
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandStart
from aiogram.types import BotCommandScopeChat, CallbackQuery, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.commands import private_commands
from bot.domain.tickets import is_open
from bot.handlers.customer.dialog import Dialog
from bot.handlers.filters import looks_like_command
from bot.handlers.routing import DeskRouter
from bot.keyboards import customer as kb
from bot.keyboards.customer import LanguageCb
from bot.services.desk_config import DeskConfig
from bot.services.managers import ManagerService
from bot.services.tickets import TicketService
from bot.states import STEPS
from bot.views.tickets import TicketLine, my_tickets


def _help_text(config: DeskConfig) -> str:
    return _(
        "I am the e-Comet support desk.\n\n"
        "/new — a new request: I will ask a few questions and register it\n"
        "/my — your requests and their status\n"
        "/language — change the language\n"
        "/cancel — stop filling in a request\n\n"
        "One request is one problem: for a new problem, open a new request. To add details "
        "to an open one, just write here. Support works {hours} ({zone}) every day."
    ).format(hours=config.hours_text, zone=config.tz.key)


async def start(message: Message, dialog: Dialog) -> None:
    greeting = _(
        "Hello, {name}! This is e-Comet support. Tell us about a problem or ask a question — "
        "press the button below or send /new. /my shows your requests."
    ).format(name=html.quote(dialog.user.first_name))
    if await dialog.state.get_state() in {step.state for step in STEPS}:
        await dialog.ask(greeting)  # and where they stopped in their request
        return
    await dialog.messenger.send(dialog.session, dialog.user.id, greeting, kb.start_menu())


async def help_command(message: Message, dialog: Dialog, desk: DeskConfig) -> None:
    await dialog.messenger.send(dialog.session, dialog.user.id, _help_text(desk), kb.start_menu())


async def my_command(
    message: Message, dialog: Dialog, tickets: TicketService, desk: DeskConfig, locale: str
) -> None:
    rows, total = await tickets.customer_tickets(dialog.session, dialog.user.id)
    lines = [
        TicketLine(t.number, t.topic, t.status, t.created_at, t.problem_number is not None)
        for t in rows
    ]
    text = my_tickets(lines, total, tz=desk.tz, locale=locale)
    closable = [t.number for t in rows if is_open(t.status)]
    if closable:
        text += "\n\n" + _("No longer needed? Close it with a button below.")
    await dialog.messenger.send(dialog.session, dialog.user.id, text, kb.close_mine(closable))


async def language_command(message: Message, dialog: Dialog) -> None:
    await dialog.messenger.send(
        dialog.session, dialog.user.id, _("Choose the language:"), kb.languages()
    )


async def language_chosen(
    callback: CallbackQuery,
    callback_data: LanguageCb,
    bot: Bot,
    dialog: Dialog,
    i18n: I18n,
    managers: ManagerService,
) -> None:
    code = callback_data.code
    if code not in kb.LANGUAGE_NAMES or code not in i18n.available_locales:
        await callback.answer(_("This language is not available."), show_alert=True)
        return
    dialog.user.locale = code
    with i18n.use_locale(code):
        await callback.answer()
        if isinstance(callback.message, Message):
            dialog.messenger.edit(
                dialog.session,
                dialog.user.id,
                _("Language: {name}").format(name=kb.LANGUAGE_NAMES[code]),
                message_id=callback.message.message_id,
            )
        with contextlib.suppress(TelegramAPIError):
            # The command menu of this chat follows the chosen language.
            await bot.set_my_commands(
                private_commands(manager=managers.is_manager(dialog.user.id)),
                scope=BotCommandScopeChat(chat_id=dialog.user.id),
            )


def create_router() -> Router:
    router = DeskRouter(name=__name__)
    router.message.filter(looks_like_command)  # every message handler here is a command
    router.message.register(start, CommandStart())
    router.message.register(help_command, Command("help"))
    router.message.register(my_command, Command("my"))
    router.message.register(language_command, Command("language"))
    router.callback_query.register(language_chosen, LanguageCb.filter())
    return router
