"""Managers' summaries on demand and on schedule, and the CSV export (SPEC §6)."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, time, timedelta
from typing import Any

from aiogram import methods
from aiogram.utils.i18n import I18n
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db.repositories import DeskSettings, TicketRepo, UserRepo
from bot.services.delivery import Outbox
from bot.services.desk_config import DeskConfig
from bot.services.reports import Reports, chart_png
from bot.views import reports as views

log = logging.getLogger(__name__)

# The desk's first day, kept once in desk_settings: no daily summary is sent for a day before
# it (a desk installed this morning has no "yesterday" to sum up).
FIRST_DAY_KEY = "desk_first_day"


def file_payload(data: bytes, filename: str) -> dict[str, str]:
    """A file inside an outbox payload (the sender turns it into an upload)."""
    return {"__file_b64": base64.b64encode(data).decode("ascii"), "filename": filename}


class ManagerService:
    def __init__(
        self,
        *,
        clock: Clock,
        outbox: Outbox,
        i18n: I18n,
        config: DeskConfig,
        managers: frozenset[int],
        summary_time: time,
        read_sessions: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        # Figures are read on their own connection: on SQLite the writer is not held while
        # a summary is computed.
        self.read_sessions = read_sessions
        self.clock = clock
        self.outbox = outbox
        self.i18n = i18n
        self.config = config
        self.managers = managers
        self.summary_time = summary_time
        self.reports = Reports(config.hours)

    def is_manager(self, user_id: int) -> bool:
        return user_id in self.managers

    def today(self) -> date:
        return self.clock.now().astimezone(self.config.tz).date()

    async def send_summary(
        self, session: AsyncSession, chat_id: int, day: date, locale: str, thread: int | None = None
    ) -> None:
        async with self._reader(session) as reader:
            summary = await self.reports.summary(reader, day)
            points = await self.reports.history(reader, day)
        with self.i18n.context(), self.i18n.use_locale(locale):
            text = views.summary_text(summary, locale)
            png = chart_png(
                points, title=views.chart_title(day, locale), labels=views.chart_labels()
            )
        extra: dict[str, Any] = {"message_thread_id": thread} if thread else {}
        self.outbox.add(
            session,
            chat_id=chat_id,
            method=methods.SendMessage,
            payload={"chat_id": chat_id, "text": text, **extra},
            purpose="summary",
        )
        self.outbox.add(
            session,
            chat_id=chat_id,
            method=methods.SendPhoto,
            payload={
                "chat_id": chat_id,
                "photo": file_payload(png, f"summary-{day.isoformat()}.png"),
                **extra,
            },
            purpose="summary",
        )

    async def send_export(
        self, session: AsyncSession, chat_id: int, first: date, last: date, locale: str
    ) -> None:
        with self.i18n.context(), self.i18n.use_locale(locale):
            header = views.export_header()
        async with self._reader(session) as reader:
            data = await self.reports.export_csv(reader, first, last, header)
        self.outbox.add(
            session,
            chat_id=chat_id,
            method=methods.SendDocument,
            payload={
                "chat_id": chat_id,
                "document": file_payload(data, f"tickets-{first}-{last}.csv"),
            },
            purpose="export",
        )

    @asynccontextmanager
    async def _reader(self, session: AsyncSession) -> AsyncIterator[AsyncSession]:
        if self.read_sessions is None:
            yield session
            return
        async with self.read_sessions() as reader:
            yield reader

    def due_day(self) -> date:
        """The day whose summary is due: today after SUMMARY_TIME, else yesterday."""
        local = self.clock.now().astimezone(self.config.tz)
        if local.time() >= self.summary_time:
            return local.date()
        return local.date() - timedelta(days=1)

    async def first_day(self, session_factory: async_sessionmaker[AsyncSession]) -> date:
        """The desk's first day: noted by the first timer sweep of its first start (the
        scheduler runs one as the process starts, managers or not). A desk that ran before
        this was kept counts from its oldest ticket instead, so an upgrade loses no summary
        that was due. Neither a file's date nor the migrations' can say it: Alembic keeps
        no dates, and a database may be restored or moved to PostgreSQL."""
        async with (self.read_sessions or session_factory)() as reader:
            stored = await DeskSettings(reader).get(FIRST_DAY_KEY)
        if stored is not None:
            return date.fromisoformat(stored)
        try:
            async with session_factory() as session, session.begin():
                settings = DeskSettings(session)
                stored = await settings.get(FIRST_DAY_KEY)
                if stored is not None:
                    return date.fromisoformat(stored)
                first = self.today()
                oldest = await TicketRepo(session).first_created_at()
                if oldest is not None:
                    first = min(first, oldest.astimezone(self.config.tz).date())
                await settings.put(FIRST_DAY_KEY, first.isoformat())
        except IntegrityError:
            # Another process noted it at the same moment: theirs stands.
            async with session_factory() as session:
                stored = await DeskSettings(session).get(FIRST_DAY_KEY)
            assert stored is not None
            return date.fromisoformat(stored)
        log.info("the desk's first day is %s: no daily summary for the days before", first)
        return first

    async def daily(self, session_factory: async_sessionmaker[AsyncSession]) -> bool:
        """Send the due day's summary to every manager, once (claimed in the database);
        never for a day before the desk existed."""
        first = await self.first_day(session_factory)
        if not self.managers:
            return False
        day = self.due_day()
        if day < first:
            return False
        key = f"summary_sent:{day.isoformat()}"
        async with (self.read_sessions or session_factory)() as reader:
            if await DeskSettings(reader).get(key) is not None:
                return False  # the common case: nothing to do, no write lock taken
        async with session_factory() as session, session.begin():
            settings = DeskSettings(session)
            if await settings.get(key) is not None:
                return False  # another process was first
            await settings.put(key, self.clock.now().isoformat(timespec="seconds"))
            for manager in sorted(self.managers):
                user = await UserRepo(session).get(manager)
                locale = (user.locale if user and user.locale else None) or (
                    (user.language_code or "")[:2] if user else ""
                )
                if locale not in self.i18n.available_locales:
                    locale = self.config.default_locale
                await self.send_summary(session, manager, day, locale)
        log.info("daily summary for %s sent to %d managers", day, len(self.managers))
        return True
