"""Who is staff: members of the staff group, asked from Telegram and remembered briefly.

Telegram tells the bot (an administrator that asks for ``chat_member`` updates) of every
change of the group's members, so a removal takes effect at once instead of when a cached
answer expires. A process that learns of a change also writes a new "roster version" to the
database: every other process of the desk sees it with the next staff action and asks
Telegram again, so no process trusts a stale answer.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, ChatMemberUpdated, TelegramObject
from cachetools import TTLCache
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.models import User
from bot.db.repositories import DeskSettings
from bot.services.desk_config import DeskConfig

log = logging.getLogger(__name__)

MEMBER_STATUSES = {"creator", "administrator", "member"}
TTL = 300.0  # a fallback: chat_member updates and the roster version make changes immediate
CACHE_SIZE = 4096  # people asked about; a staff group is far smaller
ROSTER_KEY = "staff_roster_version"


def is_member_status(member: Any) -> bool:
    """A ChatMember (any kind) that is in the group: restricted members too."""
    status = getattr(member, "status", "")
    return status in MEMBER_STATUSES or bool(getattr(member, "is_member", False))


class Membership:
    def __init__(
        self,
        bot: Bot,
        desk: DeskConfig,
        clock: Clock,
        *,
        ttl: float = TTL,
        maxsize: int = CACHE_SIZE,
    ) -> None:
        self.bot = bot
        self.desk = desk
        self.clock = clock
        # (chat, user) -> (member?, the roster version it was learned under)
        self._cache: TTLCache[tuple[int, int], tuple[bool, str | None]] = TTLCache(maxsize, ttl)

    async def is_member(self, user_id: int, session: AsyncSession | None = None) -> bool:
        """With a session, a cached answer counts only while the roster version it was
        learned under is still the database's (another process may have seen a change)."""
        key = (self.desk.staff_chat_id, user_id)
        version = await DeskSettings(session).get(ROSTER_KEY) if session is not None else None
        cached = self._cache.get(key)
        if cached is not None and (session is None or cached[1] == version):
            return cached[0]
        try:
            member = await self.bot.get_chat_member(self.desk.staff_chat_id, user_id)
        except TelegramAPIError as exc:
            log.warning("cannot check membership of %s: %s", user_id, exc)
            return False
        ok = is_member_status(member)
        self._cache[key] = (ok, version)
        return ok

    async def changed(self, session: AsyncSession, event: ChatMemberUpdated) -> None:
        """A ``chat_member`` update of the staff group: believed at once, here and (through
        the roster version) in every other process."""
        if event.chat.id != self.desk.staff_chat_id:
            return
        user_id = event.new_chat_member.user.id
        ok = is_member_status(event.new_chat_member)
        version = uuid.uuid4().hex
        await DeskSettings(session).put(ROSTER_KEY, version)
        self._cache[(self.desk.staff_chat_id, user_id)] = (ok, version)
        log.info(
            "staff group member %s is now %s%s",
            user_id,
            event.new_chat_member.status,
            "" if ok else ": their staff actions are refused from now on",
        )

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
