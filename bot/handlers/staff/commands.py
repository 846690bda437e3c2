"""Commands of the staff group: /queue, /ticket, /find, /note and the saved answers (/macros)."""

from __future__ import annotations

import contextlib
import re

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import User
from bot.domain.ids import parse_id
from bot.handlers.routing import DeskRouter
from bot.handlers.staff.conversation import mark_note, ticket_of
from bot.keyboards import staff as kb
from bot.keyboards.staff import MacroCb, QueuePageCb
from bot.services.desk_config import DeskConfig
from bot.services.lifecycle import Refusal
from bot.services.macros import MacroService
from bot.services.messaging import Messenger
from bot.services.staff.actions import StaffActions
from bot.services.staff.lookup import StaffLookup
from bot.services.staff.relay import NOTE, StaffRelay
from bot.views import staff as views
from bot.views.labels import refusal_text

PER_PAGE = 10


async def queue_command(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    staff_lookup: StaffLookup,
    messenger: Messenger,
    locale: str,
) -> None:
    page = (parse_id(command.args or "") or 1) - 1
    queue = await staff_lookup.queue(session, page=page, per_page=PER_PAGE)
    await messenger.send(
        session,
        message.chat.id,
        views.queue(queue, locale),
        kb.queue_pages(queue.page, queue.pages),
        thread_id=message.message_thread_id if message.is_topic_message else None,
    )


async def queue_page(
    callback: CallbackQuery,
    callback_data: QueuePageCb,
    session: AsyncSession,
    staff_lookup: StaffLookup,
    locale: str,
) -> None:
    queue = await staff_lookup.queue(session, page=callback_data.page, per_page=PER_PAGE)
    if isinstance(callback.message, Message):
        with contextlib.suppress(TelegramBadRequest):
            await callback.message.edit_text(
                views.queue(queue, locale), reply_markup=kb.queue_pages(queue.page, queue.pages)
            )


async def ticket_command(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    staff_lookup: StaffLookup,
    staff_actions: StaffActions,
    messenger: Messenger,
    locale: str,
) -> None:
    # ``/ticket 12``, or ``/ticket_12`` tapped in a burst digest.
    shortcut = command.regexp_match.group(1) if command.regexp_match is not None else None
    number = parse_id(shortcut or (command.args or "").strip().lstrip("#"))
    if number is None:
        await messenger.send(session, message.chat.id, _("Usage: /ticket 123"))
        return
    try:
        history = await staff_lookup.history(session, number)
        await staff_actions.show_ticket(
            session, number, views.history(history, locale), message.message_thread_id
        )
    except Refusal as refusal:
        await messenger.send(session, message.chat.id, refusal_text(refusal))


async def find_command(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    staff_lookup: StaffLookup,
    messenger: Messenger,
) -> None:
    query = (command.args or "").strip()
    if len(query) < 2:
        await messenger.send(
            session,
            message.chat.id,
            _("Usage: /find TEXT — a number, an account, a name or @username, or words."),
        )
        return
    found = await staff_lookup.find(session, query)
    await messenger.send(session, message.chat.id, views.found(query, found))


async def note_command(
    message: Message,
    command: CommandObject,
    bot: Bot,
    user: User,
    session: AsyncSession,
    staff_lookup: StaffLookup,
    staff_relay: StaffRelay,
    desk: DeskConfig,
    messenger: Messenger,
) -> None:
    ticket = await ticket_of(message, session, staff_lookup, desk)
    note = (command.args or "").strip()
    if ticket is None or not note:
        await messenger.send(
            session,
            message.chat.id,
            _("Reply to a request's card or message (or write in its topic): /note TEXT"),
        )
        return
    staff_relay.note(session, ticket, user, note, message_ids=[message.message_id])
    await staff_relay.remember_staff_link(session, ticket, message.message_id, NOTE)
    await mark_note(bot, message)


# -- saved answers ------------------------------------------------------------------------------


async def macros_command(
    message: Message,
    session: AsyncSession,
    staff_lookup: StaffLookup,
    macros: MacroService,
    desk: DeskConfig,
    messenger: Messenger,
) -> None:
    ticket = await ticket_of(message, session, staff_lookup, desk)
    items = await macros.all(session)
    for_ticket = ticket.number if ticket is not None and items else None
    markup = (
        kb.macros(for_ticket, [(m.id, m.title) for m in items]) if for_ticket is not None else None
    )
    text = views.macro_listing(items, for_ticket=for_ticket)
    await messenger.send(session, message.chat.id, text, markup)


async def macro_save(
    message: Message,
    command: CommandObject,
    user: User,
    session: AsyncSession,
    macros: MacroService,
    messenger: Messenger,
) -> None:
    title, sep, body = (command.args or "").partition("|")
    create = command.command == "macro_add"
    try:
        if not sep:
            raise Refusal(_("Usage: /macro_add Title | Text with {name} and {number}"))
        await macros.save(session, title.strip(), body.strip(), user, create=create)
        text = views.macro_saved(title.strip(), created=create)
    except Refusal as refusal:
        text = refusal_text(refusal)
    await messenger.send(session, message.chat.id, text)


async def macro_delete(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    macros: MacroService,
    messenger: Messenger,
) -> None:
    title = (command.args or "").strip()
    try:
        await macros.delete(session, title)
        text = views.macro_deleted(title)
    except Refusal as refusal:
        text = refusal_text(refusal)
    await messenger.send(session, message.chat.id, text)


async def macro_send(
    callback: CallbackQuery,
    callback_data: MacroCb,
    user: User,
    session: AsyncSession,
    macros: MacroService,
    callback_answer: CallbackAnswer,
) -> None:
    try:
        macro = await macros.send(session, callback_data.macro, callback_data.number, user)
    except Refusal as refusal:
        callback_answer.text, callback_answer.show_alert = refusal_text(refusal), True
        return
    callback_answer.text = views.macro_sent(macro.title, callback_data.number)


async def other_command(message: Message) -> None:
    """Commands meant for other bots or unknown: not a message to a customer."""


def create_router() -> Router:
    router = DeskRouter(name=__name__)
    router.message.register(queue_command, Command("queue"))
    router.callback_query.register(queue_page, QueuePageCb.filter())
    router.message.register(ticket_command, Command("ticket", re.compile(r"ticket_(\d{1,18})")))
    router.message.register(find_command, Command("find"))
    # A photo or an album sent with /note goes through the conversation.
    router.message.register(note_command, Command("note"), F.text)
    router.message.register(macros_command, Command("macros"))
    router.message.register(macro_save, Command("macro_add", "macro_edit"))
    router.message.register(macro_delete, Command("macro_del"))
    router.callback_query.register(macro_send, MacroCb.filter())
    router.message.register(
        other_command, F.text.startswith("/"), F.text.regexp(r"^/\w+@?\w*(\s|$)")
    )
    return router
