"""The staff group: card buttons, the conversation with customers, staff commands.

Only updates from the staff group reach these routers, and a button acts only when the person
who pressed it is a member of the group (callback data can be forged; who pressed and where
cannot).
"""

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Router
from aiogram.filters import BaseFilter
from aiogram.types import CallbackQuery, Message, TelegramObject

from bot.handlers.staff import buttons, conversation
from bot.handlers.staff import commands as staff_commands
from bot.services.desk_config import DeskConfig
from bot.services.membership import Membership


class InStaffChat(BaseFilter):
    async def __call__(self, event: Message | CallbackQuery, desk: DeskConfig) -> bool:
        chat = event.chat if isinstance(event, Message) else getattr(event.message, "chat", None)
        return chat is not None and chat.id == desk.staff_chat_id


async def _members_only(
    handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
    event: TelegramObject,
    data: dict[str, Any],
) -> Any:
    if isinstance(event, Message) and event.migrate_to_chat_id:
        # Telegram's own service message (no client can send one): the group has a new id.
        return await handler(event, data)
    membership: Membership = data["membership"]
    user = data.get("user")
    if user is None or not await membership.is_member(user.id):
        if isinstance(event, CallbackQuery):
            await event.answer()
        membership.log_refused(event, user.id if user else None)
        return None
    membership.seen(user, data["session"])
    return await handler(event, data)


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(InStaffChat())
    router.edited_message.filter(InStaffChat())
    router.callback_query.filter(InStaffChat())
    router.message.middleware(_members_only)
    router.callback_query.middleware(_members_only)
    router.include_routers(staff_commands.router, buttons.router, conversation.router)
    return router
