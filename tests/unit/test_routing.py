"""The desk's routers skip aiogram's outer-middleware wrapping only where there is none: the
propagation is otherwise aiogram's (order, data, outer middlewares, ``event_router``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiogram import Bot
from aiogram.types import Chat, Message, TelegramObject, Update, User

from bot.handlers.routing import DeskDispatcher, DeskRouter


def _update(text: str) -> Update:
    return Update(
        update_id=1,
        message=Message(
            message_id=1,
            date=datetime(2026, 12, 4, tzinfo=UTC),
            chat=Chat(id=5, type="private"),
            from_user=User(id=5, is_bot=False, first_name="Ann"),
            text=text,
        ),
    )


async def test_updates_pass_desk_routers_as_aiogram_routers_in_order_with_their_data() -> None:
    seen: list[str] = []

    async def outer(
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        seen.append("outer")
        data["from_outer"] = "yes"
        return await handler(event, data)

    async def only_hello(message: Message) -> bool:
        return message.text == "hello"

    first = DeskRouter(name="first")
    first.message.filter(only_hello)

    @first.message()
    async def first_handler(message: Message) -> str:
        return "first"

    second = DeskRouter(name="second")
    second.message.outer_middleware(outer)
    inner = DeskRouter(name="inner")
    second.include_router(inner)

    @inner.message()
    async def inner_handler(message: Message, from_outer: str, event_router: DeskRouter) -> str:
        seen.append(f"inner {from_outer} {event_router.name}")
        return "inner"

    dispatcher = DeskDispatcher()
    dispatcher.include_routers(first, second)
    bot = Bot("42:TEST")
    try:
        assert await dispatcher.feed_update(bot, _update("hello")) == "first"
        assert seen == []  # the second router's outer middleware is not reached
        assert await dispatcher.feed_update(bot, _update("something else")) == "inner"
        assert seen == ["outer", "inner yes inner"]
    finally:
        await bot.session.close()
