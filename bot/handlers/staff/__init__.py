"""The staff group: card buttons, the conversation with customers, staff commands.

Only updates from the staff group reach these routers, and a button, a message or an edit acts
only when its author is a member of the group (callback data can be forged; who pressed and
where cannot). Membership changes (``chat_member``) take effect at once.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Router
from aiogram.filters import BaseFilter
from aiogram.types import CallbackQuery, Chat, ChatMemberUpdated, Message, TelegramObject
from aiogram.utils.i18n import gettext as _

from bot.handlers.staff import buttons, conversation, members
from bot.handlers.staff import commands as staff_commands
from bot.services.desk_config import DeskConfig
from bot.services.membership import Membership


class InStaffChat(BaseFilter):
    async def __call__(
        self, event: Message | CallbackQuery | ChatMemberUpdated, desk: DeskConfig
    ) -> bool:
        chat: Chat | None = (
            event.chat
            if isinstance(event, Message | ChatMemberUpdated)
            else getattr(event.message, "chat", None)
        )
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
    if user is None or not await membership.is_member(user.id, data["session"]):
        if isinstance(event, CallbackQuery):
            # Someone removed from the group: for them the button is no longer active.
            await event.answer(_("This button is no longer active."), show_alert=True)
        membership.log_refused(event, user.id if user else None)
        return None
    membership.seen(user, data["session"])
    return await handler(event, data)


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(InStaffChat())
    router.edited_message.filter(InStaffChat())
    router.callback_query.filter(InStaffChat())
    router.chat_member.filter(InStaffChat())
    router.message.middleware(_members_only)
    router.edited_message.middleware(_members_only)
    router.callback_query.middleware(_members_only)
    router.include_routers(
        members.router, staff_commands.router, buttons.router, conversation.router
    )
    return router
