"""/start, /help, /my and /language in the customer's private chat."""

from __future__ import annotations

import contextlib
import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import BotCommandScopeChat, CallbackQuery, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.commands import customer_commands
from bot.db.models import User
from bot.handlers.customer.dialog import ask
from bot.keyboards import customer as kb
from bot.keyboards.customer import LanguageCb
from bot.services.tickets import DeskConfig, TicketService
from bot.states import STEPS
from bot.views.tickets import TicketLine, my_tickets

log = logging.getLogger(__name__)
router = Router(name=__name__)


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


@router.message(CommandStart())
async def start(message: Message, bot: Bot, state: FSMContext, user: User) -> None:
    greeting = _(
        "Hello, {name}! This is e-Comet support. Tell us about a problem or ask a question — "
        "press the button below or send /new. /my shows your requests."
    ).format(name=_safe_name(user))
    if await state.get_state() in {step.state for step in STEPS}:
        await ask(bot, message.chat.id, state, user, greeting)
        return
    await message.answer(greeting, reply_markup=kb.start_menu())


def _safe_name(user: User) -> str:
    from aiogram import html

    return html.quote(user.first_name)


@router.message(Command("help"))
async def help_command(message: Message, desk: DeskConfig) -> None:
    await message.answer(_help_text(desk), reply_markup=kb.start_menu())


@router.message(Command("my"))
async def my_command(
    message: Message,
    user: User,
    session: AsyncSession,
    tickets: TicketService,
    desk: DeskConfig,
    locale: str,
) -> None:
    rows, total = await tickets.customer_tickets(session, user.id)
    lines = [TicketLine(t.number, t.topic, t.status, t.created_at) for t in rows]
    await message.answer(my_tickets(lines, total, tz=desk.tz, locale=locale))


@router.message(Command("language"))
async def language_command(message: Message) -> None:
    await message.answer(_("Choose the language:"), reply_markup=kb.languages())


@router.callback_query(LanguageCb.filter())
async def language_chosen(
    callback: CallbackQuery, callback_data: LanguageCb, bot: Bot, user: User, i18n: I18n
) -> None:
    if callback_data.code not in kb.LANGUAGE_NAMES or callback_data.code not in i18n.available_locales:
        await callback.answer(_("This language is not available."), show_alert=True)
        return
    user.locale = callback_data.code
    with i18n.use_locale(callback_data.code):
        await callback.answer()
        if isinstance(callback.message, Message):
            with contextlib.suppress(TelegramAPIError):
                await callback.message.edit_text(
                    _("Language: {name}").format(name=kb.LANGUAGE_NAMES[callback_data.code])
                )
        with contextlib.suppress(TelegramAPIError):
            # The command menu of this chat follows the chosen language.
            await bot.set_my_commands(
                customer_commands(), scope=BotCommandScopeChat(chat_id=callback.from_user.id)
            )
