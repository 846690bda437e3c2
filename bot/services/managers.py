"""Managers' summaries on demand and on schedule, and the export (SPEC §6).

The figures are data (``bot/services/reports.py``). On demand, the handler draws them and
hands the result back to be sent; the daily summary, sent by the scheduler, is drawn through
the ports this service is given (a ``Renderer`` for the text, a ``ChartRenderer`` for the
chart), both implemented at the edge.

An export of any size arrives (issue 11): Telegram refuses an upload over 50 MB (HTTP 413), so
a CSV over ``upload_limit`` is zipped, and when even the zip is too big the export is split by
month (and a month still too big into equal parts), each file under the limit.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import zipfile
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from aiogram import methods
from aiogram.utils.i18n import I18n
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db.repositories import DeskSettings, TicketRepo, UserRepo
from bot.db.uow import transaction
from bot.delivery.intents import Intent
from bot.delivery.outbox import Outbox
from bot.services.desk_config import DeskConfig
from bot.services.notices_desk import DailySummary
from bot.services.rendering import Renderer
from bot.services.reports import DayReport, ExportRow, Reports

log = logging.getLogger(__name__)

# Telegram's upload limit is "50 MB" (bigger files fail with 413). Counted in decimal
# megabytes, the file stays under it however the server counts, with room for the form around it.
UPLOAD_LIMIT = 50 * 1000 * 1000


class ChartRenderer(Protocol):
    """Draws a day's chart as a PNG in a reader's language (implemented at the edge)."""

    def __call__(self, report: DayReport, locale: str) -> bytes: ...


# The export's rows as the bytes of one CSV file (header included), drawn by the handler.
CsvWriter = Callable[[Sequence[ExportRow]], bytes]


@dataclass(frozen=True, slots=True)
class Export:
    """Tickets opened in [first, last], in the order of their numbers."""

    first: date
    last: date
    rows: Sequence[ExportRow]


@dataclass(frozen=True, slots=True)
class ExportFile:
    filename: str
    data: bytes
    rows: int


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
        render: Renderer,
        chart: ChartRenderer,
        read_sessions: async_sessionmaker[AsyncSession] | None = None,
        upload_limit: int = UPLOAD_LIMIT,
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
        self.render = render
        self.chart = chart
        self.upload_limit = upload_limit
        self.reports = Reports(config.hours, config.book)

    def is_manager(self, user_id: int) -> bool:
        return user_id in self.managers

    def today(self) -> date:
        return self.clock.now().astimezone(self.config.tz).date()

    async def summary(self, session: AsyncSession, day: date) -> DayReport:
        async with self._reader(session) as reader:
            summary = await self.reports.summary(reader, day)
            points = await self.reports.history(reader, day)
        return DayReport(summary, points)

    def post_summary(
        self,
        session: AsyncSession,
        chat_id: int,
        day: date,
        text: str,
        chart: bytes,
        thread: int | None = None,
    ) -> None:
        """A drawn summary to a chat: its text, then its chart."""
        extra: dict[str, Any] = {"message_thread_id": thread} if thread else {}
        self.outbox.add(
            session,
            Intent(
                chat_id=chat_id,
                method=methods.SendMessage,
                payload={"chat_id": chat_id, "text": text, **extra},
                purpose="summary",
            ),
        )
        self.outbox.add(
            session,
            Intent(
                chat_id=chat_id,
                method=methods.SendPhoto,
                payload={
                    "chat_id": chat_id,
                    "photo": file_payload(chart, f"summary-{day.isoformat()}.png"),
                    **extra,
                },
                purpose="summary",
            ),
        )

    async def send_summary(
        self, session: AsyncSession, chat_id: int, day: date, locale: str
    ) -> None:
        """The day's summary drawn through the ports, for a manager outside any update."""
        report = await self.summary(session, day)
        text = self.render(DailySummary(report), locale).text
        self.post_summary(session, chat_id, day, text, self.chart(report, locale))

    async def export(self, session: AsyncSession, first: date, last: date) -> Export:
        async with self._reader(session) as reader:
            return Export(first, last, await self.reports.export_rows(reader, first, last))

    async def send_export(
        self, session: AsyncSession, chat_id: int, export: Export, write: CsvWriter
    ) -> list[ExportFile]:
        """The export as documents, each under the upload limit (see the module's note)."""
        stamp = self.clock.now().astimezone(self.config.tz)
        # Zipping a large export takes seconds: off the event loop.
        files = await asyncio.to_thread(
            pack_export, export, write, limit=self.upload_limit, tz=self.config.tz, stamp=stamp
        )
        for file in files:
            self.outbox.add(
                session,
                Intent(
                    chat_id=chat_id,
                    method=methods.SendDocument,
                    payload={
                        "chat_id": chat_id,
                        "document": file_payload(file.data, file.filename),
                    },
                    purpose="export",
                ),
            )
        return files

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
            async with transaction(session_factory) as uow:
                session = uow.session
                settings = uow.desk_settings
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
        try:
            if not await self._send_daily(session_factory, key, day):
                return False  # another process was first
        except IntegrityError:
            # Another instance claimed the day at the same moment: it sends; this one rolled
            # back, having sent nothing (SPEC §11).
            return False
        log.info("daily summary for %s sent to %d managers", day, len(self.managers))
        return True

    async def _send_daily(
        self, session_factory: async_sessionmaker[AsyncSession], key: str, day: date
    ) -> bool:
        async with transaction(session_factory) as uow:
            session = uow.session
            settings = uow.desk_settings
            if await settings.get(key) is not None:
                return False
            await settings.put(key, self.clock.now().isoformat(timespec="seconds"))
            for manager in sorted(self.managers):
                user = await UserRepo(session).get(manager)
                locale = (user.locale if user and user.locale else None) or (
                    (user.language_code or "")[:2] if user else ""
                )
                if locale not in self.i18n.available_locales:
                    locale = self.config.default_locale
                await self.send_summary(session, manager, day, locale)
        return True


def pack_export(
    export: Export, write: CsvWriter, *, limit: int, tz: ZoneInfo, stamp: datetime
) -> list[ExportFile]:
    """One CSV if it fits ``limit``, else one zip; else a file per month (by the day each
    ticket was opened, in ``tz``), a month still too big cut into equal parts."""
    whole = _fit(f"tickets-{export.first}-{export.last}", export.rows, write, limit, stamp)
    if whole is not None:
        return [whole]
    months: dict[str, list[ExportRow]] = {}
    for row in export.rows:
        months.setdefault(row.created_at.astimezone(tz).strftime("%Y-%m"), []).append(row)
    files: list[ExportFile] = []
    for month in sorted(months):
        files += _split(f"tickets-{month}", months[month], write, limit, stamp)
    return files


def _split(
    name: str, rows: Sequence[ExportRow], write: CsvWriter, limit: int, stamp: datetime
) -> list[ExportFile]:
    parts = 1
    while True:
        size = -(-len(rows) // parts)  # ceil: ``parts`` chunks of at most this many rows
        chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
        files = [
            _fit(name if parts == 1 else f"{name}-{n}", chunk, write, limit, stamp)
            for n, chunk in enumerate(chunks, 1)
        ]
        if all(file is not None for file in files):
            return [file for file in files if file is not None]
        if size == 1:
            raise ValueError(f"one row of {name} does not fit in {limit} bytes, even zipped")
        parts *= 2


def _fit(
    name: str, rows: Sequence[ExportRow], write: CsvWriter, limit: int, stamp: datetime
) -> ExportFile | None:
    """``rows`` as a CSV, or zipped, if either fits ``limit``; None if neither does."""
    data = write(rows)
    if len(data) <= limit:
        return ExportFile(f"{name}.csv", data, len(rows))
    entry = zipfile.ZipInfo(f"{name}.csv", date_time=stamp.timetuple()[:6])
    entry.compress_type = zipfile.ZIP_DEFLATED
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(entry, data)
    zipped = buffer.getvalue()
    if len(zipped) <= limit:
        return ExportFile(f"{name}.zip", zipped, len(rows))
    return None
