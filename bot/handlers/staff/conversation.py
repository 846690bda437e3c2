"""Staff talk to a customer by replying to the ticket's card or to a relayed message, or by
writing in the ticket's topic. A message that starts with ``!`` is an internal note: it stays
in the group."""

from __future__ import annotations

import contextlib
import logging

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import Message, ReactionTypeEmoji
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Ticket, User
from bot.handlers.customer.common import album_media
from bot.services.desk_config import DeskConfig
from bot.services.lifecycle import Refusal
from bot.services.resolution import ResolutionService
from bot.services.staff import StaffService

log = logging.getLogger(__name__)
router = Router(name=__name__)

NOTE_MARK = "!"


async def ticket_of(
    message: Message, session: AsyncSession, staff: StaffService, desk: DeskConfig
) -> Ticket | None:
    """The ticket a staff message is about: its topic, or the message it replies to."""
    if desk.staff_is_forum and message.message_thread_id:
        ticket = await staff.ticket_of_thread(session, message.message_thread_id)
        if ticket is not None:
            return ticket
    reply = message.reply_to_message
    if reply is not None and not (
        reply.forum_topic_created or reply.message_id == message.message_thread_id
    ):
        return await staff.ticket_of_staff_message(session, reply.message_id)
    return None


async def mark_note(bot: Bot, message: Message) -> None:
    """A quiet sign that the note was kept (a reaction, not another message)."""
    with contextlib.suppress(TelegramAPIError):
        await bot.set_message_reaction(
            message.chat.id, message.message_id, [ReactionTypeEmoji(emoji="✍")]
        )


@router.message(F.migrate_to_chat_id)
async def group_migrated(message: Message, staff: StaffService, session: AsyncSession) -> None:
    assert message.migrate_to_chat_id is not None
    await staff.follow_migration(session, message.migrate_to_chat_id)


@router.message(
    F.text
    | F.caption
    | F.photo
    | F.document
    | F.video
    | F.voice
    | F.audio
    | F.sticker
    | F.animation
)
async def staff_message(
    message: Message,
    bot: Bot,
    user: User,
    session: AsyncSession,
    staff: StaffService,
    resolution: ResolutionService,
    desk: DeskConfig,
) -> None:
    ticket = await ticket_of(message, session, staff, desk)
    if ticket is None:
        return  # staff talking among themselves
    text = message.text or message.caption or ""
    if text.startswith(NOTE_MARK):
        staff.note(session, ticket, user, text[len(NOTE_MARK) :].strip())
        await staff.remember_staff_link(session, ticket, message.message_id, "note")
        await mark_note(bot, message)
        return
    reply = message.reply_to_message
    if reply is not None and await staff.is_resolve_prompt(session, reply.message_id):
        # The answer to the Resolve prompt: it goes to the customer with Solved / Not solved.
        try:
            await resolution.resolve(session, ticket, user, message.message_id)
        except Refusal as refusal:
            await message.reply(str(refusal))
        return
    customer_message = (
        await staff.customer_message_of(session, reply.message_id) if reply is not None else None
    )
    album = None
    if message.media_group_id:
        media = album_media(message)
        if media is not None:
            album = (message.media_group_id, media)
    try:
        await staff.answer(session, ticket, user, message.message_id, customer_message, album)
    except Refusal as refusal:
        await message.reply(str(refusal))


@router.edited_message()
async def staff_edit(message: Message, session: AsyncSession, staff: StaffService) -> None:
    """An edit of an answer already sent is carried to the customer's copy."""
    await staff.carry_edit(session, message)
