"""The bot's own standing in the staff group (``my_chat_member``): removed from it, managers are
told in private and the staff-side queue waits intact; back in it, what waited goes at once.

Having this handler is what makes the bot ask Telegram for these updates (``allowed_updates``
comes from ``resolve_used_update_types``)."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import ChatMemberUpdated
from sqlalchemy.ext.asyncio import AsyncSession

from bot.delivery.sender import Sender
from bot.handlers.routing import DeskRouter
from bot.services.desk_outcomes import DeskOutcomes
from bot.services.membership import is_member_status


async def bot_status_changed(
    event: ChatMemberUpdated, session: AsyncSession, desk_outcomes: DeskOutcomes, sender: Sender
) -> None:
    if is_member_status(event.new_chat_member):
        await desk_outcomes.access_back(session, event.chat.id)
        # What waited is due now (access_back); the sender stops waiting on this chat, and the
        # unit of work wakes it once this commits.
        sender.resume(event.chat.id)
    else:
        await desk_outcomes.access_lost(session, event.chat.id)


def create_router() -> Router:
    router = DeskRouter(name=__name__)
    router.my_chat_member.register(bot_status_changed)
    return router
