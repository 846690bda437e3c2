"""A module's failure, told once: in the log, and to managers in private through the outbox.

"Once" holds across restarts and instances: what was told is kept in ``desk_settings`` per
module and stage, so a module that fails to import at every start is reported at the first,
and again only when its error changes or after it has worked in between.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiogram import html, methods
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.repositories import DeskSettings, UserRepo
from bot.db.uow import transaction
from bot.delivery.intents import RANK_CUSTOMER_WAITING, Intent
from bot.delivery.outbox import Outbox
from bot.middlewares.user import locale_of

log = logging.getLogger(__name__)

STAGES = ("import", "settings", "migrate", "routers", "task", "hook")


@dataclass(frozen=True, slots=True)
class Trouble:
    """What went wrong with a module, for managers."""

    name: str
    stage: str  # one of STAGES
    error: str
    ticket: int | None = None  # a hook's: the event's ticket, its kind, the tries it had
    event: str = ""
    attempts: int = 0


def report_key(name: str, stage: str) -> str:
    return f"mod:{name}:{stage}"


def trouble_text(trouble: Trouble) -> str:
    """In the current locale (the caller sets it)."""
    error = html.quote(trouble.error[:500])
    name = html.bold(html.quote(trouble.name))
    if trouble.stage == "hook":
        return _(
            "⚠️ The module {name} failed {attempts} times on ticket #{number} ({event}); the "
            "event was skipped for this module. The error: {error}"
        ).format(
            name=name,
            attempts=trouble.attempts,
            number=trouble.ticket,
            event=html.quote(trouble.event),
            error=error,
        )
    if trouble.stage == "task":
        return _(
            "⚠️ The background work of the module {name} failed and will be started again. "
            "The error: {error}"
        ).format(name=name, error=error)
    if trouble.stage == "settings":
        return _(
            "⚠️ The module {name} is off: its settings are malformed. The desk works without "
            "it. The error: {error}"
        ).format(name=name, error=error)
    if trouble.stage == "migrate":
        return _(
            "⚠️ The module {name} is off: its database migration failed. The desk works "
            "without it. The error: {error}"
        ).format(name=name, error=error)
    return _(
        "⚠️ The module {name} could not be loaded and is off. The desk works without it. "
        "The error: {error}"
    ).format(name=name, error=error)


class Reporter:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        outbox: Outbox,
        i18n: I18n,
        managers: frozenset[int],
        default_locale: str,
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.outbox = outbox
        self.i18n = i18n
        self.managers = managers
        self.default_locale = default_locale
        self.after_commit = after_commit

    async def report(self, trouble: Trouble) -> bool:
        """Log it; tell managers unless they were told this already. True: they are told."""
        where = f" on ticket #{trouble.ticket} ({trouble.event})" if trouble.ticket else ""
        log.error("module %s failed (%s)%s: %s", trouble.name, trouble.stage, where, trouble.error)
        told = f"{trouble.error}"
        async with transaction(self.sessions, after_commit=self.after_commit) as uow:
            settings = DeskSettings(uow.session)
            key = report_key(trouble.name, trouble.stage)
            if await settings.get(key) == told:
                return False
            await settings.put(key, told)
            for manager in sorted(self.managers):
                locale = await self._locale_of(uow.session, manager)
                with self.i18n.context(), self.i18n.use_locale(locale):
                    text = trouble_text(trouble)
                self.outbox.add(
                    uow.session,
                    Intent(
                        chat_id=manager,
                        method=methods.SendMessage,
                        payload={"chat_id": manager, "text": text},
                        purpose="notice",
                        rank=RANK_CUSTOMER_WAITING,
                    ),
                )
        return True

    async def worked(self, name: str, stages: tuple[str, ...] = STAGES) -> None:
        """The module got past these stages: a later failure there is news again."""
        async with transaction(self.sessions) as uow:
            settings = DeskSettings(uow.session)
            for stage in stages:
                if await settings.get(report_key(name, stage)):
                    await settings.put(report_key(name, stage), "")

    async def _locale_of(self, session: AsyncSession, user_id: int) -> str:
        user = await UserRepo(session).get(user_id)
        return locale_of(user, self.i18n.available_locales, self.default_locale)
