"""Staff talk to a customer by replying to the ticket's card, to a relayed message or to the
bot's prompt, or by writing in the ticket's topic. A message that starts with ``!`` (or is sent
with ``/note``) is an internal note, and so is a reply to a note or to any other staff-side post
of the bot: it stays in the group (SPEC §5)."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import Message, ReactionTypeEmoji
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Ticket, User
from bot.handlers.customer.common import album_media
from bot.handlers.routing import DeskRouter
from bot.services.desk_config import DeskConfig
from bot.services.desk_outcomes import DeskOutcomes
from bot.services.lifecycle import Refusal
from bot.services.problems import ProblemService
from bot.services.resolution import ResolutionService
from bot.services.staff.lookup import StaffLookup
from bot.services.staff.relay import Route, StaffPost, StaffRelay
from bot.views.labels import refusal_text

log = logging.getLogger(__name__)


def _reply_of(message: Message) -> Message | None:
    """The message this one replies to; none for Telegram's reply to the root of a topic
    (outside forums a reply's thread is its chain of replies, and replies are real)."""
    reply = message.reply_to_message
    if reply is None:
        return None
    if message.is_topic_message and (
        reply.forum_topic_created or reply.message_id == message.message_thread_id
    ):
        return None
    return reply


async def ticket_of(
    message: Message, session: AsyncSession, lookup: StaffLookup, desk: DeskConfig
) -> Ticket | None:
    """The ticket a staff command is about: its topic, or the message it replies to."""
    if desk.staff_is_forum and message.message_thread_id:
        ticket = await lookup.ticket_of_thread(session, message.message_thread_id)
        if ticket is not None:
            return ticket
    reply = _reply_of(message)
    if reply is not None:
        return await lookup.ticket_of_staff_message(session, reply.message_id)
    return None


def staff_post(message: Message, bot: Bot) -> StaffPost:
    reply = _reply_of(message)
    return StaffPost(
        message_id=message.message_id,
        text=message.text or message.caption or "",
        thread_id=message.message_thread_id if message.is_topic_message else None,
        reply_to=reply.message_id if reply is not None else None,
        reply_to_bot=reply is not None
        and reply.from_user is not None
        and reply.from_user.id == bot.id,
        media_group_id=message.media_group_id,
        media=album_media(message) if message.media_group_id else None,
        replied_text=(reply.text or reply.caption) if reply is not None else None,
        quoted=message.quote.text if message.quote is not None else None,
        content=mail_content(message),
    )


def mail_content(message: Message) -> dict[str, Any]:
    """What a staff message says, kept for a customer who writes by e-mail: its HTML and the
    ids of its files (a mail cannot copy a Telegram message; bot/delivery/mail.py)."""
    files: list[dict[str, Any]] = []
    if message.photo:
        files.append({"file_id": message.photo[-1].file_id, "name": None})
    for media in (message.document, message.video, message.audio, message.voice):
        if media is not None:
            files.append({"file_id": media.file_id, "name": getattr(media, "file_name", None)})
    text = message.text or message.caption
    return {"html": message.html_text if text else "", "files": files}


async def mark_note(bot: Bot, message: Message) -> None:
    """A quiet sign that the note was kept (a reaction, not another message)."""
    with contextlib.suppress(TelegramAPIError):
        await bot.set_message_reaction(
            message.chat.id, message.message_id, [ReactionTypeEmoji(emoji="✍")]
        )


async def group_migrated(
    message: Message, desk_outcomes: DeskOutcomes, session: AsyncSession
) -> None:
    """Telegram upgraded the staff group to a supergroup: the same path as a send that met
    the move (bot/services/desk_outcomes.py)."""
    assert message.migrate_to_chat_id is not None
    await desk_outcomes.follow(session, message.chat.id, message.migrate_to_chat_id)


async def staff_message(
    message: Message,
    bot: Bot,
    user: User,
    session: AsyncSession,
    staff_relay: StaffRelay,
    resolution: ResolutionService,
    problems: ProblemService,
    locale: str,
) -> None:
    post = staff_post(message, bot)
    try:
        routed = await staff_relay.route(session, post)
    except Refusal as refusal:
        await message.reply(refusal_text(refusal))
        return
    if routed is None:
        return  # staff talking among themselves
    try:
        received = await staff_relay.receive(session, user, post, routed, locale)
        if received.resolve:
            # The answer to the Resolve prompt: it goes to the customer with Solved / Not solved.
            await resolution.resolve(session, routed.ticket, user, message.message_id, post.content)
            await problems.offer_resolve_all(
                session, routed.ticket, message.message_id, post.content, locale
            )
        elif routed.route is Route.ANSWER and post.media_group_id is None:
            # An answer on a problem can go to every linked customer too (SPEC §13).
            await problems.offer_broadcast(
                session, routed.ticket, message.message_id, post.content, locale
            )
    except Refusal as refusal:
        await message.reply(refusal_text(refusal))
        return
    if received.mark:
        await mark_note(bot, message)


async def staff_edit(
    message: Message, session: AsyncSession, staff_relay: StaffRelay, locale: str
) -> None:
    """An edit of an answer already sent is carried to the customer's copy."""
    await staff_relay.carry_edit(session, message, locale)


def create_router() -> Router:
    router = DeskRouter(name=__name__)
    router.message.register(group_migrated, F.migrate_to_chat_id)
    router.message.register(
        staff_message,
        F.text
        | F.caption
        | F.photo
        | F.document
        | F.video
        | F.voice
        | F.audio
        | F.sticker
        | F.animation,
    )
    router.edited_message.register(staff_edit)
    return router
