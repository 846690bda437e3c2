"""The current user, saved or refreshed from the update, and their locale."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject
from aiogram.types import User as TelegramUser
from aiogram.utils.i18n import I18n, I18nMiddleware
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.models import User
from bot.db.repositories import UserRepo


class UserMiddleware(BaseMiddleware):
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        author: TelegramUser | None = data.get("event_from_user")
        session: AsyncSession | None = data.get("session")
        if author is not None and session is not None and not author.is_bot:
            data["user"] = await UserRepo(session).upsert(
                user_id=author.id,
                first_name=author.first_name,
                last_name=author.last_name,
                username=author.username,
                language_code=author.language_code,
                now=self.clock.now(),
            )
        return await handler(event, data)


def locale_of(user: User | None, available: tuple[str, ...], default: str) -> str:
    """The user's own choice, then their Telegram language, then ``DEFAULT_LOCALE``."""
    if user is not None:
        if user.locale in available:
            return user.locale
        language = (user.language_code or "").split("-")[0].lower()
        if language in available:
            return language
    return default


class LocaleMiddleware(I18nMiddleware):
    def __init__(self, i18n: I18n) -> None:
        super().__init__(i18n)

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        locale = locale_of(data.get("user"), self.i18n.available_locales, self.i18n.default_locale)
        data["locale"] = locale
        return locale
