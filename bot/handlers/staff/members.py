"""Members joining, leaving, removed or promoted in the staff group (``chat_member``).

Having this handler is what makes the bot ask Telegram for these updates
(``allowed_updates`` comes from ``resolve_used_update_types``)."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import ChatMemberUpdated
from sqlalchemy.ext.asyncio import AsyncSession

from bot.handlers.routing import DeskRouter
from bot.services.membership import Membership


async def member_changed(
    event: ChatMemberUpdated, session: AsyncSession, membership: Membership
) -> None:
    await membership.changed(session, event)


def create_router() -> Router:
    router = DeskRouter(name=__name__)
    router.chat_member.register(member_changed)
    return router
