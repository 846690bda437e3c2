"""The customer's private chat: commands, the request dialog, follow-ups — in that order."""

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import F, Router
from aiogram.types import TelegramObject

from bot.handlers.customer import commands, dialog, followup, resolution


async def _with_dialog(
    handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
    event: TelegramObject,
    data: dict[str, Any],
) -> Any:
    """Every customer handler gets its ``Dialog``: state, user, messenger and session."""
    data["dialog"] = dialog.Dialog(data["state"], data["user"], data["messenger"], data["session"])
    return await handler(event, data)


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == "private")
    router.edited_message.filter(F.chat.type == "private")
    router.callback_query.filter(F.message.chat.type == "private")
    router.message.middleware(_with_dialog)
    router.callback_query.middleware(_with_dialog)
    router.include_routers(
        commands.create_router(),
        resolution.create_router(),
        dialog.create_router(),
        followup.create_router(),
    )
    return router
