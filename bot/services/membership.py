"""Who is staff: members of the staff group, asked from Telegram and remembered briefly."""

from __future__ import annotations

import logging
import time

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, TelegramObject
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.models import User
from bot.services.desk_config import DeskConfig

log = logging.getLogger(__name__)

MEMBER_STATUSES = {"creator", "administrator", "member"}
TTL = 300.0


class Membership:
    def __init__(self, bot: Bot, desk: DeskConfig, clock: Clock) -> None:
        self.bot = bot
        self.desk = desk
        self.clock = clock
        self._cache: dict[tuple[int, int], tuple[bool, float]] = {}

    async def is_member(self, user_id: int) -> bool:
        key = (self.desk.staff_chat_id, user_id)
        cached = self._cache.get(key)
        if cached is not None and time.monotonic() - cached[1] < TTL:
            return cached[0]
        try:
            member = await self.bot.get_chat_member(self.desk.staff_chat_id, user_id)
        except TelegramAPIError as exc:
            log.warning("cannot check membership of %s: %s", user_id, exc)
            return False
        ok = member.status in MEMBER_STATUSES or bool(getattr(member, "is_member", False))
        self._cache[key] = (ok, time.monotonic())
        return ok

    async def admins(self) -> list[tuple[int, str]]:
        try:
            members = await self.bot.get_chat_administrators(self.desk.staff_chat_id)
        except TelegramAPIError as exc:
            log.warning("cannot list the staff group's administrators: %s", exc)
            return []
        return [(m.user.id, m.user.full_name) for m in members if not m.user.is_bot]

    def seen(self, user: User, session: AsyncSession) -> None:
        """Acting in the staff group makes someone a staff member who can be assigned."""
        del session  # the user row belongs to the update's session already
        if user.staff_seen_at is None:
            user.staff_seen_at = self.clock.now()

    def log_refused(self, event: TelegramObject, user_id: int | None) -> None:
        data = event.data if isinstance(event, CallbackQuery) else None
        log.warning("refused a staff action from non-member %s (data %r)", user_id, data)
