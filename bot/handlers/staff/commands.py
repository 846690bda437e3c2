"""Commands of the staff group: /queue, /ticket, /find, /note and the saved answers (/macros)."""

from __future__ import annotations

import contextlib

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import User
from bot.domain.ids import parse_id
from bot.handlers.staff.conversation import mark_note, ticket_of
from bot.keyboards import staff as kb
from bot.keyboards.staff import MacroCb, QueuePageCb
from bot.services.desk_config import DeskConfig
from bot.services.lifecycle import Refusal
from bot.services.macros import MacroService
from bot.services.messaging import Messenger
from bot.services.staff import NOTE, StaffService

router = Router(name=__name__)

PER_PAGE = 10


@router.message(Command("queue"))
async def queue_command(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    staff: StaffService,
    messenger: Messenger,
    locale: str,
) -> None:
    page = (parse_id(command.args or "") or 1) - 1
    text, pages = await staff.queue(session, page=page, per_page=PER_PAGE, locale=locale)
    page = min(max(page, 0), pages - 1)
    await messenger.send(
        session,
        message.chat.id,
        text,
        kb.queue_pages(page, pages),
        thread_id=message.message_thread_id if message.is_topic_message else None,
    )


@router.callback_query(QueuePageCb.filter())
async def queue_page(
    callback: CallbackQuery,
    callback_data: QueuePageCb,
    session: AsyncSession,
    staff: StaffService,
    locale: str,
) -> None:
    text, pages = await staff.queue(
        session, page=callback_data.page, per_page=PER_PAGE, locale=locale
    )
    await callback.answer()
    if isinstance(callback.message, Message):
        page = min(max(callback_data.page, 0), pages - 1)
        with contextlib.suppress(TelegramBadRequest):
            await callback.message.edit_text(text, reply_markup=kb.queue_pages(page, pages))


@router.message(Command("ticket"))
async def ticket_command(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    staff: StaffService,
    messenger: Messenger,
    locale: str,
) -> None:
    number = parse_id((command.args or "").strip().lstrip("#"))
    if number is None:
        await messenger.send(session, message.chat.id, _("Usage: /ticket 123"))
        return
    try:
        await staff.show_ticket(session, number, locale, message.message_thread_id)
    except Refusal as refusal:
        await messenger.send(session, message.chat.id, str(refusal))


@router.message(Command("find"))
async def find_command(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    staff: StaffService,
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
    await messenger.send(session, message.chat.id, await staff.find(session, query))


@router.message(Command("note"), F.text)  # a photo or an album sent with /note: conversation
async def note_command(
    message: Message,
    command: CommandObject,
    bot: Bot,
    user: User,
    session: AsyncSession,
    staff: StaffService,
    desk: DeskConfig,
    messenger: Messenger,
) -> None:
    ticket = await ticket_of(message, session, staff, desk)
    if ticket is None or not (command.args or "").strip():
        await messenger.send(
            session,
            message.chat.id,
            _("Reply to a request's card or message (or write in its topic): /note TEXT"),
        )
        return
    staff.note(
        session, ticket, user, (command.args or "").strip(), message_ids=[message.message_id]
    )
    await staff.remember_staff_link(session, ticket, message.message_id, NOTE)
    await mark_note(bot, message)


# -- saved answers ------------------------------------------------------------------------------


@router.message(Command("macros"))
async def macros_command(
    message: Message,
    session: AsyncSession,
    staff: StaffService,
    macros: MacroService,
    desk: DeskConfig,
    messenger: Messenger,
) -> None:
    ticket = await ticket_of(message, session, staff, desk)
    items = await macros.all(session)
    text = macros.listing(items)
    markup = (
        kb.macros(ticket.number, [(m.id, m.title) for m in items]) if ticket and items else None
    )
    if ticket is not None and items:
        text += "\n\n" + _("Press one to send it to the customer of #{number}.").format(
            number=ticket.number
        )
    await messenger.send(session, message.chat.id, text, markup)


@router.message(Command("macro_add", "macro_edit"))
async def macro_save(
    message: Message,
    command: CommandObject,
    user: User,
    session: AsyncSession,
    macros: MacroService,
    messenger: Messenger,
) -> None:
    title, sep, body = (command.args or "").partition("|")
    try:
        if not sep:
            raise Refusal(_("Usage: /macro_add Title | Text with {name} and {number}"))
        text = await macros.save(
            session, title.strip(), body.strip(), user, create=command.command == "macro_add"
        )
    except Refusal as refusal:
        text = str(refusal)
    await messenger.send(session, message.chat.id, text)


@router.message(Command("macro_del"))
async def macro_delete(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    macros: MacroService,
    messenger: Messenger,
) -> None:
    try:
        text = await macros.delete(session, (command.args or "").strip())
    except Refusal as refusal:
        text = str(refusal)
    await messenger.send(session, message.chat.id, text)


@router.callback_query(MacroCb.filter())
async def macro_send(
    callback: CallbackQuery,
    callback_data: MacroCb,
    user: User,
    session: AsyncSession,
    macros: MacroService,
) -> None:
    try:
        done = await macros.send(session, callback_data.macro, callback_data.number, user)
    except Refusal as refusal:
        await callback.answer(str(refusal), show_alert=True)
        return
    await callback.answer(done)


@router.message(F.text.startswith("/"), F.text.regexp(r"^/\w+@?\w*(\s|$)"))
async def other_command(message: Message) -> None:
    """Commands meant for other bots or unknown: not a message to a customer."""
