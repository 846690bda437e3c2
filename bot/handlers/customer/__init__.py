"""The customer's private chat: commands, the request dialog, follow-ups — in that order."""

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiogram import Router
from aiogram.types import CallbackQuery, Message, TelegramObject

from bot.handlers.customer import commands, dialog, followup, resolution
from bot.handlers.routing import DeskRouter


async def _with_dialog(
    handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
    event: TelegramObject,
    data: dict[str, Any],
) -> Any:
    """Every customer handler gets its ``Dialog``: state, user, messenger and session."""
    data["dialog"] = dialog.Dialog(data["state"], data["user"], data["messenger"], data["session"])
    return await handler(event, data)


# Filters as coroutine functions: aiogram runs a synchronous filter (a magic ``F`` one
# included) in a thread of its own, and these are checked for every message.
async def _in_private(message: Message) -> bool:
    return message.chat.type == "private"


async def _pressed_in_private(callback: CallbackQuery) -> bool:
    # No message: a button of an inline message, which is in no chat of ours.
    return callback.message is not None and callback.message.chat.type == "private"


def create_router(modules: Sequence[Router] = ()) -> Router:
    router = DeskRouter(name=__name__)
    router.message.filter(_in_private)
    router.edited_message.filter(_in_private)
    router.callback_query.filter(_pressed_in_private)
    router.message.middleware(_with_dialog)
    router.callback_query.middleware(_with_dialog)
    router.include_routers(
        commands.create_router(),
        *modules,  # installed modules' commands and buttons, before the dialog takes the rest
        resolution.create_router(),
        dialog.create_router(),
        followup.create_router(),
    )
    return router
